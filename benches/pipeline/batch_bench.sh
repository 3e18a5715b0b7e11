#!/usr/bin/env bash
# Issue 4 benchmark: `fakopp batch` against ObsPy doing the same work on
# 100 channels x 1 hour at 100 Hz of Steim2 MiniSEED (bandpass 1-10 Hz
# corners 4 -> recursive STA/LTA 0.5/10 s -> trigger 3.5/1.0).
#
# Usage: CARGO_TARGET_DIR=/work/target-bench benches/pipeline/batch_bench.sh [REPS] [table.md]
#   REPS (default 5) repetitions; in each, every variant runs once, in the
#   same order (ObsPy first), so the sides alternate over the run. Figures
#   are whole-process wall times (start to exit, reading the file and
#   writing the triggers included), medians over the repetitions.
# Env: BENCH_DIR (data and outputs; default /tmp/fakopp-batch-bench; the
#   MiniSEED file is generated once and reused), BENCH_CHANNELS (100),
#   BENCH_SECONDS (3600), BENCH_RANKS (default "1 2 3").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
reps=${1:-5}
table=${2:-/dev/null}
dir=${BENCH_DIR:-/tmp/fakopp-batch-bench}
channels=${BENCH_CHANNELS:-100}
seconds=${BENCH_SECONDS:-3600}
ranks=${BENCH_RANKS:-1 2 3}
py=$("$root/scripts/pyenv" | tail -n 1)
mkdir -p "$dir"
data="$dir/net-${channels}x${seconds}s.mseed"
cfg="$root/benches/pipeline/batch.toml"

cargo build --release --bin fakopp >&2
bin="$CARGO_TARGET_DIR/release/fakopp"
if [ ! -s "$data" ]; then
  echo "== generating $data" >&2
  "$py" benches/pipeline/batch_bench.py gen "$data" --channels "$channels" --seconds "$seconds"
fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# name|command (run with bash -c; $data, $dir, $bin, $cfg, $py exported)
export data dir bin cfg py
variants=(
  "obspy|\"\$py\" benches/pipeline/batch_bench.py obspy \"\$data\" \"\$dir/obspy.jsonl\" >/dev/null"
  "fakopp-1t|RAYON_NUM_THREADS=1 \"\$bin\" batch --config \"\$cfg\" --output \"\$dir/fk-1t.jsonl\" \"\$data\""
  "fakopp-all|\"\$bin\" batch --config \"\$cfg\" --output \"\$dir/fk-all.jsonl\" \"\$data\""
  "fakopp-1t-scalar|FAKOPP_SCALAR_ONLY=1 RAYON_NUM_THREADS=1 \"\$bin\" batch --config \"\$cfg\" --output \"\$dir/fk-scalar.jsonl\" \"\$data\""
)
for n in $ranks; do
  variants+=("fakopp-mpi$n|mpirun -n $n --oversubscribe -x RAYON_NUM_THREADS=1 \"\$bin\" batch --config \"\$cfg\" --output \"\$dir/fk-mpi$n.jsonl\" \"\$data\"")
done

times="$dir/times.tsv"
: > "$times"
for r in $(seq 1 "$reps"); do
  for v in "${variants[@]}"; do
    name=${v%%|*} cmd=${v#*|}
    s=$(date +%s.%N)
    FAKOPP_LOG=warn bash -c "$cmd" 2>"$dir/$name.err" || { cat "$dir/$name.err" >&2; exit 1; }
    e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc)
    printf '%s\t%s\t%s\n' "$r" "$name" "$t" >> "$times"
    echo "rep $r $name ${t}s" >&2
  done
done

"$py" - "$times" "$dir" "$channels" "$seconds" "$table" <<'PY'
import json, statistics, sys, os, platform, subprocess
times, d, ch, secs, table = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
runs = {}
for line in open(times):
    r, name, t = line.split("\t")
    runs.setdefault(name, []).append(float(t))
samples = ch * secs * 100
med = {k: statistics.median(v) for k, v in runs.items()}
def trig(path, obspy=False):
    out = set()
    for l in open(path):
        o = json.loads(l)
        if obspy or o.get("type") == "trigger":
            out.add((o["sensor"], o["on_index"], o["off_index"]))
    return out
ref = trig(os.path.join(d, "obspy.jsonl"), obspy=True)
def cpu():
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            return l.split(":", 1)[1].strip()
rows = []
rows.append(f"Machine: {cpu()}, {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.2f}.")
rows.append("")
rows.append(f"{ch} channels x {secs:.0f} s x 100 Hz = {samples/1e6:.1f} M samples, Steim2 MiniSEED; median of {len(runs['obspy'])} alternated runs.")
rows.append("")
rows.append("| variant | wall s (median) | min–max s | M samples/s | vs ObsPy | triggers (= ObsPy's) |")
rows.append("|---|---:|---:|---:|---:|---|")
files = {"obspy": "obspy.jsonl", "fakopp-1t": "fk-1t.jsonl", "fakopp-all": "fk-all.jsonl",
         "fakopp-1t-scalar": "fk-scalar.jsonl"}
for k in runs:
    f = files.get(k, f"fk-{k.split('-')[-1]}.jsonl")
    t = trig(os.path.join(d, f), obspy=(k == "obspy"))
    same = "yes" if t == ref else f"no ({len(t ^ ref)} differ)"
    rows.append(f"| {k} | {med[k]:.3f} | {min(runs[k]):.3f}–{max(runs[k]):.3f} | {samples/med[k]/1e6:.1f} | {med['obspy']/med[k]:.1f}x | {len(t)} ({same}) |")
text = "\n".join(rows)
print(text)
open(table, "w").write(text + "\n")
PY

#!/usr/bin/env bash
# Soak benchmark (issue 19): HOURS of data time from CHANNELS simulated
# 100 Hz stations through real Kafka → `fakopp run` → real Cassandra,
# drained as fast as it goes from a backlog; the job's own status lines
# (JSON logs) summarised for the first and the last hour of data time:
# throughput, micro-batch p99, rank-0 RSS, checkpoint size and write time.
#
#   CARGO_TARGET_DIR=/work/target-bench benches/soak/soak.sh [CHANNELS] [HOURS] [SINK]
#
# FAKOPP_SOAK_STATUS_S: seconds between status lines (2; less for fast drains).
# SINK: cassandra (default: raw packets and results, the production case)
# or jsonl (the job's own behaviour without the co-located database).
#
# Needs the services (scripts/services start) and a release build
# (`cargo build --release --bin fakopp`, here with CARGO_TARGET_DIR). The
# backlog is produced in 2-hour blocks of the simulator (its start shifted
# by 2 h each time: one contiguous series per station), so no block needs
# more than 2 h × CHANNELS of samples in memory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
channels=${1:-100}
hours=${2:-24}
sink=${3:-cassandra}
target=${CARGO_TARGET_DIR:-$repo/target}
bin=$target/release/fakopp
[ -x "$bin" ] || { echo "soak: build first: cargo build --release --bin fakopp" >&2; exit 2; }
py=$("$repo/scripts/pyenv")
work=$(mktemp -d "${TMPDIR:-/tmp}/fakopp-soak.XXXXXX")
tag=$(date +%s)
topic=fakopp_soak_$tag
ks=soak_$tag
config() { # start
  cat <<TOML
[source]
kind = "kafka"
[kafka]
brokers = "${FAKOPP_BENCH_BROKERS:-127.0.0.1:9092}"
topic = "$topic"
group = "${ks}_g"
dlq_topic = "$topic.dlq"
[cassandra]
nodes = ["${FAKOPP_BENCH_CASSANDRA:-127.0.0.1:9042}"]
keyspace = "$ks"
[checkpoint]
path = "$work/state/ckpt.h5"
interval_s = 5.0
[sinks]
kinds = ["$sink"]
jsonl_path = "$work/results.jsonl"
[stream]
status_interval_s = ${FAKOPP_SOAK_STATUS_S:-2.0}
[synthetic]
seismic_stations = $channels
duration_s = 7200.0
events = 60
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
start = "$1"
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 2.0, off = 1.2 },
]
[[coincidence]]
chain = "p-picker"
threshold_sum = 3
trigger_off_extension_s = 0.5
TOML
}
t0=$(date -d 2024-05-01T00:00:00Z +%s)
blocks=$(( (hours + 1) / 2 ))
echo "soak: producing $hours h × $channels channels in $blocks blocks to $topic" >&2
for ((b = 0; b < blocks; b++)); do
  start=$(date -u -d @$((t0 + b * 7200)) +%Y-%m-%dT%H:%M:%SZ)
  config "$start" >"$work/block.toml"
  "$bin" produce --synthetic --packet-samples 100 --config "$work/block.toml" 2>>"$work/produce.log"
done
config "2024-05-01T00:00:00Z" >"$work/run.toml"
echo "soak: draining (log: $work/run.log)" >&2
/usr/bin/time -v "$bin" --log-format json run --exit-when-idle 20 --config "$work/run.toml" \
  2>"$work/run.log"
"$py" "$here/summarise.py" "$work/run.log" "$t0" "$hours" "$channels" "$sink"
rm -rf "$work/state" "$work/results.jsonl"

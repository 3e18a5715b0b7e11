"""Summarises benches/scaling/run: per sink and rank count, the drain
rate and where rank 0's time went (the job's own summary line)."""
import json
import sys
from datetime import datetime

channels = int(sys.argv[1])


def wall(v):
    return datetime.strptime(v["timestamp"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def dash(x):
    """A figure, or a dash where the build does not report it."""
    return "—" if x != x else f"{x:.1f}"


def parse_list(s):
    return [x for x in s.strip("[]").split(",") if x]


rows = []
for arg in sys.argv[2:]:
    sink, ranks, label, path = arg.split(":", 3)
    started = done = None
    last_total = 0
    summary = None
    for line in open(path):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        f = v.get("fields", {})
        msg = f.get("message")
        if msg == "stream job started":
            started = wall(v)
        elif msg == "status":
            total = int(f["samples_total"])
            if total > last_total:
                # The first status line after the last sample came in:
                # the drain ended within one status interval before it.
                last_total, done = total, wall(v)
        elif msg == "stream job finished":
            summary = f
    if summary is None or started is None or done is None:
        sys.exit(f"{path}: no complete run (see the log)")
    # A build before the instrumentation has the drain rate only.
    phases = dict(p.split(":") for p in parse_list(summary.get("rank0_ns_per_sample", "")))
    rows.append((sink, int(ranks), label, last_total, last_total / (done - started),
                 float(summary.get("rank0_serial_ns_per_sample", "nan")),
                 float(summary.get("consumer_thread_ns_per_sample", "nan")), phases,
                 [float(b) for b in parse_list(summary.get("busy_ns_per_sample_by_rank", ""))],
                 summary.get("raw_packets_by_rank", "—")))

print("| build | sink | ranks | samples | drain samples/s | vs 1 rank | rank-0 serial ns/sample | consumer thread ns/sample | rank-0 compute ns/sample | busy ns/sample by rank | raw packets by rank |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
base = {}
for sink, n, label, total, rate, serial, consumer, phases, busy, raw in rows:
    base.setdefault((label, sink), rate)
    compute = float(phases["compute"]) if "compute" in phases else float("nan")
    print(f"| {label} | {sink} | {n} | {total / 1e6:.1f} M | {rate / 1e6:.2f} M | {rate / base[(label, sink)]:.2f}x | "
          f"{serial:.1f} | {dash(consumer)} | {compute:.1f} | {' / '.join(f'{b:.1f}' for b in busy) or '—'} | {raw} |")
print()
# Builds differ in their phases: a column for every phase any build has.
names = list(dict.fromkeys(k for r in rows for k in r[7]))
if names:
    print("rank 0, ns per sample by phase (wall time: inflated wherever Kafka or Cassandra take the cores):\n")
    print("| build | sink | ranks | " + " | ".join(names) + " |")
    print("|---|---|---:|" + "---:|" * len(names))
    for sink, n, label, _, _, _, _, phases, _, _ in rows:
        if phases:
            print(f"| {label} | {sink} | {n} | " +  " | ".join(f"{float(phases[k]):.1f}" if k in phases else "—" for k in names) + " |")

"""Summarises a soak run's status lines (benches/soak/soak.sh):
first and last hour of data time side by side."""
import json
import sys
from datetime import datetime, timezone

log, t0, hours, channels = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = []
for line in open(log):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    f = v.get("fields", {})
    if f.get("message") != "status" or float(f.get("samples_per_s", 0)) <= 0:
        continue
    t = datetime.strptime(f["data_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    rows.append(((t.timestamp() - t0) / 3600.0, f))

def figures(sel):
    num = lambda k: [float(f[k]) for _, f in sel]
    return {
        "status lines": len(sel),
        "samples/s (mean)": sum(num("samples_per_s")) / len(sel),
        "micro-batch p99 ms (max)": max(num("batch_p99_ms")),
        "rank-0 RSS MB (max)": max(num("rss_bytes")) / 1e6,
        "checkpoint MB (max)": max(num("checkpoint_bytes")) / 1e6,
        "checkpoint write ms (max)": max(num("checkpoint_ms")),
        "CPU ns/sample (mean)": sum(num("cpu_ns_per_sample")) / len(sel),
        "triggers held (max)": max(num("triggers_held")),
    }

first = figures([r for r in rows if r[0] < 1.0])
last = figures([r for r in rows if r[0] >= hours - 1.0])
print(f"| figure ({channels} channels, {hours:g} h) | first hour | last hour | last/first |")
print("|---|---:|---:|---:|")
for k in first:
    a, b = first[k], last[k]
    print(f"| {k} | {a:.1f} | {b:.1f} | {b / a if a else float('nan'):.2f} |")
print(f"\ncheckpoint per 1000 channels (max): {last['checkpoint MB (max)'] * 1000 / channels:.2f} MB")

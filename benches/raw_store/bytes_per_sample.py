#!/usr/bin/env python3
"""Bytes per sample of the raw-packet sample codec on REAL data.

How to run (from the repository root, with the project's Python venv,
`scripts/pyenv`, which has ObsPy, NumPy, pandas, ioos_qc and pyarrow for the
USGS parquet files):

    /root/.cache/fakopp/venv/bin/python benches/raw_store/bytes_per_sample.py \
        [--json OUT.json] [--packet 100] [--explore] [--work DIR] [--no-build]

It builds the measuring binary once (`cargo build --release -p
fakopp-kernels --example pack_size`, a no-op when up to date; `--no-build`
skips it), writes every series as little-endian f64 files under DIR (default:
a temporary folder, removed at the end), runs
`target/release/examples/pack_size` on them (packets of `--packet` samples,
a missing reading ends a packet; every packet is checked to decode to the
same bits), writes the same samples as MiniSEED with ObsPy (Steim-2, 512- and
4096-byte records, for integer series; FLOAT64 and Steim-2 of the scaled
integers m = x * 10^d for the others), and prints a Markdown table. With
`--json OUT` it also writes everything measured to OUT. `--explore` adds a
second table from the binary's bit-cost model: where the bytes of the
Int/Decimal packets go and what some layout changes would give.

Data (all real, all from PyPI packages; nothing from outside the
registries):

* ObsPy 1.5.1 wheel, `obspy/signal/tests/data/BW.UH{1,2,3}._.SHZ.D.2010.147.
  cut.slist.gz` (50 Hz) and `BW.UH4._.EHZ.D.2010.147.cut.slist.gz` (100 Hz):
  Unterhaching (Bavaria) short-period stations, 2010-05-27, 230 s with a
  local event. UH1-3 are integer counts; UH4's file holds FLOAT values with
  6 decimals (not counts), so it is a non-integer series here.
* ObsPy wheel, `obspy/signal/tests/data/CRLZ.HHZ.10.NZ.SAC`: GeoNet station
  CRLZ, HHZ (broadband velocity, 100 Hz), 2009-09-04, 327.68 s of integer
  counts: ~230 s of ocean microseism noise, then an earthquake arrival.
  Chosen as the 100 Hz broadband file: among the wheel's test files it is the
  longest 100 Hz broadband trace of raw integer counts (of the others at
  100 Hz: WIN/DMX/SEISAN files of 60-120 s, the Y-format file below, and
  `CRLZ...SAC_resp`, the same trace instrument-corrected, not counts).
* ObsPy wheel, `obspy/io/y/tests/data/YAYT_BHZ_20021223.124800`: station
  AYT, BHZ at 100 Hz, 180 s of integer counts (a second 100 Hz file).
* gensor 0.4.1 wheel (MIT), `gensor/testdata/PB01A_moni_AV319_...csv` and
  `PB02A_plain.csv`: Van Essen Diver logger, hourly pressure head (cmH2O, 3
  decimals: a groundwater-level series) and water temperature, 2020-07 ..
  2022-03, read by `gensor_frames()` of kernels/tests/oracle/qc.py (imported).
* hydrofunctions 0.2.4 sdist (MIT), `docs/notebooks/*.parquet`: USGS NWIS
  instantaneous values (public domain) saved by its documentation notebooks:
  `view-example.parquet`: site 01650800 (Sligo Creek near Takoma Park, MD),
  pH (parameter 00400) and specific conductance (00095, uS/cm at 25 C),
  5-min, 2019-05-01 .. 06-01; `graphing-2.parquet`: site 01581752, specific
  conductance, 5-min, 2016-2018 (3 years); `groundwater.parquet`: two wells,
  depth to water below land surface (72019, ft), 15-min, 2018-01. Readings
  hydrofunctions marked `hf.missing` (filled in by it) are missing readings
  here (NaN); `hf.upsampled` rows (it doubled a 30-min well to 15-min) are
  dropped.

The wheels/sdists are fetched once with `pip download --no-deps` into
$FAKOPP_ORACLE_CACHE (default ~/.cache/fakopp/oracle-data), as qc.py does.

Sizes: codec = the blobs `pack::encode` returns, CRC included (what the
`raw_packets.data` column holds); list<double> = 4 + 12 n per packet (CQL
list serialisation); float64 = 8 n; MiniSEED = file bytes (fixed-length
records, headers, padding of each series' last record, one segment per
run of readings between missing ones) / samples.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")
import obspy  # noqa: E402
from obspy import Stream, Trace, UTCDateTime  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "examples" / "pack_size"
OBSPY = Path(obspy.__file__).parent
HYDROFUNCTIONS = "hydrofunctions==0.2.4"


def series_obspy():
    out = []
    for sta, cha, note in [
        ("UH1", "SHZ", "50 Hz short-period"),
        ("UH2", "SHZ", "50 Hz short-period"),
        ("UH3", "SHZ", "50 Hz short-period"),
        ("UH4", "EHZ", "100 Hz; the file holds FLOAT values, not counts"),
    ]:
        rel = f"signal/tests/data/BW.{sta}._.{cha}.D.2010.147.cut.slist.gz"
        tr = obspy.read(str(OBSPY / rel))[0]
        out.append(dict(name=f"BW.{sta}..{cha}", kind="seismic", source=f"obspy {obspy.__version__}: {rel}",
                        note=note, sampling_rate=tr.stats.sampling_rate, values=tr.data.astype(np.float64)))
    for rel, name, note in [
        ("signal/tests/data/CRLZ.HHZ.10.NZ.SAC", "NZ.CRLZ.10.HHZ", "100 Hz broadband, microseism noise + event"),
        ("io/y/tests/data/YAYT_BHZ_20021223.124800", ".AYT..BHZ", "100 Hz"),
    ]:
        tr = obspy.read(str(OBSPY / rel))[0]
        out.append(dict(name=name, kind="seismic", source=f"obspy {obspy.__version__}: {rel}", note=note,
                        sampling_rate=tr.stats.sampling_rate, values=tr.data.astype(np.float64)))
    return out


def series_gensor():
    sys.path.insert(0, str(ROOT / "kernels" / "tests" / "oracle"))
    from qc import gensor_frames  # noqa: PLC0415 (reuses the project's fetch of the real logger data)

    out = []
    for well, df in gensor_frames().items():
        for col, what in [("pressure_cmh2o", "groundwater pressure head, cmH2O"), ("temperature_c", "water temperature, C")]:
            out.append(dict(name=f"gensor {well} {col}", kind="environmental",
                            source=f"gensor 0.4.1 wheel: gensor/testdata ({well})", note=f"hourly Diver logger, {what}",
                            sampling_rate=1 / 3600, values=df[col].to_numpy(np.float64)))
    return out


def series_usgs():
    import pandas as pd  # noqa: PLC0415

    sys.path.insert(0, str(ROOT / "kernels" / "tests" / "oracle"))
    from qc import fetch_sdist  # noqa: PLC0415 (the project's fetch of real data shipped in PyPI packages)

    sdist = fetch_sdist(HYDROFUNCTIONS)
    out = []
    with tarfile.open(sdist) as t:
        def frame(nb):
            f = t.extractfile(f"hydrofunctions-0.2.4/docs/notebooks/{nb}")
            try:
                return pd.read_parquet(f)
            except ImportError as e:
                sys.exit(f"bytes_per_sample.py: reading parquet needs pyarrow (pip install pyarrow): {e}")

        picks = [
            ("view-example.parquet", "USGS:01650800:00400:00000", "USGS 01650800 pH", "pH, 5-min, 2019-05"),
            ("view-example.parquet", "USGS:01650800:00095:00000", "USGS 01650800 conductance",
             "specific conductance uS/cm, 5-min, 2019-05"),
            ("graphing-2.parquet", "USGS:01581752:00095:00000", "USGS 01581752 conductance",
             "specific conductance uS/cm, 5-min, 2016-2018"),
            ("groundwater.parquet", "USGS:380616075380701:72019:00000", "USGS 380616075380701 GW depth",
             "depth to water ft, 15-min, 2018-01"),
            ("groundwater.parquet", "USGS:394008077005601:72019:00000", "USGS 394008077005601 GW depth",
             "depth to water ft, 30-min (15-min upsampled rows dropped), 2018-01"),
        ]
        frames = {}
        for nb, col, name, note in picks:
            df = frames.setdefault(nb, frame(nb))
            q = df[col + "_qualifiers"].astype(str)
            v = df[col].to_numpy(np.float64).copy()
            keep = ~q.str.contains("hf.upsampled").to_numpy()
            v[q.str.contains("hf.missing").to_numpy()] = np.nan
            v = v[keep]
            step = np.median(np.diff(df.index[keep].asi8)) / 1e9
            out.append(dict(name=name, kind="environmental", source=f"{HYDROFUNCTIONS} sdist: docs/notebooks/{nb} [{col}]",
                            note=note, sampling_rate=1 / step, values=v))
    return out


def decimals(x):
    """Smallest d in 0..9 with every value exactly round(x * 10^d) / 10^d (as the codec tests), or None."""
    for d in range(10):
        s = 10.0 ** d
        m = np.round(x * s)
        if np.all(np.abs(m) <= 2.0 ** 53) and np.array_equal(m / s if d else m, x):
            return d
    return None


def runs(x):
    """(start index, values) of each run of readings between NaNs."""
    ok = np.isfinite(x)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    return [(a, x[a:b]) for a, b in zip(edges[::2], edges[1::2])]


def mseed_bytes(values, sampling_rate, encoding, reclen, work, tag):
    """File bytes of the series as MiniSEED (one trace per run of readings)."""
    st = Stream()
    t0 = UTCDateTime(2020, 1, 1)
    for a, v in runs(values):
        tr = Trace(data=np.ascontiguousarray(v), header=dict(network="XX", station="PACK", channel="HHZ",
                                                             sampling_rate=sampling_rate, starttime=t0 + a / sampling_rate))
        st.append(tr)
    path = work / f"{tag}.{encoding}.{reclen}.mseed"
    st.write(str(path), format="MSEED", encoding=encoding, reclen=reclen)
    n = path.stat().st_size
    back = obspy.read(str(path))
    got = np.concatenate([tr.data for tr in back]).astype(np.float64)
    want = np.concatenate([v for _, v in runs(values)]).astype(np.float64)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), f"{path}: MiniSEED did not round-trip"
    return n


def steim2_bytes(ints, sampling_rate, reclen, work, tag):
    """Steim-2 file bytes, or a reason it cannot hold these integers."""
    fin = ints[np.isfinite(ints)]
    if fin.size and (np.abs(fin).max() > 2**31 - 1):
        return f"n/a (|m| up to {np.abs(fin).max():.3g} > 2^31)"
    for _, v in runs(ints):
        d = np.diff(v)
        if d.size and np.abs(d).max() >= 2**29:
            return "n/a (differences beyond Steim-2's 30 bits)"
    return mseed_bytes_int(ints, sampling_rate, reclen, work, f"{tag}.scaled")


def mseed_bytes_int(ints, sampling_rate, reclen, work, tag):
    """Steim-2 file bytes of an integer-valued series (one trace per run of readings)."""
    st = Stream()
    t0 = UTCDateTime(2020, 1, 1)
    for a, v in runs(ints):
        st.append(Trace(data=v.astype(np.int32), header=dict(network="XX", station="PACK", channel="HHZ",
                                                             sampling_rate=sampling_rate, starttime=t0 + a / sampling_rate)))
    path = work / f"{tag}.STEIM2.{reclen}.mseed"
    st.write(str(path), format="MSEED", encoding="STEIM2", reclen=reclen)
    back = np.concatenate([tr.data for tr in obspy.read(str(path))])
    want = np.concatenate([v for _, v in runs(ints)]).astype(np.int64)
    assert np.array_equal(back.astype(np.int64), want), f"{path}: Steim-2 did not round-trip"
    return path.stat().st_size


def full_record_rate(path, reclen, sampling_rate):
    """Bytes per sample of the records that are not the last of their segment (no end padding):
    what Steim-2 costs on an endless stream. Start time and sample count from each record's fixed
    header (big-endian, as ObsPy writes)."""
    data = Path(path).read_bytes()
    recs = []
    for i in range(0, len(data), reclen):
        year, day, hour, minute, sec, _, frac, n = struct.unpack(">HHBBBBHH", data[i + 20:i + 32])
        t = UTCDateTime(year=year, julday=day, hour=hour, minute=minute, second=sec) + frac / 1e4
        recs.append((t, n))
    full = [n for (t, n), (t2, _) in zip(recs, recs[1:]) if abs(t2 - (t + n / sampling_rate)) < 0.5 / sampling_rate]
    return reclen * len(full) / sum(full) if full else None


def build():
    cmd = ["cargo", "build", "--release", "-p", "fakopp-kernels", "--example", "pack_size"]
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="OUT", help="also write all results to this JSON file")
    ap.add_argument("--packet", type=int, default=100, help="samples per packet (default 100)")
    ap.add_argument("--explore", action="store_true", help="also print where the bytes go (bit-cost model)")
    ap.add_argument("--work", metavar="DIR", help="keep the f64 and MiniSEED files here (default: temporary)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build first")
    args = ap.parse_args()
    if not args.no_build:
        build()
    if not BIN.exists():
        sys.exit(f"bytes_per_sample.py: {BIN} missing (build it: cargo build --release -p fakopp-kernels --example pack_size)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fakopp-bps-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        series = series_obspy() + series_gensor() + series_usgs()
        files = []
        for i, s in enumerate(series):
            s["tag"] = f"{i:02d}"
            f = work / f"{s['tag']}.f64"
            np.ascontiguousarray(s["values"], dtype="<f8").tofile(f)
            files.append(str(f))
        cmd = [str(BIN), "--packet", str(args.packet)] + (["--explore"] if args.explore else []) + files
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bytes_per_sample.py: pack_size failed:\n{r.stderr}")
        lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        assert len(lines) == len(series)
        for s, m in zip(series, lines):
            x = s["values"]
            fin = x[np.isfinite(x)]
            s["pack_size"] = m
            s["decimals"] = d = decimals(fin)
            n = m["samples"]
            assert n == fin.size
            sr = s["sampling_rate"]
            if d == 0:
                s["steim2"] = {rl: mseed_bytes_int(x, sr, rl, work, s["tag"]) for rl in (512, 4096)}
                s["steim2_full_records_bytes_per_sample"] = {
                    rl: full_record_rate(work / f"{s['tag']}.STEIM2.{rl}.mseed", rl, sr) for rl in (512, 4096)}
            else:
                s["float64_mseed"] = {rl: mseed_bytes(x, sr, "FLOAT64", rl, work, s["tag"]) for rl in (512, 4096)}
                if d is not None:
                    s["steim2_scaled"] = {rl: steim2_bytes(np.round(x * 10.0**d), sr, rl, work, s["tag"]) for rl in (512, 4096)}
        report(series, args)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def bps(b, n):
    return f"{b / n:.3f}" if isinstance(b, int) else b


def report(series, args):
    print(f"\nBytes per stored sample, packets of up to {args.packet} samples (a missing reading ends a packet).\n")
    print("| series | kind | samples | packets | codec B/sample | list<double> B/sample | float64 B/sample "
          "| Steim-2 512 B/sample | Steim-2 4096 B/sample | codings chosen | goal |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for s in series:
        m = s["pack_size"]
        n = m["samples"]
        codec = m["codec_bytes"] / n
        codings = ", ".join(f"{k} {v}" for k, v in m["codings"].items() if v)
        if "steim2" in s:
            st = [bps(s["steim2"][rl], n) for rl in (512, 4096)]
            best = min(s["steim2"].values()) / n
        else:
            d = s["decimals"]
            st = []
            for rl in (512, 4096):
                cell = f"f64 {bps(s['float64_mseed'][rl], n)}"
                if d is not None:
                    cell += f" / x10^{d} {bps(s['steim2_scaled'][rl], n)}"
                st.append(cell)
            best = None
        if s["kind"] == "seismic":
            if best is None:
                goal = "no lossless Steim-2 to beat"
            else:
                rates = [r for r in s["steim2_full_records_bytes_per_sample"].values() if r]
                full = min(rates) if rates else best
                goal = (f"{'MET' if codec < min(best, full) else 'MISSED'}: {codec / best:.0%} of the smaller "
                        f"Steim-2 file, {codec / full:.0%} of Steim-2's full-record rate {full:.3f}")
        else:
            goal = f"{'MET' if codec <= 3 else 'MISSED'} (<= 3 B)"
        print(f"| {s['name']} | {s['kind']} | {n} | {m['packets']} | {codec:.3f} | {m['list_double_bytes'] / n:.3f} "
              f"| {m['raw_f64_bytes'] / n:.3f} | {st[0]} | {st[1]} | {codings} | {goal} |")
    print("\nSteim-2 holds integers only: for the other series the Steim-2 cells give MiniSEED FLOAT64 (`f64`, "
          "lossless) and Steim-2 of the scaled integers x * 10^d (`x10^d`, lossless only with the scale kept "
          "outside the file, and it needs |x * 10^d| < 2^31 and differences within 30 bits). MiniSEED sizes are "
          "whole files: fixed-length records, one segment per run between missing readings, the last record "
          "of each padded; the seismic goal is also checked against Steim-2's rate in full records "
          "(those not last in their segment: no end padding), the better of 512 and 4096.")
    print("\nSources:")
    for s in series:
        m = s["pack_size"]
        miss = f", {m['missing']} missing readings" if m["missing"] else ""
        x = s["values"]
        negz = int(np.count_nonzero((x == 0) & np.signbit(x)))
        if negz:
            miss += f", {negz} values -0.0 (Steim-2 of scaled integers turns them into +0)"
        d = s["decimals"]
        dec = "integers" if d == 0 else (f"{d} decimal{'s' if d > 1 else ''}" if d is not None else "not short decimals")
        print(f"- {s['name']}: {s['source']} — {s['note']}; {dec}{miss}; "
              f"encode {m['encode_ns_per_sample']:.1f} / decode {m['decode_ns_per_sample']:.1f} ns/sample (rough, 1 thread)")
    if args.explore:
        print("\nWhere the bytes of the Int/Decimal packets go, B/sample (pack_size --explore: a bit-cost model of the "
              "codec, `exact` = it gives the real blob sizes), and the totals of those packets under other layouts:\n")
        alts = None
        for s in series:
            e = s["pack_size"].get("explore")
            if not e or not e["int_decimal_samples"]:
                continue
            if alts is None:
                alts = e["alternatives"]
                print("| series | exact | count+flags | first values | CRC | Rice k | residuals | padding | now | "
                      + " | ".join(a["key"] for a in alts) + " |")
                print("|---|---|" + "---:|" * (7 + len(alts)))
            b = e["bytes_per_sample"]
            print(f"| {s['name']} | {e['model_exact']} | {b['count_varint'] + b['flags']:.3f} | {b['first_values']:.3f} "
                  f"| {b['crc']:.3f} | {b['rice_k']:.3f} | {b['residuals']:.3f} | {b['padding']:.3f} "
                  f"| {e['actual_bytes'] / e['int_decimal_samples']:.3f} | "
                  + " | ".join(f"{a['bytes_per_sample']:.3f}" for a in e["alternatives"]) + " |")
        if alts:
            print("\n" + "\n".join(f"- {a['key']}: {a['what']}" for a in alts))
    if args.json:
        out = []
        for s in series:
            o = {k: v for k, v in s.items() if k not in ("values", "tag")}
            for k in ("steim2", "float64_mseed", "steim2_scaled"):
                if k in o:
                    o[k] = {str(rl): v for rl, v in o[k].items()}
            out.append(o)
        Path(args.json).write_text(json.dumps({"packet": args.packet, "obspy": obspy.__version__, "series": out}, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

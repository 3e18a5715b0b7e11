"""Avro oracle for tests/codec.rs: fastavro's schemaless (single datum)
writer and reader with schemas/sensor_packet.avsc.

Usage: avro_oracle.py SCHEMA.avsc IN.json OUT.json

IN.json:  {"encode": [packet, ...], "decode": ["<hex datum>", ...]}
OUT.json: {"encoded": ["<hex datum>", ...], "decoded": [packet, ...]}

A packet is the SensorPacket as JSON, except that `sample_rate_hz` and each
sample are the 16 hex digits of the IEEE-754 bits (big-endian), so NaN,
infinities and -0.0 pass exactly. A datum that fastavro cannot read, or
that it reads without using every byte, is written as {"error": "..."}.
"""
import io
import json
import struct
import sys

try:
    import fastavro
except ImportError as e:  # the test reports this message
    sys.exit(f"fastavro is not installed in the oracle venv ({e}); re-run scripts/pyenv")


def to_bits(x):
    return struct.pack(">d", x).hex()


def from_bits(h):
    return struct.unpack(">d", bytes.fromhex(h))[0]


def main():
    schema_path, in_path, out_path = sys.argv[1:4]
    with open(schema_path) as f:
        schema = fastavro.parse_schema(json.load(f))
    with open(in_path) as f:
        job = json.load(f)

    encoded = []
    for p in job["encode"]:
        rec = dict(p)
        rec["sample_rate_hz"] = from_bits(p["sample_rate_hz"])
        rec["samples"] = [from_bits(h) for h in p["samples"]]
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, rec)
        encoded.append(buf.getvalue().hex())

    decoded = []
    for h in job["decode"]:
        raw = bytes.fromhex(h)
        buf = io.BytesIO(raw)
        try:
            rec = fastavro.schemaless_reader(buf, schema, None)
        except Exception as e:  # noqa: BLE001 - reported to the test
            decoded.append({"error": f"{type(e).__name__}: {e}"})
            continue
        if buf.tell() != len(raw):
            decoded.append({"error": f"{len(raw) - buf.tell()} trailing bytes"})
            continue
        rec["sample_rate_hz"] = to_bits(rec["sample_rate_hz"])
        rec["samples"] = [to_bits(x) for x in rec["samples"]]
        decoded.append(rec)

    with open(out_path, "w") as f:
        json.dump({"encoded": encoded, "decoded": decoded, "fastavro": fastavro.__version__}, f)


if __name__ == "__main__":
    main()

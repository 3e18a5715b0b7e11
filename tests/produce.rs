//! `fakopp produce` against the real Kafka (scripts/services start kafka):
//! a small synthetic network (Avro) and a small CSV (JSON) are published to
//! fresh topics and consumed back; keys, seq, sample counts, time order
//! and every input sample (exactly once) are checked. Also: a delivery
//! failure exits 1 with the reason, and property values never reach the
//! output.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use fakopp::codec::{decode, PacketFormat};
use fakopp::config::{Config, Mode};
use fakopp::model::{parse_time_ns, SensorPacket, Series};
use fakopp::produce::packets_from_series;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;

fn create_topic(topic: &str, config: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("admin client");
    let mut t = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for (k, v) in config {
        t = t.set(k, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let res = rt
        .block_on(admin.create_topics(&[t], &AdminOptions::new()))
        .expect("create topic: is Kafka running? (scripts/services start kafka)");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

fn config_text(topic: &str, format: &str, extra: &str) -> String {
    format!(
        r#"
[source]
kind = "synthetic"

[kafka]
brokers = "{}"
topic = "{topic}"
format = "{format}"

[synthetic]
seismic_stations = 3
sample_rate_hz = 50.0
duration_s = 21.0
events = 1
groundwater_sensors = 1
ph_sensors = 1
env_days = 0.5
{extra}
"#,
        kafka_brokers()
    )
}

struct Consumed {
    partition: i32,
    key: String,
    packet: SensorPacket,
}

/// Everything in the topic, per partition in offset order; fails unless
/// exactly `n` messages are there.
fn consume_all(topic: &str, format: PacketFormat, n: usize) -> Vec<Consumed> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("fakopp_test_produce"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages consumed from {topic} in 90 s",
            got.len()
        );
        let Some(m) = c.poll(Duration::from_secs(5)) else {
            continue;
        };
        let m = m.expect("kafka consume");
        let key = String::from_utf8(m.key().expect("a key").to_vec()).unwrap();
        let packet = decode(format, m.payload().expect("a payload"))
            .unwrap_or_else(|e| panic!("message {} of {topic}: {e}", m.offset()));
        got.push(Consumed {
            partition: m.partition(),
            key,
            packet,
        });
    }
    let total: i64 = (0..PARTITIONS)
        .map(|p| {
            let (lo, hi) = c
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .unwrap();
            hi - lo
        })
        .sum();
    assert_eq!(total as usize, n, "messages in {topic}");
    got
}

fn bits_eq(a: &SensorPacket, b: &SensorPacket) -> bool {
    a.sensor_id == b.sensor_id
        && a.kind == b.kind
        && a.start_time_ns == b.start_time_ns
        && a.sample_rate_hz.to_bits() == b.sample_rate_hz.to_bits()
        && a.samples.len() == b.samples.len()
        && a.samples
            .iter()
            .zip(&b.samples)
            .all(|(x, y)| x.to_bits() == y.to_bits())
        && a.unit == b.unit
        && a.seq == b.seq
}

/// (sensor, time, value bits) of every sample in the packets.
fn samples_of_packets<'a>(ps: impl Iterator<Item = &'a SensorPacket>) -> Vec<(String, i64, u64)> {
    let mut out = Vec::new();
    for p in ps {
        for (i, v) in p.samples.iter().enumerate() {
            let t = if p.sample_rate_hz > 0.0 {
                p.start_time_ns + (i as f64 * 1e9 / p.sample_rate_hz).round() as i64
            } else {
                p.start_time_ns
            };
            out.push((p.sensor_id.clone(), t, v.to_bits()));
        }
    }
    out.sort();
    out
}

/// Checks the stream: keys, per-sensor seq from 0 without holes in
/// partition order, per-sensor and per-partition time order, sizes.
fn check_stream(got: &[Consumed], max_samples: usize) {
    let mut next_seq: BTreeMap<&str, (i64, i64, i32)> = BTreeMap::new();
    let mut last_in_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for c in got {
        let p = &c.packet;
        assert_eq!(c.key, p.sensor_id, "key = sensor_id");
        assert!(
            (1..=max_samples).contains(&p.samples.len()),
            "{} samples",
            p.samples.len()
        );
        if p.sample_rate_hz == 0.0 {
            assert_eq!(p.samples.len(), 1, "rate 0 only for single readings");
        }
        let seq = p.seq.expect("seq is set");
        match next_seq.get_mut(p.sensor_id.as_str()) {
            None => {
                assert_eq!(seq, 0, "{} starts at seq 0", p.sensor_id);
                next_seq.insert(&p.sensor_id, (1, p.start_time_ns, c.partition));
            }
            Some((want, last_t, part)) => {
                assert_eq!(seq, *want, "{}: seq without holes", p.sensor_id);
                assert!(p.start_time_ns > *last_t, "{}: time order", p.sensor_id);
                assert_eq!(*part, c.partition, "one partition per key");
                *want += 1;
                *last_t = p.start_time_ns;
            }
        }
        let last = last_in_partition.entry(c.partition).or_insert(i64::MIN);
        assert!(
            p.start_time_ns >= *last,
            "partition {}: packets in start-time order",
            c.partition
        );
        *last = p.start_time_ns;
    }
}

fn produce(cfg: &Path, args: &[&str]) -> std::process::Output {
    fakopp()
        .args(["produce", "--config"])
        .arg(cfg)
        .args(args)
        .env("FAKOPP_LOG", "debug")
        .output()
        .unwrap()
}

fn series_samples(series: &[Series]) -> (Vec<(String, i64, u64)>, usize) {
    let mut out = Vec::new();
    let mut non_finite = 0;
    for s in series {
        for seg in &s.segments {
            for (i, v) in seg.samples.iter().enumerate() {
                if v.is_finite() {
                    out.push((
                        s.sensor_id.clone(),
                        seg.time_of(i, s.sample_rate_hz),
                        v.to_bits(),
                    ));
                } else {
                    non_finite += 1;
                }
            }
        }
    }
    out.sort();
    (out, non_finite)
}

#[test]
fn synthetic_network_round_trips_through_kafka_as_avro() {
    let topic = unique("fakopp_test_produce_syn");
    create_topic(&topic, &[]);
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&topic, "avro", "");
    let cfg_path = write_config(dir.path(), "syn.toml", &text);
    let cfg = Config::parse(&text, &cfg_path, Mode::Tooling).unwrap();

    let out = produce(
        &cfg_path,
        &["--synthetic", "--packet-samples", "64", "--rate", "2000"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "produce failed:\n{err}");

    let series = fakopp::source::synthetic::generate(&cfg.synthetic)
        .unwrap()
        .series;
    let expected = packets_from_series(&series, 64);
    let n = expected.len();
    let samples: usize = expected.iter().map(|p| p.samples.len()).sum();
    assert!(n > 50, "{n} packets");
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.starts_with(&format!(
            "fakopp: produced {n} packets ({samples} samples, "
        )) && line.contains(&format!("to topic {topic}"))
            && line.contains("; 0 failures"),
        "final line: {line}\n{err}"
    );
    assert!(
        line.contains("packets/s") && line.contains("samples/s"),
        "{line}"
    );

    let got = consume_all(&topic, PacketFormat::Avro, n);
    check_stream(&got, 64);
    // The very packets packets_from_series makes, each once.
    let mut want: Vec<&SensorPacket> = expected.iter().collect();
    let mut have: Vec<&SensorPacket> = got.iter().map(|c| &c.packet).collect();
    let order = |p: &&SensorPacket| (p.sensor_id.clone(), p.seq);
    want.sort_by_key(order);
    have.sort_by_key(order);
    assert_eq!(want.len(), have.len());
    for (w, h) in want.iter().zip(&have) {
        assert!(bits_eq(w, h), "{w:?}\n{h:?}");
    }
    // Every input sample exactly once; seismic packets are full except
    // each sensor's last.
    let (input, non_finite) = series_samples(&series);
    assert_eq!(non_finite, 0);
    assert_eq!(samples_of_packets(have.iter().copied()), input);
    let rate = cfg.synthetic.sample_rate_hz;
    for c in &got {
        if c.packet.sample_rate_hz == rate {
            let total = (cfg.synthetic.duration_s * rate) as i64;
            let seq = c.packet.seq.unwrap();
            let full = (seq + 1) * 64 <= total;
            assert_eq!(c.packet.samples.len() == 64, full, "{}", c.packet.sensor_id);
        }
    }
    // Several sensors interleave in the stream.
    let sensors: std::collections::BTreeSet<_> = got.iter().map(|c| &c.key).collect();
    assert_eq!(sensors.len(), 5, "{sensors:?}");
}

#[test]
fn csv_readings_round_trip_through_kafka_as_json() {
    let topic = unique("fakopp_test_produce_csv");
    create_topic(&topic, &[]);
    let dir = tempfile::tempdir().unwrap();
    // A regular groundwater logger (60 s) with a missing reading (empty
    // cell) and a missing row, and an irregular pH sonde.
    let rows: Vec<(&str, &str, &str)> = vec![
        ("2024-05-01T00:00:00Z", "EMB.GW01..GWL", "1.25"),
        ("2024-05-01T00:00:00Z", "EMB.X1..PH", "7.01"),
        ("2024-05-01T00:01:00Z", "EMB.GW01..GWL", "1.5"),
        ("2024-05-01T00:02:00Z", "EMB.GW01..GWL", "1.75"),
        ("2024-05-01T00:03:00Z", "EMB.GW01..GWL", "2"),
        ("2024-05-01T00:04:00Z", "EMB.GW01..GWL", ""),
        ("2024-05-01T00:05:00Z", "EMB.GW01..GWL", "2.5"),
        ("2024-05-01T00:06:00Z", "EMB.GW01..GWL", "-0.125"),
        ("2024-05-01T00:07:13Z", "EMB.X1..PH", "7.02"),
        ("2024-05-01T00:08:00Z", "EMB.GW01..GWL", "3.0625"),
        ("2024-05-01T00:09:00Z", "EMB.GW01..GWL", "3.1"),
        ("2024-05-01T00:31:01.5Z", "EMB.X1..PH", "6.99"),
    ];
    let mut csv = String::from("time,sensor,value,unit\n");
    for (t, s, v) in &rows {
        let unit = if s.ends_with("PH") { "pH" } else { "m" };
        csv.push_str(&format!("{t},{s},{v},{unit}\n"));
    }
    let csv_path = dir.path().join("readings.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let text = config_text(&topic, "json", "").replace("kind = \"synthetic\"", "kind = \"files\"");
    let cfg_path = write_config(dir.path(), "csv.toml", &text);

    let out = produce(
        &cfg_path,
        &["--packet-samples", "4", csv_path.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "produce failed:\n{err}");
    // GW: 0..3 (4), 4..6 (3: the empty cell is a reading recorded as
    // missing, published as NaN), 8..9 (2: after the missing row); PH: 3
    // single readings.
    assert!(
        err.contains("fakopp: produced 6 packets (12 samples, ")
            && err.contains("; 0 samples skipped (±inf or no reading); 0 failures"),
        "{err}"
    );
    let got = consume_all(&topic, PacketFormat::Json, 6);
    check_stream(&got, 4);
    let mut want: Vec<(String, i64, u64)> = rows
        .iter()
        .map(|(t, s, v)| {
            (
                s.to_string(),
                parse_time_ns(t).unwrap(),
                v.parse::<f64>().unwrap_or(f64::NAN).to_bits(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(samples_of_packets(got.iter().map(|c| &c.packet)), want);
    let by_sensor = |id: &str| -> Vec<&SensorPacket> {
        got.iter()
            .map(|c| &c.packet)
            .filter(|p| p.sensor_id == id)
            .collect()
    };
    let gw = by_sensor("EMB.GW01..GWL");
    assert_eq!(
        gw.iter().map(|p| p.samples.len()).collect::<Vec<_>>(),
        [4, 3, 2]
    );
    assert!(gw
        .iter()
        .all(|p| p.sample_rate_hz == 1.0 / 60.0 && p.unit == "m"));
    let ph = by_sensor("EMB.X1..PH");
    assert_eq!(ph.len(), 3);
    assert!(ph.iter().all(|p| p.sample_rate_hz == 0.0
        && p.unit == "pH"
        && p.kind == fakopp::model::SensorKind::Ph));
}

#[test]
fn delivery_failure_exits_1_with_the_reason() {
    // The broker refuses record batches over 1 kB on this topic.
    let topic = unique("fakopp_test_produce_fail");
    create_topic(&topic, &[("max.message.bytes", "1024")]);
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&topic, "avro", "");
    let cfg_path = write_config(dir.path(), "fail.toml", &text);
    let out = produce(&cfg_path, &["--synthetic", "--packet-samples", "500"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("were not delivered") && err.contains(&format!("to topic {topic}")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("size"), "the reason: {err}");
}

#[test]
fn property_values_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    // An invalid value: the client cannot be created; the error names the
    // property but not its value. Nothing is sent (no Kafka needed).
    let text = config_text(
        "fakopp_test_never_created",
        "avro",
        "[kafka.properties]\n\"sasl.password\" = \"hunter2-s3cret\"\n\"linger.ms\" = \"s3cret-bogus\"\n",
    );
    let cfg_path = write_config(dir.path(), "secret.toml", &text);
    let out = produce(&cfg_path, &["--synthetic"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`linger.ms`"), "{err}");
    assert!(err.contains("sasl.password"), "keys are logged: {err}");
    assert!(!err.contains("s3cret") && !err.contains("hunter2"), "{err}");

    // The same through kafka.properties_env: the value comes from the
    // environment and is never shown either; an unset variable is named.
    let text = config_text(
        "fakopp_test_never_created",
        "avro",
        "[kafka.properties_env]\n\"linger.ms\" = \"FAKOPP_TEST_LINGER\"\n",
    );
    let env_cfg = write_config(dir.path(), "secret-env.toml", &text);
    let run = |var: Option<&str>| {
        let mut c = fakopp();
        c.args(["produce", "--config"])
            .arg(&env_cfg)
            .arg("--synthetic");
        match var {
            Some(v) => c.env("FAKOPP_TEST_LINGER", v),
            None => c.env_remove("FAKOPP_TEST_LINGER"),
        };
        c.output().unwrap()
    };
    let out = run(Some("s3cret-bogus"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("kafka.properties_env") && err.contains("`linger.ms`"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let out = run(None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`FAKOPP_TEST_LINGER`, which is not set"),
        "{err}"
    );
    // The stream job's consumer reports a bad value the same way.
    let stream = write_config(
        dir.path(),
        "stream-env.toml",
        &format!(
            "[source]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{}\"\n\
             [kafka.properties_env]\n\"fetch.min.bytes\" = \"FAKOPP_TEST_FETCH\"\n\
             [sinks]\nkinds = [\"jsonl\"]\njsonl_path = {:?}\n\
             [checkpoint]\npath = {:?}\n",
            kafka_brokers(),
            dir.path().join("out.jsonl").display().to_string(),
            dir.path().join("ckpt.h5").display().to_string(),
        ),
    );
    let out = fakopp()
        .args(["run", "--exit-when-idle", "5", "--config"])
        .arg(&stream)
        .env("FAKOPP_TEST_FETCH", "s3cret-fetch")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`fetch.min.bytes`: invalid value (not shown)"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    // A property in both places is a configuration error.
    let both = config_text(
        "fakopp_test_never_created",
        "avro",
        "[kafka.properties]\n\"sasl.password\" = \"x\"\n[kafka.properties_env]\n\"sasl.password\" = \"PW\"\n",
    );
    let both = write_config(dir.path(), "both.toml", &both);
    let out = produce(&both, &["--synthetic"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("kafka.properties_env.\"sasl.password\""),
        "{err}"
    );

    // Usage errors: exit 2.
    for args in [
        &["--synthetic", "--packet-samples", "0"][..],
        &["--synthetic", "--packet-samples", "100001"],
        &["--synthetic", "--rate", "0"],
        &["--synthetic", "--speed", "-1"],
        &[],
    ] {
        let out = produce(&cfg_path, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

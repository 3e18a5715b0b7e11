//! The stream job against real Kafka and Cassandra, on 1 and 3 MPI ranks:
//! stream ≡ batch on real recordings sent in shuffled packets, bad packets
//! in the dead-letter topic with their reason, every sample stored raw.

mod common;
use common::*;
use fakopp::config::PacketFormat;
use fakopp::model::SensorPacket;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use scylla::client::session_builder::SessionBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// ObsPy's picker on BW.*, and QC of the logger series.
fn chains() -> String {
    format!("{BW_PICKER}{QC_CHAINS}")
}

const QC_CHAINS: &str = r#"
[[chains]]
name = "temp-qc"
select = ["GS.*"]
steps = [
  { op = "gross_range", fail_span = [-2.0, 40.0], suspect_span = [11.0, 16.0] },
  { op = "spike", suspect_threshold = 0.02, fail_threshold = 0.2 },
  { op = "flat_line", suspect_threshold_s = 7200, fail_threshold_s = 21600, tolerance = 0.005 },
  { op = "stats", window = 86400.0 },
]
[[chains]]
name = "level-qc"
select = ["EMB.*"]
nominal_interval_s = 900.0
steps = [
  { op = "gross_range", fail_span = [0.0, 50.0] },
  { op = "flat_line", suspect_threshold_s = 7200, fail_threshold_s = 14400, tolerance = 0.001 },
  { op = "stats", window = 86400.0 },
]
"#;

struct Job {
    dir: tempfile::TempDir,
    topic: String,
    keyspace: String,
    cfg: PathBuf,
}

fn job(name: &str) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique(name);
    let keyspace = unique("ks");
    let text = format!(
        r#"
[source]
kind = "kafka"
[kafka]
brokers = "{brokers}"
topic = "{topic}"
group = "{topic}_g"
dlq_topic = "{topic}.dlq"
detections_topic = "{topic}.det"
[cassandra]
nodes = ["{node}"]
keyspace = "{keyspace}"
[sinks]
kinds = ["cassandra", "jsonl", "kafka"]
jsonl_path = "{jsonl}"
[checkpoint]
path = "{ckpt}"
[stream]
batch_interval_ms = 200
reorder_window_s = 5.0
{chains}"#,
        chains = chains(),
        brokers = kafka_brokers(),
        node = cassandra_node(),
        jsonl = dir.path().join("stream.jsonl").display(),
        ckpt = dir.path().join("state/ckpt.h5").display(),
    );
    let cfg = write_config(dir.path(), "stream.toml", &text);
    Job {
        dir,
        topic,
        keyspace,
        cfg,
    }
}

/// Real recordings: BW.UH1-4 (MiniSEED) and a real logger series (CSV).
fn real_inputs(dir: &Path) -> Vec<String> {
    let s = dir.join("seismic");
    let q = dir.join("qc");
    run_oracle("batch_oracle.py", &["seismic".as_ref(), s.as_os_str()]);
    run_oracle("batch_oracle.py", &["qc".as_ref(), q.as_os_str()]);
    let mut inputs = Vec::new();
    for d in [&s, &q] {
        let exp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("expected.json")).unwrap()).unwrap();
        inputs.extend(
            exp["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        );
    }
    inputs
}

fn batch_lines(job: &Job, inputs: &[String]) -> Vec<String> {
    let cfg = write_config(
        job.dir.path(),
        "batch.toml",
        &format!("[source]\nkind = \"files\"\n{}", chains()),
    );
    batch_sorted_lines(&cfg, 1, inputs)
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

async fn send(p: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    p.send(
        FutureRecord::to(topic).key(key).payload(payload),
        Duration::from_secs(30),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("delivery");
}

/// Packets of 50 samples; the seismic ones reversed in groups of four per
/// sensor (1.5 s of displacement, inside the 5 s reorder window), all
/// sensors interleaved, and one packet sent twice.
fn shuffled(inputs: &[String]) -> Vec<SensorPacket> {
    shuffled_packets(inputs, 50, |p| p.sample_rate_hz >= 1.0, 7, 40)
}

/// Runs the job to its idle end; its log.
fn run_stream(job: &Job, ranks: usize) -> String {
    let mut c = if ranks == 1 { fakopp() } else { mpirun(ranks) };
    if ranks > 1 {
        // Every exchange split into messages of at most 4 KiB: the split
        // is exercised with the job's real commands and replies.
        c.env("FAKOPP_MPI_MESSAGE_LIMIT", "4096")
            .arg(env!("CARGO_BIN_EXE_fakopp"));
    }
    let out = c
        .args(["run", "--exit-when-idle", "4", "--config"])
        .arg(&job.cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "fakopp run on {ranks} ranks: {err}");
    err
}

/// A per-rank list from the job's summary line, e.g. `raw_packets_by_rank`.
fn summary_by_rank(log: &str, key: &str) -> Vec<f64> {
    let line = log
        .lines()
        .find(|l| l.contains("stream job finished"))
        .unwrap_or_else(|| panic!("no summary: {log}"));
    let at = line
        .find(&format!("{key}=["))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 2..];
    rest[..rest.find(']').unwrap()]
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect()
}

fn stream_lines(job: &Job) -> Vec<String> {
    let text = std::fs::read_to_string(job.dir.path().join("stream.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// The series sent in packets of 10 samples to a fresh topic, through the
/// stream job on one rank: its JSON lines, sorted.
async fn stream_of(job: &Job, series: &[fakopp::model::Series]) -> Vec<String> {
    create_topic(job);
    let prod = producer();
    for p in fakopp::produce::packets_from_series(series, 10) {
        send(
            &prod,
            &job.topic,
            &p.sensor_id,
            &fakopp::codec::encode(PacketFormat::Avro, &p),
        )
        .await;
    }
    run_stream(job, 1);
    stream_lines(job)
}

fn create_topic(job: &Job) {
    let out = fakopp()
        .args(["run", "--exit-when-idle", "0.5", "--config"])
        .arg(&job.cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "creating topics: {}", stderr(&out));
}

async fn stream_equals_batch(ranks: usize) {
    let job = job(&format!("fakopp_test_seq{ranks}"));
    let inputs = real_inputs(job.dir.path());
    let expected = batch_lines(&job, &inputs);
    assert!(
        expected.iter().any(|l| l.contains("\"type\":\"event\""))
            && expected.iter().any(|l| l.contains("\"type\":\"qc\""))
    );

    create_topic(&job);
    let packets = shuffled(&inputs);
    let prod = producer();
    for p in &packets {
        send(
            &prod,
            &job.topic,
            &p.sensor_id,
            &fakopp::codec::encode(PacketFormat::Avro, p),
        )
        .await;
    }
    let log = run_stream(&job, ranks);
    let got = stream_lines(&job);
    assert_eq!(got.len(), expected.len(), "as many results as batch");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }

    // Network events were also published on the detections topic.
    let want_events: Vec<&String> = expected
        .iter()
        .filter(|l| l.contains("\"type\":\"event\""))
        .collect();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("detreader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[&format!("{}.det", job.topic)]).unwrap();
    let mut detections = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while detections.len() < want_events.len() && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            detections.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    detections.sort();
    assert_eq!(
        detections.iter().collect::<Vec<_>>(),
        want_events,
        "detections topic = the events"
    );

    // Every produced sample can be read back from Cassandra.
    let s = SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .unwrap();
    let q = s
        .prepare(format!(
            "SELECT start_time_ns, codec, data FROM {}.raw_packets WHERE sensor_id = ? AND day = ?",
            job.keyspace
        ))
        .await
        .unwrap();
    // As bits: readings recorded as missing (NaN) are stored too.
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
    let mut want: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
    for p in &packets {
        want.insert((p.sensor_id.clone(), p.start_time_ns), bits(&p.samples));
    }
    let mut days: BTreeMap<String, std::collections::BTreeSet<i32>> = BTreeMap::new();
    for (sensor, t) in want.keys() {
        days.entry(sensor.clone())
            .or_default()
            .insert(fakopp::model::day_of(*t));
    }
    let mut found = 0;
    for (sensor, ds) in days {
        for d in ds {
            let rows = s
                .execute_unpaged(&q, (&sensor, d))
                .await
                .unwrap()
                .into_rows_result()
                .unwrap();
            for r in rows.rows::<(i64, i32, Vec<u8>)>().unwrap() {
                let (t, codec, data) = r.unwrap();
                let samples = fakopp_kernels::pack::decode(codec, &data).unwrap();
                assert_eq!(
                    want.get(&(sensor.clone(), t)),
                    Some(&bits(&samples)),
                    "raw packet {sensor} {t}"
                );
                found += 1;
            }
        }
    }
    assert_eq!(found, want.len(), "every packet stored raw exactly once");
    // Each rank stored its own sensors' packets, through its own session.
    let by_rank = summary_by_rank(&log, "raw_packets_by_rank");
    assert_eq!(by_rank.len(), ranks, "{by_rank:?}");
    assert!(
        by_rank.iter().all(|&n| n > 0.0),
        "every rank wrote: {by_rank:?}"
    );
    // The duplicate packet is written again if it came too late to be
    // recognised (the same row: an upsert).
    let writes = by_rank.iter().sum::<f64>() as usize;
    assert!(
        (found..=packets.len()).contains(&writes),
        "{by_rank:?}: {found} rows from {} packets",
        packets.len()
    );
    let rows = summary_by_rank(&log, "rows_by_rank");
    assert!(
        rows.iter().zip(&by_rank).all(|(r, p)| r >= p) && rows.iter().sum::<f64>() > found as f64,
        "results too: {rows:?}"
    );
    // The job accounts for its time: every rank ran chains, and rank 0's
    // serial work per sample is reported.
    let busy = summary_by_rank(&log, "busy_ns_per_sample_by_rank");
    assert!(
        busy.len() == ranks && busy.iter().all(|&b| b > 0.0),
        "{busy:?}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("stream job finished"))
        .unwrap();
    let serial: f64 = line
        .split("rank0_serial_ns_per_sample=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rank0_serial_ns_per_sample: {line}"));
    assert!(serial > 0.0, "{line}");
    s.query_unpaged(format!("DROP KEYSPACE {}", job.keyspace), &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_equals_batch_on_one_rank() {
    stream_equals_batch(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_equals_batch_on_three_ranks() {
    stream_equals_batch(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_go_to_the_dead_letter_topic_with_their_reason() {
    let job = job("fakopp_test_dlq");
    let inputs = real_inputs(job.dir.path());
    let qc_csv: Vec<String> = inputs
        .iter()
        .filter(|i| i.ends_with(".csv"))
        .cloned()
        .collect();
    let expected = batch_lines(&job, &qc_csv);
    create_topic(&job);

    let paths: Vec<PathBuf> = qc_csv.iter().map(PathBuf::from).collect();
    let series = fakopp::source::files::read_inputs(&paths, 15, false)
        .unwrap()
        .series;
    let good = fakopp::produce::packets_from_series(&series, 100);
    let mut inf = good[3].clone();
    inf.samples[1] = f64::INFINITY;
    let mut rate = good[4].clone();
    rate.sample_rate_hz = -5.0;
    let mut id = good[5].clone();
    id.sensor_id = "not a sensor".into();
    let valid = fakopp::codec::encode(PacketFormat::Avro, &good[0]);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("decode", b"\x00\x01garbage".to_vec()),
        ("decode", valid[..valid.len() / 2].to_vec()),
        (
            "decode",
            fakopp::codec::encode(PacketFormat::Json, &good[1]),
        ),
        (
            "non_finite",
            fakopp::codec::encode(PacketFormat::Avro, &inf),
        ),
        (
            "sample_rate",
            fakopp::codec::encode(PacketFormat::Avro, &rate),
        ),
        ("sensor_id", fakopp::codec::encode(PacketFormat::Avro, &id)),
    ];
    let prod = producer();
    let mut sent_bad = 0;
    for (i, p) in good.iter().enumerate() {
        send(
            &prod,
            &job.topic,
            &p.sensor_id,
            &fakopp::codec::encode(PacketFormat::Avro, p),
        )
        .await;
        if i % 10 == 0 && sent_bad < bad.len() {
            send(&prod, &job.topic, "bad", &bad[sent_bad].1).await;
            sent_bad += 1;
        }
        if i == 20 {
            // A re-sent packet and one out of order (within the window's reach
            // for hourly data it is late: stored raw, flagged, not processed).
            send(
                &prod,
                &job.topic,
                &good[20].sensor_id,
                &fakopp::codec::encode(PacketFormat::Avro, &good[20]),
            )
            .await;
        }
    }
    while sent_bad < bad.len() {
        send(&prod, &job.topic, "bad", &bad[sent_bad].1).await;
        sent_bad += 1;
    }
    run_stream(&job, 1);
    assert_eq!(
        stream_lines(&job),
        expected,
        "every good packet processed once"
    );

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("dlqreader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[&format!("{}.dlq", job.topic)]).unwrap();
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dead.len() < bad.len() && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            let h = m.headers().expect("DLQ messages carry headers");
            let header = |k: &str| {
                h.iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).to_string())
            };
            dead.push((
                header("reason_code").unwrap(),
                header("reason").unwrap(),
                m.payload().unwrap().to_vec(),
            ));
        }
    }
    assert_eq!(
        dead.len(),
        bad.len(),
        "every bad packet in the DLQ: {dead:?}"
    );
    for ((code, payload), (got_code, reason, got_payload)) in bad.iter().zip(&dead) {
        assert_eq!(got_code, code, "reason {reason}");
        assert_eq!(got_payload, payload, "original bytes kept");
        assert!(!reason.is_empty());
    }
}

/// The Prometheus endpoint serves the job's counters while it runs.
#[test]
fn metrics_endpoint_serves_prometheus_text() {
    use std::io::{Read, Write};
    let job = job("fakopp_test_metrics");
    create_topic(&job);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = fakopp()
        .args([
            "run",
            "--exit-when-idle",
            "3",
            "--metrics-addr",
            &addr,
            "--config",
        ])
        .arg(&job.cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let body = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "metrics endpoint never came up"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling interval
    };
    assert!(child.wait().unwrap().success());
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for metric in [
        "fakopp_packets_total",
        "fakopp_dead_letters_total",
        "fakopp_consumer_lag",
        "fakopp_batch_latency_ms{quantile=\"0.99\"}",
        "fakopp_rank0_seconds_total{phase=\"exchange\"}",
        "fakopp_rank_busy_seconds_total{rank=\"0\"}",
    ] {
        assert!(body.contains(metric), "{metric} in {body}");
    }
    // CPU per sample = rate(cpu) / rate(samples); by the first scrape the
    // job has started up, which took CPU.
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {body}"))
    };
    assert!(value("fakopp_cpu_seconds_total") > 0.0, "{body}");
}

/// A gap larger than `max_gap_interp_samples` restarts the chains and is
/// recorded as a `time_gap` FAIL under the `assembly` pseudo-chain, in the
/// stream as in batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_gaps_are_recorded_alike_in_stream_and_batch() {
    let job = job("fakopp_test_gap");
    let csv = job.dir.path().join("gap.csv");
    let mut text = String::from("time,GS.GAP1..TEMP\n");
    for h in (0..200).filter(|h| !(50..80).contains(h)) {
        text.push_str(&format!(
            "2024-03-{:02}T{:02}:00:00Z,{}\n",
            1 + h / 24,
            h % 24,
            12.0 + 0.01 * (h % 7) as f64
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let inputs = vec![csv.display().to_string()];
    let expected = batch_lines(&job, &inputs);
    let gaps: Vec<&String> = expected
        .iter()
        .filter(|l| l.contains("\"chain\":\"assembly\""))
        .collect();
    assert_eq!(gaps.len(), 1, "one large gap: {gaps:?}");
    assert!(
        gaps[0].contains("\"time_gap\":4") && gaps[0].contains("\"value\":108000.0"),
        "{}",
        gaps[0]
    );

    let series = fakopp::source::files::read_inputs(&[csv], 15, false)
        .unwrap()
        .series;
    assert_eq!(stream_of(&job, &series).await, expected);
}

/// Irregular readings (a logger whose clock jitters: rate 0) through a
/// chain with `flat_line`, which counts its window in readings: with the
/// chain's `nominal_interval_s` the stream gives what batch gives (batch
/// alone could fall back to the series' median interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irregular_readings_with_a_nominal_interval_equal_batch() {
    let job = job("fakopp_test_irregular");
    let csv = job.dir.path().join("level.csv");
    let mut text = String::from("time,EMB.W1..LVL\n");
    for k in 0..300i64 {
        // 15 min apart with up to ±4 min of jitter; a flat stretch.
        let t = 1_714_521_600 + k * 900 + ((k * 7919) % 481) - 240;
        let v = if (100..130).contains(&k) {
            3.25
        } else {
            3.0 + 0.013 * (k % 11) as f64
        };
        text.push_str(&format!(
            "{},{v}\n",
            fakopp::model::format_time_us(t * 1_000_000_000)
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let inputs = vec![csv.display().to_string()];
    let series = fakopp::source::files::read_inputs(std::slice::from_ref(&csv), 15, false)
        .unwrap()
        .series;
    assert_eq!(series[0].sample_rate_hz, 0.0, "the readings are irregular");
    let expected = batch_lines(&job, &inputs);
    let flat_fails = expected
        .iter()
        .filter(|l| l.contains("\"chain\":\"level-qc\"") && l.contains("\"flat_line\":4"))
        .count();
    assert!(flat_fails > 0, "the flat stretch fails flat_line");
    assert!(!expected
        .iter()
        .any(|l| l.contains("needs a sampling interval")));

    assert_eq!(stream_of(&job, &series).await, expected);
}

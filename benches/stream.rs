//! Issue 5 benchmark: the stream job (`fakopp run`, release build) on this
//! machine with Kafka and Cassandra on the same host, and beside it the
//! ceilings of Kafka alone and Cassandra alone, measured in the same run on
//! the same messages.
//!
//! `cargo bench --bench stream` (see BENCHMARKS.md for the full command).
//! Phases (each bounded in time):
//!
//! 1. **Kafka alone**: a backlog of `STREAM_BENCH_BACKLOG` Avro packets
//!    (100 samples, `STREAM_BENCH_CHANNELS` channels at 100 Hz, noise with
//!    bursts) is produced as fast as possible to a fresh topic, then read
//!    by a bare rdkafka consumer that decodes and validates every packet
//!    (`codec::decode_valid`, what the job does per packet) and nothing
//!    else.
//! 2. **Cassandra alone**: the same packets written to `raw_packets` with
//!    `CassandraSink::write_raw`, in slices of one micro-batch (as the job
//!    writes them), for at most `STREAM_BENCH_CASS_S` seconds.
//! 3. **Pipeline drain**: `fakopp run` (one rank, default rayon threads)
//!    with the p-picker chain and the Cassandra sink, started on the same
//!    backlog topic with a fresh group: the rate at which it consumes *and
//!    writes* a full backlog is its ceiling.
//! 4. **Sustained**: fresh topic, the producer paced at 90 % of the drain
//!    rate for `STREAM_BENCH_SECONDS`; consumer lag (produced − consumed,
//!    from the job's `--metrics-addr`) sampled every second. Bounded = at
//!    the end of production the lag is at most 3 s of input and did not
//!    grow over the last half. The first rate tried is half the drain rate
//!    (`STREAM_BENCH_START_RATE` overrides); if not bounded it is lowered by
//!    30 % and retried (at most 4 rates).
//! 5. **Latency**: fresh topic, paced at half the sustained rate; for every
//!    trigger row the job wrote, latency = Cassandra `writetime()` of the
//!    row − the time the producer handed over the packet holding the sample
//!    that closed the trigger (off_index + 1).
//!
//! Env: STREAM_BENCH_BROKERS (127.0.0.1:9092), STREAM_BENCH_CASSANDRA
//! (127.0.0.1:9042), STREAM_BENCH_CHANNELS (2000), STREAM_BENCH_BACKLOG
//! (100000 packets), STREAM_BENCH_SECONDS (30), STREAM_BENCH_CASS_S (20),
//! STREAM_BENCH_OUT (a Markdown table is written there).

use fakopp::codec::{self, Limits};
use fakopp::config::{Config, Mode, PacketFormat};
use fakopp::model::{SensorKind, SensorPacket};
use fakopp::sink::cassandra::{CassandraSink, RawRow};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PACKET: usize = 100;
const RATE_HZ: f64 = 100.0;
const T0_NS: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Packet `k` of channel `c`: Gaussian-ish noise in integer counts, and a 2.5 s, 5 Hz burst
/// 20x the noise every 20 s of data (first ones 11–16 s in, past the 10 s
/// LTA warm-up), so every channel triggers regularly.
fn packet(net: &str, c: usize, k: u64) -> SensorPacket {
    let mut s =
        (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let shift = 11.0 + (c % 10) as f64 * 0.5;
    let samples = (0..PACKET)
        .map(|i| {
            let t = (k as usize * PACKET + i) as f64 / RATE_HZ;
            let noise = (rnd() + rnd() + rnd()) * 2.0;
            let ph = (t - shift).rem_euclid(20.0);
            let burst = if t >= shift && ph < 2.5 {
                40.0 * (2.0 * std::f64::consts::PI * 5.0 * t).sin()
            } else {
                0.0
            };
            // Integer counts, as digitizers give them (σ ≈ 200 counts).
            ((noise + burst) * 100.0).round()
        })
        .collect();
    SensorPacket {
        sensor_id: format!("{net}.S{c:05}..HHZ"),
        kind: SensorKind::Seismic,
        start_time_ns: T0_NS + (k as i64) * 1_000_000_000,
        sample_rate_hz: RATE_HZ,
        samples,
        unit: "counts".into(),
        seq: Some(k as i64),
    }
}

fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2000000")
        .set("acks", "1")
        .create()
        .expect("Kafka producer")
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, pk: &SensorPacket) {
    let bytes = codec::encode(PacketFormat::Avro, pk);
    let mut rec = BaseRecord::to(topic).key(&pk.sensor_id).payload(&bytes);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                rec = r;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

/// Paces packets at `packets_per_s`, channel after channel, packet index
/// after packet index; calls `each(c, k)` right after handing each over.
#[allow(clippy::too_many_arguments)]
fn produce_paced(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    net: &str,
    channels: usize,
    packets_per_s: f64,
    secs: f64,
    mut tick: impl FnMut(u64),
    mut each: impl FnMut(usize, u64, i64),
) -> u64 {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut last_tick = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let due = (start.elapsed().as_secs_f64() * packets_per_s) as u64;
        while sent < due {
            let (c, k) = ((sent % channels as u64) as usize, sent / channels as u64);
            send(p, topic, &packet(net, c, k));
            each(c, k, now_ns());
            sent += 1;
        }
        let s = start.elapsed().as_secs();
        if s > last_tick {
            last_tick = s;
            tick(sent);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    p.flush(Duration::from_secs(30)).expect("producer flush");
    sent
}

fn config_text(work: &Path, name: &str, brokers: &str, cassandra: &str) -> String {
    format!(
        r#"
[source]
kind = "kafka"
[kafka]
brokers = "{brokers}"
topic = "fakopp.bench.{name}"
group = "fakopp-bench-{name}"
dlq_topic = "fakopp.bench.dlq"
format = "avro"
[cassandra]
nodes = ["{cassandra}"]
keyspace = "fakopp_bench"
replication = "{{'class': 'SimpleStrategy', 'replication_factor': 1}}"
[sinks]
kinds = ["cassandra"]
[checkpoint]
path = "{ck}"
interval_s = 30
[stream]
batch_interval_ms = 500
reorder_window_s = 1.0
max_gap_interp_samples = 15
[[chains]]
name = "p-picker"
select = ["*.*.*.?HZ"]
steps = [
  {{ op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 }},
  {{ op = "recursive_sta_lta", sta = 0.5, lta = 10.0 }},
  {{ op = "trigger", on = 3.5, off = 1.0 }},
]
"#,
        ck = work.join(format!("ckpt-{name}/c.h5")).display()
    )
}

fn write_config(work: &Path, name: &str, brokers: &str, cassandra: &str) -> (PathBuf, Config) {
    let text = config_text(work, name, brokers, cassandra);
    let path = work.join(format!("{name}.toml"));
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::parse(&text, &path, Mode::Stream).expect("bench config");
    (path, cfg)
}

/// `fakopp run` with a metrics endpoint; its log goes to `work/<name>.log`.
struct Job {
    child: Child,
    metrics: String,
}

impl Job {
    fn start(work: &Path, name: &str, cfg: &Path, port: u16, idle_s: f64) -> Job {
        let log = std::fs::File::create(work.join(format!("{name}.log"))).unwrap();
        let metrics = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_fakopp"))
            .args(["run", "--config"])
            .arg(cfg)
            .args(["--metrics-addr", &metrics, "--exit-when-idle"])
            .arg(idle_s.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting fakopp run");
        let job = Job { child, metrics };
        let t = Instant::now();
        while job.scrape().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "metrics endpoint never came up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        job
    }

    /// (packets consumed, micro-batches written).
    fn scrape(&self) -> Option<(u64, u64)> {
        let mut s = std::net::TcpStream::connect(&self.metrics).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let get = |k: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<f64>().ok())
        };
        Some((
            get("fakopp_packets_total ")? as u64,
            get("fakopp_batches_total ")? as u64,
        ))
    }

    fn wait(mut self, limit: Duration) {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "fakopp run failed: {st}");
                return;
            }
            if t.elapsed() > limit {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
                self.child.wait().unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct Report {
    lines: Vec<String>,
}

impl Report {
    fn say(&mut self, s: String) {
        eprintln!("{s}");
        self.lines.push(s);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let brokers: String = env("STREAM_BENCH_BROKERS", "127.0.0.1:9092".to_string());
    let cassandra: String = env("STREAM_BENCH_CASSANDRA", "127.0.0.1:9042".to_string());
    let channels: usize = env("STREAM_BENCH_CHANNELS", 2000);
    let backlog: u64 = env("STREAM_BENCH_BACKLOG", 100_000);
    let secs: f64 = env("STREAM_BENCH_SECONDS", 30.0);
    let cass_s: f64 = env("STREAM_BENCH_CASS_S", 20.0);
    let out: Option<String> = std::env::var("STREAM_BENCH_OUT").ok();
    let run = format!("r{}", now_ns() / 1_000_000 % 100_000_000);
    let work = std::env::temp_dir().join(format!("fakopp-stream-bench-{run}"));
    std::fs::create_dir_all(&work).unwrap();
    let mut rep = Report { lines: Vec::new() };
    let t_all = Instant::now();
    let port0 = 19_500 + (std::process::id() % 400) as u16;
    rep.say(format!(
        "stream bench {run}: {channels} channels, backlog {backlog} packets x {PACKET} samples, paced phases {secs} s; work dir {}",
        work.display()
    ));

    // 1. Kafka alone.
    let (drain_cfg_path, drain_cfg) =
        write_config(&work, &format!("{run}-drain"), &brokers, &cassandra);
    let topic = drain_cfg.kafka.topic.clone();
    fakopp::source::kafka::ensure_topics(
        &drain_cfg.kafka,
        &[&topic, &drain_cfg.kafka.dlq_topic],
        fakopp::startup::Deadline::after_s(60.0),
    )
    .unwrap();
    let prod = producer(&brokers);
    let t = Instant::now();
    for i in 0..backlog {
        let (c, k) = ((i % channels as u64) as usize, i / channels as u64);
        send(&prod, &topic, &packet("BK", c, k));
    }
    prod.flush(Duration::from_secs(120)).unwrap();
    let produce_s = t.elapsed().as_secs_f64();
    rep.say(format!(
        "produce (backlog, unpaced): {backlog} packets in {produce_s:.2} s = {:.0} samples/s",
        (backlog as f64 * PACKET as f64) / produce_s
    ));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("fakopp-bench-kafka-only-{run}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let limits = Limits::from_config(&drain_cfg.stream);
    let (mut got, mut samples) = (0u64, 0u64);
    let mut t_first = None;
    let t = Instant::now();
    while got < backlog && t.elapsed() < Duration::from_secs(120) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            t_first.get_or_insert_with(Instant::now);
            let p =
                codec::decode_valid(PacketFormat::Avro, m.payload().unwrap_or_default(), &limits)
                    .expect("valid packet");
            samples += p.samples.len() as u64;
            got += 1;
        }
    }
    let kafka_s = t_first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    let kafka_rate = samples as f64 / kafka_s;
    rep.say(format!(
        "Kafka alone (consume + Avro decode/validate, 1 thread): {got} packets in {kafka_s:.2} s = {kafka_rate:.0} samples/s"
    ));
    drop(consumer);

    // 2. Cassandra alone.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt
        .block_on(CassandraSink::connect(&drain_cfg.cassandra))
        .expect("Cassandra");
    let slice = 5_000usize; // one micro-batch at 1 M samples/s and 500 ms
    let (mut written, mut wsamples) = (0u64, 0u64);
    let t = Instant::now();
    let mut k0 = 0u64;
    while t.elapsed().as_secs_f64() < cass_s && written < backlog {
        let pk: Vec<SensorPacket> = (0..slice as u64)
            .map(|i| {
                let n = k0 + i;
                packet("CS", (n % channels as u64) as usize, n / channels as u64)
            })
            .collect();
        k0 += slice as u64;
        let rows: Vec<RawRow<'_>> = pk
            .iter()
            .map(|p| RawRow {
                packet: p,
                late: false,
            })
            .collect();
        rt.block_on(sink.write_raw(&rows)).expect("raw insert");
        written += rows.len() as u64;
        wsamples += (rows.len() * PACKET) as u64;
    }
    let cass_secs = t.elapsed().as_secs_f64();
    let cass_rate = wsamples as f64 / cass_secs;
    rep.say(format!(
        "Cassandra alone (raw_packets via CassandraSink::write_raw, {} in flight): {written} packets in {cass_secs:.2} s = {cass_rate:.0} samples/s",
        sink.max_in_flight()
    ));

    // 3. Pipeline drain of the backlog.
    let job = Job::start(&work, &format!("{run}-drain"), &drain_cfg_path, port0, 5.0);
    let t = Instant::now();
    let mut done_at = None;
    let mut first_at = None;
    let mut batches_at_full = None;
    while t.elapsed() < Duration::from_secs(180) {
        let Some((pk, b)) = job.scrape() else { break };
        if pk > 0 {
            first_at.get_or_insert(t.elapsed());
        }
        if pk >= backlog && batches_at_full.is_none() {
            batches_at_full = Some(b);
        }
        if let Some(b0) = batches_at_full {
            if b > b0 {
                done_at = Some(t.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    job.wait(Duration::from_secs(60));
    let drain_s = match (first_at, done_at) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    let drain_rate = backlog as f64 * PACKET as f64 / drain_s;
    rep.say(format!(
        "fakopp run drain (consume, process, write raw + results): {backlog} packets in {drain_s:.2} s = {drain_rate:.0} samples/s"
    ));

    // 4. Sustained rate, paced.
    // A paced producer shares the 2 cores with the job, Kafka and
    // Cassandra, so start well below the drain rate.
    let start: f64 = env("STREAM_BENCH_START_RATE", drain_rate * 0.5);
    let mut rate = (start / 10_000.0).floor().max(1.0) * 10_000.0;
    let mut sustained = None;
    for attempt in 0..4 {
        let name = format!("{run}-sus{attempt}");
        let (cfgp, cfg) = write_config(&work, &name, &brokers, &cassandra);
        fakopp::source::kafka::ensure_topics(
            &cfg.kafka,
            &[&cfg.kafka.topic],
            fakopp::startup::Deadline::after_s(60.0),
        )
        .unwrap();
        let job = Job::start(&work, &name, &cfgp, port0 + 1 + attempt, 3.0);
        let chans = channels.max((rate / RATE_HZ).round() as usize);
        let mut lags: Vec<(u64, i64)> = Vec::new();
        let sent = produce_paced(
            &prod,
            &cfg.kafka.topic,
            &format!("SU{attempt}"),
            chans,
            rate / PACKET as f64,
            secs,
            |sent| {
                if let Some((pk, _)) = job.scrape() {
                    lags.push((sent, sent as i64 - pk as i64));
                }
            },
            |_, _, _| {},
        );
        let end_lag = job
            .scrape()
            .map_or(i64::MAX, |(pk, _)| sent as i64 - pk as i64);
        job.wait(Duration::from_secs(120));
        let per_s = rate / PACKET as f64;
        let half = &lags[lags.len() / 2..];
        let max_first = lags[..lags.len() / 2]
            .iter()
            .map(|l| l.1)
            .max()
            .unwrap_or(0);
        let max_last = half.iter().map(|l| l.1).max().unwrap_or(0);
        let bounded =
            (end_lag as f64) <= 3.0 * per_s && max_last as f64 <= max_first as f64 + per_s;
        rep.say(format!(
            "paced {rate:.0} samples/s ({chans} channels, {secs} s): lag per second {:?}; end lag {end_lag} packets; bounded: {bounded}",
            lags.iter().map(|l| l.1).collect::<Vec<_>>()
        ));
        if bounded {
            sustained = Some(rate);
            break;
        }
        rate = (rate * 0.7 / 10_000.0).floor().max(1.0) * 10_000.0;
    }

    // 5. Latency at half the sustained rate.
    let mut lat_line = "latency: not measured (no sustained rate found)".to_string();
    if let Some(sus) = sustained {
        let half = sus / 2.0;
        let name = format!("{run}-lat");
        let net = "LT";
        let (cfgp, cfg) = write_config(&work, &name, &brokers, &cassandra);
        fakopp::source::kafka::ensure_topics(
            &cfg.kafka,
            &[&cfg.kafka.topic],
            fakopp::startup::Deadline::after_s(60.0),
        )
        .unwrap();
        let job = Job::start(&work, &name, &cfgp, port0 + 10, 3.0);
        let chans = channels.max((half / RATE_HZ).round() as usize);
        // Enough data for warm-up plus a few bursts per channel.
        let data_speed = half / (chans as f64 * RATE_HZ);
        let lat_secs = (45.0 / data_speed).clamp(secs, 120.0);
        let mut produced: HashMap<(usize, u64), i64> = HashMap::new();
        let sent = produce_paced(
            &prod,
            &cfg.kafka.topic,
            net,
            chans,
            half / PACKET as f64,
            lat_secs,
            |_| {},
            |c, k, t| {
                produced.insert((c, k), t);
            },
        );
        job.wait(Duration::from_secs(120));
        let rows = rt
            .block_on(async {
                let q =
                    "SELECT sensor_id, off_index, writetime(peak_cf) FROM fakopp_bench.triggers";
                let res = sink.session().query_unpaged(q, ()).await?;
                let rows = res.into_rows_result()?;
                let v: Vec<(String, i64, i64)> = rows
                    .rows::<(String, i64, i64)>()?
                    .collect::<Result<_, _>>()?;
                anyhow::Ok(v)
            })
            .expect("reading triggers");
        let mut lat: Vec<f64> = rows
            .iter()
            .filter_map(|(s, off, wt)| {
                let c: usize = s
                    .strip_prefix(&format!("{net}.S"))?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()?;
                let k = (*off as u64 + 1) / PACKET as u64;
                let t = produced.get(&(c, k))?;
                Some((wt * 1000 - t) as f64 / 1e9)
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        lat_line = format!(
            "latency at {half:.0} samples/s ({chans} channels, {lat_secs:.0} s, {sent} packets): {} trigger rows; produced → trigger row written p50 {:.3} s, p99 {:.3} s, max {:.3} s",
            lat.len(),
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
    rep.say(lat_line);
    rep.say(format!(
        "summary: Kafka alone {kafka_rate:.0} | Cassandra alone {cass_rate:.0} | fakopp drain {drain_rate:.0} | sustained {} samples/s; bench took {:.0} s",
        sustained.map_or("none".to_string(), |s| format!("{s:.0}")),
        t_all.elapsed().as_secs_f64()
    ));
    if let Some(o) = out {
        std::fs::write(o, rep.lines.join("\n") + "\n").unwrap();
    }
}

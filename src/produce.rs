//! `fakopp produce`: publishes SensorPackets to Kafka from input files or
//! the synthetic network (docs/reference.md, "Command line").
//!
//! Each series is cut into packets of at most N samples (irregular series:
//! one packet per reading, `sample_rate_hz = 0`), numbered per sensor from
//! 0 (`seq`), and all packets are published in start-time order — an
//! interleaved stream as a live network would send it — to `kafka.topic`
//! with key = sensor id, in `kafka.format`. Readings recorded as NaN (an
//! empty CSV cell) are published as NaN: they are observations. Slots of
//! the grid at which no reading was made ([`crate::model::NOT_RECORDED`])
//! and ±∞ (which a consumer rejects, `codec::validate`) are not: packets
//! break there, the stream sees a gap, and they are counted in
//! [`ProduceReport::skipped_samples`].
//!
//! Pacing: `--rate` packets per second, or `--speed` × real time (packet
//! start times), or as fast as possible. The producer is idempotent
//! (`enable.idempotence`), keeps at most [`ProduceArgs::max_in_flight`]
//! messages unacknowledged, and waits for every delivery; any failed
//! delivery makes the run fail, naming the first one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::codec::{self, Limits};
use crate::config::Config;
use crate::model::{SensorPacket, Series};

/// What to publish and how fast.
#[derive(Debug, Clone)]
pub struct ProduceArgs {
    /// Input files (MiniSEED, CSV); when empty and not `synthetic`, the
    /// config's `source.inputs`.
    pub inputs: Vec<PathBuf>,
    /// Publish the synthetic network (`[synthetic]`) instead of files.
    pub synthetic: bool,
    /// Packets per second.
    pub rate: Option<f64>,
    /// Real time × speed, by packet start times.
    pub speed: Option<f64>,
    /// Samples per packet (at most `stream.max_samples_per_packet`).
    pub packet_samples: usize,
    /// Most messages sent but not yet acknowledged.
    pub max_in_flight: usize,
}

impl Default for ProduceArgs {
    fn default() -> Self {
        ProduceArgs {
            inputs: Vec::new(),
            synthetic: false,
            rate: None,
            speed: None,
            packet_samples: 100,
            max_in_flight: 10_000,
        }
    }
}

/// What a run published.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceReport {
    pub topic: String,
    /// Packets delivered (acknowledged by the brokers).
    pub packets: u64,
    /// Samples in the delivered packets.
    pub samples: u64,
    /// Bytes of message values delivered.
    pub bytes: u64,
    /// Input slots not published: no reading made there, or ±∞.
    pub skipped_samples: u64,
    /// Failed deliveries (a successful run has none).
    pub failures: u64,
    pub elapsed_s: f64,
    pub packets_per_s: f64,
    pub samples_per_s: f64,
}

impl std::fmt::Display for ProduceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "produced {} packets ({} samples, {} bytes) to topic {} in {:.3} s: {:.0} packets/s, \
             {:.0} samples/s; {} samples skipped (±inf or no reading); {} failures",
            self.packets,
            self.samples,
            self.bytes,
            self.topic,
            self.elapsed_s,
            self.packets_per_s,
            self.samples_per_s,
            self.skipped_samples,
            self.failures
        )
    }
}

/// Cuts series into packets of at most `n` samples, numbers them per
/// sensor from 0 and orders all of them by start time (ties keep the
/// series order). Regular segments are cut into runs of finite samples
/// (non-finite ones are left out), then into packets of `n`; irregular
/// series (rate 0 or per-sample times) give one packet per finite reading
/// with `sample_rate_hz = 0`.
///
/// # Panics
/// If `n` is 0.
pub fn packets_from_series(series: &[Series], n: usize) -> Vec<SensorPacket> {
    assert!(n >= 1, "packets need at least one sample");
    let mut out = Vec::new();
    for s in series {
        let mut seq = 0i64;
        let mut push = |start_time_ns, sample_rate_hz, samples: &[f64]| {
            out.push(SensorPacket {
                sensor_id: s.sensor_id.clone(),
                kind: s.kind,
                start_time_ns,
                sample_rate_hz,
                samples: samples.to_vec(),
                unit: s.unit.clone(),
                seq: Some(seq),
            });
            seq += 1;
        };
        let regular = s.sample_rate_hz.is_finite() && s.sample_rate_hz > 0.0;
        for seg in &s.segments {
            let x = &seg.samples;
            if regular && seg.times_ns.is_empty() {
                let mut i = 0;
                while i < x.len() {
                    if !publishable(x[i]) {
                        i += 1;
                        continue;
                    }
                    let end = x[i..]
                        .iter()
                        .position(|&v| !publishable(v))
                        .map_or(x.len(), |k| i + k);
                    for a in (i..end).step_by(n) {
                        let b = (a + n).min(end);
                        push(seg.time_of(a, s.sample_rate_hz), s.sample_rate_hz, &x[a..b]);
                    }
                    i = end;
                }
            } else {
                for (i, v) in x.iter().enumerate() {
                    if publishable(*v) {
                        let t = seg.times_ns.get(i).copied().unwrap_or(seg.start_ns);
                        push(t, 0.0, std::slice::from_ref(v));
                    }
                }
            }
        }
    }
    out.sort_by_key(|p| p.start_time_ns);
    out
}

/// A reading a packet can carry: finite, or recorded as NaN.
fn publishable(v: f64) -> bool {
    crate::model::is_recorded(v) && !v.is_infinite()
}

/// Delivery bookkeeping shared with librdkafka's callback thread.
#[derive(Default)]
struct Tally {
    delivered: u64,
    delivered_samples: u64,
    delivered_bytes: u64,
    failed: u64,
    /// (packet index, error) of the first failure.
    first_failure: Option<(usize, KafkaError)>,
}

struct Ctx {
    /// Samples of each packet, by index (the delivery opaque).
    sample_counts: Vec<u32>,
    tally: Mutex<Tally>,
    changed: Condvar,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(m) => {
                t.delivered += 1;
                t.delivered_samples += u64::from(self.sample_counts[index]);
                t.delivered_bytes += m.payload_len() as u64;
            }
            Err((e, _)) => {
                t.failed += 1;
                t.first_failure.get_or_insert_with(|| (index, e.clone()));
            }
        }
        self.changed.notify_all();
    }
}

fn load_series(cfg: &Config, args: &ProduceArgs) -> anyhow::Result<Vec<Series>> {
    if args.synthetic {
        return Ok(crate::source::synthetic::generate(&cfg.synthetic)?.series);
    }
    let inputs = if args.inputs.is_empty() {
        &cfg.source.inputs
    } else {
        &args.inputs
    };
    if inputs.is_empty() {
        bail!("nothing to produce: give input files or --synthetic");
    }
    // No interpolation: the data are replayed as recorded; the stream job
    // handles gaps itself.
    Ok(crate::source::files::read_inputs(inputs, 0, false)?.series)
}

/// Publishes the packets of `args` to `kafka.topic`; returns when every
/// message is acknowledged. Any failed delivery is an error naming the
/// first one (after the rest were waited for).
pub fn run(cfg: &Config, args: ProduceArgs) -> anyhow::Result<ProduceReport> {
    let n = args.packet_samples;
    let max = cfg.stream.max_samples_per_packet;
    if n == 0 || n > max {
        bail!("--packet-samples {n}: must be 1 to {max} (stream.max_samples_per_packet)");
    }
    for (name, v) in [("--rate", args.rate), ("--speed", args.speed)] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                bail!("{name} {v}: must be a finite number > 0");
            }
        }
    }
    if args.rate.is_some() && args.speed.is_some() {
        bail!("--rate and --speed exclude each other");
    }
    let series = load_series(cfg, &args)?;
    let total: u64 = series.iter().map(|s| s.sample_count() as u64).sum();
    let packets = packets_from_series(&series, n);
    drop(series);
    let published: u64 = packets.iter().map(|p| p.samples.len() as u64).sum();
    let limits = Limits::from_config(&cfg.stream);
    let mut bad = packets
        .iter()
        .filter_map(|p| codec::validate(p, &limits).err().map(|e| (p, e)));
    if let Some((p, e)) = bad.next() {
        let more = bad.count();
        bail!(
            "packet {} seq {:?} (start {}) would be rejected by consumers ({}): {e}{}",
            p.sensor_id,
            p.seq.unwrap_or_default(),
            crate::model::format_time_us(p.start_time_ns),
            e.code(),
            if more > 0 {
                format!("; {more} more invalid packets")
            } else {
                String::new()
            }
        );
    }

    let topic = cfg.kafka.topic.clone();
    let keys: Vec<&String> = cfg
        .kafka
        .properties
        .keys()
        .chain(cfg.kafka.properties_env.keys())
        .collect();
    tracing::info!(
        brokers = %cfg.kafka.brokers,
        topic = %topic,
        format = ?cfg.kafka.format,
        properties = ?keys,
        packets = packets.len(),
        samples = published,
        "producing"
    );
    let ctx = Ctx {
        sample_counts: packets.iter().map(|p| p.samples.len() as u32).collect(),
        tally: Mutex::new(Tally::default()),
        changed: Condvar::new(),
    };
    let mut cc = crate::source::kafka::client_config(
        &cfg.kafka,
        &[("enable.idempotence", "true"), ("acks", "all")],
    )?;
    cc.set_log_level(RDKafkaLogLevel::Warning);
    let producer: ThreadedProducer<Ctx> =
        crate::source::kafka::create(&cc, ctx, &cfg.kafka, "Kafka producer")?;
    // A new deployment has no topic yet: create it as the stream job does.
    crate::source::kafka::ensure_topics(
        &cfg.kafka,
        &[topic.as_str()],
        crate::startup::Deadline::after_s(cfg.stream.startup_timeout_s),
    )?;
    check_topic(&producer, &topic, &cfg.kafka.brokers)?;

    let window = args.max_in_flight.max(1) as u64;
    let started = Instant::now();
    let t0_ns = packets.first().map_or(0, |p| p.start_time_ns);
    let mut buf = Vec::new();
    let mut sent = 0u64;
    for (i, p) in packets.iter().enumerate() {
        // Pace.
        let due = match (args.rate, args.speed) {
            (Some(r), _) => Some(Duration::from_secs_f64(i as f64 / r)),
            (_, Some(s)) => Some(Duration::from_secs_f64(
                (p.start_time_ns - t0_ns) as f64 / 1e9 / s,
            )),
            _ => None,
        };
        if let Some(wait) = due.and_then(|d| d.checked_sub(started.elapsed())) {
            std::thread::sleep(wait);
        }
        // Bound the unacknowledged messages; stop at the first failure.
        {
            let ctx = producer.context();
            let mut t = ctx.tally.lock().unwrap_or_else(|e| e.into_inner());
            while t.failed == 0 && sent - (t.delivered + t.failed) >= window {
                t = ctx.changed.wait(t).unwrap_or_else(|e| e.into_inner());
            }
            if t.failed > 0 {
                break;
            }
        }
        buf.clear();
        codec::encode_into(cfg.kafka.format, p, &mut buf);
        let mut record = BaseRecord::with_opaque_to(&topic, i)
            .key(p.sensor_id.as_str())
            .payload(buf.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    let ctx = producer.context();
                    let t = ctx.tally.lock().unwrap_or_else(|e| e.into_inner());
                    // Woken by the next delivery; the timeout only guards
                    // against a queue that drains without one.
                    let _ = ctx.changed.wait_timeout(t, Duration::from_millis(50));
                }
                Err((e, _)) => {
                    return Err(anyhow!(e)).with_context(|| {
                        format!("cannot enqueue packet {} seq {:?}", p.sensor_id, p.seq)
                    })
                }
            }
        }
        sent += 1;
    }
    // Wait for every acknowledgement (or failure: message.timeout.ms).
    producer
        .flush(rdkafka::util::Timeout::Never)
        .context("flushing the Kafka producer")?;
    let ctx = producer.context();
    let mut t = ctx.tally.lock().unwrap_or_else(|e| e.into_inner());
    while t.delivered + t.failed < sent {
        t = ctx.changed.wait(t).unwrap_or_else(|e| e.into_inner());
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let delivered_samples = t.delivered_samples;
    let report = ProduceReport {
        topic: topic.clone(),
        packets: t.delivered,
        samples: delivered_samples,
        bytes: t.delivered_bytes,
        skipped_samples: total - published,
        failures: t.failed,
        elapsed_s,
        packets_per_s: t.delivered as f64 / elapsed_s.max(1e-9),
        samples_per_s: delivered_samples as f64 / elapsed_s.max(1e-9),
    };
    tracing::info!(
        topic = %topic,
        packets = report.packets,
        samples = report.samples,
        bytes = report.bytes,
        skipped_samples = report.skipped_samples,
        failures = report.failures,
        elapsed_s = report.elapsed_s,
        packets_per_s = report.packets_per_s,
        samples_per_s = report.samples_per_s,
        "produce finished"
    );
    if let Some((i, e)) = &t.first_failure {
        let p = &packets[*i];
        bail!(
            "{} of {} packets sent to topic {topic} were not delivered (stopped after the first \
             failure; {} of {} packets not sent); first: {} seq {:?}: {e}",
            t.failed,
            sent,
            packets.len() as u64 - sent,
            packets.len(),
            p.sensor_id,
            p.seq.unwrap_or_default()
        );
    }
    Ok(report)
}

/// Fails fast when the brokers cannot be reached or the topic is missing
/// (instead of after `message.timeout.ms`).
fn check_topic(producer: &ThreadedProducer<Ctx>, topic: &str, brokers: &str) -> anyhow::Result<()> {
    let md = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .with_context(|| format!("cannot reach the Kafka brokers {brokers}"))?;
    let errs: BTreeMap<&str, _> = md
        .topics()
        .iter()
        .filter_map(|t| t.error().map(|e| (t.name(), RDKafkaErrorCode::from(e))))
        .collect();
    match errs.get(topic) {
        Some(
            e @ (RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic),
        ) => bail!("Kafka topic {topic} on {brokers}: {e}"),
        _ => Ok(()),
    }
}

//! The Kafka source: a consumer-group member with manual offset commits,
//! and the dead-letter producer. Only rank 0 talks to Kafka.

mod client;
mod login;

pub use client::{client_config, create};

use crate::config::KafkaConfig;
use crate::startup::{self, Attempt, Deadline};
use anyhow::{Context, Result};
use client::{attempt, classify, judge, permanent_code, ATTEMPT_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// The partitions of `topic` once the brokers' metadata lists them all
/// with a leader (just after creation it may not yet).
fn partitions(
    client: &rdkafka::client::Client<impl ClientContext>,
    topic: &str,
) -> Attempt<Vec<i32>> {
    let md = match attempt(client.fetch_metadata(Some(topic), ATTEMPT_TIMEOUT), || {
        "fetching metadata".into()
    }) {
        Attempt::Done(md) => md,
        Attempt::Retry(e) => return Attempt::Retry(e),
        Attempt::Fail(e) => return Attempt::Fail(e),
        Attempt::Refused(e) => return Attempt::Refused(e),
    };
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Attempt::Retry(anyhow::anyhow!("topic {topic} not in the metadata yet"));
    };
    if let Some(e) = t.error() {
        let code = rdkafka::types::RDKafkaErrorCode::from(e);
        return classify(code, anyhow::anyhow!("topic {topic}: {code}"));
    }
    if t.partitions().is_empty() || t.partitions().iter().any(|p| p.leader() < 0) {
        return Attempt::Retry(anyhow::anyhow!(
            "topic {topic} has no partitions with a leader yet"
        ));
    }
    Attempt::Done(t.partitions().iter().map(|p| p.id()).collect())
}

/// The consumer of the packets topic. Rank 0 is the job's only consumer,
/// so it takes every partition itself (no group rebalancing) and starts
/// each at the offset the checkpoint gives — the checkpoint, not the
/// group's committed offset, is the source of truth — else at the group's
/// committed offset, else at the beginning. Offsets are committed to the
/// group too, for monitoring tools. Brokers not reachable or not ready
/// are retried until `deadline`. Returns the consumer and the offset each
/// partition starts at (librdkafka knows no position for a partition
/// until a message of it was read).
pub fn consumer(
    cfg: &KafkaConfig,
    resume: &BTreeMap<i32, i64>,
    deadline: Deadline,
) -> Result<(BaseConsumer, BTreeMap<i32, i64>)> {
    let c = client_config(
        cfg,
        &[
            ("group.id", &cfg.group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ],
    )?;
    let consumer: BaseConsumer = create(&c, DefaultConsumerContext, cfg, "Kafka consumer")?;
    let what = format!("Kafka brokers {} (topic {})", cfg.brokers, cfg.topic);
    let partitions = startup::retry(&what, deadline, || {
        partitions(consumer.client(), &cfg.topic)
    })?;
    let mut wanted = TopicPartitionList::new();
    for &p in &partitions {
        wanted.add_partition(&cfg.topic, p);
    }
    let committed = startup::retry(
        &format!(
            "Kafka group coordinator for {} at {}",
            cfg.group, cfg.brokers
        ),
        deadline,
        || {
            attempt(
                consumer.committed_offsets(wanted.clone(), ATTEMPT_TIMEOUT),
                || "reading the group's committed offsets".into(),
            )
        },
    )?;
    let mut tpl = TopicPartitionList::new();
    let mut start = BTreeMap::new();
    for &p in &partitions {
        let offset = match resume.get(&p) {
            Some(&o) => o,
            None => match committed.find_partition(&cfg.topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => {
                    startup::retry(
                        &format!(
                            "Kafka brokers {} (partition {p} of {})",
                            cfg.brokers, cfg.topic
                        ),
                        deadline,
                        || {
                            attempt(
                                consumer.fetch_watermarks(&cfg.topic, p, ATTEMPT_TIMEOUT),
                                || "reading the partition's first offset".into(),
                            )
                        },
                    )?
                    .0
                }
            },
        };
        start.insert(p, offset);
        tpl.add_partition_offset(&cfg.topic, p, Offset::Offset(offset))?;
    }
    consumer
        .assign(&tpl)
        .with_context(|| format!("assigning the partitions of {}", cfg.topic))?;
    tracing::info!(topic = %cfg.topic, partitions = partitions.len(), from_checkpoint = !resume.is_empty(), "consuming");
    Ok((consumer, start))
}

/// Counts the messages the brokers never took (expired after
/// `message.timeout.ms`, refused): librdkafka reports them only to the
/// delivery callback, and a flush that returns after them is no proof that
/// dead letters and detections arrived. [`flush`] checks it before a commit.
#[derive(Default)]
pub struct Delivery {
    failed: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<String>>,
    /// The job's stop signal: a send waiting for room gives up after
    /// [`SEND_STOP_GRACE`] once it is raised.
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// How long a send may still wait for room in the producer's queue (the
/// brokers are unreachable) after SIGTERM/SIGINT, counted from the signal:
/// then the job stops without committing, instead of hanging past Slurm's
/// kill deadline.
pub const SEND_STOP_GRACE: Duration = Duration::from_secs(20);

impl ClientContext for Delivery {}

impl rdkafka::producer::ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::types::RDKafkaErrorCode::*;
        let Err((e, m)) = r else { return };
        let what = format!("{e} (topic {})", rdkafka::Message::topic(m));
        // Refused for good (too large, not authorised): failing the
        // checkpoint would only fail again after every restart. The
        // original stays in the source topic; the refusal is logged.
        if e.rdkafka_error_code().is_some_and(|c| {
            matches!(
                c,
                MessageSizeTooLarge
                    | InvalidMessageSize
                    | InvalidRecord
                    | TopicAuthorizationFailed
                    | ClusterAuthorizationFailed
            )
        }) {
            tracing::error!("Kafka refused a message for good, not retried: {what}");
            return;
        }
        self.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut last) = self.last.lock() {
            *last = Some(what);
        }
    }
}

/// The stream job's producer (dead letters, detections).
pub type Producer = ThreadedProducer<Delivery>;

/// The job's producer (dead letters, detections); `stop` bounds how long
/// a send waits for room once the job is told to stop.
pub fn producer(
    cfg: &KafkaConfig,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Producer> {
    let c = client_config(cfg, &[("enable.idempotence", "true"), ("linger.ms", "5")])?;
    let ctx = Delivery {
        stop: Some(stop),
        ..Default::default()
    };
    create(&c, ctx, cfg, "Kafka producer")
}

/// Sends a record, waiting for room while librdkafka's local queue is full
/// (the brokers are slow; at least once, never dropped).
pub fn send_waiting<K, P>(producer: &Producer, rec: BaseRecord<'_, K, P>, what: &str) -> Result<()>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let mut rec = rec;
    let mut stopped_at = None;
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                let since = producer
                    .context()
                    .stop
                    .as_ref()
                    .and_then(|s| crate::shutdown::since_signal(s, &mut stopped_at));
                if let Some(since) = since {
                    if since >= SEND_STOP_GRACE {
                        anyhow::bail!(
                            "{what}: the producer's queue stayed full for {} s after the stop signal \
                             (are the brokers reachable?); not committing: a restart sends it again",
                            SEND_STOP_GRACE.as_secs()
                        );
                    }
                }
                producer.poll(Duration::from_millis(50));
                rec = r;
            }
            Err((e, _)) => return Err(e).with_context(|| what.to_string()),
        }
    }
}

/// Commits `positions` (next offset to read, per partition), synchronously.
pub fn commit(consumer: &BaseConsumer, topic: &str, positions: &BTreeMap<i32, i64>) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in positions {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .context("committing Kafka offsets")
}

/// Sends a rejected message to the dead-letter topic with its original key
/// and bytes, and headers saying why and where it came from.
pub fn dead_letter(
    producer: &Producer,
    dlq_topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    reason_code: &str,
    reason: &str,
    origin: (&str, i32, i64),
) -> Result<()> {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "reason_code",
            value: Some(reason_code),
        })
        .insert(Header {
            key: "source_topic",
            value: Some(origin.0),
        })
        .insert(Header {
            key: "source_partition",
            value: Some(&origin.1.to_string()),
        })
        .insert(Header {
            key: "source_offset",
            value: Some(&origin.2.to_string()),
        });
    let mut rec: BaseRecord<'_, [u8], [u8]> =
        BaseRecord::to(dlq_topic).payload(payload).headers(headers);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    send_waiting(producer, rec, "sending to the dead-letter topic")
}

/// Waits until every message produced so far is acknowledged (before a
/// commit: dead letters and detections are at least once). A broker that
/// is slow or failing over is waited for, a warning every attempt; once
/// the job is told to stop, a failed attempt gives up (and so no commit).
pub fn flush(producer: &Producer, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    for attempt in 1u32.. {
        match producer.flush(ATTEMPT_TIMEOUT) {
            Ok(()) => {
                let ctx = producer.context();
                let failed = ctx.failed.swap(0, std::sync::atomic::Ordering::Relaxed);
                if failed > 0 {
                    let last = ctx.last.lock().ok().and_then(|l| l.clone());
                    anyhow::bail!(
                        "{failed} dead letter(s) or detection(s) were not delivered (last: {}); \
                         not committing: a restart sends them again",
                        last.unwrap_or_default()
                    );
                }
                return Ok(());
            }
            Err(e) if stop.load(std::sync::atomic::Ordering::Relaxed) => {
                return Err(e)
                    .context("flushing the Kafka producer (dead letters, detections) at shutdown")
            }
            Err(e) => tracing::warn!(
                attempt,
                in_flight = producer.in_flight_count(),
                "Kafka producer not acknowledged yet ({e}); waiting"
            ),
        }
    }
    unreachable!("the loop returns")
}

/// Messages left to read on `topic`: high watermark − our next offset
/// (`positions`), summed over the assigned partitions; `None` when a
/// broker cannot say.
pub fn lag(consumer: &BaseConsumer, topic: &str, positions: &BTreeMap<i32, i64>) -> Option<i64> {
    let assignment = consumer.assignment().ok()?;
    let mut total = 0;
    for e in assignment.elements_for_topic(topic) {
        let (low, high) = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_secs(5))
            .ok()?;
        // Below the log start (retention removed it) there is nothing left.
        let pos = positions.get(&e.partition()).copied().unwrap_or(0).max(low);
        total += (high - pos).max(0);
    }
    Some(total)
}

/// [`lag`] from librdkafka's last-seen high watermarks (fetch responses),
/// without a broker round trip per partition: the status line's figure,
/// off the critical path. A partition not fetched yet is asked for.
pub fn cached_lag(
    consumer: &BaseConsumer,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Option<i64> {
    let assignment = consumer.assignment().ok()?;
    let mut total = 0;
    for e in assignment.elements_for_topic(topic) {
        let p = e.partition();
        let high = match cached_high_watermark(consumer, topic, p) {
            Some(h) => h,
            None => {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .ok()?
                    .1
            }
        };
        total += (high - positions.get(&p).copied().unwrap_or(0)).max(0);
    }
    Some(total)
}

/// Creates the topics that do not exist yet (broker-default partitions and
/// replication), so a new deployment runs without a manual step, and waits
/// until the brokers' metadata lists every topic's partitions with a
/// leader. Existing topics are left as they are. Brokers not reachable or
/// not ready are retried until `deadline`; a refused login is final.
pub fn ensure_topics(cfg: &KafkaConfig, topics: &[&str], deadline: Deadline) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    login::check_login(cfg, deadline)?;
    let admin: AdminClient<DefaultClientContext> = create(
        &client_config(cfg, &[])?,
        DefaultClientContext,
        cfg,
        "Kafka admin client",
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let what = format!("Kafka brokers {}", cfg.brokers);
    let mut missing: Vec<&str> = topics.to_vec();
    startup::retry(&format!("{what}: creating topics"), deadline, || {
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| NewTopic::new(t, -1, TopicReplication::Fixed(-1)))
            .collect();
        let results = match rt.block_on(admin.create_topics(
            &new,
            &AdminOptions::new().request_timeout(Some(ATTEMPT_TIMEOUT)),
        )) {
            Ok(r) => r,
            Err(e) => return judge(e),
        };
        let mut again = Vec::new();
        let mut last = None;
        for r in results {
            use rdkafka::types::RDKafkaErrorCode as C;
            match r {
                Ok(t) => tracing::info!(topic = %t, "created Kafka topic"),
                Err((_, C::TopicAlreadyExists)) => {}
                Err((t, e)) if permanent_code(e) => {
                    return Attempt::Fail(anyhow::anyhow!("creating Kafka topic {t}: {e}"));
                }
                Err((t, e)) => {
                    last = Some(anyhow::anyhow!("creating Kafka topic {t}: {e}"));
                    again.push(t);
                }
            }
        }
        missing.retain(|m| again.iter().any(|t| t == m));
        match last {
            None => Attempt::Done(()),
            Some(e) => Attempt::Retry(e),
        }
    })?;
    for t in topics {
        startup::retry(&format!("{what}: topic {t}"), deadline, || {
            partitions(admin.inner(), t)
        })?;
    }
    Ok(())
}

/// Watermark alignment: pauses the partitions whose data time (`times`)
/// runs more than `skew_ns` ahead of the slowest partition still being
/// read (`lagging`), and resumes them once it is within; a lagging
/// partition that delivered nothing yet holds every other back. Without
/// it a drained backlog's partitions drift apart in data time, and
/// everything that waits for the slowest (network coincidence, retirement
/// clocks) grows with the drift. `paused` is kept between calls.
pub fn align(
    consumer: &BaseConsumer,
    topic: &str,
    times: &BTreeMap<i32, i64>,
    lagging: &[i32],
    skew_ns: i64,
    paused: &mut std::collections::BTreeSet<i32>,
) -> Result<()> {
    let slowest = lagging
        .iter()
        .filter(|p| !paused.contains(p))
        .map(|p| times.get(p).copied().unwrap_or(i64::MIN))
        .min();
    let Ok(assignment) = consumer.assignment() else {
        return Ok(());
    };
    let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
    for e in assignment.elements_for_topic(topic) {
        let p = e.partition();
        let ahead = match (slowest, times.get(&p)) {
            (Some(s), Some(&t)) => t > s.saturating_add(skew_ns),
            _ => false,
        };
        if ahead && paused.insert(p) {
            pause.add_partition(topic, p);
        } else if !ahead && paused.remove(&p) {
            resume.add_partition(topic, p);
        }
    }
    if pause.count() > 0 {
        consumer.pause(&pause).context("pausing partitions ahead")?;
        tracing::debug!(partitions = ?pause.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "paused: ahead of the slowest partition");
    }
    if resume.count() > 0 {
        consumer.resume(&resume).context("resuming partitions")?;
    }
    Ok(())
}

/// Partitions of `topic` that may still hold messages for us: our next
/// offset is below the high watermark librdkafka last saw (or it has not
/// seen one yet). Uses cached watermarks: no broker round trip.
pub fn lagging_partitions(
    consumer: &BaseConsumer,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Vec<i32> {
    let Ok(assignment) = consumer.assignment() else {
        return Vec::new();
    };
    assignment
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .filter(|&p| match cached_high_watermark(consumer, topic, p) {
            Some(high) => positions.get(&p).copied().unwrap_or(0) < high,
            None => true,
        })
        .collect()
}

/// librdkafka's last-seen high watermark of a partition (from fetch
/// responses), without asking the broker; `None` until one was seen.
fn cached_high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's life; the
    // topic string outlives the call; the out-pointers are valid i64s.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

//! The Kafka source: a consumer-group member with manual offset commits,
//! and the dead-letter producer. Only rank 0 talks to Kafka.

use crate::config::KafkaConfig;
use anyhow::{Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// librdkafka settings: the brokers, our `settings`, then
/// `kafka.properties` (SASL, TLS, ...), which are never logged.
pub fn client_config(cfg: &KafkaConfig, settings: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in settings {
        c.set(*k, *v);
    }
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

pub fn consumer(cfg: &KafkaConfig) -> Result<BaseConsumer> {
    let c = client_config(
        cfg,
        &[
            ("group.id", &cfg.group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
        ],
    );
    let consumer: BaseConsumer = c.create().context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&cfg.topic])
        .with_context(|| format!("subscribing to {}", cfg.topic))?;
    Ok(consumer)
}

pub fn producer(cfg: &KafkaConfig) -> Result<ThreadedProducer<DefaultProducerContext>> {
    client_config(cfg, &[("enable.idempotence", "true"), ("linger.ms", "5")])
        .create()
        .context("creating the Kafka producer")
}

/// Offsets consumed since the last commit: the next offset to read, per
/// partition.
#[derive(Debug, Clone, Default)]
pub struct Offsets(pub BTreeMap<i32, i64>);

impl Offsets {
    pub fn consumed(&mut self, partition: i32, offset: i64) {
        let e = self.0.entry(partition).or_insert(offset + 1);
        *e = (*e).max(offset + 1);
    }

    /// Commits (synchronously) and forgets them.
    pub fn commit(&mut self, consumer: &BaseConsumer, topic: &str) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &self.0 {
            tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .context("committing Kafka offsets")?;
        self.0.clear();
        Ok(())
    }
}

/// Sends a rejected message to the dead-letter topic with its original key
/// and bytes, and headers saying why and where it came from.
pub fn dead_letter(
    producer: &ThreadedProducer<DefaultProducerContext>,
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
    // A full local queue means the broker is slow: wait for room.
    let mut rec = rec;
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                producer.poll(Duration::from_millis(50));
                rec = r;
            }
            Err((e, _)) => return Err(e).context("sending to the dead-letter topic"),
        }
    }
}

/// Waits until every message produced so far is acknowledged.
pub fn flush(producer: &ThreadedProducer<DefaultProducerContext>) -> Result<()> {
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the Kafka producer (dead letters, detections)")
}

/// Total lag of the group on `topic`: high watermark − position, summed
/// over the assigned partitions.
pub fn lag(consumer: &BaseConsumer, topic: &str) -> Option<i64> {
    let assignment = consumer.assignment().ok()?;
    let position = consumer.position().ok()?;
    let mut total = 0;
    for e in assignment.elements_for_topic(topic) {
        let (_, high) = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_millis(500))
            .ok()?;
        let pos = position
            .find_partition(topic, e.partition())
            .and_then(|p| p.offset().to_raw())
            .unwrap_or(0);
        total += (high - pos.max(0)).max(0);
    }
    Some(total)
}

/// Creates the topics that do not exist yet (broker-default partitions and
/// replication), so a new deployment runs without a manual step. Existing
/// topics are left as they are.
pub fn ensure_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = client_config(cfg, &[])
        .create()
        .context("creating the Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, -1, TopicReplication::Fixed(-1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(30))),
        ))
        .with_context(|| format!("cannot reach the Kafka brokers {}", cfg.brokers))?;
    for r in results {
        match r {
            Ok(t) => tracing::info!(topic = %t, "created Kafka topic"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating Kafka topic {t}: {e}"),
        }
    }
    Ok(())
}

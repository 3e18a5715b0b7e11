//! Real Kafka: produce keyed messages, consume them in a consumer group
//! with manual offset commits, and check that a second consumer in the
//! same group resumes after the committed offset.

mod common;
use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use std::time::Duration;

fn consumer(group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

async fn recv_n(c: &StreamConsumer, n: usize) -> Vec<(String, String, i64)> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .expect(
                "timed out waiting for Kafka messages (is Kafka running? scripts/services start)",
            )
            .expect("kafka recv");
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        let val = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
        got.push((key, val, m.offset()));
    }
    got
}

#[tokio::test]
async fn produce_consume_with_manual_commit() {
    let topic = unique("fakopp_test_rt");
    let group = unique("fakopp_test_group");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("admin");
    let res = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic: is Kafka running? (scripts/services start)");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in 0..10 {
        let key = format!("XX.STA{}..HHZ", i % 3);
        let payload = format!("packet-{i}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivery");
    }

    let c1 = consumer(&group);
    c1.subscribe(&[&topic]).unwrap();
    let first = recv_n(&c1, 4).await;
    assert_eq!(
        first.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["packet-0", "packet-1", "packet-2", "packet-3"]
    );
    assert_eq!(first[1].0, "XX.STA1..HHZ");
    // Commit only what was processed: the next offset after packet-3.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(first[3].2 + 1))
        .unwrap();
    c1.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c1);

    // A new member of the group resumes exactly after the commit.
    let c2 = consumer(&group);
    c2.subscribe(&[&topic]).unwrap();
    let rest = recv_n(&c2, 6).await;
    assert_eq!(rest.first().unwrap().1, "packet-4");
    assert_eq!(rest.last().unwrap().1, "packet-9");
    let committed = c2
        .committed(Duration::from_secs(10))
        .expect("committed offsets");
    let off = committed.find_partition(&topic, 0).unwrap().offset();
    assert_eq!(off, rdkafka::Offset::Offset(4));
    admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .expect("delete topic");
}

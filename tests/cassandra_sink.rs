//! Real Cassandra: `CassandraSink` writes raw packets and every result kind
//! with prepared statements, reads them back exactly, rewrites without
//! duplicating, keeps its in-flight limit, reports unreachable nodes,
//! retries transient failures until they succeed or it is cancelled, and
//! fails at once on permanent refusals.
//! Each test uses its own keyspace and drops it at the end.

mod common;
use common::*;
use fakopp::config::CassandraConfig;
use fakopp::model::{day_of, SensorKind, SensorPacket};
use fakopp::output::{EventRec, QcRec, Results, StatsRec, TriggerRec};
use fakopp::sink::cassandra::{
    CassandraSink, PermanentWriteError, QcRow, RawRow, Table, WriteCancelled,
};
use std::collections::BTreeMap;
use std::time::Instant;
use tokio::sync::watch;

/// 2024-05-01T00:00:00Z in ns.
const T0: i64 = 1_714_521_600_000_000_000;
const SEC: i64 = 1_000_000_000;

fn config(keyspace: &str, max_in_flight: usize) -> CassandraConfig {
    CassandraConfig {
        nodes: vec![cassandra_node()],
        keyspace: keyspace.into(),
        max_in_flight,
        ..CassandraConfig::default()
    }
}

async fn sink(keyspace: &str, max_in_flight: usize) -> CassandraSink {
    CassandraSink::connect(&config(keyspace, max_in_flight))
        .await
        .unwrap_or_else(|e| {
            panic!("connect (is Cassandra running? scripts/services start cassandra): {e:#}")
        })
}

/// A keyspace asking for 3 replicas on this single node: its writes are
/// unavailable (a transient refusal) until [`single_replica`].
fn three_replicas(keyspace: &str) -> CassandraConfig {
    CassandraConfig {
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 3}".into(),
        ..config(keyspace, 4)
    }
}

/// Replication 1 for the sink's keyspace, created with 3 on this single
/// node (so that its writes were unavailable until now).
async fn single_replica(s: &CassandraSink) {
    // DDL has no values to bind; the name is a test-made identifier.
    s.session()
        .query_unpaged(
            format!(
                "ALTER KEYSPACE {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
                s.keyspace()
            ),
            &[],
        )
        .await
        .unwrap();
}

async fn drop_keyspace(s: &CassandraSink) {
    // DDL has no values to bind; the name is a test-made identifier.
    s.session()
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", s.keyspace()), &[])
        .await
        .expect("drop keyspace");
}

fn packet(sensor: &str, start_time_ns: i64, n: usize, seq: Option<i64>) -> SensorPacket {
    SensorPacket {
        sensor_id: sensor.into(),
        kind: SensorKind::Seismic,
        start_time_ns,
        sample_rate_hz: 100.0,
        samples: (0..n)
            .map(|i| ((start_time_ns / 1_000_000 + i as i64) as f64 * 0.37).sin() * 1e3)
            .collect(),
        unit: "counts".into(),
        seq,
    }
}

fn results() -> Results {
    let qc_names: Vec<String> = ["gross_range", "spike", "rate_of_change"]
        .map(String::from)
        .to_vec();
    Results {
        triggers: vec![
            TriggerRec {
                chain: "p-picker".into(),
                sensor: "XX.STA1..HHZ".into(),
                on_time_ns: T0 + 3 * SEC + 250_000_000,
                off_time_ns: T0 + 9 * SEC + 120_000_123,
                on_index: 1325,
                off_index: 1912,
                peak_cf: 7.91,
                pick_time_ns: Some(T0 + 3 * SEC + 180_000_001),
            },
            TriggerRec {
                chain: "p-picker".into(),
                sensor: "XX.STA1..HHZ".into(),
                on_time_ns: T0 + 60 * SEC,
                off_time_ns: T0 + 61 * SEC,
                on_index: 6000,
                off_index: 6100,
                peak_cf: 3.5000000000000004,
                pick_time_ns: None,
            },
        ],
        events: vec![EventRec {
            chain: "p-picker".into(),
            time_ns: T0 + 3 * SEC + 250_000_000,
            duration_s: 4.5,
            sensors: vec![
                "XX.STA3..HHZ".into(),
                "XX.STA1..HHZ".into(),
                "XX.STA2..HHZ".into(),
            ],
            coincidence_sum: 3.0,
        }],
        qc: (0..5u64)
            .map(|i| QcRec {
                chain: "ph-qc".into(),
                sensor: "EMB.X1..PH".into(),
                time_ns: T0 + i as i64 * 900 * SEC,
                index: i,
                value: if i == 3 {
                    f64::NAN
                } else {
                    7.0 + 0.01 * i as f64
                },
                flags: if i == 3 {
                    vec![9, 9, 9]
                } else {
                    vec![1, 1 + (i % 3) as u8, 1]
                },
                aggregate: if i == 3 { 9 } else { 1 + (i % 3) as u8 },
            })
            .collect(),
        stats: vec![
            StatsRec {
                chain: "ph-qc".into(),
                sensor: "EMB.X1..PH".into(),
                window_start_ns: T0,
                window_s: 3600.0,
                count: 4,
                gaps: 1,
                min: 7.0,
                max: 7.04,
                mean: 7.016666666666667,
                std: 0.012472191289246,
                rms: 7.016677,
            },
            StatsRec {
                chain: "ph-qc".into(),
                sensor: "EMB.X1..PH".into(),
                window_start_ns: T0 + 3600 * SEC,
                window_s: 3600.0,
                count: 0,
                gaps: 4,
                min: f64::NAN,
                max: f64::NAN,
                mean: f64::NAN,
                std: f64::NAN,
                rms: f64::NAN,
            },
        ],
        traces: vec![],
        problems: vec![],
        qc_tests: vec![("ph-qc".into(), qc_names)],
        stations: vec![fakopp::stations::Station {
            sensor_id: "EMB.X1..PH".into(),
            latitude: 52.62,
            longitude: -1.09,
            elevation: f64::NAN,
            unit: "pH".into(),
            kind: Some(SensorKind::Ph),
        }],
    }
}

/// Bit patterns, so NaN compares equal to NaN.
fn stats_bits(s: &StatsRec) -> (String, String, i64, [u64; 6], u64, u64) {
    (
        s.chain.clone(),
        s.sensor.clone(),
        s.window_start_ns,
        [s.window_s, s.min, s.max, s.mean, s.std, s.rms].map(f64::to_bits),
        s.count,
        s.gaps,
    )
}

async fn counts(s: &CassandraSink) -> Vec<i64> {
    let mut v = Vec::new();
    for t in Table::ALL {
        v.push(s.count_rows(t).await.unwrap());
    }
    v
}

#[tokio::test]
async fn writes_everything_and_reads_it_back_exactly_and_rewrites_idempotently() {
    let ks = unique("fakopp_sink");
    let s = sink(&ks, 8).await;
    let day = day_of(T0);

    // Two sensors, a late packet, a packet on the next UTC day, no seq.
    let packets = [
        packet("XX.STA1..HHZ", T0, 100, Some(1)),
        packet("XX.STA1..HHZ", T0 + SEC, 100, Some(2)),
        packet("XX.STA1..HHZ", T0 + 2 * SEC + 1, 37, None),
        packet("XX.STA2..HHZ", T0 + 5, 100, Some(9)),
        packet("XX.STA1..HHZ", T0 + 86_400 * SEC - 10 * SEC, 100, Some(3)),
        packet("XX.STA1..HHZ", T0 + 86_400 * SEC, 100, Some(4)),
    ];
    let late = [false, false, true, false, false, false];
    let rows: Vec<RawRow> = packets
        .iter()
        .zip(late)
        .map(|(packet, late)| RawRow { packet, late })
        .collect();
    let r = results();
    for round in 0..2 {
        s.write_raw(&rows).await.unwrap();
        s.write_results(&r).await.unwrap();
        assert_eq!(
            counts(&s).await,
            [6, 2, 1, 5, 2, 1],
            "row counts after write #{}",
            round + 1
        );
    }

    // raw_packets, via read_raw and read_raw_packets.
    let got = s.read_raw("XX.STA1..HHZ", day).await.unwrap();
    let want: Vec<(i64, Vec<f64>)> = [0, 1, 2, 4]
        .map(|i| (packets[i].start_time_ns, packets[i].samples.clone()))
        .to_vec();
    assert_eq!(got, want);
    let got = s.read_raw_packets("XX.STA1..HHZ", day).await.unwrap();
    let want: Vec<(SensorPacket, bool)> =
        [0, 1, 2, 4].map(|i| (packets[i].clone(), late[i])).to_vec();
    assert_eq!(got, want);
    let got = s.read_raw_packets("XX.STA1..HHZ", day + 1).await.unwrap();
    assert_eq!(got, vec![(packets[5].clone(), false)]);
    let got = s.read_raw_packets("XX.STA2..HHZ", day).await.unwrap();
    assert_eq!(got, vec![(packets[3].clone(), false)]);

    // The people-facing timestamp column beside start_time_ns (ms).
    let sel = s
        .session()
        .prepare(format!(
            "SELECT start_time FROM {ks}.raw_packets WHERE sensor_id = ? AND day = ? AND start_time_ns = ?"
        ))
        .await
        .unwrap();
    let res = s
        .session()
        .execute_unpaged(&sel, ("XX.STA1..HHZ", day, T0 + 2 * SEC + 1))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let (ts,): (scylla::value::CqlTimestamp,) = res.single_row().unwrap();
    assert_eq!(ts.0, (T0 + 2 * SEC) / 1_000_000);

    // Results.
    let got = s
        .read_triggers("p-picker", "XX.STA1..HHZ", day)
        .await
        .unwrap();
    assert_eq!(got, r.triggers);
    let got = s.read_events("p-picker", day).await.unwrap();
    assert_eq!(got, r.events);
    let got = s.read_qc("ph-qc", "EMB.X1..PH", day).await.unwrap();
    let want: Vec<QcRow> =
        r.qc.iter()
            .map(|q| QcRow {
                chain: q.chain.clone(),
                sensor: q.sensor.clone(),
                time_ns: q.time_ns,
                value: q.value,
                flags: ["gross_range", "spike", "rate_of_change"]
                    .into_iter()
                    .map(String::from)
                    .zip(q.flags.iter().map(|&f| f as i8))
                    .collect::<BTreeMap<_, _>>(),
                aggregate: q.aggregate as i8,
            })
            .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.value.to_bits(), w.value.to_bits(), "{g:?}");
        assert_eq!(
            QcRow {
                value: 0.0,
                ..g.clone()
            },
            QcRow {
                value: 0.0,
                ..w.clone()
            }
        );
    }
    let got = s.read_stats("ph-qc", "EMB.X1..PH", day).await.unwrap();
    assert_eq!(
        got.iter().map(stats_bits).collect::<Vec<_>>(),
        r.stats.iter().map(stats_bits).collect::<Vec<_>>()
    );

    let st = s.stats();
    assert_eq!(st.rows_written, 2 * (6 + 2 + 1 + 5 + 2 + 1));
    assert_eq!(st.retries, 0);
    assert_eq!(st.in_flight, 0);
    assert!(st.last_write_latency.is_some() && st.last_request_latency.is_some());
    drop_keyspace(&s).await;
}

#[tokio::test]
async fn qc_rows_without_test_names_are_refused_before_writing() {
    let ks = unique("fakopp_sink");
    let s = sink(&ks, 4).await;
    let mut r = results();
    r.qc_tests.clear();
    let e = s.write_results(&r).await.unwrap_err();
    assert!(format!("{e:#}").contains("no test names"), "{e:#}");
    r.qc_tests = vec![("ph-qc".into(), vec!["gross_range".into()])];
    let e = s.write_results(&r).await.unwrap_err();
    assert!(format!("{e:#}").contains("has 3 flags"), "{e:#}");
    assert_eq!(counts(&s).await, [0, 0, 0, 0, 0, 0]);
    drop_keyspace(&s).await;
}

#[tokio::test]
async fn five_thousand_packets_with_bounded_concurrency() {
    let ks = unique("fakopp_sink");
    let max_in_flight = 16;
    let s = sink(&ks, max_in_flight).await;
    let sensors: Vec<String> = (0..50).map(|i| format!("XX.S{i:02}..HHZ")).collect();
    // 100 packets of 100 samples (1 s) per sensor, in arrival order.
    let packets: Vec<SensorPacket> = (0..100)
        .flat_map(|k| {
            sensors
                .iter()
                .map(move |id| packet(id, T0 + k * SEC, 100, Some(k)))
        })
        .collect();
    let rows: Vec<RawRow> = packets
        .iter()
        .map(|packet| RawRow {
            packet,
            late: false,
        })
        .collect();
    let t = Instant::now();
    s.write_raw(&rows).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let st = s.stats();
    eprintln!(
        "raw_packets: {} packets of 100 samples in {secs:.2} s = {:.0} rows/s ({} requests, peak {} in flight of {max_in_flight})",
        rows.len(),
        rows.len() as f64 / secs,
        st.requests,
        st.peak_in_flight
    );
    assert_eq!(st.rows_written, 5000);
    assert!(st.peak_in_flight <= max_in_flight, "{st:?}");
    assert_eq!(st.in_flight, 0);
    assert_eq!(s.count_rows(Table::RawPackets).await.unwrap(), 5000);
    let got = s.read_raw("XX.S07..HHZ", day_of(T0)).await.unwrap();
    assert_eq!(got.len(), 100);
    assert!(got
        .iter()
        .enumerate()
        .all(|(k, (t, samples))| *t == T0 + k as i64 * SEC
            && *samples == packet("XX.S07..HHZ", *t, 100, None).samples));
    drop_keyspace(&s).await;
}

#[tokio::test]
async fn connect_to_a_refusing_node_names_the_nodes() {
    let cfg = CassandraConfig {
        nodes: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
        keyspace: "fakopp_unreachable".into(),
        ..CassandraConfig::default()
    };
    let e = match CassandraSink::connect(&cfg).await {
        Ok(_) => panic!("connected to a refusing node"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("cannot connect to Cassandra at 127.0.0.1:1, 127.0.0.1:2"),
        "{e}"
    );
}

/// A write into a dropped keyspace is refused for good: it fails at once
/// with the server's message, nothing retried (a job would hang for ever).
#[tokio::test]
async fn a_write_into_a_dropped_keyspace_fails_at_once() {
    let ks = unique("fakopp_sink");
    let s = sink(&ks, 4).await;
    drop_keyspace(&s).await;
    let p = packet("XX.STA1..HHZ", T0, 100, Some(1));
    let e = s
        .write_raw(&[RawRow {
            packet: &p,
            late: false,
        }])
        .await
        .expect_err("refused");
    let p = e
        .downcast_ref::<PermanentWriteError>()
        .unwrap_or_else(|| panic!("not permanent: {e:#}"));
    assert_eq!(p.table, "raw_packets");
    assert!(p.why.to_lowercase().contains(&ks), "{p}");
    let st = s.stats();
    assert_eq!((st.retries, st.rows_written), (0, 0), "{st:?}");
}

/// A keyspace whose replicas are not all there (replication 3 on one
/// node): writes are unavailable, a transient state, and retried; once
/// the replication is lowered the same call succeeds.
#[tokio::test]
async fn an_unavailable_write_is_retried_until_it_succeeds() {
    let ks = unique("fakopp_sink");
    let cfg = three_replicas(&ks);
    let s = CassandraSink::connect(&cfg).await.unwrap();
    let mut retries = s.retry_watch();
    let writer = s.clone();
    let task = tokio::spawn(async move {
        let p = packet("XX.STA1..HHZ", T0, 100, Some(1));
        writer
            .write_raw(&[RawRow {
                packet: &p,
                late: false,
            }])
            .await
    });
    retries.wait_for(|n| *n >= 2).await.unwrap();
    assert_eq!(s.stats().rows_written, 0);
    assert!(s.stats().last_error.is_some());
    single_replica(&s).await;
    task.await
        .unwrap()
        .expect("the write succeeds once enough replicas are asked for");
    let st = s.stats();
    assert!(st.retries >= 2, "{st:?}");
    assert_eq!(st.rows_written, 1);
    drop_keyspace(&s).await;
}

/// A write that can never succeed (unavailable replicas) retries until
/// the cancellation signal fires, then returns `WriteCancelled` with the
/// retries and last error.
#[tokio::test]
async fn an_endless_retry_stops_at_cancellation() {
    let ks = unique("fakopp_sink");
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let cfg = three_replicas(&ks);
    let s = CassandraSink::connect(&cfg)
        .await
        .unwrap()
        .with_cancel(cancel_rx);

    let mut retries = s.retry_watch();
    let writer = s.clone();
    let task = tokio::spawn(async move { writer.write_results(&results()).await });
    retries.wait_for(|n| *n >= 3).await.unwrap();
    cancel_tx.send(true).unwrap();
    let e = task.await.unwrap().expect_err("cancelled");
    let c = e
        .downcast_ref::<WriteCancelled>()
        .unwrap_or_else(|| panic!("not WriteCancelled: {e:#}"));
    assert!(c.retries >= 3, "{c:?}");
    assert!(
        c.last_error.contains("alive"),
        "unavailable replicas: {c:?}"
    );
    let st = s.stats();
    assert!(st.retries >= 3);
    assert_eq!(st.rows_written, 0);
    assert_eq!(st.in_flight, 0, "cancelled requests are abandoned");

    // While cancelled, calls return at once; re-armed, they write again.
    let e = s.write_results(&results()).await.unwrap_err();
    assert!(e.downcast_ref::<WriteCancelled>().is_some(), "{e:#}");
    cancel_tx.send(false).unwrap();
    single_replica(&s).await;
    s.write_results(&results()).await.unwrap();
    assert_eq!(counts(&s).await, [0, 2, 1, 5, 2, 1]);
    drop_keyspace(&s).await;
}

/// A keyspace made before the `stations` table existed opens for reading
/// (export, batch from the store) as it is; writing stations to it says
/// what to run.
#[tokio::test]
async fn a_keyspace_without_the_stations_table_opens_and_names_the_fix() {
    let ks = unique("fakopp_sink");
    let s = sink(&ks, 4).await;
    // DDL has no values to bind; the name is a test-made identifier.
    s.session()
        .query_unpaged(format!("DROP TABLE {ks}.stations"), &[])
        .await
        .unwrap();
    let old = CassandraSink::open(&config(&ks, 4)).await.unwrap();
    assert_eq!(old.count_rows(Table::Stations).await.unwrap(), 0);
    let mut r = results();
    let e = old.write_results(&r).await.unwrap_err();
    assert!(
        format!("{e:#}").contains("no stations table") && format!("{e:#}").contains("schema apply"),
        "{e:#}"
    );
    r.stations.clear();
    old.write_results(&r).await.unwrap();
    assert_eq!(old.count_rows(Table::QcFlags).await.unwrap(), 5);
    drop_keyspace(&s).await;
}

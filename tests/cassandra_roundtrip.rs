//! Real Cassandra: `fakopp schema apply` creates the keyspace and tables
//! idempotently; rows written with prepared statements read back, and a
//! rewrite with the same key does not duplicate.

mod common;
use common::*;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

fn apply(cfg: &std::path::Path) {
    let out = fakopp()
        .args(["schema", "apply", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schema apply failed (is Cassandra running? scripts/services start): {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn schema_apply_and_prepared_round_trip() {
    let ks = unique("fakopp_test");
    let dir = tempfile::tempdir().unwrap();
    let cfg = cassandra_config(dir.path(), &ks);
    apply(&cfg);
    apply(&cfg); // idempotent

    let s: Session = SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .expect("connect");
    let tables = s
        .prepare("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?")
        .await
        .unwrap();
    let rows = s
        .execute_unpaged(&tables, (&ks,))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let mut names: Vec<String> = rows
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "events",
            "qc_flags",
            "raw_packets",
            "schema_info",
            "stations",
            "triggers",
            "window_stats"
        ]
    );

    let ins = s
        .prepare(format!(
            "INSERT INTO {ks}.raw_packets (sensor_id, day, start_time_ns, kind, unit, sample_rate_hz, seq, late, codec, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .await
        .unwrap();
    let t0: i64 = 1_714_564_800_000_000_000;
    let samples: Vec<f64> = (0..100).map(|i| (i as f64 * 0.1).sin()).collect();
    let (coding, blob) = fakopp_kernels::pack::encode(&samples);
    for _ in 0..2 {
        s.execute_unpaged(
            &ins,
            (
                "XX.STA1..HHZ",
                fakopp::model::day_of(t0),
                t0,
                "seismic",
                "counts",
                100.0f64,
                7i64,
                false,
                coding.id(),
                &blob,
            ),
        )
        .await
        .unwrap();
    }
    let sel = s
        .prepare(format!("SELECT start_time_ns, codec, data, seq FROM {ks}.raw_packets WHERE sensor_id = ? AND day = ?"))
        .await
        .unwrap();
    let rows = s
        .execute_unpaged(&sel, ("XX.STA1..HHZ", fakopp::model::day_of(t0)))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let got: Vec<(i64, i32, Vec<u8>, i64)> = rows.rows().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 1, "the same key written twice is one row");
    assert_eq!(got[0].0, t0);
    assert_eq!(
        fakopp_kernels::pack::decode(got[0].1, &got[0].2).unwrap(),
        samples
    );
    assert_eq!(got[0].3, 7);

    let ev = s
        .prepare(format!("INSERT INTO {ks}.events (chain, day, time_ns, duration_s, sensors, coincidence_sum) VALUES (?, ?, ?, ?, ?, ?)"))
        .await
        .unwrap();
    let sensors = vec!["XX.STA3..HHZ".to_string(), "XX.STA1..HHZ".to_string()];
    s.execute_unpaged(&ev, ("p-picker", 19844i32, t0, 4.5f64, &sensors, 2.0f64))
        .await
        .unwrap();
    let sel = s
        .prepare(format!(
            "SELECT sensors, coincidence_sum FROM {ks}.events WHERE chain = ? AND day = ?"
        ))
        .await
        .unwrap();
    let rows = s
        .execute_unpaged(&sel, ("p-picker", 19844i32))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let got: Vec<(Vec<String>, f64)> = rows.rows().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(got, vec![(sensors, 2.0)]);

    s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

#[test]
fn schema_apply_reports_an_unreachable_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "c.toml",
        "[source]\nkind = \"kafka\"\n[cassandra]\nnodes = [\"127.0.0.1:1\"]\n",
    );
    let out = fakopp()
        .args(["schema", "apply", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot connect to Cassandra at 127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
}

//! A stream job started before its services: Kafka and Cassandra are down
//! when it starts, come up one after the other (a cluster booting), and
//! the job — retrying with a log line per attempt — connects, consumes
//! and writes everything. Its own test binary: it stops the shared
//! services, which no other test may see.

mod common;
use common::*;
use scylla::client::session_builder::SessionBuilder;
use std::time::{Duration, Instant};

const SECTIONS: &str = r#"interval_s = 1.0
[sinks]
kinds = ["cassandra", "jsonl"]
jsonl_path = "{jsonl}"
[stream]
startup_timeout_s = 400.0
[synthetic]
seismic_stations = 4
duration_s = 60.0
events = 1
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_before_its_services_waits_for_them() {
    let _restore = Restore;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_startup");
    let ks = unique("ks_startup");
    let cfg = stream_config(dir.path(), "a", &topic, &ks, SECTIONS);
    services("stop", "all");

    let log = dir.path().join("job.log");
    let mut job = fakopp()
        .args(["run", "--exit-when-idle", "5", "--config"])
        .arg(&cfg)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    await_log(
        &log,
        &["Kafka brokers"],
        2,
        &mut job,
        Duration::from_secs(120),
    );
    // The broker comes up: the job creates its topics, waits for their
    // leaders and the group coordinator, then waits for Cassandra.
    services("start", "kafka");
    await_log(
        &log,
        &["Cassandra at"],
        2,
        &mut job,
        Duration::from_secs(120),
    );
    produce_synthetic(&cfg);
    services("start", "cassandra");

    let t0 = Instant::now();
    let st = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            let _ = job.kill();
            panic!(
                "the job never finished:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50)); // polling interval
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{err}");
    assert!(err.contains("retrying"), "attempts are logged: {err}");
    let s = SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .unwrap();
    let raw = table_rows(&s, &ks, "raw_packets").await;
    assert_eq!(raw.len(), 240, "every packet stored (4 stations × 60 s)");
    let lines = json_lines(&std::fs::read(dir.path().join("a.jsonl")).unwrap());
    assert!(lines.iter().any(|l| l["type"] == "trigger"), "processed");
    s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

//! Faults of the services in the middle of a stream: the Kafka broker
//! restarted (the job reconnects) and Cassandra down for 30 s
//! (consumption pauses, writes retry with backoff, nothing is committed
//! past unwritten results). When they are back the job catches up (lag
//! back to 0) and the tables equal those of an uninterrupted run. Its own
//! test binary: it stops the shared services, which no other test may see.

mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The last lines of a log file.
fn log_tail(log: &Path) -> String {
    let err = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = err.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// A log file for a child's stderr (a pipe nobody reads would fill up and
/// block the child).
fn log_file(dir: &Path, name: &str) -> (std::path::PathBuf, Stdio) {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    (p, Stdio::from(f))
}

/// Waits until the checkpoint file is newer than `since` (the job made
/// progress and wrote a checkpoint).
fn await_checkpoint(ck: &Path, since: std::time::SystemTime, job: &mut std::process::Child) {
    let t0 = Instant::now();
    loop {
        if std::fs::metadata(ck)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > since)
        {
            return;
        }
        assert!(job.try_wait().unwrap().is_none(), "the job ended early");
        assert!(t0.elapsed() < Duration::from_secs(120), "no new checkpoint");
        std::thread::sleep(Duration::from_millis(20)); // polling interval
    }
}

/// Sinks, input and chains of the jobs here (checkpoint every second).
const SECTIONS: &str = r#"interval_s = 1.0
[sinks]
kinds = ["cassandra"]
[synthetic]
seismic_stations = 4
duration_s = 120.0
events = 1
groundwater_sensors = 1
ph_sensors = 1
env_days = 2.0
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
]
[[chains]]
name = "env-qc"
select = ["EMB.*"]
steps = [{ op = "gross_range", fail_span = [-50.0, 14.0] }]
"#;

fn config(dir: &Path, name: &str, topic: &str, keyspace: &str) -> std::path::PathBuf {
    stream_config(dir, name, topic, keyspace, SECTIONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_and_cassandra_outage_lose_nothing() {
    let _restore = Restore;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_outage");
    let (ks_a, ks_b) = (unique("ks_a"), unique("ks_b"));
    let a = config(dir.path(), "a", &topic, &ks_a);
    let b = config(dir.path(), "b", &topic, &ks_b);
    let out = fakopp()
        .args(["run", "--exit-when-idle", "0.5", "--config"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(out.status.success(), "creating topics: {}", stderr(&out));

    // The input arrives over ~25 s while the job runs.
    let mut producer = fakopp()
        .args([
            "produce",
            "--synthetic",
            "--packet-samples",
            "100",
            "--rate",
            "20",
            "--config",
        ])
        .arg(&a)
        .stderr(log_file(dir.path(), "produce.log").1)
        .spawn()
        .unwrap();
    let (job_log, job_stderr) = log_file(dir.path(), "job.log");
    let mut job = fakopp()
        // Idle long enough to outlast a broker restart and its reconnect
        // back-off (librdkafka waits up to 10 s between attempts).
        .args(["run", "--exit-when-idle", "45", "--config"])
        .arg(&b)
        .stderr(job_stderr)
        .spawn()
        .unwrap();
    let ck = dir.path().join("b-state/ckpt.h5");
    let t0 = Instant::now();
    while !ck.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the job never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling interval
    }
    // The broker restarts under the producer and the job.
    services("stop", "kafka");
    let restarted = std::time::SystemTime::now();
    services("start", "kafka");
    await_checkpoint(&ck, restarted, &mut job);

    services("stop", "cassandra");
    let down = Instant::now();
    if let Some(st) = job.try_wait().unwrap() {
        panic!(
            "the job ended ({st}) before the outage:\n{}",
            log_tail(&job_log)
        );
    }
    while down.elapsed() < Duration::from_secs(30) {
        if let Some(st) = job.try_wait().unwrap() {
            panic!(
                "the job exited ({st}) during the outage instead of waiting:\n{}",
                log_tail(&job_log)
            );
        }
        std::thread::sleep(Duration::from_millis(200)); // the outage's length, not a synchronisation
    }
    services("start", "cassandra");
    let status = producer.wait().unwrap();
    assert!(status.success(), "produce failed");
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(240) {
            job.kill().unwrap();
            panic!(
                "the job did not catch up after the outage; last log lines:\n{}",
                log_tail(&job_log)
            );
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval
    };
    let err = std::fs::read_to_string(&job_log).unwrap();
    assert!(
        status.success(),
        "the job ends cleanly after the outage: {err}"
    );
    assert!(
        err.contains("retry") || err.contains("Retry") || err.contains("retrying"),
        "writes were retried: {err}"
    );
    let last_status = err
        .lines()
        .rfind(|l| l.contains(" status "))
        .unwrap_or_default()
        .to_string();
    assert!(
        last_status.contains("lag=0"),
        "lag recovered: {last_status}"
    );

    // The uninterrupted reference, over the same topic.
    let out = fakopp()
        .args(["run", "--exit-when-idle", "4", "--config"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(out.status.success(), "reference run: {}", stderr(&out));
    assert_same_rows_and_drop(
        &ks_b,
        &ks_a,
        &["raw_packets", "triggers", "qc_flags"],
        "after the outage",
    )
    .await;
}

//! Failures of a long-running stream job, classified: permanent Cassandra
//! refusals stop it (exit 1, the server's message); a failed offset commit
//! is retried at the next checkpoint; a failing rank aborts the whole MPI
//! job instead of hanging it; start-up gives up on an unreachable service
//! naming it; `--exit-when-idle` never ends a job with packets left.

mod common;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

fn sections(extra: &str, start: &str) -> String {
    format!(
        r#"interval_s = 1.0
[sinks]
kinds = ["cassandra", "jsonl"]
jsonl_path = "{{jsonl}}"
[stream]
batch_interval_ms = 200
{extra}
[synthetic]
seismic_stations = 4
duration_s = 60.0
events = 1
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
start = "{start}"
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
steps = [
  {{ op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 }},
  {{ op = "recursive_sta_lta", sta = 0.5, lta = 10.0 }},
  {{ op = "trigger", on = 3.5, off = 1.0 }},
]
"#
    )
}

const START: &str = "2024-05-01T12:00:00Z";

/// Waits until `path` exists (the job has processed and checkpointed).
fn await_file(path: &Path, child: &mut Child, log: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "the job ended ({s}) early:\n{}",
                std::fs::read_to_string(log).unwrap()
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20)); // polling interval
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_under_the_job_stops_it_with_the_servers_message() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_perm");
    let ks = unique("ks_perm");
    let cfg = stream_config(dir.path(), "a", &topic, &ks, &sections("", START));
    produce_synthetic(&cfg);
    let log = dir.path().join("job.log");
    // Two ranks: each writes its own sensors' raw packets, so the refusal
    // reaches the job from whichever rank writes first.
    let mut cmd = mpirun(2);
    cmd.arg(env!("CARGO_BIN_EXE_fakopp"))
        .args(["run", "--exit-when-idle", "60", "--config"])
        .arg(&cfg);
    let mut job = spawn_logged(cmd, &log);
    await_file(&dir.path().join("a-state/ckpt.h5"), &mut job, &log);

    let s = scylla::client::session_builder::SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .unwrap();
    s.query_unpaged(format!("DROP TABLE {ks}.raw_packets"), &[])
        .await
        .unwrap();
    // More data, an hour later: its raw packets have nowhere to go.
    let later = stream_config(
        dir.path(),
        "b",
        &topic,
        &ks,
        &sections("", "2024-05-01T13:00:00Z"),
    );
    produce_synthetic(&later);
    let st = wait_bounded(&mut job, Duration::from_secs(120), &log);
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(st.code(), Some(1), "exit 1 on a permanent refusal:\n{err}");
    assert!(err.contains("not retryable"), "{err}");
    assert!(
        err.contains("rank 0: ") || err.contains("rank 1: "),
        "the message names the rank: {err}"
    );
    assert!(
        err.to_lowercase().contains("raw_packets"),
        "the server's message names the table: {err}"
    );
    s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

#[test]
fn failed_offset_commits_are_retried_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_commit");
    let ks = unique("ks_commit");
    let cfg = stream_config(dir.path(), "a", &topic, &ks, &sections("", START));
    produce_synthetic(&cfg);
    // Another member holds the group: the broker refuses commits from a
    // client outside it (UNKNOWN_MEMBER_ID), as after a group takeover.
    let blocker_topic = unique("fakopp_test_commit_other");
    let member: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", format!("{ks}_g"))
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap();
    member.subscribe(&[&blocker_topic, &topic]).unwrap();
    let t0 = Instant::now();
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        member.poll(Duration::from_millis(100));
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the member never joined"
        );
    }
    // It keeps its membership (heartbeats) while the job runs.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let keeper = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            member.poll(Duration::from_millis(100));
        }
    });
    let log = dir.path().join("job.log");
    let mut cmd = fakopp();
    cmd.args(["run", "--exit-when-idle", "3", "--config"])
        .arg(&cfg);
    let mut job = spawn_logged(cmd, &log);
    let st = wait_bounded(&mut job, Duration::from_secs(180), &log);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    keeper.join().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        st.success(),
        "a refused commit does not end the job:\n{err}"
    );
    assert!(
        err.contains("committing Kafka offsets") && err.contains("retried at the next checkpoint"),
        "the refused commit is logged: {err}"
    );
    let lines = json_lines(&std::fs::read(dir.path().join("a.jsonl")).unwrap());
    assert!(
        lines.iter().any(|l| l["type"] == "trigger"),
        "the data were processed"
    );
}

#[test]
fn a_failing_rank_aborts_the_whole_mpi_job() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_rankfail");
    let ks = unique("ks_rankfail");
    let cfg = stream_config(
        dir.path(),
        "a",
        &topic,
        &ks,
        &sections("max_packets_per_batch = 50", START),
    );
    produce_synthetic(&cfg);
    let log = dir.path().join("job.log");
    let mut cmd = mpirun(2);
    cmd.env("FAKOPP_FAULT", "worker_error:3")
        .arg(env!("CARGO_BIN_EXE_fakopp"))
        .args(["run", "--exit-when-idle", "30", "--config"])
        .arg(&cfg);
    let mut job = spawn_logged(cmd, &log);
    let st = wait_bounded(&mut job, Duration::from_secs(120), &log);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!st.success(), "the job fails:\n{err}");
    assert!(
        err.contains("rank 1 failed") && err.contains("injected failure"),
        "the failing rank's message is shown: {err}"
    );
}

/// Runs the job with `endpoint` replaced by a port nobody listens on and
/// start-up given `timeout_s`: it must exit 1 naming `expect`, after
/// logging at least `attempts` retries.
fn unreachable(
    name: &str,
    endpoint: &str,
    dead: &str,
    timeout_s: f64,
    expect: &str,
    attempts: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_unreach");
    let ks = unique("ks_unreach");
    let cfg = stream_config(
        dir.path(),
        name,
        &topic,
        &ks,
        &sections(&format!("startup_timeout_s = {timeout_s}"), START),
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(endpoint, dead);
    std::fs::write(&cfg, text).unwrap();
    let out = fakopp()
        .args(["run", "--exit-when-idle", "1", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(expect) && err.contains("gave up"), "{err}");
    assert!(
        err.matches("retrying").count() >= attempts,
        "attempts are logged: {err}"
    );
}

#[test]
fn start_up_gives_up_on_an_unreachable_kafka_naming_it() {
    unreachable("k", &kafka_brokers(), "127.0.0.1:1", 8.0, "127.0.0.1:1", 1);
}

#[test]
fn start_up_gives_up_on_an_unreachable_cassandra_naming_it() {
    // Kafka is there; its part of start-up has the deadline's first seconds.
    unreachable(
        "c",
        &cassandra_node(),
        "127.0.0.1:2",
        20.0,
        "Cassandra at 127.0.0.1:2",
        2,
    );
}

#[test]
fn idle_exit_waits_until_nothing_is_left_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_idle");
    let ks = unique("ks_idle");
    // Small micro-batches: many of them, each longer than the idle limit.
    let cfg = stream_config(
        dir.path(),
        "a",
        &topic,
        &ks,
        &sections("max_packets_per_batch = 20", START),
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("kinds = [\"cassandra\", \"jsonl\"]", "kinds = [\"jsonl\"]");
    std::fs::write(&cfg, text).unwrap();
    produce_synthetic(&cfg);
    let out = fakopp()
        .args(["run", "--exit-when-idle", "0.001", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let finished = err
        .lines()
        .find(|l| l.contains("stream job finished"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    // 4 stations × 60 s × 100 Hz in 100-sample packets.
    assert!(
        finished.contains("packets=240"),
        "every packet was read before the idle exit: {finished}"
    );
}

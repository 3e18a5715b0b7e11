//! Services that ask for a login: Kafka brokers (SASL/PLAIN on the test
//! broker's second listener) and a Cassandra node with password
//! authentication (`scripts/services start cassandra-auth`). With the
//! right password the job works through them; with a wrong one it stops at
//! once with exit 1 and the server's answer, instead of retrying until
//! `stream.startup_timeout_s` as if the service were still starting, and
//! the password is in no log line.

mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The password comes from the environment (`kafka.properties_env`), as
/// the docs advise.
const PW_VAR: &str = "FAKOPP_TEST_SASL_PASSWORD";
const STATIONS: usize = 2;
const SECONDS: usize = 20;

fn kafka_config(dir: &Path, topic: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[source]
kind = "kafka"
[kafka]
brokers = "{brokers}"
topic = "{topic}"
group = "{topic}_g"
dlq_topic = "{topic}.dlq"
[kafka.properties]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "PLAIN"
"sasl.username" = "{user}"
[kafka.properties_env]
"sasl.password" = "{PW_VAR}"
[sinks]
kinds = ["jsonl"]
jsonl_path = "{jsonl}"
[checkpoint]
path = "{ckpt}"
[stream]
startup_timeout_s = 600.0
[synthetic]
seismic_stations = {STATIONS}
duration_s = {SECONDS}.0
events = 0
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
[[chains]]
name = "s"
select = ["XX.*"]
steps = [{{ op = "stats", window = 5.0 }}]
"#,
        brokers = kafka_sasl_brokers(),
        user = KAFKA_SASL_USER,
        jsonl = dir.join("out.jsonl").display(),
        ckpt = dir.join("state/ckpt.h5").display(),
    );
    write_config(dir, "job.toml", &text)
}

/// Runs `fakopp ARGS --config CFG` with the password in [`PW_VAR`]
/// until it ends, within `limit` (else the test fails: a refused login
/// must not wait for the start-up timeout): its exit code and its log.
fn run(args: &[&str], cfg: &Path, password: &str, limit: Duration) -> (Option<i32>, String) {
    let log = cfg.with_file_name(format!("{}.log", unique(args[0])));
    let child = fakopp()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env(PW_VAR, password)
        .env("FAKOPP_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut job = KillOnDrop(child);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = job.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < limit,
            "{args:?} still running after {limit:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50)); // polling interval
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn kafka_a_refused_login_stops_at_once_and_the_right_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_login");
    let cfg = kafka_config(dir.path(), &topic);
    let wrong = "not-the-password-7f3a";

    for args in [
        &["produce", "--synthetic"][..],
        &["run", "--exit-when-idle", "5"][..],
    ] {
        let what = args[0];
        let (code, err) = run(args, &cfg, wrong, Duration::from_secs(120));
        assert_eq!(code, Some(1), "{what}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains(&kafka_sasl_brokers()) && last.contains("refused the login"),
            "{what}: the error names the brokers and the refusal: {last}"
        );
        assert!(
            last.contains("Authentication failed"),
            "{what}: the broker's answer: {last}"
        );
        assert!(
            !err.contains(wrong),
            "{what}: the password is never logged: {err}"
        );
        assert!(
            !err.contains("gave up after"),
            "{what}: not retried until the start-up timeout: {err}"
        );
    }

    let packet = 100;
    let (code, err) = run(
        &[
            "produce",
            "--synthetic",
            "--packet-samples",
            &packet.to_string(),
        ],
        &cfg,
        KAFKA_SASL_PASSWORD,
        Duration::from_secs(300),
    );
    assert_eq!(code, Some(0), "produce with the password: {err}");
    let (code, err) = run(
        &["run", "--exit-when-idle", "5"],
        &cfg,
        KAFKA_SASL_PASSWORD,
        Duration::from_secs(300),
    );
    assert_eq!(code, Some(0), "run with the password: {err}");
    assert!(
        !err.contains(KAFKA_SASL_PASSWORD),
        "the password is never logged"
    );
    // Every packet of the synthetic network read: its stations for its
    // duration at 100 Hz, in packets of `packet`.
    let (stations, seconds, rate) = (STATIONS, SECONDS, 100);
    let summary = err
        .lines()
        .find(|l| l.contains("stream job finished"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    let want = stations * seconds * rate / packet;
    assert!(summary.contains(&format!(" packets={want} ")), "{summary}");
    let lines = json_lines(&std::fs::read(dir.path().join("out.jsonl")).unwrap());
    assert!(
        lines.iter().filter(|l| l["type"] == "stats").count() >= 8,
        "stats windows of both stations were written"
    );
}

/// The login-checking Cassandra node, stopped however the test ends.
struct AuthNode;

impl AuthNode {
    fn start() -> AuthNode {
        services("start", "cassandra-auth");
        AuthNode
    }
}

impl Drop for AuthNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/services"))
            .args(["stop", "cassandra-auth"])
            .output();
    }
}

fn cassandra_auth_node() -> String {
    std::env::var("FAKOPP_TEST_CASSANDRA_AUTH").unwrap_or_else(|_| {
        let plain = cassandra_node();
        let (host, port) = plain.rsplit_once(':').expect("host:port");
        format!(
            "{host}:{}",
            port.parse::<u16>().expect("a port number") + 100
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_a_refused_login_stops_at_once_and_the_right_one_works() {
    let _node = AuthNode::start();
    let node = cassandra_auth_node();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_cqllogin");
    let ks = unique("ks_login");
    let cfg = write_config(
        dir.path(),
        "job.toml",
        &format!(
            r#"[source]
kind = "kafka"
[kafka]
brokers = "{brokers}"
topic = "{topic}"
group = "{topic}_g"
dlq_topic = "{topic}.dlq"
[cassandra]
nodes = ["{node}"]
keyspace = "{ks}"
username = "cassandra"
password_env = "{PW_VAR}"
[sinks]
kinds = ["cassandra"]
[checkpoint]
path = "{ckpt}"
[stream]
startup_timeout_s = 600.0
[synthetic]
seismic_stations = {STATIONS}
duration_s = {SECONDS}.0
events = 0
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
[[chains]]
name = "s"
select = ["XX.*"]
steps = [{{ op = "stats", window = 5.0 }}]
"#,
            brokers = kafka_brokers(),
            ckpt = dir.path().join("state/ckpt.h5").display(),
        ),
    );
    let wrong = "not-the-password-5c1d";
    for args in [
        &["schema", "apply"][..],
        &["run", "--exit-when-idle", "5"][..],
    ] {
        let what = args.join(" ");
        let (code, err) = run(args, &cfg, wrong, Duration::from_secs(120));
        assert_eq!(code, Some(1), "{what}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains(&node) && last.contains("Authentication failed"),
            "{what}: the error names the node and its answer: {last}"
        );
        assert!(
            !err.contains(wrong),
            "{what}: the password is never logged: {err}"
        );
        assert!(
            !err.contains("gave up after"),
            "{what}: not retried until the start-up timeout: {err}"
        );
    }

    // The node makes its default superuser just after it starts.
    let mut builder = scylla::client::session_builder::SessionBuilder::new();
    builder = builder.known_node(&node).user("cassandra", "cassandra");
    let t0 = Instant::now();
    let session = loop {
        match builder.build().await {
            Ok(s) => break s,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(120), "no login: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await; // polling interval
            }
        }
    };
    let packet = 100; // produce_synthetic's packets
    produce_synthetic(&cfg);
    let (code, err) = run(
        &["run", "--exit-when-idle", "5"],
        &cfg,
        "cassandra",
        Duration::from_secs(300),
    );
    assert_eq!(code, Some(0), "run with the password: {err}");
    let want = STATIONS * SECONDS * 100 / packet;
    let rows = table_rows(&session, &ks, "raw_packets").await;
    assert_eq!(rows.len(), want, "every packet stored through the login");
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

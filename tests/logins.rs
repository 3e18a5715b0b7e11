//! Services that ask for a login: Kafka brokers (SASL/PLAIN on the test
//! broker's second listener) and a Cassandra node with password
//! authentication (`scripts/services start cassandra-auth`). With the
//! right password the job works through them, also while a booting node
//! still refuses it; a wrong one ends start-up with exit 1 and the server's
//! answer once the refusal has lasted 30 s, instead of being retried until
//! `stream.startup_timeout_s` as if the service were still starting; the
//! password is in no log line.

mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

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
{network}"#,
        network = small_network(STATIONS, SECONDS),
        brokers = kafka_sasl_brokers(),
        user = KAFKA_SASL_USER,
        jsonl = dir.join("out.jsonl").display(),
        ckpt = dir.join("state/ckpt.h5").display(),
    );
    write_config(dir, "job.toml", &text)
}

/// Runs `fakopp ARGS --config CFG` with the password in [`PW_VAR`]
/// until it ends, within `limit` (else the test fails: a lasting refusal
/// must not wait for the start-up timeout): its exit code and its log.
fn run(args: &[&str], cfg: &Path, password: &str, limit: Duration) -> (Option<i32>, String) {
    let log = cfg.with_file_name(format!("{}.log", unique(args[0])));
    let mut cmd = fakopp();
    cmd.args(args)
        .arg("--config")
        .arg(cfg)
        .env(PW_VAR, password)
        .env("FAKOPP_LOG", "debug")
        .stdout(Stdio::null());
    let mut job = KillOnDrop(spawn_logged(cmd, &log));
    let status = wait_bounded(&mut job.0, limit, &log);
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

/// `fakopp ARGS` with the `wrong` password ends with exit 1, its last line
/// naming `endpoint` and giving the server's answer (within the 120 s the
/// wait allows, where the start-up timeout is 600 s), and the password in
/// no line: that last line.
fn assert_refused(args: &[&str], cfg: &Path, wrong: &str, endpoint: &str) -> String {
    let what = args.join(" ");
    let (code, err) = run(args, cfg, wrong, Duration::from_secs(120));
    assert_eq!(code, Some(1), "{what}: {err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains(endpoint) && last.contains("Authentication failed"),
        "{what}: the error names {endpoint} and the server's answer: {last}"
    );
    assert!(
        !err.contains(wrong),
        "{what}: the password is never logged: {err}"
    );
    last
}

#[test]
fn kafka_a_wrong_login_ends_start_up_and_the_right_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_login");
    let cfg = kafka_config(dir.path(), &topic);
    let sasl = kafka_sasl_brokers();
    assert!(
        std::net::TcpStream::connect(&sasl).is_ok(),
        "no SASL listener at {sasl}: restart Kafka (scripts/services stop kafka; scripts/services start kafka)"
    );
    let wrong = "not-the-password-7f3a";

    for args in [
        &["produce", "--synthetic"][..],
        &["run", "--exit-when-idle", "5"][..],
    ] {
        let last = assert_refused(args, &cfg, wrong, &kafka_sasl_brokers());
        assert!(
            last.contains("refused the login") && last.contains("login refused for 30 s"),
            "{args:?}: a refusal that lasts is final: {last}"
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
    /// A fresh node (one a killed test left running is stopped first: it
    /// would already have its roles).
    fn start() -> AuthNode {
        services("stop", "cassandra-auth");
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
    std::env::var("FAKOPP_TEST_CASSANDRA_AUTH")
        .unwrap_or_else(|_| port_plus(&cassandra_node(), 100))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_a_wrong_login_ends_start_up_and_a_booting_node_is_waited_for() {
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
{network}"#,
            network = small_network(STATIONS, SECONDS),
            brokers = kafka_brokers(),
            ckpt = dir.path().join("state/ckpt.h5").display(),
        ),
    );
    // A job started with the right password before its node: it waits for
    // the node to come up, is then refused (the node makes its default
    // superuser 10 s after it starts, as a booting cluster refuses a
    // right login for a moment), and goes on once the login passes.
    let packet = 100; // produce_synthetic's packets
    let log = dir.path().join("booting.log");
    services("stop", "cassandra-auth");
    let mut cmd = fakopp();
    cmd.args(["run", "--exit-when-idle", "5", "--config"])
        .arg(&cfg)
        .env(PW_VAR, "cassandra");
    let mut job = KillOnDrop(spawn_logged(cmd, &log));
    await_log(
        &log,
        &["Cassandra at", "retrying"],
        1,
        &mut job.0,
        Duration::from_secs(120),
    );
    let _node = AuthNode::start();
    produce_synthetic(&cfg);
    let status = wait_bounded(&mut job.0, Duration::from_secs(300), &log);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "run with the password on a booting node: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("retrying") && l.contains("bad credentials")),
        "the login was refused at first, and retried: {err}"
    );

    let wrong = "not-the-password-5c1d";
    for args in [
        &["schema", "apply"][..],
        &["run", "--exit-when-idle", "5"][..],
    ] {
        let last = assert_refused(args, &cfg, wrong, &node);
        if args[0] == "run" {
            assert!(
                last.contains("login refused for 30 s"),
                "a refusal that lasts is final: {last}"
            );
        }
    }

    let mut builder = scylla::client::session_builder::SessionBuilder::new();
    builder = builder.known_node(&node).user("cassandra", "cassandra");
    let session = builder.build().await.unwrap();
    let want = STATIONS * SECONDS * 100 / packet;
    let rows = table_rows(&session, &ks, "raw_packets").await;
    assert_eq!(rows.len(), want, "every packet stored through the login");
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

//! Helpers shared by the integration tests. The services are real: started
//! by `scripts/services start` (which `make test` does); a test that cannot
//! reach them fails with a message saying so.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn fakopp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fakopp"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A name no other test run uses (topics, keyspaces).
pub fn unique(prefix: &str) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), t % 1_000_000_000_000)
}

pub fn kafka_brokers() -> String {
    std::env::var("FAKOPP_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The test broker's SASL/PLAIN listener (`scripts/services`: two ports
/// above the plain one) and its test credential.
pub fn kafka_sasl_brokers() -> String {
    std::env::var("FAKOPP_TEST_KAFKA_SASL").unwrap_or_else(|_| port_plus(&kafka_brokers(), 2))
}

/// `host:port` with the port `n` higher (the services' second listeners).
pub fn port_plus(addr: &str, n: u16) -> String {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    format!("{host}:{}", port.parse::<u16>().expect("a port number") + n)
}
pub const KAFKA_SASL_USER: &str = "fakopp";
pub const KAFKA_SASL_PASSWORD: &str = "fakopp-test-sasl";

pub fn cassandra_node() -> String {
    std::env::var("FAKOPP_TEST_CASSANDRA").unwrap_or_else(|_| "127.0.0.1:9042".into())
}

/// The CA certificate (PEM) of the test Cassandra's TLS port, written by
/// `scripts/services start` under its state directory.
pub fn cassandra_ca() -> PathBuf {
    if let Ok(p) = std::env::var("FAKOPP_TEST_CASSANDRA_CA") {
        return p.into();
    }
    let services = std::env::var("FAKOPP_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("state/services"));
    services.join("cassandra/tls/ca.pem")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to a fresh config file in `dir`.
pub fn write_config(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The oracle venv's python (ObsPy, SciPy, ioos_qc), created by
/// `scripts/pyenv` if needed. Fails the test if it cannot be had.
pub fn oracle_python() -> PathBuf {
    let out = Command::new(repo().join("scripts/pyenv"))
        .output()
        .expect("running scripts/pyenv");
    assert!(
        out.status.success(),
        "scripts/pyenv failed: {}",
        stderr(&out)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs `tests/oracle/<script> <args...>`; panics with its output on failure.
pub fn run_oracle(script: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(oracle_python())
        .arg(repo().join("tests/oracle").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

/// `mpirun -n N` as root on a small machine.
pub fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .args(["-n", &n.to_string(), "--oversubscribe"]);
    c
}

/// Parses JSON lines.
pub fn json_lines(text: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

/// `c.toml` in `dir`: the test Cassandra and keyspace `ks`, nothing else
/// (for tooling: `schema apply`, `export`).
pub fn cassandra_config(dir: &std::path::Path, ks: &str) -> PathBuf {
    write_config(
        dir,
        "c.toml",
        &format!(
            "[source]\nkind = \"kafka\"\n[cassandra]\nnodes = [\"{}\"]\nkeyspace = \"{ks}\"\n",
            cassandra_node()
        ),
    )
}

/// A stream-job config on the test services: `[source]`, `[kafka]`
/// (topic, `<topic>.dlq`, group from the keyspace), `[cassandra]` and
/// `[checkpoint]` with a path in `dir` named after `name`, then `sections`
/// as is: they may go on with `[checkpoint]` keys before their first table
/// (sinks, stream settings, synthetic network, chains). `{jsonl}` in
/// `sections` stands for a JSON-lines path in `dir`.
pub fn stream_config(
    dir: &std::path::Path,
    name: &str,
    topic: &str,
    keyspace: &str,
    sections: &str,
) -> PathBuf {
    let jsonl = dir.join(format!("{name}.jsonl"));
    let header = format!(
        "[source]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ngroup = \"{keyspace}_g\"\n\
         dlq_topic = \"{topic}.dlq\"\n[cassandra]\nnodes = [\"{}\"]\nkeyspace = \"{keyspace}\"\n\
         [checkpoint]\npath = \"{}\"\n",
        kafka_brokers(),
        cassandra_node(),
        dir.join(format!("{name}-state/ckpt.h5")).display()
    );
    let body = sections.replace("{jsonl}", &jsonl.display().to_string());
    write_config(dir, &format!("{name}.toml"), &format!("{header}{body}"))
}

/// Every row of a Cassandra table, as text, sorted (for equality checks).
pub async fn table_rows(
    s: &scylla::client::session::Session,
    ks: &str,
    table: &str,
) -> Vec<String> {
    let q = s
        .prepare(format!("SELECT * FROM {ks}.{table}"))
        .await
        .unwrap();
    let mut rows: Vec<String> = s
        .execute_unpaged(&q, ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<scylla::value::Row>()
        .unwrap()
        .map(|r| format!("{:?}", r.unwrap().columns))
        .collect();
    rows.sort();
    rows
}

/// Asserts that keyspace `got` holds the rows of keyspace `want` in each
/// table (`want` non-empty), then drops both.
pub async fn assert_same_rows_and_drop(got: &str, want: &str, tables: &[&str], what: &str) {
    let s = scylla::client::session_builder::SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .unwrap();
    for t in tables {
        let (g, w) = (table_rows(&s, got, t).await, table_rows(&s, want, t).await);
        assert!(!w.is_empty(), "{t} has rows");
        assert_eq!(g.len(), w.len(), "{t}: as many rows {what}");
        assert!(g == w, "{t}: rows differ {what}");
    }
    for ks in [got, want] {
        s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
            .await
            .unwrap();
    }
}

/// `scripts/services ACTION WHICH` (start/stop kafka|cassandra|all);
/// fails the test if it fails.
pub fn services(action: &str, which: &str) {
    let out = Command::new(repo().join("scripts/services"))
        .args([action, which])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "services {action} {which}: {}",
        stderr(&out)
    );
}

/// Brings the shared services back however a test that stops them ends,
/// so later tests (and runs) find them up.
pub struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/services"))
            .args(["start", "all"])
            .output();
    }
}

/// `fakopp produce --synthetic --packet-samples 100` with `cfg`; fails the
/// test if it fails.
pub fn produce_synthetic(cfg: &std::path::Path) {
    let out = fakopp()
        .args([
            "produce",
            "--synthetic",
            "--packet-samples",
            "100",
            "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "produce: {}", stderr(&out));
}

/// ObsPy's coincidence example on BW.UH1–4 as a chain: bandpass 10–20 Hz,
/// recursive STA/LTA 0.5/10 s, trigger 3.5/1.0, coincidence of 3.
pub const BW_PICKER: &str = r#"
[[chains]]
name = "p"
select = ["BW.*"]
steps = [
  { op = "bandpass", freqmin = 10.0, freqmax = 20.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
]
[[coincidence]]
chain = "p"
threshold_sum = 3
"#;

/// `fakopp batch --format jsonl --config CFG INPUTS...` on `ranks` ranks
/// (`mpirun` when more than one): its standard output; fails the test if
/// the run fails.
pub fn batch_jsonl_out(
    cfg: &std::path::Path,
    ranks: usize,
    inputs: &[impl AsRef<std::ffi::OsStr>],
) -> Vec<u8> {
    let mut c = if ranks == 1 {
        fakopp()
    } else {
        let mut c = mpirun(ranks);
        c.arg(env!("CARGO_BIN_EXE_fakopp"));
        c
    };
    let out = c
        .args(["batch", "--format", "jsonl", "--config"])
        .arg(cfg)
        .args(inputs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "batch on {ranks} ranks: {}",
        stderr(&out)
    );
    out.stdout
}

/// [`batch_jsonl_out`]'s lines, sorted.
pub fn batch_sorted_lines(
    cfg: &std::path::Path,
    ranks: usize,
    inputs: &[impl AsRef<std::ffi::OsStr>],
) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8(batch_jsonl_out(cfg, ranks, inputs))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// How many lines of `log` contain every part of `what`.
pub fn log_lines(log: &std::path::Path, what: &[&str]) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| what.iter().all(|w| l.contains(w)))
        .count()
}

/// Waits until `log` holds `n` lines containing every part of `what`,
/// while `job` runs (at most `limit`).
pub fn await_log(
    log: &std::path::Path,
    what: &[&str],
    n: usize,
    job: &mut std::process::Child,
    limit: std::time::Duration,
) {
    let t0 = std::time::Instant::now();
    loop {
        if log_lines(log, what) >= n {
            return;
        }
        if let Some(s) = job.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the job ended ({s}) while waiting for {what:?}:\n{text}");
        }
        if t0.elapsed() >= limit {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("no {what:?} in the log:\n{text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50)); // polling interval
    }
}

/// Ends a child process however the test ends (a panic included):
/// SIGTERM first, so that `mpirun` can end its ranks (SIGKILL would orphan
/// them), then SIGKILL if it is still there after 10 s.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on our own child, which has not been reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let t0 = std::time::Instant::now();
            while t0.elapsed() < std::time::Duration::from_secs(10) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50)); // polling interval
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The series of `inputs` (read as batch reads them) in packets of
/// `samples` samples, each sensor's reversed in groups of four when
/// `reverse` says so of its first packet, all sensors interleaved as a live
/// network sends them, and the first sensor's packet `dup` sent once more
/// after the round that reaches `dup_after` packets.
pub fn shuffled_packets(
    inputs: &[String],
    samples: usize,
    reverse: impl Fn(&fakopp::model::SensorPacket) -> bool,
    dup: usize,
    dup_after: usize,
) -> Vec<fakopp::model::SensorPacket> {
    let paths: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
    let input = fakopp::source::files::read_inputs(&paths, 15, false).unwrap();
    let mut per: std::collections::BTreeMap<String, Vec<fakopp::model::SensorPacket>> =
        Default::default();
    for p in fakopp::produce::packets_from_series(&input.series, samples) {
        per.entry(p.sensor_id.clone()).or_default().push(p);
    }
    for v in per.values_mut() {
        if reverse(&v[0]) {
            for g in v.chunks_mut(4) {
                g.reverse();
            }
        }
    }
    let dup = per.values().next().unwrap()[dup].clone();
    let mut out = Vec::new();
    let mut sent_dup = false;
    let mut iters: Vec<_> = per.into_values().map(|v| v.into_iter()).collect();
    loop {
        let before = out.len();
        for it in iters.iter_mut() {
            out.extend(it.next());
        }
        if !sent_dup && out.len() >= dup_after {
            out.push(dup.clone());
            sent_dup = true;
        }
        if out.len() == before {
            assert!(sent_dup, "fewer than {dup_after} packets: nothing re-sent");
            return out;
        }
    }
}

/// Spawns `cmd` with its standard error into `log`.
pub fn spawn_logged(mut cmd: Command, log: &std::path::Path) -> std::process::Child {
    cmd.stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for the child to end, failing the test (with its log) if it runs
/// past `limit`: a hang is what some tests look for.
pub fn wait_bounded(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    log: &std::path::Path,
) -> std::process::ExitStatus {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "still running after {limit:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50)); // polling interval
    }
}

/// The `stats` window of [`small_network`]'s chain.
pub const SMALL_NETWORK_WINDOW_S: usize = 5;

/// `[synthetic]`: `stations` seismic stations at 100 Hz for `seconds`,
/// nothing else, and a `stats` chain over them, for jobs that only need
/// some packets.
pub fn small_network(stations: usize, seconds: usize) -> String {
    format!(
        r#"[synthetic]
seismic_stations = {stations}
duration_s = {seconds}.0
events = 0
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
[[chains]]
name = "s"
select = ["XX.*"]
steps = [{{ op = "stats", window = {SMALL_NETWORK_WINDOW_S}.0 }}]
"#
    )
}

//! Checkpoint and restart against the real services: a job killed (SIGKILL)
//! at several moments — one of them while it writes a checkpoint — and
//! restarted each time, with 1, 3 and 2 ranks, ends with Cassandra tables
//! equal, row for row, to those of an uninterrupted run; a damaged
//! checkpoint is detected and the previous one used; changed chains refuse
//! to resume.

mod common;
use common::*;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::path::{Path, PathBuf};

const TABLES: [&str; 5] = [
    "raw_packets",
    "triggers",
    "events",
    "qc_flags",
    "window_stats",
];

/// Sinks, checkpoint cadence, input and chains shared by the tests here.
const SECTIONS: &str = r#"interval_s = 0.001
keep = 2
[sinks]
kinds = ["cassandra", "jsonl"]
jsonl_path = "{jsonl}"
[stream]
batch_interval_ms = 150
max_packets_per_batch = 150
[synthetic]
seismic_stations = 6
duration_s = 240.0
events = 2
groundwater_sensors = 2
ph_sensors = 2
env_days = 5.0
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
  { op = "aic_pick", before = 1.0, after = 0.5 },
]
[[coincidence]]
chain = "p-picker"
threshold_sum = 3
trigger_off_extension_s = 15.0
[[chains]]
name = "env-qc"
select = ["EMB.*"]
steps = [
  { op = "gross_range", fail_span = [-50.0, 14.0] },
  { op = "spike", suspect_threshold = 0.3, fail_threshold = 0.9 },
  { op = "flat_line", suspect_threshold_s = 10800, fail_threshold_s = 21600, tolerance = 0.001 },
  { op = "stats", window = 3600.0 },
]
"#;

fn config(dir: &Path, name: &str, topic: &str, keyspace: &str) -> PathBuf {
    stream_config(dir, name, topic, keyspace, SECTIONS)
}

/// Runs the job; `Ok` if it ended by itself, `Err(stderr)` if it was killed.
fn run(cfg: &Path, ranks: usize, fault: Option<&str>) -> Result<String, String> {
    let mut c = if ranks == 1 { fakopp() } else { mpirun(ranks) };
    if ranks > 1 {
        c.arg(env!("CARGO_BIN_EXE_fakopp"));
    }
    if let Some(f) = fault {
        c.env("FAKOPP_FAULT", f);
    }
    let out = c
        .args(["run", "--exit-when-idle", "3", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(stderr(&out))
    } else {
        Err(stderr(&out))
    }
}

/// Every table of keyspace `b` equals that of `a`, row for row.
async fn assert_tables_equal(s: &Session, a: &str, b: &str) {
    for t in TABLES {
        let (ra, rb) = (table_rows(s, a, t).await, table_rows(s, b, t).await);
        assert!(!ra.is_empty(), "{t} has rows");
        let only_a: Vec<_> = ra.iter().filter(|r| !rb.contains(r)).collect();
        let only_b: Vec<_> = rb.iter().filter(|r| !ra.contains(r)).collect();
        assert!(ra == rb, "{t}: rows differ after restarts:\nonly uninterrupted: {only_a:#?}\nonly restarted: {only_b:#?}");
    }
}

/// Two jobs over one topic holding the synthetic network: `a` has run
/// uninterrupted; `b`, with its own keyspace and checkpoint, is for the
/// test to interrupt.
struct Fixture {
    dir: tempfile::TempDir,
    b: PathBuf,
    ks_a: String,
    ks_b: String,
}

fn fixture(name: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let topic = unique(name);
    let (ks_a, ks_b) = (unique("ks_a"), unique("ks_b"));
    let a = config(dir, "a", &topic, &ks_a);
    let b = config(dir, "b", &topic, &ks_b);
    run(&a, 1, None).expect("creating the topics");
    let out = fakopp()
        .args([
            "produce",
            "--synthetic",
            "--packet-samples",
            "50",
            "--config",
        ])
        .arg(&a)
        .output()
        .unwrap();
    assert!(out.status.success(), "produce: {}", stderr(&out));
    run(&a, 1, None).expect("uninterrupted run");
    Fixture {
        dir: tmp,
        b,
        ks_a,
        ks_b,
    }
}

impl Fixture {
    /// Asserts `b`'s tables equal `a`'s, then drops both keyspaces.
    async fn assert_equal_and_clean_up(self) {
        let s = SessionBuilder::new()
            .known_node(cassandra_node())
            .build()
            .await
            .unwrap();
        assert_tables_equal(&s, &self.ks_a, &self.ks_b).await;
        for ks in [&self.ks_a, &self.ks_b] {
            s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_job_equals_an_uninterrupted_run() {
    let f = fixture("fakopp_test_restart");
    let (dir, b) = (f.dir.path().to_path_buf(), f.b.clone());

    // Killed three times, with a different number of ranks each time
    // (1 → 3 → 2 → 3), once in the middle of a checkpoint write.
    let e = run(&b, 1, Some("after_sinks:4"))
        .expect_err("killed after writing results of micro-batch 4");
    assert!(e.contains("FAKOPP_FAULT"), "{e}");
    run(&b, 3, Some("checkpoint_write:2")).expect_err("killed while writing its 2nd checkpoint");
    let e = run(&b, 2, Some("before_sinks:12"))
        .expect_err("killed before writing results of micro-batch 12");
    assert!(
        e.contains("resuming from checkpoint"),
        "restarts resume: {e}"
    );
    // A compute rank dies: the whole job stops with an error.
    let e = run(&b, 3, Some("worker:6")).expect_err("rank 1 killed at its 6th micro-batch");
    assert!(
        e.contains("rank 1") || e.contains("signal 9") || e.contains("Killed"),
        "mpirun names the lost rank: {e}"
    );
    let done = run(&b, 3, None).expect("the final run ends by itself");
    assert!(done.contains("resuming from checkpoint"), "{done}");
    // Each of the three ranks wrote its own part of the last checkpoint;
    // only the kept generations' parts remain (keep = 2: three).
    let parts: Vec<String> = std::fs::read_dir(dir.join("b-state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ckpt.h5.g"))
        .collect();
    for r in 0..3 {
        assert!(
            parts.iter().any(|n| n.ends_with(&format!(".r{r}"))),
            "rank {r} wrote no part: {parts:?}"
        );
    }
    assert!(parts.len() <= 3 * 3, "{parts:?}");

    // The JSON-lines output is truncated back to each checkpoint on restart.
    let lines = |n: &str| {
        let mut l: Vec<String> = std::fs::read_to_string(dir.join(n))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        l.sort();
        l
    };
    assert_eq!(lines("a.jsonl"), lines("b.jsonl"));
    f.assert_equal_and_clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_checkpoint_falls_back_and_changed_chains_refuse() {
    let f = fixture("fakopp_test_ckpt");
    let (dir, b) = (f.dir.path().to_path_buf(), f.b.clone());

    run(&b, 1, Some("after_sinks:6")).expect_err("killed");
    // Damage the newest checkpoint's state.
    let ck = dir.join("b-state/ckpt.h5");
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = bytes.len();
    for x in &mut bytes[n / 2..n / 2 + 64] {
        *x ^= 0xa5;
    }
    std::fs::write(&ck, bytes).unwrap();
    let inspect = fakopp()
        .args(["checkpoint", "inspect"])
        .arg(&ck)
        .output()
        .unwrap();
    assert!(inspect.status.success() || !stderr(&inspect).is_empty());

    // Chains changed: refuse (exit 2) unless --reset-state.
    let text = std::fs::read_to_string(&b)
        .unwrap()
        .replace("window = 3600.0", "window = 7200.0");
    let changed = write_config(&dir, "b_changed.toml", &text);
    let out = fakopp()
        .args(["run", "--exit-when-idle", "3", "--config"])
        .arg(&changed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--reset-state"), "{}", stderr(&out));

    let done = run(&b, 1, None).expect("resumes from the previous checkpoint");
    assert!(
        done.contains("checksum mismatch"),
        "the damaged checkpoint is reported: {done}"
    );
    assert!(
        done.contains("ckpt.h5.1"),
        "the previous checkpoint is used: {done}"
    );
    f.assert_equal_and_clean_up().await;
}

/// SIGTERM (Slurm preemption, scancel) stops the job at the end of its
/// micro-batch with a final checkpoint and exit code 0, well within the
/// grace period; the next run resumes and the result equals an
/// uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_exits_0_and_resumes() {
    let f = fixture("fakopp_test_term");
    let (dir, b) = (f.dir.path().to_path_buf(), f.b.clone());

    // No --exit-when-idle: only a signal ends this run.
    // stderr to a file: a pipe nobody reads could fill up and block the job.
    let log = dir.join("term.log");
    let mut child = fakopp()
        .args(["run", "--config"])
        .arg(&b)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ck = dir.join("b-state/ckpt.h5");
    let t0 = std::time::Instant::now();
    while !ck.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20)); // polling interval
    }
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t_term = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t_term.elapsed() < std::time::Duration::from_secs(30),
            "did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20)); // polling interval
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit 0 after SIGTERM: {err}");
    assert!(
        err.contains("reason=\"signal\"") || err.contains("signal"),
        "{err}"
    );

    let done = run(&b, 2, None).expect("resumed run ends by itself");
    assert!(done.contains("resuming from checkpoint"), "{done}");
    f.assert_equal_and_clean_up().await;
}

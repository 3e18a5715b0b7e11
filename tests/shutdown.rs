//! Stopping during a Cassandra outage when only rank 0 is signalled (a
//! launcher that does not forward SIGTERM): rank 1 keeps retrying its
//! writes and never hears of the stop, rank 0 waits for it in a
//! collective. The job must still end within rank 0's shutdown deadline,
//! and a restart must lose nothing. Its own test binary: it turns off
//! Cassandra's client port, which no other test may see.

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Turns Cassandra's client port back on however the test ends.
struct Reenable;

impl Drop for Reenable {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/services"))
            .args(["nodetool", "enablebinary"])
            .output();
    }
}

fn nodetool(arg: &str) {
    let out = Command::new(repo().join("scripts/services"))
        .args(["nodetool", arg])
        .output()
        .unwrap();
    assert!(out.status.success(), "nodetool {arg}: {}", stderr(&out));
}

const SECTIONS: &str = r#"interval_s = 1.0
[sinks]
kinds = ["cassandra"]
[synthetic]
seismic_stations = 4
duration_s = 180.0
events = 1
groundwater_sensors = 0
ph_sensors = 0
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
]
"#;

/// The process of MPI rank `rank` whose command line names `cfg`.
fn rank_pid(cfg: &Path, rank: u32) -> Option<i32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let cfg = cfg.display().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(&cfg) {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Waits until the checkpoint file is newer than `since` (the job is
/// under way).
fn await_checkpoint(ck: &Path, since: std::time::SystemTime, job: &mut Child, log: &Path) {
    let t0 = Instant::now();
    while !std::fs::metadata(ck)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m > since)
    {
        if let Some(st) = job.try_wait().unwrap() {
            panic!(
                "the job ended ({st}) before its first checkpoint:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50)); // polling interval
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_rank_0_alone_ends_the_job_during_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_shutdown");
    let (ks_a, ks_b) = (unique("ks_sd_a"), unique("ks_sd_b"));
    let a = stream_config(dir.path(), "a", &topic, &ks_a, SECTIONS);
    let b = stream_config(dir.path(), "b", &topic, &ks_b, SECTIONS);
    // Topics and keyspaces first.
    for cfg in [&a, &b] {
        let out = fakopp()
            .args(["run", "--exit-when-idle", "0.5", "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "creating topics: {}", stderr(&out));
    }
    // Input keeps arriving (90 s of it) while the job runs: the outage
    // must find writes to fail even when the job starts slowly.
    let mut producer = KillOnDrop(
        fakopp()
            .args([
                "produce",
                "--synthetic",
                "--packet-samples",
                "100",
                "--speed",
                "2",
                "--config",
            ])
            .arg(&a)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log = dir.path().join("job.log");
    let mut cmd = mpirun(2);
    cmd.arg("--tag-output")
        .arg(env!("CARGO_BIN_EXE_fakopp"))
        .args(["run", "--exit-when-idle", "120", "--config"])
        .arg(&a)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let started = std::time::SystemTime::now();
    let mut job = KillOnDrop(cmd.spawn().unwrap());
    await_checkpoint(
        &dir.path().join("a-state/ckpt.h5"),
        started,
        &mut job.0,
        &log,
    );
    let _reenable = Reenable;
    // Rank 1's retries (mpirun tags each line with its rank): only then
    // is rank 0 sure to wait for it in a collective after the signal.
    let retrying = ["[1,1]<stderr>", "Cassandra write failed; retrying"];
    let before = log_lines(&log, &retrying);
    nodetool("disablebinary");
    await_log(
        &log,
        &retrying,
        before + 1,
        &mut job.0,
        Duration::from_secs(60),
    );
    let rank0 = rank_pid(&a, 0).expect("rank 0's process");
    assert!(rank_pid(&a, 1).is_some(), "rank 1's process");
    // SAFETY: a plain kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(rank0, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    let status = loop {
        if let Some(s) = job.0.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > Duration::from_secs(120) {
            panic!(
                "the job hung after the signal:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50)); // polling interval
    };
    let ended_after = signalled.elapsed();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "no clean stop was possible:\n{err}");
    assert!(
        err.contains("did not stop within 45 s"),
        "rank 0's deadline ended the job, and says so:\n{err}"
    );
    assert!(
        ended_after >= fakopp::shutdown::DEADLINE - Duration::from_secs(1),
        "not before the deadline ({ended_after:?}):\n{err}"
    );
    nodetool("enablebinary");
    assert!(producer.0.wait().unwrap().success(), "produce failed");

    // Resumed on one rank from the last checkpoint, it stores what the
    // uninterrupted job stores.
    for cfg in [&a, &b] {
        let out = fakopp()
            .args(["run", "--exit-when-idle", "4", "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "draining: {}", stderr(&out));
    }
    assert_same_rows_and_drop(
        &ks_a,
        &ks_b,
        &["raw_packets", "triggers"],
        "after the interrupted job as after an uninterrupted one",
    )
    .await;
}

//! A job started a moment after its broker came up, on a loaded machine:
//! the broker's group coordinator may still be loading and the new topics'
//! metadata may lag their creation (`NotCoordinator`,
//! `CoordinatorLoadInProgress`, a topic without partitions yet; whether
//! the broker says so depends on the timing). The job must retry such
//! answers, not exit, and then read every packet. Its own
//! test binary: it restarts the shared broker.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const STATIONS: usize = 4;
const SECONDS: usize = 60;
const PACKET: usize = 100; // produce_synthetic's packets

/// Busy threads, one per core and one more, until dropped.
struct Load(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Load {
    fn start() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
        let threads = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Load(stop, threads)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn a_job_started_right_after_its_broker_on_a_loaded_machine_reads_everything() {
    let _restore = Restore;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("fakopp_test_fresh");
    let sections = format!(
        "[sinks]\nkinds = [\"jsonl\"]\njsonl_path = \"{{jsonl}}\"\n[stream]\nstartup_timeout_s = 300.0\n{}",
        small_network(STATIONS, SECONDS)
    );
    let cfg = stream_config(dir.path(), "a", &topic, "unused_ks", &sections);
    services("stop", "kafka");
    services("start", "kafka");
    let log = dir.path().join("job.log");
    let load = Load::start();
    let mut cmd = fakopp();
    // Idle long enough for a producer that also starts against the fresh broker.
    cmd.args(["run", "--exit-when-idle", "20", "--config"])
        .arg(&cfg);
    let mut job = KillOnDrop(spawn_logged(cmd, &log));
    // Topics created, their partitions seen, the group's offsets read.
    await_log(
        &log,
        &["consuming", &topic],
        1,
        &mut job.0,
        Duration::from_secs(300),
    );
    drop(load);
    produce_synthetic(&cfg);
    let status = wait_bounded(&mut job.0, Duration::from_secs(300), &log);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{err}");
    let summary = err
        .lines()
        .find(|l| l.contains("stream job finished"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    let want = STATIONS * SECONDS * 100 / PACKET;
    assert!(
        summary.contains(&format!(" packets={want} ")),
        "every packet read: {summary}"
    );
    let lines = json_lines(&std::fs::read(dir.path().join("a.jsonl")).unwrap());
    let stats = lines.iter().filter(|l| l["type"] == "stats").count();
    assert_eq!(
        stats,
        STATIONS * SECONDS / SMALL_NETWORK_WINDOW_S,
        "every station's stats windows: {stats}"
    );
}

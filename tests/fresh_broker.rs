//! A job started a moment after its broker came up, on a loaded machine:
//! the broker's group coordinator is still loading and the new topics'
//! metadata lags their creation (`NotCoordinator`,
//! `CoordinatorLoadInProgress`, a topic without partitions yet). The job
//! must retry those answers, not exit, and then read every packet. Its own
//! test binary: it restarts the shared broker.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        r#"[sinks]
kinds = ["jsonl"]
jsonl_path = "{{jsonl}}"
[stream]
startup_timeout_s = 300.0
[synthetic]
seismic_stations = {STATIONS}
duration_s = {SECONDS}.0
events = 1
groundwater_sensors = 0
ph_sensors = 0
env_days = 0.01
[[chains]]
name = "s"
select = ["XX.*"]
steps = [{{ op = "stats", window = 10.0 }}]
"#
    );
    let cfg = stream_config(dir.path(), "a", &topic, "unused_ks", &sections);
    services("stop", "kafka");
    services("start", "kafka");
    let log = dir.path().join("job.log");
    let load = Load::start();
    let mut job = KillOnDrop(
        fakopp()
            .args(["run", "--exit-when-idle", "5", "--config"])
            .arg(&cfg)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
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
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = job.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the job never finished:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50)); // polling interval
    };
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
        STATIONS * SECONDS / 10,
        "every station's stats windows: {stats}"
    );
}

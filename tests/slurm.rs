//! The sbatch jobs on a real single-node Slurm (`scripts/slurm start`:
//! Debian's slurmctld + slurmd + munge on localhost): a 2-task batch array
//! over two CSV archives; the stream job against the real Kafka and
//! Cassandra; stream jobs stopped part-way — by SIGTERM to the batch shell
//! (`scancel --batch --signal=TERM`, as `--signal=B:TERM@120` does) under
//! mpirun, and by a plain `scancel` under `srun --mpi=pmix` — stop cleanly
//! with a final checkpoint, and after `scontrol requeue` resume from it and
//! end with the JSON lines of an uninterrupted run; the bench job writes
//! its CSV and PNG. Also: the Apptainer definition is complete and
//! consistent with `scripts/bootstrap`, and its `%test` section passes when
//! run on the host (Apptainer itself is not available here).
//!
//! Jobs are waited for by polling `scontrol show job` with a timeout (no
//! slurmdbd, so no sacct). `make test` stops Slurm again at the end
//! (`scripts/slurm stop`).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Starts the cluster once per test process; returns its SLURM_CONF.
fn slurm_conf() -> &'static str {
    static CONF: OnceLock<String> = OnceLock::new();
    CONF.get_or_init(|| {
        let out = Command::new(repo().join("scripts/slurm"))
            .arg("start")
            .output()
            .expect("running scripts/slurm start");
        assert!(
            out.status.success(),
            "scripts/slurm start failed:\n{}",
            stderr(&out)
        );
        let env = Command::new(repo().join("scripts/slurm"))
            .arg("env")
            .output()
            .unwrap();
        let line = String::from_utf8(env.stdout).unwrap();
        line.trim()
            .strip_prefix("export SLURM_CONF=")
            .expect("scripts/slurm env prints export SLURM_CONF=...")
            .to_string()
    })
}

/// A Slurm client command against this cluster.
fn slurm(cmd: &str) -> Command {
    let mut c = Command::new(cmd);
    c.env("SLURM_CONF", slurm_conf());
    c
}

/// `sbatch --parsable` with the given options and environment; the job id.
fn sbatch(dir: &Path, opts: &[&str], env: &[(&str, String)], script: &str) -> String {
    let mut c = slurm("sbatch");
    c.arg("--parsable")
        .arg(format!("--chdir={}", dir.display()))
        .args(opts)
        .arg(repo().join(script));
    // The job sees the environment of the submission (sbatch --export=ALL).
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("FAKOPP_BIN", env!("CARGO_BIN_EXE_fakopp"));
    let out = c.output().unwrap();
    assert!(out.status.success(), "sbatch {script}: {}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap();
    id.trim().split(';').next().unwrap().to_string()
}

/// `scontrol show job -o ID` as key → value, one map per (array) task.
fn jobs(id: &str) -> Vec<BTreeMap<String, String>> {
    let out = slurm("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scontrol show job {id}: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

const FINAL: [&str; 7] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
];

/// Polls until `done` holds for the job's records; panics after `timeout`.
fn wait_for(
    id: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[BTreeMap<String, String>]) -> bool,
) -> Vec<BTreeMap<String, String>> {
    let t0 = Instant::now();
    loop {
        let j = jobs(id);
        if !j.is_empty() && done(&j) {
            return j;
        }
        assert!(
            t0.elapsed() < timeout,
            "job {id}: not {what} after {timeout:?}: {:?}",
            j.iter()
                .map(|m| (m.get("JobId"), m.get("JobState"), m.get("Reason")))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every task of the job ended; returns the records.
fn wait_done(id: &str, timeout: Duration) -> Vec<BTreeMap<String, String>> {
    wait_for(id, timeout, "finished", |j| {
        j.iter().all(|m| FINAL.contains(&m["JobState"].as_str()))
    })
}

fn assert_completed(j: &[BTreeMap<String, String>], log: &Path) {
    for m in j {
        assert!(
            m["JobState"] == "COMPLETED" && m["ExitCode"] == "0:0",
            "job {} {} exit {}; its output:\n{}",
            m["JobId"],
            m["JobState"],
            m["ExitCode"],
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

fn sorted_lines(p: &Path) -> Vec<String> {
    let mut l: Vec<String> = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(String::from)
        .collect();
    l.sort();
    l
}

/// A long-format CSV (time,sensor,value) of a pH sonde with one spike.
fn write_csv(p: &Path, sensor: &str, day: u32, spike_at: usize) {
    let mut s = String::from("time,sensor,value\n");
    for i in 0..96usize {
        let v = 7.0 + 0.01 * (i % 7) as f64 + if i == spike_at { 2.5 } else { 0.0 };
        let (h, m) = (i / 4, (i % 4) * 15);
        s.push_str(&format!(
            "2024-05-{day:02}T{h:02}:{m:02}:00Z,{sensor},{v}\n"
        ));
    }
    std::fs::write(p, s).unwrap();
}

const QC_CHAINS: &str = r#"
[[chains]]
name = "ph-qc"
select = ["EMB.*..PH"]
steps = [
  { op = "gross_range", fail_span = [0.0, 14.0], suspect_span = [6.0, 9.5] },
  { op = "spike", suspect_threshold = 0.3, fail_threshold = 0.9 },
  { op = "stats", window = 21600.0 },
]
"#;

#[test]
fn batch_array_splits_the_inputs_over_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(&d.join("day1.csv"), "EMB.S1..PH", 1, 30);
    write_csv(&d.join("day2.csv"), "EMB.S2..PH", 2, 60);
    std::fs::write(
        d.join("inputs.txt"),
        format!(
            "# one work unit a line\n{}\n\n{}\n",
            d.join("day1.csv").display(),
            d.join("day2.csv").display()
        ),
    )
    .unwrap();
    let cfg = write_config(
        d,
        "batch.toml",
        &format!("[source]\nkind = \"files\"\n{QC_CHAINS}"),
    );
    let t0 = Instant::now();
    let id = sbatch(
        d,
        &["--array=0-1", "--output=batch-%A_%a.log"],
        &[
            ("FAKOPP_CONFIG", cfg.display().to_string()),
            ("FAKOPP_INPUTS", d.join("inputs.txt").display().to_string()),
            (
                "FAKOPP_OUTPUT",
                d.join("out/qc-%a.jsonl").display().to_string(),
            ),
        ],
        "jobs/batch.sbatch",
    );
    let j = wait_done(&id, Duration::from_secs(300));
    eprintln!("batch array {id}: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(j.len(), 2, "two array tasks: {j:?}");
    for m in &j {
        let log = d.join(format!("batch-{id}_{}.log", m["ArrayTaskId"]));
        assert_completed(std::slice::from_ref(m), &log);
    }
    // Each task processed its own file, exactly as a direct run does.
    for (task, (file, sensor)) in [("day1.csv", "EMB.S1..PH"), ("day2.csv", "EMB.S2..PH")]
        .into_iter()
        .enumerate()
    {
        let got = sorted_lines(&d.join(format!("out/qc-{task}.jsonl")));
        assert!(!got.is_empty(), "task {task} wrote results");
        let direct = d.join(format!("direct-{task}.jsonl"));
        let out = fakopp()
            .args(["batch", "--format", "jsonl", "--config"])
            .arg(&cfg)
            .arg("--output")
            .arg(&direct)
            .arg(d.join(file))
            .output()
            .unwrap();
        assert!(out.status.success(), "direct batch: {}", stderr(&out));
        assert_eq!(got, sorted_lines(&direct), "task {task} = direct run");
        let recs = json_lines(got.join("\n").as_bytes());
        assert!(
            recs.iter().all(|r| r["sensor"] == sensor),
            "task {task}: only {sensor}"
        );
        assert!(
            recs.iter()
                .any(|r| r["type"] == "qc" && r["aggregate"] == 4),
            "task {task}: the spike is flagged FAIL"
        );
    }
    assert!(
        !std::fs::read_dir(d.join("out")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")),
        "no temporary files left"
    );
}

/// A stream config on its own topic, consumer group, keyspace, output and
/// checkpoint; small micro-batches so a run lasts a few seconds.
fn stream_config(dir: &Path, name: &str, topic: &str, keyspace: &str) -> PathBuf {
    write_config(
        dir,
        &format!("{name}.toml"),
        &format!(
            r#"
[source]
kind = "kafka"
[kafka]
brokers = "{brokers}"
topic = "{topic}"
group = "{keyspace}_g"
dlq_topic = "{topic}.dlq"
[cassandra]
nodes = ["{node}"]
keyspace = "{keyspace}"
[sinks]
kinds = ["cassandra", "jsonl"]
jsonl_path = "{jsonl}"
[checkpoint]
path = "{ckpt}"
interval_s = 0.5
keep = 2
[stream]
batch_interval_ms = 100
max_packets_per_batch = 25
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
  {{ op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 }},
  {{ op = "recursive_sta_lta", sta = 0.5, lta = 10.0 }},
  {{ op = "trigger", on = 3.5, off = 1.0 }},
]
[[coincidence]]
chain = "p-picker"
threshold_sum = 3
trigger_off_extension_s = 15.0
[[chains]]
name = "env-qc"
select = ["EMB.*"]
steps = [
  {{ op = "gross_range", fail_span = [-50.0, 14.0] }},
  {{ op = "spike", suspect_threshold = 0.3, fail_threshold = 0.9 }},
  {{ op = "stats", window = 3600.0 }},
]
"#,
            brokers = kafka_brokers(),
            node = cassandra_node(),
            jsonl = dir.join(format!("{name}.jsonl")).display(),
            ckpt = dir.join(format!("{name}-state/ckpt.h5")).display(),
        ),
    )
}

fn stream_env(cfg: &Path, log: &Path, requeue_on_signal: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FAKOPP_CONFIG", cfg.display().to_string()),
        ("FAKOPP_OUTPUT", log.display().to_string()),
        ("FAKOPP_EXIT_WHEN_IDLE", "3".to_string()),
        ("FAKOPP_REQUEUE_ON_SIGNAL", requeue_on_signal.to_string()),
        ("FAKOPP_LOG_FORMAT", "json".to_string()),
    ]
}

fn drop_keyspaces(keyspaces: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = scylla::client::session_builder::SessionBuilder::new()
            .known_node(cassandra_node())
            .build()
            .await
            .unwrap();
        for ks in keyspaces {
            s.query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), &[])
                .await
                .unwrap();
        }
    });
}

#[test]
fn stream_job_runs_and_stopped_requeued_jobs_resume_from_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topic = unique("fakopp_test_slurm");
    let ks_a = unique("ks_slurm_a");
    let a = stream_config(d, "a", &topic, &ks_a);
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

    // A: uninterrupted, 2 ranks, ends when the topic is drained.
    let t0 = Instant::now();
    let (log_a, out_a) = (d.join("a.log"), d.join("a.out"));
    let id_a = sbatch(
        d,
        &["--ntasks=2", &format!("--output={}", out_a.display())],
        &stream_env(&a, &log_a, "1"),
        "jobs/stream.sbatch",
    );
    let j = wait_done(&id_a, Duration::from_secs(300));
    assert_completed(&j, &out_a);
    eprintln!("stream job {id_a}: {:.1} s", t0.elapsed().as_secs_f64());
    let text_a = std::fs::read_to_string(&log_a).unwrap();
    assert!(
        text_a.contains("\"reason\":\"idle\""),
        "ends when idle:\n{text_a}"
    );
    let lines_a = sorted_lines(&d.join("a.jsonl"));
    let recs = json_lines(lines_a.join("\n").as_bytes());
    for kind in ["trigger", "event", "qc"] {
        assert!(
            recs.iter().any(|r| r["type"] == kind),
            "the stream job's JSON lines hold {kind} records"
        );
    }

    // B: mpirun; stopped by SIGTERM to the batch shell only (what
    // --signal=B:TERM@120 does before the time limit), then requeued.
    let ks_b = stop_requeue_resume(
        d,
        "b",
        &topic,
        "mpirun",
        &["--batch", "--signal=TERM"],
        "0",
        &lines_a,
    );
    // C: srun --mpi=pmix; a plain `scancel` (SIGTERM to every process of
    // the job, as preemption does): ranks ≥ 1 ignore it, rank 0 stops
    // cleanly within KillWait, and the script does not requeue a cancelled
    // job by itself (FAKOPP_REQUEUE_ON_SIGNAL=1); then requeued.
    let ks_c = stop_requeue_resume(d, "c", &topic, "srun", &[], "1", &lines_a);
    drop_keyspaces(&[&ks_a, &ks_b, &ks_c]);
}

/// Submits the stream job `name` on 2 ranks, stops it part-way with
/// `scancel SCANCEL_ARGS` once it has written a checkpoint, checks that it
/// stopped cleanly on the signal (exit 0, final checkpoint), requeues it
/// with `scontrol requeue` and checks that the resumed job ends with the
/// JSON lines of the uninterrupted run. Returns the job's keyspace.
fn stop_requeue_resume(
    d: &Path,
    name: &str,
    topic: &str,
    launcher: &str,
    scancel_args: &[&str],
    requeue_on_signal: &str,
    uninterrupted: &[String],
) -> String {
    let keyspace = unique(&format!("ks_slurm_{name}"));
    let cfg = stream_config(d, name, topic, &keyspace);
    let t1 = Instant::now();
    let (log, out_file) = (d.join(format!("{name}.log")), d.join(format!("{name}.out")));
    let mut env = stream_env(&cfg, &log, requeue_on_signal);
    env.push(("FAKOPP_LAUNCHER", launcher.to_string()));
    let id = sbatch(
        d,
        &["--ntasks=2", &format!("--output={}", out_file.display())],
        &env,
        "jobs/stream.sbatch",
    );
    let ck = d.join(format!("{name}-state/ckpt.h5"));
    let t_ck = Instant::now();
    while !ck.exists() {
        assert!(
            t_ck.elapsed() < Duration::from_secs(300),
            "job {id} wrote no checkpoint: {:?}",
            jobs(&id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = slurm("scancel")
        .args(scancel_args)
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "scancel: {}", stderr(&out));
    let j = wait_done(&id, Duration::from_secs(120));
    let script_log = std::fs::read_to_string(&out_file).unwrap();
    for m in &j {
        // A plain scancel leaves the state CANCELLED, but the job exits 0.
        assert!(
            ["COMPLETED", "CANCELLED"].contains(&m["JobState"].as_str()) && m["ExitCode"] == "0:0",
            "job {id} ({launcher}) {} exit {}:\n{script_log}",
            m["JobState"],
            m["ExitCode"]
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"reason\":\"signal\""),
        "stopped by the signal, not by running out of input:\n{text}"
    );
    assert!(
        script_log.contains("asking rank 0"),
        "SIGTERM forwarded to rank 0:\n{script_log}"
    );
    if requeue_on_signal == "1" {
        assert!(
            script_log.contains("not requeueing"),
            "a cancelled job is not requeued by its script:\n{script_log}"
        );
    }
    let partial = sorted_lines(&d.join(format!("{name}.jsonl")));
    assert!(
        partial.len() < uninterrupted.len(),
        "interrupted part-way: {} of {} lines",
        partial.len(),
        uninterrupted.len()
    );

    let out = slurm("scontrol").args(["requeue", &id]).output().unwrap();
    assert!(out.status.success(), "scontrol requeue: {}", stderr(&out));
    // It may start again once its credential expired (cred_expire=10 in
    // scripts/slurm's slurm.conf; Slurm's default is 120 s).
    let j = wait_for(
        &id,
        Duration::from_secs(300),
        "requeued and finished",
        |j| {
            j.iter()
                .all(|m| m["Restarts"] == "1" && FINAL.contains(&m["JobState"].as_str()))
        },
    );
    assert_completed(&j, &out_file);
    eprintln!(
        "stream job {id} ({launcher}, scancel {scancel_args:?}, requeued, resumed): {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("resuming from checkpoint"),
        "the requeued job resumes:\n{text}"
    );
    assert!(text.contains("\"reason\":\"idle\""), "{text}");
    assert_eq!(
        sorted_lines(&d.join(format!("{name}.jsonl"))),
        uninterrupted,
        "stopped + requeued = uninterrupted ({launcher})"
    );
    keyspace
}

#[test]
fn job_scripts_parse_and_document_their_environment() {
    for s in [
        "jobs/batch.sbatch",
        "jobs/stream.sbatch",
        "jobs/bench.sbatch",
    ] {
        let p = repo().join(s);
        let text = std::fs::read_to_string(&p).unwrap();
        let out = Command::new("bash").arg("-n").arg(&p).output().unwrap();
        assert!(out.status.success(), "bash -n {s}: {}", stderr(&out));
        // The header (comments before the first command) documents the variables.
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#') || l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        for v in [
            "FAKOPP_BIN",
            "FAKOPP_CONFIG",
            "FAKOPP_INPUTS",
            "FAKOPP_OUTPUT",
        ] {
            assert!(header.contains(v), "{s} documents {v} at the top");
            assert!(
                text.contains(&format!("${{{v}")),
                "{s} reads {v} with a default"
            );
        }
        assert!(text.contains("OMPI_ALLOW_RUN_AS_ROOT=1"), "{s}");
    }
    let stream = std::fs::read_to_string(repo().join("jobs/stream.sbatch")).unwrap();
    for d in ["#SBATCH --signal=B:TERM@120", "#SBATCH --requeue"] {
        assert!(stream.contains(d), "stream.sbatch has {d}");
    }
}

/// The sections of a Singularity/Apptainer definition file: header lines
/// under "", then each `%section`'s body.
fn def_sections(text: &str) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('%') {
            cur = name.split_whitespace().next().unwrap_or("").to_string();
            m.entry(cur.clone()).or_default();
            continue;
        }
        let e = m.entry(cur.clone()).or_default();
        e.push_str(line);
        e.push('\n');
    }
    m
}

#[test]
fn apptainer_definition_is_complete_and_its_test_passes_on_the_host() {
    let text = std::fs::read_to_string(repo().join("apptainer/fakopp.def")).unwrap();
    let s = def_sections(&text);
    let header = &s[""];
    assert!(header.contains("Bootstrap: docker"), "{header}");
    assert!(header.contains("From: debian:bookworm"), "{header}");
    for sec in [
        "files",
        "post",
        "environment",
        "runscript",
        "test",
        "help",
        "labels",
    ] {
        assert!(
            s.get(sec).is_some_and(|b| !b.trim().is_empty()),
            "%{sec} present and not empty"
        );
    }
    // One source of truth for system packages: %post runs scripts/bootstrap.
    let post = &s["post"];
    assert!(
        post.contains("scripts/bootstrap"),
        "%post runs scripts/bootstrap"
    );
    assert!(post.contains("FAKOPP_BOOTSTRAP_RUNTIME_ONLY=1"), "{post}");
    assert!(
        !post.contains("apt-get install"),
        "no package list of its own in %post: {post}"
    );
    assert!(post.contains("rustup"), "installs the Rust toolchain");
    assert!(
        post.contains("cargo build --release --bin fakopp"),
        "builds the release binary"
    );
    assert!(post.contains("/usr/local/bin"), "installs fakopp");
    // The rust-toolchain pin (if any) and the bootstrap script are in the image.
    let files = &s["files"];
    assert!(
        files.contains("/opt/fakopp"),
        "%files copies the repo: {files}"
    );
    assert!(s["runscript"].contains("exec fakopp \"$@\""));
    assert!(s["test"].contains("selftest mpi"), "%test checks MPI");
    assert!(s["test"].contains("fakopp batch"), "%test runs the kernels");
    assert!(s["labels"].contains("Version"));

    // The same install step as %post (runtime-only bootstrap) works here.
    let out = Command::new(repo().join("scripts/bootstrap"))
        .env("FAKOPP_BOOTSTRAP_RUNTIME_ONLY", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));

    // %test, run on the host with this build's fakopp first on PATH and
    // the image's /opt/fakopp replaced by this checkout.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_fakopp"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = s["test"].replace("/opt/fakopp", &repo().display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "%test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn bench_job_writes_its_csv_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let python = oracle_python();
    let stream = stream_config(d, "bench-stream", "unused", &unique("ks_bench"));
    // JSON lines only: the stream half needs no Cassandra.
    let text = std::fs::read_to_string(&stream)
        .unwrap()
        .replace("kinds = [\"cassandra\", \"jsonl\"]", "kinds = [\"jsonl\"]")
        .replace("max_packets_per_batch = 25", "max_packets_per_batch = 5000");
    std::fs::write(&stream, text).unwrap();
    let prefix = d.join("bench");
    let t0 = Instant::now();
    let id = sbatch(
        d,
        &["--ntasks=2", "--output=bench.log"],
        &[
            (
                "FAKOPP_CONFIG",
                repo().join("configs/local.toml").display().to_string(),
            ),
            ("FAKOPP_OUTPUT", prefix.display().to_string()),
            ("FAKOPP_BENCH_RANKS", "1 2".into()),
            ("FAKOPP_BENCH_REPEATS", "1".into()),
            ("FAKOPP_BENCH_STREAM_CONFIG", stream.display().to_string()),
            ("FAKOPP_BENCH_BROKERS", kafka_brokers()),
            ("FAKOPP_PYTHON", python.display().to_string()),
        ],
        "jobs/bench.sbatch",
    );
    let j = wait_done(&id, Duration::from_secs(600));
    assert_completed(&j, &d.join("bench.log"));
    eprintln!("bench job {id}: {:.1} s", t0.elapsed().as_secs_f64());
    let csv = std::fs::read_to_string(prefix.with_extension("csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("mode,ranks,repeat,wall_s,samples,samples_per_s,host,nodes")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let key: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        key,
        [
            ("batch", "1"),
            ("batch", "2"),
            ("stream", "1"),
            ("stream", "2")
        ],
        "{csv}"
    );
    for r in &rows {
        let samples: u64 = r[4].parse().unwrap();
        let rate: f64 = r[5].parse().unwrap();
        assert!(samples > 100_000 && rate > 0.0, "{r:?}");
    }
    let png = std::fs::read(prefix.with_extension("png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG plot"
    );
}

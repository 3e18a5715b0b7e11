//! Issue 11 benchmark: the raw store in Cassandra, the packed layout
//! (schema version 2, `codec` + `data`) beside the old one (version 1,
//! `samples frozen<list<double>>`) in the same run on the same packets.
//!
//! `benches/raw_store/run` prepares real recordings and runs this (see
//! BENCHMARKS.md); alone: `RAW_BENCH_INPUTS=a.mseed:b.mseed cargo bench
//! --bench raw_store`. Phases:
//!
//! 1. The inputs (MiniSEED/CSV) are cut into packets of 100 samples as
//!    `fakopp produce` does, and replicated `RAW_BENCH_COPIES` times under
//!    other station names, so the volume is large and the samples real.
//! 2. **Old layout**: the packets written to a version-1 table the way the
//!    version-1 sink wrote them: the same prepared INSERT with a
//!    `list<double>`, rows of one partition in UNLOGGED batches of at most
//!    16 rows and ~4 KiB of values, at most `max_in_flight` requests in
//!    flight, calls of 5,000 packets (one micro-batch).
//! 3. **New layout**: the same packets through `CassandraSink::write_raw`
//!    (packing included), same calls, same limit.
//! 4. **On disk**: both tables flushed (`scripts/services nodetool flush`);
//!    live SSTable bytes (`tablestats`) per sample.
//! 5. **Export**: `fakopp export` of everything as MiniSEED 3 (its own
//!    samples/s figure), and **reprocessing**: `fakopp batch` with a
//!    p-picker chain from `[source] kind = "cassandra"` beside `fakopp
//!    batch` over the exported MiniSEED file, same data, same chain.
//!
//! Env: RAW_BENCH_INPUTS (colon-separated files, required),
//! RAW_BENCH_COPIES (300), RAW_BENCH_CASSANDRA (127.0.0.1:9042),
//! RAW_BENCH_OUT (a Markdown table is written there).

use fakopp::config::{Config, Mode};
use fakopp::model::SensorPacket;
use fakopp::sink::cassandra::{CassandraSink, RawRow};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

const SLICE: usize = 5_000;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The packets of the inputs, `copies` times under other station names.
fn packets(inputs: &[PathBuf], copies: usize) -> Vec<SensorPacket> {
    let input = fakopp::source::files::read_inputs(inputs, 0, false).expect("reading the inputs");
    let base = fakopp::produce::packets_from_series(&input.series, 100);
    let mut out = Vec::with_capacity(base.len() * copies);
    for k in 0..copies {
        for p in &base {
            let parts: Vec<&str> = p.sensor_id.split('.').collect();
            let mut q = p.clone();
            q.sensor_id = format!("{}.{}{k}.{}.{}", parts[0], parts[1], parts[2], parts[3]);
            out.push(q);
        }
    }
    out
}

/// Version 1 of `raw_packets`, as `schemas/cassandra.cql` had it.
const OLD_TABLE: &str =
    "CREATE TABLE {ks}.raw_packets (sensor_id text, day int, start_time_ns bigint, \
    start_time timestamp, kind text, unit text, sample_rate_hz double, seq bigint, late boolean, \
    samples frozen<list<double>>, PRIMARY KEY ((sensor_id, day), start_time_ns)) \
    WITH CLUSTERING ORDER BY (start_time_ns ASC)";

type OldRow = (
    String,
    i32,
    i64,
    scylla::value::CqlTimestamp,
    String,
    String,
    f64,
    Option<i64>,
    bool,
    Vec<f64>,
);

fn old_row(p: &SensorPacket) -> OldRow {
    (
        p.sensor_id.clone(),
        fakopp::model::day_of(p.start_time_ns),
        p.start_time_ns,
        scylla::value::CqlTimestamp(p.start_time_ns / 1_000_000),
        p.kind.as_str().to_string(),
        p.unit.clone(),
        p.sample_rate_hz,
        p.seq,
        false,
        p.samples.clone(),
    )
}

/// One call of the version-1 sink: same-partition runs in batches of at
/// most 16 rows and ~4 KiB (its size estimate), `limit` requests in flight.
async fn write_old(
    session: &Arc<Session>,
    stmt: &PreparedStatement,
    pk: &[SensorPacket],
    limit: usize,
) {
    let mut groups: Vec<Vec<OldRow>> = Vec::new();
    let mut open: std::collections::HashMap<(String, i32), (usize, usize)> = Default::default();
    for p in pk {
        let row = old_row(p);
        let bytes = 64 + row.0.len() + row.5.len() + 8 * row.9.len();
        let key = (row.0.clone(), row.1);
        match open.get_mut(&key) {
            Some((i, b)) if groups[*i].len() < 16 && *b + bytes <= 4096 => {
                groups[*i].push(row);
                *b += bytes;
            }
            _ => {
                open.insert(key, (groups.len(), bytes));
                groups.push(vec![row]);
            }
        }
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut set = tokio::task::JoinSet::new();
    for rows in groups {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (session, stmt) = (session.clone(), stmt.clone());
        set.spawn(async move {
            let _permit = permit;
            if rows.len() == 1 {
                session.execute_unpaged(&stmt, &rows[0]).await.map(|_| ())
            } else {
                let mut b = Batch::new(BatchType::Unlogged);
                for _ in &rows {
                    b.append_statement(stmt.clone());
                }
                session.batch(&b, &rows).await.map(|_| ())
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("old-layout insert");
    }
}

fn nodetool(args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/services"))
        .arg("nodetool")
        .args(args)
        .output()
        .expect("scripts/services nodetool");
    assert!(
        out.status.success(),
        "nodetool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Live SSTable bytes of `ks.raw_packets` after a flush.
fn on_disk(ks: &str) -> u64 {
    nodetool(&["flush", ks, "raw_packets"]);
    let stats = nodetool(&["tablestats", &format!("{ks}.raw_packets")]);
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("Space used (live):"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Space used (live) in tablestats")
}

fn config(work: &Path, name: &str, text: &str) -> PathBuf {
    let p = work.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn timed(cmd: &mut Command, what: &str) -> (f64, String) {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {err}");
    (secs, err)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let inputs: Vec<PathBuf> = std::env::var("RAW_BENCH_INPUTS")
        .expect(
            "RAW_BENCH_INPUTS: colon-separated input files (benches/raw_store/run prepares them)",
        )
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    let copies: usize = env("RAW_BENCH_COPIES", 300);
    let node: String = env("RAW_BENCH_CASSANDRA", "127.0.0.1:9042".to_string());
    let work = tempfile::tempdir().unwrap();
    let run = format!("{}", std::process::id());
    let (ks_old, ks_new) = (
        format!("bench_raw_old_{run}"),
        format!("bench_raw_new_{run}"),
    );
    let mut rep = Vec::<String>::new();
    let mut say = |s: String| {
        println!("{s}");
        rep.push(s);
    };

    let pk = packets(&inputs, copies);
    let samples: u64 = pk.iter().map(|p| p.samples.len() as u64).sum();
    say(format!(
        "inputs: {} files × {copies} copies = {} packets, {samples} samples",
        inputs.len(),
        pk.len()
    ));
    let cass = |ks: &str| format!("[cassandra]\nnodes = [\"{node}\"]\nkeyspace = \"{ks}\"\n");
    let new_cfg_path = config(
        work.path(),
        "new",
        &format!("[source]\nkind = \"kafka\"\n{}", cass(&ks_new)),
    );
    let new_cfg = Config::load(&new_cfg_path, Mode::Tooling).unwrap();
    let limit = new_cfg.cassandra.max_in_flight;

    let rt = tokio::runtime::Runtime::new().unwrap();
    // 2. Old layout.
    let old_s = rt.block_on(async {
        let session = Arc::new(fakopp::sink::cassandra::connect(&new_cfg.cassandra).await.unwrap());
        session
            .query_unpaged(
                format!("CREATE KEYSPACE {ks_old} WITH replication = {}", new_cfg.cassandra.replication),
                &[],
            )
            .await
            .unwrap();
        session.query_unpaged(OLD_TABLE.replace("{ks}", &ks_old), &[]).await.unwrap();
        session.await_schema_agreement().await.unwrap();
        let mut stmt = session
            .prepare(format!(
                "INSERT INTO {ks_old}.raw_packets (sensor_id, day, start_time_ns, start_time, kind, unit, sample_rate_hz, seq, late, samples) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await
            .unwrap();
        stmt.set_is_idempotent(true);
        let t = Instant::now();
        for s in pk.chunks(SLICE) {
            write_old(&session, &stmt, s, limit).await;
        }
        t.elapsed().as_secs_f64()
    });
    // 3. New layout.
    let new_s = rt.block_on(async {
        let sink = CassandraSink::connect(&new_cfg.cassandra).await.unwrap();
        let t = Instant::now();
        for s in pk.chunks(SLICE) {
            let rows: Vec<RawRow<'_>> = s
                .iter()
                .map(|p| RawRow {
                    packet: p,
                    late: false,
                })
                .collect();
            sink.write_raw(&rows).await.expect("raw insert");
        }
        t.elapsed().as_secs_f64()
    });
    let (old_rate, new_rate) = (samples as f64 / old_s, samples as f64 / new_s);
    say(format!(
        "raw inserts, {limit} in flight: old layout {old_s:.2} s = {old_rate:.0} samples/s; new layout {new_s:.2} s = {new_rate:.0} samples/s ({:.2}×)",
        new_rate / old_rate
    ));
    // 4. On disk.
    let (old_b, new_b) = (on_disk(&ks_old), on_disk(&ks_new));
    say(format!(
        "on disk after flush (live SSTables, LZ4 as configured by default): old {old_b} B = {:.3} B/sample; new {new_b} B = {:.3} B/sample ({:.1}× smaller)",
        old_b as f64 / samples as f64,
        new_b as f64 / samples as f64,
        old_b as f64 / new_b as f64
    ));
    // 5. Export and reprocessing.
    let mseed = work.path().join("all.mseed");
    let bin = env!("CARGO_BIN_EXE_fakopp");
    let (exp_s, err) = timed(
        Command::new(bin)
            .args(["export", "--config"])
            .arg(&new_cfg_path)
            .args([
                "--sensor",
                "*",
                "--from",
                "1970-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
                "--mseed-version",
                "3",
                "--output",
            ])
            .arg(&mseed),
        "export",
    );
    say(format!(
        "export to MiniSEED 3: {exp_s:.2} s wall = {:.0} samples/s ({}; file {} B = {:.3} B/sample)",
        samples as f64 / exp_s,
        err.lines().last().unwrap_or_default().trim_start_matches("fakopp: "),
        std::fs::metadata(&mseed).unwrap().len(),
        std::fs::metadata(&mseed).unwrap().len() as f64 / samples as f64
    ));
    let chain = "[[chains]]\nname = \"p\"\nselect = [\"*\"]\nsteps = [\n  { op = \"bandpass\", freqmin = 1.0, freqmax = 10.0, corners = 4 },\n  { op = \"recursive_sta_lta\", sta = 0.5, lta = 10.0 },\n  { op = \"trigger\", on = 3.5, off = 1.0 },\n]\n";
    let from_cass = config(
        work.path(),
        "reprocess",
        &format!(
            "[source]\nkind = \"cassandra\"\nsensors = [\"*\"]\nfrom = \"1970-01-01T00:00:00Z\"\nto = \"2100-01-01T00:00:00Z\"\n{}{chain}",
            cass(&ks_new)
        ),
    );
    let from_files = config(
        work.path(),
        "files",
        &format!("[source]\nkind = \"files\"\n{chain}"),
    );
    let out_c = work.path().join("c.jsonl");
    let out_f = work.path().join("f.jsonl");
    let (cass_s, _) = timed(
        Command::new(bin)
            .args(["batch", "--format", "jsonl", "--output"])
            .arg(&out_c)
            .arg("--config")
            .arg(&from_cass),
        "batch from Cassandra",
    );
    let (file_s, _) = timed(
        Command::new(bin)
            .args(["batch", "--format", "jsonl", "--output"])
            .arg(&out_f)
            .arg("--config")
            .arg(&from_files)
            .arg(&mseed),
        "batch from MiniSEED",
    );
    let same = std::fs::read(&out_c).unwrap() == std::fs::read(&out_f).unwrap();
    say(format!(
        "reprocessing (p-picker chain, 1 rank): from Cassandra {cass_s:.2} s = {:.0} samples/s; from the MiniSEED file {file_s:.2} s = {:.0} samples/s; results {}",
        samples as f64 / cass_s,
        samples as f64 / file_s,
        if same { "identical" } else { "DIFFER" }
    ));
    rt.block_on(async {
        let s = fakopp::sink::cassandra::connect(&new_cfg.cassandra)
            .await
            .unwrap();
        for ks in [&ks_old, &ks_new] {
            s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
                .await
                .unwrap();
        }
    });
    if let Ok(p) = std::env::var("RAW_BENCH_OUT") {
        std::fs::write(
            p,
            rep.iter().map(|l| format!("* {l}\n")).collect::<String>(),
        )
        .unwrap();
    }
}

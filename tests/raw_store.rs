//! The raw store (issue 11) against real Kafka and Cassandra: real
//! recordings streamed into `raw_packets` come back out of `fakopp export`
//! exactly (ObsPy and pandas judge), a damaged blob is named and never
//! misread, and a keyspace in the old layout is refused, then migrated in
//! place, resumably, bit for bit.

mod common;
use common::*;
use fakopp::model::{day_of, SensorKind, SensorPacket};
use fakopp::sink::cassandra::CassandraSink;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::path::{Path, PathBuf};
use std::process::Output;

async fn session() -> Session {
    SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .expect("connect to Cassandra")
}

fn run_ok(args: &[&str], cfg: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    let out = fakopp()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "fakopp {args:?}: {}", stderr(&out));
    out
}

fn export(cfg: &Path, sensor: &str, from: &str, to: &str, more: &[&str]) -> Output {
    fakopp()
        .args(["export", "--config"])
        .arg(cfg)
        .args(["--sensor", sensor, "--from", from, "--to", to])
        .args(more)
        .output()
        .unwrap()
}

/// The chains of the reprocessing check: ObsPy's picker on BW.*, QC of
/// the logger's head.
fn chains() -> String {
    format!(
        "{BW_PICKER}{}",
        r#"
[[chains]]
name = "level-qc"
select = ["GS.*"]
steps = [
  { op = "gross_range", fail_span = [1000.0, 1400.0], suspect_span = [1200.0, 1300.0] },
  { op = "spike", suspect_threshold = 0.5, fail_threshold = 2.0 },
  { op = "flat_line", suspect_threshold_s = 10800, fail_threshold_s = 21600, tolerance = 0.001 },
  { op = "stats", window = 86400.0 },
]
"#
    )
}

const SEISMIC: (&str, &str) = ("2010-05-27T00:00:00Z", "2010-05-28T00:00:00Z");
const LOGGER: (&str, &str) = ("2020-01-01T00:00:00Z", "2023-01-01T00:00:00Z");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_recordings_come_back_exactly_and_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in");
    run_oracle(
        "raw_store_oracle.py",
        &["inputs".as_ref(), data.as_os_str()],
    );
    let orig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("original.json")).unwrap()).unwrap();
    let inputs: Vec<PathBuf> = orig["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| PathBuf::from(v.as_str().unwrap()))
        .collect();
    let topic = unique("fakopp_raw");
    let ks = unique("fakopp_raw");
    let cfg = stream_config(
        dir.path(),
        "raw",
        &topic,
        &ks,
        "[sinks]\nkinds = [\"cassandra\"]\n[stream]\nbatch_interval_ms = 200\n",
    );
    // Everything twice, cut differently: the second copies arrive late and
    // overlap the first (same samples), which export must not repeat.
    let files: Vec<&std::ffi::OsStr> = inputs.iter().map(|p| p.as_os_str()).collect();
    for n in ["100", "70"] {
        run_ok(&["produce", "--packet-samples", n], &cfg, &files);
    }
    run_ok(&["run", "--exit-when-idle", "4"], &cfg, &[]);

    let mseed = dir.path().join("out.mseed");
    let csv = dir.path().join("out.csv");
    let out = export(
        &cfg,
        "BW.*",
        SEISMIC.0,
        SEISMIC.1,
        &["--output", mseed.to_str().unwrap()],
    );
    assert!(out.status.success(), "export mseed: {}", stderr(&out));
    assert!(stderr(&out).contains("of 5 sensors"), "{}", stderr(&out));
    let out = export(
        &cfg,
        "GS.*",
        LOGGER.0,
        LOGGER.1,
        &["--format", "csv", "--output", csv.to_str().unwrap()],
    );
    assert!(out.status.success(), "export csv: {}", stderr(&out));
    run_oracle(
        "raw_store_oracle.py",
        &[
            "check".as_ref(),
            data.as_os_str(),
            mseed.as_os_str(),
            csv.as_os_str(),
        ],
    );

    // A range starting inside a recording: the packets before it that reach
    // into it are found, and cut on the sample grid.
    let uh1 = &orig["traces"][0];
    assert_eq!(uh1["id"], "BW.UH1..SHZ");
    let (start, rate) = (
        uh1["start_ns"].as_i64().unwrap(),
        uh1["rate"].as_f64().unwrap(),
    );
    let data: Vec<f64> = uh1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let from = start + 10_010_000_000;
    let skip = (0..data.len())
        .find(|&i| start + (i as f64 * 1e9 / rate).round() as i64 >= from)
        .unwrap();
    let out = export(
        &cfg,
        "BW.UH1..SHZ",
        &fakopp::model::format_time_us(from),
        SEISMIC.1,
        &["--format", "jsonl"],
    );
    assert!(out.status.success(), "export from inside: {}", stderr(&out));
    let got: Vec<SensorPacket> = json_lines(&out.stdout)
        .into_iter()
        .map(|l| serde_json::from_value(l).unwrap())
        .collect();
    assert_eq!(
        got[0].start_time_ns,
        start + (skip as f64 * 1e9 / rate).round() as i64
    );
    let samples: Vec<f64> = got.iter().flat_map(|p| p.samples.clone()).collect();
    assert_eq!(
        samples,
        data[skip..],
        "the samples from --from on, once each"
    );

    // Reprocessing what is stored equals processing the original files.
    let from_files = batch_sorted_lines(
        &write_config(
            dir.path(),
            "files.toml",
            &format!("[source]\nkind = \"files\"\n{}", chains()),
        ),
        1,
        &inputs,
    );
    assert!(
        from_files.iter().any(|l| l.contains("\"type\":\"event\""))
            && from_files.iter().any(|l| l.contains("\"type\":\"qc\"")),
        "the chains find events and flag readings"
    );
    let stored = write_config(
        dir.path(),
        "stored.toml",
        &format!(
            "[source]\nkind = \"cassandra\"\nsensors = [\"BW.*\", \"GS.*\"]\nfrom = \"2010-01-01T00:00:00Z\"\nto = \"2023-01-01T00:00:00Z\"\n\
             [cassandra]\nnodes = [\"{}\"]\nkeyspace = \"{ks}\"\n{}",
            cassandra_node(),
            chains()
        ),
    );
    for ranks in [1, 3] {
        let got = batch_sorted_lines(&stored, ranks, &[] as &[&str]);
        assert!(got == from_files, "batch from Cassandra on {ranks} ranks = batch from the files ({} vs {} lines; first difference: {:?})",
            got.len(), from_files.len(),
            got.iter().zip(&from_files).find(|(a, b)| a != b));
    }

    // JSON lines of everything: every original sample once.
    let out = export(
        &cfg,
        "*",
        "2000-01-01T00:00:00Z",
        "2030-01-01T00:00:00Z",
        &["--format", "jsonl"],
    );
    assert!(out.status.success(), "export jsonl: {}", stderr(&out));
    let lines = json_lines(&out.stdout);
    let got: usize = lines
        .iter()
        .map(|l| l["samples"].as_array().unwrap().len())
        .sum();
    let want: usize = orig["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["data"].as_array().unwrap().len())
        .sum::<usize>()
        + orig["logger"]["readings"].as_array().unwrap().len();
    assert_eq!(got, want, "every stored sample exported once");
    for l in &lines {
        // Readings recorded as missing are `null`, as the packet codec reads them.
        let p: SensorPacket =
            fakopp::codec::decode(fakopp::config::PacketFormat::Json, l.to_string().as_bytes())
                .expect("SensorPacket lines");
        assert!(p.samples.len() <= 1000);
    }

    // One flipped bit in one stored blob of BW.UH2.
    let s = session().await;
    let sink = CassandraSink::open(
        &fakopp::config::Config::load(&cfg, fakopp::config::Mode::Tooling)
            .unwrap()
            .cassandra,
    )
    .await
    .unwrap();
    let start_ns = orig["traces"][1]["start_ns"].as_i64().unwrap();
    assert_eq!(orig["traces"][1]["id"], "BW.UH2..SHZ");
    let day = day_of(start_ns);
    let sel = s
        .prepare(format!(
            "SELECT start_time_ns, data FROM {ks}.raw_packets WHERE sensor_id = ? AND day = ?"
        ))
        .await
        .unwrap();
    let rows: Vec<(i64, Vec<u8>)> = s
        .execute_unpaged(&sel, ("BW.UH2..SHZ", day))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows()
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let (victim_ns, mut blob) = rows[rows.len() / 2].clone();
    let at = blob.len() / 2;
    blob[at] ^= 0x10;
    let upd = s
        .prepare(format!(
            "UPDATE {ks}.raw_packets SET data = ? WHERE sensor_id = ? AND day = ? AND start_time_ns = ?"
        ))
        .await
        .unwrap();
    s.execute_unpaged(&upd, (&blob, "BW.UH2..SHZ", day, victim_ns))
        .await
        .unwrap();
    let got = sink.read_raw_packets("BW.UH2..SHZ", day).await;
    assert!(got.is_err(), "a damaged blob is never read as samples");

    let broken = dir.path().join("broken.mseed");
    let out = export(
        &cfg,
        "BW.*",
        SEISMIC.0,
        SEISMIC.1,
        &["--output", broken.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let when = fakopp::model::format_time_us(victim_ns);
    for part in ["BW.UH2..SHZ", "2010-05-27", when.as_str(), "--keep-going"] {
        assert!(err.contains(part), "the error names {part}: {err}");
    }
    assert!(!broken.exists(), "a failed export leaves no output file");
    let out = export(
        &cfg,
        "BW.*",
        SEISMIC.0,
        SEISMIC.1,
        &["--keep-going", "--output", broken.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("1 damaged packets skipped"), "{err}");
    assert!(err.contains(&when) && err.contains("skipped"), "{err}");
    let kept = std::fs::metadata(&broken).unwrap().len();
    assert!(kept > 0);

    // Bad arguments: exit 2, naming the argument.
    let nowhere = dir.path().join("refused.mseed");
    for (args, what) in [
        (
            vec![
                "--sensor", "BW.*", "--from", SEISMIC.1, "--to", SEISMIC.0, "--format", "csv",
            ],
            "--from",
        ),
        (
            vec![
                "--sensor", "BW.[", "--from", SEISMIC.0, "--to", SEISMIC.1, "--format", "csv",
            ],
            "--sensor",
        ),
        (
            vec![
                "--sensor",
                "BW.*",
                "--from",
                "yesterday",
                "--to",
                SEISMIC.1,
                "--format",
                "csv",
            ],
            "--from",
        ),
        (
            vec!["--sensor", "BW.*", "--from", SEISMIC.0, "--to", SEISMIC.1],
            "--output",
        ),
        (
            vec![
                "--sensor",
                "GS.*",
                "--from",
                LOGGER.0,
                "--to",
                LOGGER.1,
                "--output",
                nowhere.to_str().unwrap(),
            ],
            "LEVEL",
        ),
    ] {
        let out = fakopp()
            .args(["export", "--config"])
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(what), "{args:?}: {}", stderr(&out));
    }
    assert!(
        !nowhere.exists() && !dir.path().join("refused.mseed.partial").exists(),
        "a refused export leaves no file"
    );
    s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

/// Samples no coding may bend: signed zeros, subnormals, extremes, NaN
/// payloads, integers, decimals.
fn awkward(i: usize) -> Vec<f64> {
    let n = 1 + i % 150;
    (0..n)
        .map(|k| match (i + k) % 9 {
            0 => -0.0,
            1 => f64::from_bits(1 + k as u64), // subnormal
            2 => f64::MAX,
            3 => f64::from_bits(0x7ff8_0000_dead_beef),
            4 => (k as f64) * 3.0 - 7.0,
            5 => 7.12 + k as f64 / 100.0,
            6 => f64::NEG_INFINITY,
            7 => 1e-300 * k as f64,
            _ => (k as f64).sin(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_keyspace_is_refused_then_migrated_in_place() {
    let ks = unique("fakopp_mig");
    let dir = tempfile::tempdir().unwrap();
    let cfg = cassandra_config(dir.path(), &ks);
    let s = session().await;
    // Schema version 1, as fakopp wrote it before the packed layout.
    s.query_unpaged(
        format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
        &[],
    )
    .await
    .unwrap();
    s.query_unpaged(
        format!(
            "CREATE TABLE {ks}.raw_packets (sensor_id text, day int, start_time_ns bigint, start_time timestamp, \
             kind text, unit text, sample_rate_hz double, seq bigint, late boolean, samples frozen<list<double>>, \
             PRIMARY KEY ((sensor_id, day), start_time_ns)) WITH CLUSTERING ORDER BY (start_time_ns ASC)"
        ),
        &[],
    )
    .await
    .unwrap();
    let ins = s
        .prepare(format!(
            "INSERT INTO {ks}.raw_packets (sensor_id, day, start_time_ns, kind, unit, sample_rate_hz, seq, late, samples) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .await
        .unwrap();
    let t0: i64 = 1_714_564_800_000_000_000;
    let rows = 600usize;
    let mut want = Vec::new();
    for i in 0..rows {
        let sensor = format!("XX.S{:02}..HHZ", i % 3);
        let t = t0 + (i as i64) * 3_600_000_000_000; // hourly: several days
        let x = awkward(i);
        s.execute_unpaged(
            &ins,
            (
                &sensor,
                day_of(t),
                t,
                "seismic",
                "counts",
                100.0f64,
                i as i64,
                i % 7 == 0,
                &x,
            ),
        )
        .await
        .unwrap();
        want.push((sensor, t, x, i % 7 == 0));
    }

    let refuse = |out: &Output| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("schema version 1") && err.contains("--migrate"),
            "the refusal says what to do: {err}"
        );
    };
    let apply = |more: &[&str]| {
        fakopp()
            .args(["schema", "apply"])
            .args(more)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    refuse(&apply(&[]));
    refuse(&export(
        &cfg,
        "*",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
        &["--format", "csv"],
    ));

    // An earlier migration stopped part way: columns added, 100 rows packed.
    s.query_unpaged(format!("ALTER TABLE {ks}.raw_packets ADD codec int"), &[])
        .await
        .unwrap();
    s.query_unpaged(format!("ALTER TABLE {ks}.raw_packets ADD data blob"), &[])
        .await
        .unwrap();
    let upd = s
        .prepare(format!(
            "UPDATE {ks}.raw_packets SET codec = ?, data = ? WHERE sensor_id = ? AND day = ? AND start_time_ns = ?"
        ))
        .await
        .unwrap();
    for (sensor, t, x, _) in &want[..100] {
        let (c, blob) = fakopp_kernels::pack::encode(x);
        s.execute_unpaged(&upd, (c.id(), blob, sensor, day_of(*t), *t))
            .await
            .unwrap();
    }
    let out = apply(&["--migrate"]);
    let log = stderr(&out);
    assert!(out.status.success(), "migrate: {log}");
    assert!(
        log.contains("converted=500") && log.contains("already_packed=100"),
        "the resumed migration skips what was done: {log}"
    );
    let again = apply(&[]);
    assert!(
        again.status.success(),
        "apply after migrating: {}",
        stderr(&again)
    );

    let cols: Vec<String> = s
        .execute_unpaged(
            &s.prepare("SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?")
                .await
                .unwrap(),
            (&ks, "raw_packets"),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert!(!cols.contains(&"samples".to_string()), "{cols:?}");
    assert!(cols.contains(&"data".to_string()) && cols.contains(&"codec".to_string()));

    let conf = fakopp::config::Config::load(&cfg, fakopp::config::Mode::Tooling).unwrap();
    let sink = CassandraSink::open(&conf.cassandra).await.unwrap();
    let mut checked = 0;
    for (sensor, t, x, late) in &want {
        let got = sink.read_raw_packets(sensor, day_of(*t)).await.unwrap();
        let (p, l) = got
            .iter()
            .find(|(p, _)| p.start_time_ns == *t)
            .unwrap_or_else(|| panic!("{sensor} {t} migrated"));
        assert_eq!(p.kind, SensorKind::Seismic);
        assert_eq!(*l, *late);
        assert_eq!(
            p.samples.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{sensor} {t}: bit for bit"
        );
        checked += 1;
    }
    assert_eq!(checked, rows);

    // A keyspace from a newer fakopp is refused, never written over.
    let ver = s
        .prepare(format!(
            "INSERT INTO {ks}.schema_info (key, version) VALUES (?, ?)"
        ))
        .await
        .unwrap();
    s.execute_unpaged(&ver, ("fakopp", 99i32)).await.unwrap();
    let out = apply(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("newer fakopp"), "{}", stderr(&out));
    s.query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await
        .unwrap();
}

//! The TOML configuration (docs/reference.md, "Configuration"): loading, defaults and validation.
//!
//! Every error names the file, the key (as a path such as
//! `chains[0].steps[1].sta`) and the reason; the CLI maps it to exit code 2.

pub mod ioos_qc;
mod steps;
mod validate;

pub use steps::*;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A configuration problem: which file, which key, why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {}{reason}", file.display(), key.as_deref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub cassandra: CassandraConfig,
    #[serde(default)]
    pub sinks: SinksConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub stream: StreamConfig,
    #[serde(default)]
    pub synthetic: SyntheticConfig,
    #[serde(default)]
    pub chains: Vec<ChainConfig>,
    #[serde(default)]
    pub coincidence: Vec<CoincidenceConfig>,
    /// The stations file (CSV or TOML, `crate::stations`).
    #[serde(default)]
    pub stations: Option<PathBuf>,
    /// Its contents, read and checked by [`Config::parse`].
    #[serde(skip)]
    pub station_table: std::sync::Arc<crate::stations::Stations>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Kafka,
    Files,
    Synthetic,
    /// Raw packets stored in Cassandra (`raw_packets`), for `batch`.
    Cassandra,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Input files for `kind = "files"` (the `batch` command takes them on
    /// its command line instead).
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// Sensor id globs for `kind = "cassandra"`.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Time range `[from, to)` for `kind = "cassandra"` (RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketFormat {
    #[default]
    Avro,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub dlq_topic: String,
    pub detections_topic: String,
    pub format: PacketFormat,
    /// Passed to librdkafka as is (SASL, TLS, ...). Values are never logged.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values come from environment variables:
    /// property -> variable name (e.g. `"sasl.password" = "KAFKA_PASSWORD"`),
    /// so secrets stay out of config files. Read when a client is created.
    pub properties_env: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: "fakopp.packets".into(),
            group: "fakopp".into(),
            dlq_topic: "fakopp.dlq".into(),
            detections_topic: "fakopp.detections".into(),
            format: PacketFormat::Avro,
            properties: BTreeMap::new(),
            properties_env: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub replication: String,
    pub username: Option<String>,
    /// Name of the environment variable holding the password (never the
    /// password itself, so configs can be committed and logged).
    pub password_env: Option<String>,
    /// Maximum number of writes in flight.
    pub max_in_flight: usize,
    /// TLS to the nodes (`[cassandra.tls]`); plain CQL when absent.
    pub tls: Option<CassandraTls>,
}

/// `[cassandra.tls]`: the nodes' certificates must chain to `ca_file` and
/// name the node's IP address (subjectAltName); `cert_file` + `key_file`
/// add a client certificate for clusters that require one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraTls {
    /// PEM file of the CA certificate(s) to trust, and only those.
    pub ca_file: PathBuf,
    /// PEM client certificate (chain).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        CassandraConfig {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "fakopp".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            username: None,
            password_env: None,
            max_in_flight: 256,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Cassandra,
    Hdf5,
    Jsonl,
    Kafka,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    pub kinds: Vec<SinkKind>,
    pub hdf5_path: PathBuf,
    /// JSON-lines output file; standard output when absent.
    pub jsonl_path: Option<PathBuf>,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            kinds: vec![SinkKind::Hdf5, SinkKind::Jsonl],
            hdf5_path: "results.h5".into(),
            jsonl_path: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    pub path: PathBuf,
    pub interval_s: f64,
    /// How many older checkpoints to keep beside the newest.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            path: "state/fakopp-ckpt.h5".into(),
            interval_s: 30.0,
            keep: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    pub batch_interval_ms: u64,
    pub reorder_window_s: f64,
    pub max_gap_interp_samples: u64,
    pub max_samples_per_packet: usize,
    /// Most packets taken into one micro-batch (bounds its memory and
    /// latency when a backlog is consumed).
    pub max_packets_per_batch: usize,
    /// A sensor whose data lag its partition's data time by more than this
    /// (seconds of data time) is retired: its reorder buffer, kernel state
    /// and coincidence progress are dropped, so it no longer holds back
    /// network events; if it returns it starts afresh with its warm-up
    /// (docs/architecture.md, "Bounded state").
    pub retire_after_s: f64,
    /// How long start-up keeps retrying to reach Kafka and Cassandra
    /// before it gives up (exit 1, naming the endpoint).
    pub startup_timeout_s: f64,
    /// Seconds between status lines (log and Prometheus gauges).
    pub status_interval_s: f64,
    /// A partition whose data time runs this far (seconds) ahead of the
    /// slowest partition still being read is paused until the others
    /// catch up, so draining a backlog keeps what waits for network
    /// coincidence bounded (watermark alignment).
    pub max_partition_skew_s: f64,
    /// Rank 0's share of the sensors relative to another rank's (it also
    /// coordinates the job); 0 leaves it only coordinating. Ignored on
    /// one rank.
    pub rank0_weight: f64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            batch_interval_ms: 500,
            reorder_window_s: 5.0,
            max_gap_interp_samples: 15,
            max_samples_per_packet: 100_000,
            max_packets_per_batch: 20_000,
            retire_after_s: 3600.0,
            startup_timeout_s: 300.0,
            status_interval_s: 5.0,
            max_partition_skew_s: 60.0,
            rank0_weight: 0.5,
        }
    }
}

/// The built-in network simulator (the embedded default's data).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    pub seed: u64,
    pub seismic_stations: usize,
    pub sample_rate_hz: f64,
    pub duration_s: f64,
    pub events: usize,
    pub groundwater_sensors: usize,
    pub ph_sensors: usize,
    /// Days of groundwater and pH readings (every 15 min) ending with the
    /// seismic window.
    pub env_days: f64,
    /// UTC start of the seismic window, RFC 3339.
    pub start: String,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 2008,
            seismic_stations: 20,
            sample_rate_hz: 100.0,
            duration_s: 600.0,
            events: 3,
            groundwater_sensors: 4,
            ph_sensors: 4,
            env_days: 30.0,
            start: "2024-05-01T12:00:00Z".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    pub name: String,
    pub select: Vec<String>,
    /// The steps; filled from `ioos_qc_config` when that is given instead.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// An ioos_qc configuration file (YAML/JSON) whose qartod tests are the
    /// chain's steps ([`ioos_qc`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ioos_qc_config: Option<PathBuf>,
    /// The stream of that file the chain runs (needed when it has several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ioos_qc_stream: Option<String>,
    /// Keep the processed trace (HDF5 sink).
    #[serde(default)]
    pub traces: bool,
    /// For irregular series (no sample rate, e.g. loggers with jittered
    /// timestamps): the nominal time between readings, in seconds, that
    /// windows in readings (`flat_line`, `attenuated_signal`, `stats` gaps)
    /// are reckoned with. Without it batch takes the series' median
    /// interval, which a stream cannot know in advance, so stream chains
    /// with those steps need it. Regular series use their rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nominal_interval_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoincidenceConfig {
    pub chain: String,
    pub threshold_sum: f64,
    #[serde(default = "default_max_trigger_length")]
    pub max_trigger_length_s: f64,
    #[serde(default)]
    pub delete_long_trigger: bool,
    #[serde(default)]
    pub trigger_off_extension_s: f64,
    /// Per-sensor weights (sensor id → weight); 1.0 when absent.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

fn default_max_trigger_length() -> f64 {
    1e6
}

/// Which command the config is loaded for; stream mode rejects batch-only steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stream,
    Batch,
    /// `produce`, `schema apply`: only the connection sections matter.
    Tooling,
}

impl Config {
    /// Reads, parses and validates `path` for `mode`.
    pub fn load(path: &Path, mode: Mode) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: None,
            reason: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, path, mode)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, mode: Mode) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: None,
            reason: format!("invalid TOML: {}", e.message()),
        })?;
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError {
                file: path.to_owned(),
                key: (key != ".").then_some(key),
                reason: inner.message().to_string(),
            }
        })?;
        // The steps of chains given as ioos_qc files, before the checks
        // (tooling commands run no chain and leave the files unread).
        if matches!(mode, Mode::Stream | Mode::Batch) {
            for (i, ch) in cfg.chains.iter_mut().enumerate() {
                let Some(file) = &ch.ioos_qc_config else {
                    continue;
                };
                if !ch.steps.is_empty() {
                    return Err(ConfigError {
                        file: path.to_owned(),
                        key: Some(format!("chains[{i}].ioos_qc_config")),
                        reason: "a chain takes steps or an ioos_qc_config, not both".into(),
                    });
                }
                ch.steps = ioos_qc::steps(file, ch.ioos_qc_stream.as_deref(), mode)?;
            }
        }
        validate::validate(&cfg, mode).map_err(|(key, reason)| ConfigError {
            file: path.to_owned(),
            key: Some(key),
            reason,
        })?;
        if let (Some(file), Mode::Stream | Mode::Batch) = (&cfg.stations, mode) {
            cfg.station_table = std::sync::Arc::new(read_stations(file, &cfg.chains)?);
        }
        Ok(cfg)
    }

    /// True if a step of some chain is one `is` accepts.
    pub fn has_step(&self, is: impl Fn(&Step) -> bool) -> bool {
        self.chains.iter().flat_map(|c| &c.steps).any(is)
    }

    /// A stable hash of the processing definition (chains, coincidence and
    /// the station positions location tests flag with), stored in
    /// checkpoints so a resumed job refuses changed chains.
    pub fn chains_hash(&self) -> u64 {
        let mut text =
            serde_json::to_string(&(&self.chains, &self.coincidence)).unwrap_or_default();
        // A location test's flag is fixed when its state is built, so a
        // moved station must not resume; other station fields may change.
        // Only then, so hashes of configs without such a test stay.
        let located = self.has_step(|s| matches!(s, Step::Location(_) | Step::LocationBounds(_)));
        if located {
            let at: Vec<(&str, u64, u64)> = self
                .station_table
                .iter()
                .map(|s| {
                    (
                        s.sensor_id.as_str(),
                        s.longitude.to_bits(),
                        s.latitude.to_bits(),
                    )
                })
                .collect();
            text.push_str(&serde_json::to_string(&at).unwrap_or_default());
        }
        fnv1a(text.as_bytes())
    }
}

/// Reads the stations file; a station no chain selects (an unknown
/// sensor: a typo, or a file of another network) is an error naming its
/// line.
fn read_stations(
    file: &Path,
    chains: &[ChainConfig],
) -> Result<crate::stations::Stations, ConfigError> {
    let err = |line: usize, reason: String| ConfigError {
        file: file.to_owned(),
        key: None,
        reason: if line > 0 {
            format!("line {line}: {reason}")
        } else {
            reason
        },
    };
    let table = crate::stations::Stations::read(file).map_err(|e| err(e.line, e.reason))?;
    let mut b = globset::GlobSetBuilder::new();
    for g in chains.iter().flat_map(|c| &c.select) {
        // Checked by validate; a bad glob cannot get here.
        if let Ok(g) = globset::Glob::new(g) {
            b.add(g);
        }
    }
    let selected = b.build().map_err(|e| err(0, e.to_string()))?;
    let unknown = table
        .lines()
        .filter(|(_, s)| !selected.is_match(&s.sensor_id))
        .min_by_key(|(line, _)| *line);
    if let Some((line, st)) = unknown {
        return Err(err(
            line,
            format!(
                "sensor {} is not selected by any chain (unknown sensor)",
                st.sensor_id
            ),
        ));
    }
    Ok(table)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    fn hash(stations: &str, steps: &str) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("st.csv");
        std::fs::write(&st, stations).unwrap();
        let text = format!(
            "stations = \"{}\"\n[source]\nkind = \"files\"\n[[chains]]\nname = \"q\"\nselect = [\"A.B..*\"]\nsteps = [{steps}]\n",
            st.display()
        );
        Config::parse(&text, Path::new("t.toml"), Mode::Batch)
            .unwrap()
            .chains_hash()
    }

    /// A moved station changes the hash of a chain with location tests
    /// (their flag is fixed in the checkpointed state); nothing else does.
    #[test]
    fn station_positions_count_for_location_tests_only() {
        let head = "sensor_id,latitude,longitude,unit\n";
        let a = format!("{head}A.B..C,52.0,-1.0,m\n");
        let moved = format!("{head}A.B..C,52.5,-1.0,m\n");
        let relabelled = format!("{head}A.B..C,52.0,-1.0,cm\n");
        let loc = r#"{ op = "location" }"#;
        let gr = r#"{ op = "gross_range", fail_span = [0.0, 1.0] }"#;
        assert_ne!(hash(&a, loc), hash(&moved, loc));
        assert_eq!(hash(&a, loc), hash(&relabelled, loc));
        assert_eq!(hash(&a, gr), hash(&moved, gr));
    }
}

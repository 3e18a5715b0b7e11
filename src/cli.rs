//! The command line (docs/reference.md, "Command line"). Exit codes: 0 success, 2 usage or
//! configuration error, 1 runtime failure.

use crate::config::{Config, ConfigError, Mode};
use crate::logging::{self, LogFormat};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "fakopp",
    version,
    about = "FåKopp: MPI-native batch-and-stream processing for environmental sensor networks"
)]
pub struct Cli {
    /// Log format on stderr (json for cluster log collectors).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The TOML configuration file.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Jsonl,
    Hdf5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Mseed,
    Csv,
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The stream job: Kafka → MPI kernels → sinks. Under `mpirun -n N`
    /// rank 0 coordinates and computes, ranks ≥ 1 compute.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// After this many seconds without new packets: flush, checkpoint,
        /// commit and exit 0.
        #[arg(long, value_name = "S")]
        exit_when_idle: Option<f64>,
        /// Serve Prometheus metrics on this address (rank 0).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<String>,
        /// Resume although the checkpoint's chains differ (its offsets and
        /// reorder buffers kept, kernel and coincidence state fresh), or
        /// although no checkpoint is usable (the group's offsets, fresh
        /// state).
        #[arg(long)]
        reset_state: bool,
    },
    /// Reprocess files (MiniSEED, CSV) through the configured chains.
    Batch {
        #[command(flatten)]
        config: ConfigArg,
        /// Output file (default: the config's sinks).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Output format when --output is given, or jsonl to stdout.
        #[arg(long, value_enum)]
        format: Option<OutputFormat>,
        /// Report and skip bad records instead of failing.
        #[arg(long)]
        keep_going: bool,
        /// Input files; none means the config's source (e.g. synthetic).
        /// MiniSEED files are memory-mapped: do not truncate or rewrite them
        /// while the job reads them.
        inputs: Vec<PathBuf>,
    },
    /// Publish SensorPackets to Kafka from files or the synthetic network.
    Produce {
        #[command(flatten)]
        config: ConfigArg,
        /// Packets per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// Pace at real time × SPEED instead of a fixed rate.
        #[arg(long, conflicts_with = "rate")]
        speed: Option<f64>,
        /// Samples per packet.
        #[arg(long, default_value_t = 100)]
        packet_samples: usize,
        /// Publish the built-in synthetic network instead of files.
        #[arg(long, conflicts_with = "inputs")]
        synthetic: bool,
        inputs: Vec<PathBuf>,
    },
    /// Read stored raw data back from Cassandra (`raw_packets`) as
    /// MiniSEED, CSV or JSON lines.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Sensor ids to export, as globs (`GB.*..HH?`); repeatable.
        #[arg(long = "sensor", value_name = "GLOB", required = true)]
        sensors: Vec<String>,
        /// Start of the time range (RFC 3339, inclusive).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// End of the time range (RFC 3339, exclusive).
        #[arg(long, value_name = "TIME")]
        to: String,
        #[arg(long, value_enum, default_value = "mseed")]
        format: ExportFormat,
        /// Output file (standard output when absent; MiniSEED needs one).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// MiniSEED format version (2 or 3).
        #[arg(long, default_value_t = 2)]
        mseed_version: u8,
        /// MiniSEED record length in bytes (the largest for version 3).
        #[arg(long, default_value_t = 4096)]
        record_length: i32,
        /// Report and skip damaged packets instead of stopping.
        #[arg(long)]
        keep_going: bool,
    },
    /// Cassandra schema management.
    Schema {
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Checkpoint tools.
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
    /// Checks of the installation (run under mpirun on a cluster).
    Selftest {
        #[command(subcommand)]
        what: SelftestWhat,
    },
}

#[derive(Debug, Subcommand)]
pub enum SelftestWhat {
    /// Scatterv/gatherv round trip of variable-length buffers over all ranks.
    Mpi,
}

#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Create the keyspace and tables, idempotently, and record the
    /// schema version; refuses a keyspace in an older layout unless
    /// --migrate is given.
    Apply {
        #[command(flatten)]
        config: ConfigArg,
        /// Convert a keyspace in an older layout in place (resumable: run
        /// it again after an interruption). Stop stream jobs first.
        #[arg(long)]
        migrate: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Print what a checkpoint holds.
    Inspect { file: PathBuf },
}

/// A failure with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("usage error: {0}")]
    Usage(String),
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    /// A configuration problem found at run time (e.g. a checkpoint made
    /// with other chains) is still a configuration error: exit code 2.
    fn from(e: anyhow::Error) -> Failure {
        match e.downcast::<ConfigError>() {
            Ok(c) => Failure::Config(c),
            Err(e) => Failure::Runtime(e),
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Config(_) | Failure::Usage(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }
}

/// Parses the command line, runs it, returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    logging::init(cli.log_format);
    match run(cli.command) {
        Ok(()) => 0,
        Err(f) => {
            match cli.log_format {
                LogFormat::Json => tracing::error!(exit_code = f.exit_code(), "{f}"),
                LogFormat::Text => eprintln!("fakopp: {f}"),
            }
            f.exit_code()
        }
    }
}

fn load(arg: &ConfigArg, mode: Mode) -> Result<Config, Failure> {
    Ok(Config::load(&arg.config, mode)?)
}

fn run(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::Run {
            config,
            exit_when_idle,
            metrics_addr,
            reset_state,
        } => {
            let cfg = load(&config, Mode::Stream)?;
            if exit_when_idle.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return Err(Failure::Usage(
                    "--exit-when-idle must be a number of seconds > 0".into(),
                ));
            }
            crate::stream::run(
                &cfg,
                crate::stream::RunArgs {
                    exit_when_idle,
                    metrics_addr,
                    reset_state,
                },
            )?;
            Ok(())
        }
        Command::Batch {
            config,
            output,
            format,
            keep_going,
            inputs,
        } => {
            let cfg = load(&config, Mode::Batch)?;
            crate::batch::run(
                &cfg,
                crate::batch::BatchArgs {
                    inputs,
                    output,
                    format,
                    keep_going,
                },
            )?;
            Ok(())
        }
        Command::Produce {
            config,
            rate,
            speed,
            packet_samples,
            synthetic,
            inputs,
        } => {
            let cfg = load(&config, Mode::Tooling)?;
            let max = cfg.stream.max_samples_per_packet;
            if packet_samples == 0 || packet_samples > max {
                return Err(Failure::Usage(format!(
                    "--packet-samples {packet_samples}: must be 1 to {max} (stream.max_samples_per_packet)"
                )));
            }
            for (flag, v) in [("--rate", rate), ("--speed", speed)] {
                if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(Failure::Usage(format!(
                        "{flag} {v}: must be a finite number > 0"
                    )));
                }
            }
            if !synthetic && inputs.is_empty() && cfg.source.inputs.is_empty() {
                return Err(Failure::Usage(
                    "nothing to produce: give input files or --synthetic".into(),
                ));
            }
            let report = crate::produce::run(
                &cfg,
                crate::produce::ProduceArgs {
                    inputs,
                    synthetic,
                    rate,
                    speed,
                    packet_samples,
                    ..Default::default()
                },
            )?;
            eprintln!("fakopp: {report}");
            Ok(())
        }
        Command::Export {
            config,
            sensors,
            from,
            to,
            format,
            output,
            mseed_version,
            record_length,
            keep_going,
        } => {
            let time = |flag: &str, t: &str| {
                crate::model::parse_time_ns(t).map_err(|e| Failure::Usage(format!("{flag}: {e}")))
            };
            let args = crate::export::ExportArgs {
                sensors,
                from_ns: time("--from", &from)?,
                to_ns: time("--to", &to)?,
                format: match format {
                    ExportFormat::Mseed => crate::export::Format::Mseed {
                        version: mseed_version,
                        record_length,
                    },
                    ExportFormat::Csv => crate::export::Format::Csv,
                    ExportFormat::Jsonl => crate::export::Format::Jsonl,
                },
                output,
                keep_going,
            };
            crate::export::check(&args).map_err(|e| Failure::Usage(e.0))?;
            let cfg = load(&config, Mode::Tooling)?;
            let report = crate::export::run(&cfg, &args).map_err(|e| match e
                .downcast::<crate::export::BadArgs>()
            {
                Ok(bad) => Failure::Usage(bad.0),
                Err(e) => Failure::from(e),
            })?;
            eprintln!("fakopp: {report}");
            Ok(())
        }
        Command::Schema {
            action: SchemaAction::Apply { config, migrate },
        } => {
            let cfg = load(&config, Mode::Tooling)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)?;
            rt.block_on(async {
                let session = crate::sink::cassandra::connect(&cfg.cassandra).await?;
                crate::sink::cassandra::apply_schema(&session, &cfg.cassandra, migrate).await
            })?;
            Ok(())
        }
        Command::Selftest {
            what: SelftestWhat::Mpi,
        } => {
            let dist = crate::dist::Dist::init()?;
            let report = crate::selftest::mpi(&dist)?;
            if dist.is_root() {
                println!("{report}");
            }
            Ok(())
        }
        Command::Checkpoint {
            action: CheckpointAction::Inspect { file },
        } => {
            print!("{}", crate::inspect::describe(&file)?);
            Ok(())
        }
    }
}

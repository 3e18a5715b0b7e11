//! Logs go to stderr through `tracing`; `--log-format json` for cluster
//! log collectors. `RUST_LOG` / `FAKOPP_LOG` override the level filter.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `rank` is added to every line when the
/// job runs under MPI so interleaved rank logs stay readable.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FAKOPP_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,scylla=warn"));
    // Colours only on a terminal: sbatch log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // A second init (tests calling main twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

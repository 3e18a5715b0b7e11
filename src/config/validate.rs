//! Semantic checks that serde cannot express. Each failure is
//! `(key path, reason)`.

use super::{Config, Mode, SourceKind, Step};

type Check = Result<(), (String, String)>;

/// librdkafka properties FåKopp sets itself because the delivery protocol
/// depends on them (docs/reference.md, "Semantics"): a user's value would
/// silently break it, so it is refused.
const RESERVED_KAFKA_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "is set by kafka.brokers"),
    ("metadata.broker.list", "is set by kafka.brokers"),
    ("group.id", "is set by kafka.group"),
    (
        "enable.auto.commit",
        "is fixed to false: offsets are committed only after a checkpoint",
    ),
    (
        "enable.auto.offset.store",
        "is fixed to false: offsets are committed only after a checkpoint",
    ),
    (
        "auto.offset.reset",
        "is fixed to earliest: start offsets come from the checkpoint or the group",
    ),
    ("enable.partition.eof", "is fixed to false by the consumer"),
    (
        "enable.idempotence",
        "is fixed to true: the producers must not duplicate or reorder messages",
    ),
    (
        "request.required.acks",
        "is fixed to all (an alias of acks): a message counts as sent only when every replica has it",
    ),
    (
        "acks",
        "is fixed to all (idempotent producers): a message counts as sent only when every replica has it",
    ),
];

fn fail(key: impl Into<String>, reason: impl Into<String>) -> Check {
    Err((key.into(), reason.into()))
}

fn positive(key: String, v: f64) -> Check {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        fail(key, format!("must be a finite number > 0, got {v}"))
    }
}

/// CQL identifiers cannot be bound in prepared statements, so the keyspace
/// name is checked here before it is ever spliced into a statement.
pub fn is_cql_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic())
        && s.len() <= 48
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// `source.sensors`, `source.from` and `source.to` belong to
/// `kind = "cassandra"`, which needs all three (and is batch's source only).
fn source_range(cfg: &Config, mode: Mode) -> Check {
    let src = &cfg.source;
    if src.kind != SourceKind::Cassandra {
        for (key, set) in [
            ("source.sensors", !src.sensors.is_empty()),
            ("source.from", src.from.is_some()),
            ("source.to", src.to.is_some()),
        ] {
            if set {
                fail(key, "is for source.kind = \"cassandra\" only")?;
            }
        }
        return Ok(());
    }
    if mode == Mode::Stream {
        fail(
            "source.kind",
            "\"cassandra\" is a source for `fakopp batch`; the stream job reads Kafka",
        )?;
    }
    if src.sensors.is_empty() {
        fail(
            "source.sensors",
            "source.kind = \"cassandra\" needs sensor id globs, e.g. [\"GB.*\"]",
        )?;
    }
    for (i, g) in src.sensors.iter().enumerate() {
        if let Err(e) = globset::Glob::new(g) {
            fail(format!("source.sensors[{i}]"), format!("`{g}`: {e}"))?;
        }
    }
    let mut at = [0i64; 2];
    for (k, (key, v)) in [("source.from", &src.from), ("source.to", &src.to)]
        .into_iter()
        .enumerate()
    {
        match v.as_deref().map(crate::model::parse_time_ns) {
            None => fail(key, "source.kind = \"cassandra\" needs a time range")?,
            Some(Err(e)) => fail(key, e)?,
            Some(Ok(t)) => at[k] = t,
        }
    }
    if at[0] >= at[1] {
        fail("source.to", "must be after source.from")?;
    }
    Ok(())
}

pub(super) fn validate(cfg: &Config, mode: Mode) -> Check {
    let c = &cfg.cassandra;
    if !is_cql_identifier(&c.keyspace) {
        fail(
            "cassandra.keyspace",
            format!(
                "`{}` is not a valid CQL identifier (letters, digits, _; at most 48)",
                c.keyspace
            ),
        )?;
    }
    if !c.replication.starts_with('{')
        || !c.replication.ends_with('}')
        || !c
            .replication
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || " '{}:,_.".contains(ch))
    {
        fail("cassandra.replication", "must be a CQL map literal such as {'class': 'SimpleStrategy', 'replication_factor': 1}")?;
    }
    if c.nodes.is_empty() {
        fail("cassandra.nodes", "needs at least one host:port")?;
    }
    if c.max_in_flight == 0 {
        fail("cassandra.max_in_flight", "must be >= 1")?;
    }
    if c.password_env.is_some() && c.username.is_none() {
        fail(
            "cassandra.password_env",
            "is set but cassandra.username is not",
        )?;
    }
    if let Some(tls) = &c.tls {
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            fail(
                "cassandra.tls",
                "cert_file and key_file go together (a client certificate needs its key)",
            )?;
        }
        for (key, path) in [
            ("cassandra.tls.ca_file", Some(&tls.ca_file)),
            ("cassandra.tls.cert_file", tls.cert_file.as_ref()),
            ("cassandra.tls.key_file", tls.key_file.as_ref()),
        ] {
            if let Some(p) = path.filter(|p| !p.is_file()) {
                fail(key, format!("{} is not a readable file", p.display()))?;
            }
        }
    }
    for (k, v) in [
        ("kafka.brokers", &cfg.kafka.brokers),
        ("kafka.topic", &cfg.kafka.topic),
        ("kafka.group", &cfg.kafka.group),
        ("kafka.dlq_topic", &cfg.kafka.dlq_topic),
    ] {
        if v.trim().is_empty() {
            fail(k, "must not be empty")?;
        }
    }
    for (table, props) in [
        ("kafka.properties", cfg.kafka.properties.keys()),
        ("kafka.properties_env", cfg.kafka.properties_env.keys()),
    ] {
        for prop in props {
            if let Some((_, why)) = RESERVED_KAFKA_PROPERTIES.iter().find(|(p, _)| p == prop) {
                fail(format!("{table}.\"{prop}\""), *why)?;
            }
        }
    }
    for (prop, var) in &cfg.kafka.properties_env {
        let key = format!("kafka.properties_env.\"{prop}\"");
        if cfg.kafka.properties.contains_key(prop) {
            fail(
                key,
                "is also set in kafka.properties (give it in one place)",
            )?;
        } else if var.trim().is_empty() || var.contains('=') || var.contains('\0') {
            fail(key, "must name an environment variable")?;
        }
    }
    if cfg.kafka.topic == cfg.kafka.dlq_topic {
        fail("kafka.dlq_topic", "must differ from kafka.topic")?;
    }
    positive("checkpoint.interval_s".into(), cfg.checkpoint.interval_s)?;
    if cfg.stream.batch_interval_ms == 0 {
        fail("stream.batch_interval_ms", "must be >= 1")?;
    }
    if !(cfg.stream.reorder_window_s.is_finite() && cfg.stream.reorder_window_s >= 0.0) {
        fail("stream.reorder_window_s", "must be a finite number >= 0")?;
    }
    if cfg.stream.max_packets_per_batch == 0 {
        fail("stream.max_packets_per_batch", "must be >= 1")?;
    }
    if cfg.stream.max_samples_per_packet == 0 {
        fail("stream.max_samples_per_packet", "must be >= 1")?;
    }
    positive(
        "stream.startup_timeout_s".into(),
        cfg.stream.startup_timeout_s,
    )?;
    positive(
        "stream.status_interval_s".into(),
        cfg.stream.status_interval_s,
    )?;
    positive("stream.retire_after_s".into(), cfg.stream.retire_after_s)?;
    positive(
        "stream.max_partition_skew_s".into(),
        cfg.stream.max_partition_skew_s,
    )?;
    if !(0.0..=1.0).contains(&cfg.stream.rank0_weight) {
        fail("stream.rank0_weight", "must be a number from 0 to 1")?;
    }
    if cfg.stream.retire_after_s <= cfg.stream.reorder_window_s {
        fail(
            "stream.retire_after_s",
            format!(
                "must exceed stream.reorder_window_s ({} s): a sensor is only silent once its \
                 data are behind the reorder window",
                cfg.stream.reorder_window_s
            ),
        )?;
    }
    let s = &cfg.synthetic;
    positive("synthetic.sample_rate_hz".into(), s.sample_rate_hz)?;
    positive("synthetic.duration_s".into(), s.duration_s)?;
    positive("synthetic.env_days".into(), s.env_days)?;
    if crate::model::parse_time_ns(&s.start).is_err() {
        fail(
            "synthetic.start",
            format!("`{}` is not an RFC 3339 time", s.start),
        )?;
    }
    if cfg.source.kind == SourceKind::Files && mode == Mode::Stream && cfg.source.inputs.is_empty()
    {
        fail(
            "source.inputs",
            "source.kind = \"files\" needs at least one input",
        )?;
    }
    source_range(cfg, mode)?;
    if cfg.sinks.kinds.is_empty() && mode != Mode::Tooling {
        fail("sinks.kinds", "needs at least one sink")?;
    }

    let mut names = std::collections::BTreeSet::new();
    for (i, ch) in cfg.chains.iter().enumerate() {
        let at = format!("chains[{i}]");
        if ch.name.trim().is_empty() {
            fail(format!("{at}.name"), "must not be empty")?;
        }
        if !names.insert(ch.name.as_str()) {
            fail(
                format!("{at}.name"),
                format!("chain name `{}` is used twice", ch.name),
            )?;
        }
        if ch.select.is_empty() {
            fail(
                format!("{at}.select"),
                "must name at least one glob over sensor ids",
            )?;
        }
        if let Some(v) = ch.nominal_interval_s {
            positive(format!("{at}.nominal_interval_s"), v)?;
        }
        for (j, g) in ch.select.iter().enumerate() {
            if let Err(e) = globset::Glob::new(g) {
                fail(
                    format!("{at}.select[{j}]"),
                    format!("invalid glob `{g}`: {e}"),
                )?;
            }
        }
        // Tooling commands leave an ioos_qc file unread (`Config::parse`).
        if ch.steps.is_empty() && !(mode == Mode::Tooling && ch.ioos_qc_config.is_some()) {
            fail(format!("{at}.steps"), "must have at least one step")?;
        }
        if mode == Mode::Tooling && ch.ioos_qc_config.is_some() && !ch.steps.is_empty() {
            fail(
                format!("{at}.ioos_qc_config"),
                "a chain takes steps or an ioos_qc_config, not both",
            )?;
        }
        if ch.ioos_qc_stream.is_some() && ch.ioos_qc_config.is_none() {
            fail(
                format!("{at}.ioos_qc_stream"),
                "names a stream of an ioos_qc_config, and the chain has none",
            )?;
        }
        for (j, st) in ch.steps.iter().enumerate() {
            let key = format!("{at}.steps[{j}]");
            if let Some(why) = st.batch_only().filter(|_| mode == Mode::Stream) {
                fail(
                    format!("{key}.op"),
                    format!(
                        "`{}` is batch-only and cannot run in a stream: {why}",
                        st.op()
                    ),
                )?;
            }
            step(&key, st)?;
        }
    }
    for (i, co) in cfg.coincidence.iter().enumerate() {
        let at = format!("coincidence[{i}]");
        let Some(ch) = cfg.chains.iter().find(|c| c.name == co.chain) else {
            return fail(
                format!("{at}.chain"),
                format!("no chain named `{}`", co.chain),
            );
        };
        if !ch.steps.iter().any(|s| matches!(s, Step::Trigger { .. })) {
            fail(
                format!("{at}.chain"),
                format!("chain `{}` has no trigger step", co.chain),
            )?;
        }
        positive(format!("{at}.threshold_sum"), co.threshold_sum)?;
        positive(
            format!("{at}.max_trigger_length_s"),
            co.max_trigger_length_s,
        )?;
        if !(co.trigger_off_extension_s.is_finite() && co.trigger_off_extension_s >= 0.0) {
            fail(
                format!("{at}.trigger_off_extension_s"),
                "must be a finite number >= 0",
            )?;
        }
    }
    // Last, so a config's other mistakes are named first.
    if mode == Mode::Stream && cfg.sinks.kinds.contains(&super::SinkKind::Hdf5) {
        // An HDF5 results file is written whole; a stream that runs for
        // months would have to hold every result until the end.
        fail(
            "sinks.kinds",
            "\"hdf5\" (the default when [sinks] is left out) is a batch sink; a stream writes its results to cassandra, jsonl or kafka \
             (`fakopp batch` writes HDF5 results files)",
        )?;
    }
    Ok(())
}

fn sta_lta(key: &str, sta: f64, lta: f64) -> Check {
    positive(format!("{key}.sta"), sta)?;
    positive(format!("{key}.lta"), lta)?;
    if sta >= lta {
        fail(
            format!("{key}.sta"),
            format!("sta ({sta} s) must be shorter than lta ({lta} s)"),
        )?;
    }
    Ok(())
}

/// Maps a kernel's parameter check to a config key under `key`.
fn kernel(key: &str, r: fakopp_kernels::Result<()>) -> Check {
    match r {
        Ok(()) => Ok(()),
        Err(fakopp_kernels::KernelError::InvalidParameter { name, reason }) => {
            fail(format!("{key}.{name}"), reason)
        }
        Err(e) => fail(key.to_string(), e.to_string()),
    }
}

fn corners(key: &str, n: u32) -> Check {
    if (1..=16).contains(&n) {
        Ok(())
    } else {
        fail(
            format!("{key}.corners"),
            format!("must be between 1 and 16, got {n}"),
        )
    }
}

pub(super) fn step(key: &str, st: &Step) -> Check {
    match *st {
        Step::Bandpass {
            freqmin,
            freqmax,
            corners: n,
            ..
        }
        | Step::Bandstop {
            freqmin,
            freqmax,
            corners: n,
            ..
        } => {
            positive(format!("{key}.freqmin"), freqmin)?;
            positive(format!("{key}.freqmax"), freqmax)?;
            if freqmin >= freqmax {
                fail(
                    format!("{key}.freqmin"),
                    format!("freqmin ({freqmin} Hz) must be below freqmax ({freqmax} Hz)"),
                )?;
            }
            corners(key, n)
        }
        Step::Lowpass {
            freq, corners: n, ..
        }
        | Step::Highpass {
            freq, corners: n, ..
        } => {
            positive(format!("{key}.freq"), freq)?;
            corners(key, n)
        }
        Step::Demean {} | Step::Detrend { .. } => Ok(()),
        Step::Taper {
            max_percentage,
            max_length,
        } => {
            if !(max_percentage > 0.0 && max_percentage <= 0.5) {
                fail(
                    format!("{key}.max_percentage"),
                    format!("must be in (0, 0.5], got {max_percentage}"),
                )?;
            }
            if let Some(l) = max_length {
                positive(format!("{key}.max_length"), l)?;
            }
            Ok(())
        }
        Step::Rmhp { window } => positive(format!("{key}.window"), window),
        Step::Itaper { length } => positive(format!("{key}.length"), length),
        Step::ClassicStaLta { sta, lta }
        | Step::RecursiveStaLta { sta, lta }
        | Step::DelayedStaLta { sta, lta }
        | Step::StaltaAbs { sta, lta } => sta_lta(key, sta, lta),
        Step::CarlStaTrig {
            sta,
            lta,
            ratio,
            quiet,
        } => {
            sta_lta(key, sta, lta)?;
            if !ratio.is_finite() {
                fail(format!("{key}.ratio"), "must be finite")?;
            }
            if !quiet.is_finite() {
                fail(format!("{key}.quiet"), "must be finite")?;
            }
            Ok(())
        }
        Step::ZDetect { sta } => positive(format!("{key}.sta"), sta),
        Step::Trigger {
            on, off, max_len, ..
        } => {
            positive(format!("{key}.on"), on)?;
            if !(off.is_finite() && off >= 0.0) {
                fail(
                    format!("{key}.off"),
                    format!("must be a finite number >= 0, got {off}"),
                )?;
            }
            if let Some(m) = max_len {
                positive(format!("{key}.max_len"), m)?;
            }
            Ok(())
        }
        Step::AicPick { before, after } => {
            positive(format!("{key}.before"), before)?;
            positive(format!("{key}.after"), after)
        }
        Step::GrossRange(ref c) => kernel(key, c.validate()),
        Step::Spike(ref c) => kernel(key, c.validate()),
        Step::RateOfChange(ref c) => kernel(key, c.validate()),
        Step::FlatLine(ref c) => kernel(key, c.validate()),
        Step::AttenuatedSignal(ref c) => kernel(key, c.validate()),
        Step::TimeGap(ref c) => kernel(key, c.validate()),
        Step::PercentileRange(ref c) => kernel(key, c.validate()),
        Step::Syntax(ref c) => kernel(key, c.validate()),
        Step::Location(ref c) => kernel(key, c.validate()),
        Step::LocationBounds(ref c) => kernel(key, c.validate()),
        Step::ImpossibleDate(ref c) => c.kernel().map(drop).or_else(|e| fail(key, e)),
        Step::DataReception(ref c) => c.kernel().map(drop).or_else(|e| fail(key, e)),
        // Climatology and stats are checked by building their state (they
        // need no sampling rate for that).
        Step::Climatology(ref c) => {
            kernel(key, fakopp_kernels::qc::ClimatologyState::new(c).map(drop))
        }
        Step::Stats(ref c) => kernel(
            key,
            fakopp_kernels::stats::StatsState::new(c, None).map(drop),
        ),
    }
}

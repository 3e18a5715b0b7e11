//! The Cassandra sink proper: raw packets and chain results written with
//! prepared statements, bounded concurrency, endless retry with backoff
//! until success or cancellation (docs/architecture.md, "Delivery
//! protocol (stream)" and "Failures").
//!
//! * Every statement is prepared once in [`CassandraSink::connect`]; values
//!   are always bound, never formatted into CQL. Only the keyspace name (a
//!   checked identifier) is spliced into statement text, at prepare time.
//! * Partition key columns are bound markers of every prepared statement, so
//!   the driver's default (token-aware) load balancing routes each write to
//!   a replica of its partition.
//! * Every primary key is derived from the data (sensor, chain, UTC day,
//!   time), so a replay overwrites the same rows.
//! * At most `max_in_flight` requests are in flight across the whole sink
//!   (a semaphore shared by concurrent calls). Rows of the same partition
//!   may go together in one UNLOGGED batch (bounded in size); rows of
//!   different partitions are never batched.
//! * A failed request is retried with exponential backoff (100 ms doubling
//!   to 5 s, equal jitter) for ever, each retry logged as a warning, until
//!   it succeeds or the sink's cancellation signal fires (see
//!   [`CassandraSink::with_cancel`]). Permanent refusals (`retry.rs`: an
//!   unknown table, a changed schema, a refused value, authorisation) fail
//!   at once with the server's message.

use super::{apply_schema, connect};
use crate::config::CassandraConfig;
use crate::model::{day_of, SensorKind, SensorPacket};
use crate::output::{qc_flag_keys, EventRec, QcRec, Results, StatsRec, TriggerRec};
use anyhow::{anyhow, bail, Context, Result};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// First retry delay; doubles on every further failure of the same write.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Largest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Rows of one partition sent together as one UNLOGGED batch at most.
const BATCH_MAX_ROWS: usize = 16;
/// Estimated bytes of bound values in one batch at most; stays under
/// Cassandra's default `batch_size_warn_threshold` (5 KiB).
const BATCH_MAX_BYTES: usize = 4 * 1024;

/// One packet for `raw_packets`. Borrowed, so the pipeline need not copy
/// its packets; `late` marks packets that arrived beyond the reorder window
/// (stored, but not processed).
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    pub packet: &'a SensorPacket,
    pub late: bool,
}

/// The tables the sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    RawPackets,
    Triggers,
    Events,
    QcFlags,
    WindowStats,
    Stations,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::RawPackets,
        Table::Triggers,
        Table::Events,
        Table::QcFlags,
        Table::WindowStats,
        Table::Stations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::RawPackets => "raw_packets",
            Table::Triggers => "triggers",
            Table::Events => "events",
            Table::QcFlags => "qc_flags",
            Table::WindowStats => "window_stats",
            Table::Stations => "stations",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A `qc_flags` row as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct QcRow {
    pub chain: String,
    pub sensor: String,
    pub time_ns: i64,
    pub value: f64,
    /// Flag of each QC test, keyed by test name.
    pub flags: BTreeMap<String, i8>,
    pub aggregate: i8,
}

/// Counters for the status line and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkStats {
    /// Rows acknowledged by Cassandra (a row written twice counts twice).
    pub rows_written: u64,
    /// Requests (single statements or same-partition batches) acknowledged.
    pub requests: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Most requests ever in flight at once (never above `max_in_flight`).
    pub peak_in_flight: usize,
    /// Duration of the last `write_raw` / `write_results` call that succeeded.
    pub last_write_latency: Option<Duration>,
    /// Duration of the last successful request (its final attempt).
    pub last_request_latency: Option<Duration>,
    /// The last error a request met (retried or not).
    pub last_error: Option<String>,
}

/// The error of a write call stopped by the cancellation signal; it is the
/// root cause of the `anyhow::Error` (`err.downcast_ref::<WriteCancelled>()`).
/// Rows of the call may or may not have been written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Cassandra write cancelled after {retries} retries (last error: {last_error})")]
pub struct WriteCancelled {
    /// Retries the sink made while the call ran.
    pub retries: u64,
    pub last_error: String,
}

// ---- bound values (matched to bind markers by column name) ----

#[derive(scylla::SerializeRow)]
struct RawVals {
    sensor_id: String,
    day: i32,
    start_time_ns: i64,
    start_time: CqlTimestamp,
    kind: String,
    unit: String,
    sample_rate_hz: f64,
    seq: MaybeUnset<i64>,
    late: bool,
    codec: i32,
    data: Vec<u8>,
}

#[derive(scylla::SerializeRow)]
struct TriggerVals {
    chain: String,
    sensor_id: String,
    day: i32,
    on_time_ns: i64,
    on_time: CqlTimestamp,
    off_time_ns: i64,
    on_index: i64,
    off_index: i64,
    peak_cf: f64,
    pick_time_ns: MaybeUnset<i64>,
}

#[derive(scylla::SerializeRow)]
struct EventVals {
    chain: String,
    day: i32,
    time_ns: i64,
    time: CqlTimestamp,
    duration_s: f64,
    sensors: Vec<String>,
    coincidence_sum: f64,
}

#[derive(scylla::SerializeRow)]
struct QcVals {
    chain: String,
    sensor_id: String,
    day: i32,
    time_ns: i64,
    time: CqlTimestamp,
    value: f64,
    flags: BTreeMap<String, i8>,
    aggregate: i8,
}

#[derive(scylla::SerializeRow)]
struct StatsVals {
    chain: String,
    sensor_id: String,
    day: i32,
    window_start_ns: i64,
    window_start: CqlTimestamp,
    window_s: f64,
    count: i64,
    gaps: i64,
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
    rms: f64,
}

#[derive(scylla::SerializeRow)]
struct StationVals {
    sensor_id: String,
    latitude: f64,
    longitude: f64,
    elevation: f64,
    unit: String,
    kind: String,
}

/// One row for one table.
enum Bound {
    Raw(RawVals),
    Trigger(TriggerVals),
    Event(EventVals),
    Qc(QcVals),
    Stats(StatsVals),
    Station(StationVals),
}

impl SerializeRow for Bound {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        match self {
            Bound::Raw(v) => v.serialize(ctx, writer),
            Bound::Trigger(v) => v.serialize(ctx, writer),
            Bound::Event(v) => v.serialize(ctx, writer),
            Bound::Qc(v) => v.serialize(ctx, writer),
            Bound::Stats(v) => v.serialize(ctx, writer),
            Bound::Station(v) => v.serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

impl Bound {
    fn table(&self) -> Table {
        match self {
            Bound::Raw(_) => Table::RawPackets,
            Bound::Trigger(_) => Table::Triggers,
            Bound::Event(_) => Table::Events,
            Bound::Qc(_) => Table::QcFlags,
            Bound::Stats(_) => Table::WindowStats,
            Bound::Station(_) => Table::Stations,
        }
    }

    /// The partition key, for grouping rows of one partition.
    fn partition(&self) -> (Table, &str, &str, i32) {
        match self {
            Bound::Raw(v) => (Table::RawPackets, "", &v.sensor_id, v.day),
            Bound::Trigger(v) => (Table::Triggers, &v.chain, &v.sensor_id, v.day),
            Bound::Event(v) => (Table::Events, &v.chain, "", v.day),
            Bound::Qc(v) => (Table::QcFlags, &v.chain, &v.sensor_id, v.day),
            Bound::Stats(v) => (Table::WindowStats, &v.chain, &v.sensor_id, v.day),
            Bound::Station(v) => (Table::Stations, "", &v.sensor_id, 0),
        }
    }

    /// Rough size of the bound values in bytes.
    fn approx_bytes(&self) -> usize {
        match self {
            Bound::Raw(v) => 64 + v.sensor_id.len() + v.unit.len() + v.data.len(),
            Bound::Trigger(v) => 80 + v.chain.len() + v.sensor_id.len(),
            Bound::Event(v) => {
                48 + v.chain.len() + v.sensors.iter().map(|s| s.len() + 4).sum::<usize>()
            }
            Bound::Qc(v) => {
                48 + v.chain.len()
                    + v.sensor_id.len()
                    + v.flags.keys().map(|k| k.len() + 9).sum::<usize>()
            }
            Bound::Stats(v) => 100 + v.chain.len() + v.sensor_id.len(),
            Bound::Station(v) => 40 + v.sensor_id.len() + v.unit.len() + v.kind.len(),
        }
    }
}

fn timestamp(time_ns: i64) -> CqlTimestamp {
    CqlTimestamp(time_ns.div_euclid(1_000_000))
}

fn unset_if_none(v: Option<i64>) -> MaybeUnset<i64> {
    // Unset rather than null: a null would write a tombstone.
    match v {
        Some(v) => MaybeUnset::Set(v),
        None => MaybeUnset::Unset,
    }
}

fn to_bigint(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| anyhow!("{what} = {v} does not fit a CQL bigint"))
}

fn raw_vals(r: &RawRow<'_>) -> RawVals {
    let p = r.packet;
    let (coding, data) = fakopp_kernels::pack::encode(&p.samples);
    RawVals {
        sensor_id: p.sensor_id.clone(),
        day: day_of(p.start_time_ns),
        start_time_ns: p.start_time_ns,
        start_time: timestamp(p.start_time_ns),
        kind: p.kind.as_str().to_string(),
        unit: p.unit.clone(),
        sample_rate_hz: p.sample_rate_hz,
        seq: unset_if_none(p.seq),
        late: r.late,
        codec: coding.id(),
        data,
    }
}

fn trigger_vals(t: &TriggerRec) -> Result<TriggerVals> {
    Ok(TriggerVals {
        chain: t.chain.clone(),
        sensor_id: t.sensor.clone(),
        day: day_of(t.on_time_ns),
        on_time_ns: t.on_time_ns,
        on_time: timestamp(t.on_time_ns),
        off_time_ns: t.off_time_ns,
        on_index: to_bigint(t.on_index, "trigger on_index")?,
        off_index: to_bigint(t.off_index, "trigger off_index")?,
        peak_cf: t.peak_cf,
        pick_time_ns: unset_if_none(t.pick_time_ns),
    })
}

fn event_vals(e: &EventRec) -> EventVals {
    EventVals {
        chain: e.chain.clone(),
        day: day_of(e.time_ns),
        time_ns: e.time_ns,
        time: timestamp(e.time_ns),
        duration_s: e.duration_s,
        sensors: e.sensors.clone(),
        coincidence_sum: e.coincidence_sum,
    }
}

fn flag(v: u8, what: &str) -> Result<i8> {
    i8::try_from(v).map_err(|_| anyhow!("{what} flag {v} does not fit a CQL tinyint"))
}

fn qc_vals(q: &QcRec, keys: &HashMap<&str, Vec<String>>) -> Result<QcVals> {
    let names = keys.get(q.chain.as_str()).with_context(|| {
        format!(
            "QC rows of chain `{}` but no test names for it in Results::qc_tests",
            q.chain
        )
    })?;
    if names.len() != q.flags.len() {
        bail!(
            "QC row of chain `{}` sensor `{}` has {} flags but the chain has {} QC tests",
            q.chain,
            q.sensor,
            q.flags.len(),
            names.len()
        );
    }
    let flags = names
        .iter()
        .zip(&q.flags)
        .map(|(n, &f)| Ok((n.clone(), flag(f, n)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok(QcVals {
        chain: q.chain.clone(),
        sensor_id: q.sensor.clone(),
        day: day_of(q.time_ns),
        time_ns: q.time_ns,
        time: timestamp(q.time_ns),
        value: q.value,
        flags,
        aggregate: flag(q.aggregate, "aggregate")?,
    })
}

fn stats_vals(s: &StatsRec) -> Result<StatsVals> {
    Ok(StatsVals {
        chain: s.chain.clone(),
        sensor_id: s.sensor.clone(),
        day: day_of(s.window_start_ns),
        window_start_ns: s.window_start_ns,
        window_start: timestamp(s.window_start_ns),
        window_s: s.window_s,
        count: to_bigint(s.count, "stats count")?,
        gaps: to_bigint(s.gaps, "stats gaps")?,
        min: s.min,
        max: s.max,
        mean: s.mean,
        std: s.std,
        rms: s.rms,
    })
}

/// Why a write call stopped early.
enum Stop {
    Cancelled,
    Failed(anyhow::Error),
}

/// One request: a single row, or an UNLOGGED batch of rows of one partition.
struct Job {
    table: Table,
    rows: Vec<Bound>,
}

/// Groups rows into requests: consecutive runs of rows of the same
/// partition, in input order, cut at `BATCH_MAX_ROWS` / `BATCH_MAX_BYTES`.
/// Rows of different partitions never share a request.
fn plan(rows: Vec<Bound>) -> Vec<Job> {
    let mut groups: Vec<(Vec<Bound>, usize)> = Vec::new();
    let mut open: HashMap<(Table, String, String, i32), usize> = HashMap::new();
    for row in rows {
        let bytes = row.approx_bytes();
        let (t, a, b, d) = row.partition();
        let key = (t, a.to_string(), b.to_string(), d);
        match open.get(&key).copied() {
            Some(i)
                if groups[i].0.len() < BATCH_MAX_ROWS && groups[i].1 + bytes <= BATCH_MAX_BYTES =>
            {
                groups[i].0.push(row);
                groups[i].1 += bytes;
            }
            _ => {
                open.insert(key, groups.len());
                groups.push((vec![row], bytes));
            }
        }
    }
    groups
        .into_iter()
        .map(|(rows, _)| Job {
            table: rows[0].table(),
            rows,
        })
        .collect()
}

/// Prepared statements, in `Table` order.
struct Statements {
    /// By table; `None` for a table the keyspace lacks (only `stations`).
    insert: Vec<Option<PreparedStatement>>,
    select_raw: PreparedStatement,
    select_raw_before: PreparedStatement,
    select_raw_partitions: PreparedStatement,
    select_triggers: PreparedStatement,
    select_events: PreparedStatement,
    select_qc: PreparedStatement,
    select_stats: PreparedStatement,
    count: Vec<Option<PreparedStatement>>,
}

struct Counters {
    rows_written: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    last_write_us: AtomicU64,
    last_request_us: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Bumped on every retry, for waiters (`CassandraSink::retry_watch`).
    retry_tx: watch::Sender<u64>,
}

struct Inner {
    session: Session,
    stmts: Statements,
    counters: Counters,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

/// Writes raw packets and results to Cassandra. Cheap to clone (shared
/// session, statements, counters and in-flight limit).
#[derive(Clone)]
pub struct CassandraSink {
    inner: Arc<Inner>,
    keyspace: String,
    cancel: watch::Receiver<bool>,
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic())
        && s.len() <= 48
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A number in [0, 1) from the standard library's per-instance random
/// hasher keys (jitter needs no better randomness).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The backoff before retry number `attempt` (from 1), before jitter:
/// `BACKOFF_START` doubling up to `BACKOFF_CAP`.
fn backoff(attempt: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_CAP)
}

/// Equal jitter: somewhere in [delay/2, delay).
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + 0.5 * unit_random())
}

/// Resolves once the signal is `true`; never if its sender is gone first.
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn check_keyspace_name(cfg: &CassandraConfig) -> Result<()> {
    if !is_identifier(&cfg.keyspace) {
        bail!(
            "cassandra.keyspace `{}` is not a valid CQL identifier",
            cfg.keyspace
        );
    }
    Ok(())
}

impl CassandraSink {
    /// Connects to `cfg.nodes`, applies `schemas/cassandra.cql` (idempotent;
    /// a keyspace in an older layout is refused, see [`apply_schema`]), and
    /// prepares every statement. The connection error names the nodes.
    /// The sink starts with a cancellation signal that never fires.
    pub async fn connect(cfg: &CassandraConfig) -> Result<Self> {
        check_keyspace_name(cfg)?;
        let session = connect(cfg).await?;
        apply_schema(&session, cfg, false).await?;
        Self::prepare(session, cfg, true).await
    }

    /// Connects to an existing keyspace without changing it (for readers
    /// such as `fakopp export`): refuses a keyspace that does not exist, or
    /// whose layout this build does not read.
    pub async fn open(cfg: &CassandraConfig) -> Result<Self> {
        check_keyspace_name(cfg)?;
        let session = connect(cfg).await?;
        let layout = super::layout(&session, &cfg.keyspace).await?;
        if layout.raw_columns.is_empty() {
            bail!(
                "keyspace `{}` has no raw_packets table: nothing was stored there (create the schema with `fakopp schema apply`)",
                cfg.keyspace
            );
        }
        super::schema::check(&layout, &cfg.keyspace)?;
        Self::prepare(session, cfg, layout.has_stations).await
    }

    /// Prepares every statement; those of `stations` only when the
    /// keyspace has that table (`stations`).
    async fn prepare(session: Session, cfg: &CassandraConfig, stations: bool) -> Result<Self> {
        let ks = &cfg.keyspace;
        let prep = |cql: String| {
            let session = &session;
            async move {
                let mut p = session
                    .prepare(cql.as_str())
                    .await
                    .with_context(|| format!("preparing `{cql}`"))?;
                p.set_is_idempotent(true);
                Ok::<_, anyhow::Error>(p)
            }
        };
        let mut insert = Vec::new();
        for t in Table::ALL {
            let cols = match t {
                Table::RawPackets => "sensor_id, day, start_time_ns, start_time, kind, unit, sample_rate_hz, seq, late, codec, data",
                Table::Triggers => "chain, sensor_id, day, on_time_ns, on_time, off_time_ns, on_index, off_index, peak_cf, pick_time_ns",
                Table::Events => "chain, day, time_ns, time, duration_s, sensors, coincidence_sum",
                Table::QcFlags => "chain, sensor_id, day, time_ns, time, value, flags, aggregate",
                Table::WindowStats => "chain, sensor_id, day, window_start_ns, window_start, window_s, count, gaps, min, max, mean, std, rms",
                Table::Stations => "sensor_id, latitude, longitude, elevation, unit, kind",
            };
            // A keyspace an older fakopp made has no `stations` (it is
            // additive: `schema apply` and `run` add it); reading it, as
            // `export` and batch do, needs none.
            if t == Table::Stations && !stations {
                insert.push(None);
                continue;
            }
            let marks = vec!["?"; cols.split(',').count()].join(", ");
            let p = prep(format!(
                "INSERT INTO {ks}.{} ({cols}) VALUES ({marks})",
                t.name()
            ))
            .await?;
            if !p.is_token_aware() {
                bail!(
                    "INSERT INTO {ks}.{} does not bind its partition key",
                    t.name()
                );
            }
            insert.push(Some(p));
        }
        let mut count = Vec::new();
        for t in Table::ALL {
            count.push(if t == Table::Stations && !stations {
                None
            } else {
                Some(prep(format!("SELECT COUNT(*) FROM {ks}.{}", t.name())).await?)
            });
        }
        let stmts = Statements {
            insert,
            select_raw: prep(format!(
                "SELECT sensor_id, kind, start_time_ns, sample_rate_hz, codec, data, unit, seq, late FROM {ks}.raw_packets WHERE sensor_id = ? AND day = ? AND start_time_ns >= ? AND start_time_ns < ?"
            ))
            .await?,
            select_raw_before: prep(format!(
                "SELECT sensor_id, kind, start_time_ns, sample_rate_hz, codec, data, unit, seq, late FROM {ks}.raw_packets WHERE sensor_id = ? AND day = ? AND start_time_ns < ? ORDER BY start_time_ns DESC LIMIT 1"
            ))
            .await?,
            select_raw_partitions: prep(format!(
                "SELECT DISTINCT sensor_id, day FROM {ks}.raw_packets"
            ))
            .await?,
            select_triggers: prep(format!(
                "SELECT chain, sensor_id, on_time_ns, off_time_ns, on_index, off_index, peak_cf, pick_time_ns FROM {ks}.triggers WHERE chain = ? AND sensor_id = ? AND day = ?"
            ))
            .await?,
            select_events: prep(format!(
                "SELECT chain, time_ns, duration_s, sensors, coincidence_sum FROM {ks}.events WHERE chain = ? AND day = ?"
            ))
            .await?,
            select_qc: prep(format!(
                "SELECT chain, sensor_id, time_ns, value, flags, aggregate FROM {ks}.qc_flags WHERE chain = ? AND sensor_id = ? AND day = ?"
            ))
            .await?,
            select_stats: prep(format!(
                "SELECT chain, sensor_id, window_start_ns, window_s, count, gaps, min, max, mean, std, rms FROM {ks}.window_stats WHERE chain = ? AND sensor_id = ? AND day = ?"
            ))
            .await?,
            count,
        };
        let max_in_flight = cfg.max_in_flight.max(1);
        let (retry_tx, _) = watch::channel(0);
        let (_, cancel) = watch::channel(false);
        Ok(CassandraSink {
            inner: Arc::new(Inner {
                session,
                stmts,
                counters: Counters {
                    rows_written: AtomicU64::new(0),
                    requests: AtomicU64::new(0),
                    retries: AtomicU64::new(0),
                    in_flight: AtomicUsize::new(0),
                    peak_in_flight: AtomicUsize::new(0),
                    last_write_us: AtomicU64::new(0),
                    last_request_us: AtomicU64::new(0),
                    last_error: Mutex::new(None),
                    retry_tx,
                },
                permits: Arc::new(Semaphore::new(max_in_flight)),
                max_in_flight,
            }),
            keyspace: cfg.keyspace.clone(),
            cancel,
        })
    }

    /// Uses `cancel` as this sink's cancellation signal: while it holds
    /// `true`, write calls stop waiting (in-flight requests are abandoned,
    /// backoff sleeps cut short) and return [`WriteCancelled`]; a call made
    /// while it holds `true` returns that at once. Setting it back to
    /// `false` re-arms the sink. Dropping the sender means "never cancel".
    /// Share the pipeline's shutdown channel here so SIGTERM ends an
    /// endless retry during an outage; offsets must then not be committed.
    pub fn with_cancel(mut self, cancel: watch::Receiver<bool>) -> Self {
        self.cancel = cancel;
        self
    }

    /// The keyspace written to.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// The driver session (for tests and ad-hoc reads).
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The configured limit of requests in flight.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight
    }

    /// Counters for the status line and metrics.
    pub fn stats(&self) -> SinkStats {
        let c = &self.inner.counters;
        let us = |a: &AtomicU64| match a.load(Ordering::Relaxed) {
            0 => None,
            v => Some(Duration::from_micros(v)),
        };
        SinkStats {
            rows_written: c.rows_written.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            peak_in_flight: c.peak_in_flight.load(Ordering::Relaxed),
            last_write_latency: us(&c.last_write_us),
            last_request_latency: us(&c.last_request_us),
            last_error: c.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }

    /// The number of retries so far, updated on every retry (wait on it
    /// with `changed` / `wait_for` instead of polling `stats`).
    pub fn retry_watch(&self) -> watch::Receiver<u64> {
        self.inner.counters.retry_tx.subscribe()
    }

    /// Writes packets to `raw_packets`: partition (sensor_id, UTC day of
    /// start), clustering start_time_ns. Returns once every row is
    /// acknowledged (durable at the session's consistency, LOCAL_QUORUM).
    pub async fn write_raw(&self, rows: &[RawRow<'_>]) -> Result<()> {
        let bound = rows.iter().map(|r| Bound::Raw(raw_vals(r))).collect();
        self.run(plan(bound)).await
    }

    /// Writes triggers, events, QC flags, window statistics and stations. The QC
    /// flags map is keyed by the chain's test names from `r.qc_tests` (see
    /// [`qc_flag_keys`]); a QC row whose chain lacks names, or whose flag
    /// count differs from them, fails the call before anything is written.
    pub async fn write_results(&self, r: &Results) -> Result<()> {
        let keys: HashMap<&str, Vec<String>> = r
            .qc_tests
            .iter()
            .map(|(c, names)| (c.as_str(), qc_flag_keys(names)))
            .collect();
        let mut bound =
            Vec::with_capacity(r.triggers.len() + r.events.len() + r.qc.len() + r.stats.len());
        for t in &r.triggers {
            bound.push(Bound::Trigger(trigger_vals(t)?));
        }
        for e in &r.events {
            bound.push(Bound::Event(event_vals(e)));
        }
        for q in &r.qc {
            bound.push(Bound::Qc(qc_vals(q, &keys)?));
        }
        for s in &r.stats {
            bound.push(Bound::Stats(stats_vals(s)?));
        }
        if !r.stations.is_empty() && self.stmts().insert[Table::Stations.index()].is_none() {
            bail!(
                "keyspace `{}` has no stations table (made by an older fakopp): \
                 run `fakopp schema apply --config <file>`",
                self.keyspace
            );
        }
        for st in &r.stations {
            bound.push(Bound::Station(StationVals {
                sensor_id: st.sensor_id.clone(),
                latitude: st.latitude,
                longitude: st.longitude,
                elevation: st.elevation,
                unit: st.unit.clone(),
                kind: st.kind.map_or("", |k| k.as_str()).to_string(),
            }));
        }
        self.run(plan(bound)).await
    }

    /// Runs the requests, at most `max_in_flight` at once across the sink,
    /// each retried until it succeeds; stops at the cancellation signal.
    async fn run(&self, jobs: Vec<Job>) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let retries_before = self.inner.counters.retries.load(Ordering::Relaxed);
        let mut cancel = self.cancel.clone();
        let cancel_err = |inner: &Inner| {
            let c = &inner.counters;
            anyhow::Error::new(WriteCancelled {
                retries: c.retries.load(Ordering::Relaxed) - retries_before,
                last_error: c
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| "none".into()),
            })
        };
        if *cancel.borrow_and_update() {
            return Err(cancel_err(&self.inner));
        }
        let mut set: JoinSet<Result<()>> = JoinSet::new();
        let outcome = self.drive(&mut set, jobs, &mut cancel).await;
        if let Err(e) = outcome {
            // Abandon the other requests of the call, and wait until they
            // are gone, so none of them lingers after the call returns.
            set.shutdown().await;
            return Err(match e {
                Stop::Cancelled => cancel_err(&self.inner),
                Stop::Failed(e) => e,
            });
        }
        self.inner
            .counters
            .last_write_us
            .store(duration_us(start.elapsed()), Ordering::Relaxed);
        Ok(())
    }

    async fn drive(
        &self,
        set: &mut JoinSet<Result<()>>,
        jobs: Vec<Job>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let finish = |r: Result<Result<()>, tokio::task::JoinError>| -> Result<(), Stop> {
            match r {
                Ok(r) => r.map_err(Stop::Failed),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(Stop::Failed(anyhow!("Cassandra write task ended: {e}"))),
            }
        };
        for job in jobs {
            while let Some(r) = set.try_join_next() {
                finish(r)?;
            }
            let permit = tokio::select! {
                biased;
                _ = cancelled(cancel) => return Err(Stop::Cancelled),
                p = self.inner.permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let inner = self.inner.clone();
            set.spawn(async move {
                let _permit = permit;
                write_with_retry(&inner, job).await
            });
        }
        loop {
            tokio::select! {
                biased;
                _ = cancelled(cancel) => return Err(Stop::Cancelled),
                r = set.join_next() => match r {
                    Some(r) => finish(r)?,
                    None => return Ok(()),
                },
            }
        }
    }

    fn stmts(&self) -> &Statements {
        &self.inner.stmts
    }

    /// Every row a statement selects, page by page.
    async fn select_all<R>(
        &self,
        stmt: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        self.select_kept(stmt, values, |_| true).await
    }

    /// The rows a statement selects that `keep` accepts, filtered page by
    /// page (so only those are held).
    async fn select_kept<R>(
        &self,
        stmt: &PreparedStatement,
        values: impl SerializeRow,
        mut keep: impl FnMut(&R) -> bool,
    ) -> Result<Vec<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let mut out = Vec::new();
        let mut state = PagingState::start();
        loop {
            let (res, next) = self
                .inner
                .session
                .execute_single_page(stmt, &values, state)
                .await
                .with_context(|| format!("Cassandra read failed: {}", stmt.get_statement()))?;
            let rows = res.into_rows_result()?;
            for r in rows.rows::<R>()? {
                let r = r?;
                if keep(&r) {
                    out.push(r);
                }
            }
            match next {
                PagingStateResponse::HasMorePages { state: s } => state = s,
                PagingStateResponse::NoMorePages => return Ok(out),
            }
        }
    }

    /// The packets of a sensor stored in the partition of UTC `day` that
    /// start in `[from_ns, to_ns)`, in time order, each with its `late`
    /// flag, or the error that names it when it cannot be read (a damaged
    /// row does not stop the read: the caller decides).
    pub async fn read_raw_range(
        &self,
        sensor_id: &str,
        day: i32,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<StoredRaw>> {
        let rows: Vec<RawRowRead> = self
            .select_all(&self.stmts().select_raw, (sensor_id, day, from_ns, to_ns))
            .await?;
        Ok(rows.into_iter().map(|r| stored_packet(r, day)).collect())
    }

    /// The last packet of a sensor in the partition of UTC `day` that
    /// starts before `before_ns`, if any.
    pub async fn read_raw_before(
        &self,
        sensor_id: &str,
        day: i32,
        before_ns: i64,
    ) -> Result<Option<StoredRaw>> {
        let rows: Vec<RawRowRead> = self
            .select_all(&self.stmts().select_raw_before, (sensor_id, day, before_ns))
            .await?;
        Ok(rows.into_iter().next().map(|r| stored_packet(r, day)))
    }

    /// A sensor's packets on a UTC day with their `late` flag, by time; a
    /// blob that does not decode fails the read ([`RawDecodeError`]).
    pub async fn read_raw_packets(
        &self,
        sensor_id: &str,
        day: i32,
    ) -> Result<Vec<(SensorPacket, bool)>> {
        self.read_raw_range(sensor_id, day, i64::MIN, i64::MAX)
            .await?
            .into_iter()
            .map(|r| r.map_err(anyhow::Error::new))
            .collect()
    }

    /// `(start_time_ns, samples)` of a sensor's packets on a UTC day, by time.
    pub async fn read_raw(&self, sensor_id: &str, day: i32) -> Result<Vec<(i64, Vec<f64>)>> {
        Ok(self
            .read_raw_packets(sensor_id, day)
            .await?
            .into_iter()
            .map(|(p, _)| (p.start_time_ns, p.samples))
            .collect())
    }

    /// The `(sensor_id, day)` partitions of `raw_packets` that `keep`
    /// accepts, in token order: a scan of the partition index (one row per
    /// sensor and day), filtered page by page.
    pub async fn raw_partitions(
        &self,
        mut keep: impl FnMut(&str, i32) -> bool,
    ) -> Result<Vec<(String, i32)>> {
        self.select_kept(
            &self.stmts().select_raw_partitions,
            (),
            |(sensor, day): &(String, i32)| keep(sensor, *day),
        )
        .await
    }

    /// A sensor's triggers in a chain whose onset is on a UTC day.
    pub async fn read_triggers(
        &self,
        chain: &str,
        sensor_id: &str,
        day: i32,
    ) -> Result<Vec<TriggerRec>> {
        type Row = (String, String, i64, i64, i64, i64, f64, Option<i64>);
        let rows: Vec<Row> = self
            .select_all(&self.stmts().select_triggers, (chain, sensor_id, day))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(chain, sensor, on_time_ns, off_time_ns, on, off, peak_cf, pick_time_ns)| {
                    TriggerRec {
                        chain,
                        sensor,
                        on_time_ns,
                        off_time_ns,
                        on_index: on as u64,
                        off_index: off as u64,
                        peak_cf,
                        pick_time_ns,
                    }
                },
            )
            .collect())
    }

    /// A chain's network events on a UTC day.
    pub async fn read_events(&self, chain: &str, day: i32) -> Result<Vec<EventRec>> {
        type Row = (String, i64, f64, Vec<String>, f64);
        let rows: Vec<Row> = self
            .select_all(&self.stmts().select_events, (chain, day))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(chain, time_ns, duration_s, sensors, coincidence_sum)| EventRec {
                    chain,
                    time_ns,
                    duration_s,
                    sensors,
                    coincidence_sum,
                },
            )
            .collect())
    }

    /// A sensor's QC rows in a chain on a UTC day.
    pub async fn read_qc(&self, chain: &str, sensor_id: &str, day: i32) -> Result<Vec<QcRow>> {
        type Row = (String, String, i64, f64, Option<BTreeMap<String, i8>>, i8);
        let rows: Vec<Row> = self
            .select_all(&self.stmts().select_qc, (chain, sensor_id, day))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(chain, sensor, time_ns, value, flags, aggregate)| QcRow {
                chain,
                sensor,
                time_ns,
                value,
                flags: flags.unwrap_or_default(),
                aggregate,
            })
            .collect())
    }

    /// A sensor's window statistics in a chain on a UTC day.
    pub async fn read_stats(
        &self,
        chain: &str,
        sensor_id: &str,
        day: i32,
    ) -> Result<Vec<StatsRec>> {
        type Row = (String, String, i64, f64, i64, i64, f64, f64, f64, f64, f64);
        let rows: Vec<Row> = self
            .select_all(&self.stmts().select_stats, (chain, sensor_id, day))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    chain,
                    sensor,
                    window_start_ns,
                    window_s,
                    count,
                    gaps,
                    min,
                    max,
                    mean,
                    std,
                    rms,
                )| StatsRec {
                    chain,
                    sensor,
                    window_start_ns,
                    window_s,
                    count: count as u64,
                    gaps: gaps as u64,
                    min,
                    max,
                    mean,
                    std,
                    rms,
                },
            )
            .collect())
    }

    /// Rows in a table (a full scan: for tests and small keyspaces).
    pub async fn count_rows(&self, table: Table) -> Result<i64> {
        let Some(stmt) = &self.stmts().count[table.index()] else {
            return Ok(0);
        };
        let rows: Vec<(i64,)> = self.select_all(stmt, ()).await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }
}

/// A stored packet that cannot be read: its blob is damaged (on disk or in
/// transit) or in a coding this build does not know, or the row lacks
/// what a packet needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "raw_packets row of sensor {sensor_id}, day {day} ({}), start {} ({start_time_ns} ns): {damage}",
    crate::model::format_day(*day),
    crate::model::format_time_us(*start_time_ns)
)]
pub struct RawDecodeError {
    pub sensor_id: String,
    pub day: i32,
    pub start_time_ns: i64,
    #[source]
    pub damage: RawDamage,
}

/// What is wrong with a stored packet.
#[derive(Debug, thiserror::Error)]
pub enum RawDamage {
    #[error(transparent)]
    Pack(#[from] fakopp_kernels::pack::PackError),
    #[error("no packed samples (codec or data is null: a row written by an older fakopp during a migration?)")]
    NoData,
    #[error("unknown sensor kind `{0}`")]
    UnknownKind(String),
    #[error("no sample rate")]
    NoRate,
}

/// A stored packet with its `late` flag, or why it cannot be read.
pub type StoredRaw = Result<(SensorPacket, bool), RawDecodeError>;

/// A `raw_packets` row as selected; every column but the key may be null.
type RawRowRead = (
    String,
    Option<String>,
    i64,
    Option<f64>,
    Option<i32>,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
    Option<bool>,
);

fn stored_packet(row: RawRowRead, day: i32) -> StoredRaw {
    let (sensor_id, kind, start_time_ns, rate, codec, data, unit, seq, late) = row;
    let damaged = |sensor_id: String, damage: RawDamage| RawDecodeError {
        sensor_id,
        day,
        start_time_ns,
        damage,
    };
    let kind_text = kind.unwrap_or_default();
    let Some(kind) = SensorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind_text)
    else {
        return Err(damaged(sensor_id, RawDamage::UnknownKind(kind_text)));
    };
    let Some(sample_rate_hz) = rate else {
        return Err(damaged(sensor_id, RawDamage::NoRate));
    };
    let (Some(codec), Some(data)) = (codec, data) else {
        return Err(damaged(sensor_id, RawDamage::NoData));
    };
    let samples = match fakopp_kernels::pack::decode(codec, &data) {
        Ok(s) => s,
        Err(e) => return Err(damaged(sensor_id, e.into())),
    };
    Ok((
        SensorPacket {
            sensor_id,
            kind,
            start_time_ns,
            sample_rate_hz,
            samples,
            unit: unit.unwrap_or_default(),
            seq,
        },
        late.unwrap_or(false),
    ))
}

/// A write the cluster refused for good (see `retry.rs`): the job stops.
#[derive(Debug, thiserror::Error)]
#[error("Cassandra refused a write to {table} (not retryable): {why}")]
pub struct PermanentWriteError {
    pub table: &'static str,
    pub why: String,
}

/// Sends one request until it is acknowledged, retrying what may pass
/// (outages, timeouts); a permanent refusal ends it with
/// [`PermanentWriteError`].
async fn write_with_retry(inner: &Inner, job: Job) -> Result<()> {
    let c = &inner.counters;
    let now = c.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    c.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    struct Leave<'a>(&'a AtomicUsize);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _leave = Leave(&c.in_flight);

    let stmt = inner.stmts.insert[job.table.index()]
        .as_ref()
        .expect("write_results checks the table exists");
    let batch = (job.rows.len() > 1).then(|| {
        let mut b = Batch::new(BatchType::Unlogged);
        for _ in &job.rows {
            b.append_statement(stmt.clone());
        }
        b.set_is_idempotent(true);
        b
    });
    let mut attempt: u32 = 0;
    loop {
        let t = Instant::now();
        let res = match &batch {
            None => inner.session.execute_unpaged(stmt, &job.rows[0]).await,
            Some(b) => inner.session.batch(b, &job.rows).await,
        };
        match res {
            Ok(res) => {
                for w in res.warnings() {
                    tracing::warn!(table = job.table.name(), warning = w, "Cassandra warning");
                }
                c.last_request_us
                    .store(duration_us(t.elapsed()), Ordering::Relaxed);
                c.rows_written
                    .fetch_add(job.rows.len() as u64, Ordering::Relaxed);
                c.requests.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) => {
                let msg = e.to_string();
                if let Ok(mut last) = c.last_error.lock() {
                    *last = Some(msg.clone());
                }
                if let Some(why) = super::retry::permanent(&e) {
                    return Err(anyhow::Error::new(PermanentWriteError {
                        table: job.table.name(),
                        why,
                    }));
                }
                attempt += 1;
                let wait = jittered(backoff(attempt));
                tracing::warn!(
                    table = job.table.name(),
                    rows = job.rows.len(),
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %msg,
                    "Cassandra write failed; retrying"
                );
                c.retries.fetch_add(1, Ordering::Relaxed);
                c.retry_tx.send_modify(|n| *n += 1);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_up_to_5_s() {
        let ms: Vec<u128> = (1..=9).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d < Duration::from_millis(100));
        }
    }

    fn raw(sensor: &str, t: i64, n: usize) -> Bound {
        Bound::Raw(raw_vals(&RawRow {
            packet: &SensorPacket {
                sensor_id: sensor.into(),
                kind: SensorKind::Seismic,
                start_time_ns: t,
                sample_rate_hz: 100.0,
                // Values that do not pack small, so sizes stay near 8 B each.
                samples: (0..n).map(|i| (i as f64 * 0.7).sin()).collect(),
                unit: "counts".into(),
                seq: None,
            },
            late: false,
        }))
    }

    #[test]
    fn batches_only_rows_of_one_partition_within_limits() {
        let day = 86_400_000_000_000i64;
        let rows = vec![
            raw("A.B..C", 0, 10),
            raw("A.B..D", 0, 10),
            raw("A.B..C", 1, 10),
            raw("A.B..C", day, 10), // next day: another partition
            raw("A.B..C", 2, 1000), // too big to join
        ];
        let jobs = plan(rows);
        let parts: Vec<Vec<(String, i32)>> = jobs
            .iter()
            .map(|j| {
                j.rows
                    .iter()
                    .map(|r| {
                        let (_, _, s, d) = r.partition();
                        (s.to_string(), d)
                    })
                    .collect()
            })
            .collect();
        assert_eq!(jobs.len(), 4);
        for p in &parts {
            assert!(p.iter().all(|k| *k == p[0]), "{parts:?}");
        }
        assert_eq!(jobs[0].rows.len(), 2);
        let many: Vec<Bound> = (0..40).map(|i| raw("A.B..C", i, 1)).collect();
        assert!(plan(many).iter().all(|j| j.rows.len() <= BATCH_MAX_ROWS));
    }
}

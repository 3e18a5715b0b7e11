//! The keyspace's tables (`schemas/cassandra.cql`), its layout version,
//! and the in-place migration of older layouts (docs/architecture.md,
//! "Raw store").

use crate::config::CassandraConfig;
use anyhow::{bail, Context, Result};
use scylla::client::session::Session;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::statement::Consistency;
use scylla::value::CqlTimestamp;

const SCHEMA: &str = include_str!("../../../schemas/cassandra.cql");

/// The layout this build reads and writes.
pub const SCHEMA_VERSION: i32 = 2;

/// The `schema_info` row that holds the version.
const INFO_KEY: &str = "fakopp";

/// The DDL statements of `schemas/cassandra.cql` for this keyspace, in order.
/// The keyspace and replication were validated by the config loader.
pub fn schema_statements(cfg: &CassandraConfig) -> Vec<String> {
    let body: String = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", &cfg.keyspace)
                .replace("{replication}", &cfg.replication)
        })
        .collect()
}

/// What an existing keyspace holds, read from `system_schema` and
/// `schema_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The columns of `raw_packets` (empty when the table does not exist).
    pub raw_columns: Vec<String>,
    /// The version in `schema_info`, if that table and its row exist.
    pub recorded: Option<i32>,
    /// Whether the `stations` table exists (older keyspaces lack it; it is
    /// additive, so `schema apply` adds it without a new version).
    pub has_stations: bool,
}

impl Layout {
    fn has(&self, column: &str) -> bool {
        self.raw_columns.iter().any(|c| c == column)
    }

    /// Samples as `list<double>` (version 1) still present.
    pub fn needs_migration(&self) -> bool {
        self.has("samples")
    }
}

/// Why a keyspace cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "keyspace `{keyspace}` holds raw_packets.samples, the list<double> layout of schema version 1; \
         this fakopp reads and writes version {SCHEMA_VERSION} (packed samples). Convert it in \
         place with `fakopp schema apply --migrate --config <file>` (resumable; the stream job \
         must not run meanwhile), or point cassandra.keyspace at a new keyspace"
    )]
    NeedsMigration { keyspace: String },
    #[error(
        "keyspace `{keyspace}` was written by a newer fakopp (schema version {found}); \
         this one knows version {SCHEMA_VERSION} at most: upgrade fakopp"
    )]
    Newer { keyspace: String, found: i32 },
}

async fn single_column<T>(session: &Session, cql: &str, values: (&str, &str)) -> Result<Vec<T>>
where
    T: for<'f> scylla::deserialize::value::DeserializeValue<'f, 'f>,
{
    let stmt = session
        .prepare(cql)
        .await
        .with_context(|| format!("preparing `{cql}`"))?;
    let rows = session
        .execute_unpaged(&stmt, values)
        .await
        .with_context(|| format!("reading `{cql}`"))?
        .into_rows_result()?;
    rows.rows::<(T,)>()?
        .map(|r| Ok(r?.0))
        .collect::<Result<Vec<T>>>()
}

/// Reads what the keyspace holds now. Unquoted CQL names are folded to
/// lower case, and `system_schema` holds them so.
pub async fn layout(session: &Session, keyspace: &str) -> Result<Layout> {
    let keyspace = keyspace.to_ascii_lowercase();
    let keyspace = keyspace.as_str();
    let raw_columns: Vec<String> = single_column(
        session,
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
        (keyspace, "raw_packets"),
    )
    .await?;
    let info: Vec<String> = single_column(
        session,
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
        (keyspace, "schema_info"),
    )
    .await?;
    let stations: Vec<String> = single_column(
        session,
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
        (keyspace, "stations"),
    )
    .await?;
    let recorded = if info.is_empty() {
        None
    } else {
        let mut stmt = session
            .prepare(format!(
                "SELECT version FROM {keyspace}.schema_info WHERE key = ?"
            ))
            .await
            .context("preparing the schema_info read")?;
        // Any replica will do: the row changes only with the schema, and a
        // keyspace short of replicas must still open (its writes retry).
        stmt.set_consistency(Consistency::One);
        let rows = session
            .execute_unpaged(&stmt, (INFO_KEY,))
            .await
            .context("reading schema_info")?
            .into_rows_result()?;
        rows.maybe_first_row::<(Option<i32>,)>()?.and_then(|r| r.0)
    };
    Ok(Layout {
        raw_columns,
        recorded,
        has_stations: !stations.is_empty(),
    })
}

/// Refuses a keyspace this build cannot use as it is.
pub(super) fn check(layout: &Layout, keyspace: &str) -> Result<(), SchemaError> {
    if let Some(found) = layout.recorded.filter(|v| *v > SCHEMA_VERSION) {
        return Err(SchemaError::Newer {
            keyspace: keyspace.into(),
            found,
        });
    }
    if layout.needs_migration() {
        return Err(SchemaError::NeedsMigration {
            keyspace: keyspace.into(),
        });
    }
    Ok(())
}

/// Creates the keyspace and tables if they do not exist (idempotent),
/// waits for schema agreement so that statements can be prepared at once,
/// and records [`SCHEMA_VERSION`]. A keyspace in an older layout is
/// converted when `migrate` is set ([`migrate_raw`]) and refused with
/// [`SchemaError::NeedsMigration`] otherwise; one from a newer fakopp is
/// always refused.
pub async fn apply_schema(session: &Session, cfg: &CassandraConfig, migrate: bool) -> Result<()> {
    let ks = &cfg.keyspace;
    // After an interrupted run some node may still be behind.
    agree(session).await?;
    let before = layout(session, ks).await?;
    match check(&before, ks) {
        Err(SchemaError::NeedsMigration { .. }) if migrate => {}
        r => r?,
    }
    for stmt in schema_statements(cfg) {
        let first_line = stmt.lines().next().unwrap_or_default().to_string();
        // DDL carries no values, so there is nothing to bind.
        session
            .query_unpaged(stmt, &[])
            .await
            .with_context(|| format!("schema statement failed: {first_line}"))?;
    }
    agree(session).await?;
    if before.needs_migration() {
        migrate_raw(session, ks, &before).await?;
    }
    if before.recorded == Some(SCHEMA_VERSION) {
        tracing::info!(keyspace = %ks, version = SCHEMA_VERSION, "schema applied");
        return Ok(());
    }
    // Written with the version as its cell timestamp: whatever replica
    // answered the read, a newer fakopp's marker always wins over ours.
    let mut stmt = session
        .prepare(format!(
            "INSERT INTO {ks}.schema_info (key, version, updated) VALUES (?, ?, ?) USING TIMESTAMP ?"
        ))
        .await
        .context("preparing the schema_info write")?;
    stmt.set_consistency(Consistency::One);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    session
        .execute_unpaged(
            &stmt,
            (
                INFO_KEY,
                SCHEMA_VERSION,
                CqlTimestamp(now),
                i64::from(SCHEMA_VERSION),
            ),
        )
        .await
        .context("writing schema_info")?;
    tracing::info!(keyspace = %ks, version = SCHEMA_VERSION, "schema applied");
    Ok(())
}

async fn agree(session: &Session) -> Result<()> {
    session
        .await_schema_agreement()
        .await
        .context("waiting for schema agreement")?;
    Ok(())
}

/// Rows converted per progress message.
const PROGRESS_EVERY: u64 = 10_000;
/// Rows per page of the migration scan, and so updates in flight at most.
const PAGE_ROWS: i32 = 256;

/// Converts `raw_packets` from version 1 in place: adds `codec` and
/// `data`, packs every row's `samples` into them, then drops `samples`.
/// Rows already packed are skipped, so an interrupted migration resumes
/// where it stopped when run again (the scan restarts, the writes do not).
async fn migrate_raw(session: &Session, ks: &str, before: &Layout) -> Result<()> {
    for (col, ty) in [("codec", "int"), ("data", "blob")] {
        if !before.has(col) {
            session
                .query_unpaged(format!("ALTER TABLE {ks}.raw_packets ADD {col} {ty}"), &[])
                .await
                .with_context(|| format!("adding raw_packets.{col}"))?;
        }
    }
    agree(session).await?;
    let mut scan = session
        .prepare(format!(
            "SELECT sensor_id, day, start_time_ns, samples, codec, writetime(data) FROM {ks}.raw_packets"
        ))
        .await
        .context("preparing the raw_packets scan")?;
    scan.set_page_size(PAGE_ROWS);
    let mut update = session
        .prepare(format!(
            "UPDATE {ks}.raw_packets SET codec = ?, data = ? WHERE sensor_id = ? AND day = ? AND start_time_ns = ?"
        ))
        .await
        .context("preparing the raw_packets update")?;
    update.set_is_idempotent(true);
    let (converted, skipped) = pack_rows(session, &scan, &update).await?;
    // Rows written while the scan ran (an old fakopp still writing) would
    // lose their samples with the column: look again, and drop only if
    // none appeared.
    let (late, _) = pack_rows(session, &scan, &update).await?;
    if late > 0 {
        bail!(
            "{late} raw_packets rows were written in the old layout while the migration ran \
             (they are converted now): a stream job of an older fakopp is still writing to \
             keyspace `{ks}`. Stop it, then run `fakopp schema apply --migrate` again"
        );
    }
    session
        .query_unpaged(format!("ALTER TABLE {ks}.raw_packets DROP samples"), &[])
        .await
        .context("dropping raw_packets.samples")?;
    agree(session).await?;
    tracing::info!(
        keyspace = %ks,
        converted,
        already_packed = skipped,
        "raw_packets migrated to schema version 2"
    );
    Ok(())
}

/// One pass over `raw_packets`: packs every row not packed yet. Returns
/// (rows packed, rows already packed).
async fn pack_rows(
    session: &Session,
    scan: &scylla::statement::prepared::PreparedStatement,
    update: &scylla::statement::prepared::PreparedStatement,
) -> Result<(u64, u64)> {
    let (mut converted, mut skipped) = (0u64, 0u64);
    let mut state = PagingState::start();
    // `writetime(data)` is null exactly when `data` is: whether it is set,
    // without reading the blob.
    type Row = (String, i32, i64, Option<Vec<f64>>, Option<i32>, Option<i64>);
    loop {
        let (res, next) = session
            .execute_single_page(scan, (), state)
            .await
            .context("scanning raw_packets")?;
        let rows = res.into_rows_result()?;
        let mut pending = Vec::new();
        for r in rows.rows::<Row>()? {
            let (sensor, day, start, samples, codec, data_written) = r?;
            let has_data = data_written.is_some();
            if codec.is_some() {
                skipped += 1;
                continue;
            }
            let Some(samples) = samples.filter(|_| !has_data) else {
                // Packed data without a codec, or nothing at all: not a
                // version-1 row, and not ours to overwrite.
                bail!(
                    "raw_packets row of sensor {sensor}, day {day}, start {start} has {} and no codec: \
                     not a row this migration can convert; inspect it, then run `fakopp schema apply --migrate` again",
                    if has_data { "packed data" } else { "neither samples nor data" }
                );
            };
            let (coding, blob) = fakopp_kernels::pack::encode(&samples);

            pending.push(async move {
                session
                    .execute_unpaged(update, (coding.id(), blob, &sensor, day, start))
                    .await
                    .with_context(|| {
                        format!("migrating raw_packets row sensor {sensor} day {day} start {start}")
                    })
            });
        }
        // One page's updates in flight together: bounded by the page size.
        let n = pending.len() as u64;
        futures::future::try_join_all(pending).await?;
        if (converted + n) / PROGRESS_EVERY > converted / PROGRESS_EVERY {
            tracing::info!(converted = converted + n, skipped, "migrating raw_packets");
        }
        converted += n;
        match next {
            PagingStateResponse::HasMorePages { state: s } => state = s,
            PagingStateResponse::NoMorePages => break,
        }
    }
    Ok((converted, skipped))
}

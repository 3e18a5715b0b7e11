//! Which Cassandra failures a write retries and which stop the job.
//!
//! Transient: the cluster cannot answer now (nodes down or overloaded,
//! timeouts, broken connections, bootstrapping): retried with backoff for
//! as long as it lasts, so an outage only pauses the stream. Permanent:
//! the cluster answered and will answer the same again (an unknown
//! keyspace or table, a schema that no longer matches the prepared
//! statements, a value the schema refuses, authentication or authorisation
//! refused): retrying would hang the job for ever while nothing is
//! written, so it stops with exit 1 and the server's message.

use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};

/// Why a write will never succeed as it is, or `None` if retrying may help.
pub fn permanent(e: &ExecutionError) -> Option<String> {
    match e {
        // A value that cannot be bound for its column (a bug, not an outage).
        ExecutionError::BadQuery(b) => Some(b.to_string()),
        ExecutionError::LastAttemptError(a) => attempt(a),
        ExecutionError::PrepareError(PrepareError::AllAttemptsFailed { first_attempt }) => {
            attempt(first_attempt)
        }
        _ => None,
    }
}

fn attempt(a: &RequestAttemptError) -> Option<String> {
    match a {
        RequestAttemptError::DbError(db, msg) if db_permanent(db) => Some(format!("{db}: {msg}")),
        // The table changed under the prepared statements.
        RequestAttemptError::RepreparedIdChanged { .. }
        | RequestAttemptError::RepreparedIdMissingInBatch => Some(format!(
            "{a} (the table's schema changed while the job ran; run `fakopp schema apply`)"
        )),
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_) => Some(a.to_string()),
        _ => None,
    }
}

/// Server errors that a retry cannot change.
pub fn db_permanent(db: &DbError) -> bool {
    matches!(
        db,
        DbError::SyntaxError
            | DbError::Invalid
            | DbError::AlreadyExists { .. }
            | DbError::FunctionFailure { .. }
            | DbError::AuthenticationError
            | DbError::Unauthorized
            | DbError::ConfigError
            | DbError::ProtocolError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "msg".into()))
    }

    #[test]
    fn outages_retry_refusals_stop() {
        for e in [
            DbError::Overloaded,
            DbError::IsBootstrapping,
            DbError::ServerError,
            DbError::Unavailable {
                consistency: scylla::statement::Consistency::One,
                required: 1,
                alive: 0,
            },
        ] {
            assert_eq!(permanent(&db(e.clone())), None, "{e:?} is transient");
        }
        for e in [
            DbError::Invalid,
            DbError::Unauthorized,
            DbError::AuthenticationError,
            DbError::SyntaxError,
            DbError::ConfigError,
        ] {
            let why = permanent(&db(e.clone())).expect("permanent");
            assert!(why.contains("msg"), "the server's message is kept: {why}");
        }
        assert_eq!(
            permanent(&ExecutionError::RequestTimeout(
                std::time::Duration::from_secs(1)
            )),
            None
        );
    }
}

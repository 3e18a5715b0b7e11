//! Kafka clients as the job makes them: the settings (secrets never
//! logged), client creation, and what a broker's error means at start-up.

use crate::config::KafkaConfig;
use crate::startup::Attempt;
use anyhow::Result;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use rdkafka::ClientContext;
use std::time::Duration;

/// librdkafka settings: the brokers, our `settings`, then
/// `kafka.properties` and `kafka.properties_env` (SASL, TLS, ...), whose
/// values are never logged. An unset variable of `properties_env` is an
/// error naming the property and the variable (not a value).
pub fn client_config(cfg: &KafkaConfig, settings: &[(&str, &str)]) -> Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in settings {
        c.set(*k, *v);
    }
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    for (k, var) in &cfg.properties_env {
        let v = std::env::var(var).map_err(|_| {
            anyhow::anyhow!("kafka.properties_env: `{k}` names `{var}`, which is not set")
        })?;
        c.set(k, v);
    }
    Ok(c)
}

/// Creates a Kafka client (`what` names it in errors). A rejected setting
/// is reported by its key only: librdkafka's message would show the
/// value, which may be a password.
pub fn create<C: FromClientConfigAndContext<X>, X: ClientContext>(
    cc: &ClientConfig,
    context: X,
    cfg: &KafkaConfig,
    what: &str,
) -> Result<C> {
    cc.create_with_context(context).map_err(|e| match e {
        KafkaError::ClientConfig(res, _, key, _) => {
            let why = match res {
                RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN => "unknown property",
                _ => "invalid value (not shown)",
            };
            let whence = if cfg.properties.contains_key(&key) {
                "kafka.properties"
            } else if cfg.properties_env.contains_key(&key) {
                "kafka.properties_env"
            } else {
                "Kafka client config"
            };
            anyhow::anyhow!("creating the {what}: {whence}: `{key}`: {why}")
        }
        other => anyhow::anyhow!("creating the {what}: {other}"),
    })
}

/// How long one start-up request may take before it is tried again.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Broker answers no retry can change: authorisation refused, a request
/// the cluster's settings reject. A refused login is final only once it has
/// lasted ([`Attempt::Refused`]). Everything else a broker says at start-up
/// (not reachable, `NotCoordinator`, `CoordinatorLoadInProgress`,
/// `LeaderNotAvailable`, an unknown topic or partition just after
/// creation, timeouts) may pass and is retried.
pub(super) fn permanent_code(c: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        c,
        TopicAuthorizationFailed
            | GroupAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidPartitions
            | InvalidReplicationFactor
            | InvalidConfig
            | InvalidRequest
            | InvalidTopic
            | PolicyViolation
    )
}

/// What a broker's error code means at start-up.
pub(super) fn classify<T>(
    code: rdkafka::types::RDKafkaErrorCode,
    why: anyhow::Error,
) -> Attempt<T> {
    if code == rdkafka::types::RDKafkaErrorCode::SaslAuthenticationFailed {
        Attempt::Refused(why)
    } else if permanent_code(code) {
        Attempt::Fail(why)
    } else {
        Attempt::Retry(why)
    }
}

/// What a client error means at start-up: a setting librdkafka refused is
/// final, a broker's answer as [`classify`] says, anything else (no
/// answer) is retried.
pub(super) fn judge<T>(e: KafkaError) -> Attempt<T> {
    let local = matches!(
        e,
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
    );
    let code = e.rdkafka_error_code();
    let why = anyhow::Error::new(e);
    match code {
        _ if local => Attempt::Fail(why),
        Some(c) => classify(c, why),
        None => Attempt::Retry(why),
    }
}

/// A start-up request's result as an attempt, its error in the context `what`.
pub(super) fn attempt<T>(r: Result<T, KafkaError>, what: impl FnOnce() -> String) -> Attempt<T> {
    match r {
        Ok(v) => Attempt::Done(v),
        Err(e) => judge(e).context(what),
    }
}

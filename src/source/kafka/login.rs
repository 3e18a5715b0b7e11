//! Whether the brokers accept the job's login (SASL), checked before
//! anything else at start-up.

use super::client::{attempt, client_config, create, ATTEMPT_TIMEOUT};
use crate::config::KafkaConfig;
use crate::startup::{self, Attempt, Deadline};
use anyhow::Result;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::ClientContext;
use std::time::Duration;

/// A client context that keeps what the brokers said of the login.
/// librdkafka reports a refused SASL login only to the error callback; the
/// client's requests then time out just as an unreachable broker's do.
#[derive(Default)]
struct LoginWatch {
    refused: std::sync::Mutex<Option<String>>,
}

impl LoginWatch {
    /// librdkafka's message for the refused login, if one came. It names
    /// the mechanism and the broker, never the credentials.
    fn take_refusal(&self) -> Option<String> {
        self.refused.lock().ok().and_then(|mut r| r.take())
    }
}

/// A broker's answer to the login, as librdkafka reports it: a code of
/// -169 (`Authentication`) also covers the client's own failures during
/// the handshake ("Local: Broker transport failure", a token or Kerberos
/// ticket it could not get), which are not an answer.
fn refused_login(error: &KafkaError, reason: &str) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    match error.rdkafka_error_code() {
        Some(SaslAuthenticationFailed) => true,
        Some(Authentication) => {
            reason.contains("SASL authentication error") && !reason.contains("Local:")
        }
        _ => false,
    }
}

impl ClientContext for LoginWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if refused_login(&error, reason) {
            if let Ok(mut r) = self.refused.lock() {
                *r = Some(reason.to_string());
            }
        } else {
            tracing::debug!("Kafka client: {error}: {reason}");
        }
    }
}

impl rdkafka::producer::ProducerContext for LoginWatch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

/// Waits until the brokers answer a metadata request, as
/// [`startup::retry`] does; a login the brokers keep refusing ends it
/// after [`startup::REFUSAL_GRACE`] with their answer. Without this a
/// wrong password looked like brokers still starting until
/// `stream.startup_timeout_s`, and then like a timeout.
pub(super) fn check_login(cfg: &KafkaConfig, deadline: Deadline) -> Result<()> {
    let settings = client_config(cfg, &[])?;
    startup::retry(&format!("Kafka brokers {}", cfg.brokers), deadline, || {
        // A client per attempt: librdkafka reports an identical error of a
        // broker at most once per 30 s and client, and each attempt needs
        // the broker's own answer to its login.
        let probe: rdkafka::producer::BaseProducer<LoginWatch> =
            match create(&settings, LoginWatch::default(), cfg, "Kafka client") {
                Ok(p) => p,
                Err(e) => return Attempt::Fail(e),
            };
        let r = probe.client().fetch_metadata(None, ATTEMPT_TIMEOUT);
        if r.is_ok() {
            return Attempt::Done(());
        }
        // Serves the error callback: the refusal arrives just after the
        // failed request.
        probe.poll(Duration::from_millis(500));
        if let Some(why) = probe.context().take_refusal() {
            return Attempt::Refused(anyhow::anyhow!(
                "the brokers refused the login: {why} (check `sasl.*` in kafka.properties and \
                 kafka.properties_env)"
            ));
        }
        attempt(r.map(drop), || "fetching metadata".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode::*;

    #[test]
    fn only_the_brokers_answer_is_a_refused_login() {
        let auth = KafkaError::Global(Authentication);
        assert!(refused_login(
            &auth,
            "sasl_plaintext://b:9094/bootstrap: SASL authentication error: Authentication failed: \
             Invalid username or password (after 302ms in state AUTH_REQ)"
        ));
        // The client's own failures during the handshake carry the same code.
        assert!(!refused_login(
            &auth,
            "SASL PLAIN mechanism handshake failed: Local: Broker transport failure"
        ));
        assert!(!refused_login(
            &auth,
            "Failed to acquire SASL OAUTHBEARER token: connection refused"
        ));
        assert!(refused_login(
            &KafkaError::Global(SaslAuthenticationFailed),
            "x"
        ));
        assert!(!refused_login(
            &KafkaError::Global(BrokerTransportFailure),
            "SASL authentication error"
        ));
    }
}

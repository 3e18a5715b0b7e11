//! Start-up against services that may not be there yet: a job started
//! before its brokers or database (a cluster booting, a service restarting)
//! retries with backoff, a log line per attempt, until the configured
//! `stream.startup_timeout_s`; then it gives up with exit 1 naming the
//! endpoint. Answers that no retry can change (a refused setting, a
//! refused authorisation) end it at once. A refused login ends it once it
//! has lasted [`REFUSAL_GRACE`]: a booting cluster refuses a right login
//! for a moment (Cassandra makes its default superuser seconds after it
//! starts; credentials replicate), a wrong one stays refused.

use anyhow::Result;
use std::time::{Duration, Instant};

/// What a failed attempt means.
pub enum Attempt<T> {
    Done(T),
    /// May pass later (not reachable, not ready, not the coordinator yet).
    Retry(anyhow::Error),
    /// Will not pass: stop now.
    Fail(anyhow::Error),
    /// The service itself refused the login: final once refusals have
    /// lasted [`REFUSAL_GRACE`], retried until then.
    Refused(anyhow::Error),
}

impl<T> Attempt<T> {
    /// The attempt with `what` as the context of its error.
    pub fn context(self, what: impl FnOnce() -> String) -> Attempt<T> {
        match self {
            Attempt::Done(v) => Attempt::Done(v),
            Attempt::Retry(e) => Attempt::Retry(e.context(what())),
            Attempt::Fail(e) => Attempt::Fail(e.context(what())),
            Attempt::Refused(e) => Attempt::Refused(e.context(what())),
        }
    }
}

/// How long a service may keep refusing a login before start-up gives up.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(30);

/// The time start-up may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    until: Instant,
    timeout: Duration,
}

impl Deadline {
    pub fn after_s(seconds: f64) -> Deadline {
        let timeout = Duration::from_secs_f64(seconds);
        Deadline {
            until: Instant::now() + timeout,
            timeout,
        }
    }
}

/// First wait between attempts; doubles up to [`BACKOFF_CAP`].
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Runs `attempt` until it is done, fails for good, or the deadline passes.
/// `what` names the step and endpoint in log lines and in the final error.
pub fn retry<T>(
    what: &str,
    deadline: Deadline,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T> {
    let mut wait = BACKOFF_START;
    // The first refusal of the current run of refusals, and the latest: a
    // run ends when no refusal came for the grace (the service was away).
    let mut refusals: Option<(Instant, Instant)> = None;
    for n in 1u32.. {
        let e = match attempt() {
            Attempt::Done(v) => {
                if n > 1 {
                    tracing::info!("{what}: ready after {n} attempts");
                }
                return Ok(v);
            }
            Attempt::Fail(e) => return Err(e.context(what.to_string())),
            Attempt::Refused(e) => {
                let now = Instant::now();
                let first = match refusals {
                    Some((first, last)) if now - last < REFUSAL_GRACE => first,
                    _ => now,
                };
                refusals = Some((first, now));
                if now - first >= REFUSAL_GRACE {
                    return Err(e.context(format!(
                        "{what}: login refused for {} s",
                        REFUSAL_GRACE.as_secs()
                    )));
                }
                e
            }
            Attempt::Retry(e) => e,
        };
        let left = deadline.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(e.context(format!(
                "{what}: gave up after {:.0} s (stream.startup_timeout_s)",
                deadline.timeout.as_secs_f64()
            )));
        }
        let pause = wait.min(left);
        tracing::warn!(
            attempt = n,
            retry_in_ms = pause.as_millis() as u64,
            "{what}: not ready ({e:#}); retrying"
        );
        // Backoff between attempts at a service, not a synchronisation.
        std::thread::sleep(pause);
        wait = (wait * 2).min(BACKOFF_CAP);
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_done_and_gives_up_at_the_deadline() {
        let mut calls = 0;
        let v = retry("thing at here:1", Deadline::after_s(30.0), || {
            calls += 1;
            if calls < 3 {
                Attempt::Retry(anyhow::anyhow!("not yet"))
            } else {
                Attempt::Done(7)
            }
        })
        .unwrap();
        assert_eq!((v, calls), (7, 3));

        let e = retry::<()>("thing at here:1", Deadline::after_s(0.3), || {
            Attempt::Retry(anyhow::anyhow!("refused"))
        })
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("thing at here:1") && msg.contains("gave up"),
            "{msg}"
        );
        assert!(msg.contains("refused"), "the last error is kept: {msg}");

        let mut calls = 0;
        let e = retry::<()>("thing", Deadline::after_s(30.0), || {
            calls += 1;
            Attempt::Fail(anyhow::anyhow!("denied"))
        })
        .unwrap_err();
        assert_eq!(calls, 1, "a permanent failure is not retried");
        assert!(format!("{e:#}").contains("denied"));
    }

    #[test]
    fn a_refused_login_is_retried_through_the_grace() {
        // Refused for a moment, then let in: a booting cluster.
        let mut calls = 0;
        let v = retry("node:1", Deadline::after_s(600.0), || {
            calls += 1;
            if calls < 3 {
                Attempt::Refused(anyhow::anyhow!("bad credentials"))
            } else {
                Attempt::Done(1)
            }
        })
        .unwrap();
        assert_eq!((v, calls), (1, 3));
    }
}

//! SIGTERM/SIGINT for the stream job (docs/architecture.md, "Stopping"):
//! a flag that the job checks between micro-batches, the moment it was
//! raised (the grace periods of writes and sends count from it), and a
//! deadline after which a rank that could not stop cleanly exits anyway.
//!
//! Why a deadline: rank 0 may be waiting in a collective for a rank that
//! never got the signal (a launcher that signals only the first process)
//! and keeps retrying writes to an unreachable Cassandra. Nothing can
//! reach that rank's main thread, so rank 0 ends the process; the
//! launcher then ends the others (`mpirun`; `srun --kill-on-bad-exit`). Nothing is lost: offsets are committed
//! only at checkpoints, and the job resumes from the last one.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// When the first stop signal came (set by the signal thread): the graces
/// of every waiting write and send count from it.
static SIGNALLED_AT: OnceLock<Instant> = OnceLock::new();

/// How long rank 0 may take to stop after a signal: the write and send
/// graces (20 s each, concurrent) and a final checkpoint.
pub const DEADLINE: Duration = Duration::from_secs(45);

/// Installs the handlers: the returned flag is raised by the first
/// SIGTERM/SIGINT. With `deadline`, the process exits with status 1 if it
/// is still running that long after the signal.
pub fn install(deadline: Option<Duration>) -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("fakopp-signals".into())
        .spawn(move || {
            let Some(sig) = signals.forever().next() else {
                return;
            };
            let _ = SIGNALLED_AT.set(Instant::now());
            let Some(limit) = deadline else {
                tracing::info!(signal = sig, "stop signal: rank 0 ends the job; a write still retrying gives up after its grace");
                return;
            };
            tracing::info!(signal = sig, "stop signal: ending after this micro-batch");
            std::thread::sleep(limit);
            tracing::error!(
                "the job did not stop within {} s of the signal (a rank still waiting for \
                 Cassandra or Kafka, or start-up not finished); exiting: a restart resumes \
                 from the last checkpoint",
                limit.as_secs()
            );
            // SAFETY: `_exit` ends the process at once; it runs no
            // handlers that could wait for the main thread, which may be
            // blocked in an MPI collective, and touches no Rust state.
            unsafe { libc::_exit(1) }
        })
        .context("starting the signal thread")?;
    Ok(stop)
}

/// How long ago the stop signal came, once `stop` is raised (the moment
/// the flag is first seen, if the signal thread has not recorded it yet).
pub fn since_signal(stop: &AtomicBool, first_seen: &mut Option<Instant>) -> Option<Duration> {
    if !stop.load(Ordering::Relaxed) {
        return None;
    }
    let at = SIGNALLED_AT
        .get()
        .copied()
        .unwrap_or_else(|| *first_seen.get_or_insert_with(Instant::now));
    Some(at.elapsed())
}

//! Crash points for the restart and failure tests: `FAKOPP_FAULT=<point>:<N>`
//! makes the job fail at `point` of its N-th micro-batch (or checkpoint).
//! Compiled into debug builds only, which is what the tests run: a release
//! binary has no environment variable that can kill a production job.

/// True when `FAKOPP_FAULT` names `point` at `n` (debug builds only).
#[cfg(debug_assertions)]
pub fn hit(point: &str, n: u64) -> bool {
    std::env::var("FAKOPP_FAULT").is_ok_and(|f| f == format!("{point}:{n}"))
}

#[cfg(not(debug_assertions))]
pub fn hit(_point: &str, _n: u64) -> bool {
    false
}

/// Kills the process with SIGKILL (no clean-up at all) at a crash point.
pub fn kill_at(point: &str, n: u64) {
    if hit(point, n) {
        tracing::warn!("FAKOPP_FAULT: killing the job at {point} of micro-batch {n}");
        // SAFETY: raising a signal on ourselves has no memory effects.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

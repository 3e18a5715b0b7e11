//! The collective steps between rank 0 and the other ranks
//! (docs/architecture.md, "Scale-out"): rank 0 sends every rank its
//! command, each rank (rank 0 too) handles its own, rank 0 gathers the
//! replies. Ranks ≥ 1 live in [`worker_loop`]; rank 0 drives the steps
//! through [`Ranks`], which turns a rank's failure into the job's error and
//! keeps what each rank has stored for the summary.

use super::store::Written;
use super::work::{Command, Reply, Worker};
use crate::dist::{from_bytes, gather_buffers, scatter_buffers, to_bytes, Dist};
use crate::metrics::Metrics;
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

/// A rank's reply reported a failure (its message names what failed).
#[derive(Debug, thiserror::Error)]
#[error("rank {rank}: {message}")]
pub struct RankFailed {
    pub rank: usize,
    pub message: String,
}

/// Rank 0's side of the collective steps.
pub struct Ranks<'a> {
    pub dist: &'a Dist,
    pub worker: Worker,
    metrics: Arc<Metrics>,
    pub written: Vec<Written>,
    /// The slowest rank's last Cassandra write.
    pub write_ms: Option<f64>,
    /// Of the last step: rank 0's time handling its own command, and its
    /// time waiting (for its previous Cassandra write, and in the gather
    /// for the others to finish theirs), in nanoseconds. Neither is rank
    /// 0's serial work.
    pub own_ns: u64,
    pub wait_ns: u64,
}

impl<'a> Ranks<'a> {
    pub fn new(dist: &'a Dist, worker: Worker, metrics: Arc<Metrics>) -> Ranks<'a> {
        Ranks {
            dist,
            worker,
            metrics,
            written: vec![Written::default(); dist.size()],
            write_ms: None,
            own_ns: 0,
            wait_ns: 0,
        }
    }

    /// One collective step: `cmds[r]` to rank `r`; the replies in rank
    /// order. A rank that reports a failure stops the job with its message.
    pub fn exchange(&mut self, cmds: Vec<Command>) -> Result<Vec<Reply>> {
        let replies = self.step(cmds)?;
        self.metrics.add_busy(replies.iter().map(|r| r.busy_ns));
        for (r, reply) in replies.iter().enumerate() {
            if let Some(f) = &reply.failure {
                if self.dist.size() > 1 {
                    return Err(RankFailed {
                        rank: r,
                        message: f.clone(),
                    }
                    .into());
                }
                anyhow::bail!("{f}");
            }
            self.written[r] = reply.written;
        }
        self.write_ms = replies.iter().filter_map(|r| r.write_ms).reduce(f64::max);
        Ok(replies)
    }

    /// The same command to every rank.
    pub fn all(&mut self, cmd: impl Fn() -> Command) -> Result<Vec<Reply>> {
        let cmds = (0..self.dist.size()).map(|_| cmd()).collect();
        self.exchange(cmds)
    }

    /// Per rank, a list for the summary line.
    pub fn by_rank(&self, f: impl Fn(&Written) -> u64) -> String {
        let v: Vec<String> = self.written.iter().map(|w| f(w).to_string()).collect();
        format!("[{}]", v.join(","))
    }

    fn step(&mut self, cmds: Vec<Command>) -> Result<Vec<Reply>> {
        let Some(world) = self.dist.world() else {
            let cmd = cmds.into_iter().next().expect("one command for one rank");
            let reply = self.worker.handle(cmd);
            (self.own_ns, self.wait_ns) = (reply.busy_ns, reply.store_wait_ns);
            return Ok(vec![reply]);
        };
        // Rank 0's own command and reply never go through serialisation.
        let mut cmds = cmds.into_iter();
        let own = cmds.next().expect("one command per rank");
        let mut bytes = vec![Vec::new()];
        for c in cmds {
            bytes.push(to_bytes(&c)?);
        }
        drop(scatter_buffers(&world, Some(&bytes)));
        let mut replies = vec![handle_or_abort(self.dist, &mut self.worker, own)];
        let waiting = Instant::now();
        let all = gather_buffers::<u8>(&world, &[]).expect("rank 0 gathers");
        self.own_ns = replies[0].busy_ns;
        self.wait_ns =
            crate::metrics::nanos(waiting.elapsed()).saturating_add(replies[0].store_wait_ns);
        for b in &all[1..] {
            replies.push(from_bytes(b)?);
        }
        Ok(replies)
    }
}

/// Handles a command on a rank of an MPI world. A panic in the chains
/// (rayon re-raises it here, past the panic hook) would unwind this rank
/// out of the collectives while the others wait for it: it aborts the
/// world instead, naming the rank.
fn handle_or_abort(dist: &Dist, worker: &mut Worker, cmd: Command) -> Reply {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.handle(cmd))) {
        Ok(reply) => reply,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            tracing::error!(
                rank = dist.rank(),
                "rank {} failed: {what}; aborting the MPI job",
                dist.rank()
            );
            dist.abort(101);
        }
    }
}

/// Ranks ≥ 1: receive a command, handle it, reply; until `Stop`.
pub fn worker_loop(dist: &Dist, mut worker: Worker) -> Result<()> {
    let world = dist.world().expect("ranks >= 1 run under MPI");
    let mut batches = 0u64;
    loop {
        let buf = scatter_buffers::<u8>(&world, None);
        let cmd: Command = from_bytes(&buf)?;
        let stop = matches!(cmd, Command::Stop);
        if matches!(cmd, Command::Work { .. }) {
            batches += 1;
            if dist.rank() == 1 {
                crate::fault::kill_at("worker", batches);
                if crate::fault::hit("worker_error", batches) {
                    anyhow::bail!("injected failure (FAKOPP_FAULT=worker_error:{batches})");
                }
            }
        }
        let reply = handle_or_abort(dist, &mut worker, cmd);
        gather_buffers(&world, &to_bytes(&reply)?);
        if stop {
            return Ok(());
        }
    }
}

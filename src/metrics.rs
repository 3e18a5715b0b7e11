//! Counters of the stream job, shown in the periodic status line and
//! served in Prometheus text format on rank 0 (`--metrics-addr`).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Metrics {
    pub packets: AtomicU64,
    pub samples: AtomicU64,
    pub dead_letters: AtomicU64,
    pub late_packets: AtomicU64,
    pub duplicate_packets: AtomicU64,
    pub triggers: AtomicU64,
    pub events: AtomicU64,
    pub qc_rows: AtomicU64,
    pub batches: AtomicU64,
    pub consumer_lag: AtomicI64,
    /// Recent micro-batch latencies in ms (ring).
    latencies_ms: Mutex<Vec<f64>>,
    /// How long the slowest rank's last finished Cassandra write took:
    /// it keeps its value while nothing is written,
    /// as the write it describes is still the latest.
    pub sink_write_ms: Mutex<f64>,
    /// Size of the last checkpoint file and how long writing it took.
    pub checkpoint_bytes: AtomicU64,
    pub checkpoint_write_ms: Mutex<f64>,
    pub commit_failures: AtomicU64,
    pub retired_sensors: AtomicU64,
    /// Rank 0's time in each phase of its loop (ns), [`Phase`] order.
    phases: [AtomicU64; Phase::ALL.len()],
    /// Each rank's time handling its commands (ns), rank order.
    busy_by_rank: Mutex<Vec<u64>>,
    state: Mutex<State>,
}

/// Where rank 0's time goes (docs/architecture.md, "Scale-out"). `Poll`
/// and `Decode` run on the consumer thread, overlapping the rest; of the
/// main thread's phases, all but `Compute` and `Wait` are serial work that
/// more ranks do not share ([`Phase::serial`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Consumer thread: fetching messages from librdkafka (not waiting
    /// for new ones).
    Poll,
    /// Consumer thread: decoding and validating packets.
    Decode,
    /// Taking messages from the consumer thread: offsets, counters, dead
    /// letters.
    Intake,
    /// Offering packets to the reorder buffers.
    Reorder,
    /// Pausing and resuming partitions (partition alignment).
    Align,
    /// Releasing samples and splitting them by owner.
    Release,
    /// Scattering commands and gathering replies (less its own share).
    Exchange,
    /// Rank 0's own share of the chains (and its writes' hand-off).
    Compute,
    /// Waiting: in the gather for the other ranks to finish their shares
    /// (receiving their replies included), and for rank 0's previous
    /// Cassandra writes.
    Wait,
    /// Network coincidence and sorting the results.
    Events,
    /// JSON lines, detections and the events' Cassandra hand-off.
    Sinks,
    /// Settling writes, snapshots, the checkpoint file and the commit.
    Checkpoint,
    /// The status line and its broker queries.
    Status,
}

impl Phase {
    pub const ALL: [Phase; 13] = [
        Phase::Poll,
        Phase::Decode,
        Phase::Intake,
        Phase::Reorder,
        Phase::Align,
        Phase::Release,
        Phase::Exchange,
        Phase::Compute,
        Phase::Wait,
        Phase::Events,
        Phase::Sinks,
        Phase::Checkpoint,
        Phase::Status,
    ];

    /// Serial work of the main thread: what bounds the job's rate however
    /// many ranks share the chains.
    pub fn serial(self) -> bool {
        !matches!(
            self,
            Phase::Poll | Phase::Decode | Phase::Compute | Phase::Wait
        )
    }

    /// Work of the consumer thread.
    pub fn consumer(self) -> bool {
        matches!(self, Phase::Poll | Phase::Decode)
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Poll => "poll",
            Phase::Decode => "decode",
            Phase::Intake => "intake",
            Phase::Reorder => "reorder",
            Phase::Align => "align",
            Phase::Release => "release",
            Phase::Exchange => "exchange",
            Phase::Compute => "compute",
            Phase::Wait => "wait",
            Phase::Events => "events",
            Phase::Sinks => "sinks",
            Phase::Checkpoint => "checkpoint",
            Phase::Status => "status",
        }
    }
}

/// What the job holds, as of the last status line: the figures that must
/// not grow with the job's age.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub sensors: u64,
    /// Samples in reorder buffers (overlap tails and waiting packets).
    pub reorder_samples: u64,
    /// Triggers kept for network coincidence.
    pub triggers_held: u64,
    pub rss_bytes: u64,
    /// Newest data time read (ns since the epoch).
    pub data_time_ns: i64,
}

/// Resident memory of this process (0 if unknown).
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// CPU time (user + system) this process has used, in seconds: a figure of
/// work done that another process's load on the machine does not inflate.
pub fn process_cpu_s() -> f64 {
    // SAFETY: rusage is plain old data, for which all-zero bytes are a
    // valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct we pass, which lives
    // for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Adds the time between marks to rank 0's phases: one clock read per
/// mark, no allocation.
pub struct Lap<'a> {
    metrics: &'a Metrics,
    at: std::time::Instant,
}

impl<'a> Lap<'a> {
    pub fn new(metrics: &'a Metrics) -> Lap<'a> {
        Lap {
            metrics,
            at: std::time::Instant::now(),
        }
    }

    /// The time since the last mark was spent in `p`.
    pub fn mark(&mut self, p: Phase) {
        let now = std::time::Instant::now();
        self.metrics.add_phase(p, now - self.at);
        self.at = now;
    }

    /// The time since the last mark counts nowhere (waiting for input).
    pub fn skip(&mut self) {
        self.at = std::time::Instant::now();
    }

    /// The time since the last mark was a collective step: `own_ns` of it
    /// rank 0's own command ([`Phase::Compute`]), `wait_ns` waiting for
    /// the other ranks or its own previous write ([`Phase::Wait`]), the
    /// rest in `rest`.
    pub fn mark_step(&mut self, rest: Phase, own_ns: u64, wait_ns: u64) {
        let now = std::time::Instant::now();
        let all = now - self.at;
        let own = std::time::Duration::from_nanos(own_ns).min(all);
        let wait = std::time::Duration::from_nanos(wait_ns).min(all - own);
        self.metrics.add_phase(Phase::Compute, own);
        self.metrics.add_phase(Phase::Wait, wait);
        self.metrics.add_phase(rest, all - own - wait);
        self.at = now;
    }
}

/// A duration in whole nanoseconds (saturating: 584 years).
pub fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

const KEEP: usize = 1024;

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn set_state(&self, st: State) {
        *self.state.lock().expect("metrics lock") = st;
    }

    pub fn state(&self) -> State {
        *self.state.lock().expect("metrics lock")
    }

    pub fn add_phase(&self, p: Phase, d: std::time::Duration) {
        self.phases[p as usize].fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// Rank 0's nanoseconds so far in each phase, [`Phase::ALL`] order.
    pub fn phase_ns(&self) -> [u64; Phase::ALL.len()] {
        std::array::from_fn(|i| self.phases[i].load(Ordering::Relaxed))
    }

    /// Rank 0's serial nanoseconds so far ([`Phase::serial`]).
    pub fn serial_ns(&self) -> u64 {
        self.sum_ns(Phase::serial)
    }

    /// The consumer thread's working nanoseconds so far.
    pub fn consumer_ns(&self) -> u64 {
        self.sum_ns(Phase::consumer)
    }

    fn sum_ns(&self, pick: fn(Phase) -> bool) -> u64 {
        Phase::ALL
            .iter()
            .filter(|&&p| pick(p))
            .map(|&p| self.phases[p as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Adds each rank's busy time of one collective step.
    pub fn add_busy(&self, per_rank: impl IntoIterator<Item = u64>) {
        let mut b = self.busy_by_rank.lock().expect("metrics lock");
        for (r, ns) in per_rank.into_iter().enumerate() {
            if b.len() <= r {
                b.resize(r + 1, 0);
            }
            b[r] += ns;
        }
    }

    pub fn busy_by_rank(&self) -> Vec<u64> {
        self.busy_by_rank.lock().expect("metrics lock").clone()
    }

    pub fn record_batch_latency(&self, ms: f64) {
        let mut l = self.latencies_ms.lock().expect("metrics lock");
        if l.len() == KEEP {
            l.remove(0);
        }
        l.push(ms);
    }

    /// (p50, p99) of the recent micro-batch latencies in ms.
    pub fn latency_quantiles(&self) -> (f64, f64) {
        let mut l = self.latencies_ms.lock().expect("metrics lock").clone();
        if l.is_empty() {
            return (0.0, 0.0);
        }
        l.sort_by(f64::total_cmp);
        let q = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize];
        (q(0.5), q(0.99))
    }

    pub fn prometheus(&self) -> String {
        let (p50, p99) = self.latency_quantiles();
        let st = self.state();
        let c = |n: &AtomicU64| n.load(Ordering::Relaxed);
        format!(
            "# TYPE fakopp_packets_total counter\nfakopp_packets_total {}\n\
             # TYPE fakopp_samples_total counter\nfakopp_samples_total {}\n\
             # TYPE fakopp_dead_letters_total counter\nfakopp_dead_letters_total {}\n\
             # TYPE fakopp_late_packets_total counter\nfakopp_late_packets_total {}\n\
             # TYPE fakopp_duplicate_packets_total counter\nfakopp_duplicate_packets_total {}\n\
             # TYPE fakopp_triggers_total counter\nfakopp_triggers_total {}\n\
             # TYPE fakopp_events_total counter\nfakopp_events_total {}\n\
             # TYPE fakopp_qc_rows_total counter\nfakopp_qc_rows_total {}\n\
             # TYPE fakopp_batches_total counter\nfakopp_batches_total {}\n\
             # TYPE fakopp_consumer_lag gauge\nfakopp_consumer_lag {}\n\
             # TYPE fakopp_batch_latency_ms summary\nfakopp_batch_latency_ms{{quantile=\"0.5\"}} {p50}\nfakopp_batch_latency_ms{{quantile=\"0.99\"}} {p99}\n\
             # HELP fakopp_sink_write_ms Duration of the slowest rank's last finished Cassandra write.\n# TYPE fakopp_sink_write_ms gauge\nfakopp_sink_write_ms {}\n\
             # TYPE fakopp_checkpoint_bytes gauge\nfakopp_checkpoint_bytes {}\n\
             # TYPE fakopp_checkpoint_write_ms gauge\nfakopp_checkpoint_write_ms {}\n\
             # TYPE fakopp_commit_failures_total counter\nfakopp_commit_failures_total {}\n\
             # TYPE fakopp_retired_sensors_total counter\nfakopp_retired_sensors_total {}\n\
             # TYPE fakopp_sensors gauge\nfakopp_sensors {}\n\
             # TYPE fakopp_reorder_samples gauge\nfakopp_reorder_samples {}\n\
             # TYPE fakopp_triggers_held gauge\nfakopp_triggers_held {}\n\
             # TYPE fakopp_resident_memory_bytes gauge\nfakopp_resident_memory_bytes {}\n\
             # HELP fakopp_cpu_seconds_total CPU time (user + system) of the process; rate() over fakopp_samples_total's is the CPU per sample\n\
             # TYPE fakopp_cpu_seconds_total counter\nfakopp_cpu_seconds_total {}\n\
             # HELP fakopp_rank0_seconds_total rank 0's time per phase; poll and decode on the consumer thread, the rest on the main thread, where all but compute and wait is serial\n\
             # TYPE fakopp_rank0_seconds_total counter\n{}\
             # HELP fakopp_rank_busy_seconds_total each rank's time handling its commands (chains, write hand-off; not waiting for Cassandra)\n\
             # TYPE fakopp_rank_busy_seconds_total counter\n{}",
            c(&self.packets),
            c(&self.samples),
            c(&self.dead_letters),
            c(&self.late_packets),
            c(&self.duplicate_packets),
            c(&self.triggers),
            c(&self.events),
            c(&self.qc_rows),
            c(&self.batches),
            self.consumer_lag.load(Ordering::Relaxed),
            *self.sink_write_ms.lock().expect("metrics lock"),
            c(&self.checkpoint_bytes),
            *self.checkpoint_write_ms.lock().expect("metrics lock"),
            c(&self.commit_failures),
            c(&self.retired_sensors),
            st.sensors,
            st.reorder_samples,
            st.triggers_held,
            st.rss_bytes,
            process_cpu_s(),
            Phase::ALL
                .iter()
                .zip(self.phase_ns())
                .map(|(p, ns)| format!(
                    "fakopp_rank0_seconds_total{{phase=\"{}\"}} {}\n",
                    p.name(),
                    ns as f64 / 1e9
                ))
                .collect::<String>(),
            self.busy_by_rank()
                .iter()
                .enumerate()
                .map(|(r, ns)| format!(
                    "fakopp_rank_busy_seconds_total{{rank=\"{r}\"}} {}\n",
                    *ns as f64 / 1e9
                ))
                .collect::<String>(),
        )
    }
}

/// Serves `GET /metrics` (any path) on `addr` from a background thread.
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: {e}"))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = metrics.prometheus();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    tracing::info!(%local, "metrics on http://{local}/metrics");
    Ok(local)
}

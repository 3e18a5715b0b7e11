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
    pub sink_write_ms: Mutex<f64>,
}

const KEEP: usize = 1024;

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
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
             # TYPE fakopp_sink_write_ms gauge\nfakopp_sink_write_ms {}\n",
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

//! Progress of a batch run: a bar on a terminal, periodic `tracing` lines
//! otherwise (sbatch logs).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// `total` samples to process on this rank; `show` is false on ranks ≥ 1.
    pub fn new(total: u64, show: bool) -> Progress {
        Progress::counting(total, show, "samples")
    }

    /// `total` things named `unit` (a plural noun) to do.
    pub fn counting(total: u64, show: bool, unit: &str) -> Progress {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total);
            let template = format!("{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{percent:>3}}% {{human_pos}}/{{human_len}} {unit} ({{per_sec}})");
            b.set_style(ProgressStyle::with_template(&template).expect("valid template"));
            b
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: AtomicU64::new(0),
            started: now,
            last_log: Mutex::new(now),
        }
    }

    pub fn inc(&self, samples: u64) {
        let done = self.done.fetch_add(samples, Ordering::Relaxed) + samples;
        match &self.bar {
            Some(b) => b.inc(samples),
            None => {
                let mut last = self.last_log.lock().expect("progress lock");
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    let secs = self.started.elapsed().as_secs_f64();
                    tracing::info!(
                        done,
                        total = self.total,
                        percent = format!("{:.1}", 100.0 * done as f64 / self.total.max(1) as f64),
                        samples_per_s = format!("{:.0}", done as f64 / secs),
                        "progress"
                    );
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

//! The consumer thread (docs/architecture.md, "Scale-out"): fetching and
//! decoding packets overlaps everything else rank 0 does, so consuming
//! micro-batch N+1 runs while the ranks process N. The thread only reads;
//! rank 0's main thread takes each message in order and alone decides what
//! is consumed (offsets, dead letters, the commit), so the delivery
//! protocol is the same as with polling in the loop. At most `capacity`
//! decoded messages wait between the two: memory is bounded by the
//! configuration, and a slow job slows the reading, not the other way.

use crate::codec::{Limits, Reject};
use crate::config::PacketFormat;
use crate::metrics::{Metrics, Phase};
use crate::model::SensorPacket;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One message read from the source topic.
pub enum Polled {
    Packet {
        partition: i32,
        offset: i64,
        packet: SensorPacket,
    },
    /// Not a valid packet: the original bytes, for the dead-letter topic.
    Rejected {
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        reject: Reject,
    },
    /// A consumer error librdkafka reported (it retries by itself).
    Error(rdkafka::error::KafkaError),
}

impl Polled {
    /// Partition and offset of a message; `None` for an error.
    pub fn position(&self) -> Option<(i32, i64)> {
        match self {
            Polled::Packet {
                partition, offset, ..
            }
            | Polled::Rejected {
                partition, offset, ..
            } => Some((*partition, *offset)),
            Polled::Error(_) => None,
        }
    }
}

/// How long one blocking fetch on the thread waits: how fast it notices
/// the job has ended.
const POLL: Duration = Duration::from_millis(100);

pub struct Prefetch {
    rx: Option<Receiver<Polled>>,
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl Prefetch {
    /// Starts reading from `consumer` (already assigned its partitions).
    /// Time spent fetching (not waiting) and decoding is added to
    /// `metrics` as [`Phase::Poll`] and [`Phase::Decode`].
    pub fn start(
        consumer: Arc<BaseConsumer>,
        format: PacketFormat,
        limits: Limits,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Prefetch> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A message already fetched costs its fetch; one that
                    // had to be waited for costs nothing: waiting is not
                    // work.
                    let mut at = Instant::now();
                    let msg = match consumer.poll(Duration::ZERO) {
                        Some(m) => {
                            metrics.add_phase(Phase::Poll, at.elapsed());
                            m
                        }
                        None => match consumer.poll(POLL) {
                            Some(m) => m,
                            None => continue,
                        },
                    };
                    at = Instant::now();
                    let polled = match msg {
                        Err(e) => Polled::Error(e),
                        Ok(m) => {
                            let payload = m.payload().unwrap_or_default();
                            match crate::codec::decode_valid(format, payload, &limits) {
                                Ok(packet) => Polled::Packet {
                                    partition: m.partition(),
                                    offset: m.offset(),
                                    packet,
                                },
                                Err(reject) => Polled::Rejected {
                                    partition: m.partition(),
                                    offset: m.offset(),
                                    key: m.key().map(<[u8]>::to_vec),
                                    payload: payload.to_vec(),
                                    reject,
                                },
                            }
                        }
                    };
                    metrics.add_phase(Phase::Decode, at.elapsed());
                    // Blocks while the main thread is `capacity` behind;
                    // fails once it has gone.
                    if tx.send(polled).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Prefetch {
            rx: Some(rx),
            thread: Some(thread),
            done,
        })
    }

    /// A message already waiting, without blocking.
    pub fn ready(&self) -> anyhow::Result<Option<Polled>> {
        match self.rx().try_recv() {
            Ok(p) => Ok(Some(p)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(self.gone()),
        }
    }

    /// The next message, waiting at most `timeout` for it.
    pub fn next(&self, timeout: Duration) -> anyhow::Result<Option<Polled>> {
        match self.rx().recv_timeout(timeout) {
            Ok(p) => Ok(Some(p)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.gone()),
        }
    }

    fn rx(&self) -> &Receiver<Polled> {
        self.rx.as_ref().expect("receiver lives until drop")
    }

    fn gone(&self) -> anyhow::Error {
        anyhow::anyhow!("the Kafka consumer thread stopped (it panicked: see the log above)")
    }
}

impl Drop for Prefetch {
    /// Stops the thread: one waiting to hand over a message sees the
    /// receiver gone, one fetching sees `done` within [`POLL`].
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

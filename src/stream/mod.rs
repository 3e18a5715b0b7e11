//! `fakopp run`: the stream job (docs/architecture.md, "Data flow", "Delivery protocol (stream)").
//!
//! Rank 0 consumes Kafka, decodes and validates every packet (bad ones go
//! to the dead-letter topic), assembles each sensor's packets in time order
//! (reorder window), and every `batch_interval_ms` sends each sensor's new
//! samples and raw packets to the rank that owns it. All ranks, rank 0
//! included, run the chains and write their sensors' raw packets and
//! results to Cassandra through their own sessions; rank 0 gathers the
//! results, finalises network events, writes them and the JSON lines, and
//! commits the Kafka offsets only after every rank's writes are durable and
//! the checkpoint is written. A micro-batch's Cassandra writes run while
//! the next one is consumed and processed. MPI calls are made by each
//! rank's main thread only (funneled).

mod checkpoint;
mod events;
mod held;
mod owners;
mod part;
mod prefetch;
mod ranks;
mod reorder;
mod sinks;
mod store;
pub mod work;

use crate::chain::CompiledChain;
use crate::config::Config;
use crate::dist::Dist;
use crate::metrics::{Lap, Metrics, Phase};
use crate::output::Results;
use crate::source::kafka;
use anyhow::{Context, Result};
use held::HeldBack;
use prefetch::{Polled, Prefetch};
use ranks::{RankFailed, Ranks};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use work::{Command, SensorState, StoreSpec, Worker};

pub use events::StreamEvents;
pub use owners::Owners;
pub use reorder::{Offer, Reorder};

pub struct RunArgs {
    pub exit_when_idle: Option<f64>,
    pub metrics_addr: Option<String>,
    pub reset_state: bool,
}

pub fn run(cfg: &Config, args: RunArgs) -> Result<()> {
    let dist = Dist::init()?;
    let chains = CompiledChain::compile(cfg)?;
    if !dist.is_root() {
        // Slurm signals every task; only rank 0 decides when to stop (after
        // its micro-batch and checkpoint), so the others must not die
        // first: the signal only bounds how long a write may still retry.
        let signalled = crate::shutdown::install(None)?;
        let spec = cfg
            .sinks
            .kinds
            .contains(&crate::config::SinkKind::Cassandra)
            .then(|| StoreSpec {
                cassandra: cfg.cassandra.clone(),
                stop: signalled,
                startup_timeout_s: cfg.stream.startup_timeout_s,
            });
        let result = ranks::worker_loop(&dist, Worker::storing(chains.clone(), spec));
        if let Err(e) = &result {
            // Rank 0 waits for this rank in a collective: only an abort
            // ends the job instead of hanging it.
            tracing::error!(
                rank = dist.rank(),
                "rank {} failed: {e:#}; aborting the MPI job",
                dist.rank()
            );
            dist.abort(1);
        }
        return result;
    }
    let result = coordinate(cfg, &args, &dist, Worker::new(chains.clone()), &chains);
    if let Err(e) = &result {
        if dist.size() > 1 {
            // The other ranks wait in a collective; a clean stop is impossible.
            if e.chain().any(|c| c.is::<RankFailed>()) {
                tracing::error!("{e:#}; aborting the MPI job");
            } else {
                tracing::error!("rank 0 failed: {e:#}; aborting the MPI job");
            }
            dist.abort(1);
        }
    }
    result
}

/// Counts of one micro-batch's input.
#[derive(Default)]
struct Intake {
    raw: Vec<store::RawPacket>,
    packets: u64,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

/// What a resumed job starts from.
struct Resumed {
    offsets: BTreeMap<i32, i64>,
    generation: u64,
    reorder: Reorder,
    events: StreamEvents,
    owners: Owners,
    jsonl_len: Option<u64>,
    micro_batches: u64,
    checkpoint_ms: f64,
}

/// Loads the newest good checkpoint and hands its sensor states to the
/// ranks that now own them (any number of ranks).
fn resume(
    cfg: &Config,
    args: &RunArgs,
    chains: &[CompiledChain],
    ranks: &mut Ranks,
) -> Result<Option<Resumed>> {
    let dist = ranks.dist;
    let ck = &cfg.checkpoint;
    let latest = match checkpoint::Checkpoint::latest(&ck.path, ck.keep) {
        Err(e) if args.reset_state => {
            tracing::warn!("{e:#}: --reset-state, starting fresh");
            None
        }
        other => other?,
    };
    let Some((c, sensors, path)) = latest else {
        tracing::info!(path = %ck.path.display(), "no checkpoint: starting fresh");
        return Ok(None);
    };
    if c.topic != cfg.kafka.topic {
        anyhow::bail!(
            "checkpoint {} is of topic {}, not {}; point checkpoint.path elsewhere",
            path.display(),
            c.topic,
            cfg.kafka.topic
        );
    }
    let same_chains = c.config_hash == cfg.chains_hash();
    if !same_chains && !args.reset_state {
        return Err(crate::config::ConfigError {
            file: path.clone(),
            key: Some("chains".into()),
            reason: "the checkpoint was made with different chains, coincidence settings or \
                     station positions; run with --reset-state to resume reading from its offsets with fresh kernel state"
                .into(),
        }
        .into());
    }
    let mut owners = Owners::new(dist.size(), cfg.stream.rank0_weight, chains);
    let mut per: Vec<Vec<(String, SensorState)>> = (0..dist.size()).map(|_| Vec::new()).collect();
    let (sensors, events) = if same_chains {
        (sensors, c.events)
    } else {
        (Vec::new(), StreamEvents::new(cfg)?)
    };
    for (sensor, st) in sensors {
        let r = owners.owner(&sensor, st.sample_rate_hz);
        per[r].push((sensor, st));
    }
    ranks.exchange(per.into_iter().map(Command::Restore).collect())?;
    tracing::info!(
        path = %path.display(),
        written_by_ranks = c.ranks,
        ranks = dist.size(),
        reset_state = !same_chains,
        "resuming from checkpoint"
    );
    checkpoint::Checkpoint::promote(&ck.path, &path, ck.keep)?;
    Ok(Some(Resumed {
        offsets: c.offsets,
        generation: c.generation,
        reorder: c.reorder,
        events,
        owners,
        jsonl_len: c.jsonl_len,
        micro_batches: c.micro_batches,
        checkpoint_ms: c.write_ms,
    }))
}

fn coordinate(
    cfg: &Config,
    args: &RunArgs,
    dist: &Dist,
    worker: Worker,
    chains: &[CompiledChain],
) -> Result<()> {
    let metrics = Metrics::new();
    // Every rank listed from the first scrape on.
    metrics.add_busy(vec![0; dist.size()]);
    let mut ranks = Ranks::new(dist, worker, Arc::clone(&metrics));
    let stop = crate::shutdown::install(Some(crate::shutdown::DEADLINE))?;
    if let Some(addr) = &args.metrics_addr {
        crate::metrics::serve(addr, Arc::clone(&metrics))?;
    }
    let mut topics = vec![cfg.kafka.topic.as_str(), cfg.kafka.dlq_topic.as_str()];
    if cfg.sinks.kinds.contains(&crate::config::SinkKind::Kafka) {
        topics.push(&cfg.kafka.detections_topic);
    }
    let deadline = crate::startup::Deadline::after_s(cfg.stream.startup_timeout_s);
    kafka::ensure_topics(&cfg.kafka, &topics, deadline)?;

    // Resume from the newest good checkpoint, if any.
    let ck = &cfg.checkpoint;
    let resumed = resume(cfg, args, chains, &mut ranks)?;
    let mut positions = resumed
        .as_ref()
        .map(|r| r.offsets.clone())
        .unwrap_or_default();
    let (consumer, start) = kafka::consumer(&cfg.kafka, &positions, deadline)?;
    for (p, o) in start {
        positions.entry(p).or_insert(o);
    }
    let consumer = Arc::new(consumer);
    let producer = kafka::producer(&cfg.kafka, Arc::clone(&stop))?;
    let mut sinks = sinks::StreamSinks::open(
        cfg,
        Arc::clone(&stop),
        resumed.as_ref().and_then(|r| r.jsonl_len),
        // Cassandra's own time: a slow Kafka start does not use it up.
        crate::startup::Deadline::after_s(cfg.stream.startup_timeout_s),
    )?;
    // Every rank stores its own sensors' data: the others connect once
    // rank 0 has applied the schema.
    let store_raw = sinks.stores_raw();
    ranks.worker.attach(sinks.rank_store());
    ranks.all(|| Command::Open)?;
    // Reading starts once every rank is ready.
    let prefetch = Prefetch::start(
        Arc::clone(&consumer),
        cfg.kafka.format,
        crate::codec::Limits::from_config(&cfg.stream),
        cfg.stream.max_packets_per_batch,
        Arc::clone(&metrics),
    )
    .context("starting the Kafka consumer thread")?;
    // Checkpoints count on from the one resumed, and above any part on
    // disk: a generation is never written twice, so no kept manifest's
    // part is overwritten (after a fallback, or a fresh start beside old
    // files).
    let mut generation = resumed.as_ref().map_or(0, |r| r.generation).max(
        checkpoint::Checkpoint::newest_generation(&cfg.checkpoint.path),
    );
    let (mut reorder, mut events, mut owners, mut micro_batches, mut checkpoint_ms) = match resumed
    {
        Some(r) => (
            r.reorder,
            r.events,
            r.owners,
            r.micro_batches,
            r.checkpoint_ms,
        ),
        None => (
            Reorder::new(
                cfg.stream.reorder_window_s,
                cfg.stream.max_gap_interp_samples,
                cfg.stream.max_samples_per_packet,
            ),
            StreamEvents::new(cfg)?,
            Owners::new(dist.size(), cfg.stream.rank0_weight, chains),
            0,
            0.0,
        ),
    };
    let retire_after_ns = (cfg.stream.retire_after_s * 1e9) as i64;
    let mut checkpoints = 0u64;
    // Latest packet time read per partition (bounds event finalisation).
    let mut partition_time: BTreeMap<i32, i64> = BTreeMap::new();
    let mut paused = std::collections::BTreeSet::new();
    let skew_ns = (cfg.stream.max_partition_skew_s * 1e9) as i64;
    let mut last_checkpoint = Instant::now();
    let checkpoint_every = Duration::from_secs_f64(ck.interval_s);
    let interval = Duration::from_millis(cfg.stream.batch_interval_ms);
    let idle_limit = args.exit_when_idle.map(Duration::from_secs_f64);
    let status_every = Duration::from_secs_f64(cfg.stream.status_interval_s);
    // Time spent waiting for packets that did not come, since the last
    // one: a slow micro-batch is not idleness.
    let mut idle_for = Duration::ZERO;
    let mut last_status = Instant::now();
    let mut status_base = (
        0u64,
        0u64,
        Instant::now(),
        crate::metrics::process_cpu_s(),
        0u64,
    );
    tracing::info!(ranks = dist.size(), topic = %cfg.kafka.topic, group = %cfg.kafka.group, "stream job started");

    // What the consumer thread had read of paused partitions (at most a
    // channel's worth per pause).
    let mut held: HeldBack<Polled> = HeldBack::default();
    loop {
        let batch_start = Instant::now();
        let mut lap = Lap::new(&metrics);
        let mut intake = Intake::default();
        // 1. Take what the consumer thread read, for one batch interval.
        while batch_start.elapsed() < interval
            && !stop.load(Ordering::Relaxed)
            && (intake.packets as usize) < cfg.stream.max_packets_per_batch
        {
            let polled = match held.next() {
                Some(p) => p,
                None => match prefetch.ready()? {
                    Some(p) => p,
                    None => {
                        let waiting = Instant::now();
                        let next = prefetch.next(
                            interval
                                .saturating_sub(batch_start.elapsed())
                                .max(Duration::from_millis(1)),
                        )?;
                        lap.skip();
                        match next {
                            Some(p) => p,
                            None => {
                                idle_for += waiting.elapsed();
                                continue;
                            }
                        }
                    }
                },
            };
            let Some((partition, offset)) = polled.position() else {
                if let Polled::Error(e) = polled {
                    tracing::warn!("Kafka: {e}");
                }
                continue;
            };
            idle_for = Duration::ZERO;
            // A message taken by the thread just as its partition was
            // paused is fetched again after the resume: taken once.
            if positions.get(&partition).is_some_and(|&next| offset < next) {
                tracing::debug!(partition, offset, "read again after a pause: skipped");
                continue;
            }
            // Read before its partition was paused: kept back, not
            // consumed, until it is resumed, so a pause bounds the
            // partition's lead at once (watermark alignment).
            if paused.contains(&partition) {
                held.hold(partition, polled);
                continue;
            }
            intake.packets += 1;
            positions.insert(partition, offset + 1);
            match polled {
                Polled::Error(_) => unreachable!("handled above"),
                Polled::Rejected {
                    key,
                    payload,
                    reject,
                    ..
                } => {
                    let (code, reason) = (reject.code(), reject.to_string());
                    metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(partition, offset, %code, "dead letter: {reason}");
                    kafka::dead_letter(
                        &producer,
                        &cfg.kafka.dlq_topic,
                        key.as_deref(),
                        &payload,
                        code,
                        &reason,
                        (&cfg.kafka.topic, partition, offset),
                    )?;
                    lap.mark(Phase::Intake);
                }
                Polled::Packet { packet: p, .. } => {
                    let p = Arc::new(p);
                    let t = partition_time.entry(partition).or_insert(i64::MIN);
                    *t = (*t).max(p.start_time_ns);
                    metrics.packets.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .samples
                        .fetch_add(p.samples.len() as u64, Ordering::Relaxed);
                    lap.mark(Phase::Intake);
                    match reorder.offer(&p, partition) {
                        Offer::Accepted if store_raw => intake.raw.push((p, false)),
                        Offer::Accepted => {}
                        Offer::Late => {
                            metrics.late_packets.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(sensor = %p.sensor_id, start = %crate::model::format_time_us(p.start_time_ns), "late packet: stored raw, not processed");
                            if store_raw {
                                intake.raw.push((p, true));
                            }
                        }
                        Offer::Duplicate => {
                            metrics.duplicate_packets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lap.mark(Phase::Reorder);
                }
            }
        }
        // End of input (idle): flush everything. A signal (Slurm preemption)
        // only stops: the state is checkpointed as it is, to resume later.
        // Idle means nothing came for the idle limit *and* nothing is left
        // to read (one broker round trip, only once the limit is reached).
        let finishing = idle_limit.is_some_and(|l| idle_for >= l)
            && kafka::lag(&consumer, &cfg.kafka.topic, &positions) == Some(0);
        let stopping = finishing || stop.load(Ordering::Relaxed);
        micro_batches += 1;

        // 2. Process: each sensor's released samples on its rank.
        let span = tracing::info_span!("micro_batch", packets = intake.packets);
        let _enter = span.enter();
        lap.skip();
        let lagging = kafka::lagging_partitions(&consumer, &cfg.kafka.topic, &positions);
        kafka::align(
            &consumer,
            &cfg.kafka.topic,
            reorder.partition_clocks(),
            &lagging,
            skew_ns,
            &mut paused,
        )?;
        held.resume(&paused);
        lap.mark(Phase::Align);
        let work = reorder.release(finishing, retire_after_ns, &lagging);
        let per_rank = owners.split(work);
        let raw_per_rank = owners.split_raw(std::mem::take(&mut intake.raw));
        let mut results = Results::default();
        lap.mark(Phase::Release);
        let mut replies = ranks.exchange(
            per_rank
                .into_iter()
                .zip(raw_per_rank)
                .map(|(items, raw)| Command::Work { items, raw })
                .collect(),
        )?;
        lap.mark_step(Phase::Exchange, ranks.own_ns, ranks.wait_ns);
        if finishing {
            let finished = ranks.all(|| Command::Finish)?;
            lap.mark_step(Phase::Exchange, ranks.own_ns, ranks.wait_ns);
            replies.extend(finished);
        }
        for r in replies {
            events.observe(cfg, &r.results, &r.progress)?;
            for s in &r.retired {
                owners.forget(s);
                events.forget(s);
                metrics.retired_sensors.fetch_add(1, Ordering::Relaxed);
                tracing::info!(sensor = %s, after_s = cfg.stream.retire_after_s, "sensor silent: retired (starts afresh if it returns)");
            }
            results.extend(r.results);
        }
        let window_ns = (cfg.stream.reorder_window_s * 1e9) as i64;
        let bound = lagging
            .iter()
            .map(|p| {
                partition_time
                    .get(p)
                    .map_or(i64::MIN, |t| t.saturating_sub(window_ns))
            })
            .min()
            .unwrap_or(i64::MAX);
        results.events = events.ready(chains, finishing, bound, |c| {
            reorder.earliest_pending(|s| c.matches(s))
        })?;
        results.qc_tests.extend(CompiledChain::qc_labels(chains));
        results.sort();
        lap.mark(Phase::Events);
        for p in &results.problems {
            tracing::warn!(chain = %p.chain, sensor = %p.sensor, "{}", p.reason);
        }

        // 3. Make it durable; at checkpoints, save the state and only then
        //    commit what was consumed.
        //    Cassandra rows are written in the background while the next
        //    micro-batch is consumed; a checkpoint first waits for them.
        crate::fault::kill_at("before_sinks", micro_batches);
        let counts = (
            results.triggers.len() as u64,
            results.events.len() as u64,
            results.qc.len() as u64,
        );
        let sinks_wait = sinks.write(results, &producer, cfg)?;
        if let Some(ms) = [sinks.last_write_ms(), ranks.write_ms]
            .into_iter()
            .flatten()
            .reduce(f64::max)
        {
            *metrics.sink_write_ms.lock().expect("metrics lock") = ms;
        }
        lap.mark_step(Phase::Sinks, 0, crate::metrics::nanos(sinks_wait));
        crate::fault::kill_at("after_sinks", micro_batches);
        if stopping || last_checkpoint.elapsed() >= checkpoint_every {
            let waited = sinks.settle()?;
            lap.mark_step(Phase::Checkpoint, 0, crate::metrics::nanos(waited));
            kafka::flush(&producer, &stop)?;
            checkpoints += 1;
            let started = Instant::now();
            // Every rank writes its own sensors' states; the manifest,
            // last, makes them one checkpoint.
            generation += 1;
            let replies = ranks.exchange(
                (0..dist.size())
                    .map(|r| Command::Snapshot {
                        manifest: ck.path.clone(),
                        rank: r,
                        generation,
                    })
                    .collect(),
            )?;
            let snapshot = checkpoint::Checkpoint {
                config_hash: cfg.chains_hash(),
                ranks: dist.size(),
                topic: cfg.kafka.topic.clone(),
                offsets: positions.clone(),
                generation,
                parts: replies
                    .into_iter()
                    .map(|r| r.part.context("a rank wrote no checkpoint part"))
                    .collect::<Result<_>>()?,
                reorder: reorder.clone(),
                events: events.clone(),
                jsonl_len: sinks.jsonl_len()?,
                micro_batches,
                created_ns: now_ns(),
                write_ms: checkpoint_ms,
            };
            let bytes = snapshot
                .write(&ck.path, ck.keep, checkpoints)
                .context("writing the checkpoint")?;
            checkpoint_ms = started.elapsed().as_secs_f64() * 1e3;
            metrics.checkpoint_bytes.store(bytes, Ordering::Relaxed);
            *metrics.checkpoint_write_ms.lock().expect("metrics lock") = checkpoint_ms;
            // The checkpoint is the source of truth for offsets; the
            // group's committed offsets are for monitoring tools, so a
            // failed commit is retried with the next checkpoint.
            if let Err(e) = kafka::commit(&consumer, &cfg.kafka.topic, &positions) {
                metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{e:#}; retried at the next checkpoint");
            }
            last_checkpoint = Instant::now();
            lap.mark(Phase::Checkpoint);
            tracing::debug!(path = %ck.path.display(), bytes, write_ms = checkpoint_ms, "checkpoint written");
        }

        metrics.triggers.fetch_add(counts.0, Ordering::Relaxed);
        metrics.events.fetch_add(counts.1, Ordering::Relaxed);
        metrics.qc_rows.fetch_add(counts.2, Ordering::Relaxed);
        metrics.batches.fetch_add(1, Ordering::Relaxed);
        metrics.record_batch_latency(
            batch_start.elapsed().saturating_sub(interval).as_secs_f64() * 1e3,
        );
        drop(_enter);

        if last_status.elapsed() >= status_every || stopping {
            if let Some(lag) = kafka::cached_lag(&consumer, &cfg.kafka.topic, &positions) {
                metrics.consumer_lag.store(lag, Ordering::Relaxed);
            }
            metrics.set_state(crate::metrics::State {
                sensors: owners.len() as u64,
                reorder_samples: reorder.samples_held() as u64,
                triggers_held: events.pending() as u64,
                rss_bytes: crate::metrics::rss_bytes(),
                data_time_ns: partition_time.values().copied().max().unwrap_or(0),
            });
            let (p50, p99) = metrics.latency_quantiles();
            let (pk, sm) = (
                metrics.packets.load(Ordering::Relaxed),
                metrics.samples.load(Ordering::Relaxed),
            );
            let secs = status_base.2.elapsed().as_secs_f64().max(1e-9);
            let cpu = crate::metrics::process_cpu_s();
            let serial = metrics.serial_ns();
            let (cpu_ns_per_sample, serial_ns_per_sample) = if sm > status_base.1 {
                let n = (sm - status_base.1) as f64;
                (
                    (cpu - status_base.3) * 1e9 / n,
                    serial.saturating_sub(status_base.4) as f64 / n,
                )
            } else {
                (0.0, 0.0)
            };
            let st = metrics.state();
            let clocks = reorder.partition_clocks();
            let skew_s = match (clocks.values().min(), clocks.values().max()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                _ => 0.0,
            };
            // How far the network coincidence trails the newest data.
            let events_behind_s = events
                .trailing_ns()
                .filter(|&s| s > i64::MIN && s < i64::MAX)
                .map_or(0.0, |s| {
                    (st.data_time_ns.saturating_sub(s)).max(0) as f64 / 1e9
                });
            tracing::info!(
                packets_per_s = format!("{:.0}", (pk - status_base.0) as f64 / secs),
                samples_per_s = format!("{:.0}", (sm - status_base.1) as f64 / secs),
                lag = metrics.consumer_lag.load(Ordering::Relaxed),
                batch_p50_ms = format!("{p50:.1}"),
                batch_p99_ms = format!("{p99:.1}"),
                cpu_ns_per_sample = format!("{cpu_ns_per_sample:.1}"),
                rank0_serial_ns_per_sample = format!("{serial_ns_per_sample:.1}"),
                samples_total = sm,
                cpu_s = format!("{cpu:.3}"),
                dlq = metrics.dead_letters.load(Ordering::Relaxed),
                late = metrics.late_packets.load(Ordering::Relaxed),
                sink_ms = format!(
                    "{:.1}",
                    *metrics.sink_write_ms.lock().expect("metrics lock")
                ),
                pending = reorder.pending(),
                sensors = st.sensors,
                triggers_held = st.triggers_held,
                events_behind_s = format!("{events_behind_s:.1}"),
                partition_skew_s = format!("{skew_s:.1}"),
                paused_partitions = paused.len(),
                held_back = held.len(),
                reorder_samples = st.reorder_samples,
                rss_bytes = st.rss_bytes,
                checkpoint_bytes = metrics.checkpoint_bytes.load(Ordering::Relaxed),
                checkpoint_ms = format!("{checkpoint_ms:.1}"),
                data_time = %crate::model::format_time_us(st.data_time_ns),
                "status"
            );
            status_base = (pk, sm, Instant::now(), cpu, serial);
            last_status = Instant::now();
            lap.mark(Phase::Status);
        }
        if stopping {
            sinks.close()?;
            ranks.all(|| Command::Stop)?;
            ranks.written[0].rows += sinks.written().rows;
            let per_sample = |ns: u64| {
                let n = metrics.samples.load(Ordering::Relaxed).max(1);
                format!("{:.2}", ns as f64 / n as f64)
            };
            let phases: Vec<String> = crate::metrics::Phase::ALL
                .iter()
                .zip(metrics.phase_ns())
                .map(|(p, ns)| format!("{}:{}", p.name(), per_sample(ns)))
                .collect();
            let busy: Vec<String> = metrics.busy_by_rank().into_iter().map(per_sample).collect();
            tracing::info!(
                raw_packets_by_rank = %ranks.by_rank(|w| w.raw_packets),
                rows_by_rank = %ranks.by_rank(|w| w.rows),
                rank0_serial_ns_per_sample = %per_sample(metrics.serial_ns()),
                consumer_thread_ns_per_sample = %per_sample(metrics.consumer_ns()),
                rank0_ns_per_sample = %format!("[{}]", phases.join(",")),
                busy_ns_per_sample_by_rank = %format!("[{}]", busy.join(",")),
                packets = metrics.packets.load(Ordering::Relaxed),
                dead_letters = metrics.dead_letters.load(Ordering::Relaxed),
                late = metrics.late_packets.load(Ordering::Relaxed),
                duplicates = metrics.duplicate_packets.load(Ordering::Relaxed),
                triggers = metrics.triggers.load(Ordering::Relaxed),
                events = metrics.events.load(Ordering::Relaxed),
                reason = if finishing { "idle" } else { "signal" },
                "stream job finished"
            );
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::model::{SensorKind, SensorPacket};

    /// Rank 0's structures and one worker fed `hours` of 3 noisy 100 Hz
    /// sensors with a trigger that fires every few seconds and a network
    /// coincidence over them, one second per micro-batch: the largest
    /// state seen, as a checkpoint would serialise it.
    fn peak_state(hours: u64) -> (usize, usize) {
        let text = r#"
[source]
kind = "kafka"
[sinks]
kinds = ["jsonl"]
[stream]
reorder_window_s = 2.0
[[chains]]
name = "t"
select = ["XX.*..HHZ"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 1.3, off = 1.1 },
]
[[coincidence]]
chain = "t"
threshold_sum = 2
trigger_off_extension_s = 0.5
"#;
        let cfg = Config::parse(text, std::path::Path::new("t.toml"), Mode::Stream).unwrap();
        let chains = CompiledChain::compile(&cfg).unwrap();
        let mut worker = Worker::new(chains.clone());
        let mut reorder = Reorder::new(2.0, 15, 100_000);
        let mut events = StreamEvents::new(&cfg).unwrap();
        let mut owners = Owners::new(1, 1.0, &chains);
        let (mut peak, mut triggers) = (0usize, 0usize);
        let mut x = 1u64;
        for sec in 0..hours * 3600 {
            let t = (sec * 1_000_000_000) as i64;
            for s in 0..3 {
                let samples: Vec<f64> = (0..100)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                    })
                    .collect();
                let p = SensorPacket {
                    sensor_id: format!("XX.S{s}..HHZ"),
                    kind: SensorKind::Seismic,
                    start_time_ns: t,
                    sample_rate_hz: 100.0,
                    samples,
                    unit: "counts".into(),
                    seq: None,
                };
                reorder.offer(&Arc::new(p), 0);
            }
            let work = reorder.release(false, 3_600_000_000_000, &[]);
            let per = owners.split(work);
            let reply = worker.handle(Command::Work {
                items: per.into_iter().next().unwrap(),
                raw: Vec::new(),
            });
            events
                .observe(&cfg, &reply.results, &reply.progress)
                .unwrap();
            triggers += reply.results.triggers.len();
            events.ready(&chains, false, i64::MAX, |_| None).unwrap();
            if sec % 600 == 599 {
                let size = postcard::to_stdvec(&(&worker.states(), &reorder, &events))
                    .unwrap()
                    .len();
                peak = peak.max(size);
            }
        }
        (peak, triggers)
    }

    #[test]
    fn state_does_not_grow_with_the_hours_streamed() {
        let (one, t1) = peak_state(1);
        let (four, t4) = peak_state(4);
        assert!(t1 > 300 && t4 > 4 * 300, "triggers: {t1}, {t4}");
        // The same sensors and windows: the same size, give or take the
        // triggers waiting at the moment of the snapshot.
        assert!(
            four <= one + one / 10,
            "state after 1 h: {one} bytes, after 4 h: {four} bytes"
        );
    }
}

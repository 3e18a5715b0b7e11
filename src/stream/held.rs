//! Messages of paused partitions (docs/architecture.md, "Watermark
//! alignment"). Pausing a partition stops the broker's deliveries, but the
//! consumer thread may already have read some of its messages: those are
//! held here, not consumed, until the partition resumes, then taken before
//! anything newer. A partition's messages keep their order through any
//! number of pauses.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub struct HeldBack<T> {
    held: BTreeMap<i32, VecDeque<T>>,
    replay: VecDeque<T>,
}

impl<T> Default for HeldBack<T> {
    fn default() -> Self {
        HeldBack {
            held: BTreeMap::new(),
            replay: VecDeque::new(),
        }
    }
}

impl<T> HeldBack<T> {
    /// The next message of a resumed partition, if any: taken before the
    /// consumer thread's.
    pub fn next(&mut self) -> Option<T> {
        self.replay.pop_front()
    }

    /// Keeps back a message of the paused `partition`.
    pub fn hold(&mut self, partition: i32, msg: T) {
        self.held.entry(partition).or_default().push_back(msg);
    }

    /// Queues what is held of every partition no longer `paused`.
    pub fn resume(&mut self, paused: &BTreeSet<i32>) {
        let replay = &mut self.replay;
        self.held.retain(|p, q| {
            if paused.contains(p) {
                return true;
            }
            replay.extend(q.drain(..));
            false
        });
    }

    /// Messages held or waiting to be taken again (the status line's
    /// `held_back`).
    pub fn len(&self) -> usize {
        self.replay.len() + self.held.values().map(VecDeque::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop's use: take held messages first, hold those of paused
    /// partitions, resume between micro-batches.
    fn take(h: &mut HeldBack<(i32, u32)>, paused: &BTreeSet<i32>, n: usize) -> Vec<(i32, u32)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(m) = h.next() else { break };
            if paused.contains(&m.0) {
                h.hold(m.0, m);
            } else {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn a_partitions_messages_keep_their_order_through_pauses() {
        let mut h = HeldBack::default();
        let mut paused = BTreeSet::from([1]);
        for k in 0..4 {
            h.hold(1, (1, k));
        }
        h.resume(&paused);
        assert_eq!(
            (h.next(), h.len()),
            (None, 4),
            "still paused: nothing comes"
        );
        paused.clear();
        h.resume(&paused);
        // Two taken, then paused again: the other two are held again, in
        // order, ahead of anything newer.
        assert_eq!(take(&mut h, &paused, 2), [(1, 0), (1, 1)]);
        paused.insert(1);
        assert!(take(&mut h, &paused, 10).is_empty());
        h.hold(1, (1, 4));
        h.hold(2, (2, 0));
        paused.insert(2);
        paused.remove(&1);
        h.resume(&paused);
        assert_eq!(take(&mut h, &paused, 10), [(1, 2), (1, 3), (1, 4)]);
        assert_eq!(h.len(), 1);
        paused.clear();
        h.resume(&paused);
        assert_eq!(take(&mut h, &paused, 10), [(2, 0)]);
        assert_eq!(h.len(), 0);
    }
}

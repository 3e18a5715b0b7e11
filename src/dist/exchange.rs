//! Variable-length scatter and gather between rank 0 and all ranks
//! (MPI_Scatterv / MPI_Gatherv), rank 0 included as a worker.

use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

fn displacements<C: Copy + Default + std::ops::Add<Output = C>>(counts: &[C]) -> Vec<C> {
    counts
        .iter()
        .scan(C::default(), |acc, &c| {
            let d = *acc;
            *acc = *acc + c;
            Some(d)
        })
        .collect()
}

/// Rank 0 passes one buffer per rank (`Some(parts)`, `parts.len() == size`);
/// every rank, rank 0 included, gets back its own buffer.
pub fn scatter_buffers<T>(world: &SimpleCommunicator, parts: Option<&[Vec<T>]>) -> Vec<T>
where
    T: Equivalence + Default + Clone,
{
    let flat = parts.map(|parts| {
        assert_eq!(parts.len(), world.size() as usize, "one buffer per rank");
        let counts: Vec<usize> = parts.iter().map(Vec::len).collect();
        (parts.concat(), counts)
    });
    scatter_flat(world, flat.as_ref().map(|(f, c)| (&f[..], &c[..])))
}

/// Elements one collective may carry in all: MPI counts and
/// displacements are C `int`s. `FAKOPP_MPI_MESSAGE_LIMIT` lowers it (tests
/// exercise the split with small messages).
fn message_limit() -> usize {
    // Read once: every collective of the job asks.
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let max = Count::MAX as usize;
        std::env::var("FAKOPP_MPI_MESSAGE_LIMIT")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(max, |l| l.clamp(1, max))
    })
}

/// Elements per rank in each round of a split exchange, and the number of
/// rounds that carry the largest buffer (at least one, so empty exchanges
/// still meet).
fn rounds(counts: &[u64], limit: usize) -> (usize, u64) {
    let per = (limit / counts.len().max(1)).max(1);
    let largest = counts.iter().copied().max().unwrap_or(0);
    (per, largest.div_ceil(per as u64).max(1))
}

/// Round `k`'s piece of a buffer of `len` elements: `(start, count)`.
fn piece(len: u64, per: usize, k: u64) -> (usize, usize) {
    let start = (k * per as u64).min(len);
    let end = ((k + 1) * per as u64).min(len);
    (start as usize, (end - start) as usize)
}

/// [`scatter_buffers`] with rank 0's buffers given back to back in one
/// slice, `counts[r]` elements for rank `r` (no copy to concatenate them).
/// Buffers of any size: an exchange that would exceed MPI's `int` counts
/// is split into rounds that each fit.
pub fn scatter_flat<T>(world: &SimpleCommunicator, parts: Option<(&[T], &[usize])>) -> Vec<T>
where
    T: Equivalence + Default + Clone,
{
    let root = world.process_at_rank(0);
    let limit = message_limit();
    let size = world.size() as usize;
    let mut my_len = 0u64;
    // (elements per rank per round, rounds)
    let mut plan = [0u64; 2];
    if world.rank() == 0 {
        let (flat, counts) = parts.expect("rank 0 must provide one buffer per rank");
        assert_eq!(counts.len(), size, "one buffer per rank");
        assert_eq!(
            counts.iter().sum::<usize>(),
            flat.len(),
            "counts cover the buffer"
        );
        let lens: Vec<u64> = counts.iter().map(|&c| c as u64).collect();
        root.scatter_into_root(&lens[..], &mut my_len);
        let (per, n) = if flat.len() <= limit {
            (limit, 1)
        } else {
            rounds(&lens, limit)
        };
        plan = [per as u64, n];
        root.broadcast_into(&mut plan[..]);
        let offsets: Vec<usize> = displacements(counts);
        let mut mine = Vec::with_capacity((my_len as usize).max(1));
        // Empty slices share one dangling address, and Open MPI rejects a
        // send buffer equal to the receive buffer: give empty ones storage.
        let dummy = [T::default()];
        let mut round_buf: Vec<T> = Vec::new();
        for k in 0..n {
            let (send, counts_k, displs_k): (&[T], Vec<Count>, Vec<Count>) = if n == 1 {
                let c: Vec<Count> = counts.iter().map(|&c| c as Count).collect();
                let d = displacements(&c);
                (flat, c, d)
            } else {
                round_buf.clear();
                let mut c = Vec::with_capacity(size);
                for (r, &len) in lens.iter().enumerate() {
                    let (start, count) = piece(len, per, k);
                    let at = offsets[r] + start;
                    round_buf.extend_from_slice(&flat[at..at + count]);
                    c.push(count as Count);
                }
                let d = displacements(&c);
                (&round_buf[..], c, d)
            };
            let send = if send.is_empty() { &dummy[..0] } else { send };
            let my_count = counts_k[0] as usize;
            let partition = Partition::new(send, counts_k, displs_k);
            let mut got = vec![T::default(); my_count.max(1)];
            root.scatter_varcount_into_root(&partition, &mut got[..my_count]);
            mine.extend_from_slice(&got[..my_count]);
        }
        mine
    } else {
        root.scatter_into(&mut my_len);
        root.broadcast_into(&mut plan[..]);
        let (per, n) = (plan[0] as usize, plan[1]);
        // Storage even when empty (see gather_buffers).
        let mut mine = Vec::with_capacity((my_len as usize).max(1));
        mine.resize(my_len as usize, T::default());
        for k in 0..n {
            let (start, count) = piece(my_len, per, k);
            root.scatter_varcount_into(&mut mine[start..start + count]);
        }
        mine
    }
}

/// Every rank passes its buffer; rank 0 gets all of them in rank order,
/// the other ranks get `None`. Buffers of any size (split into rounds, as
/// [`scatter_flat`]).
pub fn gather_buffers<T>(world: &SimpleCommunicator, mine: &[T]) -> Option<Vec<Vec<T>>>
where
    T: Equivalence + Default + Clone,
{
    let root = world.process_at_rank(0);
    let limit = message_limit();
    let my_len = mine.len() as u64;
    let mut plan = [0u64; 2];
    if world.rank() == 0 {
        let mut lens = vec![0u64; world.size() as usize];
        root.gather_into_root(&my_len, &mut lens[..]);
        let total: u64 = lens.iter().sum();
        let (per, n) = if total <= limit as u64 {
            (limit, 1)
        } else {
            rounds(&lens, limit)
        };
        plan = [per as u64, n];
        root.broadcast_into(&mut plan[..]);
        let mut out: Vec<Vec<T>> = lens
            .iter()
            .map(|&l| Vec::with_capacity(l as usize))
            .collect();
        for k in 0..n {
            let counts: Vec<Count> = lens.iter().map(|&l| piece(l, per, k).1 as Count).collect();
            let round_total: usize = counts.iter().map(|&c| c as usize).sum();
            // An empty buffer's dangling address can be Open MPI's
            // MPI_IN_PLACE ((void *) 1, a byte buffer's) or equal another
            // one's: every buffer passed gets real storage.
            let mut flat = vec![T::default(); round_total.max(1)];
            flat.truncate(round_total);
            let dummy = [T::default()];
            let displs = displacements(&counts);
            let (start, count) = piece(my_len, per, k);
            let send = if count == 0 {
                &dummy[..0]
            } else {
                &mine[start..start + count]
            };
            {
                let mut partition = PartitionMut::new(&mut flat[..], counts.clone(), displs);
                root.gather_varcount_into_root(send, &mut partition);
            }
            let mut rest = &flat[..];
            for (r, c) in counts.into_iter().enumerate() {
                let (head, tail) = rest.split_at(c as usize);
                out[r].extend_from_slice(head);
                rest = tail;
            }
        }
        Some(out)
    } else {
        root.gather_into(&my_len);
        root.broadcast_into(&mut plan[..]);
        let (per, n) = (plan[0] as usize, plan[1]);
        let dummy = [T::default()];
        for k in 0..n {
            let (start, count) = piece(my_len, per, k);
            let send = if count == 0 {
                &dummy[..0]
            } else {
                &mine[start..start + count]
            };
            root.gather_varcount_into(send);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_cover_every_element_within_the_limit() {
        let counts = [0u64, 17, 2043, 5];
        for limit in [1usize, 3, 4, 7, 100, 10_000] {
            let (per, n) = rounds(&counts, limit);
            assert!(per * counts.len() <= limit.max(counts.len()), "{limit}");
            for &len in &counts {
                let mut next = 0;
                for k in 0..n {
                    let (start, count) = piece(len, per, k);
                    assert_eq!(start, next.min(len as usize));
                    next = start + count;
                }
                assert_eq!(next, len as usize, "limit {limit}: all of {len}");
            }
        }
        assert_eq!(rounds(&[0, 0], 10), (5, 1), "an empty exchange meets once");
    }
}

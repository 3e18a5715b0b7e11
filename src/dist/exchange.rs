//! Variable-length scatter and gather between rank 0 and all ranks
//! (MPI_Scatterv / MPI_Gatherv), rank 0 included as a worker.

use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

fn displacements(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |acc, &c| {
            let d = *acc;
            *acc += c;
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

/// [`scatter_buffers`] with rank 0's buffers given back to back in one
/// slice, `counts[r]` elements for rank `r` (no copy to concatenate them).
///
/// # Panics
///
/// If a rank's buffer holds more than `i32::MAX` elements (MPI counts are
/// `int`); callers check [`fits_one_message`] first.
pub fn scatter_flat<T>(world: &SimpleCommunicator, parts: Option<(&[T], &[usize])>) -> Vec<T>
where
    T: Equivalence + Default + Clone,
{
    let root = world.process_at_rank(0);
    let mut my_count: Count = 0;
    if world.rank() == 0 {
        let (flat, counts) = parts.expect("rank 0 must provide one buffer per rank");
        assert_eq!(counts.len(), world.size() as usize, "one buffer per rank");
        assert_eq!(
            counts.iter().sum::<usize>(),
            flat.len(),
            "counts cover the buffer"
        );
        let counts: Vec<Count> = counts
            .iter()
            .map(|&c| Count::try_from(c).expect("callers check fits_one_message"))
            .collect();
        root.scatter_into_root(&counts[..], &mut my_count);
        let displs = displacements(&counts);
        // Empty slices share one dangling address, and Open MPI rejects a
        // send buffer equal to the receive buffer: give empty ones storage.
        let dummy = [T::default()];
        let flat = if flat.is_empty() { &dummy[..0] } else { flat };
        let partition = Partition::new(flat, counts, displs);
        let mut mine = Vec::with_capacity((my_count as usize).max(1));
        mine.resize(my_count as usize, T::default());
        root.scatter_varcount_into_root(&partition, &mut mine[..]);
        mine
    } else {
        root.scatter_into(&mut my_count);
        let mut mine = vec![T::default(); my_count as usize];
        root.scatter_varcount_into(&mut mine[..]);
        mine
    }
}

/// True if a scatter of `len` elements in all (every rank's buffer and
/// every offset) fits MPI's `int` counts.
pub fn fits_one_message(len: usize) -> bool {
    Count::try_from(len).is_ok()
}

/// Every rank passes its buffer; rank 0 gets all of them in rank order,
/// the other ranks get `None`.
pub fn gather_buffers<T>(world: &SimpleCommunicator, mine: &[T]) -> Option<Vec<Vec<T>>>
where
    T: Equivalence + Default + Clone,
{
    let root = world.process_at_rank(0);
    let my_count = mine.len() as Count;
    if world.rank() == 0 {
        let mut counts = vec![0 as Count; world.size() as usize];
        root.gather_into_root(&my_count, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut flat = vec![T::default(); total];
        let displs = displacements(&counts);
        {
            let mut partition = PartitionMut::new(&mut flat[..], counts.clone(), displs);
            root.gather_varcount_into_root(mine, &mut partition);
        }
        let mut out = Vec::with_capacity(counts.len());
        let mut rest = &flat[..];
        for c in counts {
            let (head, tail) = rest.split_at(c as usize);
            out.push(head.to_vec());
            rest = tail;
        }
        Some(out)
    } else {
        root.gather_into(&my_count);
        root.gather_varcount_into(mine);
        None
    }
}

//! `fakopp selftest mpi`: proves on a cluster (or in an Apptainer image
//! with the host's MPI) that the collectives the pipeline relies on work:
//! a scatterv of variable-length f64 buffers from rank 0 to every rank and
//! a gatherv back, with every value checked.

use crate::dist::{gather_buffers, scatter_buffers, Dist};
use anyhow::{bail, Result};

fn value(rank: usize, i: usize) -> f64 {
    rank as f64 * 1e6 + i as f64 + 0.25
}

/// Lengths differ per rank (rank 0 included, one rank may get nothing) so
/// counts and displacements are really exercised.
fn len_for(rank: usize) -> usize {
    if rank == 1 {
        0
    } else {
        17 + 1013 * rank
    }
}

pub fn mpi(dist: &Dist) -> Result<String> {
    let Some(world) = dist.world() else {
        return Ok(
            "mpi selftest: not launched by mpirun; a world of one rank, nothing to exchange".into(),
        );
    };
    let size = dist.size();
    let parts: Option<Vec<Vec<f64>>> = dist.is_root().then(|| {
        (0..size)
            .map(|r| (0..len_for(r)).map(|i| value(r, i)).collect())
            .collect()
    });
    let mine = scatter_buffers(&world, parts.as_deref());
    let me = dist.rank();
    if mine.len() != len_for(me) || mine.iter().enumerate().any(|(i, &v)| v != value(me, i)) {
        bail!(
            "rank {me}: scatterv delivered {} values that differ from what rank 0 sent",
            mine.len()
        );
    }
    let reply: Vec<f64> = mine.iter().map(|v| -v).collect();
    let gathered = gather_buffers(&world, &reply);
    let mut total = 0;
    if let Some(all) = gathered {
        for (r, buf) in all.iter().enumerate() {
            if buf.len() != len_for(r) || buf.iter().enumerate().any(|(i, &v)| v != -value(r, i)) {
                bail!(
                    "gatherv: the buffer from rank {r} came back wrong ({} values)",
                    buf.len()
                );
            }
            total += buf.len();
        }
    }
    // Nothing to send anywhere (a micro-batch with no data, or one rank
    // under mpirun): the collectives still meet and deliver nothing.
    let empty: Option<Vec<Vec<f64>>> = dist.is_root().then(|| vec![Vec::new(); size]);
    let got = scatter_buffers(&world, empty.as_deref());
    // As the stream job gathers its own reply: bytes, from a literal empty
    // slice (the dangling address an empty buffer may share).
    let back = gather_buffers::<u8>(&world, &[]);
    if !got.is_empty() || back.is_some_and(|b| b.iter().any(|v| !v.is_empty())) {
        bail!("rank {me}: an empty exchange delivered values");
    }
    dist.barrier();
    Ok(format!(
        "mpi selftest: {size} ranks, {total} f64 values scattered and gathered intact"
    ))
}

//! MPI distribution: initialisation (thread level funneled: only the main
//! thread of each rank calls MPI) and the collective moves of the pipeline.
//!
//! Without `mpirun` the process is a world of one rank, and no MPI call is
//! made at all, so laptops and tests without an MPI launcher work alike.

mod exchange;

pub use exchange::{gather_buffers, scatter_buffers, scatter_flat};

use anyhow::{bail, Result};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;

/// Encodes a value for an MPI message (postcard: compact, f64 exact).
pub fn to_bytes<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    use anyhow::Context;
    postcard::to_stdvec(v).context("serialising for MPI")
}

/// [`to_bytes`] appended to `out`.
pub fn append_bytes<T: serde::Serialize>(v: &T, out: &mut Vec<u8>) -> Result<()> {
    use anyhow::Context;
    let buf = postcard::to_extend(v, std::mem::take(out)).context("serialising for MPI")?;
    *out = buf;
    Ok(())
}

/// Decodes a value sent with [`to_bytes`].
pub fn from_bytes<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    use anyhow::Context;
    postcard::from_bytes(b).context("deserialising an MPI message")
}

/// The job's place in the MPI world.
pub struct Dist {
    // Dropping the universe finalizes MPI; keep it for the program's life.
    universe: Option<mpi::environment::Universe>,
    rank: usize,
    size: usize,
}

/// True when this process was started by an MPI launcher.
pub fn launched_by_mpirun() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

/// A rank whose main thread panics ends the whole world: unwinding would
/// finalise MPI on this rank while the others wait for it in a collective
/// for ever. The panic is logged first, naming the rank.
fn abort_on_panic(rank: usize) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if std::thread::current().name() == Some("main") {
            tracing::error!(rank, "rank {rank} panicked: {info}; aborting the MPI job");
            // Only the main thread calls MPI (funneled).
            mpi::topology::SimpleCommunicator::world().abort(101);
        }
    }));
}

impl Dist {
    /// Initialises MPI when launched by mpirun, else a world of one.
    pub fn init() -> Result<Dist> {
        if !launched_by_mpirun() {
            return Ok(Dist {
                universe: None,
                rank: 0,
                size: 1,
            });
        }
        let Some((universe, level)) = mpi::initialize_with_threading(Threading::Funneled) else {
            bail!("MPI was already initialised in this process");
        };
        if level < Threading::Funneled {
            bail!("the MPI library offers thread level {level:?}; fakopp needs at least Funneled");
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if size > 1 {
            abort_on_panic(rank);
        }
        Ok(Dist {
            universe: Some(universe),
            rank,
            size,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The world communicator, `None` for a world of one without MPI.
    pub fn world(&self) -> Option<SimpleCommunicator> {
        self.universe.as_ref().map(|u| u.world())
    }

    /// True on every rank if `ok` is true on every rank (a collective:
    /// every rank must call it). Without MPI, `ok`.
    pub fn all_ok(&self, ok: bool) -> bool {
        use mpi::collective::SystemOperation;
        let Some(world) = self.world() else {
            return ok;
        };
        let mut all = 0i32;
        world.all_reduce_into(&i32::from(ok), &mut all, SystemOperation::min());
        all == 1
    }

    /// Waits for every rank.
    pub fn barrier(&self) {
        if let Some(w) = self.world() {
            w.barrier();
        }
    }

    /// Ends the whole job from any rank (a rank that cannot go on).
    pub fn abort(&self, code: i32) -> ! {
        match self.world() {
            Some(w) => w.abort(code),
            None => std::process::exit(code),
        }
    }
}

//! The processes of one job (docs/performance.md, "Across processes"): one process
//! by default, or the ranks of an MPI job started by `mpirun -np K` when l2l is built with the
//! `mpi` feature.
//!
//! Work is split into units whose results do not depend on who computes them (shards of
//! problems, evolution-strategies runs, learning rates), each rank computes a contiguous share
//! of the units, and [`Ranks::gather`] hands every rank every unit's result in unit order. Every
//! sum is then formed on every rank in the order one process forms it, so a job's results are
//! bit-identical to one process's for any K.
//!
//! Only the thread that made the [`Ranks`] calls it: the trait is not `Sync`, so no rayon task
//! can capture it (MPI runs at the "funneled" thread level).

use crate::error::{Error, Result};
use std::ops::Range;

/// The processes of a job, as seen from one of them.
pub trait Ranks {
    /// This process's rank, 0 … size − 1.
    fn rank(&self) -> usize;
    /// K, the number of processes.
    fn size(&self) -> usize;
    /// Every rank's `local` (of the same length on every rank), concatenated in rank order,
    /// into `all` (K times as long).
    fn all_gather(&self, local: &[f64], all: &mut [f64]);
    /// The same for f32.
    fn all_gather_f32(&self, local: &[f32], all: &mut [f32]);
    /// Ends every rank of the job with `code` (after this rank has said why on stderr).
    fn abort(&self, code: i32) -> !;

    /// Rank 0: the one that writes outputs and prints progress.
    fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    /// This rank's share of `units` work units: a contiguous range, the first `units % K`
    /// ranks taking one more (a rank may get none).
    fn share(&self, units: usize) -> Range<usize> {
        share_of(self.rank(), self.size(), units)
    }
}

/// Rank `rank`'s share of `units` among `size` ranks (see [`Ranks::share`]).
pub fn share_of(rank: usize, size: usize, units: usize) -> Range<usize> {
    let (base, extra) = (units / size, units % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// The most units any rank's share holds.
pub fn largest_share(size: usize, units: usize) -> usize {
    units.div_ceil(size.max(1))
}

/// A value that ranks exchange.
pub trait Element: Copy + Default {
    /// [`Ranks::all_gather`] for this type.
    fn all_gather(ranks: &dyn Ranks, local: &[Self], all: &mut [Self]);
}

impl Element for f64 {
    fn all_gather(ranks: &dyn Ranks, local: &[f64], all: &mut [f64]) {
        ranks.all_gather(local, all)
    }
}

impl Element for f32 {
    fn all_gather(ranks: &dyn Ranks, local: &[f32], all: &mut [f32]) {
        ranks.all_gather_f32(local, all)
    }
}

/// The results of `units` work units, `width` values each, gathered from every rank: each
/// rank fills its share ([`Gathered::mine`]) and every rank gets all of them in unit order
/// ([`Gathered::exchange`]). The buffers are made once and reused.
#[derive(Clone, Debug)]
pub struct Gathered<T> {
    width: usize,
    units: usize,
    local: Vec<T>,
    all: Vec<T>,
    ordered: Vec<T>,
}

impl<T: Element> Gathered<T> {
    /// Buffers for `units` units of `width` values among `ranks`.
    pub fn new(ranks: &dyn Ranks, units: usize, width: usize) -> Self {
        let block = largest_share(ranks.size(), units) * width;
        Gathered {
            width,
            units,
            local: vec![T::default(); block],
            all: vec![T::default(); block * ranks.size()],
            ordered: vec![T::default(); units * width],
        }
    }

    /// This rank's block: `width` values for each unit of [`Ranks::share`], in order (and
    /// padding after them where this rank's share is smaller than the largest).
    pub fn mine(&mut self) -> &mut [T] {
        &mut self.local
    }

    /// Exchanges the blocks and returns every unit's values in unit order (`units × width`).
    pub fn exchange(&mut self, ranks: &dyn Ranks) -> &[T] {
        let w = self.width;
        T::all_gather(ranks, &self.local, &mut self.all);
        let block = self.local.len();
        for r in 0..ranks.size() {
            let theirs = share_of(r, ranks.size(), self.units);
            let n = theirs.len() * w;
            self.ordered[theirs.start * w..theirs.start * w + n]
                .copy_from_slice(&self.all[r * block..r * block + n]);
        }
        &self.ordered
    }
}

/// A job of one process.
pub struct OneProcess;

impl Ranks for OneProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[f64], all: &mut [f64]) {
        all.copy_from_slice(local);
    }
    fn all_gather_f32(&self, local: &[f32], all: &mut [f32]) {
        all.copy_from_slice(local);
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The number of processes the launcher says this job has, from the variables that Open MPI
/// (`OMPI_COMM_WORLD_SIZE`), MPICH and Slurm's PMI (`PMI_SIZE`) set; 1 when there are none.
pub fn launched_size() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// How many ranks of this job run on this machine, from Open MPI's
/// `OMPI_COMM_WORLD_LOCAL_SIZE` or MPICH's `MPI_LOCALNRANKS` (1 when neither is set).
pub fn ranks_on_this_machine() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// The ranks of this process's job: MPI's when a launcher started K > 1 copies of it (and l2l
/// was built with the `mpi` feature), else one process. A build without the feature refuses
/// to run as K copies, which would each do the whole job and write the same outputs.
pub fn join() -> Result<Box<dyn Ranks>> {
    let size = launched_size();
    if size <= 1 {
        return Ok(Box::new(OneProcess));
    }
    #[cfg(feature = "mpi")]
    {
        mpi_ranks::MpiRanks::initialize().map(|r| Box::new(r) as Box<dyn Ranks>)
    }
    #[cfg(not(feature = "mpi"))]
    {
        Err(Error::Config(format!(
            "started as {size} processes by mpirun or srun, but this build has no MPI; build \
             it with `make mpi` (cargo build --release --features mpi) and run those binaries"
        )))
    }
}

#[cfg(feature = "mpi")]
mod mpi_ranks {
    use super::{Error, Ranks, Result};
    use mpi::environment::Universe;
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::CommunicatorCollectives;
    use mpi::Threading;

    /// The ranks of MPI's world communicator. Dropping it finalises MPI.
    pub struct MpiRanks {
        world: SimpleCommunicator,
        // Finalises MPI when dropped, after `world`.
        _universe: Universe,
    }

    impl MpiRanks {
        pub fn initialize() -> Result<Self> {
            // Only the main thread calls MPI; rayon's workers never do.
            let (universe, level) = mpi::initialize_with_threading(Threading::Funneled)
                .ok_or_else(|| Error::Other("MPI was already initialised".into()))?;
            if level < Threading::Funneled {
                return Err(Error::Other(format!(
                    "this MPI offers thread level {level:?}; l2l needs Funneled, as the main \
                     thread calls MPI while rayon's threads compute"
                )));
            }
            Ok(MpiRanks {
                world: universe.world(),
                _universe: universe,
            })
        }
    }

    impl Ranks for MpiRanks {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn all_gather(&self, local: &[f64], all: &mut [f64]) {
            self.world.all_gather_into(local, all);
        }
        fn all_gather_f32(&self, local: &[f32], all: &mut [f32]) {
            self.world.all_gather_into(local, all);
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_unit_once_in_order() {
        for size in 1..=9 {
            for units in 0..=20 {
                let mut next = 0;
                for r in 0..size {
                    let s = share_of(r, size, units);
                    assert_eq!(s.start, next);
                    assert!(s.len() <= largest_share(size, units));
                    next = s.end;
                }
                assert_eq!(next, units);
            }
        }
    }

    /// K simulated ranks: rank r's all_gather sees every rank's block, as MPI's would.
    #[test]
    fn gathered_puts_units_in_unit_order_whoever_computes_them() {
        struct Simulated {
            rank: usize,
            size: usize,
            blocks: std::cell::RefCell<Vec<Vec<f64>>>,
        }
        impl Ranks for Simulated {
            fn rank(&self) -> usize {
                self.rank
            }
            fn size(&self) -> usize {
                self.size
            }
            fn all_gather(&self, _local: &[f64], all: &mut [f64]) {
                all.copy_from_slice(&self.blocks.borrow().concat());
            }
            fn all_gather_f32(&self, _: &[f32], _: &mut [f32]) {
                unreachable!()
            }
            fn abort(&self, _: i32) -> ! {
                unreachable!()
            }
        }
        let (units, width) = (7, 2);
        let value = |u: usize, out: &mut [f64]| {
            out[0] = u as f64;
            out[1] = -(u as f64);
        };
        for size in 1..=9 {
            // Each rank's block, as that rank would send it.
            let blocks: Vec<Vec<f64>> = (0..size)
                .map(|rank| {
                    let r = Simulated {
                        rank,
                        size,
                        blocks: Default::default(),
                    };
                    let mut g = Gathered::<f64>::new(&r, units, width);
                    for (k, u) in r.share(units).enumerate() {
                        value(u, &mut g.mine()[k * width..(k + 1) * width]);
                    }
                    g.mine().to_vec()
                })
                .collect();
            let r = Simulated {
                rank: size - 1,
                size,
                blocks: std::cell::RefCell::new(blocks),
            };
            let mut g = Gathered::<f64>::new(&r, units, width);
            for (k, u) in r.share(units).enumerate() {
                value(u, &mut g.mine()[k * width..(k + 1) * width]);
            }
            let all = g.exchange(&r).to_vec();
            let want: Vec<f64> = (0..units).flat_map(|u| [u as f64, -(u as f64)]).collect();
            assert_eq!(all, want, "K = {size}");
        }
    }
}

//! Optimizee problems ("optimizees"): classes of functions a learned optimizer is trained on and
//! tested against. A set holds many problems of one dimension; every coordinate of every problem
//! becomes one row of the coordinatewise LSTM.

pub mod conv;
pub mod external;
pub mod mlp;
pub mod neural_art;
pub mod quadratic;
pub mod recorded;
pub mod sampling;
pub mod separable;
pub mod spec;

pub use quadratic::{QuadraticFamily, QuadraticSet, QuadraticSource, ValueDistribution};
pub use spec::{load_companion, FromSpec, SetVisitor, SourceVisitor, Spec, SpecSampler};

/// A set of problems of equal dimension, evaluated one problem at a time. Loss and gradient
/// are required; Hessian-vector products ([`ProblemSet::hessian`]) and parameter groups
/// ([`ProblemSet::groups`]) are capabilities a problem may add.
pub trait ProblemSet: Sync {
    /// Per-thread working memory for [`ProblemSet::loss_and_gradient`].
    type Scratch: Send;

    fn count(&self) -> usize;
    /// Coordinates per problem.
    fn dim(&self) -> usize;
    fn scratch(&self) -> Self::Scratch;
    /// Writes θ0 of `problem`.
    fn initial_point(&self, problem: usize, theta: &mut [f32]);
    /// f(θ) of `problem` at optimisation step `step` (stochastic problems pick their minibatch
    /// from it), with ∇f written to `grad`.
    fn loss_and_gradient(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        grad: &mut [f32],
        scratch: &mut Self::Scratch,
    ) -> f64;

    /// Hessian-vector products, where the problem has them (the second-order meta-gradient
    /// needs them).
    fn hessian(&self) -> Option<&dyn HessianVector<Self::Scratch>> {
        None
    }

    /// The images its runs draw minibatches from, for problems on a dataset (a test spec's
    /// must not overlap the ones a learned optimizer was meta-trained on).
    fn data_split(&self) -> Option<crate::datasets::DataSplit> {
        None
    }

    /// The problem's parameter groups, each served by its own network of a learned optimizer
    /// that has one per group (§3.3: conv and fully connected). By default every parameter is
    /// in one group, [`crate::problems::ALL_PARAMETERS`].
    fn groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup::all(self.dim())]
    }

    /// The loss at θ on data held out from training, where the problem has such data (§3.3:
    /// Figure 7's left panel reports the loss on CIFAR-10's test images). Forward passes only;
    /// may overwrite `scratch`.
    fn held_out_loss(&self, _theta: &[f32], _scratch: &mut Self::Scratch) -> Option<f64> {
        None
    }

    /// A picture of θ, where θ is an image (§3.4, Figure 9: content | θ | style).
    fn render(&self, _problem: usize, _theta: &[f32]) -> Option<Picture> {
        None
    }

    /// The first failure of a problem computed elsewhere (an external optimizee's process
    /// that died, hung or answered wrongly), whose losses and gradients were NaN from then
    /// on. Runs check it before they report or write anything.
    fn fault(&self) -> crate::Result<()> {
        Ok(())
    }
}

/// An 8-bit RGB picture, row-major height × width × RGB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// The Hessian of f times a vector: the second-derivative term the paper's BPTT drops
/// (docs/method.md, "Second order") and `--meta-gradient second-order` keeps.
pub trait HessianVector<Scratch> {
    /// H(θ) v for the same minibatch as `loss_and_gradient` at `step`, written to `hv` (may
    /// overwrite `scratch`).
    fn hessian_vector(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        v: &[f32],
        hv: &mut [f32],
        scratch: &mut Scratch,
    );
}

/// The name of the one group of a problem that does not name its groups.
pub const ALL_PARAMETERS: &str = "all";

/// A named set of a problem's coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamGroup {
    pub name: String,
    /// Disjoint ranges of coordinates within one problem.
    pub ranges: Vec<std::ops::Range<usize>>,
}

impl ParamGroup {
    /// Every coordinate of a problem of `dim`.
    pub fn all(dim: usize) -> Self {
        ParamGroup {
            name: ALL_PARAMETERS.into(),
            ranges: vec![0..dim],
        }
    }
}

/// Where each epoch's training problems come from (meta-training draws a fresh batch every
/// epoch).
pub trait TrainingSource: Sync {
    type Set: ProblemSet;
    /// The `batch` problems of epoch `epoch`; a pure function of its arguments.
    fn draw(&self, epoch: u64, batch: usize) -> Self::Set;
    /// Identifies the source, for resume checks.
    fn describe(&self) -> String;
    /// The images its problems draw minibatches from, for problems on a dataset.
    fn data_split(&self) -> Option<crate::datasets::DataSplit> {
        None
    }
    /// Checks, before any work, that batches of `batch` problems fit in memory.
    fn check_batch(&self, _batch: usize) -> crate::Result<()> {
        Ok(())
    }
}

/// Splits `count` problems of `dim` coordinates into contiguous shards of about `target_rows`
/// rows, a multiple of four shards where possible so that two or four threads share them
/// evenly. The split depends only on the sizes, never on the thread count, which keeps results
/// identical for any number of threads.
pub fn shard_ranges(count: usize, dim: usize, target_rows: usize) -> Vec<std::ops::Range<usize>> {
    if count == 0 {
        return Vec::new();
    }
    let wanted = (count * dim).div_ceil(target_rows.max(1)).max(1);
    let shards = wanted.div_ceil(4).saturating_mul(4).min(count);
    let base = count / shards;
    let extra = count % shards;
    let mut start = 0;
    (0..shards)
        .map(|s| {
            let len = base + usize::from(s < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_problem_once() {
        for (count, dim) in [(1, 10), (7, 10), (128, 10), (100, 10), (3, 15910)] {
            let shards = shard_ranges(count, dim, 256);
            assert_eq!(shards.first().unwrap().start, 0);
            assert_eq!(shards.last().unwrap().end, count);
            for w in shards.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            assert!(shards.iter().all(|r| !r.is_empty()));
        }
        assert_eq!(shard_ranges(128, 10, 256).len(), 8);
    }
}

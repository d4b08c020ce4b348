//! Optimizee problems ("optimizees"): classes of functions a learned optimizer is trained on and
//! tested against. A set holds many problems of one dimension; every coordinate of every problem
//! becomes one row of the coordinatewise LSTM.

pub mod mlp;
pub mod quadratic;
pub mod separable;

pub use quadratic::{QuadraticFamily, QuadraticSet, QuadraticSource, ValueDistribution};

/// A set of problems of equal dimension, evaluated one problem at a time.
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

    /// The Hessian of f at θ, for the same minibatch as [`ProblemSet::loss_and_gradient`] at
    /// `step`, times `v`, written to `hv` (may overwrite `scratch`). This is the
    /// second-derivative term the paper's BPTT drops (METHOD.md) and
    /// `--meta-gradient second-order` keeps.
    fn hessian_vector(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        v: &[f32],
        hv: &mut [f32],
        scratch: &mut Self::Scratch,
    );
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

/// A spec file of any problem kind, recognised by the names of its arrays.
pub enum Spec {
    Quadratic(QuadraticSet),
    Mlp(mlp::MlpSet),
}

impl Spec {
    /// Reads a spec; an MLP spec loads its dataset from the recorded path, or `data` if given.
    pub fn load(path: &std::path::Path, data: Option<&std::path::Path>) -> crate::Result<Spec> {
        let mut npz = crate::io::Npz::open(path)?;
        if npz.has("hidden_sizes") {
            return Ok(Spec::Mlp(mlp::MlpSet::load(&mut npz, data)?));
        }
        if npz.has("W") || npz.has("y") || npz.has("theta0") {
            return Ok(Spec::Quadratic(QuadraticSet::load(&mut npz)?));
        }
        Err(crate::Error::bad_file(
            path,
            format!(
                "is not a problem spec: a quadratic spec holds W, y and theta0, an MLP spec hidden_sizes and theta0, but this file holds {}",
                if npz.names().is_empty() { "no arrays".to_string() } else { npz.names().join(", ") }
            ),
        ))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Quadratic(_) => "quadratic",
            Spec::Mlp(_) => "mlp",
        }
    }
}

/// Takes the problem set of one kind out of a [`Spec`], for code generic over the kind.
pub trait FromSpec: ProblemSet + Sized {
    fn from_spec(spec: Spec) -> Option<Self>;
}

impl FromSpec for QuadraticSet {
    fn from_spec(spec: Spec) -> Option<Self> {
        match spec {
            Spec::Quadratic(s) => Some(s),
            _ => None,
        }
    }
}

impl FromSpec for mlp::MlpSet {
    fn from_spec(spec: Spec) -> Option<Self> {
        match spec {
            Spec::Mlp(s) => Some(s),
            _ => None,
        }
    }
}

/// Loads a second spec that must be of the same kind and dimension as `like` (a validation
/// spec beside a training or test spec).
pub fn load_companion<P: FromSpec>(
    path: &std::path::Path,
    data: Option<&std::path::Path>,
    like: &P,
) -> crate::Result<P> {
    let spec = Spec::load(path, data)?;
    let kind = spec.kind();
    let set = P::from_spec(spec).ok_or_else(|| {
        crate::Error::bad_file(
            path,
            format!("is a {kind} spec, which does not match the other spec's kind"),
        )
    })?;
    if set.dim() != like.dim() {
        return Err(crate::Error::bad_file(
            path,
            format!("its problems have {} parameters, the other spec's {}; they must be the same problem class", set.dim(), like.dim()),
        ));
    }
    Ok(set)
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

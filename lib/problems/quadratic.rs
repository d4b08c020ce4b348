//! Random quadratics f(θ) = ‖Wθ − y‖² (§3.1).

use super::recorded::{write_header, MAX_ENTRIES};
use super::sampling::{Draw, SampleSpec};
use super::{HessianVector, ProblemSet};
use crate::error::{Error, Result};
use crate::io::{write_npz, Npz};
use crate::rng::{streams, Rng};
use ndarray::{Array2, Array3, Ix2, Ix3};
use std::path::Path;

/// The largest dimension of a quadratic (`dims`).
pub const MAX_DIMS: usize = 10_000;
/// The largest standard deviation of θ0: with W's entries of order 1 the initial loss is of
/// order dims²·σ², which at 10,000 dimensions and σ = 10⁶ is 10²⁰, far inside f32, while
/// σ = 10³⁰ overflows it.
pub const MAX_THETA0_STD: f32 = 1e6;

/// The distribution of the entries of W and y.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueDistribution {
    /// iid N(0, 1), as the paper states.
    Normal,
    /// iid U[0, 1), as the original TensorFlow code drew them.
    Uniform,
}

impl ValueDistribution {
    fn code(self) -> i64 {
        match self {
            ValueDistribution::Normal => 0,
            ValueDistribution::Uniform => 1,
        }
    }
    fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(ValueDistribution::Normal),
            1 => Some(ValueDistribution::Uniform),
            _ => None,
        }
    }
    fn draw(self, rng: &mut Rng) -> f32 {
        match self {
            ValueDistribution::Normal => rng.normal() as f32,
            ValueDistribution::Uniform => rng.uniform() as f32,
        }
    }
}

/// Random quadratics f(θ) = ‖Wθ − y‖² (§3.1). Writes W [n,d,d], y [n,d] and theta0 [n,d] as
/// float32, plus the family and seed so that meta-train can draw fresh problems like them.
#[derive(clap::Args)]
pub struct QuadraticSampling {
    /// Dimension d of θ.
    #[arg(long, default_value_t = 10)]
    pub dims: usize,
    /// Distribution of the entries of W and y: normal = N(0,1) (the paper), uniform = U[0,1)
    /// (the original TensorFlow code).
    #[arg(long, value_enum, default_value_t = ValueDistribution::Normal)]
    pub dist: ValueDistribution,
    /// Standard deviation σ of the iid Gaussian θ0 ~ N(0, σ²).
    #[arg(long = "theta0-std", default_value_t = 1.0)]
    pub theta0_std: f32,
    #[command(flatten)]
    pub draw: Draw,
}

impl SampleSpec for QuadraticSampling {
    type Set = QuadraticSet;

    fn draw(&self) -> &Draw {
        &self.draw
    }

    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        Vec::new()
    }

    fn sample(self) -> Result<(QuadraticSet, String)> {
        let Draw { count, seed, .. } = self.draw;
        self.draw.check()?;
        let family = QuadraticFamily {
            dims: self.dims,
            distribution: self.dist,
            theta0_std: self.theta0_std,
        };
        family.validate()?;
        family.check_count(count)?;
        let set = family.sample(seed, count, streams::spec_problem);
        Ok((
            set,
            format!("{count} quadratics of dimension {}", self.dims),
        ))
    }
}

/// The family a quadratic is drawn from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuadraticFamily {
    pub dims: usize,
    pub distribution: ValueDistribution,
    /// Standard deviation of the iid Gaussian θ0.
    pub theta0_std: f32,
}

impl QuadraticFamily {
    pub fn validate(&self) -> Result<()> {
        if self.dims == 0 || self.dims > MAX_DIMS {
            return Err(Error::setting(
                "dims",
                format!("between 1 and {MAX_DIMS}"),
                self.dims,
            ));
        }
        if !(self.theta0_std >= 0.0 && self.theta0_std <= MAX_THETA0_STD) {
            return Err(Error::Config(format!(
                "θ0 standard deviation must be between 0 and {MAX_THETA0_STD:e} (larger ones \
                 overflow f32 losses), got {}",
                self.theta0_std
            )));
        }
        Ok(())
    }

    /// Checks that `count` problems of this family fit in [`MAX_ENTRIES`] entries of W.
    pub fn check_count(&self, count: usize) -> Result<()> {
        let entries = count.saturating_mul(self.dims.saturating_mul(self.dims));
        if count == 0 || entries > MAX_ENTRIES {
            return Err(Error::Config(format!(
                "{count} quadratics of dimension {} need {entries} entries of W; the most is {MAX_ENTRIES} (count at least 1)",
                self.dims
            )));
        }
        Ok(())
    }

    /// Draws `count` problems; problem i uses stream `stream(i)` of `seed`, so any subset can be
    /// redrawn alone.
    pub fn sample(&self, seed: u64, count: usize, stream: impl Fn(u64) -> u64) -> QuadraticSet {
        let d = self.dims;
        let mut set = QuadraticSet {
            w: Array3::zeros((count, d, d)),
            y: Array2::zeros((count, d)),
            theta0: Array2::zeros((count, d)),
            family: Some((*self, seed)),
        };
        for i in 0..count {
            self.sample_into(&mut Rng::new(seed, stream(i as u64)), &mut set, i);
        }
        set
    }

    /// Redraws problem `i` of `set` in place (no allocation), from `rng`.
    pub fn sample_into(&self, rng: &mut Rng, set: &mut QuadraticSet, i: usize) {
        for x in set.w.index_axis_mut(ndarray::Axis(0), i).iter_mut() {
            *x = self.distribution.draw(rng);
        }
        for x in set.y.row_mut(i).iter_mut() {
            *x = self.distribution.draw(rng);
        }
        for x in set.theta0.row_mut(i).iter_mut() {
            *x = (rng.normal() * self.theta0_std as f64) as f32;
        }
    }
}

/// A spec of quadratic problems: `W` (n, d, d), `y` (n, d), `theta0` (n, d), float32.
#[derive(Clone, Debug, PartialEq)]
pub struct QuadraticSet {
    pub w: Array3<f32>,
    pub y: Array2<f32>,
    pub theta0: Array2<f32>,
    /// The family and seed it was drawn from, when known (optional in the file).
    pub family: Option<(QuadraticFamily, u64)>,
}

impl QuadraticSet {
    /// Checks shapes, consistency and finiteness; `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |d: String| Err(Error::bad_file(path, d));
        let (n, d, d2) = self.w.dim();
        if d != d2 {
            return bad(format!(
                "W must be [n,d,d] with square matrices, found {:?}",
                self.w.shape()
            ));
        }
        if n == 0 || d == 0 {
            return bad(format!("spec is empty (W has shape {:?})", self.w.shape()));
        }
        for (name, a) in [("y", &self.y), ("theta0", &self.theta0)] {
            if a.dim() != (n, d) {
                return bad(format!(
                    "'{name}' has shape {:?} but W has shape {:?}; expected [{n}, {d}]",
                    a.shape(),
                    self.w.shape()
                ));
            }
        }
        for (name, ok) in [
            ("W", self.w.iter().all(|x| x.is_finite())),
            ("y", self.y.iter().all(|x| x.is_finite())),
            ("theta0", self.theta0.iter().all(|x| x.is_finite())),
        ] {
            if !ok {
                return bad(format!("'{name}' contains NaN or Inf"));
            }
        }
        Ok(())
    }

    pub fn load(npz: &mut Npz) -> Result<Self> {
        let w = npz.array_nd::<f32, Ix3>("W")?;
        let y = npz.array_nd::<f32, Ix2>("y")?;
        let theta0 = npz.array_nd::<f32, Ix2>("theta0")?;
        let family =
            if npz.has("family_distribution") && npz.has("family_theta0_std") && npz.has("seed") {
                let code = npz.scalar("family_distribution")? as i64;
                let distribution = ValueDistribution::from_code(code).ok_or_else(|| {
                    Error::bad_file(
                        npz.path(),
                        format!("unknown family_distribution code {code}"),
                    )
                })?;
                let family = QuadraticFamily {
                    dims: w.shape()[1],
                    distribution,
                    theta0_std: npz.scalar("family_theta0_std")? as f32,
                };
                family.validate().map_err(|e| {
                    Error::bad_file(npz.path(), format!("its family record is invalid: {e}"))
                })?;
                Some((family, npz.scalar("seed")? as u64))
            } else {
                None
            };
        let set = QuadraticSet {
            w,
            y,
            theta0,
            family,
        };
        set.validate(npz.path())?;
        Ok(set)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_npz(path, |a| {
            a.add("W", self.w.clone());
            a.add("y", self.y.clone());
            a.add("theta0", self.theta0.clone());
            if let Some((family, seed)) = self.family {
                a.scalar_i64("family_distribution", family.distribution.code());
                a.scalar_f64("family_theta0_std", family.theta0_std as f64);
                a.scalar_i64("seed", seed as i64);
            }
            write_header(a, "quadratic", None);
            Ok(())
        })
    }
}

impl ProblemSet for QuadraticSet {
    /// The residual Wθ − y.
    type Scratch = Vec<f32>;

    fn count(&self) -> usize {
        self.w.shape()[0]
    }
    fn dim(&self) -> usize {
        self.w.shape()[1]
    }
    fn scratch(&self) -> Vec<f32> {
        vec![0.0; self.dim()]
    }
    fn initial_point(&self, problem: usize, theta: &mut [f32]) {
        theta.copy_from_slice(
            self.theta0
                .row(problem)
                .as_slice()
                .expect("standard layout"),
        );
    }
    fn loss_and_gradient(
        &self,
        problem: usize,
        _step: usize,
        theta: &[f32],
        grad: &mut [f32],
        residual: &mut Vec<f32>,
    ) -> f64 {
        let d = self.dim();
        let w = self.w.index_axis(ndarray::Axis(0), problem);
        let w = w.as_slice().expect("standard layout");
        let y = self.y.row(problem);
        let mut loss = 0.0f64;
        for ((r, row), yi) in residual.iter_mut().zip(w.chunks_exact(d)).zip(y.iter()) {
            *r = row.iter().zip(theta).map(|(a, b)| a * b).sum::<f32>() - yi;
            loss += (*r as f64) * (*r as f64);
        }
        // ∇f = 2 Wᵀ (Wθ − y).
        grad.fill(0.0);
        for (row, r) in w.chunks_exact(d).zip(residual.iter()) {
            for (g, a) in grad.iter_mut().zip(row) {
                *g += 2.0 * a * r;
            }
        }
        loss
    }
    fn hessian(&self) -> Option<&dyn HessianVector<Vec<f32>>> {
        Some(self)
    }
}

impl HessianVector<Vec<f32>> for QuadraticSet {
    fn hessian_vector(
        &self,
        problem: usize,
        _step: usize,
        _theta: &[f32],
        v: &[f32],
        hv: &mut [f32],
        wv: &mut Vec<f32>,
    ) {
        // H v = 2 Wᵀ (W v).
        let d = self.dim();
        let w = self.w.index_axis(ndarray::Axis(0), problem);
        let w = w.as_slice().expect("standard layout");
        for (r, row) in wv.iter_mut().zip(w.chunks_exact(d)) {
            *r = row.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        }
        hv.fill(0.0);
        for (row, r) in w.chunks_exact(d).zip(wv.iter()) {
            for (h, a) in hv.iter_mut().zip(row) {
                *h += 2.0 * a * r;
            }
        }
    }
}

/// Training problems for meta-training: fresh draws from a family every epoch, or, for a spec
/// without family metadata (one written by numpy), minibatches from its problems.
pub enum QuadraticSource {
    Family { family: QuadraticFamily, seed: u64 },
    Pool { set: QuadraticSet, seed: u64 },
}

impl QuadraticSource {
    /// The source a training spec describes; `seed` picks the pool's minibatches.
    pub fn from_spec(set: QuadraticSet, seed: u64) -> Self {
        match set.family {
            Some((family, spec_seed)) => QuadraticSource::Family {
                family,
                seed: spec_seed,
            },
            None => QuadraticSource::Pool { set, seed },
        }
    }
}

impl super::TrainingSource for QuadraticSource {
    type Set = QuadraticSet;

    fn draw(&self, epoch: u64, batch: usize) -> QuadraticSet {
        match self {
            QuadraticSource::Family { family, seed } => family.sample(*seed, batch, |i| {
                crate::rng::streams::train_problem(epoch, i)
            }),
            QuadraticSource::Pool { set, seed } => {
                let mut rng = Rng::new(*seed, crate::rng::streams::train_problem(epoch, 0));
                let picks: Vec<usize> = (0..batch)
                    .map(|_| rng.below(set.count() as u64) as usize)
                    .collect();
                QuadraticSet {
                    w: set.w.select(ndarray::Axis(0), &picks),
                    y: set.y.select(ndarray::Axis(0), &picks),
                    theta0: set.theta0.select(ndarray::Axis(0), &picks),
                    family: None,
                }
            }
        }
    }

    fn check_batch(&self, batch: usize) -> Result<()> {
        match self {
            QuadraticSource::Family { family, .. } => family.check_count(batch),
            QuadraticSource::Pool { .. } => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self {
            QuadraticSource::Family { family, seed } => format!(
                "quadratic(dims={}, {:?}, theta0_std={}, seed={seed})",
                family.dims, family.distribution, family.theta0_std
            ),
            QuadraticSource::Pool { set, seed } => format!(
                "quadratic-pool(n={}, dims={}, checksum={:016x}, seed={seed})",
                set.count(),
                set.dim(),
                set.w
                    .iter()
                    .chain(set.y.iter())
                    .chain(set.theta0.iter())
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
                        (h ^ x.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
                    })
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family() -> QuadraticFamily {
        QuadraticFamily {
            dims: 4,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let set = family().sample(5, 2, |i| i);
        let mut scratch = set.scratch();
        let mut theta = vec![0.0f32; 4];
        set.initial_point(1, &mut theta);
        let mut grad = vec![0.0f32; 4];
        set.loss_and_gradient(1, 0, &theta, &mut grad, &mut scratch);
        let mut g2 = vec![0.0f32; 4];
        for k in 0..4 {
            let eps = 1e-2f32;
            let mut tp = theta.clone();
            tp[k] += eps;
            let fp = set.loss_and_gradient(1, 0, &tp, &mut g2, &mut scratch);
            tp[k] -= 2.0 * eps;
            let fm = set.loss_and_gradient(1, 0, &tp, &mut g2, &mut scratch);
            let fd = (fp - fm) / (2.0 * eps as f64);
            assert!(
                (fd - grad[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{fd} vs {}",
                grad[k]
            );
        }
    }

    #[test]
    fn sampling_is_deterministic_and_uniform_option_is_nonnegative() {
        assert_eq!(family().sample(9, 3, |i| i), family().sample(9, 3, |i| i));
        assert_ne!(family().sample(9, 3, |i| i), family().sample(10, 3, |i| i));
        let u = QuadraticFamily {
            distribution: ValueDistribution::Uniform,
            ..family()
        };
        let set = u.sample(1, 5, |i| i);
        assert!(set
            .w
            .iter()
            .chain(set.y.iter())
            .all(|&x| (0.0..1.0).contains(&x)));
    }
}

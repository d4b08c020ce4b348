//! Running optimizers on a problem set and recording their learning curves, and tuning the
//! baselines' learning rates on a validation set (§3).

use crate::error::{Error, Result};
use crate::optimizers::{Baseline, OptimizerChoice};
use crate::problems::{shard_ranges, ProblemSet};
use ndarray::Array2;
use rayon::prelude::*;

/// Rows per shard of parallel work.
pub const SHARD_ROWS: usize = 256;

/// Losses of one optimizer on every problem: `losses[[problem, step]]`, step 0 at θ0.
#[derive(Clone, Debug)]
pub struct Curves {
    pub label: String,
    pub lr: Option<f64>,
    pub losses: Array2<f64>,
}

impl Curves {
    /// Mean loss over problems at `step`; a diverged problem (NaN or Inf) makes it infinite.
    pub fn mean_at(&self, step: usize) -> f64 {
        let col = self.losses.column(step);
        if col.iter().any(|x| !x.is_finite()) {
            return f64::INFINITY;
        }
        col.mean().unwrap_or(f64::INFINITY)
    }
    pub fn final_mean(&self) -> f64 {
        self.mean_at(self.losses.ncols() - 1)
    }
}

pub fn validate_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::Config("--steps must be at least 1".into()));
    }
    Ok(())
}

/// Runs `choice` for `steps` steps on every problem of `set`, in parallel over shards of
/// problems. A problem whose loss turns NaN or Inf keeps recording it; the others go on,
/// since every update rule here is coordinatewise.
pub fn run<P: ProblemSet>(set: &P, choice: &OptimizerChoice, steps: usize) -> Curves {
    let dim = set.dim();
    let shards = shard_ranges(set.count(), dim, SHARD_ROWS);
    let parts: Vec<Array2<f64>> = shards
        .par_iter()
        .map(|range| {
            let rows = range.len() * dim;
            let mut rule = choice.rule(rows);
            let mut theta = vec![0.0f32; rows];
            let mut grad = vec![0.0f32; rows];
            let mut scratch = set.scratch();
            let mut losses = Array2::<f64>::zeros((range.len(), steps + 1));
            for (k, p) in range.clone().enumerate() {
                set.initial_point(p, &mut theta[k * dim..(k + 1) * dim]);
            }
            for step in 0..=steps {
                for (k, p) in range.clone().enumerate() {
                    let span = k * dim..(k + 1) * dim;
                    losses[[k, step]] = set.loss_and_gradient(
                        p,
                        step,
                        &theta[span.clone()],
                        &mut grad[span],
                        &mut scratch,
                    );
                }
                if step < steps {
                    rule.step(&mut theta, &grad);
                }
            }
            losses
        })
        .collect();
    let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
    let losses = ndarray::concatenate(ndarray::Axis(0), &views).expect("shards share a width");
    Curves {
        label: choice.label(),
        lr: choice.lr(),
        losses,
    }
}

/// The learning-rate grid of `--tune`: 10^(k/4) for k = −16 … 4, i.e. 1e-4 to 10 in quarter
/// decades (finer than the half decades the paper's comparison needs, so baselines are not
/// handicapped by a coarse grid).
pub fn lr_grid() -> Vec<f64> {
    (-16..=4).map(|k| 10f64.powf(k as f64 / 4.0)).collect()
}

/// One grid point of a tuning run.
#[derive(Clone, Debug)]
pub struct TuningPoint {
    pub optimizer: Baseline,
    pub lr: f64,
    pub validation_final_loss: f64,
    pub chosen: bool,
}

/// Picks each baseline's learning rate from [`lr_grid`] by the best mean final loss on the
/// validation set. Every (baseline, rate) pair runs in parallel.
pub fn tune<P: ProblemSet>(
    validation: &P,
    baselines: &[Baseline],
    steps: usize,
) -> Vec<TuningPoint> {
    let grid = lr_grid();
    let pairs: Vec<(Baseline, f64)> = baselines
        .iter()
        .flat_map(|&b| grid.iter().map(move |&lr| (b, lr)))
        .collect();
    let finals: Vec<f64> = pairs
        .par_iter()
        .map(|&(kind, lr)| {
            run(validation, &OptimizerChoice::Baseline { kind, lr }, steps).final_mean()
        })
        .collect();
    let mut points: Vec<TuningPoint> = pairs
        .iter()
        .zip(&finals)
        .map(|(&(optimizer, lr), &f)| TuningPoint {
            optimizer,
            lr,
            validation_final_loss: f,
            chosen: false,
        })
        .collect();
    for &b in baselines {
        let best = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.optimizer == b)
            .min_by(|a, c| {
                a.1.validation_final_loss
                    .total_cmp(&c.1.validation_final_loss)
            })
            .map(|(i, _)| i);
        if let Some(i) = best {
            points[i].chosen = true;
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::{QuadraticFamily, ValueDistribution};

    #[test]
    fn grid_spans_the_documented_range() {
        let g = lr_grid();
        assert_eq!(g.len(), 21);
        assert!((g[0] - 1e-4).abs() < 1e-12 && (g[20] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn curves_are_independent_of_sharding_and_threads() {
        let fam = QuadraticFamily {
            dims: 3,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        };
        let set = fam.sample(4, 37, |i| i);
        let choice = OptimizerChoice::Baseline {
            kind: Baseline::Adam,
            lr: 0.1,
        };
        let a = run(&set, &choice, 5);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one.install(|| run(&set, &choice, 5));
        assert_eq!(a.losses, b.losses);
        // Problem 5 alone gives the same curve as inside the set.
        let single = fam.sample(4, 6, |i| i);
        let c = run(&single, &choice, 5);
        assert_eq!(a.losses.row(5), c.losses.row(5));
    }

    #[test]
    fn a_diverging_problem_does_not_stop_the_others() {
        let fam = QuadraticFamily {
            dims: 3,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        };
        let mut set = fam.sample(4, 3, |i| i);
        set.w
            .index_axis_mut(ndarray::Axis(0), 1)
            .mapv_inplace(|x| x * 1e18);
        let curves = run(
            &set,
            &OptimizerChoice::Baseline {
                kind: Baseline::Sgd,
                lr: 1.0,
            },
            4,
        );
        assert!(!curves.losses[[1, 4]].is_finite());
        assert!(curves.losses[[0, 4]].is_finite() || curves.losses[[0, 0]].is_finite());
        assert_eq!(curves.final_mean(), f64::INFINITY);
    }
}

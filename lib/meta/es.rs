//! Evolution strategies as the meta-gradient (beyond the paper; Salimans et al. 2017, used for
//! learned optimizers by Metz et al., ICML 2019; docs/method.md, "Beyond the paper").

use super::config::EsScope;
use super::objective::trajectory_meta_loss;
use super::trainer::{EpochReport, MetaTrainer};
use crate::error::Result;
use crate::evaluation::Curves;
use crate::problems::ProblemSet;
use crate::ranks::{Gathered, Ranks};
use crate::rng::{streams, Rng};
use rayon::prelude::*;
use std::ops::Range;

impl MetaTrainer {
    /// One epoch of [`super::config::MetaGradient::Es`]: the estimate from
    /// [`MetaTrainer::es_estimate`], then one Adam step on φ (none if a perturbed run
    /// diverged).
    pub(crate) fn es_epoch<P: ProblemSet>(
        &mut self,
        batch: &P,
        pairs: usize,
        sigma: f32,
        scope: EsScope,
        ranks: &dyn Ranks,
    ) -> EpochReport {
        let (grad, report) = self
            .es_estimate(batch, pairs, sigma, scope, ranks)
            .expect("the workspace checked that the networks serve these problems");
        match grad {
            Some(g) => self.adam_step(&g),
            None => self.skipped_unrolls += report.skipped_unrolls,
        }
        self.epoch += 1;
        report
    }

    /// The weights of φ that `scope` perturbs, in order.
    fn es_span(&self, scope: EsScope) -> Vec<Range<usize>> {
        match scope {
            EsScope::Output => self.networks.output_layers(),
            EsScope::All => vec![0..self.weights.len()],
        }
    }

    /// The evolution-strategies estimate of dL/dφ on `batch`: (1/2σK) Σ_k [L(φ + σε_k) −
    /// L(φ − σε_k)] ε_k with ε_k ~ N(0, I) on the weights of `scope`, both signs of a pair run
    /// on the same problems and minibatches. Every perturbed optimizer runs the whole
    /// trajectory on every problem, the runs in parallel. `None` if a run diverged. Under
    /// K > 1 `ranks` each rank makes every perturbation from the shared seeds, runs its share
    /// of the runs, and the ranks exchange each run's three numbers, so every rank forms the
    /// same estimate.
    pub(crate) fn es_estimate<P: ProblemSet>(
        &self,
        batch: &P,
        pairs: usize,
        sigma: f32,
        scope: EsScope,
        ranks: &dyn Ranks,
    ) -> Result<(Option<Vec<f32>>, EpochReport)> {
        let span = self.es_span(scope);
        let len: usize = span.iter().map(|r| r.len()).sum();
        let noise: Vec<Vec<f32>> = (0..pairs)
            .map(|k| {
                let mut rng = Rng::new(
                    self.config.seed,
                    streams::es_perturbation(self.epoch, k as u64),
                );
                (0..len).map(|_| rng.normal() as f32).collect()
            })
            .collect();
        let perturbed = |weights: &mut [f32], eps: &[f32], sign: f32| {
            let at = span.iter().flat_map(|r| r.clone());
            for (i, e) in at.zip(eps) {
                weights[i] += sign * e;
            }
        };
        // Each run's meta-loss, mean final loss and mean loss over steps 1 … T.
        const RUN_SUMS: usize = 3;
        let mine: Vec<[f64; RUN_SUMS]> = ranks
            .share(2 * pairs)
            .into_par_iter()
            .map(|r| {
                let sign = if r % 2 == 0 { sigma } else { -sigma };
                let curves = self.run_with(batch, self.config.steps, |weights| {
                    perturbed(weights, &noise[r / 2], sign)
                })?;
                Ok([
                    self.trajectory_meta_loss(&curves),
                    curves.final_mean(),
                    mean_after_start(&curves),
                ])
            })
            .collect::<Result<_>>()?;
        let mut gathered = Gathered::<f64>::new(ranks, 2 * pairs, RUN_SUMS);
        gathered.mine()[..mine.len() * RUN_SUMS].copy_from_slice(mine.as_flattened());
        let runs: Vec<(f64, f64, f64)> = gathered
            .exchange(ranks)
            .chunks_exact(RUN_SUMS)
            .map(|r| (r[0], r[1], r[2]))
            .collect();
        let runs_count = (2 * pairs) as f64;
        let mut report = EpochReport {
            final_loss: runs.iter().map(|r| r.1).sum::<f64>() / runs_count,
            mean_loss: runs.iter().map(|r| r.2).sum::<f64>() / runs_count,
            skipped_unrolls: 0,
        };
        if runs.iter().any(|r| !r.0.is_finite()) {
            report.skipped_unrolls = 1;
            report.mean_loss = f64::NAN;
            return Ok((None, report));
        }
        let mut grad = vec![0.0f32; self.weights.len()];
        for (k, eps) in noise.iter().enumerate() {
            let c = (runs[2 * k].0 - runs[2 * k + 1].0) / (2.0 * sigma as f64 * pairs as f64);
            let at = span.iter().flat_map(|r| r.clone());
            for (i, e) in at.zip(eps) {
                grad[i] += (c * *e as f64) as f32;
            }
        }
        Ok((Some(grad), report))
    }

    /// The whole-trajectory meta-loss of `curves` under this run's settings.
    pub(crate) fn trajectory_meta_loss(&self, curves: &Curves) -> f64 {
        trajectory_meta_loss(self.config.meta_loss, self.config.loss_from, &curves.losses)
    }

    /// The whole-trajectory meta-loss on `batch` with weight `k` moved by `delta`.
    pub(crate) fn meta_loss_moving<P: ProblemSet>(
        &self,
        batch: &P,
        k: usize,
        delta: f32,
    ) -> Result<f64> {
        let curves = self.run_with(batch, self.config.steps, |w| w[k] += delta)?;
        Ok(self.trajectory_meta_loss(&curves))
    }
}

/// The mean loss of `curves` over steps 1 … T, for progress reports.
fn mean_after_start(curves: &Curves) -> f64 {
    curves
        .losses
        .slice(ndarray::s![.., 1..])
        .mean()
        .unwrap_or(f64::NAN)
}

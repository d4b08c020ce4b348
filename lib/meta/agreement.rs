//! How far the truncated-BPTT meta-gradient agrees with the true gradient of the
//! whole-trajectory meta-loss (`meta-train --check-meta-gradient`; docs/method.md).

use super::bptt::{run_unroll, Objective, Unroll};
use super::trainer::MetaTrainer;
use super::workspace::Workspace;
use crate::error::Result;
use crate::problems::ProblemSet;
use crate::ranks::OneProcess;
use rayon::prelude::*;

/// The paper's meta-gradient and the true one, over the same weights.
#[derive(Clone, Debug)]
pub struct GradientAgreement {
    pub bptt: Vec<f64>,
    pub true_gradient: Vec<f64>,
}

impl GradientAgreement {
    /// Cosine of the angle between the two: 1 when BPTT points the true way, negative when
    /// following it makes the meta-loss worse.
    pub fn cosine(&self) -> f64 {
        let dot: f64 = self
            .bptt
            .iter()
            .zip(&self.true_gradient)
            .map(|(a, b)| a * b)
            .sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (norm(&self.bptt) * norm(&self.true_gradient)).max(f64::MIN_POSITIVE)
    }
    /// Both gradients summed with `other`'s (e.g. over training runs).
    pub fn plus(&self, other: &GradientAgreement) -> GradientAgreement {
        let add = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect();
        GradientAgreement {
            bptt: add(&self.bptt, &other.bptt),
            true_gradient: add(&self.true_gradient, &other.true_gradient),
        }
    }
    /// ‖BPTT‖ / ‖true‖.
    pub fn norm_ratio(&self) -> f64 {
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        norm(&self.bptt) / norm(&self.true_gradient).max(f64::MIN_POSITIVE)
    }
}

impl MetaTrainer {
    /// How well the truncated-BPTT meta-gradient (the paper's, or with `second-order` the
    /// exact one of the truncated meta-loss) agrees with the true gradient of the
    /// whole-trajectory meta-loss on `batch`, over the output layers' weights: returns both,
    /// the true one by central differences with step `eps`. The BPTT gradient is the sum over
    /// the trajectory's unrolls, which is what one epoch of training follows, rescaled to the
    /// trajectory meta-loss's per-step mean. Weights are left unchanged.
    pub fn meta_gradient_agreement<P: ProblemSet>(
        &self,
        batch: &P,
        eps: f32,
    ) -> Result<GradientAgreement> {
        let cfg = &self.config;
        let coordinates: Vec<usize> = self
            .networks
            .output_layers()
            .into_iter()
            .flatten()
            .collect();
        let mut ws = Workspace::new(cfg, batch, &OneProcess)?;
        ws.start_trajectories(batch);
        let mut bptt = vec![0.0f64; coordinates.len()];
        for u in 0..cfg.steps / cfg.unroll {
            let unroll = Unroll {
                index: u,
                last: false,
                objective: Objective::MetaLoss,
            };
            run_unroll(cfg, &self.weights, unroll, batch, &mut ws, &OneProcess);
            for (b, &k) in bptt.iter_mut().zip(&coordinates) {
                *b += ws.total[k] as f64 / cfg.steps as f64;
            }
        }
        let true_gradient = coordinates
            .into_par_iter()
            .map(|k| {
                Ok((self.meta_loss_moving(batch, k, eps)?
                    - self.meta_loss_moving(batch, k, -eps)?)
                    / (2.0 * eps as f64))
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(GradientAgreement {
            bptt,
            true_gradient,
        })
    }
}

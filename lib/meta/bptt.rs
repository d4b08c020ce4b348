//! One truncated unroll of meta-training (§2, docs/method.md "Truncated BPTT"): `unroll` steps
//! of eq. (1) forward from the carried state, then the meta-gradient of the unroll's loss
//! back through them.
//!
//! Because the optimizee gradients are constant inputs (no second derivatives, the dashed edges
//! of Figure 2), the gradient reaching the optimizer's output at step s is the sum of the
//! optimizee gradients after it, Σ_{t>s} w_t ∇_t / B. So the forward pass keeps every ∇_t it
//! fed to the networks, and BPTT starts from their reverse cumulative sum.

use super::config::{MetaGradient, MetaTrainConfig, Rollout};
use super::imitation::imitation_step;
use super::objective::step_term;
use super::second_order::second_order_backward;
use super::workspace::{Shard, Workspace, SHARD_SUMS};
use crate::problems::ProblemSet;
use crate::ranks::Ranks;
use rayon::prelude::*;

/// What an unroll's loss is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Objective {
    /// Eq. (3) (its form set by the config).
    MetaLoss,
    /// Imitation of the config's teacher.
    Imitation,
}

/// Which unroll of a trajectory runs, and for what.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unroll {
    /// Its index u: it runs steps u·T + 1 … (u+1)·T.
    pub(crate) index: usize,
    /// The trajectory's last unroll records the final losses.
    pub(crate) last: bool,
    pub(crate) objective: Objective,
}

/// The sums over problems and steps of one unroll's terms.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UnrollSums {
    /// Σ f(θ_t), for progress reports.
    pub(crate) loss: f64,
    /// Σ of the meta-loss (or imitation) terms.
    pub(crate) meta_loss: f64,
    /// Σ f at the trajectory's last step (in the sums of its last unroll over all shards).
    pub(crate) final_losses: f64,
}

/// Runs `unroll` on every shard in parallel with the weights φ = `weights`, leaves dL/dφ of
/// its meta-loss in `ws.total` and returns its sums over problems and steps (the meta-loss
/// times the batch size). Under K > 1 `ranks`, each rank runs its own shards and the ranks
/// exchange every shard's gradient and sums, which every rank then adds in shard order.
pub(crate) fn run_unroll<P: ProblemSet>(
    cfg: &MetaTrainConfig,
    weights: &[f32],
    unroll: Unroll,
    batch: &P,
    ws: &mut Workspace<P::Scratch>,
    ranks: &dyn Ranks,
) -> UnrollSums {
    assert_eq!(
        batch.count(),
        cfg.batch,
        "batch size differs from the workspace's"
    );
    let sums: Vec<UnrollSums> = ws
        .shards
        .par_iter_mut()
        .map(|s| unroll_shard(cfg, weights, unroll, batch, s))
        .collect();
    let width = ws.total.len();
    for (block, s) in ws
        .shard_gradients
        .mine()
        .chunks_exact_mut(width)
        .zip(&ws.shards)
    {
        block.copy_from_slice(&s.grad);
    }
    for ((block, s), sum) in ws
        .shard_sums
        .mine()
        .chunks_exact_mut(SHARD_SUMS)
        .zip(&ws.shards)
        .zip(&sums)
    {
        block.copy_from_slice(&[sum.loss, sum.meta_loss, s.final_losses]);
    }
    // Sum shard gradients in shard order, so the result is the same for any thread count
    // and any number of ranks.
    ws.total.fill(0.0);
    for g in ws.shard_gradients.exchange(ranks).chunks_exact(width) {
        for (a, b) in ws.total.iter_mut().zip(g) {
            *a += b;
        }
    }
    let every = ws.shard_sums.exchange(ranks);
    let shard_sums = || every.chunks_exact(SHARD_SUMS);
    let mut total = shard_sums().fold(UnrollSums::default(), |a, b| UnrollSums {
        loss: a.loss + b[0],
        meta_loss: a.meta_loss + b[1],
        final_losses: 0.0,
    });
    total.final_losses = shard_sums().map(|b| b[2]).sum::<f64>();
    total
}

/// One shard's unroll: the steps forward, then the backward pass into `s.grad`.
fn unroll_shard<P: ProblemSet>(
    cfg: &MetaTrainConfig,
    weights: &[f32],
    unroll: Unroll,
    batch: &P,
    s: &mut Shard<P::Scratch>,
) -> UnrollSums {
    let (t_len, rows) = (cfg.unroll, s.theta.len());
    let imitating = unroll.objective == Objective::Imitation;
    let second_order = !imitating && cfg.meta_gradient == MetaGradient::SecondOrder;
    s.step.start_unroll();
    let mut sums = UnrollSums::default();
    for t in 0..t_len {
        if imitating {
            s.anchor.copy_from_slice(&s.theta);
        }
        if second_order {
            s.thetas[t * rows..(t + 1) * rows].copy_from_slice(&s.theta);
        }
        s.step
            .step(weights, &mut s.theta, &s.grads[t * rows..(t + 1) * rows]);
        if imitating {
            sums.meta_loss += imitation_step(cfg, t, batch.dim(), batch.count(), s);
            if cfg.imitation.map(|im| im.rollout) == Some(Rollout::Teacher) {
                s.theta.copy_from_slice(&s.anchor);
            }
        }
        let (loss, meta_loss) = next_gradients(cfg, unroll, t, imitating, batch, s);
        sums.loss += loss;
        sums.meta_loss += meta_loss;
        if unroll.last && t + 1 == t_len {
            s.final_losses = loss;
        }
    }
    s.grad.fill(0.0);
    if second_order {
        second_order_backward(
            weights,
            cfg.preprocessing,
            cfg.output_scale,
            unroll.index,
            batch,
            s,
        );
    } else {
        if !imitating {
            meta_loss_output_gradients(cfg.output_scale / batch.count() as f32, batch.dim(), s);
        }
        s.step.backward(weights, &s.d_outputs, &mut s.grad);
    }
    // The last gradient is the first input of the next unroll.
    s.grads.copy_within(t_len * rows..(t_len + 1) * rows, 0);
    sums
}

/// The losses and gradients ∇_{t+1} at the θ reached by step t of the unroll, with each
/// problem's meta-loss weight w_{t+1} (none while imitating). Returns Σ f and Σ of the
/// meta-loss terms over the shard's problems.
fn next_gradients<P: ProblemSet>(
    cfg: &MetaTrainConfig,
    unroll: Unroll,
    t: usize,
    imitating: bool,
    batch: &P,
    s: &mut Shard<P::Scratch>,
) -> (f64, f64) {
    let (dim, rows, local) = (batch.dim(), s.theta.len(), s.problems.len());
    let step = unroll.index * cfg.unroll + t + 1;
    let next = &mut s.grads[(t + 1) * rows..(t + 2) * rows];
    let (mut loss, mut meta_loss) = (0.0, 0.0);
    for (k, p) in s.problems.clone().enumerate() {
        let span = k * dim..(k + 1) * dim;
        let f = batch.loss_and_gradient(
            p,
            step,
            &s.theta[span.clone()],
            &mut next[span],
            &mut s.scratch,
        );
        if !imitating {
            let (term, weight) = step_term(cfg.meta_loss, cfg.loss_from, step, f);
            s.step_weights[t * local + k] = weight as f32;
            meta_loss += term;
        }
        loss += f;
    }
    (loss, meta_loss)
}

/// dL/d(output_s) = c · Σ_{t>s} w_t ∇_t with c = output_scale / B, a reverse cumulative sum
/// over the unroll's steps, into `s.d_outputs`.
fn meta_loss_output_gradients<S>(c: f32, dim: usize, s: &mut Shard<S>) {
    let (rows, local) = (s.theta.len(), s.problems.len());
    let t_len = s.d_outputs.len() / rows;
    for t in (0..t_len).rev() {
        let (head, tail) = s.d_outputs.split_at_mut((t + 1) * rows);
        let cur = &mut head[t * rows..];
        let g_next = &s.grads[(t + 1) * rows..(t + 2) * rows];
        for k in 0..local {
            let span = k * dim..(k + 1) * dim;
            let cw = c * s.step_weights[t * local + k];
            if t + 1 == t_len {
                for (d, g) in cur[span.clone()].iter_mut().zip(&g_next[span]) {
                    *d = cw * g;
                }
            } else {
                for ((d, g), later) in cur[span.clone()]
                    .iter_mut()
                    .zip(&g_next[span.clone()])
                    .zip(&tail[span])
                {
                    *d = later + cw * g;
                }
            }
        }
    }
}

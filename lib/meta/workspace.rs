//! The buffers of meta-training: one shard of an epoch's problems per parallel task, each with
//! every buffer its unrolls need, allocated once and reused for every epoch. Under K > 1 ranks
//! a rank holds only its share of the shards, and the buffers that gather every shard's
//! meta-gradient.

use super::config::{ImitationLoss, MetaGradient, MetaTrainConfig, MetaTrainSettings};
use crate::baselines::BaselineRule;
use crate::error::{config_error, settings_error, Error, Result};
use crate::evaluation::SHARD_ROWS;
use crate::learned::step::LearnedStep;
use crate::problems::{shard_ranges, ProblemSet};
use crate::ranks::{Gathered, Ranks};
use rayon::prelude::*;

/// One shard of an epoch's problems.
#[derive(Clone)]
pub(crate) struct Shard<S> {
    pub(crate) problems: std::ops::Range<usize>,
    pub(crate) theta: Vec<f32>,
    /// ∇_0 … ∇_T of the current unroll, `rows` each.
    pub(crate) grads: Vec<f32>,
    /// dL/d(raw output) of every row at each step of the unroll.
    pub(crate) d_outputs: Vec<f32>,
    /// Eq. (1) with the tapes that record the unroll.
    pub(crate) step: LearnedStep,
    /// This shard's dL/dφ.
    pub(crate) grad: Vec<f32>,
    pub(crate) scratch: S,
    /// w_t of each problem (rows of `problems.len()`) at each step of the current unroll.
    pub(crate) step_weights: Vec<f32>,
    /// Under imitation: the teacher, and θ_t while both updates are formed.
    pub(crate) teacher: Option<BaselineRule>,
    pub(crate) anchor: Vec<f32>,
    /// Under relative imitation: v_i, the teacher's recent mean squared update.
    pub(crate) teacher_update_ms: Vec<f32>,
    /// Second order: θ_0 … θ_{T−1} of the unroll, the adjoint of θ, dL/d(features), dL/d∇
    /// and H ḡ.
    pub(crate) thetas: Vec<f32>,
    pub(crate) adjoint: Vec<f32>,
    pub(crate) d_features: Vec<f32>,
    pub(crate) d_grad: Vec<f32>,
    pub(crate) hessian_product: Vec<f32>,
    pub(crate) final_losses: f64,
}

/// Workspace for training on batches of one shape; reused for every epoch.
#[derive(Clone)]
pub struct Workspace<S> {
    /// This rank's shards (all of them in one process).
    pub(crate) shards: Vec<Shard<S>>,
    /// dL/dφ of the last unroll, summed over shards.
    pub(crate) total: Vec<f32>,
    /// Every shard's dL/dφ, gathered from the ranks that hold them.
    pub(crate) shard_gradients: Gathered<f32>,
    /// Every shard's [`SHARD_SUMS`] sums.
    pub(crate) shard_sums: Gathered<f64>,
}

/// The sums of a shard's unroll that the ranks exchange: Σ f, Σ of the meta-loss terms, and
/// Σ f at the trajectory's last step.
pub(crate) const SHARD_SUMS: usize = 3;

impl<S: Send> Workspace<S> {
    /// Buffers for batches of `config.batch` problems like `like`, for this rank's share of
    /// their shards; an error if the networks of `config` do not serve `like`'s parameter
    /// groups, or if `ranks` has more ranks than the meta-gradient has units of work.
    pub fn new<P: ProblemSet<Scratch = S>>(
        config: &MetaTrainConfig,
        like: &P,
        ranks: &dyn Ranks,
    ) -> Result<Self> {
        let dim = like.dim();
        let networks = config.networks();
        let groups = like.groups();
        let f = config.preprocessing.features();
        let second_order = usize::from(config.meta_gradient == MetaGradient::SecondOrder);
        if second_order == 1 && like.hessian().is_none() {
            return Err(Error::setting(
                "meta_gradient",
                "bptt or es: second-order needs Hessian-vector products, which these problems \
                 do not have",
                "second-order",
            ));
        }
        let all_shards = shard_ranges(config.batch, dim, SHARD_ROWS);
        refuse_idle_ranks(config, all_shards.len(), ranks.size())?;
        let shards = all_shards[ranks.share(all_shards.len())]
            .iter()
            .cloned()
            .map(|problems| {
                let local = problems.len();
                let rows = local * dim;
                Ok(Shard {
                    theta: vec![0.0; rows],
                    grads: vec![0.0; (config.unroll + 1) * rows],
                    d_outputs: vec![0.0; config.unroll * rows],
                    step: LearnedStep::new(
                        &networks,
                        config.preprocessing,
                        config.output_scale,
                        config.base,
                        &groups,
                        dim,
                        local,
                        config.unroll,
                    )?,
                    grad: vec![0.0; networks.num_params()],
                    scratch: like.scratch(),
                    step_weights: vec![0.0; config.unroll * local],
                    teacher: config.imitation.map(|im| im.teacher.rule(im.lr, rows)),
                    anchor: vec![0.0; if config.imitation.is_some() { rows } else { 0 }],
                    teacher_update_ms: vec![
                        0.0;
                        match config.imitation {
                            Some(im) if im.loss == ImitationLoss::Relative => rows,
                            _ => 0,
                        }
                    ],
                    thetas: vec![0.0; second_order * config.unroll * rows],
                    adjoint: vec![0.0; second_order * rows],
                    d_features: vec![0.0; second_order * rows * f],
                    d_grad: vec![0.0; second_order * rows],
                    hessian_product: vec![0.0; second_order * rows],
                    final_losses: 0.0,
                    problems,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Workspace {
            shards,
            total: vec![0.0; networks.num_params()],
            shard_gradients: Gathered::new(ranks, all_shards.len(), networks.num_params()),
            shard_sums: Gathered::new(ranks, all_shards.len(), SHARD_SUMS),
        })
    }

    /// Bytes held by the tapes and buffers, for memory reports.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.step.bytes() + 4 * (s.theta.len() + s.grads.len() + s.d_outputs.len()))
            .sum()
    }

    /// An error, naming what to lower, if this rank's tapes and buffers for `config.batch`
    /// problems like `like` would need more than `available` bytes. Measured on the workspace
    /// of one problem, before the full one is allocated: its buffers are allocated untouched, so
    /// one beyond the machine's memory would otherwise fail only when an unroll fills it and
    /// the system ends the process (or, far beyond, when it is allocated).
    pub fn check_fits<P: ProblemSet<Scratch = S>>(
        config: &MetaTrainConfig,
        like: &P,
        ranks: &dyn Ranks,
        available: u64,
    ) -> Result<()> {
        let one = config.with(|s| s.batch = 1)?;
        let per_problem = Workspace::new(&one, like, &crate::ranks::OneProcess)?.bytes() as u64;
        let needed = per_problem.saturating_mul(config.batch.div_ceil(ranks.size()) as u64);
        if needed <= available {
            return Ok(());
        }
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        config_error(format!(
            "meta-training {} problems of {} parameters in unrolls of {} steps needs {:.1} GiB \
             for its tapes, more than the {:.1} GiB of memory available; lower `batch` or `unroll`",
            config.batch,
            like.dim(),
            config.unroll,
            gib(needed),
            gib(available)
        ))
    }

    /// Puts every problem of `batch` at θ0 with fresh optimizer state, and computes ∇_0.
    pub(crate) fn start_trajectories<P: ProblemSet<Scratch = S>>(&mut self, batch: &P) {
        let dim = batch.dim();
        self.shards.par_iter_mut().for_each(|s| {
            s.step.reset();
            if let Some(rule) = &mut s.teacher {
                rule.reset();
            }
            s.teacher_update_ms.fill(0.0);
            for (k, p) in s.problems.clone().enumerate() {
                let span = k * dim..(k + 1) * dim;
                batch.initial_point(p, &mut s.theta[span.clone()]);
                batch.loss_and_gradient(
                    p,
                    0,
                    &s.theta[span.clone()],
                    &mut s.grads[span],
                    &mut s.scratch,
                );
            }
        });
    }
}

/// Refuses more ranks than the meta-gradient of `config` has units of work on problems like
/// `like`: the shards of a batch for BPTT, 2 × pairs runs for evolution strategies. A rank
/// without work would only wait.
pub fn check_ranks<P: ProblemSet>(
    config: &MetaTrainSettings,
    like: &P,
    ranks: usize,
) -> Result<()> {
    let shards = shard_ranges(config.batch, like.dim(), SHARD_ROWS).len();
    refuse_idle_ranks(config, shards, ranks)
}

fn refuse_idle_ranks(config: &MetaTrainSettings, shards: usize, ranks: usize) -> Result<()> {
    let (units, what, fix) = match config.meta_gradient {
        MetaGradient::Es { pairs, .. } => (
            2 * pairs,
            format!("{pairs} antithetic pairs, i.e. {} runs", 2 * pairs),
            "raise `es_pairs`",
        ),
        _ => (
            shards,
            format!(
                "a batch of {} problems makes {shards} shard{} of work",
                config.batch,
                if shards == 1 { "" } else { "s" }
            ),
            "raise `batch`",
        ),
    };
    if ranks > units {
        return settings_error(format!(
            "{ranks} ranks but {what}, so at most {units} ranks can share an epoch; run \
             mpirun -np {units} or fewer, or {fix}"
        ));
    }
    Ok(())
}

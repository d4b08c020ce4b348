//! Meta-training a learned optimizer (§2, §3): minimise eq. (3) with w_t = 1 by truncated
//! BPTT and Adam on the LSTM weights φ.
//!
//! Because the optimizee gradients are constant inputs (no second derivatives, the dashed edges
//! of Figure 2), the gradient reaching the optimizer's output at step s is the sum of the
//! optimizee gradients after it, Σ_{t>s} ∇_t (see METHOD.md). So the forward pass keeps every
//! ∇_t it fed to the LSTM, and BPTT starts from their reverse cumulative sum.
//!
//! Each unroll's meta-loss is (1/B) Σ_b Σ_{t=1..T} f_b(θ_t): the losses after each of its T
//! updates, averaged over the B problems of the epoch (the loss at the unroll's start is a
//! constant and is left out). Beyond the paper: the same with log f ([`MetaLoss::Log`]);
//! imitation of a hand-designed optimizer before the meta-loss ([`Imitation`]); an unbiased
//! evolution-strategies estimate instead of BPTT ([`MetaGradient::Es`]); and a check of how
//! far BPTT's meta-gradient agrees with the true one ([`MetaTrainer::meta_gradient_agreement`]).
//!
//! [`MetaTrainer::train_epoch`] is one epoch and holds no loop over epochs; [`train`] is the
//! executor that runs epochs, validation, checkpoints and progress.

use crate::error::{config_error, Error, Result};
use crate::evaluation::{self, Curves, SHARD_ROWS};
use crate::io::{write_npz, Npz};
use crate::learned::LearnedOptimizer;
use crate::lstm::{BlockedTape, LstmShape, LstmWeights};
use crate::optimizers::{BaseStep, Baseline, BaselineRule, OptimizerChoice, UpdateRule};
use crate::preprocessing::Preprocessing;
use crate::problems::{shard_ranges, ProblemSet};
use crate::rng::{streams, Rng};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The meta-loss of a trajectory, eq. (3) with w_t = 1 or its logarithmic form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaLoss {
    /// Σ_t f(θ_t), the paper's eq. (3) with w_t = 1.
    Sum,
    /// Σ_t log f(θ_t): every step's relative progress counts the same, so the late steps of a
    /// trajectory, whose losses are small, are not drowned out by the first ones (the
    /// log-loss of later learned-optimizer work, e.g. Wichrowska et al., ICML 2017). Its
    /// gradient is eq. (3)'s with w_t = 1 / f(θ_t).
    Log,
}

impl std::fmt::Display for MetaLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetaLoss::Sum => "sum",
            MetaLoss::Log => "log",
        })
    }
}

impl MetaLoss {
    /// The smallest loss the logarithm sees, so that a problem solved exactly stays finite.
    const FLOOR: f64 = 1e-12;

    /// The term of one step's loss `f` in the meta-loss, and its derivative w_t.
    fn term_and_weight(self, f: f64) -> (f64, f64) {
        match self {
            MetaLoss::Sum => (f, 1.0),
            MetaLoss::Log => {
                let f = f.max(Self::FLOOR);
                (f.ln(), 1.0 / f)
            }
        }
    }
}

/// Imitation of a hand-designed optimizer (Chen et al., NeurIPS 2020): for the first
/// `epochs` epochs the meta-loss is the mean squared difference between the LSTM's update
/// and the teacher's, (1/B) Σ_b Σ_t (1/n) ‖output_scale · m_t − Δ*_t‖² (each coordinate
/// weighted as `loss` says), where both are fed
/// the same gradients and the teacher keeps its own state (momentum, mean squares) over
/// them. The usual meta-loss then takes over from the weights imitation reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Imitation {
    pub teacher: Baseline,
    pub lr: f64,
    pub epochs: u64,
    /// Adam's learning rate on φ while imitating.
    pub meta_lr: f64,
    pub rollout: Rollout,
    pub loss: ImitationLoss,
}

/// How an imitation step weighs each coordinate's error r_i = output_scale · m_i − Δ*_i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImitationLoss {
    /// (1/n) Σ_i r_i²: the coordinates with the largest updates (on an MLP, the output layer)
    /// dominate, and an error that is small in absolute terms goes unpunished, such as a
    /// constant drift of every coordinate whose gradient is near zero.
    Squared,
    /// (1/n) Σ_i r_i² / (v_i + δ²), where v_i is the teacher's recent mean squared update on
    /// coordinate i (an average with decay 0.9) and δ² = 10⁻⁴ × the mean of v over the
    /// problem: every coordinate's error counts relative to the size of its own updates, down
    /// to 1 % of the typical update, so the tiny updates of deep layers are imitated as
    /// carefully as the large ones.
    Relative,
}

impl ImitationLoss {
    const DECAY: f32 = 0.9;
    const FLOOR: f32 = 1e-4;
}

/// Whose updates an imitation trajectory follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// The teacher's (off-policy, behaviour cloning): the LSTM only ever sees the states the
    /// teacher visits.
    Teacher,
    /// The LSTM's own (on-policy, as DAgger, Ross et al. 2011): the teacher says what it
    /// would do at the states the LSTM reaches, so the LSTM learns to correct its own drift.
    Student,
}

/// How the meta-gradient dL/dφ is estimated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetaGradient {
    /// Truncated BPTT under the paper's assumption that optimizee gradients do not depend on
    /// φ (no second derivatives, METHOD.md): cheap, but blind to how a step changes the
    /// gradients after it, e.g. to overshooting.
    Bptt,
    /// Truncated BPTT with the second-derivative terms the paper drops: the adjoint of θ_t
    /// also receives H_t ḡ_t, the optimizee's Hessian (same minibatch) times the gradient of
    /// the meta-loss with respect to the LSTM's input ∇_t, by a Hessian-vector product at
    /// every step. The exact gradient of the truncated meta-loss, at about three times the
    /// cost of a gradient per step.
    SecondOrder,
    /// Antithetic evolution strategies over whole trajectories (Salimans et al. 2017; used for
    /// learned optimizers by Metz et al., ICML 2019): (1/2σK) Σ_k [L(φ + σε_k) − L(φ − σε_k)] ε_k
    /// with ε_k ~ N(0, I) on the weights of `scope`, both signs of a pair run on the same
    /// problems and minibatches. Unbiased for the smoothed meta-loss of the untruncated
    /// trajectory, second-order effects included; it needs only forward runs.
    Es {
        pairs: usize,
        sigma: f32,
        scope: EsScope,
    },
}

/// Which LSTM weights evolution strategies perturbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EsScope {
    /// The linear output layer only (hidden + 1 weights): few directions, so few pairs give a
    /// usable estimate; suited to refining a trained optimizer.
    Output,
    All,
}

impl std::fmt::Display for EsScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EsScope::Output => "output",
            EsScope::All => "all",
        })
    }
}

/// Hyperparameters of a meta-training run, validated before any work starts.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaTrainConfig {
    pub hidden: usize,
    pub preprocessing: Preprocessing,
    pub output_scale: f32,
    /// A hand-designed rule whose step is added to the LSTM's, which then learns a correction
    /// to it (beyond the paper). A fresh run starts with the output layer at zero, i.e. from
    /// exactly this rule. Its steps depend on φ only through later gradients, which BPTT
    /// treats as constants, so BPTT's meta-gradient keeps its form; the second-order terms
    /// would need the adjoint of the rule's state, which is not implemented.
    pub base: Option<BaseStep>,
    pub forget_bias: f32,
    /// Problems per epoch.
    pub batch: usize,
    /// Optimizee steps per trajectory (the horizon T of eq. 3).
    pub steps: usize,
    /// Steps per truncated unroll.
    pub unroll: usize,
    pub meta_lr: f64,
    /// The meta learning rate is multiplied by this after every epoch.
    pub meta_lr_decay: f64,
    /// Clip the meta-gradient to this global L2 norm.
    pub clip: Option<f64>,
    /// Curriculum over trajectory length (Chen et al., NeurIPS 2020): epoch e trains on
    /// min(steps / unroll, 1 + ⌊e / stage⌋) unrolls, so the horizon grows by one unroll every
    /// `stage` epochs up to `steps`.
    pub curriculum: Option<u64>,
    /// What each step contributes to the meta-loss.
    pub meta_loss: MetaLoss,
    /// The first step t whose loss enters the meta-loss (1 = all of them): eq. (3)'s w_t is 0
    /// before it, so training targets the end of the trajectory, e.g. the loss reached after
    /// twice the steps a run is usually given.
    pub loss_from: usize,
    /// Imitate a hand-designed optimizer for the first epochs.
    pub imitation: Option<Imitation>,
    /// How the meta-loss's gradient is estimated (after any imitation, which uses BPTT).
    pub meta_gradient: MetaGradient,
    /// Steps of the validation runs whose final loss selects the checkpoint (usually `steps`).
    pub validation_steps: usize,
    pub epochs: u64,
    /// Validate (and keep the best weights) every this many epochs.
    pub eval_every: u64,
    pub seed: u64,
}

impl MetaTrainConfig {
    pub fn validate(&self) -> Result<()> {
        self.preprocessing.validate()?;
        if self.hidden == 0 || self.hidden > 256 {
            return config_error(format!(
                "--hidden must be between 1 and 256, got {}",
                self.hidden
            ));
        }
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return config_error(format!(
                "--output-scale must be positive, got {}",
                self.output_scale
            ));
        }
        if self.batch == 0 {
            return config_error("--batch must be at least 1");
        }
        if self.steps == 0 || self.unroll == 0 || self.steps % self.unroll != 0 {
            return config_error(format!(
                "--steps ({}) must be a positive multiple of --unroll ({})",
                self.steps, self.unroll
            ));
        }
        if !(self.meta_lr.is_finite() && self.meta_lr > 0.0) {
            return config_error(format!("--meta-lr must be positive, got {}", self.meta_lr));
        }
        if !(self.meta_lr_decay > 0.0 && self.meta_lr_decay <= 1.0) {
            return config_error(format!(
                "--meta-lr-decay must be in (0, 1], got {}",
                self.meta_lr_decay
            ));
        }
        if matches!(self.clip, Some(c) if !(c > 0.0)) {
            return config_error("--clip must be positive");
        }
        if self.eval_every == 0 {
            return config_error("--eval-every must be at least 1");
        }
        if self.curriculum == Some(0) {
            return config_error("--curriculum must be at least 1 epoch per stage");
        }
        if let Some(im) = &self.imitation {
            if !(im.meta_lr.is_finite() && im.meta_lr > 0.0) {
                return config_error(format!(
                    "--imitation-meta-lr must be positive, got {}",
                    im.meta_lr
                ));
            }
            if !(im.lr.is_finite() && im.lr > 0.0) {
                return config_error(format!(
                    "the imitated optimizer's learning rate must be positive, got {}",
                    im.lr
                ));
            }
        }
        if let MetaGradient::Es { pairs, sigma, .. } = self.meta_gradient {
            if pairs == 0 {
                return config_error("--es-pairs must be at least 1");
            }
            if !(sigma.is_finite() && sigma > 0.0) {
                return config_error(format!("--es-sigma must be positive, got {sigma}"));
            }
        }
        if self.validation_steps == 0 {
            return config_error("--validation-steps must be at least 1");
        }
        if self.loss_from == 0 || self.loss_from > self.steps {
            return config_error(format!(
                "--meta-loss-from must be between 1 and --steps ({}), got {}",
                self.steps, self.loss_from
            ));
        }
        if let Some(base) = self.base {
            if !(base.lr.is_finite() && base.lr > 0.0) {
                return config_error(format!(
                    "--base needs a positive learning rate, got {}",
                    base.lr
                ));
            }
            if self.imitation.is_some() {
                return config_error(
                    "--base and --imitate do not go together (a fresh run with --base already \
                     starts as its rule); drop one",
                );
            }
            if self.meta_gradient == MetaGradient::SecondOrder {
                return config_error(
                    "--base is not implemented for --meta-gradient second-order; use bptt or es",
                );
            }
        }
        if self.loss_from > 1 && self.curriculum.is_some() {
            return config_error(
                "--meta-loss-from needs whole trajectories; drop --curriculum or --meta-loss-from",
            );
        }
        Ok(())
    }

    pub fn shape(&self) -> LstmShape {
        LstmShape {
            inputs: self.preprocessing.features(),
            hidden: self.hidden,
        }
    }

    /// The imitation settings if epoch `epoch` imitates.
    pub fn imitating_at(&self, epoch: u64) -> Option<Imitation> {
        self.imitation.filter(|im| epoch < im.epochs)
    }

    /// Unrolls of the trajectories of epoch `epoch` (fewer early on under a curriculum, whose
    /// stages count from the end of imitation; imitation uses whole trajectories).
    pub fn unrolls_at(&self, epoch: u64) -> usize {
        let full = self.steps / self.unroll;
        let own = epoch - self.imitation.map_or(0, |im| im.epochs.min(epoch));
        match (self.curriculum, self.imitating_at(epoch)) {
            (Some(stage), None) => full.min(1 + (own / stage) as usize),
            _ => full,
        }
    }

    /// Optimizee steps run in epoch `epoch` (validation runs not counted).
    pub fn optimizee_steps_at(&self, epoch: u64) -> usize {
        match (self.meta_gradient, self.imitating_at(epoch)) {
            (MetaGradient::Es { pairs, .. }, None) => 2 * pairs * self.batch * self.steps,
            _ => self.batch * self.unrolls_at(epoch) * self.unroll,
        }
    }

    /// Everything that must match for a run to resume another (all but the epoch budget).
    fn fingerprint(&self, source: &str) -> String {
        format!(
            "hidden={} preprocessing={} output_scale={} forget_bias={} batch={} steps={} unroll={} \
             meta_lr={} meta_lr_decay={} clip={:?} curriculum={:?} meta_loss={} imitation={:?} meta_gradient={:?} validation_steps={} eval_every={} seed={} \
             source={source}",
            self.hidden,
            self.preprocessing,
            self.output_scale,
            self.forget_bias,
            self.batch,
            self.steps,
            self.unroll,
            self.meta_lr,
            self.meta_lr_decay,
            self.clip,
            self.curriculum,
            self.meta_loss,
            self.imitation,
            self.meta_gradient,
            self.validation_steps,
            self.eval_every,
            self.seed
        ) + &match self.loss_from {
            1 => String::new(),
            from => format!(" loss_from={from}"),
        } + &match self.base {
            None => String::new(),
            Some(base) => format!(" base={base}"),
        }
    }
}

/// Where each epoch's training problems come from.
pub trait TrainingSource: Sync {
    type Set: ProblemSet;
    /// The `batch` problems of epoch `epoch`; a pure function of its arguments.
    fn draw(&self, epoch: u64, batch: usize) -> Self::Set;
    /// Identifies the source, for resume checks.
    fn describe(&self) -> String;
}

/// One shard of an epoch's problems, with every buffer its unrolls need, allocated once.
#[derive(Clone)]
struct Shard<S> {
    problems: std::ops::Range<usize>,
    theta: Vec<f32>,
    /// ∇_0 … ∇_T of the current unroll, `rows` each.
    grads: Vec<f32>,
    features: Vec<f32>,
    outputs: Vec<f32>,
    d_outputs: Vec<f32>,
    tape: BlockedTape,
    grad: LstmWeights,
    scratch: S,
    /// w_t of each problem (rows of `problems.len()`) at each step of the current unroll.
    step_weights: Vec<f32>,
    /// The base rule's state, with `base`.
    base: Option<BaselineRule>,
    /// Under imitation: the teacher, and θ_t while both updates are formed.
    teacher: Option<BaselineRule>,
    anchor: Vec<f32>,
    /// Under relative imitation: v_i, the teacher's recent mean squared update.
    teacher_update_ms: Vec<f32>,
    /// Second order: θ_0 … θ_{T−1} of the unroll, the adjoint of θ, dL/d∇ and H ḡ.
    thetas: Vec<f32>,
    adjoint: Vec<f32>,
    d_grad: Vec<f32>,
    hessian_product: Vec<f32>,
    final_losses: f64,
}

/// Workspace for training on batches of one shape; reused for every epoch.
#[derive(Clone)]
pub struct Workspace<S> {
    shards: Vec<Shard<S>>,
    total: LstmWeights,
}

impl<S: Send> Workspace<S> {
    pub fn new<P: ProblemSet<Scratch = S>>(config: &MetaTrainConfig, like: &P) -> Self {
        let dim = like.dim();
        let shape = config.shape();
        let second_order = usize::from(config.meta_gradient == MetaGradient::SecondOrder);
        let shards = shard_ranges(config.batch, dim, SHARD_ROWS)
            .into_iter()
            .map(|problems| {
                let local = problems.len();
                let rows = local * dim;
                Shard {
                    problems,
                    theta: vec![0.0; rows],
                    grads: vec![0.0; (config.unroll + 1) * rows],
                    features: vec![0.0; rows * shape.inputs],
                    outputs: vec![0.0; rows],
                    d_outputs: vec![0.0; config.unroll * rows],
                    tape: BlockedTape::new(shape, rows, config.unroll),
                    grad: LstmWeights::zeros(shape),
                    scratch: like.scratch(),
                    step_weights: vec![0.0; config.unroll * local],
                    base: config.base.map(|b| b.kind.rule(b.lr, rows)),
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
                    d_grad: vec![0.0; second_order * rows],
                    hessian_product: vec![0.0; second_order * rows],
                    final_losses: 0.0,
                }
            })
            .collect();
        Workspace {
            shards,
            total: LstmWeights::zeros(shape),
        }
    }

    /// Bytes held by the tapes and buffers, for memory reports.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.tape.bytes()
                    + 4 * (s.theta.len()
                        + s.grads.len()
                        + s.features.len()
                        + s.outputs.len()
                        + s.d_outputs.len())
            })
            .sum()
    }
}

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

/// What one epoch did.
#[derive(Clone, Debug, Default)]
pub struct EpochReport {
    /// Mean over problems of the loss at the last step of the trajectory (NaN if skipped).
    pub final_loss: f64,
    /// Mean over problems and steps of the meta-loss terms f(θ_t).
    pub mean_loss: f64,
    pub skipped_unrolls: u64,
}

/// The state of a meta-training run: weights, meta-Adam state and bookkeeping.
#[derive(Clone, Debug)]
pub struct MetaTrainer {
    pub config: MetaTrainConfig,
    pub weights: LstmWeights,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    adam_t: u64,
    /// Epochs completed.
    pub epoch: u64,
    pub skipped_unrolls: u64,
    /// The best weights by validation so far.
    pub best: Option<LearnedOptimizer>,
}

const META_BETA1: f64 = 0.9;
const META_BETA2: f64 = 0.999;
const META_EPSILON: f64 = 1e-8;

impl MetaTrainer {
    pub fn new(config: MetaTrainConfig) -> Result<Self> {
        config.validate()?;
        let mut weights = LstmWeights::init(config.shape(), config.seed, config.forget_bias);
        if config.base.is_some() {
            let range = config.shape().output_layer();
            weights.as_mut_slice()[range].fill(0.0);
        }
        let n = weights.as_slice().len();
        Ok(MetaTrainer {
            config,
            weights,
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            adam_t: 0,
            epoch: 0,
            skipped_unrolls: 0,
            best: None,
        })
    }

    /// A run that starts from the weights of `start` instead of a fresh initialisation, e.g.
    /// to continue training a checkpoint with other settings. Its architecture, input
    /// processing and output scale must be this run's.
    pub fn starting_from(config: MetaTrainConfig, start: &LearnedOptimizer) -> Result<Self> {
        let mut t = Self::new(config)?;
        let cfg = &t.config;
        if start.base != cfg.base {
            let name = |b: Option<BaseStep>| b.map_or("none".to_string(), |b| b.to_string());
            return config_error(format!(
                "the starting checkpoint's base rule is {}, but this run asks for {}; {}",
                name(start.base),
                name(cfg.base),
                start
                    .base
                    .map_or("drop --base".to_string(), |b| format!("pass --base {b}"))
            ));
        }
        if start.weights.shape() != cfg.shape()
            || start.preprocessing != cfg.preprocessing
            || start.output_scale != cfg.output_scale
        {
            return config_error(format!(
                "the starting checkpoint has {} hidden units, {} input processing and output scale {}, \
                 but this run asks for {}, {} and {}; pass the checkpoint's settings",
                start.weights.shape().hidden,
                start.preprocessing,
                start.output_scale,
                cfg.hidden,
                cfg.preprocessing,
                cfg.output_scale
            ));
        }
        t.weights = start.weights.clone();
        Ok(t)
    }

    /// The current weights as a usable optimizer.
    pub fn current(&self, validation_loss: f64) -> LearnedOptimizer {
        LearnedOptimizer {
            weights: self.weights.clone(),
            preprocessing: self.config.preprocessing,
            output_scale: self.config.output_scale,
            base: self.config.base,
            epoch: self.epoch,
            validation_loss,
        }
    }

    /// One epoch: every problem of `batch` runs the whole trajectory, as `steps / unroll`
    /// truncated unrolls, each followed by one Adam step on φ. An unroll whose loss or
    /// meta-gradient is not finite is skipped, and so are the rest of that epoch's unrolls
    /// (their trajectories have diverged).
    pub fn train_epoch<P: ProblemSet>(
        &mut self,
        batch: &P,
        ws: &mut Workspace<P::Scratch>,
    ) -> EpochReport {
        if matches!(self.config.imitation, Some(im) if im.epochs == self.epoch && im.epochs > 0) {
            // The imitation loss's gradients are orders of magnitude smaller than the
            // meta-loss's; Adam's moments from imitation would turn the first meta-loss
            // gradients into huge steps.
            self.adam_m.fill(0.0);
            self.adam_v.fill(0.0);
            self.adam_t = 0;
        }
        if let (
            MetaGradient::Es {
                pairs,
                sigma,
                scope,
            },
            None,
        ) = (
            self.config.meta_gradient,
            self.config.imitating_at(self.epoch),
        ) {
            return self.es_epoch(batch, pairs, sigma, scope);
        }
        let unrolls = self.config.unrolls_at(self.epoch);
        let count = batch.count() as f64;
        start_trajectories(batch, ws);
        let mut report = EpochReport {
            final_loss: f64::NAN,
            mean_loss: 0.0,
            skipped_unrolls: 0,
        };
        for u in 0..unrolls {
            let imitating = self.config.imitating_at(self.epoch).is_some();
            let sums = run_unroll(
                &self.config,
                &self.weights,
                u,
                u + 1 == unrolls,
                imitating,
                batch,
                ws,
            );
            let loss = sums.loss;
            if !sums.meta_loss.is_finite() || !loss.is_finite() || !ws.total.is_finite() {
                report.skipped_unrolls = (unrolls - u) as u64;
                report.mean_loss = f64::NAN;
                self.skipped_unrolls += report.skipped_unrolls;
                self.epoch += 1;
                return report;
            }
            report.mean_loss += loss / (count * (unrolls * self.config.unroll) as f64);
            let grad = std::mem::replace(&mut ws.total, LstmWeights::zeros(self.config.shape()));
            self.adam_step(&grad);
            ws.total = grad;
        }
        report.final_loss = ws.shards.iter().map(|s| s.final_losses).sum::<f64>() / count;
        self.epoch += 1;
        report
    }

    /// How well the truncated-BPTT meta-gradient (the paper's, without second derivatives)
    /// agrees with the true gradient of the whole-trajectory meta-loss on `batch`, over the
    /// output layer's weights: returns both, the true one by central differences of
    /// the whole-trajectory meta-loss with step `eps`. The BPTT gradient is the sum
    /// over the trajectory's unrolls, which is what one epoch of training follows, and it is
    /// rescaled to the trajectory meta-loss's per-step mean. Weights are left unchanged.
    pub fn meta_gradient_agreement<P: ProblemSet>(&self, batch: &P, eps: f32) -> GradientAgreement {
        let cfg = &self.config;
        let range = cfg.shape().output_layer();
        let mut ws = Workspace::new(cfg, batch);
        start_trajectories(batch, &mut ws);
        let mut bptt = vec![0.0f64; range.len()];
        for u in 0..cfg.steps / cfg.unroll {
            run_unroll(cfg, &self.weights, u, false, false, batch, &mut ws);
            for (b, g) in bptt.iter_mut().zip(&ws.total.as_slice()[range.clone()]) {
                *b += *g as f64 / cfg.steps as f64;
            }
        }
        let true_gradient: Vec<f64> = range
            .into_par_iter()
            .map(|k| {
                (self.meta_loss_moving(batch, k, eps) - self.meta_loss_moving(batch, k, -eps))
                    / (2.0 * eps as f64)
            })
            .collect();
        GradientAgreement {
            bptt,
            true_gradient,
        }
    }

    /// One epoch of [`MetaGradient::Es`]: the estimate from [`MetaTrainer::es_estimate`],
    /// then one Adam step on φ (none if a perturbed run diverged).
    fn es_epoch<P: ProblemSet>(
        &mut self,
        batch: &P,
        pairs: usize,
        sigma: f32,
        scope: EsScope,
    ) -> EpochReport {
        let (grad, report) = self.es_estimate(batch, pairs, sigma, scope);
        match grad {
            Some(g) => self.adam_step(&g),
            None => self.skipped_unrolls += report.skipped_unrolls,
        }
        self.epoch += 1;
        report
    }

    /// The evolution-strategies estimate of dL/dφ on `batch` (see [`MetaGradient::Es`]):
    /// every perturbed optimizer runs the whole trajectory on every problem, the runs in
    /// parallel. `None` if a run diverged.
    fn es_estimate<P: ProblemSet>(
        &self,
        batch: &P,
        pairs: usize,
        sigma: f32,
        scope: EsScope,
    ) -> (Option<LstmWeights>, EpochReport) {
        let shape = self.config.shape();
        let span = match scope {
            EsScope::Output => shape.output_layer(),
            EsScope::All => 0..shape.num_params(),
        };
        let noise: Vec<Vec<f32>> = (0..pairs)
            .map(|k| {
                let mut rng = Rng::new(
                    self.config.seed,
                    streams::es_perturbation(self.epoch, k as u64),
                );
                span.clone().map(|_| rng.normal() as f32).collect()
            })
            .collect();
        let runs: Vec<(f64, Curves)> = (0..2 * pairs)
            .into_par_iter()
            .map(|r| {
                let sign = if r % 2 == 0 { sigma } else { -sigma };
                let curves = self.run_with(batch, self.config.steps, |weights| {
                    for (w, e) in weights[span.clone()].iter_mut().zip(&noise[r / 2]) {
                        *w += sign * e;
                    }
                });
                (self.trajectory_meta_loss(&curves), curves)
            })
            .collect();
        let runs_count = (2 * pairs) as f64;
        let mut report = EpochReport {
            final_loss: runs.iter().map(|(_, c)| c.final_mean()).sum::<f64>() / runs_count,
            mean_loss: runs
                .iter()
                .map(|(_, c)| {
                    c.losses
                        .slice(ndarray::s![.., 1..])
                        .mean()
                        .unwrap_or(f64::NAN)
                })
                .sum::<f64>()
                / runs_count,
            skipped_unrolls: 0,
        };
        if runs.iter().any(|(j, _)| !j.is_finite()) {
            report.skipped_unrolls = 1;
            report.mean_loss = f64::NAN;
            return (None, report);
        }
        let mut grad = LstmWeights::zeros(shape);
        for (k, eps) in noise.iter().enumerate() {
            let c = (runs[2 * k].0 - runs[2 * k + 1].0) / (2.0 * sigma as f64 * pairs as f64);
            for (g, e) in grad.as_mut_slice()[span.clone()].iter_mut().zip(eps) {
                *g += (c * *e as f64) as f32;
            }
        }
        (Some(grad), report)
    }

    /// The meta-loss of whole trajectories, per problem and step: the mean over problems of
    /// (1/T') Σ_{t=from..T} of [`MetaLoss`]'s term of f(θ_t), over the T' steps from
    /// `loss_from`; infinite if any run diverged.
    fn trajectory_meta_loss(&self, curves: &Curves) -> f64 {
        let losses = curves
            .losses
            .slice(ndarray::s![.., self.config.loss_from..]);
        if losses.iter().any(|f| !f.is_finite()) {
            return f64::INFINITY;
        }
        losses
            .iter()
            .map(|&f| self.config.meta_loss.term_and_weight(f).0)
            .sum::<f64>()
            / losses.len() as f64
    }

    /// One Adam step on φ with the meta-gradient `grad`, after optional clipping.
    fn adam_step(&mut self, grad: &LstmWeights) {
        let cfg = &self.config;
        let g = grad.as_slice();
        let norm = g
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        let clip = match cfg.clip {
            Some(c) if norm > c => c / norm,
            _ => 1.0,
        };
        self.adam_t += 1;
        let t = self.adam_t as i32;
        let lr = match cfg.imitating_at(self.epoch) {
            Some(im) => im.meta_lr,
            None => cfg.meta_lr * cfg.meta_lr_decay.powf(self.epoch as f64),
        };
        let bc1 = 1.0 - META_BETA1.powi(t);
        let bc2 = 1.0 - META_BETA2.powi(t);
        for ((w, (m, v)), &gi) in self
            .weights
            .as_mut_slice()
            .iter_mut()
            .zip(self.adam_m.iter_mut().zip(self.adam_v.iter_mut()))
            .zip(g)
        {
            let gi = gi as f64 * clip;
            let m64 = META_BETA1 * *m as f64 + (1.0 - META_BETA1) * gi;
            let v64 = META_BETA2 * *v as f64 + (1.0 - META_BETA2) * gi * gi;
            *m = m64 as f32;
            *v = v64 as f32;
            *w -= (lr * (m64 / bc1) / ((v64 / bc2).sqrt() + META_EPSILON)) as f32;
        }
    }

    /// The mean final loss of the current weights on `validation`, over the training horizon.
    pub fn validate<P: ProblemSet>(&self, validation: &P) -> f64 {
        self.run_with(validation, self.config.validation_steps, |_| ())
            .final_mean()
    }

    /// The curves of the current weights, changed by `perturb`, run for `steps` on `set`.
    fn run_with<P: ProblemSet>(
        &self,
        set: &P,
        steps: usize,
        perturb: impl FnOnce(&mut [f32]),
    ) -> Curves {
        let mut optimizer = self.current(f64::NAN);
        perturb(optimizer.weights.as_mut_slice());
        let choice = OptimizerChoice::Learned {
            label: "lstm".into(),
            optimizer: Arc::new(optimizer),
        };
        evaluation::run(set, &choice, steps)
    }

    /// The whole-trajectory meta-loss on `batch` with weight `k` moved by `delta`.
    fn meta_loss_moving<P: ProblemSet>(&self, batch: &P, k: usize, delta: f32) -> f64 {
        self.trajectory_meta_loss(&self.run_with(batch, self.config.steps, |w| w[k] += delta))
    }

    /// Writes everything needed to continue this run: current and best weights, the Adam
    /// state, the epoch (which fixes the random streams of every later epoch) and the settings.
    pub fn save_state(&self, path: &Path, source: &str) -> Result<()> {
        write_npz(path, |a| {
            self.current(f64::NAN).add_to(a, "");
            if let Some(best) = &self.best {
                best.add_to(a, "best_");
            }
            a.add("adam_m", ndarray::Array1::from(self.adam_m.clone()));
            a.add("adam_v", ndarray::Array1::from(self.adam_v.clone()));
            a.scalar_i64("adam_t", self.adam_t as i64);
            a.scalar_i64("skipped_unrolls", self.skipped_unrolls as i64);
            a.add(
                "settings",
                ndarray::Array1::from(self.config.fingerprint(source).into_bytes()),
            );
            Ok(())
        })
    }

    /// Continues a run from [`MetaTrainer::save_state`]'s file; its settings must match.
    pub fn resume(config: MetaTrainConfig, path: &Path, source: &str) -> Result<Self> {
        let mut t = MetaTrainer::new(config)?;
        let mut npz = Npz::open(path)?;
        let saved = npz.text("settings")?;
        let wanted = t.config.fingerprint(source);
        if saved != wanted {
            let differing: Vec<&str> = wanted
                .split(' ')
                .filter(|kv| !saved.split(' ').any(|s| s == *kv))
                .map(|kv| kv.split('=').next().unwrap_or(kv))
                .collect();
            return Err(Error::bad_file(
                path,
                format!(
                    "resume state was made with other settings ({} differ); delete it or pass --restart",
                    if differing.is_empty() { "format".to_string() } else { differing.join(", ") }
                ),
            ));
        }
        let current = LearnedOptimizer::read_from(&mut npz)?;
        if current.weights.shape() != t.config.shape() {
            return Err(Error::bad_file(
                path,
                "resume state has another architecture; pass --restart",
            ));
        }
        t.weights = current.weights.clone();
        t.epoch = current.epoch;
        if npz.has("best_lstm1_w") {
            t.best = Some(LearnedOptimizer::read_prefixed(
                &mut npz, "best_", &current,
            )?);
        }
        let n = t.weights.as_slice().len();
        for (name, dst) in [("adam_m", &mut t.adam_m), ("adam_v", &mut t.adam_v)] {
            let a = npz.array::<f32>(name)?;
            if a.len() != n {
                return Err(Error::bad_file(
                    path,
                    format!("'{name}' has {} values, expected {n}", a.len()),
                ));
            }
            *dst = a.iter().copied().collect();
        }
        t.adam_t = npz.scalar("adam_t")? as u64;
        t.skipped_unrolls = npz.scalar("skipped_unrolls")? as u64;
        Ok(t)
    }
}

/// Puts every problem of `batch` at θ0 with fresh LSTM state, and computes ∇_0.
fn start_trajectories<P: ProblemSet>(batch: &P, ws: &mut Workspace<P::Scratch>) {
    let dim = batch.dim();
    ws.shards.par_iter_mut().for_each(|s| {
        s.tape.reset_state();
        for rule in [&mut s.base, &mut s.teacher].into_iter().flatten() {
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

/// The sums over problems and steps of one unroll's terms.
#[derive(Clone, Copy, Debug, Default)]
struct UnrollSums {
    /// Σ f(θ_t), for progress reports.
    loss: f64,
    /// Σ of the meta-loss terms (equal to `loss` under [`MetaLoss::Sum`]).
    meta_loss: f64,
}

/// Unroll `u` of the trajectories: `unroll` steps forward from the carried state, then BPTT.
/// BPTT of one shard's unroll with the second-order terms ([`MetaGradient::SecondOrder`]),
/// step by step from the last: with λ_t = dL/dθ_t (per problem, over the batch size B),
/// λ_T = w_T ∇_T / B; the output of step t gets output_scale · λ_{t+1}; the LSTM's backward
/// through step t gives ḡ_t = dL/d∇_t; and λ_t = λ_{t+1} + w_t ∇_t / B + H_t ḡ_t. The
/// paper's BPTT is this without H_t ḡ_t. ∇_0 comes from before the unroll, where truncation
/// stops the gradient.
fn second_order_backward<P: ProblemSet>(
    weights: &LstmWeights,
    pre: &Preprocessing,
    scale: f32,
    u: usize,
    batch: &P,
    s: &mut Shard<P::Scratch>,
) {
    let (dim, rows) = (batch.dim(), s.theta.len());
    let local = s.problems.len();
    let t_len = s.thetas.len() / rows;
    let inv_count = 1.0 / batch.count() as f32;
    // Adds w_t ∇_t / B (t ≥ 1) to the adjoint.
    let add_loss_term = |adjoint: &mut [f32], grads: &[f32], step_weights: &[f32], t: usize| {
        for k in 0..local {
            let w = step_weights[(t - 1) * local + k] * inv_count;
            let span = k * dim..(k + 1) * dim;
            for (a, g) in adjoint[span.clone()]
                .iter_mut()
                .zip(&grads[t * rows..(t + 1) * rows][span])
            {
                *a += w * g;
            }
        }
    };
    s.adjoint.fill(0.0);
    add_loss_term(&mut s.adjoint, &s.grads, &s.step_weights, t_len);
    s.tape.backward_begin();
    for t in (0..t_len).rev() {
        let dy = &mut s.d_outputs[t * rows..(t + 1) * rows];
        for (d, a) in dy.iter_mut().zip(&s.adjoint) {
            *d = scale * a;
        }
        s.tape.backward_step(
            weights,
            t,
            &s.d_outputs[t * rows..(t + 1) * rows],
            &mut s.features,
        );
        if t == 0 {
            break;
        }
        let g_t = &s.grads[t * rows..(t + 1) * rows];
        pre.input_gradient(g_t, &s.features, &mut s.d_grad);
        for (k, p) in s.problems.clone().enumerate() {
            let span = k * dim..(k + 1) * dim;
            batch.hessian_vector(
                p,
                u * t_len + t,
                &s.thetas[t * rows..(t + 1) * rows][span.clone()],
                &s.d_grad[span.clone()],
                &mut s.hessian_product[span],
                &mut s.scratch,
            );
        }
        for (a, h) in s.adjoint.iter_mut().zip(&s.hessian_product) {
            *a += h;
        }
        add_loss_term(&mut s.adjoint, &s.grads, &s.step_weights, t);
    }
    s.tape.backward_finish(&mut s.grad);
}

/// Relative imitation ([`ImitationLoss::Relative`]): turns each error r_i (in `errors`, one
/// problem of `dim` coordinates after another) into r_i / (v_i + δ²), the derivative of the
/// weighted loss up to the factor 2, and returns Σ_i r_i² / (v_i + δ²). The teacher's update
/// is the LSTM's, output_scale · m_i, less the error.
fn weigh_relative(
    dim: usize,
    output_scale: f32,
    outputs: &[f32],
    update_ms: &mut [f32],
    errors: &mut [f32],
) -> f64 {
    let decay = ImitationLoss::DECAY;
    let mut weighted = 0.0f64;
    for ((out, ms), err) in outputs
        .chunks_exact(dim)
        .zip(update_ms.chunks_exact_mut(dim))
        .zip(errors.chunks_exact_mut(dim))
    {
        let mut mean = 0.0f64;
        for ((&m, v), &r) in out.iter().zip(ms.iter_mut()).zip(err.iter()) {
            let taught = output_scale * m - r;
            *v = decay * *v + (1.0 - decay) * taught * taught;
            mean += *v as f64;
        }
        let floor =
            ((ImitationLoss::FLOOR as f64 * mean / dim as f64) as f32).max(f32::MIN_POSITIVE);
        for (v, r) in ms.iter().zip(err.iter_mut()) {
            let weight = 1.0 / (v + floor);
            weighted += (*r * *r * weight) as f64;
            *r *= weight;
        }
    }
    weighted
}

/// Leaves dL/dφ of this unroll's meta-loss in `ws.total` and returns its sums over problems
/// and steps (the meta-loss times the batch size).
fn run_unroll<P: ProblemSet>(
    cfg: &MetaTrainConfig,
    weights: &LstmWeights,
    u: usize,
    last_unroll: bool,
    imitating: bool,
    batch: &P,
    ws: &mut Workspace<P::Scratch>,
) -> UnrollSums {
    let (dim, t_len) = (batch.dim(), cfg.unroll);
    let count = batch.count();
    assert_eq!(count, cfg.batch, "batch size differs from the workspace's");
    let (scale, pre) = (cfg.output_scale, cfg.preprocessing);
    let rollout = cfg.imitation.filter(|_| imitating).map(|im| im.rollout);
    let second_order = !imitating && cfg.meta_gradient == MetaGradient::SecondOrder;
    let sums: Vec<UnrollSums> = ws
        .shards
        .par_iter_mut()
        .map(|s| {
            let rows = s.theta.len();
            let local = s.problems.len();
            s.tape.start_unroll();
            let mut sums = UnrollSums::default();
            // dL/d(output) of each step of an imitation unroll.
            let imitation_scale = 2.0 * scale / (count * dim) as f32;
            for t in 0..t_len {
                if imitating {
                    s.anchor.copy_from_slice(&s.theta);
                }
                if second_order {
                    s.thetas[t * rows..(t + 1) * rows].copy_from_slice(&s.theta);
                }
                s.tape.step(
                    weights,
                    &pre,
                    &s.grads[t * rows..(t + 1) * rows],
                    &mut s.features,
                    &mut s.outputs,
                    &mut s.theta,
                    scale,
                );
                if let Some(base) = &mut s.base {
                    base.step(&mut s.theta, &s.grads[t * rows..(t + 1) * rows]);
                }
                if imitating {
                    let teacher = s.teacher.as_mut().expect("imitation without a teacher");
                    teacher.step(&mut s.anchor, &s.grads[t * rows..(t + 1) * rows]);
                    let d = &mut s.d_outputs[t * rows..(t + 1) * rows];
                    for ((d, own), taught) in d.iter_mut().zip(&s.theta).zip(&s.anchor) {
                        *d = own - taught;
                    }
                    let squares = if s.teacher_update_ms.is_empty() {
                        d.iter().map(|&r| (r * r) as f64).sum()
                    } else {
                        weigh_relative(dim, scale, &s.outputs, &mut s.teacher_update_ms, d)
                    };
                    for d in d.iter_mut() {
                        *d *= imitation_scale;
                    }
                    sums.meta_loss += squares / dim as f64;
                    if rollout == Some(Rollout::Teacher) {
                        s.theta.copy_from_slice(&s.anchor);
                    }
                }
                let step = u * t_len + t + 1;
                let next = &mut s.grads[(t + 1) * rows..(t + 2) * rows];
                let mut step_sum = 0.0;
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
                        let (term, weight) = if step >= cfg.loss_from {
                            cfg.meta_loss.term_and_weight(f)
                        } else {
                            (0.0, 0.0)
                        };
                        s.step_weights[t * local + k] = weight as f32;
                        sums.meta_loss += term;
                    }
                    step_sum += f;
                }
                sums.loss += step_sum;
                if last_unroll && t + 1 == t_len {
                    s.final_losses = step_sum;
                }
            }
            s.grad.fill_zero();
            if second_order {
                second_order_backward(weights, &pre, scale, u, batch, s);
                s.grads.copy_within(t_len * rows..(t_len + 1) * rows, 0);
                return sums;
            }
            // dL/d(output_s) = output_scale · Σ_{t>s} w_t ∇_t / B: a reverse cumulative sum.
            let c = scale / count as f32;
            for t in (0..t_len).rev().filter(|_| !imitating) {
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
            s.tape.backward(weights, &s.d_outputs, &mut s.grad);
            // The last gradient is the first input of the next unroll.
            s.grads.copy_within(t_len * rows..(t_len + 1) * rows, 0);
            sums
        })
        .collect();
    // Sum shard gradients in shard order, so the result is the same for any thread count.
    ws.total.fill_zero();
    for s in &ws.shards {
        ws.total.add_assign(&s.grad);
    }
    sums.iter().fold(UnrollSums::default(), |a, b| UnrollSums {
        loss: a.loss + b.loss,
        meta_loss: a.meta_loss + b.meta_loss,
    })
}

/// Progress of a run, handed to the observer after every epoch.
#[derive(Clone, Debug)]
pub struct Progress {
    pub epoch: u64,
    pub epochs: u64,
    pub report: EpochReport,
    /// Set on the epochs that ran validation.
    pub validation_loss: Option<f64>,
    pub best_validation_loss: Option<f64>,
    pub best_epoch: Option<u64>,
    pub skipped_unrolls: u64,
    pub seconds: f64,
    /// Optimizee steps per second over this session (problems × steps per epoch / time).
    pub optimizee_steps_per_second: f64,
    pub resumed_from: Option<u64>,
}

/// The resume-state file kept beside a checkpoint.
pub fn resume_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.resume.npz"))
}

/// Runs `trainer` to `config.epochs`, validating every `eval_every` epochs and keeping the best
/// weights. The resume state is saved at every validation, so a killed run loses at most
/// `eval_every` epochs; the checkpoint at `output` is written once training is complete.
pub fn train<Src: TrainingSource, V: ProblemSet>(
    mut trainer: MetaTrainer,
    source: &Src,
    validation: Option<&V>,
    output: &Path,
    mut observe: impl FnMut(&Progress),
) -> Result<LearnedOptimizer> {
    let cfg = trainer.config.clone();
    let state_path = resume_path(output);
    let describe = source.describe();
    let resumed_from = (trainer.epoch > 0).then_some(trainer.epoch);
    let start = Instant::now();
    let mut optimizee_steps = 0.0;
    let mut workspace: Option<Workspace<<Src::Set as ProblemSet>::Scratch>> = None;
    while trainer.epoch < cfg.epochs {
        let batch = source.draw(trainer.epoch, cfg.batch);
        optimizee_steps += cfg.optimizee_steps_at(trainer.epoch) as f64;
        let ws = workspace.get_or_insert_with(|| Workspace::new(&cfg, &batch));
        let report = trainer.train_epoch(&batch, ws);
        let epoch = trainer.epoch;
        let due = epoch % cfg.eval_every == 0 || epoch == cfg.epochs;
        let mut validation_loss = None;
        if due {
            let loss = match validation {
                Some(v) => trainer.validate(v),
                None => report.final_loss,
            };
            validation_loss = Some(loss);
            let better = match &trainer.best {
                None => true,
                Some(b) => loss < b.validation_loss || !b.validation_loss.is_finite(),
            };
            if better && (loss.is_finite() || trainer.best.is_none()) {
                trainer.best = Some(trainer.current(loss));
            }
            trainer.save_state(&state_path, &describe)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        observe(&Progress {
            epoch,
            epochs: cfg.epochs,
            report,
            validation_loss,
            best_validation_loss: trainer.best.as_ref().map(|b| b.validation_loss),
            best_epoch: trainer.best.as_ref().map(|b| b.epoch),
            skipped_unrolls: trainer.skipped_unrolls,
            seconds,
            optimizee_steps_per_second: optimizee_steps / seconds.max(1e-9),
            resumed_from,
        });
    }
    let best = match trainer.best.clone() {
        Some(b) => b,
        None => trainer.current(f64::NAN),
    };
    best.save(output)?;
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::mlp::{Activation, MlpArchitecture, MlpSet};
    use crate::problems::{QuadraticFamily, QuadraticSet, QuadraticSource, ValueDistribution};

    fn tiny_config(preprocessing: Preprocessing) -> MetaTrainConfig {
        MetaTrainConfig {
            hidden: 3,
            preprocessing,
            output_scale: 0.5,
            base: None,
            forget_bias: 1.0,
            batch: 3,
            steps: 6,
            unroll: 3,
            meta_lr: 0.01,
            meta_lr_decay: 1.0,
            clip: None,
            curriculum: None,
            meta_loss: MetaLoss::Sum,
            loss_from: 1,
            imitation: None,
            meta_gradient: MetaGradient::Bptt,
            validation_steps: 6,
            epochs: 4,
            eval_every: 2,
            seed: 11,
        }
    }

    fn tiny_batch() -> QuadraticSet {
        let family = QuadraticFamily {
            dims: 2,
            distribution: ValueDistribution::Normal,
            theta0_std: 0.5,
        };
        family.sample(3, 3, |i| i)
    }

    /// The gradient of the whole truncated meta-loss (every unroll of a trajectory, each from
    /// the state the previous one left) for every LSTM weight, against central differences of
    /// each unroll's loss with its starting state held fixed, which is what truncation means.
    fn check_gradient(
        preprocessing: Preprocessing,
        meta_loss: MetaLoss,
        imitating: Option<(Rollout, ImitationLoss)>,
    ) {
        check_gradient_on(&tiny_batch(), preprocessing, meta_loss, imitating, |_| {});
    }

    /// As [`check_gradient`], on `batch`, with the rest of the settings changed by `configure`.
    fn check_gradient_on<P: ProblemSet>(
        batch: &P,
        preprocessing: Preprocessing,
        meta_loss: MetaLoss,
        imitating: Option<(Rollout, ImitationLoss)>,
        configure: impl FnOnce(&mut MetaTrainConfig),
    ) where
        P::Scratch: Clone,
    {
        let mut cfg = tiny_config(preprocessing);
        cfg.meta_loss = meta_loss;
        configure(&mut cfg);
        cfg.imitation = imitating.map(|(rollout, loss)| Imitation {
            teacher: Baseline::Nag,
            lr: 0.05,
            epochs: 1,
            meta_lr: 0.01,
            rollout,
            loss,
        });
        let imitating = imitating.is_some();
        let weights = LstmWeights::init(cfg.shape(), 5, 1.0);
        let mut ws = Workspace::new(&cfg, batch);
        start_trajectories(batch, &mut ws);
        let n = weights.as_slice().len();
        let mut analytic = vec![0.0f64; n];
        let mut numeric = vec![0.0f64; n];
        // The MLP's f32 losses need a wider step, and a wider floor under small weights'
        // errors, for their differences to rise above rounding.
        let (eps, floor) = if batch.dim() > 10 {
            (2e-2f32, 3e-2)
        } else {
            (1e-2, 1e-2)
        };
        for u in 0..cfg.steps / cfg.unroll {
            let start = ws.clone();
            run_unroll(
                &cfg,
                &weights,
                u,
                u + 1 == cfg.steps / cfg.unroll,
                imitating,
                batch,
                &mut ws,
            );
            let mean = |loss_sum: f64| loss_sum / cfg.batch as f64;
            for (a, g) in analytic.iter_mut().zip(ws.total.as_slice()) {
                *a += *g as f64;
            }
            for k in 0..n {
                let loss_at = |delta: f32| {
                    let mut w = weights.clone();
                    w.as_mut_slice()[k] += delta;
                    let mut probe = start.clone();
                    mean(run_unroll(&cfg, &w, u, false, imitating, batch, &mut probe).meta_loss)
                };
                numeric[k] += (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
            }
        }
        let scale = analytic.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(
            scale > 1e-3,
            "gradient is vanishingly small ({scale}); the check would be empty"
        );
        let mut worst = 0.0f64;
        for k in 0..n {
            let err = (analytic[k] - numeric[k]).abs()
                / (analytic[k].abs().max(numeric[k].abs()) + floor * scale);
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "weight {k}: analytic {} vs finite difference {} (largest {scale})",
                analytic[k],
                numeric[k]
            );
        }
        eprintln!(
            "gradient check ({preprocessing}, {meta_loss} meta-loss, imitation {:?}): {n} weights, worst relative error {worst:.2e}",
            cfg.imitation.map(|im| (im.rollout, im.loss))
        );
    }

    #[test]
    fn bptt_gradient_matches_finite_differences_scaled_input() {
        check_gradient(Preprocessing::Scale(0.1), MetaLoss::Sum, None);
    }

    #[test]
    fn bptt_gradient_matches_finite_differences_log_sign_input() {
        check_gradient(Preprocessing::LogSign { p: 10.0 }, MetaLoss::Sum, None);
    }

    #[test]
    fn bptt_gradient_matches_finite_differences_log_meta_loss() {
        check_gradient(Preprocessing::LogSign { p: 10.0 }, MetaLoss::Log, None);
    }

    #[test]
    fn bptt_gradient_matches_finite_differences_imitating_nag() {
        check_gradient(
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            Some((Rollout::Teacher, ImitationLoss::Squared)),
        );
    }

    #[test]
    fn bptt_gradient_matches_finite_differences_imitating_relative() {
        check_gradient(
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            Some((Rollout::Teacher, ImitationLoss::Relative)),
        );
    }

    /// On-policy, the LSTM's own steps choose where the next gradients are taken, which BPTT
    /// (the paper's assumption) does not differentiate; on a problem whose gradients do not
    /// depend on θ the two must agree.
    #[test]
    fn bptt_gradient_matches_finite_differences_imitating_on_policy() {
        let linear = Linear {
            slope: vec![0.3, -0.7],
            count: 3,
        };
        check_gradient_on(
            &linear,
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            Some((Rollout::Student, ImitationLoss::Squared)),
            |_| {},
        );
    }

    /// With the Hessian terms the gradient is exact for the truncated meta-loss, which the
    /// finite differences measure, on problems whose gradients do depend on θ: the quadratics,
    /// and a sigmoid MLP (a ReLU MLP's kinks make the differences of whole trajectories
    /// unreliable; its Hessian-vector product has its own check in `problems::mlp`).
    #[test]
    fn second_order_gradient_matches_finite_differences() {
        for (pre, loss) in [
            (Preprocessing::Scale(0.1), MetaLoss::Sum),
            (Preprocessing::LogSign { p: 10.0 }, MetaLoss::Log),
        ] {
            check_gradient_on(&tiny_batch(), pre, loss, None, second_order);
        }
        check_gradient_on(
            &tiny_mlp(Activation::Sigmoid),
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            None,
            second_order,
        );
    }

    fn second_order(cfg: &mut MetaTrainConfig) {
        cfg.meta_gradient = MetaGradient::SecondOrder;
    }

    /// Eq. (3) with w_t = 0 before step 5 of 6: the first unroll (steps 1–3) adds nothing to
    /// the meta-loss, the second only its last two steps; with and without the Hessian terms.
    #[test]
    fn gradient_matches_finite_differences_of_a_late_meta_loss() {
        check_gradient_on(
            &tiny_batch(),
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Log,
            None,
            |cfg| cfg.loss_from = 5,
        );
        check_gradient_on(
            &tiny_batch(),
            Preprocessing::Scale(0.1),
            MetaLoss::Sum,
            None,
            |cfg| {
                cfg.loss_from = 5;
                second_order(cfg);
            },
        );
    }

    /// Truncated BPTT with a base rule's steps added to the LSTM's, on problems whose gradients
    /// do not depend on θ (where BPTT's assumption holds, so the differences must agree).
    #[test]
    fn bptt_gradient_matches_finite_differences_with_a_base_rule() {
        let linear = Linear {
            slope: vec![0.3, -0.7],
            count: 3,
        };
        for base in [
            NAG_BASE,
            BaseStep {
                kind: Baseline::Adam,
                lr: 0.05,
            },
        ] {
            check_gradient_on(
                &linear,
                Preprocessing::LogSign { p: 10.0 },
                MetaLoss::Sum,
                None,
                |cfg| cfg.base = Some(base),
            );
        }
    }

    /// A fresh run with a base rule starts as exactly that rule: the output layer is zero.
    #[test]
    fn a_fresh_run_with_a_base_rule_starts_as_the_rule() {
        let mut cfg = tiny_config(Preprocessing::LogSign { p: 10.0 });
        cfg.base = Some(NAG_BASE);
        let set = tiny_batch();
        let learned = MetaTrainer::new(cfg).unwrap().run_with(&set, 6, |_| ());
        let nag = OptimizerChoice::Baseline {
            kind: NAG_BASE.kind,
            lr: NAG_BASE.lr,
        };
        assert_eq!(learned.losses, evaluation::run(&set, &nag, 6).losses);
    }

    /// Three runs of a 6-4-3 MLP on a toy data set, with weights large enough to matter.
    fn tiny_mlp(activation: Activation) -> MlpSet {
        let data = crate::problems::mlp::tests::toy_data();
        let arch = MlpArchitecture {
            inputs: 6,
            hidden: vec![4],
            classes: 3,
            activation,
        };
        MlpSet::sample(arch, 5, data, "toy".into(), 3, 7).unwrap()
    }

    /// The evolution-strategies estimate, with many pairs, against central differences of the
    /// whole-trajectory meta-loss (which, unlike BPTT's, includes second-order effects).
    #[test]
    fn es_estimate_matches_finite_differences_of_the_trajectory_meta_loss() {
        for (meta_loss, loss_from) in [(MetaLoss::Sum, 1), (MetaLoss::Log, 1), (MetaLoss::Log, 4)] {
            let mut cfg = tiny_config(Preprocessing::Scale(0.1));
            cfg.meta_loss = meta_loss;
            cfg.loss_from = loss_from;
            let batch = tiny_batch();
            let mut t = MetaTrainer::new(cfg.clone()).unwrap();
            // A larger output layer than the initial one, so that the updates matter.
            let range = cfg.shape().output_layer();
            for (k, w) in t.weights.as_mut_slice()[range.clone()]
                .iter_mut()
                .enumerate()
            {
                *w = 0.5 - 0.3 * k as f32;
            }
            let (grad, _) = t.es_estimate(&batch, 4000, 1e-2, EsScope::Output);
            let grad = grad.expect("no run diverges");
            let meta_loss_at = |k: usize, delta: f32| t.meta_loss_moving(&batch, k, delta);
            let eps = 1e-2f32;
            let numeric: Vec<f64> = range
                .clone()
                .map(|k| (meta_loss_at(k, eps) - meta_loss_at(k, -eps)) / (2.0 * eps as f64))
                .collect();
            let analytic: Vec<f64> = grad.as_slice()[range.clone()]
                .iter()
                .map(|&g| g as f64)
                .collect();
            let norm = numeric.iter().map(|x| x * x).sum::<f64>().sqrt();
            let err = numeric
                .iter()
                .zip(&analytic)
                .map(|(n, a)| (n - a).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                norm > 1e-3,
                "{meta_loss}: the gradient is vanishingly small"
            );
            assert!(
                err < 0.1 * norm,
                "{meta_loss}: ES {analytic:?} vs finite differences {numeric:?}"
            );
            // Only the output layer is perturbed.
            assert!(grad.as_slice()[..range.start].iter().all(|&g| g == 0.0));
        }
    }

    /// f_t(θ) = 5 + Σ_i slope_i (1 + 0.3 t) θ_i: its gradient changes with the step t but does
    /// not depend on θ.
    struct Linear {
        slope: Vec<f32>,
        count: usize,
    }

    impl ProblemSet for Linear {
        type Scratch = ();
        fn count(&self) -> usize {
            self.count
        }
        fn dim(&self) -> usize {
            self.slope.len()
        }
        fn scratch(&self) {}
        fn initial_point(&self, problem: usize, theta: &mut [f32]) {
            theta.fill(problem as f32 * 0.1);
        }
        fn loss_and_gradient(
            &self,
            _problem: usize,
            step: usize,
            theta: &[f32],
            grad: &mut [f32],
            _scratch: &mut (),
        ) -> f64 {
            let growth = 1.0 + 0.3 * step as f32;
            for (g, c) in grad.iter_mut().zip(&self.slope) {
                *g = c * growth;
            }
            5.0 + theta
                .iter()
                .zip(grad.iter())
                .map(|(x, g)| (x * g) as f64)
                .sum::<f64>()
        }
        fn hessian_vector(
            &self,
            _: usize,
            _: usize,
            _: &[f32],
            _: &[f32],
            hv: &mut [f32],
            _: &mut (),
        ) {
            hv.fill(0.0);
        }
    }

    /// On a problem whose gradient does not depend on θ the paper's assumption is exact, so
    /// the BPTT side and the finite-difference side of the agreement check must coincide.
    #[test]
    fn meta_gradient_agreement_is_exact_where_gradients_do_not_depend_on_theta() {
        for base in [None, Some(NAG_BASE)] {
            agreement_is_exact_on_a_linear_problem(base);
        }
    }

    const NAG_BASE: BaseStep = BaseStep {
        kind: Baseline::Nag,
        lr: 0.1,
    };

    /// With a base rule too: its steps do not depend on φ when the gradients do not depend on
    /// θ, so BPTT stays exact.
    fn agreement_is_exact_on_a_linear_problem(base: Option<BaseStep>) {
        let mut cfg = tiny_config(Preprocessing::Scale(0.1));
        cfg.unroll = cfg.steps;
        cfg.base = base;
        let t = {
            let mut t = MetaTrainer::new(cfg.clone()).unwrap();
            let range = cfg.shape().output_layer();
            for (k, w) in t.weights.as_mut_slice()[range].iter_mut().enumerate() {
                *w = 0.4 - 0.25 * k as f32;
            }
            t
        };
        let linear = Linear {
            slope: vec![0.3, -0.7],
            count: 3,
        };
        let a = t.meta_gradient_agreement(&linear, 1e-2);
        assert!(
            a.cosine() > 0.999,
            "cosine {} for {a:?} (base {base:?})",
            a.cosine()
        );
        assert!(
            (a.norm_ratio() - 1.0).abs() < 1e-2,
            "ratio {}",
            a.norm_ratio()
        );
    }

    #[test]
    fn training_reduces_the_meta_loss_and_is_deterministic() {
        let mut cfg = tiny_config(Preprocessing::Scale(0.1));
        cfg.epochs = 30;
        cfg.batch = 8;
        cfg.meta_lr = 0.01;
        let family = QuadraticFamily {
            dims: 3,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        };
        let source = QuadraticSource::Family { family, seed: 1 };
        let run = |cfg: &MetaTrainConfig| {
            let mut t = MetaTrainer::new(cfg.clone()).unwrap();
            let first = source.draw(0, cfg.batch);
            let mut ws = Workspace::new(cfg, &first);
            let mut losses = Vec::new();
            for e in 0..cfg.epochs {
                losses.push(t.train_epoch(&source.draw(e, cfg.batch), &mut ws).mean_loss);
            }
            (t.weights, losses)
        };
        let (w1, l1) = run(&cfg);
        let (w2, _) = run(&cfg);
        assert_eq!(w1, w2);
        let early: f64 = l1[..5].iter().sum();
        let late: f64 = l1[25..].iter().sum();
        assert!(late < early, "meta-loss did not fall: {l1:?}");
    }

    #[test]
    fn resumed_run_equals_uninterrupted_run() {
        // The paper's training; imitation that hands over to the meta-loss between the two
        // halves; and evolution strategies.
        let plain = MetaTrainConfig {
            epochs: 6,
            ..tiny_config(Preprocessing::Scale(0.1))
        };
        let imitating = MetaTrainConfig {
            imitation: Some(Imitation {
                teacher: Baseline::Nag,
                lr: 0.05,
                epochs: 3,
                meta_lr: 0.01,
                rollout: Rollout::Student,
                loss: ImitationLoss::Squared,
            }),
            ..plain.clone()
        };
        let evolving = MetaTrainConfig {
            meta_gradient: MetaGradient::Es {
                pairs: 2,
                sigma: 0.05,
                scope: EsScope::All,
            },
            ..plain.clone()
        };
        for cfg in [imitating, evolving, plain] {
            check_resume(cfg);
        }
    }

    /// Trains `cfg` for its epochs straight, and in two halves with a resume between them.
    fn check_resume(cfg: MetaTrainConfig) {
        let dir = tempfile::tempdir().unwrap();
        let family = QuadraticFamily {
            dims: 2,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        };
        let source = QuadraticSource::Family { family, seed: 4 };
        let validation = family.sample(99, 4, |i| i);
        let straight = train(
            MetaTrainer::new(cfg.clone()).unwrap(),
            &source,
            Some(&validation),
            &dir.path().join("a.npz"),
            |_| {},
        )
        .unwrap();

        let out = dir.path().join("b.npz");
        let half = MetaTrainConfig {
            epochs: 4,
            ..cfg.clone()
        };
        train(
            MetaTrainer::new(half).unwrap(),
            &source,
            Some(&validation),
            &out,
            |_| {},
        )
        .unwrap();
        let resumed =
            MetaTrainer::resume(cfg.clone(), &resume_path(&out), &source.describe()).unwrap();
        assert_eq!(resumed.epoch, 4);
        let finished = train(resumed, &source, Some(&validation), &out, |_| {}).unwrap();
        assert_eq!(straight, finished, "{cfg:?}");

        let other = MetaTrainConfig { seed: 12, ..cfg };
        let err = MetaTrainer::resume(other, &resume_path(&out), &source.describe()).unwrap_err();
        assert!(err.to_string().contains("--restart"), "{err}");
    }

    #[test]
    fn curriculum_grows_the_horizon_one_unroll_per_stage() {
        let cfg = MetaTrainConfig {
            steps: 60,
            unroll: 20,
            curriculum: Some(10),
            ..tiny_config(Preprocessing::Scale(1.0))
        };
        let unrolls: Vec<usize> = [0, 9, 10, 25, 1000]
            .iter()
            .map(|&e| cfg.unrolls_at(e))
            .collect();
        assert_eq!(unrolls, [1, 1, 2, 3, 3]);
        assert_eq!(
            MetaTrainConfig {
                curriculum: None,
                ..cfg
            }
            .unrolls_at(0),
            3
        );
    }

    #[test]
    fn bad_settings_are_refused_before_training() {
        let cfg = MetaTrainConfig {
            steps: 10,
            unroll: 3,
            ..tiny_config(Preprocessing::Scale(1.0))
        };
        assert!(MetaTrainer::new(cfg).is_err());
        let cfg = MetaTrainConfig {
            meta_lr: -1.0,
            ..tiny_config(Preprocessing::Scale(1.0))
        };
        assert!(MetaTrainer::new(cfg).is_err());
        let based = MetaTrainConfig {
            base: Some(NAG_BASE),
            ..tiny_config(Preprocessing::Scale(1.0))
        };
        for cfg in [
            MetaTrainConfig {
                base: Some(BaseStep {
                    lr: 0.0,
                    ..NAG_BASE
                }),
                ..based.clone()
            },
            MetaTrainConfig {
                meta_gradient: MetaGradient::SecondOrder,
                ..based.clone()
            },
            MetaTrainConfig {
                imitation: Some(Imitation {
                    teacher: Baseline::Nag,
                    lr: 0.1,
                    epochs: 1,
                    meta_lr: 0.01,
                    rollout: Rollout::Teacher,
                    loss: ImitationLoss::Squared,
                }),
                ..based.clone()
            },
        ] {
            let e = MetaTrainer::new(cfg).err().expect("refused").to_string();
            assert!(e.contains("--base"), "{e}");
        }
        // A checkpoint continues only under its own base rule.
        let plain = MetaTrainer::new(tiny_config(Preprocessing::Scale(1.0)))
            .unwrap()
            .current(f64::NAN);
        let e = MetaTrainer::starting_from(based, &plain)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("drop --base"), "{e}");
    }
}

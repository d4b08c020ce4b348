//! The settings of a meta-training run. [`MetaTrainParams`] holds what a user asks for, with
//! the paper's defaults; [`MetaTrainParams::check`] validates it once, tunes the rates of any
//! hand-designed rule given without one, and gives the [`MetaTrainConfig`] that training runs
//! with (linfa's params → checked config). [`MetaTrainSettings::check`] does the same for
//! settings whose rules already have their rates. Nothing else makes a `MetaTrainConfig`.

use crate::baselines::{BaseStep, Baseline, CorrectionForm};
use crate::error::{config_error, setting_error, settings_error, Result};
use crate::evaluation::{self, TuningPoint};
use crate::learned::ArchitectureChoice;
use crate::learned::{Networks, Preprocessing, ALL_PARAMETERS};
use crate::problems::ProblemSet;
use crate::ranks::Ranks;

pub use super::objective::MetaLoss;
pub use crate::trajectory::MAX_STEPS;

/// Refused in both checks: a correction of a rule and an imitation of one.
const BASE_AND_IMITATE: &str =
    "`base` and `imitate` do not go together (a fresh run with `base` already starts as its \
     rule); drop one";

/// The most problems per epoch (`batch`).
pub const MAX_BATCH: usize = 100_000;
/// The most antithetic pairs per ES epoch (`es_pairs`).
pub const MAX_ES_PAIRS: usize = 10_000;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
    pub(crate) const DECAY: f32 = 0.9;
    pub(crate) const FLOOR: f32 = 1e-4;
}

/// Whose updates an imitation trajectory follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
    /// φ (no second derivatives, docs/method.md): cheap, but blind to how a step changes the
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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

/// Hyperparameters of a meta-training run, as set; [`MetaTrainSettings::check`] validates them
/// into the [`MetaTrainConfig`] a run takes.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaTrainSettings {
    pub hidden: usize,
    /// The parameter groups of the training problems, one network each; [`ALL_PARAMETERS`]
    /// alone is the paper's single network for every parameter.
    pub groups: Vec<String>,
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
    /// The validation loss is the mean over the last this many of those steps (1: the final
    /// loss, the paper's choice); it also tunes the rate of a base or imitated rule.
    pub validation_window: usize,
    pub epochs: u64,
    /// Validate (and keep the best weights) every this many epochs.
    pub eval_every: u64,
    pub seed: u64,
    /// Which learned optimizer (§2.1's LSTM, or one of Appendix D's); last, so that the resume
    /// fingerprints of runs written before it existed stay as they were (see `fingerprint`).
    pub architecture: ArchitectureChoice,
}

/// Settings that passed [`MetaTrainSettings::check`]: every run takes one, so its settings
/// were validated exactly once. Read them through `Deref` (`config.batch`).
#[derive(Clone, Debug, PartialEq)]
pub struct MetaTrainConfig(MetaTrainSettings);

impl std::ops::Deref for MetaTrainConfig {
    type Target = MetaTrainSettings;
    fn deref(&self) -> &MetaTrainSettings {
        &self.0
    }
}

impl MetaTrainConfig {
    pub fn settings(&self) -> &MetaTrainSettings {
        &self.0
    }

    /// These settings with `change` made to them, checked again.
    pub fn with(&self, change: impl FnOnce(&mut MetaTrainSettings)) -> Result<MetaTrainConfig> {
        let mut settings = self.0.clone();
        change(&mut settings);
        settings.check()
    }

    /// Everything that must match for a run to resume another: every setting but the epoch
    /// budget, and the training problems' `source`. Derived from the settings' own `Debug`, so
    /// a setting added to [`MetaTrainSettings`] is part of it without anyone listing it.
    pub(crate) fn fingerprint(&self, source: &str) -> String {
        let settings = MetaTrainSettings {
            epochs: 0,
            ..self.0.clone()
        };
        // The paper's LSTM, the only architecture before the setting existed, is left out,
        // so that resume states of that time still match.
        let record = format!("{settings:?} source={source}");
        match settings.architecture {
            ArchitectureChoice::Lstm => record.replacen(", architecture: Lstm }", " }", 1),
            _ => record,
        }
    }
}

impl MetaTrainSettings {
    /// Validates every setting once, into the config a run takes.
    pub fn check(self) -> Result<MetaTrainConfig> {
        self.validate()?;
        Ok(MetaTrainConfig(self))
    }

    fn validate(&self) -> Result<()> {
        self.preprocessing.validate()?;
        if self.groups.is_empty() {
            return config_error("a learned optimizer needs at least one parameter group");
        }
        if self.hidden == 0 || self.hidden > 256 {
            return setting_error("hidden", "between 1 and 256", self.hidden);
        }
        self.architecture.validate(self.hidden)?;
        if !(self.output_scale.is_finite() && self.output_scale > 0.0) {
            return setting_error("output_scale", "positive", self.output_scale);
        }
        if !self.forget_bias.is_finite() {
            return setting_error("forget_bias", "a finite number", self.forget_bias);
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return setting_error("batch", format!("between 1 and {MAX_BATCH}"), self.batch);
        }
        for (setting, steps) in [
            ("steps", self.steps),
            ("validation_steps", self.validation_steps),
        ] {
            if steps > MAX_STEPS {
                return setting_error(setting, format!("at most {MAX_STEPS}"), steps);
            }
        }
        if self.steps == 0 || self.unroll == 0 || self.steps % self.unroll != 0 {
            return setting_error(
                "steps",
                format!("a positive multiple of `unroll` ({})", self.unroll),
                self.steps,
            );
        }
        if !(self.meta_lr.is_finite() && self.meta_lr > 0.0) {
            return setting_error("meta_lr", "positive", self.meta_lr);
        }
        if !(self.meta_lr_decay > 0.0 && self.meta_lr_decay <= 1.0) {
            return setting_error("meta_lr_decay", "in (0, 1]", self.meta_lr_decay);
        }
        if matches!(self.clip, Some(c) if !(c > 0.0)) {
            return setting_error("clip", "positive", self.clip.unwrap_or_default());
        }
        if self.epochs == 0 {
            return setting_error(
                "epochs",
                "at least 1 (no epoch would write an untrained checkpoint)",
                0,
            );
        }
        if self.eval_every == 0 {
            return setting_error("eval_every", "at least 1", 0);
        }
        if self.curriculum == Some(0) {
            return setting_error("curriculum", "at least 1 epoch per stage", 0);
        }
        if let Some(im) = &self.imitation {
            if !(im.meta_lr.is_finite() && im.meta_lr > 0.0) {
                return setting_error("imitation_meta_lr", "positive", im.meta_lr);
            }
            if !(im.lr.is_finite() && im.lr > 0.0) {
                return setting_error("imitate", "a rule with a positive learning rate", im.lr);
            }
        }
        if let MetaGradient::Es { pairs, sigma, .. } = self.meta_gradient {
            if pairs == 0 || pairs > MAX_ES_PAIRS {
                return setting_error("es_pairs", format!("between 1 and {MAX_ES_PAIRS}"), pairs);
            }
            if !(sigma.is_finite() && sigma > 0.0) {
                return setting_error("es_sigma", "positive", sigma);
            }
        }
        if self.validation_steps == 0 {
            return setting_error("validation_steps", "at least 1", 0);
        }
        self.validation_measure().validate()?;
        if self.loss_from == 0 || self.loss_from > self.steps {
            return setting_error(
                "loss_from",
                format!("between 1 and `steps` ({})", self.steps),
                self.loss_from,
            );
        }
        if let Some(base) = self.base {
            if !(base.lr.is_finite() && base.lr > 0.0) {
                return setting_error("base", "a rule with a positive learning rate", base.lr);
            }
            if self.imitation.is_some() {
                return settings_error(BASE_AND_IMITATE);
            }
            if self.meta_gradient == MetaGradient::SecondOrder {
                return settings_error(
                    "`base` is not implemented for `meta_gradient` second-order; use bptt or es",
                );
            }
            if base.form == CorrectionForm::Scaled
                && !matches!(self.meta_gradient, MetaGradient::Es { .. })
            {
                return settings_error(
                    "`base_form` scaled trains by `meta_gradient` es (BPTT through Δ·exp(s·m) \
                     is not implemented); set `meta_gradient` es or `base_form` added",
                );
            }
        }
        if self.loss_from > 1 && self.curriculum.is_some() {
            return settings_error(
                "`loss_from` needs whole trajectories; drop `curriculum` or `loss_from`",
            );
        }
        Ok(())
    }

    /// The networks this run trains: one of its architecture per parameter group.
    pub fn networks(&self) -> Networks {
        let architecture = self
            .architecture
            .build(self.preprocessing.features(), self.hidden);
        Networks::per_group(&self.groups, architecture)
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

    /// How a validation run is judged.
    pub fn validation_measure(&self) -> evaluation::ValidationMeasure {
        evaluation::ValidationMeasure {
            steps: self.validation_steps,
            window: self.validation_window,
        }
    }
}

impl Default for MetaTrainSettings {
    /// The paper's settings (§3): two layers of 20 units, unrolls of 20 over 100 steps, Adam
    /// with rate 0.001 on φ, batches of 128 problems, Σ f as the meta-loss, truncated BPTT.
    fn default() -> Self {
        MetaTrainSettings {
            hidden: 20,
            groups: vec![ALL_PARAMETERS.into()],
            preprocessing: Preprocessing::Scale(1.0 / 128.0),
            output_scale: 1.0,
            base: None,
            forget_bias: 1.0,
            batch: 128,
            steps: 100,
            unroll: 20,
            meta_lr: 1e-3,
            meta_lr_decay: 1.0,
            clip: None,
            curriculum: None,
            meta_loss: MetaLoss::Sum,
            loss_from: 1,
            imitation: None,
            meta_gradient: MetaGradient::Bptt,
            validation_steps: 100,
            validation_window: 1,
            epochs: 1000,
            eval_every: 10,
            seed: 0,
            architecture: ArchitectureChoice::Lstm,
        }
    }
}

/// A hand-designed rule named for imitation or as a base: its learning rate, or `None` to tune
/// it on the validation problems.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RuleRequest {
    pub kind: Baseline,
    pub lr: Option<f64>,
}

/// What a user asks of a meta-training run, before it is checked.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaTrainParams {
    /// Every setting that needs no tuning; its `base` and `imitation` are set by
    /// [`MetaTrainParams::check`] from `base` and `imitate` below.
    pub settings: MetaTrainSettings,
    /// Imitate this rule first (with `imitation_*`).
    pub imitate: Option<RuleRequest>,
    pub imitation_epochs: u64,
    pub imitation_meta_lr: f64,
    pub imitation_rollout: Rollout,
    pub imitation_loss: ImitationLoss,
    /// Correct this rule's step by the network's output (`base_form` says how).
    pub base: Option<RuleRequest>,
    pub base_form: CorrectionForm,
    /// The rates tried when a rule is given without one.
    pub lr_grid: evaluation::LrGrid,
}

impl Default for MetaTrainParams {
    fn default() -> Self {
        MetaTrainParams {
            settings: MetaTrainSettings::default(),
            imitate: None,
            imitation_epochs: 100,
            imitation_meta_lr: 1e-3,
            imitation_rollout: Rollout::Teacher,
            imitation_loss: ImitationLoss::Squared,
            base: None,
            base_form: CorrectionForm::Added,
            lr_grid: evaluation::LrGrid::default(),
        }
    }
}

/// A learning rate [`MetaTrainParams::check`] tuned, for the progress report.
#[derive(Clone, Debug)]
pub struct TunedRate {
    /// "base rule" or "imitating".
    pub role: &'static str,
    pub best: TuningPoint,
    /// Rates tried.
    pub tried: usize,
    pub steps: usize,
}

impl MetaTrainParams {
    /// Validates every setting, then tunes the rate of each rule given without one on
    /// `validation` (over `lr_grid`, by the validation measure), as
    /// `evaluate --tune` tunes the baselines (the rates shared among `ranks`). Returns the
    /// config and the rates it tuned.
    pub fn check<P: ProblemSet>(
        &self,
        validation: Option<&P>,
        ranks: &dyn Ranks,
    ) -> Result<(MetaTrainConfig, Vec<TunedRate>)> {
        let measure = self.settings.validation_measure();
        self.resolve(validation.is_some(), |kind| {
            let v = validation.expect("checked: a rule without a rate has --validation");
            let points = evaluation::tune(v, &[kind], measure, &self.lr_grid, ranks)?;
            let best = points.iter().find(|p| p.chosen).cloned().ok_or_else(|| {
                crate::Error::Config(format!("tuning {} found no learning rate", kind.name()))
            })?;
            Ok((best, points.len()))
        })
    }

    /// Checks every setting that needs no problems: `can_tune` says whether validation
    /// problems will be there to tune a rule given without its rate.
    pub fn check_settings(&self, can_tune: bool) -> Result<()> {
        self.settings.validate()?;
        if self.imitate.is_some() && self.imitation_epochs == 0 {
            return setting_error("imitation_epochs", "at least 1 with `imitate`", 0);
        }
        if self.imitate.is_some() && self.base.is_some() {
            return settings_error(BASE_AND_IMITATE);
        }
        if self.base.is_none() && self.base_form != CorrectionForm::Added {
            return settings_error(
                "`base_form` says how the LSTM corrects a `base` rule; give `base` NAME[=LR]",
            );
        }
        for (setting, rule) in [("imitate", self.imitate), ("base", self.base)] {
            if matches!(rule, Some(RuleRequest { lr: None, .. })) && !can_tune {
                return settings_error(format!(
                    "`{setting}` without a learning rate tunes it on `validation`; give `validation` or NAME=LR"
                ));
            }
        }
        Ok(())
    }

    /// The checks, with `tune` giving the best grid point of a rule and the rates tried.
    fn resolve(
        &self,
        can_tune: bool,
        mut tune: impl FnMut(Baseline) -> Result<(TuningPoint, usize)>,
    ) -> Result<(MetaTrainConfig, Vec<TunedRate>)> {
        self.check_settings(can_tune)?;
        let mut config = self.settings.clone();
        let mut tuned = Vec::new();
        let steps = config.validation_steps;
        let mut rate = |rule: RuleRequest, role: &'static str| -> Result<f64> {
            if let Some(lr) = rule.lr {
                return Ok(lr);
            }
            let (best, tried) = tune(rule.kind)?;
            let lr = best.lr;
            tuned.push(TunedRate {
                role,
                best,
                tried,
                steps,
            });
            Ok(lr)
        };
        if let Some(rule) = self.base {
            let lr = rate(rule, "base rule")?;
            config.base = Some(BaseStep {
                kind: rule.kind,
                lr,
                form: self.base_form,
            });
        }
        if let Some(rule) = self.imitate {
            let lr = rate(rule, "imitating")?;
            config.imitation = Some(Imitation {
                teacher: rule.kind,
                lr,
                epochs: self.imitation_epochs,
                meta_lr: self.imitation_meta_lr,
                rollout: self.imitation_rollout,
                loss: self.imitation_loss,
            });
        }
        Ok((config.check()?, tuned))
    }
}

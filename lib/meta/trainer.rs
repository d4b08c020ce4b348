//! The state of a meta-training run and one epoch of it (§2, §3): minimise eq. (3) by
//! truncated BPTT (or another meta-gradient of [`MetaGradient`]) and Adam on the weights φ.
//! [`MetaTrainer::train_epoch`] holds no loop over epochs; the executor
//! ([`super::executor::train`]) runs them.

use super::bptt::{run_unroll, Objective, Unroll};
use super::config::{MetaGradient, MetaTrainConfig};
use super::workspace::Workspace;
use crate::baselines::adam::Adam;
use crate::baselines::BaseStep;
use crate::error::{config_error, settings_error, Result};
use crate::evaluation::{self, Curves};
use crate::learned::{LearnedOptimizer, Networks, OptimizerChoice};
use crate::problems::ProblemSet;
use crate::ranks::{OneProcess, Ranks};
use crate::rng::streams;
use crate::training_log::TrainingLog;
use std::sync::Arc;

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
    pub networks: Networks,
    /// φ, every network's weights in network order.
    pub weights: Vec<f32>,
    pub(crate) adam_m: Vec<f32>,
    pub(crate) adam_v: Vec<f32>,
    pub(crate) adam_t: u64,
    /// Epochs completed.
    pub epoch: u64,
    pub skipped_unrolls: u64,
    /// The best weights by validation so far.
    pub best: Option<LearnedOptimizer>,
    /// Steps taken on φ since this trainer was made or resumed (not saved).
    pub updates: u64,
    /// Every epoch so far (saved in the resume state), written beside the checkpoint.
    pub log: TrainingLog,
}

/// The meta-optimizer of φ: Adam in Kingma and Ba's form, in f64 (docs/method.md).
const META_ADAM: Adam<f64> = Adam {
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-8,
};

impl MetaTrainer {
    /// A fresh run. With a base rule the output layers start at zero, i.e. the run starts as
    /// exactly that rule.
    pub fn new(config: MetaTrainConfig) -> Result<Self> {
        let networks = config.networks();
        let mut weights = networks.init(config.seed, streams::LSTM_INIT, config.forget_bias);
        if config.base.is_some() {
            for range in networks.output_layers() {
                weights[range].fill(0.0);
            }
        }
        let n = weights.len();
        Ok(MetaTrainer {
            config,
            networks,
            weights,
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            adam_t: 0,
            epoch: 0,
            skipped_unrolls: 0,
            best: None,
            updates: 0,
            log: TrainingLog::default(),
        })
    }

    /// A run that starts from the weights of `start` instead of a fresh initialisation, e.g.
    /// to continue training a checkpoint with other settings. Its networks, input processing,
    /// output scale and base rule must be this run's.
    pub fn starting_from(config: MetaTrainConfig, start: &LearnedOptimizer) -> Result<Self> {
        let mut t = Self::new(config)?;
        let cfg = &t.config;
        if start.base != cfg.base {
            let name = |b: Option<BaseStep>| b.map_or("none".to_string(), |b| b.to_string());
            return settings_error(format!(
                "the starting checkpoint's base rule is {}, but this run asks for {}; {}",
                name(start.base),
                name(cfg.base),
                start.base.map_or("drop `base`".to_string(), |b| format!(
                    "set `base` {}={} and `base_form` {}",
                    b.kind.name(),
                    b.lr,
                    b.form.name()
                ))
            ));
        }
        if start.networks != t.networks
            || start.preprocessing != cfg.preprocessing
            || start.output_scale != cfg.output_scale
        {
            return config_error(format!(
                "the starting checkpoint has networks [{}], {} input processing and output scale {}, \
                 but this run asks for [{}], {} and {}; pass the checkpoint's settings",
                start.networks.describe(),
                start.preprocessing,
                start.output_scale,
                t.networks.describe(),
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
            networks: self.networks.clone(),
            weights: self.weights.clone(),
            preprocessing: self.config.preprocessing,
            output_scale: self.config.output_scale,
            base: self.config.base,
            epoch: self.epoch,
            validation_loss,
            trained_on: None,
        }
    }

    /// One epoch: every problem of `batch` runs the whole trajectory, as `steps / unroll`
    /// truncated unrolls, each followed by one Adam step on φ. An unroll whose loss or
    /// meta-gradient is not finite is skipped, and so are the rest of that epoch's unrolls
    /// (their trajectories have diverged). Under K > 1 `ranks` the problems (or, for evolution
    /// strategies, the perturbed runs) are shared among the ranks, with the same result.
    pub fn train_epoch<P: ProblemSet>(
        &mut self,
        batch: &P,
        ws: &mut Workspace<P::Scratch>,
        ranks: &dyn Ranks,
    ) -> EpochReport {
        if matches!(self.config.imitation, Some(im) if im.epochs == self.epoch && im.epochs > 0) {
            // The imitation loss's gradients are orders of magnitude smaller than the
            // meta-loss's; Adam's moments from imitation would turn the first meta-loss
            // gradients into huge steps.
            self.adam_m.fill(0.0);
            self.adam_v.fill(0.0);
            self.adam_t = 0;
        }
        let imitating = self.config.imitating_at(self.epoch).is_some();
        if let (
            MetaGradient::Es {
                pairs,
                sigma,
                scope,
            },
            false,
        ) = (self.config.meta_gradient, imitating)
        {
            return self.es_epoch(batch, pairs, sigma, scope, ranks);
        }
        let unrolls = self.config.unrolls_at(self.epoch);
        let count = batch.count() as f64;
        ws.start_trajectories(batch);
        let mut report = EpochReport {
            final_loss: f64::NAN,
            mean_loss: 0.0,
            skipped_unrolls: 0,
        };
        let objective = if imitating {
            Objective::Imitation
        } else {
            Objective::MetaLoss
        };
        let mut final_losses = f64::NAN;
        for u in 0..unrolls {
            let unroll = Unroll {
                index: u,
                last: u + 1 == unrolls,
                objective,
            };
            let sums = run_unroll(&self.config, &self.weights, unroll, batch, ws, ranks);
            let loss = sums.loss;
            final_losses = sums.final_losses;
            if !sums.meta_loss.is_finite()
                || !loss.is_finite()
                || !ws.total.iter().all(|g| g.is_finite())
            {
                report.skipped_unrolls = (unrolls - u) as u64;
                report.mean_loss = f64::NAN;
                self.skipped_unrolls += report.skipped_unrolls;
                self.epoch += 1;
                return report;
            }
            report.mean_loss += loss / (count * (unrolls * self.config.unroll) as f64);
            let grad = std::mem::take(&mut ws.total);
            self.adam_step(&grad);
            ws.total = grad;
        }
        report.final_loss = final_losses / count;
        self.epoch += 1;
        report
    }

    /// One Adam step on φ with the meta-gradient `grad`, after optional clipping.
    pub(crate) fn adam_step(&mut self, grad: &[f32]) {
        let cfg = &self.config;
        let norm = grad
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        let clip = match cfg.clip {
            Some(c) if norm > c => c / norm,
            _ => 1.0,
        };
        self.adam_t += 1;
        self.updates += 1;
        let t = self.adam_t as i32;
        let lr = match cfg.imitating_at(self.epoch) {
            Some(im) => im.meta_lr,
            None => cfg.meta_lr * cfg.meta_lr_decay.powf(self.epoch as f64),
        };
        let bc = META_ADAM.bias_corrections(t);
        for ((w, (m, v)), &gi) in self
            .weights
            .iter_mut()
            .zip(self.adam_m.iter_mut().zip(self.adam_v.iter_mut()))
            .zip(grad)
        {
            // The moments are kept in f32 and updated in f64.
            let (m64, v64) = META_ADAM.moments(*m as f64, *v as f64, gi as f64 * clip);
            *m = m64 as f32;
            *v = v64 as f32;
            *w -= META_ADAM.kingma_decrement(lr, m64, v64, bc) as f32;
        }
    }

    /// The validation measure of the current weights on `validation`: the mean final loss
    /// over the training horizon, or the mean over its last `validation_window` steps. Under
    /// K > 1 `ranks` the validation problems are shared among the ranks, with the same result.
    pub fn validate<P: ProblemSet>(&self, validation: &P, ranks: &dyn Ranks) -> Result<f64> {
        Ok(self
            .run_on(validation, self.config.validation_steps, |_| (), ranks)?
            .window_mean(self.config.validation_window))
    }

    /// The curves of the current weights, changed by `perturb`, run for `steps` on `set`
    /// (validation, evolution strategies, the meta-gradient check).
    pub(crate) fn run_with<P: ProblemSet>(
        &self,
        set: &P,
        steps: usize,
        perturb: impl FnOnce(&mut [f32]),
    ) -> Result<Curves> {
        self.run_on(set, steps, perturb, &OneProcess)
    }

    /// [`MetaTrainer::run_with`], its problems shared among `ranks`.
    fn run_on<P: ProblemSet>(
        &self,
        set: &P,
        steps: usize,
        perturb: impl FnOnce(&mut [f32]),
        ranks: &dyn Ranks,
    ) -> Result<Curves> {
        let mut optimizer = self.current(f64::NAN);
        perturb(&mut optimizer.weights);
        let choice = OptimizerChoice::Learned {
            label: "lstm".into(),
            optimizer: Arc::new(optimizer),
        };
        evaluation::run_on(set, &choice, steps, ranks)
    }
}

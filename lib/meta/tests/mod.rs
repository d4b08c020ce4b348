//! Meta-training's tests: the problems and the finite-difference harness they share;
//! [`gradients`] checks truncated BPTT (and its second-order form) against finite
//! differences, [`estimators`] the other meta-gradients (ES, the agreement check), and
//! [`training`] epochs, resume and the settings' refusals.

use super::bptt::{run_unroll, Objective, Unroll};
use super::*;
use crate::baselines::{BaseStep, Baseline, CorrectionForm};
use crate::evaluation;
use crate::learned::{ArchitectureChoice, OptimizerChoice, Preprocessing};
use crate::problems::mlp::{Activation, MlpArchitecture, MlpSet};
use crate::problems::{
    HessianVector, ParamGroup, ProblemSet, QuadraticFamily, QuadraticSet, QuadraticSource,
    TrainingSource, ValueDistribution,
};
use crate::ranks::OneProcess;
use crate::rng::streams::LSTM_INIT;

fn tiny_config(preprocessing: Preprocessing) -> MetaTrainSettings {
    MetaTrainSettings {
        hidden: 3,
        preprocessing,
        output_scale: 0.5,
        batch: 3,
        steps: 6,
        unroll: 3,
        meta_lr: 0.01,
        validation_steps: 6,
        epochs: 4,
        eval_every: 2,
        seed: 11,
        ..MetaTrainSettings::default()
    }
}

/// A trainer on `settings`, which must pass their check.
fn trainer(settings: MetaTrainSettings) -> crate::Result<MetaTrainer> {
    MetaTrainer::new(settings.check()?)
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
    configure: impl FnOnce(&mut MetaTrainSettings),
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
    let cfg = cfg.check().unwrap();
    let objective = if imitating.is_some() {
        Objective::Imitation
    } else {
        Objective::MetaLoss
    };
    let weights = cfg.networks().init(5, LSTM_INIT, 1.0);
    let mut ws = Workspace::new(&cfg, batch, &OneProcess).unwrap();
    ws.start_trajectories(batch);
    let n = weights.len();
    // At the paper's size, every 37th weight (with all of the output layer's).
    let checked: Vec<usize> = if cfg.hidden >= 20 {
        let out = cfg.networks().output_layers();
        (0..n)
            .filter(|k| k % 37 == 0 || out.iter().any(|r| r.contains(k)))
            .collect()
    } else {
        (0..n).collect()
    };
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
        let unroll = |last: bool| Unroll {
            index: u,
            last,
            objective,
        };
        run_unroll(
            &cfg,
            &weights,
            unroll(u + 1 == cfg.steps / cfg.unroll),
            batch,
            &mut ws,
            &OneProcess,
        );
        let mean = |loss_sum: f64| loss_sum / cfg.batch as f64;
        for (a, g) in analytic.iter_mut().zip(&ws.total) {
            *a += *g as f64;
        }
        for &k in &checked {
            let loss_at = |delta: f32| {
                let mut w = weights.clone();
                w[k] += delta;
                let mut probe = start.clone();
                mean(run_unroll(&cfg, &w, unroll(false), batch, &mut probe, &OneProcess).meta_loss)
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
    for &k in &checked {
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
        "gradient check ({preprocessing}, {meta_loss} meta-loss, imitation {:?}, {:?}, hidden {}, groups {:?}): {} of {n} weights, worst relative error {worst:.2e}",
        cfg.imitation.map(|im| (im.rollout, im.loss)),
        cfg.architecture,
        cfg.hidden,
        cfg.groups,
        checked.len()
    );
}

fn second_order(cfg: &mut MetaTrainSettings) {
    cfg.meta_gradient = MetaGradient::SecondOrder;
}

const NAG_BASE: BaseStep = BaseStep {
    kind: Baseline::Nag,
    lr: 0.1,
    form: CorrectionForm::Added,
};

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
    fn hessian(&self) -> Option<&dyn HessianVector<()>> {
        Some(self)
    }
}

impl HessianVector<()> for Linear {
    fn hessian_vector(&self, _: usize, _: usize, _: &[f32], _: &[f32], hv: &mut [f32], _: &mut ()) {
        hv.fill(0.0);
    }
}

/// A problem set whose coordinates fall into two groups, `conv` (the odd coordinates) and
/// `fc` (the even ones), for the networks of one learned optimizer per group.
struct TwoGroups<P>(P);

impl<P: ProblemSet> ProblemSet for TwoGroups<P> {
    type Scratch = P::Scratch;
    fn count(&self) -> usize {
        self.0.count()
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn scratch(&self) -> P::Scratch {
        self.0.scratch()
    }
    fn initial_point(&self, problem: usize, theta: &mut [f32]) {
        self.0.initial_point(problem, theta)
    }
    fn loss_and_gradient(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        grad: &mut [f32],
        scratch: &mut P::Scratch,
    ) -> f64 {
        self.0
            .loss_and_gradient(problem, step, theta, grad, scratch)
    }
    fn hessian(&self) -> Option<&dyn HessianVector<P::Scratch>> {
        self.0.hessian()
    }
    fn groups(&self) -> Vec<ParamGroup> {
        let by_parity = |name: &str, first: usize| ParamGroup {
            name: name.into(),
            ranges: (first..self.dim()).step_by(2).map(|i| i..i + 1).collect(),
        };
        vec![by_parity("conv", 1), by_parity("fc", 0)]
    }
}

mod estimators;
mod gradients;
mod training;

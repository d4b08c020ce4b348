//! Meta-training's gradient checks against finite differences, resume, and the settings'
//! refusals.

use super::bptt::{run_unroll, Objective, Unroll};
use super::*;
use crate::baselines::{BaseStep, Baseline};
use crate::evaluation;
use crate::learned::{OptimizerChoice, Preprocessing};
use crate::problems::mlp::{Activation, MlpArchitecture, MlpSet};
use crate::problems::{
    HessianVector, ParamGroup, ProblemSet, QuadraticFamily, QuadraticSet, QuadraticSource,
    TrainingSource, ValueDistribution,
};
use crate::rng::streams::LSTM_INIT;

fn tiny_config(preprocessing: Preprocessing) -> MetaTrainConfig {
    MetaTrainConfig {
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
        ..MetaTrainConfig::default()
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
    let objective = if imitating.is_some() {
        Objective::Imitation
    } else {
        Objective::MetaLoss
    };
    let weights = cfg.networks().init(5, LSTM_INIT, 1.0);
    let mut ws = Workspace::new(&cfg, batch).unwrap();
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
                mean(run_unroll(&cfg, &w, unroll(false), batch, &mut probe).meta_loss)
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
        "gradient check ({preprocessing}, {meta_loss} meta-loss, imitation {:?}, hidden {}, groups {:?}): {} of {n} weights, worst relative error {worst:.2e}",
        cfg.imitation.map(|im| (im.rollout, im.loss)),
        cfg.hidden,
        cfg.groups,
        checked.len()
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
    let learned = MetaTrainer::new(cfg)
        .unwrap()
        .run_with(&set, 6, |_| ())
        .unwrap();
    let nag = OptimizerChoice::Baseline {
        kind: NAG_BASE.kind,
        lr: NAG_BASE.lr,
    };
    assert_eq!(
        learned.losses,
        evaluation::run(&set, &nag, 6).unwrap().losses
    );
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
        let range = cfg.networks().output_layers()[0].clone();
        for (k, w) in t.weights[range.clone()].iter_mut().enumerate() {
            *w = 0.5 - 0.3 * k as f32;
        }
        let (grad, _) = t.es_estimate(&batch, 4000, 1e-2, EsScope::Output).unwrap();
        let grad = grad.expect("no run diverges");
        let meta_loss_at = |k: usize, delta: f32| t.meta_loss_moving(&batch, k, delta).unwrap();
        let eps = 1e-2f32;
        let numeric: Vec<f64> = range
            .clone()
            .map(|k| (meta_loss_at(k, eps) - meta_loss_at(k, -eps)) / (2.0 * eps as f64))
            .collect();
        let analytic: Vec<f64> = grad[range.clone()].iter().map(|&g| g as f64).collect();
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
        assert!(grad[..range.start].iter().all(|&g| g == 0.0));
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

/// One network per parameter group: the meta-gradient of both networks' weights, with and
/// without the Hessian terms, on quadratics of 5 coordinates whose odd and even coordinates
/// are served by different networks.
#[test]
fn gradient_matches_finite_differences_with_a_network_per_group() {
    let family = QuadraticFamily {
        dims: 5,
        distribution: ValueDistribution::Normal,
        theta0_std: 0.5,
    };
    let batch = TwoGroups(family.sample(3, 3, |i| i));
    for second in [false, true] {
        check_gradient_on(
            &batch,
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            None,
            |cfg| {
                cfg.groups = vec!["conv".into(), "fc".into()];
                if second {
                    second_order(cfg);
                }
            },
        );
    }
}

/// The BPTT gradient at the paper's size (two layers of 20 units), where the LSTM runs its
/// fused 5-chunk kernel.
#[test]
fn bptt_gradient_matches_finite_differences_at_the_paper_size() {
    check_gradient_on(
        &tiny_batch(),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        None,
        |cfg| cfg.hidden = 20,
    );
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
        let range = cfg.networks().output_layers()[0].clone();
        for (k, w) in t.weights[range].iter_mut().enumerate() {
            *w = 0.4 - 0.25 * k as f32;
        }
        t
    };
    let linear = Linear {
        slope: vec![0.3, -0.7],
        count: 3,
    };
    let a = t.meta_gradient_agreement(&linear, 1e-2).unwrap();
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
        let mut ws = Workspace::new(cfg, &first).unwrap();
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
    let resumed = MetaTrainer::resume(cfg.clone(), &resume_path(&out), &source.describe()).unwrap();
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

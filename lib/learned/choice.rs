//! A learned optimizer behind the same [`UpdateRule`] interface as the baselines, and the
//! choice between the two that the command line names.

use super::optimizer::LearnedOptimizer;
use super::step::LearnedStep;
use crate::baselines::{Baseline, UpdateRule};
use crate::error::Result;
use crate::problems::ParamGroup;
use std::sync::Arc;

/// A learned optimizer applied to the rows of a shard of problems (eq. 1, forward only).
#[derive(Clone)]
pub struct LearnedRule {
    optimizer: Arc<LearnedOptimizer>,
    step: LearnedStep,
}

impl LearnedRule {
    /// For `problems` problems of `dim` coordinates whose parameters fall into `groups`.
    pub fn new(
        optimizer: Arc<LearnedOptimizer>,
        groups: &[ParamGroup],
        dim: usize,
        problems: usize,
    ) -> Result<Self> {
        let step = LearnedStep::new(
            &optimizer.networks,
            optimizer.preprocessing,
            optimizer.output_scale,
            optimizer.base,
            groups,
            dim,
            problems,
            1,
        )?;
        Ok(LearnedRule { optimizer, step })
    }
}

impl UpdateRule for LearnedRule {
    fn step(&mut self, theta: &mut [f32], grad: &[f32]) {
        self.step.step(&self.optimizer.weights, theta, grad);
    }
    fn boxed_clone(&self) -> Box<dyn UpdateRule> {
        Box::new(self.clone())
    }
}

/// An optimizer named on the command line, with its learning rate where it has one.
#[derive(Clone)]
pub enum OptimizerChoice {
    Learned {
        label: String,
        optimizer: Arc<LearnedOptimizer>,
    },
    Baseline {
        kind: Baseline,
        lr: f64,
    },
}

impl OptimizerChoice {
    /// The `optimizer` column of a trajectory: the baseline's name, or `lstm` (with the
    /// checkpoint's file stem when several learned optimizers are compared).
    pub fn label(&self) -> String {
        match self {
            OptimizerChoice::Learned { label, .. } => label.clone(),
            OptimizerChoice::Baseline { kind, .. } => kind.name().to_string(),
        }
    }
    pub fn lr(&self) -> Option<f64> {
        match self {
            OptimizerChoice::Learned { .. } => None,
            OptimizerChoice::Baseline { lr, .. } => Some(*lr),
        }
    }
    /// The rule for `problems` problems of `dim` coordinates in parameter groups `groups`;
    /// an error if a learned optimizer has no network for one of the groups.
    pub fn rule(
        &self,
        groups: &[ParamGroup],
        dim: usize,
        problems: usize,
    ) -> Result<Box<dyn UpdateRule>> {
        Ok(match self {
            OptimizerChoice::Learned { optimizer, .. } => {
                Box::new(LearnedRule::new(optimizer.clone(), groups, dim, problems)?)
            }
            OptimizerChoice::Baseline { kind, lr } => kind.rule_for(*lr, problems, dim),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::{BaseStep, CorrectionForm};
    use crate::learned::lstm::LstmShape;
    use crate::learned::{Architecture, Network, Networks, Preprocessing};
    use crate::rng::streams::LSTM_INIT;

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (*x as f64 - y).abs() < 1e-6 * (1.0 + y.abs()),
                "{a:?} vs {b:?}"
            );
        }
    }

    const SHAPE: LstmShape = LstmShape {
        inputs: 2,
        hidden: 4,
    };

    fn optimizer(networks: Networks) -> LearnedOptimizer {
        LearnedOptimizer {
            weights: networks.init(4, LSTM_INIT, 1.0),
            networks,
            preprocessing: Preprocessing::LogSign { p: 10.0 },
            output_scale: 0.5,
            base: None,
            epoch: 0,
            validation_loss: f64::NAN,
            trained_on: None,
        }
    }

    /// `steps` steps of `opt` from θ = (1, −2) with the gradients (0.5, −4), (0.25, 2), …
    fn run(opt: &LearnedOptimizer, groups: &[ParamGroup], steps: usize) -> Vec<f32> {
        let mut rule = LearnedRule::new(Arc::new(opt.clone()), groups, 2, 1).unwrap();
        let mut theta = vec![1.0f32, -2.0];
        for g in [[0.5, -4.0], [0.25, 2.0]].iter().take(steps) {
            rule.step(&mut theta, g);
        }
        theta
    }

    /// The learned step plus its base rule's: with a zero output layer exactly the rule (NAG
    /// by hand, as in `baselines`); otherwise the first step adds NAG's −(1 + μ)·lr·∇ to the
    /// network's.
    #[test]
    fn learned_step_adds_its_base_rule() {
        let mut opt = optimizer(Networks::single(Arc::new(SHAPE)));
        let all = [ParamGroup::all(2)];
        let alone = run(&opt, &all, 1);
        opt.base = Some(BaseStep {
            kind: Baseline::Nag,
            lr: 0.1,
            form: CorrectionForm::Added,
        });
        let with_base = run(&opt, &all, 1);
        close(
            &with_base,
            &[alone[0] as f64 - 1.9 * 0.05, alone[1] as f64 + 1.9 * 0.4],
        );
        opt.weights[SHAPE.output_layer()].fill(0.0);
        close(&run(&opt, &all, 2), &[0.817, -1.296]);
    }

    /// A scaled base rule: θ ← θ + Δ·exp(s·m). With a zero output layer exactly the rule;
    /// with the output bias b alone, NAG at e^{s·b} times its rate (Δ is linear in lr from
    /// a zero velocity); otherwise the first step is NAG's Δ times exp(s·m), m the network's
    /// output (the step it adds in the paper's form, divided by s).
    #[test]
    fn learned_step_scales_its_base_rule() {
        let mut opt = optimizer(Networks::single(Arc::new(SHAPE)));
        let all = [ParamGroup::all(2)];
        let alone = run(&opt, &all, 1);
        let m = [(alone[0] - 1.0) / 0.5, (alone[1] + 2.0) / 0.5];
        opt.base = Some(BaseStep {
            kind: Baseline::Nag,
            lr: 0.1,
            form: CorrectionForm::Scaled,
        });
        let delta = [-1.9 * 0.1 * 0.5, 1.9 * 0.1 * 4.0];
        let scaled = run(&opt, &all, 1);
        close(
            &scaled,
            &[
                1.0 + delta[0] * (0.5 * m[0] as f64).exp(),
                -2.0 + delta[1] * (0.5 * m[1] as f64).exp(),
            ],
        );
        let out = SHAPE.output_layer();
        opt.weights[out.clone()].fill(0.0);
        // exp(0) = 1 exactly, so a zero output steps as NAG does, bit for bit.
        let mut nag = Baseline::Nag.rule(0.1, 2);
        let mut theta = vec![1.0f32, -2.0];
        nag.step(&mut theta, &[0.5, -4.0]);
        nag.step(&mut theta, &[0.25, 2.0]);
        assert_eq!(run(&opt, &all, 2), theta);
        close(&theta, &[0.817, -1.296]);
        // The output bias is the layer's last weight.
        opt.weights[out.end - 1] = 2.0f32.ln() / 0.5;
        let mut doubled = opt.clone();
        doubled.weights[out].fill(0.0);
        doubled.base = Some(BaseStep {
            lr: 0.2,
            ..opt.base.unwrap()
        });
        let want: Vec<f64> = run(&doubled, &all, 2).into_iter().map(f64::from).collect();
        close(&run(&opt, &all, 2), &want);
    }

    /// One network per group: each coordinate is stepped by its group's network, exactly as
    /// that network alone would step it; a group without a network is refused.
    #[test]
    fn each_group_is_served_by_its_own_network() {
        let groups = [
            ParamGroup {
                name: "fc".into(),
                ranges: vec![1..2],
            },
            ParamGroup {
                name: "conv".into(),
                ranges: vec![0..1],
            },
        ];
        let conv = optimizer(Networks::single(Arc::new(SHAPE)));
        let mut fc = conv.clone();
        fc.weights = SHAPE.init(9, LSTM_INIT, 1.0);
        let mut two = optimizer(Networks(
            ["conv", "fc"]
                .iter()
                .map(|g| Network {
                    group: g.to_string(),
                    architecture: Arc::new(SHAPE),
                })
                .collect(),
        ));
        two.weights = [conv.weights.clone(), fc.weights.clone()].concat();
        let all = [ParamGroup::all(2)];
        let (by_group, conv_alone, fc_alone) = (
            run(&two, &groups, 2),
            run(&conv, &all, 2),
            run(&fc, &all, 2),
        );
        assert_eq!(by_group, [conv_alone[0], fc_alone[1]]);
        let e = LearnedRule::new(Arc::new(two), &all, 2, 1).err().unwrap();
        assert!(e.to_string().contains("group 'all' has no network"), "{e}");
    }
}

//! Appendix B: inside a learned optimizer. Along one trajectory of a followed optimizer,
//! the update that it and other rules (SGD, Adam, …) propose for chosen coordinates at the
//! same iterates, each rule's state fed the same gradients (Figure 10); and, at chosen steps,
//! the update each would propose for a hypothetical gradient value, swept over a range, with
//! its state left as the trajectory made it (Figures 11–13).
//!
//! Every rule here is coordinatewise, and the baselines' updates do not depend on θ, so each
//! rule is stepped on a copy of the followed iterate and its proposal read off the copy.

use crate::baselines::UpdateRule;
use crate::error::{Error, Result};
use crate::learned::OptimizerChoice;
use crate::problems::ProblemSet;
pub use crate::proposals::Proposal;

/// What to record.
#[derive(Clone, Debug)]
pub struct ProbeRequest {
    /// The problem (run) of the set to follow.
    pub problem: usize,
    /// Coordinates of θ to record.
    pub coordinates: Vec<usize>,
    pub steps: usize,
    /// Steps at which to sweep the gradient of the chosen coordinates.
    pub sweep_steps: Vec<usize>,
    /// The hypothetical gradient values of a sweep.
    pub sweep_gradients: Vec<f32>,
}

impl ProbeRequest {
    /// `LO:HI:N`: N ≥ 2 evenly spaced gradient values from LO to HI, for `sweep_gradients`.
    pub fn parse_sweep(text: &str) -> Result<Vec<f32>> {
        let parts: Vec<&str> = text.split(':').collect();
        let parsed = match parts.as_slice() {
            [lo, hi, n] => lo
                .parse::<f32>()
                .ok()
                .zip(hi.parse::<f32>().ok())
                .zip(n.parse::<usize>().ok()),
            _ => None,
        };
        match parsed {
            Some(((lo, hi), n))
                if lo.is_finite() && hi.is_finite() && lo < hi && (2..=10_000).contains(&n) =>
            {
                Ok((0..n)
                    .map(|k| lo + (hi - lo) * k as f32 / (n - 1) as f32)
                    .collect())
            }
            _ => Err(Error::setting(
                "probe_gradients",
                "LO:HI:N with LO < HI and 2 ≤ N ≤ 10000, e.g. -1:1:41",
                text,
            )),
        }
    }

    /// Checks the request against the set, before any work.
    pub fn validate<P: ProblemSet>(&self, set: &P) -> Result<()> {
        if self.problem >= set.count() {
            return Err(Error::setting(
                "probe_run",
                format!("a run the spec holds, 0-{}", set.count() - 1),
                self.problem,
            ));
        }
        if let Some(c) = self.coordinates.iter().find(|&&c| c >= set.dim()) {
            return Err(Error::setting(
                "probe",
                format!("coordinates the problems have, 0-{}", set.dim() - 1),
                c,
            ));
        }
        if self.coordinates.is_empty() {
            return Err(Error::setting("probe", "at least one coordinate", "none"));
        }
        if let Some(s) = self.sweep_steps.iter().find(|&&s| s >= self.steps) {
            return Err(Error::setting(
                "probe_sweep_steps",
                format!(
                    "steps of a run of {} steps, 0-{}",
                    self.steps,
                    self.steps - 1
                ),
                s,
            ));
        }
        Ok(())
    }
}

/// Follows `followed` for `request.steps` steps on one problem and records what it and
/// `others` propose at the chosen coordinates (see the module's documentation).
pub fn probe<P: ProblemSet>(
    set: &P,
    followed: &OptimizerChoice,
    others: &[OptimizerChoice],
    request: &ProbeRequest,
) -> Result<Vec<Proposal>> {
    request.validate(set)?;
    let (dim, groups) = (set.dim(), set.groups());
    let mut rules: Vec<(String, Box<dyn UpdateRule>)> = std::iter::once(followed)
        .chain(others)
        .map(|c| Ok((c.label(), c.rule(&groups, dim, 1)?)))
        .collect::<Result<_>>()?;
    let mut theta = vec![0.0f32; dim];
    set.initial_point(request.problem, &mut theta);
    let (mut grad, mut trial, mut trial_grad, mut next) = (
        vec![0.0f32; dim],
        vec![0.0f32; dim],
        vec![0.0f32; dim],
        vec![0.0f32; dim],
    );
    let mut scratch = set.scratch();
    let mut out = Vec::new();
    for step in 0..request.steps {
        set.loss_and_gradient(request.problem, step, &theta, &mut grad, &mut scratch);
        if request.sweep_steps.contains(&step) {
            for (label, rule) in &rules {
                for &g in &request.sweep_gradients {
                    // A copy of the rule, so its own state stays the trajectory's.
                    let mut copy = rule.boxed_clone();
                    trial.copy_from_slice(&theta);
                    trial_grad.copy_from_slice(&grad);
                    for &i in &request.coordinates {
                        trial_grad[i] = g;
                    }
                    copy.step(&mut trial, &trial_grad);
                    for &i in &request.coordinates {
                        out.push(Proposal {
                            step,
                            coordinate: i,
                            gradient: g as f64,
                            update: (trial[i] - theta[i]) as f64,
                            optimizer: label.clone(),
                            swept: true,
                        });
                    }
                }
            }
        }
        for (k, (label, rule)) in rules.iter_mut().enumerate() {
            trial.copy_from_slice(&theta);
            rule.step(&mut trial, &grad);
            for &i in &request.coordinates {
                out.push(Proposal {
                    step,
                    coordinate: i,
                    gradient: grad[i] as f64,
                    update: (trial[i] - theta[i]) as f64,
                    optimizer: label.clone(),
                    swept: false,
                });
            }
            if k == 0 {
                next.copy_from_slice(&trial);
            }
        }
        std::mem::swap(&mut theta, &mut next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::Baseline;
    use crate::problems::{QuadraticFamily, QuadraticSet, ValueDistribution};

    fn quadratics() -> QuadraticSet {
        QuadraticFamily {
            dims: 10,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        }
        .sample(3, 2, crate::rng::streams::spec_problem)
    }

    fn sgd(lr: f64) -> OptimizerChoice {
        OptimizerChoice::Baseline {
            kind: Baseline::Sgd,
            lr,
        }
    }

    /// Following SGD, its own proposal is −lr·g; Adam's first proposal is −lr·sign(g) (its
    /// bias-corrected first step), and a swept gradient leaves the rules' state alone: the
    /// trajectory with sweeps equals the one without.
    #[test]
    fn proposals_are_the_rules_steps_and_sweeps_change_nothing() {
        let set = quadratics();
        let adam = OptimizerChoice::Baseline {
            kind: Baseline::Adam,
            lr: 0.1,
        };
        let plain = ProbeRequest {
            problem: 1,
            coordinates: vec![0, 7],
            steps: 6,
            sweep_steps: vec![],
            sweep_gradients: vec![],
        };
        let rows = probe(&set, &sgd(0.01), std::slice::from_ref(&adam), &plain).unwrap();
        for r in rows.iter().filter(|r| r.optimizer == "sgd") {
            assert!(
                (r.update + 0.01 * r.gradient).abs() < 1e-6 * (1.0 + r.gradient.abs()),
                "{r:?}"
            );
        }
        for r in rows.iter().filter(|r| r.optimizer == "adam" && r.step == 0) {
            assert!((r.update + 0.1 * r.gradient.signum()).abs() < 1e-4, "{r:?}");
        }
        let swept = ProbeRequest {
            sweep_steps: vec![0, 3],
            sweep_gradients: vec![-2.0, 0.0, 2.0],
            ..plain
        };
        let with_sweeps = probe(&set, &sgd(0.01), &[adam], &swept).unwrap();
        let trajectory: Vec<_> = with_sweeps.iter().filter(|r| !r.swept).cloned().collect();
        assert_eq!(trajectory, rows);
        let sweeps: Vec<_> = with_sweeps.iter().filter(|r| r.swept).collect();
        assert_eq!(sweeps.len(), 2 * 2 * 3 * 2);
        for r in sweeps.iter().filter(|r| r.optimizer == "sgd") {
            assert!((r.update + 0.01 * r.gradient).abs() < 1e-6, "{r:?}");
        }
    }

    #[test]
    fn requests_outside_the_problem_are_refused() {
        let set = quadratics();
        let request = ProbeRequest {
            problem: 0,
            coordinates: vec![10],
            steps: 5,
            sweep_steps: vec![],
            sweep_gradients: vec![],
        };
        let err = probe(&set, &sgd(0.1), &[], &request)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("probe must be coordinates the problems have, 0-9, got 10"),
            "{err}"
        );
        let request = ProbeRequest {
            coordinates: vec![1],
            sweep_steps: vec![5],
            ..request
        };
        let err = probe(&set, &sgd(0.1), &[], &request)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("probe_sweep_steps must be steps of a run of 5 steps, 0-4, got 5"),
            "{err}"
        );
    }
}

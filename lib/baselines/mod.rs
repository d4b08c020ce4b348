//! The hand-designed optimizers of the paper's comparisons (§3), with Torch7 `optim`'s
//! defaults, and the [`UpdateRule`] interface that the learned optimizers share; and L-BFGS
//! ([`lbfgs`]), the algorithm Appendix D's NTM-BFGS is built to imitate.

pub mod adam;
pub mod lbfgs;

use crate::error::{Error, Result};

/// An update rule applied to a block of coordinates, step after step.
pub trait UpdateRule: Send {
    /// θ ← θ + update(∇), advancing the rule's own state.
    fn step(&mut self, theta: &mut [f32], grad: &[f32]);
    /// A copy of the rule and its state (Appendix B asks what a rule would do with a gradient
    /// it was not given, without changing its state).
    fn boxed_clone(&self) -> Box<dyn UpdateRule>;
}

/// The hand-designed optimizers of the paper's comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Baseline {
    Sgd,
    /// Nesterov's accelerated gradient, as Torch7's `optim.nag` (Sutskever et al. 2013).
    Nag,
    Rmsprop,
    Adam,
    /// L-BFGS without a line search ([`lbfgs`]): not coordinatewise, so a baseline of
    /// `evaluate` only, never a base or imitated rule. `history`: the curvature pairs kept;
    /// `None` (plain `lbfgs`) is tuned over [`lbfgs::LBFGS_HISTORIES`] with the rate, or is
    /// [`lbfgs::LBFGS_HISTORY`] when the rate is given.
    Lbfgs {
        history: Option<u16>,
    },
}

/// Torch7 `optim` defaults other than the learning rate.
pub const NAG_MOMENTUM: f32 = 0.9;
pub const RMSPROP_ALPHA: f32 = 0.99;
pub const RMSPROP_EPSILON: f32 = 1e-8;
/// Adam as Torch7's `optim.adam` runs it, with its defaults.
pub const TORCH_ADAM: adam::Adam<f32> = adam::Adam {
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-8,
};

impl Baseline {
    pub const ALL: [Baseline; 4] = [
        Baseline::Sgd,
        Baseline::Nag,
        Baseline::Rmsprop,
        Baseline::Adam,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Sgd => "sgd",
            Baseline::Nag => "nag",
            Baseline::Rmsprop => "rmsprop",
            Baseline::Adam => "adam",
            Baseline::Lbfgs { .. } => "lbfgs",
        }
    }

    /// Its name in a tuning table and on `evaluate`'s command line: the name, and for L-BFGS
    /// with a set history the history, `lbfgs-m5`, which names what tuning chose.
    pub fn tuning_name(self) -> String {
        match self {
            Baseline::Lbfgs {
                history: Some(history),
            } => format!("lbfgs-m{history}"),
            _ => self.name().into(),
        }
    }

    /// The baselines a tuning of this one tries, each with the grid's rates: itself, or for
    /// L-BFGS without a history, one per history of [`lbfgs::LBFGS_HISTORIES`].
    pub fn tuning_variants(self) -> Vec<Baseline> {
        match self {
            Baseline::Lbfgs { history: None } => lbfgs::LBFGS_HISTORIES
                .iter()
                .map(|&h| Baseline::Lbfgs { history: Some(h) })
                .collect(),
            _ => vec![self],
        }
    }

    /// Whether `tried`, a point of a tuning, tunes this baseline (is one of its
    /// [`Baseline::tuning_variants`]).
    pub fn is_tuned_by(self, tried: Baseline) -> bool {
        match (self, tried) {
            (Baseline::Lbfgs { history: None }, Baseline::Lbfgs { history: Some(h) }) => {
                lbfgs::LBFGS_HISTORIES.contains(&h)
            }
            _ => self == tried,
        }
    }

    /// One of the paper's four coordinatewise baselines, by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Any baseline `evaluate` runs, by name: the paper's four, and L-BFGS as `lbfgs` or with
    /// its history, `lbfgs-mK` (K from 1 to [`lbfgs::MAX_LBFGS_HISTORY`]).
    pub fn evaluated_from_name(name: &str) -> Option<Self> {
        let history = match name.strip_prefix("lbfgs") {
            Some("") => None,
            Some(rest) => {
                let digits = rest.strip_prefix("-m")?;
                let k: u16 = digits.parse().ok()?;
                let canonical = k.to_string() == digits;
                let known = canonical && (1..=lbfgs::MAX_LBFGS_HISTORY).contains(&k);
                Some(known.then_some(k)?)
            }
            None => return Self::from_name(name),
        };
        Some(Baseline::Lbfgs { history })
    }

    /// Its update rule over `problems` problems of `dim` coordinates.
    pub fn rule_for(self, lr: f64, problems: usize, dim: usize) -> Box<dyn UpdateRule> {
        match self {
            Baseline::Lbfgs { history } => Box::new(lbfgs::LbfgsRule::new(
                lr,
                history.map_or(lbfgs::LBFGS_HISTORY, usize::from),
                problems,
                dim,
            )),
            _ => Box::new(self.rule(lr, problems * dim)),
        }
    }

    /// Torch7's default learning rate, used when none is given.
    pub fn default_lr(self) -> f64 {
        match self {
            Baseline::Sgd | Baseline::Nag | Baseline::Adam => 1e-3,
            Baseline::Rmsprop => 1e-2,
            Baseline::Lbfgs { .. } => 1.0,
        }
    }

    /// The rule of a coordinatewise baseline over `rows` coordinates (L-BFGS's is
    /// [`Baseline::rule_for`]'s).
    pub fn rule(self, lr: f64, rows: usize) -> BaselineRule {
        let with_state = |k: usize| vec![0.0f32; rows * k];
        BaselineRule {
            kind: self,
            lr: lr as f32,
            first: with_state(match self {
                Baseline::Sgd => 0,
                _ => 1,
            }),
            second: with_state(usize::from(self == Baseline::Adam)),
            t: 0,
        }
    }
}

/// A hand-designed rule with a fixed learning rate under a learned optimizer (beyond the
/// paper): the LSTM learns a correction to this rule's step, and an LSTM whose output is zero
/// is exactly this rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaseStep {
    pub kind: Baseline,
    pub lr: f64,
    pub form: CorrectionForm,
}

/// How the LSTM's output m (times the output scale s) corrects a base rule's step Δ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CorrectionForm {
    /// θ ← θ + Δ + s·m: a step added to the rule's.
    Added,
    /// θ ← θ + Δ·exp(s·m): the rule's step, stretched or shrunk coordinate by coordinate. A
    /// network per parameter kind (§3.3) can so learn, among other things, a rate per kind.
    Scaled,
}

impl CorrectionForm {
    pub fn name(self) -> &'static str {
        match self {
            CorrectionForm::Added => "added",
            CorrectionForm::Scaled => "scaled",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [CorrectionForm::Added, CorrectionForm::Scaled]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

impl std::fmt::Display for BaseStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.kind.name(), self.lr)?;
        match self.form {
            CorrectionForm::Added => Ok(()),
            CorrectionForm::Scaled => write!(f, " (scaled)"),
        }
    }
}

/// A baseline with its per-coordinate state.
#[derive(Clone)]
pub struct BaselineRule {
    kind: Baseline,
    lr: f32,
    /// NAG: velocity v; RMSprop: mean square m; Adam: first moment m.
    first: Vec<f32>,
    /// Adam: second moment v.
    second: Vec<f32>,
    t: i32,
}

impl BaselineRule {
    /// Back to the state before the first step, for a new trajectory.
    pub fn reset(&mut self) {
        self.first.fill(0.0);
        self.second.fill(0.0);
        self.t = 0;
    }

    /// Advances the rule's state by one step on `grad` and writes its step Δ, without applying
    /// it, to `delta` (a base rule scaled by a learned optimizer, [`CorrectionForm::Scaled`]).
    pub fn delta(&mut self, delta: &mut [f32], grad: &[f32]) {
        self.advance(delta, grad, |d, step| *d = step);
    }

    /// One step of the rule on `grad`, handing each coordinate's step Δ to `apply` with that
    /// coordinate's slot of `out`. θ + Δ rounds as θ − |Δ| does, so applying Δ by addition
    /// gives the bits the rule's own subtraction gave.
    #[inline(always)]
    fn advance(&mut self, out: &mut [f32], grad: &[f32], apply: impl Fn(&mut f32, f32)) {
        let lr = self.lr;
        match self.kind {
            Baseline::Sgd => {
                for (x, g) in out.iter_mut().zip(grad) {
                    apply(x, -(lr * g));
                }
            }
            Baseline::Nag => {
                // Torch's nag evaluates the gradient at the look-ahead point x + μv; taking
                // that point as the iterate gives θ ← θ + μ²v − (1+μ)·lr·∇, v ← μv − lr·∇,
                // which reports the same losses as optim.nag does.
                let mu = NAG_MOMENTUM;
                for ((x, v), g) in out.iter_mut().zip(&mut self.first).zip(grad) {
                    apply(x, mu * mu * *v - (1.0 + mu) * lr * g);
                    *v = mu * *v - lr * g;
                }
            }
            Baseline::Rmsprop => {
                for ((x, m), g) in out.iter_mut().zip(&mut self.first).zip(grad) {
                    *m = RMSPROP_ALPHA * *m + (1.0 - RMSPROP_ALPHA) * g * g;
                    apply(x, -(lr * g / (m.sqrt() + RMSPROP_EPSILON)));
                }
            }
            Baseline::Adam => {
                // optim.adam: ε is added to √v before the bias corrections, which fold into
                // the step size.
                self.t += 1;
                let step = TORCH_ADAM.torch_step_size(lr, self.t);
                for (((x, m), v), &g) in out
                    .iter_mut()
                    .zip(&mut self.first)
                    .zip(&mut self.second)
                    .zip(grad)
                {
                    (*m, *v) = TORCH_ADAM.moments(*m, *v, g);
                    apply(x, TORCH_ADAM.torch_step(step, *m, *v));
                }
            }
            // Never built: `from_name`, which names base and imitated rules, leaves it out.
            Baseline::Lbfgs { .. } => {
                unreachable!("L-BFGS is not coordinatewise (Baseline::rule_for)")
            }
        }
    }
}

impl UpdateRule for BaselineRule {
    fn boxed_clone(&self) -> Box<dyn UpdateRule> {
        Box::new(self.clone())
    }
    fn step(&mut self, theta: &mut [f32], grad: &[f32]) {
        self.advance(theta, grad, |x, step| *x += step);
    }
}

/// Checks a learning rate before any work starts.
pub fn validate_lr(lr: f64) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "learning rate must be a positive number, got {lr}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_steps(kind: Baseline, lr: f64) -> Vec<f32> {
        let mut rule = kind.rule(lr, 2);
        let mut theta = vec![1.0f32, -2.0];
        rule.step(&mut theta, &[0.5, -4.0]);
        rule.step(&mut theta, &[0.25, 2.0]);
        theta
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (*x as f64 - y).abs() < 1e-6 * (1.0 + y.abs()),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn sgd_by_hand() {
        // θ1 = θ0 − 0.1 g0, θ2 = θ1 − 0.1 g1.
        close(
            &two_steps(Baseline::Sgd, 0.1),
            &[1.0 - 0.05 - 0.025, -2.0 + 0.4 - 0.2],
        );
    }

    #[test]
    fn nag_by_hand() {
        // Step 1: v = −lr g0 = (−0.05, 0.4); θ = θ0 − 1.9·lr·g0 = (0.905, −1.24).
        // Step 2: θ += 0.81 v − 1.9·lr·g1 = (0.905 − 0.0405 − 0.0475, −1.24 + 0.324 − 0.38).
        close(&two_steps(Baseline::Nag, 0.1), &[0.817, -1.296]);
    }

    #[test]
    fn nag_matches_torch_lookahead_form() {
        // optim.nag on f = ½θ²: x ← x + μv (look-ahead), g = x, v ← μv − lr g, x ← x − lr g.
        // The look-ahead points are what our iterate follows.
        let (lr, mu) = (0.1f64, 0.9f64);
        let (mut x, mut v) = (1.0f64, 0.0f64);
        let mut lookahead = Vec::new();
        for k in 0..5 {
            if k > 0 {
                x += mu * v;
            }
            lookahead.push(x);
            let g = x;
            v = mu * v - lr * g;
            x -= lr * g;
        }
        let mut rule = Baseline::Nag.rule(lr, 1);
        let mut theta = [1.0f32];
        for want in lookahead {
            assert!((theta[0] as f64 - want).abs() < 1e-6);
            let g = [theta[0]];
            rule.step(&mut theta, &g);
        }
    }

    #[test]
    fn rmsprop_by_hand() {
        // m1 = 0.01 g0², θ1 = θ0 − lr g0/√m1 = θ0 − lr·sign(g0)·10.
        let m1: [f64; 2] = [0.01 * 0.25, 0.01 * 16.0];
        let t1 = [
            1.0 - 0.01 * 0.5 / m1[0].sqrt(),
            -2.0 + 0.01 * 4.0 / m1[1].sqrt(),
        ];
        let m2 = [0.99 * m1[0] + 0.01 * 0.0625, 0.99 * m1[1] + 0.01 * 4.0];
        let t2 = [
            t1[0] - 0.01 * 0.25 / m2[0].sqrt(),
            t1[1] - 0.01 * 2.0 / m2[1].sqrt(),
        ];
        close(&two_steps(Baseline::Rmsprop, 0.01), &t2);
    }

    #[test]
    fn adam_by_hand() {
        // Step 1: bias-corrected m/√v = sign(g0), so θ1 = θ0 − lr·sign(g0) (up to ε).
        // Step 2: m = 0.09 g0 + 0.1 g1, v = 0.000999 g0² + 0.001 g1²,
        //         θ2 = θ1 − lr·√(1−0.999²)/(1−0.9²) · m/√v.
        let lr = 0.1f64;
        let g0 = [0.5f64, -4.0];
        let g1 = [0.25f64, 2.0];
        let mut want = [1.0 - lr, -2.0 + lr];
        for k in 0..2 {
            let m = 0.9 * 0.1 * g0[k] + 0.1 * g1[k];
            let v = 0.999 * 0.001 * g0[k] * g0[k] + 0.001 * g1[k] * g1[k];
            let step = lr * (1.0f64 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
            want[k] -= step * m / v.sqrt();
        }
        close(&two_steps(Baseline::Adam, lr), &want);
    }
}

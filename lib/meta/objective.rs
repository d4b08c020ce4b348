//! The meta-loss, eq. (3): L(φ) = E_f [Σ_{t=1..T} w_t f(θ_t)], with the paper's w_t = 1, the
//! logarithmic form, and w_t = 0 before a chosen step (docs/method.md, "The meta-loss").

use ndarray::Array2;

/// The meta-loss of a trajectory, eq. (3) with w_t = 1 or its logarithmic form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
    pub fn term_and_weight(self, f: f64) -> (f64, f64) {
        match self {
            MetaLoss::Sum => (f, 1.0),
            MetaLoss::Log => {
                let f = f.max(Self::FLOOR);
                (f.ln(), 1.0 / f)
            }
        }
    }
}

/// The term of the loss `f` of step `step` in the meta-loss and its weight w_t: eq. (3)'s
/// w_t = 0 before `loss_from`.
pub fn step_term(meta_loss: MetaLoss, loss_from: usize, step: usize, f: f64) -> (f64, f64) {
    if step >= loss_from {
        meta_loss.term_and_weight(f)
    } else {
        (0.0, 0.0)
    }
}

/// The meta-loss of whole trajectories `losses[[problem, step]]`, per problem and step: the
/// mean over problems of (1/T') Σ_{t=from..T} of [`MetaLoss`]'s term of f(θ_t), over the T'
/// steps from `loss_from`; infinite if any run diverged.
pub fn trajectory_meta_loss(meta_loss: MetaLoss, loss_from: usize, losses: &Array2<f64>) -> f64 {
    let losses = losses.slice(ndarray::s![.., loss_from..]);
    if losses.iter().any(|f| !f.is_finite()) {
        return f64::INFINITY;
    }
    losses
        .iter()
        .map(|&f| meta_loss.term_and_weight(f).0)
        .sum::<f64>()
        / losses.len() as f64
}

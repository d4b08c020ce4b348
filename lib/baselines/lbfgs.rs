//! L-BFGS without a line search (Nocedal and Wright 2006, Algorithm 7.4): the hand-designed
//! algorithm Appendix D's NTM-BFGS is built to imitate, as a baseline whose rate is tuned like
//! the others', together with its history. Each problem keeps the last `history` curvature
//! pairs s = θ_{k+1} − θ_k, y = ∇_{k+1} − ∇_k; the step is θ ← θ − lr · H∇, H∇ from the
//! two-loop recursion with H_0 = (sᵀy / yᵀy) I from the newest pair (I before any). A pair
//! whose sᵀy is not positive (no curvature along s, which minibatch gradients can give) is not
//! kept, so H stays positive definite.

use super::UpdateRule;
use std::collections::VecDeque;

/// Curvature pairs kept when the rate is given and the history is not (the common default of
/// L-BFGS codes, e.g. SciPy's).
pub const LBFGS_HISTORY: usize = 10;

/// The histories a tuning tries, each with every rate of the grid: from a few pairs, which
/// forget curvature that minibatch noise has made stale, to twice the common default.
pub const LBFGS_HISTORIES: [u16; 4] = [3, 5, 10, 20];

/// The longest history `lbfgs-mK` accepts.
pub const MAX_LBFGS_HISTORY: u16 = 1000;

/// One problem's pairs and last point.
#[derive(Clone)]
struct Problem {
    /// (s, y, 1 / sᵀy), oldest first.
    pairs: VecDeque<(Vec<f32>, Vec<f32>, f32)>,
    last_theta: Vec<f32>,
    last_grad: Vec<f32>,
    started: bool,
}

/// L-BFGS over `problems` problems of `dim` coordinates each.
#[derive(Clone)]
pub struct LbfgsRule {
    lr: f32,
    history: usize,
    dim: usize,
    problems: Vec<Problem>,
    /// Scratch: the two-loop recursion's α per pair, and its vector.
    alpha: Vec<f32>,
    direction: Vec<f32>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl LbfgsRule {
    pub fn new(lr: f64, history: usize, problems: usize, dim: usize) -> Self {
        let problem = Problem {
            pairs: VecDeque::new(),
            last_theta: vec![0.0; dim],
            last_grad: vec![0.0; dim],
            started: false,
        };
        LbfgsRule {
            lr: lr as f32,
            history,
            dim,
            problems: vec![problem; problems],
            alpha: vec![0.0; history],
            direction: vec![0.0; dim],
        }
    }

    /// One problem's step.
    fn step_problem(&mut self, p: usize, theta: &mut [f32], grad: &[f32]) {
        let problem = &mut self.problems[p];
        if problem.started {
            let s: Vec<f32> = theta
                .iter()
                .zip(&problem.last_theta)
                .map(|(a, b)| a - b)
                .collect();
            let y: Vec<f32> = grad
                .iter()
                .zip(&problem.last_grad)
                .map(|(a, b)| a - b)
                .collect();
            let sy = dot(&s, &y);
            if sy > 0.0 && sy.is_finite() {
                if problem.pairs.len() == self.history {
                    problem.pairs.pop_front();
                }
                problem.pairs.push_back((s, y, 1.0 / sy));
            }
        }
        problem.started = true;
        problem.last_theta.copy_from_slice(theta);
        problem.last_grad.copy_from_slice(grad);
        // Two-loop recursion: q = ∇, newest pair first ...
        let q = &mut self.direction;
        q.copy_from_slice(grad);
        for (k, (s, y, rho)) in problem.pairs.iter().enumerate().rev() {
            let a = rho * dot(s, q);
            self.alpha[k] = a;
            q.iter_mut().zip(y).for_each(|(x, yi)| *x -= a * yi);
        }
        // ... scaled by H_0 ...
        if let Some((s, y, _)) = problem.pairs.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|x| *x *= gamma);
        }
        // ... then oldest first.
        for (k, (s, y, rho)) in problem.pairs.iter().enumerate() {
            let b = rho * dot(y, q);
            let a = self.alpha[k];
            q.iter_mut().zip(s).for_each(|(x, si)| *x += (a - b) * si);
        }
        for (x, d) in theta.iter_mut().zip(q.iter()) {
            *x -= self.lr * d;
        }
    }
}

impl UpdateRule for LbfgsRule {
    fn step(&mut self, theta: &mut [f32], grad: &[f32]) {
        let dim = self.dim;
        for p in 0..self.problems.len() {
            let rows = p * dim..(p + 1) * dim;
            self.step_problem(p, &mut theta[rows.clone()], &grad[rows]);
        }
    }
    fn boxed_clone(&self) -> Box<dyn UpdateRule> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On f(θ) = ½ θᵀAθ with A = diag(1, 4): the first step is −lr·∇; the second is
    /// −lr·H₁∇ with H₁ = (I − ρsyᵀ) γI (I − ρysᵀ) + ρssᵀ, γ = sᵀy/yᵀy, written out by hand.
    #[test]
    fn two_steps_by_hand() {
        let grad = |t: &[f32]| vec![t[0], 4.0 * t[1]];
        let lr = 0.1;
        let mut rule = LbfgsRule::new(lr, 5, 1, 2);
        let mut theta = vec![1.0f32, 1.0];
        let g0 = grad(&theta);
        rule.step(&mut theta, &g0);
        assert_eq!(theta, vec![1.0 - 0.1, 1.0 - 0.4]);
        let g1 = grad(&theta);
        let before = theta.clone();
        rule.step(&mut theta, &g1);
        // s = (−0.1, −0.4), y = (−0.1, −1.6): sᵀy = 0.65, yᵀy = 2.57.
        let (s, y) = ([-0.1f64, -0.4], [-0.1f64, -1.6]);
        let rho = 1.0 / 0.65;
        let gamma = 0.65 / 2.57;
        let g = [g1[0] as f64, g1[1] as f64];
        // H₁g = γ(g − ρ s (yᵀg)) − γρ y... expanded: with v = g − ρ y (sᵀg),
        // H₁g = γ (v − ρ s (yᵀv)) + ρ s (sᵀg).
        let sg = s[0] * g[0] + s[1] * g[1];
        let v = [g[0] - rho * y[0] * sg, g[1] - rho * y[1] * sg];
        let yv = y[0] * v[0] + y[1] * v[1];
        let h = [
            gamma * (v[0] - rho * s[0] * yv) + rho * s[0] * sg,
            gamma * (v[1] - rho * s[1] * yv) + rho * s[1] * sg,
        ];
        for k in 0..2 {
            let expect = before[k] as f64 - lr * h[k];
            assert!(
                (theta[k] as f64 - expect).abs() < 1e-6,
                "{k}: {} vs {expect}",
                theta[k]
            );
        }
    }

    /// With lr 1 on a 2-d quadratic, two pairs make H the inverse Hessian along both
    /// directions, so the third step lands on the minimum; and problems do not mix.
    #[test]
    fn it_solves_a_small_quadratic_and_keeps_problems_apart() {
        let grad = |t: &[f32]| vec![t[0] + 0.5 * t[1], 0.5 * t[0] + 3.0 * t[1]];
        let mut rule = LbfgsRule::new(1.0, 10, 2, 2);
        let mut theta = vec![1.0f32, -2.0, 0.0, 0.0];
        for _ in 0..6 {
            let mut g = grad(&theta[..2]);
            g.extend(grad(&theta[2..]));
            rule.step(&mut theta, &g);
        }
        assert!(theta[..2].iter().all(|x| x.abs() < 1e-4), "{theta:?}");
        assert_eq!(theta[2..], [0.0, 0.0]);
    }
}

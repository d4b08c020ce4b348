//! A separable quadratic f(θ) = ½ Σ_i a_i θ_i² with curvatures a_i log-uniform in
//! [1e-2, 1e2]: a gradient stream of any size whose own cost is negligible, for measuring the
//! optimizer at the scale of a real network (the benchmark's MNIST-sized task).

use super::{HessianVector, ProblemSet};
use crate::rng::Rng;

pub struct SeparableQuadratic {
    curvature: Vec<f32>,
    theta0: Vec<f32>,
    count: usize,
}

impl SeparableQuadratic {
    /// `count` identical problems of `dim` coordinates drawn from `seed`.
    pub fn new(dim: usize, count: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed, 0);
        let curvature = (0..dim)
            .map(|_| 10f64.powf(4.0 * rng.uniform() - 2.0) as f32)
            .collect();
        let theta0 = (0..dim).map(|_| rng.normal() as f32).collect();
        SeparableQuadratic {
            curvature,
            theta0,
            count,
        }
    }
}

impl ProblemSet for SeparableQuadratic {
    type Scratch = ();

    fn count(&self) -> usize {
        self.count
    }
    fn dim(&self) -> usize {
        self.curvature.len()
    }
    fn scratch(&self) {}
    fn initial_point(&self, _problem: usize, theta: &mut [f32]) {
        theta.copy_from_slice(&self.theta0);
    }
    fn loss_and_gradient(
        &self,
        _p: usize,
        _step: usize,
        theta: &[f32],
        grad: &mut [f32],
        _s: &mut (),
    ) -> f64 {
        let mut loss = 0.0f32;
        for ((g, &a), &x) in grad.iter_mut().zip(&self.curvature).zip(theta) {
            *g = a * x;
            loss += 0.5 * a * x * x;
        }
        loss as f64
    }
    fn hessian(&self) -> Option<&dyn HessianVector<()>> {
        Some(self)
    }
}

impl HessianVector<()> for SeparableQuadratic {
    fn hessian_vector(
        &self,
        _p: usize,
        _step: usize,
        _theta: &[f32],
        v: &[f32],
        hv: &mut [f32],
        _s: &mut (),
    ) {
        for ((h, &a), &x) in hv.iter_mut().zip(&self.curvature).zip(v) {
            *h = a * x;
        }
    }
}

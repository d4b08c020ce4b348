//! What the LSTM sees of a gradient, and what the optimizee receives of its output (§2.1,
//! "Preprocessing and postprocessing", and Appendix A).

use crate::error::{config_error, Result};

/// How each gradient coordinate becomes the LSTM's input features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Preprocessing {
    /// One feature: the gradient times a constant (§2.1; the paper's quadratic experiment uses
    /// no preprocessing, which is `Scale(1)`).
    Scale(f32),
    /// Two features, Appendix A: (log|∇|/p, sgn ∇) if |∇| ≥ e^{−p}, else (−1, e^p ∇).
    LogSign { p: f32 },
}

impl Preprocessing {
    pub fn features(&self) -> usize {
        match self {
            Preprocessing::Scale(_) => 1,
            Preprocessing::LogSign { .. } => 2,
        }
    }

    pub fn validate(&self) -> Result<()> {
        match *self {
            Preprocessing::Scale(s) if !(s.is_finite() && s > 0.0) => {
                config_error(format!("input scale must be a positive number, got {s}"))
            }
            Preprocessing::LogSign { p } if !(p.is_finite() && p > 0.0) => config_error(format!(
                "preprocessing p must be a positive number, got {p}"
            )),
            _ => Ok(()),
        }
    }

    /// Writes the features of every gradient coordinate into `features`
    /// (`grad.len() × self.features()` values, row-major).
    pub fn apply(&self, grad: &[f32], features: &mut [f32]) {
        match *self {
            Preprocessing::Scale(s) => {
                for (x, g) in features.iter_mut().zip(grad) {
                    *x = g * s;
                }
            }
            Preprocessing::LogSign { p } => {
                let threshold = (-p).exp();
                let ep = p.exp();
                let inv_p = 1.0 / p;
                // Both branches are computed and one selected, so the loop vectorises.
                for (x, &g) in features.chunks_exact_mut(2).zip(grad) {
                    let a = g.abs();
                    let large = a >= threshold;
                    x[0] = if large {
                        crate::kernels::fastmath::ln_f32(a) * inv_p
                    } else {
                        -1.0
                    };
                    x[1] = if large { g.signum() } else { ep * g };
                }
            }
        }
    }

    /// The chain rule back through [`Preprocessing::apply`]: given dL/d(features), writes
    /// dL/d∇ per coordinate. Appendix A's sign and its clamp −1 are flat, so the log/sign
    /// input passes back 1/(p∇) from its log feature or e^p from its linear one.
    pub fn input_gradient(&self, grad: &[f32], d_features: &[f32], d_grad: &mut [f32]) {
        match *self {
            Preprocessing::Scale(s) => {
                for (d, x) in d_grad.iter_mut().zip(d_features) {
                    *d = x * s;
                }
            }
            Preprocessing::LogSign { p } => {
                let threshold = (-p).exp();
                let ep = p.exp();
                for ((d, x), &g) in d_grad.iter_mut().zip(d_features.chunks_exact(2)).zip(grad) {
                    *d = if g.abs() >= threshold {
                        x[0] / (p * g)
                    } else {
                        x[1] * ep
                    };
                }
            }
        }
    }

    /// (code, parameter) as stored in a checkpoint: 0 = scale, 1 = Appendix A log/sign.
    pub fn to_code(&self) -> (i64, f64) {
        match *self {
            Preprocessing::Scale(s) => (0, s as f64),
            Preprocessing::LogSign { p } => (1, p as f64),
        }
    }

    pub fn from_code(code: i64, param: f64) -> Option<Self> {
        let p = param as f32;
        match code {
            0 => Some(Preprocessing::Scale(p)),
            1 => Some(Preprocessing::LogSign { p }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Preprocessing::Scale(s) => write!(f, "scale({s})"),
            Preprocessing::LogSign { p } => write!(f, "log-sign(p={p})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(p: &Preprocessing, g: f32) -> Vec<f32> {
        let mut out = vec![0.0; p.features()];
        p.apply(&[g], &mut out);
        out
    }

    #[test]
    fn scale_multiplies() {
        assert_eq!(features(&Preprocessing::Scale(0.5), -4.0), [-2.0]);
    }

    #[test]
    fn log_sign_branches_and_boundary() {
        let pre = Preprocessing::LogSign { p: 10.0 };
        // Zero and tiny gradients take the linear branch.
        assert_eq!(features(&pre, 0.0), [-1.0, 0.0]);
        let tiny = 1e-6f32;
        let f = features(&pre, tiny);
        assert_eq!(f[0], -1.0);
        assert!((f[1] - 10f32.exp() * tiny).abs() < 1e-6);
        // Huge gradients: log scaled, sign kept.
        let f = features(&pre, -1e6);
        assert!((f[0] - 1e6f32.ln() / 10.0).abs() < 1e-6);
        assert_eq!(f[1], -1.0);
        // At the boundary |∇| = e^{-p} both branches agree: (−1, ±1).
        let b = (-10.0f32).exp();
        let f = features(&pre, b);
        assert!((f[0] + 1.0).abs() < 1e-5 && f[1] == 1.0);
        let just_below = features(&pre, b * 0.999_99);
        assert!((just_below[0] + 1.0).abs() < 1e-6 && (just_below[1] - 1.0).abs() < 1e-4);
    }

    /// Against central differences of a weighted sum of the features, away from the
    /// log/sign branch point.
    #[test]
    fn input_gradient_matches_finite_differences() {
        for pre in [
            Preprocessing::Scale(0.3),
            Preprocessing::LogSign { p: 10.0 },
        ] {
            let grads = [0.7f32, -2.0e-3, 3.0e-6, -1.0e-5, 12.0];
            let weights = [0.4f32, -1.3];
            let n = pre.features();
            let d_features: Vec<f32> = (0..grads.len() * n).map(|i| weights[i % n]).collect();
            let mut d_grad = vec![0.0f32; grads.len()];
            pre.input_gradient(&grads, &d_features, &mut d_grad);
            for (k, &g) in grads.iter().enumerate() {
                let eps = 1e-3 * g.abs();
                let weighted = |g: f32| -> f64 {
                    features(&pre, g)
                        .iter()
                        .zip(&weights)
                        .map(|(x, w)| (x * w) as f64)
                        .sum()
                };
                let fd = (weighted(g + eps) - weighted(g - eps)) / (2.0 * eps as f64);
                let err = (fd - d_grad[k] as f64).abs() / fd.abs().max(1e-6);
                assert!(err < 1e-2, "{pre} at {g}: {} vs {fd}", d_grad[k]);
            }
        }
    }

    #[test]
    fn codes_round_trip() {
        for p in [
            Preprocessing::Scale(0.25),
            Preprocessing::LogSign { p: 5.0 },
        ] {
            let (c, v) = p.to_code();
            assert_eq!(Preprocessing::from_code(c, v), Some(p));
        }
        assert!(Preprocessing::Scale(0.0).validate().is_err());
    }
}

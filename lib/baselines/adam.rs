//! Adam (Kingma and Ba 2015), written once for its two uses: the baseline of the paper's
//! comparisons in Torch7 `optim`'s form and f32 ([`super::BaselineRule`]), and the
//! meta-optimizer of the learned optimizer's weights φ in the paper's form and f64
//! (`meta::trainer`). The two forms share the moments and the bias corrections and differ only
//! in where ε enters: Torch adds it to √v before the bias corrections, which then fold into the
//! step size; Kingma and Ba add it to the bias-corrected √v̂.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// The arithmetic Adam needs, for f32 and f64.
pub trait AdamFloat:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ONE: Self;
    fn sqrt(self) -> Self;
    fn powi(self, n: i32) -> Self;
}

macro_rules! adam_float {
    ($($t:ty),*) => {$(
        impl AdamFloat for $t {
            const ONE: Self = 1.0;
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
        }
    )*};
}
adam_float!(f32, f64);

/// Adam's decay rates and ε.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam<F> {
    pub beta1: F,
    pub beta2: F,
    pub epsilon: F,
}

impl<F: AdamFloat> Adam<F> {
    /// The moments after gradient `g`: m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g².
    #[inline(always)]
    pub fn moments(&self, m: F, v: F, g: F) -> (F, F) {
        (
            self.beta1 * m + (F::ONE - self.beta1) * g,
            self.beta2 * v + (F::ONE - self.beta2) * g * g,
        )
    }

    /// The bias corrections (1 − β1^t, 1 − β2^t) of step `t` (from 1).
    pub fn bias_corrections(&self, t: i32) -> (F, F) {
        (F::ONE - self.beta1.powi(t), F::ONE - self.beta2.powi(t))
    }

    /// Torch's step size of step `t`: lr·√(1 − β2^t) / (1 − β1^t).
    pub fn torch_step_size(&self, lr: F, t: i32) -> F {
        let (bc1, bc2) = self.bias_corrections(t);
        lr * bc2.sqrt() / bc1
    }

    /// Torch's step (to add to θ) for the moments m, v and [`Adam::torch_step_size`].
    #[inline(always)]
    pub fn torch_step(&self, step_size: F, m: F, v: F) -> F {
        -(step_size * m / (v.sqrt() + self.epsilon))
    }

    /// Kingma and Ba's decrement (to subtract from θ): lr·m̂ / (√v̂ + ε), with m̂ and v̂ the
    /// moments over the bias corrections `bc`.
    #[inline(always)]
    pub fn kingma_decrement(&self, lr: F, m: F, v: F, bc: (F, F)) -> F {
        lr * (m / bc.0) / ((v / bc.1).sqrt() + self.epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without ε the two forms are one update: lr·√(1−β2^t)/(1−β1^t)·m/√v = lr·m̂/√v̂.
    #[test]
    fn the_two_forms_agree_without_epsilon() {
        let adam = Adam {
            beta1: 0.9f64,
            beta2: 0.999,
            epsilon: 0.0,
        };
        let (mut m, mut v) = (0.0, 0.0);
        for (t, g) in [0.5, -2.0, 0.25, 4.0].into_iter().enumerate() {
            (m, v) = adam.moments(m, v, g);
            let t = t as i32 + 1;
            let torch = adam.torch_step(adam.torch_step_size(0.1, t), m, v);
            let kingma = adam.kingma_decrement(0.1, m, v, adam.bias_corrections(t));
            assert!(
                (torch + kingma).abs() < 1e-12 * kingma.abs(),
                "{torch} {kingma}"
            );
        }
    }
}

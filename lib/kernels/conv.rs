//! Kernels of the conv-net optimizee (§3.3) besides the convolutions themselves
//! (`direct_conv/`): the adjoint convolution's kernel, 2×2 max-pooling with stride 2, batch
//! normalisation with minibatch statistics, and ReLU.
//!
//! Activations are channel-major, `[C, B, H, W]` row-major (one row of `B·H·W` values per
//! channel), so that batch norm's statistics are row reductions and a run of neighbouring
//! pixels of a row is one vector.

use super::lane_sum;

/// The shape of a channel-major activation `[C, B, H, W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub channels: usize,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
}

impl Planes {
    pub fn new(channels: usize, batch: usize, height: usize, width: usize) -> Self {
        Planes {
            channels,
            batch,
            height,
            width,
        }
    }
    /// Values per channel: `B·H·W`.
    pub fn per_channel(&self) -> usize {
        self.batch * self.height * self.width
    }
    pub fn len(&self) -> usize {
        self.channels * self.per_channel()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape after 2×2 pooling with stride 2.
    pub fn pooled(&self) -> Planes {
        Planes {
            height: self.height / 2,
            width: self.width / 2,
            ..*self
        }
    }
}

/// The kernel of the adjoint of a SAME convolution with stride 1: the gradient at the input
/// is the SAME convolution of the output's gradient with `flipped[ci][(co·k + di)·k + dj] =
/// w[co][(ci·k + k−1−di)·k + k−1−dj]`, input and output channels swapped and each kernel
/// turned by 180°.
pub fn flip_kernel(
    w: &[f32],
    out_channels: usize,
    in_channels: usize,
    k: usize,
    flipped: &mut [f32],
) {
    let k2 = k * k;
    for ci in 0..in_channels {
        for co in 0..out_channels {
            let src = &w[(co * in_channels + ci) * k2..][..k2];
            let dst = &mut flipped[(ci * out_channels + co) * k2..][..k2];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
}

/// 2×2 max-pooling with stride 2 of `x` (even height and width) into `y`, with which of each
/// window's four values is the maximum kept in `arg` for the backward pass (0 and 1 on the
/// window's top row, 2 and 3 below; the first of equal values wins). Written branch-free
/// over whole rows so that it vectorises.
pub fn max_pool2(x: &[f32], shape: Planes, y: &mut [f32], arg: &mut [u8]) {
    let w = shape.width;
    let wo = w / 2;
    for ((rows, yo), ao) in x
        .chunks_exact(2 * w)
        .zip(y.chunks_exact_mut(wo))
        .zip(arg.chunks_exact_mut(wo))
    {
        let (top, bottom) = rows.split_at(w);
        for (j, (o, k)) in yo.iter_mut().zip(ao.iter_mut()).enumerate() {
            let (mut m, mut at) = (top[2 * j], 0u8);
            for (v, code) in [
                (top[2 * j + 1], 1),
                (bottom[2 * j], 2),
                (bottom[2 * j + 1], 3),
            ] {
                let greater = v > m;
                m = if greater { v } else { m };
                at = if greater { code } else { at };
            }
            *o = m;
            *k = at;
        }
    }
}

/// The backward pass of [`max_pool2`]: each output's gradient goes to its maximum, and the
/// window's other values get 0; `dx` is overwritten. Four windows (8 values of each row) at a
/// time, so that the selections vectorise.
pub fn max_pool2_backward(dy: &[f32], arg: &[u8], shape: Planes, dx: &mut [f32]) {
    let w = shape.width;
    let wo = w / 2;
    for ((rows, go), ao) in dx
        .chunks_exact_mut(2 * w)
        .zip(dy.chunks_exact(wo))
        .zip(arg.chunks_exact(wo))
    {
        let (top, bottom) = rows.split_at_mut(w);
        let whole = wo / 4 * 4;
        for (((t, b), g), a) in top
            .chunks_exact_mut(8)
            .zip(bottom.chunks_exact_mut(8))
            .zip(go.chunks_exact(4))
            .zip(ao.chunks_exact(4))
        {
            let (g, a): (&[f32; 4], &[u8; 4]) = (g.try_into().unwrap(), a.try_into().unwrap());
            let (mut tv, mut bv) = ([0.0f32; 8], [0.0f32; 8]);
            for x in 0..8 {
                let (q, odd) = (x / 2, (x % 2) as u8);
                tv[x] = keep(g[q], a[q] == odd);
                bv[x] = keep(g[q], a[q] == 2 + odd);
            }
            t.copy_from_slice(&tv);
            b.copy_from_slice(&bv);
        }
        for j in whole..wo {
            let (g, k) = (go[j], ao[j]);
            top[2 * j] = keep(g, k == 0);
            top[2 * j + 1] = keep(g, k == 1);
            bottom[2 * j] = keep(g, k == 2);
            bottom[2 * j + 1] = keep(g, k == 3);
        }
    }
}

/// `g` where `yes`, else 0: a selection as a bit mask (all ones or zero), which the compiler
/// keeps branch-free.
#[inline(always)]
fn keep(g: f32, yes: bool) -> f32 {
    f32::from_bits(g.to_bits() & (yes as u32).wrapping_neg())
}

/// Batch normalisation's ε (Sonnet's and TensorFlow's default, as in the original code).
pub const BN_EPSILON: f32 = 1e-3;

/// Batch normalisation with minibatch statistics, then ReLU, over the rows of `z` (one row per
/// channel or unit, `n` values each): `xhat = (z − mean)/√(var + ε)`, `a = max(γ·xhat + β, 0)`.
/// Keeps `xhat` and each row's 1/√(var + ε) for the backward pass.
pub fn batch_norm_relu(
    z: &[f32],
    n: usize,
    gamma: &[f32],
    beta: &[f32],
    xhat: &mut [f32],
    inv_std: &mut [f32],
    a: &mut [f32],
) {
    for (r, ((zr, xr), ar)) in z
        .chunks_exact(n)
        .zip(xhat.chunks_exact_mut(n))
        .zip(a.chunks_exact_mut(n))
        .enumerate()
    {
        // Two passes in f64: a row holds up to 131,072 values.
        let mean = lane_sum(zr, |v| v as f64) / n as f64;
        let var = lane_sum(zr, |v| (v as f64 - mean).powi(2)) / n as f64;
        let is = 1.0 / (var + BN_EPSILON as f64).sqrt();
        inv_std[r] = is as f32;
        let (m, is, g, b) = (mean as f32, is as f32, gamma[r], beta[r]);
        for ((x, o), &v) in xr.iter_mut().zip(ar.iter_mut()).zip(zr) {
            *x = (v - m) * is;
            *o = (g * *x + b).max(0.0);
        }
    }
}

/// The backward pass of [`batch_norm_relu`]: from `da` (the gradient at its output `a`) to `dz`
/// (at its input), with γ's and β's gradients written to `dgamma` and `dbeta`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_backward(
    da: &[f32],
    a: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    n: usize,
    gamma: &[f32],
    dz: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    for (r, (((dar, ar), xr), dzr)) in da
        .chunks_exact(n)
        .zip(a.chunks_exact(n))
        .zip(xhat.chunks_exact(n))
        .zip(dz.chunks_exact_mut(n))
        .enumerate()
    {
        // dy: the gradient at γ·xhat + β, through the ReLU.
        for ((d, &g), &o) in dzr.iter_mut().zip(dar).zip(ar) {
            *d = if o > 0.0 { g } else { 0.0 };
        }
        let sum_dy = lane_sum(dzr, |d| d as f64);
        let sum_dy_x = sum_products_f64(dzr, xr);
        dbeta[r] = sum_dy as f32;
        dgamma[r] = sum_dy_x as f32;
        // dz = γ/(n·σ) · (n·dy − Σdy − xhat·Σ(dy·xhat))
        let scale = gamma[r] * inv_std[r] / n as f32;
        let (sd, sdx) = (sum_dy as f32, sum_dy_x as f32);
        for (d, &x) in dzr.iter_mut().zip(xr) {
            *d = scale * (n as f32 * *d - sd - x * sdx);
        }
    }
}

/// Σ a·b over two rows, each product in f32 and summed in f64 as [`lane_sum`] sums.
fn sum_products_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += (u * v) as f64;
        }
    }
    for ((s, &u), &v) in acc.iter_mut().zip(ra).zip(rb) {
        *s += (u * v) as f64;
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_keeps_each_maximum_and_routes_its_gradient() {
        let x = [1., 5., 2., 0., 3., 4., 7., 6.]; // one 2×4 plane
        let s = Planes::new(1, 1, 2, 4);
        let (mut y, mut arg) = ([0.0; 2], [0u8; 2]);
        max_pool2(&x, s, &mut y, &mut arg);
        assert_eq!((y, arg), ([5., 7.], [1, 2]));
        let mut dx = [9.0; 8];
        max_pool2_backward(&[1., 2.], &arg, s, &mut dx);
        assert_eq!(dx, [0., 1., 0., 0., 0., 0., 2., 0.]);
        // Ties go to the first of the window's values in reading order.
        let tied = [1., 3., 3., 3., 2., 2., 2., 2.];
        max_pool2(&tied, s, &mut y, &mut arg);
        assert_eq!((y, arg), ([3., 3.], [1, 0]));
    }
}

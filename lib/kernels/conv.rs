//! Kernels of the conv-net optimizee (§3.3): im2col and its adjoint for a square kernel with
//! stride 1 and SAME padding, 2×2 max-pooling with stride 2, batch normalisation with
//! minibatch statistics, and ReLU.
//!
//! Activations are channel-major, `[C, B, H, W]` row-major (one row of `B·H·W` values per
//! channel), so that a convolution over the whole minibatch is one GEMM,
//! `[C_out, C_in·K·K] · [C_in·K·K, B·H·W]`, and batch norm's statistics are row reductions.

/// The shape of a channel-major activation `[C, B, H, W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub channels: usize,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
}

impl Planes {
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

/// The output columns `j0..j1` of a row `w` wide whose source column `j + dx` lies inside it.
fn columns_inside(w: usize, dx: isize) -> (usize, usize) {
    let j0 = (-dx).max(0) as usize;
    let j1 = (w as isize - dx).min(w as isize).max(0) as usize;
    (j0, j1)
}

/// Writes the im2col matrix of `x` for a `k`×`k` kernel, stride 1, SAME padding (k odd):
/// row `(c·k + di)·k + dj`, column `(b·H + i)·W + j` holds `x[c, b, i + di − k/2, j + dj − k/2]`,
/// or 0 outside the image.
pub fn im2col(x: &[f32], shape: Planes, k: usize, cols: &mut [f32]) {
    let Planes {
        channels,
        batch,
        height: h,
        width: w,
    } = shape;
    let n = shape.per_channel();
    debug_assert_eq!(cols.len(), channels * k * k * n);
    let pad = (k / 2) as isize;
    for c in 0..channels {
        let plane = &x[c * n..(c + 1) * n];
        for di in 0..k {
            for dj in 0..k {
                let row = &mut cols[((c * k + di) * k + dj) * n..][..n];
                let dy = di as isize - pad;
                let dx = dj as isize - pad;
                let (j0, j1) = columns_inside(w, dx);
                for b in 0..batch {
                    for i in 0..h {
                        let out = &mut row[(b * h + i) * w..][..w];
                        let si = i as isize + dy;
                        if si < 0 || si >= h as isize || j0 >= j1 {
                            out.fill(0.0);
                            continue;
                        }
                        let src = &plane[(b * h + si as usize) * w..][..w];
                        out[..j0].fill(0.0);
                        out[j1..].fill(0.0);
                        let s0 = (j0 as isize + dx) as usize;
                        out[j0..j1].copy_from_slice(&src[s0..s0 + (j1 - j0)]);
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `cols` back to the input position it was
/// copied from. `dx` is overwritten.
pub fn col2im(cols: &[f32], shape: Planes, k: usize, dx: &mut [f32]) {
    let Planes {
        channels,
        batch,
        height: h,
        width: w,
    } = shape;
    let n = shape.per_channel();
    dx.fill(0.0);
    let pad = (k / 2) as isize;
    for c in 0..channels {
        let plane = &mut dx[c * n..(c + 1) * n];
        for di in 0..k {
            for dj in 0..k {
                let row = &cols[((c * k + di) * k + dj) * n..][..n];
                let dy = di as isize - pad;
                let dxo = dj as isize - pad;
                let (j0, j1) = columns_inside(w, dxo);
                if j0 >= j1 {
                    continue;
                }
                for b in 0..batch {
                    for i in 0..h {
                        let si = i as isize + dy;
                        if si < 0 || si >= h as isize {
                            continue;
                        }
                        let src = &row[(b * h + i) * w..][..w];
                        let s0 = (j0 as isize + dxo) as usize;
                        let out = &mut plane[(b * h + si as usize) * w..][..w];
                        for (o, v) in out[s0..s0 + (j1 - j0)].iter_mut().zip(&src[j0..j1]) {
                            *o += v;
                        }
                    }
                }
            }
        }
    }
}

/// 2×2 max-pooling with stride 2 of `x` (even height and width) into `y`, with the index in
/// `x` of each maximum kept in `arg` for the backward pass (the first of equal values wins).
pub fn max_pool2(x: &[f32], shape: Planes, y: &mut [f32], arg: &mut [u32]) {
    let (h, w) = (shape.height, shape.width);
    let (ho, wo) = (h / 2, w / 2);
    let planes = shape.channels * shape.batch;
    for p in 0..planes {
        for i in 0..ho {
            for j in 0..wo {
                let top = p * h * w + 2 * i * w + 2 * j;
                let mut best = top;
                for at in [top + 1, top + w, top + w + 1] {
                    if x[at] > x[best] {
                        best = at;
                    }
                }
                let o = p * ho * wo + i * wo + j;
                y[o] = x[best];
                arg[o] = best as u32;
            }
        }
    }
}

/// The backward pass of [`max_pool2`]: each output's gradient goes to its maximum; `dx` is
/// overwritten.
pub fn max_pool2_backward(dy: &[f32], arg: &[u32], dx: &mut [f32]) {
    dx.fill(0.0);
    for (&g, &a) in dy.iter().zip(arg) {
        dx[a as usize] += g;
    }
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
        let mean = zr.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = zr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
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
        let (mut sum_dy, mut sum_dy_x) = (0.0f64, 0.0f64);
        for ((d, &g), (&o, &x)) in dzr.iter_mut().zip(dar).zip(ar.iter().zip(xr)) {
            *d = if o > 0.0 { g } else { 0.0 };
            sum_dy += *d as f64;
            sum_dy_x += (*d * x) as f64;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(c: usize, b: usize, h: usize, w: usize) -> Planes {
        Planes {
            channels: c,
            batch: b,
            height: h,
            width: w,
        }
    }

    #[test]
    fn im2col_places_each_neighbour_and_pads_with_zeros() {
        // One 3×3 image 1..9, a 3×3 kernel: row (di, dj) = (0, 0) holds the up-left neighbour.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s = shape(1, 1, 3, 3);
        let mut cols = vec![0.0; 9 * 9];
        im2col(&x, s, 3, &mut cols);
        assert_eq!(&cols[..9], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
        assert_eq!(&cols[4 * 9..5 * 9], &x[..]); // the centre tap is the image itself
        assert_eq!(&cols[8 * 9..], &[5., 6., 0., 8., 9., 0., 0., 0., 0.]);
    }

    /// ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for any x and c: col2im is im2col's adjoint.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let s = shape(3, 2, 6, 4);
        let k = 5;
        let mut rng = crate::rng::Rng::new(1, 0);
        let x: Vec<f32> = (0..s.len()).map(|_| rng.normal() as f32).collect();
        let c: Vec<f32> = (0..s.len() * k * k).map(|_| rng.normal() as f32).collect();
        let mut cols = vec![0.0; c.len()];
        im2col(&x, s, k, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im(&c, s, k, &mut back);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn max_pool_keeps_each_maximum_and_routes_its_gradient() {
        let x = [1., 5., 2., 0., 3., 4., 7., 6.]; // one 2×4 plane
        let s = shape(1, 1, 2, 4);
        let (mut y, mut arg) = ([0.0; 2], [0u32; 2]);
        max_pool2(&x, s, &mut y, &mut arg);
        assert_eq!((y, arg), ([5., 7.], [1, 6]));
        let mut dx = [9.0; 8];
        max_pool2_backward(&[1., 2.], &arg, &mut dx);
        assert_eq!(dx, [0., 1., 0., 0., 0., 0., 2., 0.]);
    }
}

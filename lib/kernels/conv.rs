//! Kernels of the conv-net optimizee (§3.3): im2col and its adjoint for a square kernel with
//! stride 1 and SAME padding, 2×2 max-pooling with stride 2, batch normalisation with
//! minibatch statistics, and ReLU.
//!
//! Activations are channel-major, `[C, B, H, W]` row-major (one row of `B·H·W` values per
//! channel), so that a convolution over the whole minibatch is one GEMM,
//! `[C_out, C_in·K·K] · [C_in·K·K, B·H·W]`, and batch norm's statistics are row reductions.
//! The GEMM runs over blocks of a few images ([`images_per_block`]) so that the im2col matrix
//! it reads stays in cache.

use super::lane_sum;
use std::ops::Range;

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

/// Copies a short run of values; runs of whole 8-value chunks (the rows of the paper's 32-,
/// 16- and 8-pixel planes) become plain vector moves instead of a call to `memcpy`, whose
/// overhead dominated copies this short.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dc, sc) in (&mut d).zip(&mut s) {
        let chunk: [f32; 8] = sc.try_into().expect("chunks of 8");
        dc.copy_from_slice(&chunk);
    }
    for (o, v) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *o = *v;
    }
}

/// Copies images `images` of `x` into `padded`, `[C, images, H + 2p, W + 2p]` with p = k/2,
/// the border zero: SAME padding made explicit, so that every row of the im2col matrix is a
/// plain copy of a padded row.
fn pad_images(x: &[f32], shape: Planes, k: usize, images: &Range<usize>, padded: &mut [f32]) {
    let (h, w, p) = (shape.height, shape.width, k / 2);
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let n = shape.per_channel();
    for (c, planes) in padded.chunks_exact_mut(images.len() * hp * wp).enumerate() {
        for (plane, b) in planes.chunks_exact_mut(hp * wp).zip(images.clone()) {
            plane[..p * wp].fill(0.0);
            plane[(p + h) * wp..].fill(0.0);
            let src = &x[c * n + b * h * w..][..h * w];
            for (row, s) in plane[p * wp..(p + h) * wp]
                .chunks_exact_mut(wp)
                .zip(src.chunks_exact(w))
            {
                row[..p].fill(0.0);
                row[p + w..].fill(0.0);
                copy_run(&mut row[p..p + w], s);
            }
        }
    }
}

/// The length of the padded copy of `count` images that [`im2col`] uses.
pub fn padded_len(shape: Planes, k: usize, count: usize) -> usize {
    let p = k / 2;
    shape.channels * count * (shape.height + 2 * p) * (shape.width + 2 * p)
}

/// Writes the im2col matrix of images `images` of `x` for a `k`×`k` kernel, stride 1, SAME
/// padding (k odd): row `(c·k + di)·k + dj`, column `(b·H + i)·W + j` (b counted from
/// `images.start`) holds `x[c, b, i + di − k/2, j + dj − k/2]`, or 0 outside the image. A range
/// of a few images keeps the matrix in cache for the GEMM that reads it. `padded` is working
/// memory of at least [`padded_len`] values.
pub fn im2col(
    x: &[f32],
    shape: Planes,
    k: usize,
    images: Range<usize>,
    padded: &mut [f32],
    cols: &mut [f32],
) {
    let (h, w, p) = (shape.height, shape.width, k / 2);
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let m = images.len() * h * w;
    debug_assert_eq!(cols.len(), shape.channels * k * k * m);
    let padded = &mut padded[..padded_len(shape, k, images.len())];
    pad_images(x, shape, k, &images, padded);
    for (c, planes) in padded.chunks_exact(images.len() * hp * wp).enumerate() {
        for di in 0..k {
            for dj in 0..k {
                let row = &mut cols[((c * k + di) * k + dj) * m..][..m];
                for (out, plane) in row
                    .chunks_exact_mut(h * w)
                    .zip(planes.chunks_exact(hp * wp))
                {
                    for (i, o) in out.chunks_exact_mut(w).enumerate() {
                        copy_run(o, &plane[(i + di) * wp + dj..][..w]);
                    }
                }
            }
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

/// Images per block of the im2col matrix: as many as keep a block within about 256 KiB, so
/// that a core's L2 cache (512 KiB on the AMD EPYC of docs/performance.md) holds it beside
/// the GEMM's packed panels; at least one. 128 KiB to 1 MiB measured within the noise there.
pub fn images_per_block(shape: Planes, k: usize) -> usize {
    const BLOCK_BYTES: usize = 256 * 1024;
    let per_image = shape.channels * k * k * shape.height * shape.width * 4;
    (BLOCK_BYTES / per_image).clamp(1, shape.batch.max(1))
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
/// window's other values get 0; `dx` is overwritten.
pub fn max_pool2_backward(dy: &[f32], arg: &[u8], shape: Planes, dx: &mut [f32]) {
    let w = shape.width;
    let wo = w / 2;
    for ((rows, go), ao) in dx
        .chunks_exact_mut(2 * w)
        .zip(dy.chunks_exact(wo))
        .zip(arg.chunks_exact(wo))
    {
        let (top, bottom) = rows.split_at_mut(w);
        for (j, (&g, &k)) in go.iter().zip(ao).enumerate() {
            top[2 * j] = if k == 0 { g } else { 0.0 };
            top[2 * j + 1] = if k == 1 { g } else { 0.0 };
            bottom[2 * j] = if k == 2 { g } else { 0.0 };
            bottom[2 * j + 1] = if k == 3 { g } else { 0.0 };
        }
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
        let mut padded = vec![f32::NAN; padded_len(s, 3, 1)];
        im2col(&x, s, 3, 0..1, &mut padded, &mut cols);
        assert_eq!(&cols[..9], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
        assert_eq!(&cols[4 * 9..5 * 9], &x[..]); // the centre tap is the image itself
        assert_eq!(&cols[8 * 9..], &[5., 6., 0., 8., 9., 0., 0., 0., 0.]);
    }

    /// The SAME convolution of `x` (`shape`) with `w` (`[out, C·k·k]`) through im2col, as a
    /// plain triple loop.
    fn convolve(x: &[f32], shape: Planes, w: &[f32], out: usize, k: usize) -> Vec<f32> {
        let (rows, n) = (shape.channels * k * k, shape.per_channel());
        let mut cols = vec![0.0; rows * n];
        let mut padded = vec![f32::NAN; padded_len(shape, k, shape.batch)];
        im2col(x, shape, k, 0..shape.batch, &mut padded, &mut cols);
        let mut y = vec![0.0f32; out * n];
        for o in 0..out {
            for r in 0..rows {
                for j in 0..n {
                    y[o * n + j] += w[o * rows + r] * cols[r * n + j];
                }
            }
        }
        y
    }

    /// ⟨conv(x; w), y⟩ = ⟨x, conv(y; flip(w))⟩ for any x, y and w: the flipped kernel's
    /// convolution is the forward one's adjoint, so it gives the input's gradient.
    #[test]
    fn the_flipped_kernel_convolves_the_adjoint() {
        let (c_in, c_out, k) = (3, 4, 5);
        let s = shape(c_in, 2, 6, 4);
        let mut rng = crate::rng::Rng::new(1, 0);
        let mut normal =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
        let (x, w) = (normal(s.len()), normal(c_out * c_in * k * k));
        let y = normal(c_out * s.per_channel());
        let mut flipped = vec![0.0; w.len()];
        flip_kernel(&w, c_out, c_in, k, &mut flipped);
        let forward = convolve(&x, s, &w, c_out, k);
        let back = convolve(
            &y,
            Planes {
                channels: c_out,
                ..s
            },
            &flipped,
            c_in,
            k,
        );
        let lhs: f64 = forward.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    /// Blocks of images give the columns of the whole batch.
    #[test]
    fn blocks_of_images_are_slices_of_the_whole_batch() {
        let s = shape(2, 5, 4, 6);
        let k = 3;
        let m = s.height * s.width;
        let mut rng = crate::rng::Rng::new(2, 0);
        let x: Vec<f32> = (0..s.len()).map(|_| rng.normal() as f32).collect();
        let rows = s.channels * k * k;
        let mut whole = vec![0.0; rows * s.per_channel()];
        let mut padded = vec![f32::NAN; padded_len(s, k, s.batch)];
        im2col(&x, s, k, 0..s.batch, &mut padded, &mut whole);
        for images in [0..2, 2..3, 3..5] {
            let mut cols = vec![0.0; rows * images.len() * m];
            im2col(&x, s, k, images.clone(), &mut padded, &mut cols);
            for r in 0..rows {
                let expected = &whole[r * s.per_channel() + images.start * m..][..images.len() * m];
                assert_eq!(&cols[r * images.len() * m..][..images.len() * m], expected);
            }
        }
    }

    #[test]
    fn max_pool_keeps_each_maximum_and_routes_its_gradient() {
        let x = [1., 5., 2., 0., 3., 4., 7., 6.]; // one 2×4 plane
        let s = shape(1, 1, 2, 4);
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

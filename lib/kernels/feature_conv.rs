//! Kernels of the neural-art feature network (§3.4, MobileNet v1): convolutions of one image
//! with TFLite's SAME padding at any stride, depthwise convolutions, ReLU6 and Gram matrices,
//! each with its adjoint with respect to the input, since the image is what is optimized and
//! the network's weights stay fixed.
//!
//! Activations are channel-major `[C, H, W]` row-major, so a pointwise (1×1) convolution is one
//! GEMM `[C_out, C_in] · [C_in, H·W]` and a standard convolution is one GEMM over im2col.

/// A convolution's geometry: input `[channels, height, width]`, a `kernel`×`kernel` window
/// moved by `stride`, and TFLite's SAME padding (`out = ceil(in / stride)`; of the padding
/// needed, the smaller half goes before, so stride 2 on an even input pads 0 top/left and 1
/// bottom/right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub out_height: usize,
    pub out_width: usize,
    pad_top: usize,
    pad_left: usize,
}

/// The output length and the padding before, of one axis under SAME padding.
fn same_axis(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(input);
    (out, total / 2)
}

impl Geometry {
    pub fn same(
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let (out_height, pad_top) = same_axis(height, kernel, stride);
        let (out_width, pad_left) = same_axis(width, kernel, stride);
        Geometry {
            channels,
            height,
            width,
            kernel,
            stride,
            out_height,
            out_width,
            pad_top,
            pad_left,
        }
    }
    /// Pixels of one input plane.
    pub fn in_plane(&self) -> usize {
        self.height * self.width
    }
    /// Pixels of one output plane.
    pub fn out_plane(&self) -> usize {
        self.out_height * self.out_width
    }

    /// The outputs `o0..o1` of an axis (`input` long, `out` outputs, padding `pad` before) whose
    /// tap `d` reads inside the input: `o·stride + d − pad ∈ [0, input)`.
    fn inside(&self, input: usize, out: usize, pad: usize, d: usize) -> (usize, usize) {
        let s = self.stride;
        let o0 = pad.saturating_sub(d).div_ceil(s);
        let o1 = if input + pad > d {
            ((input + pad - d - 1) / s + 1).min(out)
        } else {
            0
        };
        (o0, o1.max(o0))
    }

    /// Calls `each(input offset, output offset, count)` for every run of outputs of tap
    /// (`di`, `dj`) that reads inside the input: output row `oi`, columns `oj0..oj0+count`,
    /// read input row `si` from column `oj0·stride + dj − pad_left`, every `stride`.
    fn for_each_run(&self, di: usize, dj: usize, mut each: impl FnMut(usize, usize, usize)) {
        let (i0, i1) = self.inside(self.height, self.out_height, self.pad_top, di);
        let (j0, j1) = self.inside(self.width, self.out_width, self.pad_left, dj);
        if j0 >= j1 {
            return;
        }
        for oi in i0..i1 {
            let si = oi * self.stride + di - self.pad_top;
            let sj = j0 * self.stride + dj - self.pad_left;
            each(si * self.width + sj, oi * self.out_width + j0, j1 - j0);
        }
    }
}

/// Writes the im2col matrix `[C·K·K, H_out·W_out]` of `x` `[C, H, W]`: row `(c·K + di)·K + dj`,
/// column `oi·W_out + oj` holds `x[c, oi·s + di − top, oj·s + dj − left]`, or 0 in the padding.
pub fn im2col(x: &[f32], g: &Geometry, cols: &mut [f32]) {
    let (n_in, n_out, k, s) = (g.in_plane(), g.out_plane(), g.kernel, g.stride);
    debug_assert_eq!(cols.len(), g.channels * k * k * n_out);
    for c in 0..g.channels {
        let plane = &x[c * n_in..][..n_in];
        for di in 0..k {
            for dj in 0..k {
                let row = &mut cols[((c * k + di) * k + dj) * n_out..][..n_out];
                row.fill(0.0);
                g.for_each_run(di, dj, |from, to, count| {
                    for (t, v) in row[to..to + count].iter_mut().enumerate() {
                        *v = plane[from + t * s];
                    }
                });
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds to `dx` `[C, H, W]` the sum of the entries of `cols` that
/// came from each input value.
pub fn col2im(cols: &[f32], g: &Geometry, dx: &mut [f32]) {
    let (n_in, n_out, k, s) = (g.in_plane(), g.out_plane(), g.kernel, g.stride);
    for c in 0..g.channels {
        let plane = &mut dx[c * n_in..][..n_in];
        for di in 0..k {
            for dj in 0..k {
                let row = &cols[((c * k + di) * k + dj) * n_out..][..n_out];
                g.for_each_run(di, dj, |from, to, count| {
                    for (t, v) in row[to..to + count].iter().enumerate() {
                        plane[from + t * s] += v;
                    }
                });
            }
        }
    }
}

/// Depthwise convolution (depth multiplier 1): `y[c] = b[c] + Σ w[c, di, dj] · x[c, shifted]`,
/// with `weights` `[C, K, K]` and `y` `[C, H_out, W_out]`.
pub fn depthwise(x: &[f32], g: &Geometry, weights: &[f32], bias: &[f32], y: &mut [f32]) {
    let (n_in, n_out, k, s) = (g.in_plane(), g.out_plane(), g.kernel, g.stride);
    for c in 0..g.channels {
        let plane = &x[c * n_in..][..n_in];
        let out = &mut y[c * n_out..][..n_out];
        out.fill(bias[c]);
        for di in 0..k {
            for dj in 0..k {
                let w = weights[(c * k + di) * k + dj];
                g.for_each_run(di, dj, |from, to, count| {
                    let out = &mut out[to..to + count];
                    if s == 1 {
                        for (o, v) in out.iter_mut().zip(&plane[from..from + count]) {
                            *o += w * v;
                        }
                    } else {
                        for (t, o) in out.iter_mut().enumerate() {
                            *o += w * plane[from + t * s];
                        }
                    }
                });
            }
        }
    }
}

/// The adjoint of [`depthwise`] in its input: adds to `dx` `[C, H, W]` the gradient from `dy`
/// `[C, H_out, W_out]`.
pub fn depthwise_backward(dy: &[f32], g: &Geometry, weights: &[f32], dx: &mut [f32]) {
    let (n_in, n_out, k, s) = (g.in_plane(), g.out_plane(), g.kernel, g.stride);
    for c in 0..g.channels {
        let plane = &mut dx[c * n_in..][..n_in];
        let grad = &dy[c * n_out..][..n_out];
        for di in 0..k {
            for dj in 0..k {
                let w = weights[(c * k + di) * k + dj];
                g.for_each_run(di, dj, |from, to, count| {
                    let grad = &grad[to..to + count];
                    if s == 1 {
                        for (p, d) in plane[from..from + count].iter_mut().zip(grad) {
                            *p += w * d;
                        }
                    } else {
                        for (t, d) in grad.iter().enumerate() {
                            plane[from + t * s] += w * d;
                        }
                    }
                });
            }
        }
    }
}

/// ReLU6: clamps to [0, 6] in place.
pub fn relu6(y: &mut [f32]) {
    y.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
}

/// ReLU6's backward pass: zeroes `dy` where the output `y` was clamped (0 or 6).
pub fn relu6_backward(y: &[f32], dy: &mut [f32]) {
    for (d, &v) in dy.iter_mut().zip(y) {
        if v <= 0.0 || v >= 6.0 {
            *d = 0.0;
        }
    }
}

use super::gemm::gemm_scaled;

/// The Gram matrix of the `channels` rows of `f` (each `n` long): `G = F Fᵀ / n`, written to
/// `gram` `[C, C]`.
pub fn gram(f: &[f32], channels: usize, n: usize, gram: &mut [f32]) {
    let fv = super::view(f, channels, n);
    gemm_scaled(
        1.0 / n as f32,
        fv,
        fv.t(),
        0.0,
        super::view_mut(gram, channels, channels),
    );
}

/// The adjoint of [`gram`] for a symmetric `dgram`: adds `(dG + dGᵀ) F / n = 2 dG F / n` to
/// `df`.
pub fn gram_backward(dgram: &[f32], f: &[f32], channels: usize, n: usize, df: &mut [f32]) {
    gemm_scaled(
        2.0 / n as f32,
        super::view(dgram, channels, channels),
        super::view(f, channels, n),
        1.0,
        super::view_mut(df, channels, n),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct definition of a SAME convolution's input index, for checking the runs.
    fn source(g: &Geometry, o: (usize, usize), d: (usize, usize)) -> Option<usize> {
        let si = (o.0 * g.stride + d.0) as isize - g.pad_top as isize;
        let sj = (o.1 * g.stride + d.1) as isize - g.pad_left as isize;
        ((0..g.height as isize).contains(&si) && (0..g.width as isize).contains(&sj))
            .then(|| si as usize * g.width + sj as usize)
    }

    #[test]
    fn same_padding_is_tflites() {
        // 3×3, stride 2, even input: 0 before, 1 after; odd input: 1 and 1.
        let g = Geometry::same(1, 64, 64, 3, 2);
        assert_eq!((g.out_height, g.pad_top), (32, 0));
        let g = Geometry::same(1, 25, 25, 3, 2);
        assert_eq!((g.out_height, g.pad_top), (13, 1));
        let g = Geometry::same(1, 8, 8, 3, 1);
        assert_eq!((g.out_height, g.pad_top), (8, 1));
        let g = Geometry::same(1, 8, 8, 1, 1);
        assert_eq!((g.out_height, g.pad_top), (8, 0));
    }

    #[test]
    fn runs_visit_exactly_the_taps_inside_the_input() {
        for (h, w, k, s) in [
            (7, 6, 3, 2),
            (8, 8, 3, 2),
            (5, 9, 3, 1),
            (4, 4, 5, 1),
            (2, 2, 3, 2),
            (6, 5, 1, 1),
        ] {
            let g = Geometry::same(1, h, w, k, s);
            for di in 0..k {
                for dj in 0..k {
                    let mut seen = vec![None; g.out_plane()];
                    g.for_each_run(di, dj, |from, to, count| {
                        for t in 0..count {
                            seen[to + t] = Some(from + t * s);
                        }
                    });
                    for oi in 0..g.out_height {
                        for oj in 0..g.out_width {
                            assert_eq!(
                                seen[oi * g.out_width + oj],
                                source(&g, (oi, oj), (di, dj)),
                                "{h}×{w} k{k} s{s} tap ({di},{dj}) out ({oi},{oj})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for im2col and depthwise convolution.
    #[test]
    fn backward_passes_are_adjoints() {
        let mut rng = crate::rng::Rng::new(3, 0);
        let mut draw = |n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<_>>();
        for (c, h, w, k, s) in [(2, 7, 6, 3, 2), (3, 8, 8, 3, 2), (2, 5, 5, 3, 1)] {
            let g = Geometry::same(c, h, w, k, s);
            let x = draw(c * h * w);
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
            let y = draw(c * k * k * g.out_plane());
            let mut ax = vec![0.0; y.len()];
            im2col(&x, &g, &mut ax);
            let mut aty = vec![0.0; x.len()];
            col2im(&y, &g, &mut aty);
            assert!((dot(&ax, &y) - dot(&x, &aty)).abs() < 1e-4 * dot(&ax, &ax).sqrt().max(1.0));
            let weights = draw(c * k * k);
            let zero = vec![0.0; c];
            let y = draw(c * g.out_plane());
            let mut ax = vec![0.0; y.len()];
            depthwise(&x, &g, &weights, &zero, &mut ax);
            aty.fill(0.0);
            depthwise_backward(&y, &g, &weights, &mut aty);
            assert!((dot(&ax, &y) - dot(&x, &aty)).abs() < 1e-4 * dot(&ax, &ax).sqrt().max(1.0));
        }
    }

    #[test]
    fn gram_backward_is_the_gradient_of_a_weighted_sum() {
        let (c, n) = (3, 5);
        let mut rng = crate::rng::Rng::new(4, 0);
        let f: Vec<f32> = (0..c * n).map(|_| rng.normal() as f32).collect();
        // A symmetric weighting of G's entries.
        let mut dg = vec![0.0f32; c * c];
        for i in 0..c {
            for j in 0..=i {
                let v = rng.normal() as f32;
                dg[i * c + j] = v;
                dg[j * c + i] = v;
            }
        }
        let objective = |f: &[f32]| {
            let mut gm = vec![0.0; c * c];
            gram(f, c, n, &mut gm);
            gm.iter().zip(&dg).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut df = vec![0.0; c * n];
        gram_backward(&dg, &f, c, n, &mut df);
        for i in 0..c * n {
            let (mut up, mut down) = (f.clone(), f.clone());
            up[i] += 1e-2;
            down[i] -= 1e-2;
            let numeric = (objective(&up) - objective(&down)) / 2e-2;
            assert!(
                (numeric - df[i] as f64).abs() < 1e-3,
                "{i}: {numeric} vs {}",
                df[i]
            );
        }
    }
}

//! Direct convolution kernels of the conv-net optimizee (§3.3): a square kernel, stride 1,
//! SAME padding, over channel-major activations `[C, B, H, W]` ([`Planes`]).
//!
//! The layers are narrow (3 or 16 channels, 5×5 kernels), so an im2col matrix is 25 to 75
//! times the size of its input, and writing it, then letting BLAS pack it, took longer than
//! the multiply-adds (docs/performance.md, "Direct convolution kernels"). These kernels read a
//! zero-bordered copy of a block of images instead ([`pad_images`]) and keep a register tile
//! of sums ([`isa::CONV_TILE`]):
//! - [`convolve`], the forward convolution, vectorised over runs of 8 neighbouring pixels of a
//!   row: `rows` output channels × `runs` runs at a time. With the flipped kernel it is also
//!   the input's gradient ([`super::conv::flip_kernel`]).
//! - [`accumulate_kernel_gradient`], the kernel's gradient: `gradient_rows` output channels ×
//!   one kernel row of taps at a time, each a vector of 8 per-pixel partial sums
//!   ([`finish_kernel_gradient`] adds them up at the end).
//!
//! Each output's sum runs in one order whatever the tile and the block of images (the forward:
//! tap by tap from zero; the kernel's gradient: each lane over the minibatch's pixels in
//! order), so every tile shape, and every block size, gives the same bits, and the bits do not
//! depend on OpenBLAS's kernel.

use super::conv::Planes;
use super::isa::{self, multiply_add, ConvTile};
use std::ops::Range;

/// Pixels a vector of the kernels holds: a run of neighbouring pixels of one row.
pub const LANES: usize = 8;

/// The zero-bordered copy of a block of images, `[C, images, H + 2p, W' + 2p]` with p = k/2
/// and W' the width rounded up to whole runs of [`LANES`]: the right border is wide enough that
/// a run that starts inside a row never reads into the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padded {
    pub channels: usize,
    pub images: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
}

impl Padded {
    /// The padded copy of `images` images of the shape `shape`, for a `kernel`×`kernel` kernel.
    pub fn of(shape: Planes, kernel: usize, images: usize) -> Self {
        Padded {
            channels: shape.channels,
            images,
            height: shape.height,
            width: shape.width,
            kernel,
        }
    }
    /// The same block with another number of channels (an activation and its gradient).
    pub fn with_channels(self, channels: usize) -> Self {
        Padded { channels, ..self }
    }
    fn border(&self) -> usize {
        self.kernel / 2
    }
    /// Values of a padded row.
    pub fn row(&self) -> usize {
        self.width.next_multiple_of(LANES) + 2 * self.border()
    }
    /// Values of a padded image plane.
    pub fn image_len(&self) -> usize {
        (self.height + 2 * self.border()) * self.row()
    }
    /// Values of one channel over the block's images.
    pub fn channel_len(&self) -> usize {
        self.images * self.image_len()
    }
    pub fn len(&self) -> usize {
        self.channels * self.channel_len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Runs of [`LANES`] pixels in a row (the last may hold fewer real pixels).
    fn runs_per_row(&self) -> usize {
        self.width.div_ceil(LANES)
    }
    /// Runs in the block.
    fn runs(&self) -> usize {
        self.images * self.height * self.runs_per_row()
    }
    /// Taps of the kernel over every input channel, `(c·k + di)·k + dj`.
    fn taps(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }
    /// Run `r` of the block: its image, row and first pixel.
    fn run(&self, r: usize) -> (usize, usize, usize) {
        let per_row = self.runs_per_row();
        let (bi, jr) = (r / per_row, r % per_row);
        (bi / self.height, bi % self.height, jr * LANES)
    }
    /// Where the window of the pixel (image `b`, row `i`, column `j`) starts in a channel.
    fn window(&self, b: usize, i: usize, j: usize) -> usize {
        b * self.image_len() + i * self.row() + j
    }
    /// Where the pixel (image `b`, row `i`, column `j`) itself lies in a channel.
    fn pixel(&self, b: usize, i: usize, j: usize) -> usize {
        let p = self.border();
        self.window(b, i + p, j + p)
    }
}

/// Images per block: as many as keep a block's padded input and padded output gradient within
/// about `budget` bytes, so that they stay in a core's cache while every tile reads them; at
/// least one.
pub fn images_per_block(input: Planes, out_channels: usize, kernel: usize, budget: usize) -> usize {
    let one = Padded::of(input, kernel, 1);
    let per_image = (one.len() + one.with_channels(out_channels).len()) * 4;
    (budget / per_image).clamp(1, input.batch.max(1))
}

/// Copies images `images` of `x` (`shape`) into `padded` (`g`, whose channels are `shape`'s),
/// with the zero border of SAME padding. The zeros between two rows (one's right border, the
/// next one's left) are one run.
pub fn pad_images(x: &[f32], shape: Planes, images: Range<usize>, g: &Padded, padded: &mut [f32]) {
    let (h, w, p) = (shape.height, shape.width, g.border());
    let (row, n) = (g.row(), shape.per_channel());
    let padded = &mut padded[..g.len()];
    for (c, planes) in padded.chunks_exact_mut(g.channel_len()).enumerate() {
        for (plane, b) in planes.chunks_exact_mut(g.image_len()).zip(images.clone()) {
            let src = &x[c * n + b * h * w..][..h * w];
            set_zero(&mut plane[..p * row + p]);
            for (i, s) in src.chunks_exact(w).enumerate() {
                let start = (p + i) * row + p;
                copy_run(&mut plane[start..start + w], s);
                let gap_end = if i + 1 < h { start + row } else { plane.len() };
                set_zero(&mut plane[start + w..gap_end]);
            }
        }
    }
}

/// Copies a short run of values 8 at a time: a call to `memcpy` for each of the paper's rows
/// of 32, 16 or 8 values cost more than the copy.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dc, sc) in (&mut d).zip(&mut s) {
        let chunk: &[f32; 8] = sc.try_into().expect("chunks of 8");
        dc.copy_from_slice(chunk);
    }
    for (o, v) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *o = *v;
    }
}

/// Zeroes a short run of values 8 at a time, as [`copy_run`] copies.
#[inline(always)]
fn set_zero(dst: &mut [f32]) {
    let mut d = dst.chunks_exact_mut(8);
    for dc in &mut d {
        dc.copy_from_slice(&[0.0; 8]);
    }
    for o in d.into_remainder() {
        *o = 0.0;
    }
}

/// Calls `$f::<$tile.., K, SPAN>($args..)` with K the kernel side `$k` (odd and at most 15, as
/// the architecture allows) and SPAN = K + LANES − 1, the values that a kernel row's K taps
/// read for one run: known at compile time, the taps of a row unroll and need one bounds check.
macro_rules! with_kernel_side {
    ($k:expr, $f:ident::<$($tile:ident),*>($($arg:expr),*)) => {
        match $k {
            1 => $f::<$($tile,)* 1, { LANES }>($($arg),*),
            3 => $f::<$($tile,)* 3, { LANES + 2 }>($($arg),*),
            5 => $f::<$($tile,)* 5, { LANES + 4 }>($($arg),*),
            7 => $f::<$($tile,)* 7, { LANES + 6 }>($($arg),*),
            9 => $f::<$($tile,)* 9, { LANES + 8 }>($($arg),*),
            11 => $f::<$($tile,)* 11, { LANES + 10 }>($($arg),*),
            13 => $f::<$($tile,)* 13, { LANES + 12 }>($($arg),*),
            15 => $f::<$($tile,)* 15, { LANES + 14 }>($($arg),*),
            k => panic!("a kernel side of {k}: the architecture allows odd sides up to 15"),
        }
    };
}

/// The SAME convolution of the block in `padded` (`g`) with `weights` (`[out_channels, taps]`),
/// written to `out` (`[out_channels, per_channel]`, the whole minibatch's planes) at the
/// block's images, which start at image `first_image`. No bias.
pub fn convolve(
    padded: &[f32],
    g: &Padded,
    weights: &[f32],
    out_channels: usize,
    out: &mut [f32],
    first_image: usize,
) {
    const T: ConvTile = isa::CONV_TILE;
    convolve_with_tile::<{ T.rows }, { T.runs }>(padded, g, weights, out_channels, out, first_image)
}

/// [`convolve`] with tiles of R output channels × P runs of pixels. The operands are gathered
/// here: gathered by the caller and passed by reference, they made the conv pass 13 times
/// slower with rustc 1.95 (0.65 s against 0.05 s).
fn convolve_with_tile<const R: usize, const P: usize>(
    padded: &[f32],
    g: &Padded,
    weights: &[f32],
    out_channels: usize,
    out: &mut [f32],
    first_image: usize,
) {
    let tile = Operands {
        padded,
        g,
        weights,
        per_channel: out.len() / out_channels,
        first_image,
    };
    with_kernel_side!(g.kernel, convolve_tiled::<R, P>(&tile, out_channels, out))
}

/// [`convolve`] for a kernel of side K: every R output channels (then any left one at a time)
/// over every P runs (then any left one at a time).
fn convolve_tiled<const R: usize, const P: usize, const K: usize, const SPAN: usize>(
    tile: &Operands,
    out_channels: usize,
    out: &mut [f32],
) {
    let runs = tile.g.runs();
    let mut co = 0;
    while co < out_channels {
        let mut r = 0;
        if co + R <= out_channels {
            while r + P <= runs {
                forward_tile::<R, P, K, SPAN>(tile, co, r, out);
                r += P;
            }
            while r < runs {
                forward_tile::<R, 1, K, SPAN>(tile, co, r, out);
                r += 1;
            }
            co += R;
        } else {
            while r < runs {
                forward_tile::<1, 1, K, SPAN>(tile, co, r, out);
                r += 1;
            }
            co += 1;
        }
    }
}

/// What every tile of [`convolve`] reads.
struct Operands<'a> {
    padded: &'a [f32],
    g: &'a Padded,
    weights: &'a [f32],
    per_channel: usize,
    first_image: usize,
}

/// Output channels `co..co + R` at runs `first..first + P`: R × P vectors of sums in
/// registers; each tap loads P runs of inputs and broadcasts R weights.
#[inline(always)]
fn forward_tile<const R: usize, const P: usize, const K: usize, const SPAN: usize>(
    t: &Operands,
    co: usize,
    first: usize,
    out: &mut [f32],
) {
    let g = t.g;
    let taps = g.taps();
    let (mut window, mut at, mut len) = ([0usize; P], [0usize; P], [0usize; P]);
    for p in 0..P {
        let (b, i, j) = g.run(first + p);
        window[p] = g.window(b, i, j);
        at[p] = ((t.first_image + b) * g.height + i) * g.width + j;
        len[p] = LANES.min(g.width - j);
    }
    let weights: [&[f32]; R] = std::array::from_fn(|r| &t.weights[(co + r) * taps..][..taps]);
    let mut acc = [[[0.0f32; LANES]; P]; R];
    let (row, channel) = (g.row(), g.channel_len());
    // Kernel row after kernel row (c, di), taps in order; a row's K taps read one span of
    // SPAN values of each run's window.
    for c in 0..g.channels {
        for di in 0..K {
            let from = c * channel + di * row;
            let kernel_row = (c * K + di) * K;
            let xs: [&[f32; SPAN]; P] = std::array::from_fn(|p| span(t.padded, window[p] + from));
            let ws: [&[f32; K]; R] = std::array::from_fn(|r| span(weights[r], kernel_row));
            for dj in 0..K {
                let x: [&[f32; LANES]; P] = std::array::from_fn(|p| span(xs[p], dj));
                for (acc_r, w_r) in acc.iter_mut().zip(&ws) {
                    let w = w_r[dj];
                    for (a, v) in acc_r.iter_mut().zip(&x) {
                        for l in 0..LANES {
                            a[l] = multiply_add(w, v[l], a[l]);
                        }
                    }
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let plane = &mut out[(co + r) * t.per_channel..][..t.per_channel];
        for p in 0..P {
            plane[at[p]..at[p] + len[p]].copy_from_slice(&acc_r[p][..len[p]]);
        }
    }
}

/// The N values of `values` from `start`, as an array: indexing it at constants needs no
/// bounds check.
#[inline(always)]
fn span<const N: usize>(values: &[f32], start: usize) -> &[f32; N] {
    values[start..start + N].try_into().expect("N values")
}

/// Adds the block's products to the kernel's gradient in `lanes` (`[out_channels, taps,
/// LANES]`): lane l of (co, t) gathers dz[co] · x_t over pixel l of every run, run after run.
/// `padded_x` is the block's input (`gx`), `padded_dz` the output's gradient (`gx`'s images
/// with `out_channels` channels), both from [`pad_images`].
pub fn accumulate_kernel_gradient(
    padded_x: &[f32],
    gx: &Padded,
    padded_dz: &[f32],
    out_channels: usize,
    lanes: &mut [f32],
) {
    const T: ConvTile = isa::CONV_TILE;
    // The tile's sums are rows × K vectors; wider kernels than 5 take one row at a time.
    if gx.kernel <= 5 {
        gradient_with_tile::<{ T.gradient_rows }>(padded_x, gx, padded_dz, out_channels, lanes)
    } else {
        gradient_with_tile::<1>(padded_x, gx, padded_dz, out_channels, lanes)
    }
}

/// [`accumulate_kernel_gradient`] with tiles of R output channels × one kernel row.
fn gradient_with_tile<const R: usize>(
    padded_x: &[f32],
    gx: &Padded,
    padded_dz: &[f32],
    out_channels: usize,
    lanes: &mut [f32],
) {
    let gz = gx.with_channels(out_channels);
    let tile = GradientOperands {
        padded_x,
        gx,
        padded_dz,
        gz: &gz,
    };
    with_kernel_side!(gx.kernel, gradient_tiled::<R>(&tile, out_channels, lanes))
}

/// [`accumulate_kernel_gradient`] for a kernel of side K: every R output channels (then any
/// left one at a time) × every kernel row.
fn gradient_tiled<const R: usize, const K: usize, const SPAN: usize>(
    tile: &GradientOperands,
    out_channels: usize,
    lanes: &mut [f32],
) {
    let kernel_rows = tile.gx.channels * K;
    let mut co = 0;
    while co < out_channels {
        if co + R <= out_channels {
            for kernel_row in 0..kernel_rows {
                gradient_tile::<R, K, SPAN>(tile, co, kernel_row, lanes);
            }
            co += R;
        } else {
            for kernel_row in 0..kernel_rows {
                gradient_tile::<1, K, SPAN>(tile, co, kernel_row, lanes);
            }
            co += 1;
        }
    }
}

/// What every tile of [`accumulate_kernel_gradient`] reads.
struct GradientOperands<'a> {
    padded_x: &'a [f32],
    gx: &'a Padded,
    padded_dz: &'a [f32],
    gz: &'a Padded,
}

/// Output channels `co..co + R` × the K taps of kernel row `kernel_row` (c·K + di): R × K
/// vectors of lane sums in registers over every run of the block; each run loads R vectors of
/// dz and one span of inputs.
#[inline(always)]
fn gradient_tile<const R: usize, const K: usize, const SPAN: usize>(
    t: &GradientOperands,
    co: usize,
    kernel_row: usize,
    lanes: &mut [f32],
) {
    let (gx, gz) = (t.gx, t.gz);
    let taps = gx.taps();
    let (c, di) = (kernel_row / K, kernel_row % K);
    let from = c * gx.channel_len() + di * gx.row();
    let dz_plane: [usize; R] =
        std::array::from_fn(|r| (co + r) * gz.channel_len() + gz.pixel(0, 0, 0));
    let at = |r: usize| ((co + r) * taps + kernel_row * K) * LANES;
    let mut acc = [[[0.0f32; LANES]; K]; R];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        for (a, l) in acc_r
            .iter_mut()
            .zip(lanes[at(r)..][..K * LANES].chunks_exact(LANES))
        {
            a.copy_from_slice(l);
        }
    }
    // Row after row of the block; a row's runs read one row of dz and of inputs.
    let wide = gx.runs_per_row() * LANES;
    for b in 0..gx.images {
        for i in 0..gx.height {
            let window = gx.window(b, i, 0);
            let dz_rows: [&[f32]; R] =
                std::array::from_fn(|r| &t.padded_dz[dz_plane[r] + window..][..wide]);
            let x_row = &t.padded_x[window + from..][..wide + K - 1];
            for j in (0..wide).step_by(LANES) {
                let d: [&[f32; LANES]; R] = std::array::from_fn(|r| span(dz_rows[r], j));
                let xs: &[f32; SPAN] = span(x_row, j);
                for q in 0..K {
                    let x: &[f32; LANES] = span(xs, q);
                    for (acc_r, dv) in acc.iter_mut().zip(&d) {
                        let a = &mut acc_r[q];
                        for l in 0..LANES {
                            a[l] = multiply_add(dv[l], x[l], a[l]);
                        }
                    }
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (a, l) in acc_r
            .iter()
            .zip(lanes[at(r)..][..K * LANES].chunks_exact_mut(LANES))
        {
            l.copy_from_slice(a);
        }
    }
}

/// The kernel's gradient from the lane sums of [`accumulate_kernel_gradient`]: each entry the
/// sum of its lanes, in lane order.
pub fn finish_kernel_gradient(lanes: &[f32], dkernel: &mut [f32]) {
    for (d, l) in dkernel.iter_mut().zip(lanes.chunks_exact(LANES)) {
        *d = l.iter().sum();
    }
}

#[cfg(test)]
mod tests;

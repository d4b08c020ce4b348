//! The conv net's forward and backward passes over one minibatch (§3.3): the convolutions are
//! direct kernels over blocks of a few images (`kernels/direct_conv/`), every fully
//! connected layer one BLAS GEMM over the whole minibatch; batch norm uses the minibatch's
//! statistics (training mode).

use super::architecture::{BlockKind, ConvArchitecture};
use crate::kernels::conv::{
    batch_norm_relu, batch_norm_relu_backward, flip_kernel, max_pool2, max_pool2_backward, Planes,
};
use crate::kernels::direct_conv::{
    accumulate_kernel_gradient, convolve, finish_kernel_gradient, images_per_block, pad_images,
    Padded, LANES,
};
use crate::kernels::{add_row_bias, gemm, row_sums, softmax_cross_entropy, view, view_mut};
use std::ops::Range;

/// Bytes of a block's padded input and padded output gradient, the working set that every
/// tile of the direct convolutions reads again.
const BLOCK_BYTES: usize = 256 * 1024;

/// One conv layer's activations and their gradients, channel-major.
#[derive(Clone)]
struct ConvBuffers {
    /// Shape at the layer's input.
    input: Planes,
    out_channels: usize,
    /// Images per block of the direct convolutions.
    block: usize,
    /// One block of the input's planes with their zero border (SAME padding, [`Padded`]).
    padded_x: Vec<f32>,
    /// The same of the output's gradient, in the backward pass.
    padded_dz: Vec<f32>,
    /// The kernel's gradient as per-lane partial sums, `[C_out, C_in·K·K, LANES]`.
    lanes: Vec<f32>,
    /// The kernel of the adjoint convolution, `[C_in, C_out·K·K]` ([`flip_kernel`]).
    flipped: Vec<f32>,
    /// Conv output (pre batch norm), then its gradient, `[C_out, B·H·W]`.
    z: Vec<f32>,
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    /// After batch norm and ReLU, then the gradient there.
    a: Vec<f32>,
    da: Vec<f32>,
    /// After pooling, `[C_out, B·H/2·W/2]`, and the gradient there.
    pooled: Vec<f32>,
    dpooled: Vec<f32>,
    /// Which value of each pooling window was the maximum (0-3).
    arg: Vec<u8>,
}

/// One fully connected hidden layer's activations and gradients, unit-major `[units, B]`.
#[derive(Clone)]
struct FcBuffers {
    z: Vec<f32>,
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    a: Vec<f32>,
    da: Vec<f32>,
}

/// Working memory of one thread: the minibatch and every layer's activations and gradients.
#[derive(Clone)]
pub struct ConvScratch {
    pub(super) batch: usize,
    /// The minibatch's images, channel-major `[C, B, H, W]`.
    pub(super) images: Vec<f32>,
    pub(super) labels: Vec<u8>,
    conv: Vec<ConvBuffers>,
    /// The last pooled activations as one column per image, `[features, B]`, and the gradient.
    features: Vec<f32>,
    dfeatures: Vec<f32>,
    fc: Vec<FcBuffers>,
    /// `[B, classes]`.
    logits: Vec<f32>,
    dlogits: Vec<f32>,
}

impl ConvScratch {
    pub fn new(arch: &ConvArchitecture, batch: usize) -> Self {
        let k2 = arch.kernel * arch.kernel;
        let conv = arch
            .conv_channels
            .iter()
            .zip(arch.conv_inputs())
            .map(|(&out, (c, h, w))| {
                let input = Planes {
                    channels: c,
                    batch,
                    height: h,
                    width: w,
                };
                let n = input.per_channel();
                let block = images_per_block(input, out, arch.kernel, BLOCK_BYTES);
                let padded = Padded::of(input, arch.kernel, block);
                ConvBuffers {
                    input,
                    out_channels: out,
                    block,
                    padded_x: vec![0.0; padded.len()],
                    padded_dz: vec![0.0; padded.with_channels(out).len()],
                    lanes: vec![0.0; out * c * k2 * LANES],
                    flipped: vec![0.0; c * out * k2],
                    z: vec![0.0; out * n],
                    xhat: vec![0.0; out * n],
                    inv_std: vec![0.0; out],
                    a: vec![0.0; out * n],
                    da: vec![0.0; out * n],
                    pooled: vec![0.0; out * n / 4],
                    dpooled: vec![0.0; out * n / 4],
                    arg: vec![0; out * n / 4],
                }
            })
            .collect();
        let fc = arch
            .fc_units
            .iter()
            .map(|&u| FcBuffers {
                z: vec![0.0; u * batch],
                xhat: vec![0.0; u * batch],
                inv_std: vec![0.0; u],
                a: vec![0.0; u * batch],
                da: vec![0.0; u * batch],
            })
            .collect();
        let (c, h, w) = arch.input;
        ConvScratch {
            batch,
            images: vec![0.0; c * h * w * batch],
            labels: vec![0; batch],
            conv,
            features: vec![0.0; arch.features() * batch],
            dfeatures: vec![0.0; arch.features() * batch],
            fc,
            logits: vec![0.0; batch * arch.classes],
            dlogits: vec![0.0; batch * arch.classes],
        }
    }

    /// Bytes of every buffer: the memory one thread needs for one run's steps.
    pub fn bytes(&self) -> usize {
        let conv: usize = self
            .conv
            .iter()
            .map(|c| {
                c.arg.len()
                    + 4 * (c.padded_x.len()
                        + c.padded_dz.len()
                        + c.lanes.len()
                        + c.flipped.len()
                        + c.z.len()
                        + c.xhat.len()
                        + c.a.len()
                        + c.da.len()
                        + c.pooled.len()
                        + c.dpooled.len()
                        + c.inv_std.len())
            })
            .sum();
        let fc: usize = self
            .fc
            .iter()
            .map(|f| 4 * (f.z.len() + f.xhat.len() + f.a.len() + f.da.len() + f.inv_std.len()))
            .sum();
        conv + fc
            + 4 * (self.images.len()
                + self.features.len()
                + self.dfeatures.len()
                + self.logits.len()
                + self.dlogits.len())
    }

    /// Puts image `row` (channel, row, column order) at position `b` of the minibatch.
    pub(super) fn set_image(&mut self, b: usize, row: &[f32]) {
        let plane = row.len() / self.conv[0].input.channels;
        for (c, src) in row.chunks_exact(plane).enumerate() {
            let at = (c * self.batch + b) * plane;
            self.images[at..at + plane].copy_from_slice(src);
        }
    }

    /// Image `b` of the minibatch, in the order [`Self::set_image`] takes it.
    #[cfg(test)]
    pub(super) fn image(&self, b: usize) -> Vec<f32> {
        let plane = self.images.len() / (self.batch * self.conv[0].input.channels);
        (0..self.conv[0].input.channels)
            .flat_map(|c| {
                let at = (c * self.batch + b) * plane;
                self.images[at..at + plane].iter().copied()
            })
            .collect()
    }
}

/// θ's blocks of one kind, in layer order.
fn of_kind(arch: &ConvArchitecture, kind: BlockKind) -> Vec<Range<usize>> {
    arch.blocks()
        .into_iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, _, r)| r)
        .collect()
}

/// Where every block of θ lies, by kind: worked out once per set, so a step allocates
/// nothing.
#[derive(Debug)]
pub(super) struct Layout {
    kernel: Vec<Range<usize>>,
    conv_bias: Vec<Range<usize>>,
    conv_scale: Vec<Range<usize>>,
    conv_offset: Vec<Range<usize>>,
    fc_weights: Vec<Range<usize>>,
    fc_bias: Vec<Range<usize>>,
    fc_scale: Vec<Range<usize>>,
    fc_offset: Vec<Range<usize>>,
    out_weights: Range<usize>,
    out_bias: Range<usize>,
    fc_layers: Vec<(usize, usize)>,
}

impl Layout {
    pub(super) fn of(arch: &ConvArchitecture) -> Self {
        let one = |k| of_kind(arch, k).remove(0);
        Layout {
            kernel: of_kind(arch, BlockKind::Kernel),
            conv_bias: of_kind(arch, BlockKind::ConvBias),
            conv_scale: of_kind(arch, BlockKind::ConvScale),
            conv_offset: of_kind(arch, BlockKind::ConvOffset),
            fc_weights: of_kind(arch, BlockKind::FcWeights),
            fc_bias: of_kind(arch, BlockKind::FcBias),
            fc_scale: of_kind(arch, BlockKind::FcScale),
            fc_offset: of_kind(arch, BlockKind::FcOffset),
            out_weights: one(BlockKind::OutputWeights),
            out_bias: one(BlockKind::OutputBias),
            fc_layers: arch.fc_layers(),
        }
    }
}

/// Mean softmax cross-entropy of the minibatch in `s` and its gradient with respect to θ.
pub(super) fn conv_loss_and_gradient(
    arch: &ConvArchitecture,
    at: &Layout,
    theta: &[f32],
    grad: &mut [f32],
    s: &mut ConvScratch,
) -> f64 {
    let loss = conv_loss(arch, at, theta, s);
    conv_backward(arch, at, theta, grad, s);
    loss
}

/// The forward pass: the mean softmax cross-entropy of the minibatch in `s`, leaving every
/// activation (and the loss's gradient at the logits) in `s` for [`conv_backward`].
pub(super) fn conv_loss(
    arch: &ConvArchitecture,
    at: &Layout,
    theta: &[f32],
    s: &mut ConvScratch,
) -> f64 {
    let b = s.batch;
    let k = arch.kernel;
    let classes = arch.classes;
    let fc_layers = &at.fc_layers;

    // Forward through the conv layers.
    for l in 0..s.conv.len() {
        let (done, rest) = s.conv.split_at_mut(l);
        let c = &mut rest[0];
        let input: &[f32] = if l == 0 {
            &s.images
        } else {
            &done[l - 1].pooled
        };
        let n = c.input.per_channel();
        let kernel = &theta[at.kernel[l].clone()];
        for images in blocks(b, c.block) {
            let g = Padded::of(c.input, k, images.len());
            let first = images.start;
            pad_images(input, c.input, images, &g, &mut c.padded_x);
            convolve(&c.padded_x, &g, kernel, c.out_channels, &mut c.z, first);
        }
        add_row_bias(&mut c.z, n, &theta[at.conv_bias[l].clone()]);
        batch_norm_relu(
            &c.z,
            n,
            &theta[at.conv_scale[l].clone()],
            &theta[at.conv_offset[l].clone()],
            &mut c.xhat,
            &mut c.inv_std,
            &mut c.a,
        );
        let out = Planes {
            channels: c.out_channels,
            ..c.input
        };
        max_pool2(&c.a, out, &mut c.pooled, &mut c.arg);
    }
    // The last pooled planes [C, B, h·w] as one column of C·h·w features per image.
    let last = s.conv.last().expect("validated: one conv layer or more");
    let hw = last.pooled.len() / (last.out_channels * b);
    for (ch, plane) in last.pooled.chunks_exact(b * hw).enumerate() {
        for (img, values) in plane.chunks_exact(hw).enumerate() {
            for (p, &v) in values.iter().enumerate() {
                s.features[(ch * hw + p) * b + img] = v;
            }
        }
    }
    // Forward through the fully connected hidden layers, unit-major [units, B].
    for (l, &(fan_in, units)) in fc_layers[..fc_layers.len() - 1].iter().enumerate() {
        let (done, rest) = s.fc.split_at_mut(l);
        let f = &mut rest[0];
        let input: &[f32] = if l == 0 { &s.features } else { &done[l - 1].a };
        gemm(
            view(&theta[at.fc_weights[l].clone()], fan_in, units).t(),
            view(input, fan_in, b),
            0.0,
            view_mut(&mut f.z, units, b),
        );
        add_row_bias(&mut f.z, b, &theta[at.fc_bias[l].clone()]);
        batch_norm_relu(
            &f.z,
            b,
            &theta[at.fc_scale[l].clone()],
            &theta[at.fc_offset[l].clone()],
            &mut f.xhat,
            &mut f.inv_std,
            &mut f.a,
        );
    }
    // Output layer: logits [B, classes] = inputᵀ · W + bias.
    let (fan_in, _) = *fc_layers.last().unwrap();
    let top: &[f32] = s.fc.last().map_or(&s.features, |f| &f.a);
    gemm(
        view(top, fan_in, b).t(),
        view(&theta[at.out_weights.clone()], fan_in, classes),
        0.0,
        view_mut(&mut s.logits, b, classes),
    );
    for row in s.logits.chunks_exact_mut(classes) {
        for (v, bias) in row.iter_mut().zip(&theta[at.out_bias.clone()]) {
            *v += bias;
        }
    }
    softmax_cross_entropy(&s.logits, classes, &s.labels, &mut s.dlogits)
}

/// The backward pass from what [`conv_loss`] left in `s`: ∇f written to `grad`.
fn conv_backward(
    arch: &ConvArchitecture,
    at: &Layout,
    theta: &[f32],
    grad: &mut [f32],
    s: &mut ConvScratch,
) {
    let b = s.batch;
    let k = arch.kernel;
    let classes = arch.classes;
    let fc_layers = &at.fc_layers;
    let (fan_in, _) = *fc_layers.last().expect("the output layer");
    let last = s.conv.last().expect("validated: one conv layer or more");
    let hw = last.pooled.len() / (last.out_channels * b);

    // Backward through the output layer.
    let top: &[f32] = s.fc.last().map_or(&s.features, |f| &f.a);
    gemm(
        view(top, fan_in, b),
        view(&s.dlogits, b, classes),
        0.0,
        view_mut(&mut grad[at.out_weights.clone()], fan_in, classes),
    );
    let db = &mut grad[at.out_bias.clone()];
    db.fill(0.0);
    crate::kernels::column_sums_into(&s.dlogits, classes, db);
    let dtop: &mut [f32] = match s.fc.last_mut() {
        Some(f) => &mut f.da,
        None => &mut s.dfeatures,
    };
    gemm(
        view(&theta[at.out_weights.clone()], fan_in, classes),
        view(&s.dlogits, b, classes).t(),
        0.0,
        view_mut(dtop, fan_in, b),
    );
    // Backward through the fully connected hidden layers; z's buffer takes its gradient.
    for l in (0..s.fc.len()).rev() {
        let (fan_in, units) = fc_layers[l];
        let (below, rest) = s.fc.split_at_mut(l);
        let f = &mut rest[0];
        let (dscale, doffset) = two_blocks(grad, &at.fc_scale[l], &at.fc_offset[l]);
        batch_norm_relu_backward(
            &f.da,
            &f.a,
            &f.xhat,
            &f.inv_std,
            b,
            &theta[at.fc_scale[l].clone()],
            &mut f.z,
            dscale,
            doffset,
        );
        row_sums(&f.z, b, &mut grad[at.fc_bias[l].clone()]);
        let input: &[f32] = if l == 0 { &s.features } else { &below[l - 1].a };
        gemm(
            view(input, fan_in, b),
            view(&f.z, units, b).t(),
            0.0,
            view_mut(&mut grad[at.fc_weights[l].clone()], fan_in, units),
        );
        let dinput: &mut [f32] = if l == 0 {
            &mut s.dfeatures
        } else {
            &mut below[l - 1].da
        };
        gemm(
            view(&theta[at.fc_weights[l].clone()], fan_in, units),
            view(&f.z, units, b),
            0.0,
            view_mut(dinput, fan_in, b),
        );
    }
    // The features' gradient back into the last layer's pooled planes.
    let last = s.conv.last_mut().unwrap();
    for (ch, plane) in last.dpooled.chunks_exact_mut(b * hw).enumerate() {
        for (img, values) in plane.chunks_exact_mut(hw).enumerate() {
            for (p, v) in values.iter_mut().enumerate() {
                *v = s.dfeatures[(ch * hw + p) * b + img];
            }
        }
    }
    // Backward through the conv layers.
    for l in (0..s.conv.len()).rev() {
        let (below, rest) = s.conv.split_at_mut(l);
        let c = &mut rest[0];
        let n = c.input.per_channel();
        // The layer's output planes: where the pooling ran, and what dz's im2col reads.
        let outputs = Planes {
            channels: c.out_channels,
            ..c.input
        };
        max_pool2_backward(&c.dpooled, &c.arg, outputs, &mut c.da);
        let (dscale, doffset) = two_blocks(grad, &at.conv_scale[l], &at.conv_offset[l]);
        batch_norm_relu_backward(
            &c.da,
            &c.a,
            &c.xhat,
            &c.inv_std,
            n,
            &theta[at.conv_scale[l].clone()],
            &mut c.z,
            dscale,
            doffset,
        );
        row_sums(&c.z, n, &mut grad[at.conv_bias[l].clone()]);
        // The kernel's gradient, Σ over blocks of dz·x per tap; the input's gradient, the SAME
        // convolution of dz with the flipped kernel (the adjoint of the forward one).
        let (input, mut dinput): (&[f32], Option<&mut [f32]>) = match below.last_mut() {
            Some(prev) => (&prev.pooled, Some(&mut prev.dpooled)),
            None => (&s.images, None),
        };
        if dinput.is_some() {
            flip_kernel(
                &theta[at.kernel[l].clone()],
                c.out_channels,
                c.input.channels,
                k,
                &mut c.flipped,
            );
        }
        c.lanes.fill(0.0);
        for images in blocks(b, c.block) {
            let gx = Padded::of(c.input, k, images.len());
            let gz = gx.with_channels(c.out_channels);
            let first = images.start;
            pad_images(input, c.input, images.clone(), &gx, &mut c.padded_x);
            pad_images(&c.z, outputs, images, &gz, &mut c.padded_dz);
            accumulate_kernel_gradient(
                &c.padded_x,
                &gx,
                &c.padded_dz,
                c.out_channels,
                &mut c.lanes,
            );
            if let Some(dinput) = dinput.as_deref_mut() {
                let flipped = &c.flipped;
                convolve(&c.padded_dz, &gz, flipped, c.input.channels, dinput, first);
            }
        }
        finish_kernel_gradient(&c.lanes, &mut grad[at.kernel[l].clone()]);
    }
}

/// The blocks of `block` images (the last may hold fewer) that cover a minibatch of `batch`.
fn blocks(batch: usize, block: usize) -> impl Iterator<Item = Range<usize>> {
    (0..batch)
        .step_by(block)
        .map(move |b0| b0..(b0 + block).min(batch))
}

/// Two disjoint blocks of `grad`, the first before the second.
fn two_blocks<'a>(
    grad: &'a mut [f32],
    first: &Range<usize>,
    second: &Range<usize>,
) -> (&'a mut [f32], &'a mut [f32]) {
    let (head, tail) = grad.split_at_mut(second.start);
    (&mut head[first.clone()], &mut tail[..second.len()])
}

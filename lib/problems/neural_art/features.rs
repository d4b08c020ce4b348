//! The feature network of the neural-art loss (§3.4): a chain of standard and depthwise
//! convolutions, each followed by its bias and ReLU6, read from an npz of float32 arrays in
//! the layout docs/formats.md gives ("Feature network"; MobileNet v1's weights by default, as
//! docs/neural_art.md says; the paper used VGG-19, whose weights are not available here). Forward to any depth, and backward to the input
//! image from gradients at any of the layers.

use crate::error::{Error, Result};
use crate::io::Npz;
use crate::kernels::feature_conv::{
    col2im, depthwise, depthwise_backward, im2col, relu6, relu6_backward, Geometry,
};
use crate::kernels::gemm::gemm_scaled;
use crate::kernels::{add_row_bias, view, view_mut};
use ndarray::{Ix1, Ix4};
use std::path::{Path, PathBuf};

/// Input channels (RGB).
pub const INPUT_CHANNELS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Every output channel sees every input channel (a 1×1 kernel is MobileNet's pointwise).
    Standard,
    /// One filter per channel (depth multiplier 1).
    Depthwise,
}

/// One convolution with its fixed weights.
#[derive(Clone, Debug)]
pub struct FeatureLayer {
    pub kind: LayerKind,
    pub kernel: usize,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[out, in·K·K]` for a standard layer, `[channels, K·K]` for a depthwise one.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// The network's weights and where they came from.
#[derive(Clone, Debug)]
pub struct FeatureNet {
    pub path: PathBuf,
    pub sha256: String,
    pub layers: Vec<FeatureLayer>,
}

impl FeatureNet {
    /// Reads `layer_kind`, `layer_kernel`, `layer_stride`, `layer_in_channels`,
    /// `layer_out_channels` and, for each layer NN, `convNN_w` and `convNN_b`, checking every
    /// shape against the layer table before any is used.
    pub fn load(path: &Path) -> Result<FeatureNet> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let sha256 = crate::datasets::hex_sha256(&[&bytes]);
        drop(bytes);
        let mut npz = Npz::open(path)?;
        let bad = |d: String| Error::bad_file(path, format!("feature network: {d}"));
        let mut table =
            |name: &str| -> Result<Vec<i64>> { Ok(npz.array_nd::<i64, Ix1>(name)?.to_vec()) };
        let kinds = table("layer_kind")?;
        let kernels = table("layer_kernel")?;
        let strides = table("layer_stride")?;
        let ins = table("layer_in_channels")?;
        let outs = table("layer_out_channels")?;
        let n = kinds.len();
        if n == 0
            || [&kernels, &strides, &ins, &outs]
                .iter()
                .any(|t| t.len() != n)
        {
            return Err(bad(format!(
                "the layer table's arrays must be equally long and not empty (layer_kind has {n})"
            )));
        }
        let mut layers = Vec::with_capacity(n);
        let mut channels = INPUT_CHANNELS;
        for l in 0..n {
            let name = format!("conv{l:02}");
            let kind = match kinds[l] {
                0 => LayerKind::Standard,
                1 => LayerKind::Depthwise,
                k => {
                    return Err(bad(format!(
                        "{name}: layer_kind {k}; 0 is a standard conv, 1 a depthwise one"
                    )))
                }
            };
            let (k, s) = (kernels[l], strides[l]);
            if !(1..=15).contains(&k) || !(1..=4).contains(&s) {
                return Err(bad(format!(
                    "{name}: kernel {k} and stride {s}; l2l takes kernels 1-15 and strides 1-4"
                )));
            }
            let (cin, cout) = (ins[l], outs[l]);
            if cin != channels as i64 || !(1..=8192).contains(&cout) {
                return Err(bad(format!(
                    "{name}: {cin} → {cout} channels, but the layer before gives {channels}"
                )));
            }
            if kind == LayerKind::Depthwise && cin != cout {
                return Err(bad(format!(
                    "{name}: a depthwise layer keeps its {cin} channels, not {cout}"
                )));
            }
            let (k, cin, cout) = (k as usize, cin as usize, cout as usize);
            let w = npz.array_nd::<f32, Ix4>(&format!("{name}_w"))?;
            let expected = match kind {
                LayerKind::Standard => [cout, cin, k, k],
                LayerKind::Depthwise => [cout, 1, k, k],
            };
            if w.shape() != expected {
                return Err(bad(format!(
                    "{name}_w has shape {:?}; the layer table says {expected:?}",
                    w.shape()
                )));
            }
            let b = npz.array_nd::<f32, Ix1>(&format!("{name}_b"))?;
            if b.len() != cout {
                return Err(bad(format!(
                    "{name}_b holds {} values for {cout} channels",
                    b.len()
                )));
            }
            if w.iter().chain(b.iter()).any(|v| !v.is_finite()) {
                return Err(bad(format!("{name} holds values that are not finite")));
            }
            layers.push(FeatureLayer {
                kind,
                kernel: k,
                stride: s as usize,
                in_channels: cin,
                out_channels: cout,
                weights: w.iter().copied().collect(),
                bias: b.to_vec(),
            });
            channels = cout;
        }
        Ok(FeatureNet {
            path: path.to_path_buf(),
            sha256,
            layers,
        })
    }

    /// Each layer's geometry for an input of `height`×`width`.
    pub fn geometries(&self, height: usize, width: usize) -> Vec<Geometry> {
        let (mut h, mut w) = (height, width);
        self.layers
            .iter()
            .map(|l| {
                let g = Geometry::same(l.in_channels, h, w, l.kernel, l.stride);
                (h, w) = (g.out_height, g.out_width);
                g
            })
            .collect()
    }
}

/// Working memory of one pass through the first `depth` layers at one input size: every
/// layer's output and its gradient, and im2col's matrices.
#[derive(Clone)]
pub struct FeaturePass {
    pub geometries: Vec<Geometry>,
    /// Output of each layer after ReLU6, `[C_out, H_out·W_out]`.
    pub outputs: Vec<Vec<f32>>,
    /// The loss's gradient at each output; the caller adds its terms, then [`backward`]
    /// overwrites them.
    pub grads: Vec<Vec<f32>>,
    cols: Vec<f32>,
}

impl FeaturePass {
    pub fn new(net: &FeatureNet, height: usize, width: usize, depth: usize) -> Self {
        let geometries: Vec<Geometry> = net
            .geometries(height, width)
            .into_iter()
            .take(depth)
            .collect();
        let sizes: Vec<usize> = geometries
            .iter()
            .zip(&net.layers)
            .map(|(g, l)| l.out_channels * g.out_plane())
            .collect();
        let cols = geometries
            .iter()
            .zip(&net.layers)
            .filter(|(g, l)| l.kind == LayerKind::Standard && needs_im2col(g))
            .map(|(g, _)| g.channels * g.kernel * g.kernel * g.out_plane())
            .max()
            .unwrap_or(0);
        FeaturePass {
            outputs: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            grads: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            geometries,
            cols: vec![0.0; cols],
        }
    }

    #[cfg(test)]
    pub(super) fn cols_mut(&mut self) -> &mut Vec<f32> {
        &mut self.cols
    }

    pub fn depth(&self) -> usize {
        self.geometries.len()
    }

    /// Pixels per channel of layer `l`'s output.
    pub fn plane(&self, l: usize) -> usize {
        self.geometries[l].out_plane()
    }
}

/// A standard layer that is not a plain 1×1 stride-1 product needs im2col.
fn needs_im2col(g: &Geometry) -> bool {
    g.kernel != 1 || g.stride != 1
}

/// Runs the pass's layers on `input` `[3, H, W]`, keeping every output.
pub fn forward(net: &FeatureNet, input: &[f32], pass: &mut FeaturePass) {
    for l in 0..pass.depth() {
        let (before, rest) = pass.outputs.split_at_mut(l);
        let x: &[f32] = if l == 0 { input } else { &before[l - 1] };
        let y = &mut rest[0];
        layer_forward(&net.layers[l], &pass.geometries[l], x, y, &mut pass.cols);
        relu6(y);
    }
}

/// Backpropagates the gradients the caller left in `pass.grads` (at the outputs of the last
/// [`forward`]) down to the input, and writes the input's gradient to `dinput` `[3, H, W]`.
/// `pass.grads` is overwritten on the way.
pub fn backward(net: &FeatureNet, pass: &mut FeaturePass, dinput: &mut [f32]) {
    dinput.fill(0.0);
    for l in (0..pass.depth()).rev() {
        let (below, rest) = pass.grads.split_at_mut(l);
        let dy = &mut rest[0];
        relu6_backward(&pass.outputs[l], dy);
        let dx: &mut [f32] = if l == 0 { dinput } else { &mut below[l - 1] };
        layer_backward(&net.layers[l], &pass.geometries[l], dy, dx, &mut pass.cols);
    }
}

/// One layer before its activation: `y = conv(x) + bias`. `cols` is im2col's room.
pub(super) fn layer_forward(
    layer: &FeatureLayer,
    g: &Geometry,
    x: &[f32],
    y: &mut [f32],
    cols: &mut [f32],
) {
    let n = g.out_plane();
    match layer.kind {
        LayerKind::Depthwise => depthwise(x, g, &layer.weights, &layer.bias, y),
        LayerKind::Standard => {
            let fan_in = layer.in_channels * layer.kernel * layer.kernel;
            let w = view(&layer.weights, layer.out_channels, fan_in);
            let out = view_mut(y, layer.out_channels, n);
            if needs_im2col(g) {
                let cols = &mut cols[..fan_in * n];
                im2col(x, g, cols);
                gemm_scaled(1.0, w, view(cols, fan_in, n), 0.0, out);
            } else {
                gemm_scaled(1.0, w, view(x, fan_in, n), 0.0, out);
            }
            add_row_bias(y, n, &layer.bias);
        }
    }
}

/// The adjoint of [`layer_forward`]'s linear part: adds `convᵀ(dy)` to `dx`.
pub(super) fn layer_backward(
    layer: &FeatureLayer,
    g: &Geometry,
    dy: &[f32],
    dx: &mut [f32],
    cols: &mut [f32],
) {
    let n = g.out_plane();
    match layer.kind {
        LayerKind::Depthwise => depthwise_backward(dy, g, &layer.weights, dx),
        LayerKind::Standard => {
            let fan_in = layer.in_channels * layer.kernel * layer.kernel;
            let wt = view(&layer.weights, layer.out_channels, fan_in).reversed_axes();
            let dyv = view(dy, layer.out_channels, n);
            if needs_im2col(g) {
                let dcols = &mut cols[..fan_in * n];
                gemm_scaled(1.0, wt, dyv, 0.0, view_mut(dcols, fan_in, n));
                col2im(dcols, g, dx);
            } else {
                gemm_scaled(1.0, wt, dyv, 1.0, view_mut(dx, fan_in, n));
            }
        }
    }
}

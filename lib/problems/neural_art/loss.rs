//! The neural-art loss of §3.4 (Gatys et al. 2015) on the feature network, with its gradient
//! with respect to the image θ (`[3, H, W]`, network units):
//!
//! f(θ) = H·W·(α·content + β·style + γ·TV), where
//! - content = mean over (channel, y, x) of (F_c(θ) − F_c(c))² at the content layer;
//! - style = the average over the style layers of the mean over (i, j) of (G_l(θ) − A_l)², with
//!   G = F Fᵀ / (H_l·W_l) after ReLU6 and A_l the same for the style image;
//! - TV = mean (θ[y+1, x] − θ[y, x])² + mean (θ[y, x+1] − θ[y, x])², over channels and pixels.
//!
//! The factor H·W makes f a sum over pixel positions, so per-pixel gradients match at 64 and
//! 128 px (docs/neural_art.md).

use super::features::{backward, forward, FeatureNet, FeaturePass};
use crate::kernels::feature_conv::{gram, gram_backward};

/// Which layers the loss reads, 0-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LossLayers {
    pub content: usize,
    pub style: Vec<usize>,
}

impl LossLayers {
    /// Layers the forward pass must run: up to the deepest one read.
    pub fn depth(&self) -> usize {
        self.style
            .iter()
            .copied()
            .chain([self.content])
            .max()
            .unwrap_or(0)
            + 1
    }
}

/// α, β, γ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossWeights {
    pub content: f64,
    pub style: f64,
    pub tv: f64,
}

/// The terms of f at one θ, each before its weight and the factor H·W.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossTerms {
    pub content: f64,
    pub style: f64,
    pub tv: f64,
}

/// Working memory of one thread at one image size.
#[derive(Clone)]
pub struct ArtScratch {
    pub pass: FeaturePass,
    gram: Vec<f32>,
}

impl ArtScratch {
    pub fn new(net: &FeatureNet, layers: &LossLayers, height: usize, width: usize) -> Self {
        let pass = FeaturePass::new(net, height, width, layers.depth());
        let widest = layers
            .style
            .iter()
            .map(|&l| net.layers[l].out_channels)
            .max()
            .unwrap_or(0);
        ArtScratch {
            pass,
            gram: vec![0.0; widest * widest],
        }
    }
}

/// The Gram matrix of layer `l`'s output of the last forward pass, `[C, C]`.
pub fn layer_gram(net: &FeatureNet, pass: &FeaturePass, l: usize) -> Vec<f32> {
    let c = net.layers[l].out_channels;
    let mut g = vec![0.0; c * c];
    gram(&pass.outputs[l], c, pass.plane(l), &mut g);
    g
}

/// What one problem's loss compares θ with: the content crop's features at the content
/// layer, and the style image's Gram matrix at each style layer.
pub struct Targets<'a> {
    pub content: &'a [f32],
    pub style: &'a [Vec<f32>],
}

/// f(θ) and its terms, with ∇f written to `grad` when it is given.
#[allow(clippy::too_many_arguments)]
pub fn art_loss(
    net: &FeatureNet,
    layers: &LossLayers,
    weights: &LossWeights,
    targets: &Targets,
    (height, width): (usize, usize),
    theta: &[f32],
    grad: Option<&mut [f32]>,
    s: &mut ArtScratch,
) -> (f64, LossTerms) {
    let pixels = (height * width) as f64;
    forward(net, theta, &mut s.pass);
    let want_grad = grad.is_some();
    if want_grad {
        for g in &mut s.pass.grads {
            g.fill(0.0);
        }
    }
    let mut terms = LossTerms::default();

    // Content: mean squared difference of the features; d/dF = 2 (F − P) / (C·N).
    let l = layers.content;
    let f = &s.pass.outputs[l];
    let scale = (2.0 / f.len() as f64 * weights.content * pixels) as f32;
    let mut sum = 0.0f64;
    for (i, (&a, &p)) in f.iter().zip(targets.content).enumerate() {
        let d = a - p;
        sum += (d * d) as f64;
        if want_grad {
            s.pass.grads[l][i] += scale * d;
        }
    }
    terms.content = sum / f.len() as f64;

    // Style: for each layer, mean over (i, j) of (G − A)²; d/dG = 2 (G − A) / C², averaged
    // over the layers.
    let per_layer = 1.0 / layers.style.len().max(1) as f64;
    for (&l, target) in layers.style.iter().zip(targets.style) {
        let c = net.layers[l].out_channels;
        let n = s.pass.plane(l);
        let g = &mut s.gram[..c * c];
        gram(&s.pass.outputs[l], c, n, g);
        let mut sum = 0.0f64;
        let scale = (2.0 / (c * c) as f64 * weights.style * per_layer * pixels) as f32;
        for (v, &a) in g.iter_mut().zip(target) {
            let d = *v - a;
            sum += (d * d) as f64;
            *v = scale * d;
        }
        terms.style += per_layer * sum / (c * c) as f64;
        if want_grad {
            gram_backward(g, &s.pass.outputs[l], c, n, &mut s.pass.grads[l]);
        }
    }

    terms.tv = total_variation(theta, height, width, None);
    if let Some(grad) = grad {
        backward(net, &mut s.pass, grad);
        total_variation(
            theta,
            height,
            width,
            Some((grad, (weights.tv * pixels) as f32)),
        );
    }
    let loss = pixels
        * (weights.content * terms.content + weights.style * terms.style + weights.tv * terms.tv);
    (loss, terms)
}

/// TV of `x` `[C, H, W]`: the mean squared vertical difference plus the mean squared
/// horizontal one. With `grad`, adds `scale` times its gradient there.
pub fn total_variation(
    x: &[f32],
    height: usize,
    width: usize,
    mut grad: Option<(&mut [f32], f32)>,
) -> f64 {
    let plane = height * width;
    let channels = x.len() / plane;
    let vertical = (channels * (height - 1) * width).max(1) as f64;
    let horizontal = (channels * height * (width - 1)).max(1) as f64;
    let (mut v_sum, mut h_sum) = (0.0f64, 0.0f64);
    for c in 0..channels {
        let base = c * plane;
        for y in 0..height {
            for xx in 0..width {
                let i = base + y * width + xx;
                if y + 1 < height {
                    let d = x[i + width] - x[i];
                    v_sum += (d * d) as f64;
                    if let Some((g, scale)) = grad.as_mut() {
                        let k = *scale * 2.0 * d / vertical as f32;
                        g[i + width] += k;
                        g[i] -= k;
                    }
                }
                if xx + 1 < width {
                    let d = x[i + 1] - x[i];
                    h_sum += (d * d) as f64;
                    if let Some((g, scale)) = grad.as_mut() {
                        let k = *scale * 2.0 * d / horizontal as f32;
                        g[i + 1] += k;
                        g[i] -= k;
                    }
                }
            }
        }
    }
    v_sum / vertical + h_sum / horizontal
}

/// Floating-point operations of one [`art_loss`] with its gradient at `height`×`width`: the
/// convolutions forward and their adjoints backward (the same count again), and each style
/// layer's Gram matrix and its adjoint (2·C²·N each). Elementwise work is not counted.
pub fn gradient_flops(net: &FeatureNet, layers: &LossLayers, height: usize, width: usize) -> f64 {
    let geometries = net.geometries(height, width);
    let convs: f64 = net
        .layers
        .iter()
        .zip(&geometries)
        .take(layers.depth())
        .map(|(l, g)| {
            let per_output = match l.kind {
                super::features::LayerKind::Standard => l.in_channels * l.kernel * l.kernel,
                super::features::LayerKind::Depthwise => l.kernel * l.kernel,
            };
            2.0 * (l.out_channels * per_output * g.out_plane()) as f64
        })
        .sum();
    let grams: f64 = layers
        .style
        .iter()
        .map(|&l| {
            let c = net.layers[l].out_channels as f64;
            2.0 * 2.0 * c * c * geometries[l].out_plane() as f64
        })
        .sum();
    2.0 * convs + grams
}

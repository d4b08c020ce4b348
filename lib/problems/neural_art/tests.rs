//! The feature network against the reference activations of `mobilenet_v1/reference.npz`, and
//! every backward pass of the neural-art loss against central finite differences: on a tiny
//! network written for the test (always), and on MobileNet v1 at 64 px (where its weights
//! are present beside the repository, as on the project's machines).

use super::features::{backward, forward, layer_backward, layer_forward, FeatureNet, FeaturePass};
use super::loss::{
    art_loss, layer_gram, total_variation, ArtScratch, LossLayers, LossTerms, LossWeights, Targets,
};
use crate::io::write_npz;
use crate::rng::Rng;
use ndarray::{Array1, Array4};
use std::path::PathBuf;

/// MobileNet v1's folder: `L2L_MOBILENET`, else the one `make neural-art-data` built under
/// `out/data`, else a neural-art folder in `../shared/data`; None (with a note) where none is.
fn mobilenet_folder() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let built = checkout.join("out/data/neural_art/mobilenet_v1");
    let dir = std::env::var_os("L2L_MOBILENET")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if built.join("mobilenet_v1.npz").exists() {
                built
            } else {
                checkout.join("../shared/data/neural_art/mobilenet_v1")
            }
        });
    if dir.join("mobilenet_v1.npz").exists() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no MobileNet v1 weights at {} (set L2L_MOBILENET)",
            dir.display()
        );
        None
    }
}

fn random(n: usize, seed: u64, scale: f64) -> Vec<f32> {
    let mut rng = Rng::new(seed, 0);
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// A small network of every layer kind and stride, as an npz in MobileNet's layout:
/// conv 3→4 (3×3, stride 2), depthwise (3×3, 1), pointwise 4→6, depthwise (3×3, 2),
/// pointwise 6→5. Biases keep about half of each layer's units between 0 and 6.
fn tiny_net(dir: &tempfile::TempDir) -> FeatureNet {
    let table: [(i64, i64, i64, i64, i64); 5] = [
        (0, 3, 2, 3, 4),
        (1, 3, 1, 4, 4),
        (0, 1, 1, 4, 6),
        (1, 3, 2, 6, 6),
        (0, 1, 1, 6, 5),
    ];
    let path = dir.path().join("tiny.npz");
    write_npz(&path, |z| {
        let col = |i: usize| {
            Array1::from(
                table
                    .iter()
                    .map(|t| [t.0, t.1, t.2, t.3, t.4][i])
                    .collect::<Vec<_>>(),
            )
        };
        z.add("layer_kind", col(0));
        z.add("layer_kernel", col(1));
        z.add("layer_stride", col(2));
        z.add("layer_in_channels", col(3));
        z.add("layer_out_channels", col(4));
        for (l, &(kind, k, _, cin, cout)) in table.iter().enumerate() {
            let (k, cin, cout) = (k as usize, cin as usize, cout as usize);
            let fan_in = if kind == 0 { cin } else { 1 };
            let w = random(
                cout * fan_in * k * k,
                10 + l as u64,
                1.0 / (fan_in * k * k) as f64,
            );
            z.add(
                &format!("conv{l:02}_w"),
                Array4::from_shape_vec((cout, fan_in, k, k), w).unwrap(),
            );
            z.add(
                &format!("conv{l:02}_b"),
                Array1::from(random(cout, 20 + l as u64, 0.5)).mapv(|b| b + 0.3),
            );
        }
        Ok(())
    })
    .unwrap();
    FeatureNet::load(&path).unwrap()
}

/// Central differences of `f` along `v` against ⟨grad, v⟩, as (analytic, numeric).
fn directional(
    f: &mut dyn FnMut(&[f32]) -> f64,
    theta: &[f32],
    grad: &[f32],
    v: &[f32],
    eps: f32,
) -> (f64, f64) {
    let shifted = |sign: f32| {
        theta
            .iter()
            .zip(v)
            .map(|(t, d)| t + sign * eps * d)
            .collect::<Vec<f32>>()
    };
    let numeric = (f(&shifted(1.0)) - f(&shifted(-1.0))) / (2.0 * eps as f64);
    let analytic = grad.iter().zip(v).map(|(g, d)| (g * d) as f64).sum();
    (analytic, numeric)
}

/// [`assert_close`] for the unit directions of `coordinates`.
fn assert_coordinates(
    f: &mut dyn FnMut(&[f32]) -> f64,
    x: &[f32],
    grad: &[f32],
    coordinates: impl IntoIterator<Item = usize>,
    eps: f32,
    tolerance: f64,
) {
    for i in coordinates {
        let mut v = vec![0.0; x.len()];
        v[i] = 1.0;
        assert_close(
            directional(f, x, grad, &v, eps),
            tolerance,
            &format!("coordinate {i}"),
        );
    }
}

fn assert_close((analytic, numeric): (f64, f64), tolerance: f64, what: &str) {
    let scale = analytic.abs().max(numeric.abs()).max(1e-3);
    assert!(
        (analytic - numeric).abs() <= tolerance * scale,
        "{what}: analytic {analytic:.6e}, numeric {numeric:.6e}"
    );
}

#[test]
fn mobilenet_matches_the_reference_activations() {
    let Some(dir) = mobilenet_folder() else {
        return;
    };
    let net = FeatureNet::load(&dir.join("mobilenet_v1.npz")).unwrap();
    assert_eq!(net.layers.len(), 27);
    let mut reference = crate::io::Npz::open(&dir.join("reference.npz")).unwrap();
    let input = reference.array::<f32>("input_nchw").unwrap();
    assert_eq!(input.shape(), [1, 3, 64, 64]);
    let mut pass = FeaturePass::new(&net, 64, 64, 27);
    forward(&net, input.as_slice().unwrap(), &mut pass);
    for l in [0, 1, 3, 5, 11, 13, 23, 26] {
        let want = reference.array::<f32>(&format!("act_conv{l:02}")).unwrap();
        let got = &pass.outputs[l];
        assert_eq!(want.len(), got.len(), "conv{l:02}");
        let max_diff = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let norm = want.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
        let err = want
            .iter()
            .zip(got)
            .map(|(a, b)| ((a - b) * (a - b)) as f64)
            .sum::<f64>()
            .sqrt();
        assert!(
            max_diff < 1e-4 && err <= 1e-5 * norm.max(1.0),
            "conv{l:02}: max |Δ| {max_diff:e}, relative L2 {:e}",
            err / norm
        );
    }
}

/// ⟨∂f/∂x, v⟩ for f = Σ w_l · output_l over every layer of the tiny net.
#[test]
fn feature_backward_matches_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let net = tiny_net(&dir);
    let (h, w) = (9, 10);
    let x = random(3 * h * w, 1, 1.0);
    let mut pass = FeaturePass::new(&net, h, w, 5);
    let weights: Vec<Vec<f32>> = pass
        .outputs
        .iter()
        .enumerate()
        .map(|(l, o)| random(o.len(), 30 + l as u64, 1.0))
        .collect();
    let mut f = |x: &[f32]| {
        let mut p = FeaturePass::new(&net, h, w, 5);
        forward(&net, x, &mut p);
        p.outputs
            .iter()
            .zip(&weights)
            .map(|(o, w)| o.iter().zip(w).map(|(a, b)| (a * b) as f64).sum::<f64>())
            .sum()
    };
    forward(&net, &x, &mut pass);
    for (g, w) in pass.grads.iter_mut().zip(&weights) {
        g.copy_from_slice(w);
    }
    let mut grad = vec![0.0; x.len()];
    backward(&net, &mut pass, &mut grad);
    for seed in 0..4 {
        let v = random(x.len(), 40 + seed, 1.0);
        assert_close(directional(&mut f, &x, &grad, &v, 1e-3), 5e-3, "direction");
    }
    // Single coordinates, each channel and the corners that stride-2 padding treats unevenly.
    let corners = [
        0,
        w - 1,
        (h - 1) * w,
        h * w - 1,
        h * w + 17,
        2 * h * w + 44,
        3 * h * w - 1,
    ];
    assert_coordinates(&mut f, &x, &grad, corners, 1e-2, 5e-3);
}

#[test]
fn total_variation_gradient_matches_finite_differences() {
    let (h, w) = (5, 7);
    let x = random(3 * h * w, 2, 1.0);
    let mut grad = vec![0.0; x.len()];
    total_variation(&x, h, w, Some((&mut grad, 1.0)));
    let mut f = |x: &[f32]| total_variation(x, h, w, None);
    assert_coordinates(&mut f, &x, &grad, 0..x.len(), 1e-2, 1e-3);
}

/// A loss whose targets come from a content image and a style image, with θ the content
/// image plus noise: docs/neural_art.md's weights α = 1, β = 1, γ = 5.
struct LossCase<'a> {
    net: &'a FeatureNet,
    layers: LossLayers,
    weights: LossWeights,
    size: (usize, usize),
    content: Vec<f32>,
    style: Vec<Vec<f32>>,
    theta: Vec<f32>,
}

impl<'a> LossCase<'a> {
    fn new(
        net: &'a FeatureNet,
        layers: LossLayers,
        size: (usize, usize),
        content_image: &[f32],
        style_image: &[f32],
        noise: f64,
    ) -> Self {
        let mut s = ArtScratch::new(net, &layers, size.0, size.1);
        forward(net, content_image, &mut s.pass);
        let content = s.pass.outputs[layers.content].clone();
        forward(net, style_image, &mut s.pass);
        let style = layers
            .style
            .iter()
            .map(|&l| layer_gram(net, &s.pass, l))
            .collect();
        let theta = content_image
            .iter()
            .zip(random(content_image.len(), 6, noise))
            .map(|(a, b)| a + b)
            .collect();
        let weights = LossWeights {
            content: 1.0,
            style: 1.0,
            tv: 5.0,
        };
        LossCase {
            net,
            layers,
            weights,
            size,
            content,
            style,
            theta,
        }
    }

    fn loss(&self, x: &[f32], grad: Option<&mut [f32]>) -> (f64, LossTerms) {
        let targets = Targets {
            content: &self.content,
            style: &self.style,
        };
        let mut s = ArtScratch::new(self.net, &self.layers, self.size.0, self.size.1);
        art_loss(
            self.net,
            &self.layers,
            &self.weights,
            &targets,
            self.size,
            x,
            grad,
            &mut s,
        )
    }

    /// f(θ) with ∇f, and f alone as a function for finite differences.
    fn at_theta(&self) -> (f64, LossTerms, Vec<f32>) {
        let mut grad = vec![0.0; self.theta.len()];
        let (loss, terms) = self.loss(&self.theta, Some(&mut grad));
        (loss, terms, grad)
    }
}

/// The whole loss on the tiny net: content at layer 2, style at layers 0, 2 and 4, TV.
#[test]
fn art_loss_gradient_matches_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let net = tiny_net(&dir);
    let (h, w) = (12, 12);
    let layers = LossLayers {
        content: 2,
        style: vec![0, 2, 4],
    };
    let case = LossCase::new(
        &net,
        layers,
        (h, w),
        &random(3 * h * w, 3, 0.5),
        &random(3 * h * w, 4, 0.5),
        0.2,
    );
    let (loss, terms, grad) = case.at_theta();
    assert!(
        terms.content > 0.0 && terms.style > 0.0 && terms.tv > 0.0,
        "{terms:?}"
    );
    assert!((loss - 144.0 * (terms.content + terms.style + 5.0 * terms.tv)).abs() < 1e-9 * loss);
    let mut f = |x: &[f32]| case.loss(x, None).0;
    let theta = &case.theta;
    for seed in 0..4 {
        let v = random(theta.len(), 50 + seed, 1.0);
        assert_close(
            directional(&mut f, theta, &grad, &v, 1e-3),
            2e-3,
            "direction",
        );
    }
    assert_coordinates(
        &mut f,
        theta,
        &grad,
        [0, 11, 143, 144 + 70, 3 * 144 - 1],
        1e-3,
        5e-3,
    );
}

/// Every layer of MobileNet v1 at 64 and 128 px: the backward pass is the adjoint of the
/// forward pass's linear part, ⟨A x, y⟩ = ⟨x, Aᵀ y⟩. Unlike finite differences through 13
/// layers of ReLU6, this is exact up to rounding, so it holds to a tight tolerance.
#[test]
fn mobilenet_layers_backward_are_adjoints_at_production_sizes() {
    let Some(dir) = mobilenet_folder() else {
        return;
    };
    let net = FeatureNet::load(&dir.join("mobilenet_v1.npz")).unwrap();
    for size in [64, 128] {
        let depth = if size == 64 { 27 } else { 13 };
        let mut pass = FeaturePass::new(&net, size, size, depth);
        for (l, g) in pass.geometries.clone().iter().enumerate() {
            let layer = &net.layers[l];
            let x = random(g.channels * g.in_plane(), 70 + l as u64, 1.0);
            let y = random(layer.out_channels * g.out_plane(), 80 + l as u64, 1.0);
            let (mut ax, mut a0) = (vec![0.0; y.len()], vec![0.0; y.len()]);
            layer_forward(layer, g, &x, &mut ax, pass.cols_mut());
            layer_forward(layer, g, &vec![0.0; x.len()], &mut a0, pass.cols_mut());
            let mut aty = vec![0.0; x.len()];
            layer_backward(layer, g, &y, &mut aty, pass.cols_mut());
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
            let forward_side = dot(&ax, &y) - dot(&a0, &y);
            let backward_side = dot(&x, &aty);
            let scale = (dot(&ax, &ax) * dot(&y, &y)).sqrt();
            assert!(
                (forward_side - backward_side).abs() < 1e-5 * scale,
                "conv{l:02} at {size} px: {forward_side} vs {backward_side}"
            );
        }
    }
}

/// The production problem: MobileNet v1 at 64 px with docs/neural_art.md's layers and weights, θ a
/// content image plus noise, against the style of the image upside down. Finite differences
/// through 13 layers of ReLU6 are limited by kinks (large steps) and f32 rounding (small
/// ones), so the steps go along the gradient and parts of it, where the change is largest,
/// and the tolerance is 2%.
#[test]
fn art_loss_gradient_at_production_size() {
    let Some(dir) = mobilenet_folder() else {
        return;
    };
    let net = FeatureNet::load(&dir.join("mobilenet_v1.npz")).unwrap();
    let mut reference = crate::io::Npz::open(&dir.join("reference.npz")).unwrap();
    let image: Vec<f32> = reference
        .array::<f32>("input_nchw")
        .unwrap()
        .iter()
        .copied()
        .collect();
    let (h, w) = (64, 64);
    let layers = LossLayers {
        content: 10,
        style: vec![0, 2, 4, 8, 12],
    };
    // The style target: the image upside down, so that the Gram matrices differ.
    let flipped: Vec<f32> = image
        .chunks_exact(h * w)
        .flat_map(|p| {
            p.chunks_exact(w)
                .rev()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let case = LossCase::new(&net, layers, (h, w), &image, &flipped, 0.05);
    let (loss, _, grad) = case.at_theta();
    assert!(loss.is_finite() && loss > 0.0);
    let mut f = |x: &[f32]| case.loss(x, None).0;
    let theta = &case.theta;
    let norm = grad.iter().map(|g| (g * g) as f64).sum::<f64>().sqrt() as f32;
    let parts: [(&str, &dyn Fn(usize) -> bool); 3] = [
        ("the gradient", &|_| true),
        ("its red channel", &|i| i < h * w),
        ("its top-left 16×16 block", &|i| {
            (i % (h * w)) / w < 16 && i % w < 16
        }),
    ];
    for (what, keep) in parts {
        let v: Vec<f32> = grad
            .iter()
            .enumerate()
            .map(|(i, g)| if keep(i) { g / norm } else { 0.0 })
            .collect();
        assert_close(directional(&mut f, theta, &grad, &v, 1e-3), 2e-2, what);
    }
}

#[test]
fn a_feature_network_of_the_wrong_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npz");
    write_npz(&path, |z| {
        z.add("layer_kind", Array1::from(vec![0i64]));
        z.add("layer_kernel", Array1::from(vec![3i64]));
        z.add("layer_stride", Array1::from(vec![2i64]));
        z.add("layer_in_channels", Array1::from(vec![3i64]));
        z.add("layer_out_channels", Array1::from(vec![8i64]));
        z.add("conv00_w", Array4::<f32>::zeros((8, 3, 1, 3)));
        z.add("conv00_b", Array1::<f32>::zeros(8));
        Ok(())
    })
    .unwrap();
    let err = FeatureNet::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("conv00_w has shape [8, 3, 1, 3]") && err.contains("[8, 3, 3, 3]"),
        "{err}"
    );
}

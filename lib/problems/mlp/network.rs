//! The MLP's forward and backward passes over one minibatch, and its Hessian-vector product by
//! Pearlmutter's R-operator, all through BLAS GEMMs.

use super::architecture::{Activation, MlpArchitecture};
use crate::kernels::fastmath::sigmoid;
use crate::kernels::gemm;
use crate::kernels::softmax_cross_entropy;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Working memory of one thread: the minibatch and every layer's activations and gradients.
#[derive(Clone)]
pub struct MlpScratch {
    pub(super) x: Array2<f32>,
    pub(super) labels: Vec<u8>,
    /// Pre-activations per layer, [batch, out].
    pub(super) z: Vec<Array2<f32>>,
    /// Activations of the hidden layers, [batch, out].
    pub(super) a: Vec<Array2<f32>>,
    pub(super) dz: Vec<Array2<f32>>,
    /// Pearlmutter's R{·} = d(·)/dr at θ + r v of z, a and dz, for Hessian-vector products.
    pub(super) r_z: Vec<Array2<f32>>,
    pub(super) r_a: Vec<Array2<f32>>,
    pub(super) r_dz: Vec<Array2<f32>>,
}

/// Views of layer `l`'s weights and bias inside a flat parameter vector.
fn layer_params<'a>(
    layers: &[(usize, usize)],
    theta: &'a [f32],
    l: usize,
) -> (ArrayView2<'a, f32>, &'a [f32]) {
    let offset: usize = layers[..l].iter().map(|(i, o)| i * o + o).sum();
    let (i, o) = layers[l];
    let w = ArrayView2::from_shape((i, o), &theta[offset..offset + i * o]).unwrap();
    (w, &theta[offset + i * o..offset + i * o + o])
}

fn layer_grads<'a>(
    layers: &[(usize, usize)],
    grad: &'a mut [f32],
    l: usize,
) -> (ArrayViewMut2<'a, f32>, &'a mut [f32]) {
    let offset: usize = layers[..l].iter().map(|(i, o)| i * o + o).sum();
    let (i, o) = layers[l];
    let (w, b) = grad[offset..offset + i * o + o].split_at_mut(i * o);
    (ArrayViewMut2::from_shape((i, o), w).unwrap(), b)
}

/// Mean softmax cross-entropy of the minibatch in `s` and its gradient, forward and backward
/// through BLAS GEMMs.
pub(super) fn mlp_loss_and_gradient(
    arch: &MlpArchitecture,
    theta: &[f32],
    grad: &mut [f32],
    s: &mut MlpScratch,
) -> f64 {
    let layers = arch.layers();
    let MlpScratch {
        x,
        labels,
        z: s_z,
        a: s_a,
        dz: s_dz,
        ..
    } = s;
    let (x, labels) = (x.view(), &labels[..]);
    let last = layers.len() - 1;
    // Forward.
    for l in 0..=last {
        let (w, bias) = layer_params(&layers, theta, l);
        let z = &mut s_z[l];
        let input = if l == 0 { x.view() } else { s_a[l - 1].view() };
        gemm(input.view(), w.view(), 0.0, z.view_mut());
        for mut row in z.rows_mut() {
            for (v, bv) in row.iter_mut().zip(bias) {
                *v += bv;
            }
        }
        if l < last {
            let a = &mut s_a[l];
            match arch.activation {
                Activation::Sigmoid => ndarray::Zip::from(a)
                    .and(&*z)
                    .for_each(|a, &z| *a = sigmoid(z)),
                Activation::Relu => ndarray::Zip::from(a)
                    .and(&*z)
                    .for_each(|a, &z| *a = z.max(0.0)),
            }
        }
    }
    let classes = arch.classes;
    let loss = softmax_cross_entropy(
        s_z[last].as_slice().expect("contiguous"),
        classes,
        labels,
        s_dz[last].as_slice_mut().expect("contiguous"),
    );
    // Backward.
    for l in (0..=last).rev() {
        let (dw, db) = layer_grads(&layers, grad, l);
        let mut dw = dw;
        let input = if l == 0 { x.view() } else { s_a[l - 1].view() };
        gemm(input.t().view(), s_dz[l].view(), 0.0, dw.view_mut());
        db.fill(0.0);
        for row in s_dz[l].rows() {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        if l > 0 {
            let (w, _) = layer_params(&layers, theta, l);
            let (lower, upper) = s_dz.split_at_mut(l);
            let dz_prev = &mut lower[l - 1];
            gemm(upper[0].view(), w.t().view(), 0.0, dz_prev.view_mut());
            let a = &s_a[l - 1];
            match arch.activation {
                Activation::Sigmoid => ndarray::Zip::from(dz_prev)
                    .and(a)
                    .for_each(|d, &a| *d *= a * (1.0 - a)),
                Activation::Relu => ndarray::Zip::from(dz_prev).and(a).for_each(|d, &a| {
                    if a <= 0.0 {
                        *d = 0.0
                    }
                }),
            }
        }
    }
    loss
}

/// H v by forward and reverse R-passes (Pearlmutter, 1994) over the minibatch whose
/// activations and backward gradients `mlp_loss_and_gradient` left in `s`.
pub(super) fn mlp_hessian_vector(
    arch: &MlpArchitecture,
    theta: &[f32],
    v: &[f32],
    hv: &mut [f32],
    s: &mut MlpScratch,
) {
    let layers = arch.layers();
    let last = layers.len() - 1;
    let sigmoid = arch.activation == Activation::Sigmoid;
    // σ'(z) and σ''(z) from the activation a = σ(z).
    let d1 = |a: f32| {
        if sigmoid {
            a * (1.0 - a)
        } else if a > 0.0 {
            1.0
        } else {
            0.0
        }
    };
    let d2 = |a: f32| {
        if sigmoid {
            a * (1.0 - a) * (1.0 - 2.0 * a)
        } else {
            0.0
        }
    };
    let MlpScratch {
        x,
        labels,
        a,
        dz,
        r_z,
        r_a,
        r_dz,
        ..
    } = s;
    // R-forward: R{z_l} = R{a_(l-1)} W_l + a_(l-1) V_l + Vb_l, R{a_l} = σ'(z_l) R{z_l}.
    for l in 0..=last {
        let (w, _) = layer_params(&layers, theta, l);
        let (vw, vb) = layer_params(&layers, v, l);
        let input = if l == 0 { x.view() } else { a[l - 1].view() };
        let rz = &mut r_z[l];
        gemm(input.view(), vw.view(), 0.0, rz.view_mut());
        if l > 0 {
            gemm(r_a[l - 1].view(), w.view(), 1.0, rz.view_mut());
        }
        for mut row in rz.rows_mut() {
            for (r, b) in row.iter_mut().zip(vb) {
                *r += b;
            }
        }
        if l < last {
            ndarray::Zip::from(&mut r_a[l])
                .and(&a[l])
                .and(&*rz)
                .for_each(|ra, &a, &rz| *ra = d1(a) * rz);
        }
    }
    // R{dz_L} = (J_softmax R{z_L}) / B, with softmax p = B dz_L + onehot(y).
    let batch = labels.len() as f32;
    for (((mut rd, d), rz), &y) in r_dz[last]
        .rows_mut()
        .into_iter()
        .zip(dz[last].rows())
        .zip(r_z[last].rows())
        .zip(labels.iter())
    {
        let p = |k: usize| d[k] * batch + if k == y as usize { 1.0 } else { 0.0 };
        let mean: f32 = (0..rz.len()).map(|k| p(k) * rz[k]).sum();
        for (k, r) in rd.iter_mut().enumerate() {
            *r = p(k) * (rz[k] - mean) / batch;
        }
    }
    // R-backward: R{dW_l} = a_(l-1)ᵀ R{dz_l} + R{a_(l-1)}ᵀ dz_l; R{dz_(l-1)} = (R{dz_l} W_lᵀ +
    // dz_l V_lᵀ) σ'(z_(l-1)) + (dz_l W_lᵀ) σ''(z_(l-1)) R{z_(l-1)}.
    for l in (0..=last).rev() {
        let (hw, hb) = layer_grads(&layers, hv, l);
        let mut hw = hw;
        let input = if l == 0 { x.view() } else { a[l - 1].view() };
        gemm(input.t().view(), r_dz[l].view(), 0.0, hw.view_mut());
        if l > 0 {
            gemm(r_a[l - 1].t().view(), dz[l].view(), 1.0, hw.view_mut());
        }
        hb.fill(0.0);
        for row in r_dz[l].rows() {
            for (h, r) in hb.iter_mut().zip(row) {
                *h += r;
            }
        }
        if l > 0 {
            let (w, _) = layer_params(&layers, theta, l);
            let (vw, _) = layer_params(&layers, v, l);
            let (lower, upper) = r_dz.split_at_mut(l);
            let rdz_prev = &mut lower[l - 1];
            gemm(upper[0].view(), w.t().view(), 0.0, rdz_prev.view_mut());
            gemm(dz[l].view(), vw.t().view(), 1.0, rdz_prev.view_mut());
            // R{a_(l-1)} is spent; it holds da_(l-1) = dz_l W_lᵀ from here on.
            let da = &mut r_a[l - 1];
            gemm(dz[l].view(), w.t().view(), 0.0, da.view_mut());
            ndarray::Zip::from(rdz_prev)
                .and(&*da)
                .and(&a[l - 1])
                .and(&r_z[l - 1])
                .for_each(|r, &da, &a, &rz| *r = *r * d1(a) + da * d2(a) * rz);
        }
    }
}

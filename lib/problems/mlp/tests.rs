//! The MLP's gradient and Hessian-vector checks.

use super::*;

/// 12 examples of 6 pixels in 3 classes.
pub(crate) fn toy_data() -> Arc<Dataset> {
    let n = 12;
    let images = Array2::from_shape_fn((n, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 10.0);
    let labels = (0..n).map(|i| (i % 3) as u8).collect();
    Arc::new(Dataset {
        images,
        labels,
        classes: 3,
        sha256: "x".into(),
        split: crate::datasets::Split::All,
    })
}

/// Two runs of a 6-…-3 MLP on the toy data, minibatches of 5.
fn toy_set(activation: Activation, hidden: Vec<usize>) -> MlpSet {
    let arch = MlpArchitecture {
        inputs: 6,
        hidden,
        classes: 3,
        activation,
    };
    MlpSet::sample(arch, 5, toy_data(), "toy".into(), 2, 3).unwrap()
}

fn check(activation: Activation, hidden: Vec<usize>, eps: f32) {
    let set = toy_set(activation, hidden);
    let p = set.dim();
    let mut theta = vec![0.0f32; p];
    set.initial_point(1, &mut theta);
    // Larger weights than the N(0, 0.01²) init, so every layer matters.
    let mut rng = Rng::new(1, 1);
    for t in theta.iter_mut() {
        *t += (rng.normal() * 0.5) as f32;
    }
    let mut s = set.scratch();
    let mut grad = vec![0.0f32; p];
    set.loss_and_gradient(1, 4, &theta, &mut grad, &mut s);
    let mut g2 = vec![0.0f32; p];
    let scale = grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    for k in 0..p {
        let mut t = theta.clone();
        t[k] += eps;
        let fp = set.loss_and_gradient(1, 4, &t, &mut g2, &mut s);
        t[k] -= 2.0 * eps;
        let fm = set.loss_and_gradient(1, 4, &t, &mut g2, &mut s);
        let fd = ((fp - fm) / (2.0 * eps as f64)) as f32;
        let err = (fd - grad[k]).abs() / (fd.abs().max(grad[k].abs()) + 1e-2 * scale);
        assert!(
            err < 2e-2,
            "{activation:?} parameter {k}: analytic {} vs finite difference {fd}",
            grad[k]
        );
    }
}

/// H v against central differences of the gradient along v, on the same minibatch.
fn check_hessian_vector(activation: Activation, hidden: Vec<usize>, eps: f32) {
    let set = toy_set(activation, hidden);
    let p = set.dim();
    let mut rng = Rng::new(4, 2);
    let theta: Vec<f32> = (0..p).map(|_| (rng.normal() * 0.7) as f32).collect();
    let v: Vec<f32> = (0..p).map(|_| rng.normal() as f32).collect();
    let mut s = set.scratch();
    let mut hv = vec![0.0f32; p];
    set.hessian_vector(1, 3, &theta, &v, &mut hv, &mut s);
    let (mut gp, mut gm) = (vec![0.0f32; p], vec![0.0f32; p]);
    let at = |sign: f32| -> Vec<f32> {
        theta
            .iter()
            .zip(&v)
            .map(|(t, d)| t + sign * eps * d)
            .collect()
    };
    set.loss_and_gradient(1, 3, &at(1.0), &mut gp, &mut s);
    set.loss_and_gradient(1, 3, &at(-1.0), &mut gm, &mut s);
    let scale = hv.iter().fold(0.0f32, |m, h| m.max(h.abs()));
    assert!(
        scale > 1e-3,
        "H v vanishes ({scale}); the check would be empty"
    );
    for k in 0..p {
        let fd = (gp[k] - gm[k]) / (2.0 * eps);
        let err = (fd - hv[k]).abs() / (fd.abs().max(hv[k].abs()) + 1e-2 * scale);
        assert!(
            err < 2e-2,
            "{activation:?} parameter {k}: H v {} vs finite difference {fd}",
            hv[k]
        );
    }
}

#[test]
fn hessian_vector_matches_finite_differences_sigmoid() {
    check_hessian_vector(Activation::Sigmoid, vec![4, 3], 1e-2);
}

#[test]
fn hessian_vector_matches_finite_differences_relu() {
    check_hessian_vector(Activation::Relu, vec![5, 4], 1e-3);
}

#[test]
fn gradient_matches_finite_differences_sigmoid() {
    check(Activation::Sigmoid, vec![4, 3], 1e-2);
}

#[test]
fn gradient_matches_finite_differences_relu() {
    // A small step, so that probes do not cross ReLU's kink.
    check(Activation::Relu, vec![5], 1e-3);
}

#[test]
fn base_network_has_15910_parameters() {
    let arch = MlpArchitecture {
        inputs: 784,
        hidden: vec![20],
        classes: 10,
        activation: Activation::Sigmoid,
    };
    assert_eq!(arch.num_params(), 15_910);
}

#[test]
fn runs_see_the_same_minibatches_and_differ_by_seed() {
    let arch = MlpArchitecture {
        inputs: 6,
        hidden: vec![4],
        classes: 3,
        activation: Activation::Sigmoid,
    };
    let a = MlpSet::sample(arch.clone(), 5, toy_data(), "toy".into(), 3, 1).unwrap();
    let b = MlpSet::sample(arch, 5, toy_data(), "toy".into(), 3, 2).unwrap();
    assert_ne!(a.runs[0], b.runs[0]);
    let mut s = a.scratch();
    let theta = a.theta0.row(0).to_vec();
    let mut g = vec![0.0; a.dim()];
    let l1 = a.loss_and_gradient(0, 7, &theta, &mut g, &mut s);
    let l2 = a.loss_and_gradient(0, 7, &theta, &mut g, &mut s);
    assert_eq!(l1, l2);
    assert!(a.theta0.iter().all(|x| x.abs() < 0.06));
}

//! The meta-gradients beyond BPTT: evolution strategies, and the check of how far BPTT agrees
//! with the true gradient of the whole trajectory.

use super::*;
use crate::ranks::OneProcess;

/// The evolution-strategies estimate, with many pairs, against central differences of the
/// whole-trajectory meta-loss (which, unlike BPTT's, includes second-order effects).
#[test]
fn es_estimate_matches_finite_differences_of_the_trajectory_meta_loss() {
    for (meta_loss, loss_from) in [(MetaLoss::Sum, 1), (MetaLoss::Log, 1), (MetaLoss::Log, 4)] {
        let mut cfg = tiny_config(Preprocessing::Scale(0.1));
        cfg.meta_loss = meta_loss;
        cfg.loss_from = loss_from;
        let batch = tiny_batch();
        let mut t = trainer(cfg.clone()).unwrap();
        // A larger output layer than the initial one, so that the updates matter.
        let range = cfg.networks().output_layers()[0].clone();
        for (k, w) in t.weights[range.clone()].iter_mut().enumerate() {
            *w = 0.5 - 0.3 * k as f32;
        }
        let (grad, _) = t
            .es_estimate(&batch, 4000, 1e-2, EsScope::Output, &OneProcess)
            .unwrap();
        let grad = grad.expect("no run diverges");
        let meta_loss_at = |k: usize, delta: f32| t.meta_loss_moving(&batch, k, delta).unwrap();
        let eps = 1e-2f32;
        let numeric: Vec<f64> = range
            .clone()
            .map(|k| (meta_loss_at(k, eps) - meta_loss_at(k, -eps)) / (2.0 * eps as f64))
            .collect();
        let analytic: Vec<f64> = grad[range.clone()].iter().map(|&g| g as f64).collect();
        let norm = numeric.iter().map(|x| x * x).sum::<f64>().sqrt();
        let err = numeric
            .iter()
            .zip(&analytic)
            .map(|(n, a)| (n - a).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            norm > 1e-3,
            "{meta_loss}: the gradient is vanishingly small"
        );
        assert!(
            err < 0.1 * norm,
            "{meta_loss}: ES {analytic:?} vs finite differences {numeric:?}"
        );
        // Only the output layer is perturbed.
        assert!(grad[..range.start].iter().all(|&g| g == 0.0));
    }
}

/// On a problem whose gradient does not depend on θ the paper's assumption is exact, so
/// the BPTT side and the finite-difference side of the agreement check must coincide.
#[test]
fn meta_gradient_agreement_is_exact_where_gradients_do_not_depend_on_theta() {
    for base in [None, Some(NAG_BASE)] {
        agreement_is_exact_on_a_linear_problem(base);
    }
}

/// With a base rule too: its steps do not depend on φ when the gradients do not depend on
/// θ, so BPTT stays exact.
fn agreement_is_exact_on_a_linear_problem(base: Option<BaseStep>) {
    let mut cfg = tiny_config(Preprocessing::Scale(0.1));
    cfg.unroll = cfg.steps;
    cfg.base = base;
    let t = {
        let mut t = trainer(cfg.clone()).unwrap();
        let range = cfg.networks().output_layers()[0].clone();
        for (k, w) in t.weights[range].iter_mut().enumerate() {
            *w = 0.4 - 0.25 * k as f32;
        }
        t
    };
    let linear = Linear {
        slope: vec![0.3, -0.7],
        count: 3,
    };
    let a = t.meta_gradient_agreement(&linear, 1e-2).unwrap();
    assert!(
        a.cosine() > 0.999,
        "cosine {} for {a:?} (base {base:?})",
        a.cosine()
    );
    assert!(
        (a.norm_ratio() - 1.0).abs() < 1e-2,
        "ratio {}",
        a.norm_ratio()
    );
}

//! Runs, tuning and their tables, against runs computed by hand.

use super::*;
use crate::baselines::Baseline;
use crate::problems::{QuadraticFamily, ValueDistribution};

/// 3-dimensional quadratics with N(0, 1) entries and θ0.
fn family() -> QuadraticFamily {
    QuadraticFamily {
        dims: 3,
        distribution: ValueDistribution::Normal,
        theta0_std: 1.0,
    }
}

#[test]
fn grid_spans_the_documented_range() {
    let g = LrGrid::default().rates();
    assert_eq!(g.len(), 21);
    assert!((g[0] - 1e-4).abs() < 1e-12 && (g[20] - 10.0).abs() < 1e-9);
    assert_eq!(LrGrid::parse("1e-4:10:4").unwrap(), LrGrid::default());
    let half = LrGrid::parse("0.001:1:2").unwrap().rates();
    assert_eq!(half.len(), 7);
    assert!((half[1] - 10f64.powf(-2.5)).abs() < 1e-15);
    for bad in [
        "1e-4:10", "0:1:2", "1e-3:1:0", "3e-3:1:1", "1:1e-3:2", "x:1:2",
    ] {
        assert!(LrGrid::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn curves_are_independent_of_sharding_and_threads() {
    let fam = family();
    let set = fam.sample(4, 37, |i| i);
    let choice = OptimizerChoice::Baseline {
        kind: Baseline::Adam,
        lr: 0.1,
    };
    let a = run(&set, &choice, 5).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = one.install(|| run(&set, &choice, 5)).unwrap();
    assert_eq!(a.losses, b.losses);
    // Problem 5 alone gives the same curve as inside the set.
    let single = fam.sample(4, 6, |i| i);
    let c = run(&single, &choice, 5).unwrap();
    assert_eq!(a.losses.row(5), c.losses.row(5));
}

/// The observer sees θ0 and every later θ of every problem, and the final θ once, equal to
/// the θ after the last step.
#[test]
fn an_observer_sees_every_step_and_the_final_point() {
    use std::sync::Mutex;
    #[derive(Default)]
    struct Record {
        steps: Mutex<Vec<(usize, usize, f32)>>,
        last: Mutex<Vec<(usize, Vec<f32>)>>,
    }
    impl Observer for Record {
        fn at_step(&self, problem: usize, step: usize, theta: &[f32], _loss: f64) {
            self.steps.lock().unwrap().push((problem, step, theta[0]));
        }
        fn finished(&self, problem: usize, theta: &[f32]) {
            self.last.lock().unwrap().push((problem, theta.to_vec()));
        }
    }
    let fam = family();
    let set = fam.sample(4, 5, |i| i);
    let choice = OptimizerChoice::Baseline {
        kind: Baseline::Nag,
        lr: 0.01,
    };
    let record = Record::default();
    let curves = run_observed(&set, &choice, 4, 0, &record, &OneProcess).unwrap();
    assert_eq!(curves.losses, run(&set, &choice, 4).unwrap().losses);
    let mut steps = record.steps.into_inner().unwrap();
    steps.sort_by_key(|s| (s.0, s.1));
    assert_eq!(steps.len(), 5 * 5);
    assert_eq!(steps[0].2, set.theta0[[0, 0]]);
    let mut last = record.last.into_inner().unwrap();
    last.sort_by_key(|l| l.0);
    assert_eq!(last.len(), 5);
    // The final θ is one step past the last one observed at a step.
    let mut rule = Baseline::Nag.rule(0.01, 3);
    let mut theta = set.theta0.row(2).to_vec();
    let mut grad = vec![0.0; 3];
    let mut scratch = set.scratch();
    for step in 0..4 {
        set.loss_and_gradient(2, step, &theta, &mut grad, &mut scratch);
        crate::baselines::UpdateRule::step(&mut rule, &mut theta, &grad);
    }
    assert_eq!(last[2].1, theta);
}

#[test]
fn a_diverging_problem_does_not_stop_the_others() {
    let mut set = family().sample(4, 3, |i| i);
    set.w
        .index_axis_mut(ndarray::Axis(0), 1)
        .mapv_inplace(|x| x * 1e18);
    let curves = run(
        &set,
        &OptimizerChoice::Baseline {
            kind: Baseline::Sgd,
            lr: 1.0,
        },
        4,
    )
    .unwrap();
    assert!(!curves.losses[[1, 4]].is_finite());
    assert!(
        curves.losses[[0, 4]].is_finite(),
        "problem 0 does not diverge"
    );
    assert_eq!(curves.final_mean(), f64::INFINITY);
}

//! The conv net's gradient against central finite differences: every coordinate of a tiny
//! net, and every block of the paper's net at its production minibatch of 128 images.

use super::*;

/// `n` random images of `shape` with labels cycling through 0..10.
fn random_cifar(shape: (usize, usize, usize), train: usize, test: usize) -> Arc<Cifar> {
    let mut rng = Rng::new(9, 0);
    let (c, h, w) = shape;
    let train = Dataset::random(train, c * h * w, 10, &mut rng);
    let test = Dataset::random(test, c * h * w, 10, &mut rng);
    Arc::new(Cifar {
        folder: "random".into(),
        train,
        test,
    })
}

/// θ0 plus noise, so that every layer, γ and β matter.
fn perturbed_start(set: &ConvSet, noise: f64) -> Vec<f32> {
    let mut theta = vec![0.0f32; set.dim()];
    set.initial_point(0, &mut theta);
    let mut rng = Rng::new(5, 1);
    for t in theta.iter_mut() {
        *t += (rng.normal() * noise) as f32;
    }
    theta
}

fn loss_at(set: &ConvSet, theta: &[f32], s: &mut ConvScratch) -> f64 {
    let mut g = vec![0.0f32; theta.len()];
    set.loss_and_gradient(0, 3, theta, &mut g, s)
}

/// Central difference of the loss along `v`, against ⟨∇f, v⟩.
fn directional_error(
    set: &ConvSet,
    theta: &[f32],
    grad: &[f32],
    v: &[f32],
    eps: f32,
) -> (f64, f64) {
    let mut s = set.scratch();
    let shifted = |sign: f32| -> Vec<f32> {
        theta
            .iter()
            .zip(v)
            .map(|(t, d)| t + sign * eps * d)
            .collect()
    };
    let fd = (loss_at(set, &shifted(1.0), &mut s) - loss_at(set, &shifted(-1.0), &mut s))
        / (2.0 * eps as f64);
    let analytic: f64 = grad.iter().zip(v).map(|(g, d)| (g * d) as f64).sum();
    (analytic, fd)
}

fn tiny(fc_units: Vec<usize>, assignment: GroupAssignment) -> ConvSet {
    let arch = ConvArchitecture {
        input: (2, 4, 4),
        conv_channels: vec![3, 2],
        kernel: 3,
        fc_units,
        classes: 3,
    };
    tiny_on(arch, assignment, Split::Train)
}

fn tiny_on(arch: ConvArchitecture, assignment: GroupAssignment, split: Split) -> ConvSet {
    let images = ConvImages {
        data: random_cifar((2, 4, 4), 40, 12),
        labels: vec![7, 1, 4],
        split,
    };
    ConvSet::sample(arch, assignment, images, 6, 2, 3).unwrap()
}

#[test]
fn every_coordinate_of_a_tiny_net_matches_finite_differences() {
    for fc_units in [vec![4], vec![]] {
        let set = tiny(fc_units.clone(), GroupAssignment::ByLayer);
        let theta = perturbed_start(&set, 0.5);
        let mut s = set.scratch();
        let mut grad = vec![0.0f32; set.dim()];
        set.loss_and_gradient(0, 3, &theta, &mut grad, &mut s);
        let scale = grad.iter().fold(0.0f32, |m, g| m.max(g.abs())) as f64;
        let eps = 1e-3f32;
        for k in 0..set.dim() {
            let mut t = theta.clone();
            t[k] += eps;
            let fp = loss_at(&set, &t, &mut s);
            t[k] -= 2.0 * eps;
            let fm = loss_at(&set, &t, &mut s);
            let fd = (fp - fm) / (2.0 * eps as f64);
            let g = grad[k] as f64;
            let err = (fd - g).abs() / (fd.abs().max(g.abs()) + 1e-2 * scale);
            assert!(
                err < 3e-2,
                "fc {fc_units:?}, parameter {k}: analytic {g} vs finite difference {fd}"
            );
        }
    }
}

/// The paper's net on 32×32×3 images, minibatches of 128: along random directions within
/// each block of θ (kernel, bias, γ, β of every layer). The net is
/// piecewise smooth (ReLU, max-pooling) with 10⁵ kinks and runs in f32, so a single central
/// difference is off by a few percent; four directions per block are compared as a vector.
#[test]
fn every_block_of_the_paper_net_matches_finite_differences() {
    let images = ConvImages {
        data: random_cifar((3, 32, 32), 300, 10),
        labels: (0..10).collect(),
        split: Split::Train,
    };
    let set = ConvSet::sample(
        ConvArchitecture::paper(10),
        GroupAssignment::ByLayer,
        images,
        PAPER_MINIBATCH,
        1,
        4,
    )
    .unwrap();
    assert_eq!(set.dim(), 22_762);
    let theta = perturbed_start(&set, 0.5);
    let mut s = set.scratch();
    let mut grad = vec![0.0f32; set.dim()];
    set.loss_and_gradient(0, 3, &theta, &mut grad, &mut s);
    let mut rng = Rng::new(8, 8);
    // By linearity, the blocks together check the gradient along any direction.
    for (kind, layer, range) in set.architecture.blocks() {
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for _ in 0..4 {
            let mut v = vec![0.0f32; set.dim()];
            for x in &mut v[range.clone()] {
                *x = rng.normal() as f32;
            }
            let (analytic, fd) = directional_error(&set, &theta, &grad, &v, 1e-3);
            diff += (analytic - fd).powi(2);
            norm += analytic.powi(2).max(fd.powi(2));
        }
        let (diff, norm) = (diff.sqrt(), norm.sqrt());
        if matches!(kind, BlockKind::ConvBias | BlockKind::FcBias) {
            // A bias that feeds batch norm is removed by it: its gradient is zero.
            assert!(norm < 1e-3, "{kind:?} of layer {layer}: {norm}");
        } else {
            assert!(
                diff <= 0.1 * norm,
                "{kind:?} of layer {layer} ({range:?}): analytic and finite differences differ by {diff} of {norm}"
            );
        }
    }
}

#[test]
fn the_two_assignments_split_every_parameter_once() {
    let arch = ConvArchitecture::paper(10);
    for assignment in [GroupAssignment::ByLayer, GroupAssignment::KernelsOnly] {
        let groups = arch.groups(assignment);
        let mut owner = vec![0u8; arch.num_params()];
        for g in &groups {
            for r in &g.ranges {
                owner[r.clone()].iter_mut().for_each(|o| *o += 1);
            }
        }
        assert!(owner.iter().all(|&o| o == 1), "{assignment:?}");
        let sizes: Vec<usize> = groups
            .iter()
            .map(|g| g.ranges.iter().map(|r| r.len()).sum())
            .collect();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        match assignment {
            // Conv layers: 3 × (kernel + bias + γ + β); the rest is fully connected.
            GroupAssignment::ByLayer => {
                assert_eq!(names, ["conv", "fc"]);
                assert_eq!(sizes, [1248 + 6448 + 6448, 8288 + 330]);
            }
            GroupAssignment::KernelsOnly => {
                assert_eq!(names, ["conv_kernels", "other"]);
                assert_eq!(sizes, [1200 + 6400 + 6400, 3 * 48 + 8288 + 330]);
            }
        }
    }
}

#[test]
fn a_label_subset_is_renumbered_and_its_runs_see_only_its_images() {
    let set = tiny(vec![4], GroupAssignment::ByLayer);
    // Labels 7, 1, 4 among 40 training and 12 test images cycling through 0..10.
    assert_eq!(set.image_counts(), (12, 4));
    let mut s = set.scratch();
    let mut g = vec![0.0f32; set.dim()];
    let theta = perturbed_start(&set, 0.0);
    set.loss_and_gradient(1, 0, &theta, &mut g, &mut s);
    assert!(s.labels.iter().all(|&l| l < 3));
    let repeated = ConvImages {
        data: random_cifar((3, 32, 32), 20, 10),
        labels: vec![3, 3],
        split: Split::Train,
    };
    let paper = || ConvArchitecture::paper(2);
    assert!(ConvSet::sample(paper(), GroupAssignment::ByLayer, repeated.clone(), 8, 1, 1).is_err());
    // CIFAR-10 has no `all` split: a run draws from the training batches or the test batch.
    let all = ConvImages {
        labels: vec![3, 4],
        split: Split::All,
        ..repeated
    };
    assert!(ConvSet::sample(paper(), GroupAssignment::ByLayer, all, 8, 1, 1).is_err());
}

/// A `test` set draws its minibatches from the test batch only, and takes its held-out loss
/// over as many training-batch images (the first of its labels), which its runs never see.
#[test]
fn a_test_split_trains_on_the_test_batch_and_holds_out_training_images() {
    let arch = tiny(vec![4], GroupAssignment::ByLayer).architecture;
    let set = tiny_on(arch, GroupAssignment::ByLayer, Split::Test);
    assert_eq!(set.image_counts(), (4, 4));
    let rows = |d: &Dataset| -> Vec<Vec<f32>> {
        d.images.rows().into_iter().map(|r| r.to_vec()).collect()
    };
    let (test_images, train_images) = (rows(&set.data.test), rows(&set.data.train));
    let mut s = set.scratch();
    let mut g = vec![0.0f32; set.dim()];
    let theta = perturbed_start(&set, 0.0);
    for step in 0..20 {
        set.loss_and_gradient(1, step, &theta, &mut g, &mut s);
        for i in 0..set.batch_size {
            assert!(test_images.contains(&s.image(i)));
            assert!(!train_images.contains(&s.image(i)));
        }
    }
    // The held-out images: the first 4 training images of labels 7, 1, 4 (rows 1, 4, 7, 11).
    assert_eq!(set.held_out.rows, [1, 4, 7, 11]);
    let train = tiny(vec![4], GroupAssignment::ByLayer);
    assert_eq!(set.data_split().split, Split::Test);
    assert!(!set.data_split().overlaps(&train.data_split()));
    assert!(train.data_split().overlaps(&train.data_split()));
}

#[test]
fn the_held_out_loss_covers_every_test_image_even_below_one_minibatch() {
    let set = tiny(vec![4], GroupAssignment::ByLayer);
    let theta = perturbed_start(&set, 0.3);
    let mut s = set.scratch();
    // 4 test images of labels 7, 1, 4 and a minibatch of 6: one minibatch, images 0-3 then 0-1.
    assert_eq!(set.image_counts().1, 4);
    let mut by_hand = set.scratch();
    for i in 0..6 {
        let at = i % 4;
        let row = set.data.test.images.row(set.held_out.rows[at] as usize);
        by_hand.set_image(i, row.as_slice().unwrap());
        by_hand.labels[i] = set.held_out.labels[at];
    }
    let expected = conv_loss(&set.architecture, &set.layout, &theta, &mut by_hand);
    let held_out = set.held_out_loss(&theta, &mut s).unwrap();
    assert_eq!(held_out, expected);
    assert!(held_out.is_finite() && held_out > 0.0);
    // Forward only: it leaves the training loss at the same θ as it was.
    let mut g = vec![0.0f32; theta.len()];
    let a = set.loss_and_gradient(0, 1, &theta, &mut g, &mut s);
    assert_eq!(a, loss_at_step(&set, &theta, 1));
}

fn loss_at_step(set: &ConvSet, theta: &[f32], step: usize) -> f64 {
    let mut s = set.scratch();
    let mut g = vec![0.0f32; theta.len()];
    set.loss_and_gradient(0, step, theta, &mut g, &mut s)
}

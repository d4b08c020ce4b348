//! `evaluate` on the problems of §3.3 and §3.4: the conv net's parameter groups and held-out
//! loss, and neural art's tuned, trained and evaluated runs.

use crate::common::*;

/// §3.3's two networks: a conv spec trains a checkpoint with a `conv` and an `fc` network,
/// which evaluates on problems grouped the same way and is refused, in one line, on problems
/// whose parameters are grouped as the original code grouped them.
#[test]
fn a_checkpoint_serves_only_the_parameter_groups_it_was_trained_on() {
    let d = Dir::new();
    tiny_conv_spec(&d, "1", "by-layer", "paper.npz");
    for (groups, out) in [
        ("by-layer", "paper_test.npz"),
        ("kernels-only", "original.npz"),
    ] {
        tiny_conv_spec_on(&d, "1", groups, "test", out);
    }
    d.ok(
        "meta-train",
        &[
            "--train",
            "paper.npz",
            "--epochs",
            "1",
            "--batch",
            "1",
            "--steps",
            "2",
            "--unroll",
            "1",
            "--hidden",
            "4",
            "-o",
            "opt.npz",
        ],
    );
    let mut npz = l2l::io::Npz::open(&d.path("opt.npz")).unwrap();
    assert_eq!(npz.text("networks").unwrap(), "conv,fc");
    let evaluate = |spec: &'static str| {
        vec![
            "--spec",
            spec,
            "--steps",
            "2",
            "-O",
            "lstm:opt.npz,sgd",
            "-o",
            "t.parquet",
        ]
    };
    d.ok("evaluate", &evaluate("paper_test.npz"));
    std::fs::remove_file(d.path("t.parquet")).unwrap();
    // The training spec's own split: images the optimizer was meta-trained on.
    d.fails(
        "evaluate",
        &evaluate("paper.npz"),
        "t.parquet",
        "draws from the train split of the data lstm was meta-trained on",
    );
    d.fails(
        "evaluate",
        &evaluate("original.npz"),
        "t.parquet",
        "parameter group 'conv_kernels' has no network in this optimizer (it has conv, fc)",
    );
}

/// §3.3's left panel reports the loss on held-out test images: a conv spec's trajectories carry
/// it as format 2's test_loss column, at step 0, every --test-every steps and the last; plot
/// draws it from several files in one panel, and refuses a file without it.
#[test]
fn conv_runs_record_the_held_out_loss_and_plot_draws_it() {
    let d = Dir::new();
    tiny_conv_spec(&d, "2", "by-layer", "c.npz");
    let stderr = d.ok(
        "evaluate",
        &[
            "--spec",
            "c.npz",
            "--steps",
            "5",
            "--test-every",
            "2",
            "-O",
            "sgd,adam",
            "--tune",
            "--validation",
            "c.npz",
            "--lr-grid",
            "1e-2:1:1",
            "--tuning-output",
            "grid.parquet",
            "-o",
            "t.parquet",
        ],
    );
    assert!(stderr.contains("over 3 learning rates"), "{stderr}");
    assert!(stderr.contains("held-out"), "{stderr}");
    let rows = l2l::trajectory::read_trajectories(&d.path("t.parquet")).unwrap();
    let measured: Vec<i64> = rows
        .iter()
        .filter(|r| r.optimizer == "sgd" && r.problem == 1 && r.test_loss.is_some())
        .map(|r| r.step)
        .collect();
    assert_eq!(measured, vec![0, 2, 4, 5]);
    assert!(rows
        .iter()
        .all(|r| r.test_loss.is_none_or(|t| t.is_finite() && t > 0.0)));
    // --test-every 0 writes version 1, as before.
    d.ok(
        "evaluate",
        &[
            "--spec",
            "c.npz",
            "--steps",
            "3",
            "--test-every",
            "0",
            "-O",
            "nag",
            "-o",
            "v1.parquet",
        ],
    );
    let v1 = l2l::trajectory::read_trajectories(&d.path("v1.parquet")).unwrap();
    assert!(v1.iter().all(|r| r.test_loss.is_none()));

    d.ok(
        "plot",
        &[
            "--measure",
            "test-loss",
            "--panel",
            "t.parquet,v1.parquet=Both",
            "-o",
            "f.png",
        ],
    );
    assert!(d.path("f.svg").exists());
    d.fails(
        "plot",
        &[
            "--measure",
            "test-loss",
            "--panel",
            "v1.parquet=Old",
            "-o",
            "g.png",
        ],
        "g.png",
        "has no held-out losses",
    );
    for bad in ["1e-2:1", "0.02:1:1", "1:0.1:2"] {
        d.fails(
            "evaluate",
            &[
                "--spec",
                "c.npz",
                "-O",
                "sgd",
                "--tune",
                "--validation",
                "c.npz",
                "--lr-grid",
                bad,
                "-o",
                "bad.parquet",
            ],
            "bad.parquet",
            "--lr-grid",
        );
    }
}

/// Neural art end to end on the tiny feature network: tuned baselines, a learned optimizer
/// trained on one pool of crops and evaluated on another, and a spec whose feature network
/// changed is refused.
#[test]
fn neural_art_problems_are_tuned_trained_and_evaluated() {
    let d = Dir::new();
    art_spec(&d, "art_train.npz", 6, 1);
    art_spec(&d, "art_val.npz", 2, 2);
    art_spec(&d, "art_test.npz", 3, 3);
    let stderr = d.ok(
        "evaluate",
        &[
            "--spec",
            "art_test.npz",
            "--steps",
            "5",
            "-O",
            "sgd,adam",
            "--tune",
            "--lr-grid",
            "1e-3:1:1",
            "--validation",
            "art_val.npz",
            "-o",
            "base.parquet",
        ],
    );
    assert!(
        stderr.contains("adam") && stderr.contains("mean loss at step 5"),
        "{stderr}"
    );
    d.ok(
        "meta-train",
        &[
            "--train",
            "art_train.npz",
            "--validation",
            "art_val.npz",
            "--epochs",
            "2",
            "--batch",
            "2",
            "--steps",
            "4",
            "--unroll",
            "2",
            "--eval-every",
            "1",
            "--hidden",
            "4",
            "--preprocessing",
            "log-sign",
            "-o",
            "art.npz",
        ],
    );
    // Five steps of the trained optimizer on the test crops, with `extra` flags.
    let evaluate_learned = |extra: &[&str]| {
        let base = [
            "--spec",
            "art_test.npz",
            "--steps",
            "5",
            "-O",
            "lstm:art.npz",
            "-o",
            "learned.parquet",
        ];
        d.ok("evaluate", &[&base[..], extra].concat())
    };
    let stderr = evaluate_learned(&[]);
    assert!(stderr.contains("mean loss at step 5"), "{stderr}");
    std::fs::create_dir(d.path("imgs")).unwrap();
    let stderr = evaluate_learned(&["--images", "imgs"]);
    assert!(stderr.contains("wrote 3 images of lstm"), "{stderr}");
    // content | result | style, 16 px each with 1-px gaps, enlarged 16 times to 256 px tall.
    let triple = image::open(d.path("imgs/lstm-02.png")).unwrap();
    assert_eq!((triple.width(), triple.height()), (50 * 16, 16 * 16));
    // Appendix B: the learned optimizer followed, SGD and Adam fed its gradients.
    let stderr = d.ok(
        "evaluate",
        &[
            "--spec",
            "art_test.npz",
            "--steps",
            "5",
            "-O",
            "lstm:art.npz,sgd=0.1,adam=0.01",
            "--probe",
            "3,100",
            "--probe-run",
            "1",
            "--probe-sweep-steps",
            "2",
            "--probe-gradients",
            "-1:1:5",
            "--probe-output",
            "probe.parquet",
            "-o",
            "p.parquet",
        ],
    );
    assert!(
        stderr.contains("wrote 60 proposals at 2 coordinates of run 1"),
        "{stderr}"
    );
    let rows = l2l::proposals::read_proposals(&d.path("probe.parquet")).unwrap();
    assert_eq!(rows.iter().filter(|r| !r.swept).count(), 5 * 2 * 3);
    assert!(rows.iter().filter(|r| r.swept).all(|r| r.step == 2));
    for r in rows.iter().filter(|r| r.optimizer == "sgd") {
        assert!(
            (r.update + 0.1 * r.gradient).abs() <= 1e-5 * (1.0 + r.gradient.abs()),
            "{r:?}"
        );
    }
    for bad in [
        ["--probe", "768"],
        ["--probe-sweep-steps", "5"],
        ["--probe-gradients", "1:-1:5"],
    ] {
        let mut args = vec![
            "--spec",
            "art_test.npz",
            "--steps",
            "5",
            "-O",
            "lstm:art.npz",
            "--probe",
            "3",
            "--probe-output",
            "bad_probe.parquet",
            "-o",
            "bad.parquet",
        ];
        if bad[0] == "--probe" {
            args[7] = bad[1];
        } else {
            args.extend(bad);
        }
        d.fails("evaluate", &args, "bad.parquet", bad[0]);
        assert!(!d.path("bad_probe.parquet").exists());
    }
    specs(&d);
    d.fails(
        "evaluate",
        &[
            "--spec",
            "test.npz",
            "--steps",
            "5",
            "-O",
            "sgd",
            "--images",
            "imgs",
            "-o",
            "bad.parquet",
        ],
        "bad.parquet",
        "--images needs problems whose parameters are an image",
    );
    // The spec records the network's SHA-256: another network is refused.
    tiny_feature_net(&d.path("art_net.npz"), false);
    let mut bytes = std::fs::read(d.path("art_net.npz")).unwrap();
    bytes.extend_from_slice(b"x");
    std::fs::write(d.path("other_net.npz"), bytes).unwrap();
    d.fails(
        "evaluate",
        &[
            "--spec",
            "art_test.npz",
            "--data",
            d.path("other_net.npz").to_str().unwrap(),
            "--steps",
            "5",
            "-O",
            "sgd",
            "-o",
            "bad.parquet",
        ],
        "bad.parquet",
        "differs from the one the spec was made with",
    );
}

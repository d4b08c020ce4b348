//! `evaluate`: learning curves on every kind of spec, deterministic, tuned on validation
//! problems only. Several horizons at once, L-BFGS, the refusals of bad input and the problems
//! of §3.3 and §3.4 have files of their own.

mod horizons;
mod lbfgs;
mod problems;
mod refusals;

use crate::common::*;
use l2l::trajectory::read_trajectories;

#[test]
fn curves_are_deterministic_and_start_from_the_same_point() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    let eval = |out: &str| evaluate_tuned(&d, "lstm:opt.npz,sgd,nag,rmsprop,adam", out);
    eval("a.parquet");
    eval("b.parquet");
    let a = read_trajectories(&d.path("a.parquet")).unwrap();
    assert_eq!(a, read_trajectories(&d.path("b.parquet")).unwrap());
    // 5 optimizers × 6 problems × 7 steps, step 0 at θ0, lr null only for the LSTM.
    assert_eq!(a.len(), 5 * 6 * 7);
    assert!(a.iter().all(|r| (r.optimizer == "lstm") == r.lr.is_none()));
    let first = a
        .iter()
        .find(|r| r.optimizer == "sgd" && r.problem == 2 && r.step == 0)
        .unwrap();
    let lstm0 = a
        .iter()
        .find(|r| r.optimizer == "lstm" && r.problem == 2 && r.step == 0)
        .unwrap();
    assert_eq!(
        first.loss, lstm0.loss,
        "every optimizer starts from the same θ0"
    );
}

/// --validation-window W ranks each rate by the mean loss over the last W tuning steps: the
/// tuning table records W, and its chosen value is that mean, recomputed here from a plain run
/// of the chosen rate on the validation problems.
#[test]
fn tuning_over_a_window_of_steps_is_that_mean_and_is_recorded() {
    let d = Dir::new();
    specs(&d);
    // Tunes NAG on val.npz, judged over the last `window` of 6 steps, the grid to `grid`.
    let args = |window: &'static str, grid: &'static str| {
        [
            "--spec",
            "test.npz",
            "--steps",
            "6",
            "-O",
            "nag",
            "--tune",
            "--validation",
            "val.npz",
            "--lr-grid",
            "1e-2:1:2",
            "--validation-window",
            window,
            "--tuning-output",
            grid,
            "-o",
            "t.parquet",
        ]
    };
    let tune = |window, grid| d.ok("evaluate", &args(window, grid));
    let stderr = tune("3", "w3.parquet");
    assert!(stderr.contains("loss over the last 3 steps"), "{stderr}");
    let table = |p: &str| {
        l2l::io::read_table(
            &d.path(p),
            &[
                ("lr", arrow::datatypes::DataType::Float64),
                ("validation_final_loss", arrow::datatypes::DataType::Float64),
                ("chosen", arrow::datatypes::DataType::Boolean),
            ],
            "a tuning table",
        )
        .unwrap()
    };
    let t = table("w3.parquet");
    assert_eq!(
        l2l::evaluation::tuning_window(&t, &d.path("w3.parquet")).unwrap(),
        3
    );
    let pick = t.bools("chosen").iter().position(|&c| c).unwrap();
    let (lr, measured) = (
        t.floats("lr")[pick].unwrap(),
        t.floats("validation_final_loss")[pick].unwrap(),
    );
    d.ok(
        "evaluate",
        &[
            "--spec",
            "val.npz",
            "--steps",
            "6",
            "-O",
            &format!("nag={lr}"),
            "-o",
            "v.parquet",
        ],
    );
    let rows = read_trajectories(&d.path("v.parquet")).unwrap();
    let at = |step: i64| {
        let l: Vec<f64> = rows
            .iter()
            .filter(|r| r.step == step)
            .map(|r| r.loss)
            .collect();
        l.iter().sum::<f64>() / l.len() as f64
    };
    let expected = (at(4) + at(5) + at(6)) / 3.0;
    assert!(
        (measured - expected).abs() <= 1e-12 * expected.abs(),
        "{measured} vs {expected}"
    );
    // W = 1 records no window: the final loss, as in every table before the option.
    tune("1", "w1.parquet");
    let t = table("w1.parquet");
    assert_eq!(
        l2l::evaluation::tuning_window(&t, &d.path("w1.parquet")).unwrap(),
        1
    );
    d.fails(
        "evaluate",
        &args("7", "bad.parquet"),
        "bad.parquet",
        "--validation-window must be between 1 and the steps of a validation run (6), got 7",
    );
}

#[test]
fn numpy_written_specs_work_everywhere() {
    let d = Dir::new();
    numpy_spec(&d.path("np_train.npz"), 6, 3, "W", 6, false);
    numpy_spec(&d.path("np_test.npz"), 4, 3, "W", 4, false);
    let mut args = vec![
        "--train",
        "np_train.npz",
        "--validation",
        "np_test.npz",
        "-o",
        "opt.npz",
    ];
    args.extend_from_slice(TINY_TRAIN);
    d.ok("meta-train", &args);
    d.ok(
        "evaluate",
        &[
            "--spec",
            "np_test.npz",
            "--steps",
            "4",
            "-O",
            "lstm:opt.npz,adam=0.1",
            "-o",
            "t.parquet",
        ],
    );
    assert_eq!(
        read_trajectories(&d.path("t.parquet")).unwrap().len(),
        2 * 4 * 5
    );
    // Two checkpoints in one file are told apart by their file names.
    std::fs::copy(d.path("opt.npz"), d.path("other.npz")).unwrap();
    d.ok(
        "evaluate",
        &[
            "--spec",
            "np_test.npz",
            "--steps",
            "2",
            "-O",
            "lstm:opt.npz,lstm:other.npz",
            "-o",
            "two.parquet",
        ],
    );
    let mut labels: Vec<String> = read_trajectories(&d.path("two.parquet"))
        .unwrap()
        .into_iter()
        .map(|r| r.optimizer)
        .collect();
    labels.dedup();
    assert_eq!(labels, ["lstm:opt", "lstm:other"]);
}

/// A spec in any layout numpy writes (Fortran order from
/// `np.asfortranarray`, big-endian from `astype('>f8')`, float16, integer `W`) gives the same
/// curves as the same spec in C-order float32.
#[test]
fn every_numpy_layout_gives_the_same_curves() {
    let d = Dir::new();
    let (n, k) = (4, 3);
    // Values exact in float16 and int16, so every encoding holds the same numbers.
    let w: Vec<f64> = (0..n * k * k).map(|i| (i % 5) as f64 - 2.0).collect();
    let y = vec![0.25; n * k];
    let theta0: Vec<f64> = (0..n * k).map(|i| (i / k + i % k) as f64 * 0.125).collect();
    let layouts = [
        ("c", "<f4", false, "<f4"),
        ("fortran", "<f4", true, "<f4"),
        ("big_endian", ">f8", false, ">f8"),
        ("big_fortran", ">f4", true, ">f8"),
        ("half", "<f2", false, "<f2"),
        ("int_w", ">i2", true, "<f8"),
    ];
    for (name, w_descr, fortran, descr) in layouts {
        let array = |descr, shape, values| {
            npy_bytes(&RawArray {
                descr,
                fortran,
                shape,
                values,
            })
        };
        raw_npz(
            &d.path(&format!("{name}.npz")),
            &[
                ("W", array(w_descr, &[n, k, k], &w)),
                ("y", array(descr, &[n, k], &y)),
                ("theta0", array(descr, &[n, k], &theta0)),
            ],
        );
        d.ok(
            "evaluate",
            &[
                "--spec",
                &format!("{name}.npz"),
                "--steps",
                "4",
                "-O",
                "sgd=0.01,adam=0.1",
                "-o",
                &format!("{name}.parquet"),
            ],
        );
    }
    let reference = read_trajectories(&d.path("c.parquet")).unwrap();
    for (name, ..) in &layouts[1..] {
        let rows = read_trajectories(&d.path(&format!("{name}.parquet"))).unwrap();
        assert_eq!(rows, reference, "{name}");
    }
}

#[test]
fn has_help() {
    assert_help("evaluate");
}

//! `evaluate`: learning curves on every kind of spec, deterministic, tuned on validation
//! problems only, and every bad input refused in one line with no output file.

// The tests of several horizons at once, in a file of their own.
mod horizons;
mod lbfgs;
use crate::common::*;
use l2l::io::write_npz;
use l2l::trajectory::read_trajectories;
use ndarray::Array2;

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

#[test]
fn bad_inputs_fail_cleanly() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    let eval = |spec: &str, opt: &str, steps: &str, expect: &str| {
        d.fails(
            "evaluate",
            &[
                "--spec",
                spec,
                "--steps",
                steps,
                "-O",
                opt,
                "-o",
                "out.parquet",
            ],
            "out.parquet",
            expect,
        )
    };
    // Missing file, and a file that is not an npz.
    eval("nope.npz", "sgd", "5", "nope.npz");
    std::fs::write(d.path("text.npz"), "hello").unwrap();
    eval("text.npz", "sgd", "5", "not a readable .npz");
    // Wrong name, wrong shape, inconsistent n, NaN.
    numpy_spec(&d.path("wrong_name.npz"), 3, 2, "A", 3, false);
    eval("wrong_name.npz", "sgd", "5", "has no array 'W'");
    numpy_spec(&d.path("inconsistent.npz"), 3, 2, "W", 4, false);
    eval("inconsistent.npz", "sgd", "5", "'y' has shape [4, 2]");
    write_npz(&d.path("flat_w.npz"), |a| {
        a.add("W", Array2::<f32>::zeros((3, 4)));
        a.add("y", Array2::<f32>::zeros((3, 2)));
        a.add("theta0", Array2::<f32>::zeros((3, 2)));
        Ok(())
    })
    .unwrap();
    eval("flat_w.npz", "sgd", "5", "expected 3 dimensions");
    numpy_spec(&d.path("nan.npz"), 3, 2, "W", 3, true);
    eval("nan.npz", "sgd", "5", "NaN");
    // A truncated checkpoint, and one from another architecture.
    let bytes = std::fs::read(d.path("opt.npz")).unwrap();
    std::fs::write(d.path("truncated.npz"), &bytes[..bytes.len() / 2]).unwrap();
    eval("test.npz", "lstm:truncated.npz", "5", "truncated.npz");
    d.ok(
        "meta-train",
        &[
            "--train",
            "train.npz",
            "-o",
            "wide.npz",
            "--epochs",
            "2",
            "--batch",
            "4",
            "--steps",
            "6",
            "--unroll",
            "3",
            "--hidden",
            "5",
        ],
    );
    let mut other = l2l::io::Npz::open(&d.path("wide.npz")).unwrap();
    let w2 = other.array::<f32>("lstm2_w").unwrap();
    let mut orig = l2l::io::Npz::open(&d.path("opt.npz")).unwrap();
    write_npz(&d.path("franken.npz"), |a| {
        for name in orig.names().to_vec() {
            if name == "lstm2_w" {
                a.add(&name, w2.clone());
            } else {
                a.add(&name, orig.array::<f64>(&name).unwrap());
            }
        }
        Ok(())
    })
    .unwrap();
    eval("test.npz", "lstm:franken.npz", "5", "another architecture");
    // An unknown optimizer, and zero steps.
    eval("test.npz", "bfgs", "5", "unknown optimizer 'bfgs'");
    eval(
        "test.npz",
        "sgd",
        "0",
        "--steps must be between 1 and 1000000, got 0",
    );
    // Two optimizers that the trajectory could not tell apart.
    eval("test.npz", "sgd,sgd=0.1", "5", "both be labelled 'sgd'");
    std::fs::create_dir_all(d.path("other")).unwrap();
    std::fs::copy(d.path("opt.npz"), d.path("other/opt.npz")).unwrap();
    eval(
        "test.npz",
        "lstm:opt.npz,lstm:other/opt.npz",
        "5",
        "both be labelled 'lstm:opt'",
    );
}

/// A tiny MLP: every optimizer starts each run from the same θ0 on the same first minibatch,
/// the optimizer runs unchanged on another architecture (Figure 5), and a changed dataset or a
/// validation spec of another problem class is refused.
#[test]
fn mlp_specs_evaluate_and_bad_ones_are_refused() {
    let d = Dir::new();
    mlp_specs(&d);
    train_tiny_mlp(&d, "opt.npz", "2");
    d.ok(
        "evaluate",
        &[
            "--spec",
            "test.npz",
            "--steps",
            "5",
            "-O",
            "lstm:opt.npz,nag,adam",
            "--tune",
            "--validation",
            "val.npz",
            "-o",
            "t.parquet",
        ],
    );
    let rows = read_trajectories(&d.path("t.parquet")).unwrap();
    assert_eq!(rows.len(), 3 * 3 * 6);
    // Every optimizer starts each run from the same θ0 on the same first minibatch.
    let at0: Vec<f64> = rows
        .iter()
        .filter(|r| r.problem == 1 && r.step == 0)
        .map(|r| r.loss)
        .collect();
    assert!(at0.windows(2).all(|w| w[0] == w[1]), "{at0:?}");
    // The optimizer runs unchanged on another architecture (Figure 5), and the sweep plots.
    d.ok(
        "evaluate",
        &[
            "--spec",
            "test2.npz",
            "--steps",
            "5",
            "-O",
            "lstm:opt.npz,sgd=0.5",
            "-o",
            "t2.parquet",
        ],
    );
    // A spec whose dataset changed since it was written, a corrupt dataset, and a validation
    // spec of another architecture are refused.
    tiny_csv(&d.path("digits.csv"));
    std::fs::write(
        d.path("digits.csv"),
        std::fs::read_to_string(d.path("digits.csv"))
            .unwrap()
            .replacen("0,", "1,", 1),
    )
    .unwrap();
    refuses_spec(&d, "test.npz", "sha256");
    // The original data again: the spec is valid again, but its validation spec is of another
    // problem class.
    tiny_csv(&d.path("digits.csv"));
    d.fails(
        "evaluate",
        &[
            "--spec",
            "test.npz",
            "--steps",
            "3",
            "-O",
            "sgd",
            "--tune",
            "--validation",
            "test2.npz",
            "-o",
            "x.parquet",
        ],
        "x.parquet",
        "same problem class",
    );
}

/// Specs from before the `kind` field are recognised by their arrays, and give the same curves;
/// an unknown kind or a newer format version is refused.
#[test]
fn specs_without_a_kind_still_load_and_unknown_kinds_are_refused() {
    let (q, m) = (Dir::new(), Dir::new());
    specs(&q);
    mlp_specs(&m);
    for d in [&q, &m] {
        rewrite_spec(
            d,
            "test.npz",
            "old.npz",
            &["kind", "format_version"],
            &[],
            &[],
        );
        evaluate_briefly(d, "sgd=0.1", "new.parquet");
        d.ok(
            "evaluate",
            &[
                "--spec",
                "old.npz",
                "--steps",
                "6",
                "-O",
                "sgd=0.1",
                "-o",
                "old.parquet",
            ],
        );
        assert_eq!(
            read_trajectories(&d.path("old.parquet")).unwrap(),
            read_trajectories(&d.path("new.parquet")).unwrap()
        );
    }
    for ((kind, version), expect) in [
        (("image", 1), "unknown kind 'image'"),
        (("quadratic", 3), "spec format version 3"),
    ] {
        rewrite_spec(
            &q,
            "test.npz",
            "odd.npz",
            &[],
            &[("format_version", version)],
            &[("kind", kind)],
        );
        refuses_spec(&q, "odd.npz", expect);
    }
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

/// An array whose header declares far more elements than its data holds
/// (10¹² here) is refused in one line, without trying to allocate them.
#[test]
fn a_declared_shape_larger_than_the_data_is_refused() {
    let d = Dir::new();
    let values = vec![0.5; 6];
    let small = npy_bytes(&RawArray {
        descr: "<f4",
        fortran: false,
        shape: &[2, 3],
        values: &values,
    });
    let huge = npy_file(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }",
        &[0; 24],
    );
    raw_npz(
        &d.path("huge.npz"),
        &[("W", huge), ("y", small.clone()), ("theta0", small)],
    );
    d.fails(
        "evaluate",
        &[
            "--spec",
            "huge.npz",
            "--steps",
            "2",
            "-O",
            "sgd",
            "-o",
            "t.parquet",
        ],
        "t.parquet",
        "array 'W': header declares shape [1000000, 1000, 1000]",
    );
}

/// An output that already exists and is not a regular file (a
/// FIFO, a link to one, a character device) is opened and written in place; the temporary file
/// and rename that regular outputs get would replace it (`-o /dev/stdout` as root once replaced
/// the system's `/dev/stdout` link).
#[test]
fn outputs_that_are_not_regular_files_are_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let d = Dir::new();
    specs(&d);
    evaluate_briefly(&d, "sgd,adam", "regular.parquet");
    let expected = read_trajectories(&d.path("regular.parquet")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(d.path("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("pipe", d.path("link")).unwrap();
    for output in ["pipe", "link"] {
        let fifo = d.path(output);
        let reader = std::thread::spawn(move || std::fs::read(fifo).unwrap());
        evaluate_briefly(&d, "sgd,adam", output);
        // Checked before waiting for the reader, which a replaced pipe would leave blocked.
        let pipe = std::fs::symlink_metadata(d.path("pipe")).unwrap();
        assert!(pipe.file_type().is_fifo(), "-o {output} replaced the pipe");
        std::fs::write(d.path("received.parquet"), reader.join().unwrap()).unwrap();
        assert_eq!(
            read_trajectories(&d.path("received.parquet")).unwrap(),
            expected
        );
    }
    assert!(std::fs::metadata(d.path("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(d.path("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A copy of /dev/null's device numbers (1:3), where the tests may make one (as root).
    let null = d.path("null");
    let made = std::process::Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if made {
        evaluate_briefly(&d, "sgd,adam", "null");
        assert!(std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device());
    } else {
        eprintln!("skipped the character device: mknod needs root");
    }
    let leftovers = d.names_starting(".");
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// An output that names an input (however the path is spelt) or another
/// output is refused before any work, and the input is left as it was.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    let before = |name: &str| std::fs::read(d.path(name)).unwrap();
    let (spec, val, opt) = (before("test.npz"), before("val.npz"), before("opt.npz"));
    for (output, tuning, expect) in [
        (
            "./test.npz",
            None,
            "--output ./test.npz is the same file as --spec",
        ),
        ("opt.npz", None, "the same file as a checkpoint of -O"),
        (
            "t.parquet",
            Some("val.npz"),
            "--tuning-output val.npz is the same file as --validation",
        ),
        (
            "t.parquet",
            Some("./t.parquet"),
            "is the same file as --output",
        ),
        ("missing/t.parquet", None, "does not exist; create it first"),
    ] {
        let mut args = vec![
            "--spec",
            "test.npz",
            "--steps",
            "2",
            "-O",
            "lstm:opt.npz,sgd",
            "--tune",
            "--validation",
            "val.npz",
            "-o",
            output,
        ];
        if let Some(t) = tuning {
            args.extend(["--tuning-output", t]);
        }
        let out = d.run("evaluate", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expect),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("evaluate: tuning"),
            "refused only after work began: {stderr}"
        );
    }
    assert!(before("test.npz") == spec && before("val.npz") == val && before("opt.npz") == opt);
    assert!(!d.path("t.parquet").exists());
}

/// A run longer than the documented bound is refused (it once
/// overflowed an index); and cause 4: an MLP spec whose minibatch is empty is refused when
/// read (it once panicked in meta-train and gave NaN losses with exit 0 in evaluate).
#[test]
fn sizes_beyond_their_bounds_and_inconsistent_mlp_specs_are_refused() {
    let d = Dir::new();
    specs(&d);
    for steps in ["18446744073709551615", "1000001"] {
        d.fails(
            "evaluate",
            &[
                "--spec",
                "test.npz",
                "--steps",
                steps,
                "-O",
                "sgd",
                "-o",
                "x.parquet",
            ],
            "x.parquet",
            "--steps must be between 1 and 1000000",
        );
    }
    let m = Dir::new();
    mlp_specs(&m);
    for (field, value, expect) in [("batch_size", 0, "batch_size must be between 1 and 100000")] {
        rewrite_spec(&m, "test.npz", "odd.npz", &[], &[(field, value)], &[]);
        refuses_spec(&m, "odd.npz", expect);
    }
}

/// `evaluate` refuses `spec` with `expect` in its one error line, writing nothing.
fn refuses_spec(d: &Dir, spec: &str, expect: &str) {
    d.fails(
        "evaluate",
        &[
            "--spec",
            spec,
            "--steps",
            "2",
            "-O",
            "sgd",
            "-o",
            "x.parquet",
        ],
        "x.parquet",
        expect,
    );
}

#[test]
fn has_help() {
    assert_help("evaluate");
}

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
    let stderr = d.ok(
        "evaluate",
        &[
            "--spec",
            "art_test.npz",
            "--steps",
            "5",
            "-O",
            "lstm:art.npz",
            "-o",
            "learned.parquet",
        ],
    );
    assert!(stderr.contains("mean loss at step 5"), "{stderr}");
    std::fs::create_dir(d.path("imgs")).unwrap();
    let stderr = d.ok(
        "evaluate",
        &[
            "--spec",
            "art_test.npz",
            "--steps",
            "5",
            "-O",
            "lstm:art.npz",
            "--images",
            "imgs",
            "-o",
            "learned.parquet",
        ],
    );
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

/// A learned optimizer is measured on images it never saw (docs/method.md, "What is
/// measured"): `evaluate` refuses a test spec on the split it was meta-trained on, or on all of
/// its data, in one line, and runs it on the held-out split.
#[test]
fn a_test_spec_on_images_seen_in_meta_training_is_refused() {
    let d = Dir::new();
    // train.npz and val.npz draw from the train split, test.npz from the held-out one.
    mlp_specs(&d);
    for (name, split) in [("seen.npz", "train"), ("all.npz", "all")] {
        tiny_mlp_spec(&d, name, "3", "3", "4", split);
    }
    train_tiny_mlp(&d, "opt.npz", "2");
    let opt = l2l::learned::LearnedOptimizer::load(&d.path("opt.npz")).unwrap();
    assert_eq!(opt.trained_on.map(|t| t.split.name()), Some("train"));
    let run = |spec| {
        [
            "--spec",
            spec,
            "-O",
            "lstm:opt.npz,adam",
            "--steps",
            "4",
            "-o",
            "t.parquet",
        ]
    };
    for spec in ["seen.npz", "all.npz"] {
        d.fails("evaluate", &run(spec), "t.parquet", "meta-trained on");
    }
    d.ok("evaluate", &run("test.npz"));
}

//! `evaluate` refuses every bad input (spec, checkpoint, setting, output path) in one line,
//! with no output file, and writes outputs that are not regular files in place.

use crate::common::*;
use l2l::io::write_npz;
use l2l::trajectory::read_trajectories;
use ndarray::Array2;

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

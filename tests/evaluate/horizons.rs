//! `evaluate --steps 100,200`: several horizons from one set of runs, each output the same
//! bytes as a run with that horizon alone, tuning and held-out losses included.

use crate::common::*;

/// `evaluate` on `spec` with `--steps steps`, one output (and tuning table) per name in
/// `outputs`, baselines tuned on `validation`, `extra` flags added; returns stderr.
fn evaluate_at(
    d: &Dir,
    spec: &str,
    validation: &str,
    optimizers: &str,
    steps: &str,
    outputs: &[&str],
    extra: &[&str],
) -> String {
    let tuning: Vec<String> = outputs.iter().map(|o| format!("{o}.tuning")).collect();
    let mut args = vec![
        "--spec",
        spec,
        "--steps",
        steps,
        "-O",
        optimizers,
        "--tune",
        "--validation",
        validation,
        "--lr-grid",
        "1e-2:1:2",
    ];
    for (o, t) in outputs.iter().zip(&tuning) {
        args.extend(["-o", o, "--tuning-output", t.as_str()]);
    }
    args.extend(extra);
    d.ok("evaluate", &args)
}

/// The bytes of every named file.
fn bytes(d: &Dir, names: &[&str]) -> Vec<Vec<u8>> {
    names
        .iter()
        .map(|n| std::fs::read(d.path(n)).unwrap())
        .collect()
}

/// Outputs of one multi-horizon run against runs of each horizon alone, byte for byte.
fn assert_same_as_alone(d: &Dir, spec: &str, validation: &str, optimizers: &str, extra: &[&str]) {
    evaluate_at(d, spec, validation, optimizers, "4,9", &["a4", "a9"], extra);
    evaluate_at(d, spec, validation, optimizers, "4", &["b4"], extra);
    evaluate_at(d, spec, validation, optimizers, "9", &["b9"], extra);
    // Given in either order, each -o goes with its own horizon.
    evaluate_at(d, spec, validation, optimizers, "9,4", &["c9", "c4"], extra);
    let alone = bytes(d, &["b4", "b4.tuning", "b9", "b9.tuning"]);
    assert_eq!(bytes(d, &["a4", "a4.tuning", "a9", "a9.tuning"]), alone);
    assert_eq!(bytes(d, &["c4", "c4.tuning", "c9", "c9.tuning"]), alone);
}

#[test]
fn horizons_on_quadratics_and_mlps_are_the_bytes_of_runs_alone() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    assert_same_as_alone(
        &d,
        "test.npz",
        "val.npz",
        "lstm:opt.npz,sgd,nag,rmsprop,adam",
        &[],
    );
    let m = Dir::new();
    mlp_specs(&m);
    train_tiny_mlp(&m, "mlp.npz", "2");
    assert_same_as_alone(&m, "test.npz", "val.npz", "lstm:mlp.npz,nag,adam", &[]);
}

/// Held-out losses: recorded every 2 steps, so step 4 of a 9-step run has one (its prefix
/// serves), while a run of 9 steps alone records one at step 9.
#[test]
fn horizons_keep_the_held_out_losses_of_runs_alone() {
    let d = Dir::new();
    tiny_conv_spec(&d, "2", "by-layer", "c.npz");
    assert_same_as_alone(&d, "c.npz", "c.npz", "sgd,adam", &["--test-every", "2"]);
    // Every 3 steps: step 4 has none in the longer run, so the shorter one runs alone.
    assert_same_as_alone(&d, "c.npz", "c.npz", "sgd", &["--test-every", "3"]);
}

#[test]
fn horizons_without_their_outputs_are_refused() {
    let d = Dir::new();
    specs(&d);
    let base = ["--spec", "test.npz", "-O", "sgd"];
    let with = |more: &[&'static str]| [&base[..], more].concat();
    d.fails(
        "evaluate",
        &with(&["--steps", "4,9", "-o", "x.parquet"]),
        "x.parquet",
        "--steps 4,9 gives 2 horizon(s) but -o names 1 output(s)",
    );
    d.fails(
        "evaluate",
        &with(&["--steps", "4,4", "-o", "x.parquet", "-o", "y.parquet"]),
        "x.parquet",
        "repeats a horizon",
    );
    // Two horizons, two outputs, tuned on val.npz, and `last` (a flag and its value).
    let tuned = |last: [&'static str; 2]| {
        let two = ["--steps", "4,9", "-o", "x.parquet", "-o", "y.parquet"];
        with(&[&two[..], &["--tune", "--validation", "val.npz"], &last].concat())
    };
    d.fails(
        "evaluate",
        &tuned(["--tuning-output", "t.parquet"]),
        "x.parquet",
        "but --tuning-output names 1",
    );
    d.fails(
        "evaluate",
        &tuned(["--tune-steps", "3"]),
        "x.parquet",
        "--tune-steps follows one run",
    );
    d.fails(
        "evaluate",
        &with(&["--steps", "4,0", "-o", "x.parquet", "-o", "y.parquet"]),
        "y.parquet",
        "--steps must be between 1 and 1000000, got 0",
    );
}

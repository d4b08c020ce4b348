//! `meta-train` through the binary, beyond the paper's recipe: imitation and continued
//! training, learned corrections to a base rule, and Appendix D's architectures.

use super::rewrite_member;
use crate::common::*;
use l2l::learned::LearnedOptimizer;

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
    // Judged over the last steps of the validation runs, the rate and checkpoint still come.
    let log = train_with(
        &d,
        &["--base", "nag", "--validation-window", "3"],
        "windowed.npz",
    );
    assert!(log.contains("mean loss over the last 3 steps"), "{log}");
    let mut args = vec![
        "--train",
        "train.npz",
        "--init",
        "based.npz",
        "-o",
        "plain.npz",
    ];
    args.extend_from_slice(TINY_TRAIN);
    d.fails("meta-train", &args, "plain.npz", "set --base nag=");
    d.fails(
        "meta-train",
        &[&["--base", "nag=1", "--imitate", "nag=1"], &args[..]].concat(),
        "plain.npz",
        "--base and --imitate do not go together",
    );
    evaluate_briefly(&d, "lstm:based.npz,nag", "based.parquet");
    // A correction to NAG is labelled as one, never as the paper's pure LSTM.
    let rows = l2l::trajectory::read_trajectories(&d.path("based.parquet")).unwrap();
    let mut labels: Vec<&str> = rows.iter().map(|r| r.optimizer.as_str()).collect();
    labels.dedup();
    assert_eq!(labels, vec!["nag+lstm", "nag"]);
}

/// A step of NAG scaled by the LSTM (--base-form scaled): trained by ES, written as checkpoint
/// version 4, labelled "nagxlstm"; by BPTT it is refused before any work.
#[test]
fn a_scaled_base_rule_trains_by_es_and_evaluates() {
    let d = Dir::new();
    specs(&d);
    let scaled = [
        "--base",
        "nag",
        "--base-form",
        "scaled",
        "--meta-gradient",
        "es",
        "--es-pairs",
        "2",
    ];
    train_with(&d, &scaled, "scaled.npz");
    let mut npz = l2l::io::Npz::open(&d.path("scaled.npz")).unwrap();
    assert_eq!(npz.scalar("format_version").unwrap(), 4.0);
    assert_eq!(npz.text("base_form").unwrap(), "scaled");
    evaluate_briefly(&d, "lstm:scaled.npz,nag", "scaled.parquet");
    let rows = l2l::trajectory::read_trajectories(&d.path("scaled.parquet")).unwrap();
    let mut labels: Vec<&str> = rows.iter().map(|r| r.optimizer.as_str()).collect();
    labels.dedup();
    assert_eq!(labels, vec!["nagxlstm", "nag"]);
    let mut args = vec!["--train", "train.npz", "-o", "bptt.npz"];
    args.extend_from_slice(TINY_TRAIN);
    d.fails(
        "meta-train",
        &[&["--base", "nag=1", "--base-form", "scaled"], &args[..]].concat(),
        "bptt.npz",
        "--base-form scaled trains by --meta-gradient es",
    );
    // Continuing it needs the same form.
    let mut args = vec![
        "--train",
        "train.npz",
        "--init",
        "scaled.npz",
        "-o",
        "added.npz",
    ];
    args.extend_from_slice(TINY_TRAIN);
    let lr = npz.scalar("base_lr").unwrap().to_string();
    d.fails(
        "meta-train",
        &[&["--base", &format!("nag={lr}")], &args[..]].concat(),
        "added.npz",
        "--base-form scaled",
    );
}

/// Appendix D's architectures through the binaries: the same bytes on 1 and 2 threads, each
/// evaluated under its own label, a run resumed only as itself; their sizes, a problem beyond
/// NTM-BFGS's memory and an architecture unknown to this build are refused in one line.
#[test]
fn appendix_d_architectures_train_evaluate_and_bad_sizes_are_refused() {
    let d = Dir::new();
    specs(&d);
    for arch in ["lstm-gac", "ntm-bfgs", "ntm-lbfgs"] {
        for threads in ["1", "2"] {
            let out = format!("{arch}-{threads}.npz");
            let flags = ["--architecture", arch, "--threads", threads];
            train_with(&d, &flags, &out);
        }
        assert!(
            std::fs::read(d.path(&format!("{arch}-1.npz"))).unwrap()
                == std::fs::read(d.path(&format!("{arch}-2.npz"))).unwrap(),
            "{arch}: the thread count changed the checkpoint"
        );
        let opt = LearnedOptimizer::load(&d.path(&format!("{arch}-1.npz"))).unwrap();
        let describe = opt.networks.describe();
        assert!(
            describe.contains(&format!("{arch}(layers=2, hidden=4, averaging_cells=2")),
            "{describe}"
        );
        let out = format!("{arch}.parquet");
        evaluate_briefly(&d, &format!("lstm:{arch}-1.npz,nag"), &out);
        let rows = l2l::trajectory::read_trajectories(&d.path(&out)).unwrap();
        let mut labels: Vec<&str> = rows.iter().map(|r| r.optimizer.as_str()).collect();
        labels.dedup();
        assert_eq!(labels, vec![arch, "nag"]);
    }
    // L-BFGS, the algorithm NTM-BFGS is built to imitate, is tuned like the baselines.
    evaluate_tuned(&d, "lstm:ntm-bfgs-1.npz,lbfgs,adam", "lbfgs.parquet");
    let rows = l2l::trajectory::read_trajectories(&d.path("lbfgs.parquet")).unwrap();
    assert!(rows
        .iter()
        .any(|r| r.optimizer == "lbfgs" && r.lr.is_some()));
    let gac = ["--architecture", "lstm-gac", "--averaging-cells", "2"];
    // NTM-BFGS's n × n memory has a bound; a problem beyond it is refused before any run.
    d.ok(
        "sample-optimizee",
        &[
            "quadratic",
            "--dims",
            "2049",
            "--count",
            "1",
            "--seed",
            "5",
            "-o",
            "wide.npz",
        ],
    );
    d.fails(
        "evaluate",
        &[
            "--spec",
            "wide.npz",
            "--steps",
            "2",
            "-O",
            "lstm:ntm-bfgs-1.npz",
            "-o",
            "w.parquet",
        ],
        "w.parquet",
        "n = 2049 coordinates",
    );
    let args = tiny_training("bad.npz");
    let refused = |flags: &[&str], expect: &str| {
        d.fails(
            "meta-train",
            &[flags, &args[..]].concat(),
            "bad.npz",
            expect,
        )
    };
    refused(
        &["--averaging-cells", "2"],
        "--averaging-cells is a size of --architecture lstm-gac",
    );
    for cells in ["0", "5"] {
        refused(
            &["--architecture", "lstm-gac", "--averaging-cells", cells],
            &format!("--averaging-cells must be between 1 and --hidden (4), got {cells}"),
        );
    }
    refused(&["--architecture", "ntm"], "invalid value 'ntm'");
    // A run of one architecture does not resume as another.
    let mut short = [&gac[..], &tiny_training("switched.npz")[..]].concat();
    short[gac.len() + EPOCHS_AT] = "2";
    d.ok("meta-train", &short);
    std::fs::remove_file(d.path("switched.npz")).unwrap();
    d.fails(
        "meta-train",
        &tiny_training("switched.npz"),
        "switched.npz",
        "architecture",
    );
    // A checkpoint of an architecture this build does not know.
    std::fs::copy(d.path("lstm-gac-1.npz"), d.path("unknown.npz")).unwrap();
    rewrite_member(&d.path("unknown.npz"), "architecture", |a| {
        *a = ndarray::ArrayD::from_shape_vec(vec![3], b"ntm".iter().map(|&b| b as f64).collect())
            .unwrap();
    });
    d.fails(
        "evaluate",
        &["--spec", "test.npz", "--steps", "6", "-O", "lstm:unknown.npz", "-o", "u.parquet"],
        "u.parquet",
        "architecture 'ntm' is unknown to this build of l2l, which knows coordinatewise-lstm, lstm-gac, ntm-bfgs, ntm-lbfgs",
    );
}

//! `evaluate -O lbfgs`: L-BFGS tuned over its history as well as its rate, the pick named in
//! the tuning table so that `-O lbfgs-mK=LR` runs it again.

use crate::common::*;
use arrow::datatypes::DataType;
use l2l::trajectory::read_trajectories;

#[test]
fn lbfgs_is_tuned_over_histories_and_its_pick_runs_again_by_name() {
    let d = Dir::new();
    specs(&d);
    let stderr = evaluate_tuned(&d, "lbfgs", "tuned.parquet");
    assert!(
        stderr.contains("lbfgs with each history of [3, 5, 10, 20]"),
        "{stderr}"
    );
    let t = l2l::io::read_table(
        &d.path("tuning.parquet"),
        &[
            ("optimizer", DataType::Utf8),
            ("lr", DataType::Float64),
            ("chosen", DataType::Boolean),
        ],
        "a tuning table",
    )
    .unwrap();
    let names = t.text("optimizer");
    for history in [3, 5, 10, 20] {
        let rates = names
            .iter()
            .filter(|n| **n == format!("lbfgs-m{history}"))
            .count();
        assert_eq!(rates, 21, "history {history}: {names:?}");
    }
    let chosen: Vec<usize> = (0..t.rows()).filter(|&i| t.bools("chosen")[i]).collect();
    assert_eq!(chosen.len(), 1, "one pick over every history and rate");
    let (name, lr) = (&names[chosen[0]], t.floats("lr")[chosen[0]].unwrap());
    assert!(
        stderr.contains(&format!("evaluate: {name} lr = {lr}")),
        "{stderr}"
    );

    let again = format!("{name}={lr}");
    evaluate_briefly(&d, &again, "again.parquet");
    let losses = |p: &str| -> Vec<(String, f64)> {
        read_trajectories(&d.path(p))
            .unwrap()
            .into_iter()
            .map(|r| (r.optimizer, r.loss))
            .collect()
    };
    let tuned = losses("tuned.parquet");
    assert!(tuned.iter().all(|(label, _)| label == "lbfgs"));
    assert_eq!(tuned, losses("again.parquet"));

    for bad in ["lbfgs-m0", "lbfgs-m05", "lbfgs-5", "lbfgs-m1001", "lbfgsx"] {
        d.fails(
            "evaluate",
            &["--spec", "test.npz", "-O", bad, "-o", "bad.parquet"],
            "bad.parquet",
            &format!("unknown optimizer '{bad}'"),
        );
    }
}

//! The claims' comparison, verdicts and pooling of draws.

use super::*;
use crate::trajectory::row;

#[test]
fn the_comparison_pairs_problems_against_the_best_baseline_at_the_last_step() {
    let mut rows = Vec::new();
    for p in 0..3 {
        rows.push(row("sgd", p, 0, 5.0, Some(0.1)));
        rows.push(row("sgd", p, 2, 2.0 + p as f64, Some(0.1)));
        rows.push(row("adam", p, 2, 1.0 + p as f64, Some(0.01)));
        rows.push(row("lstm", p, 2, 0.5 + 2.0 * p as f64, None));
    }
    let panel = compare(&tabulate(&rows, Measure::Loss), None).unwrap();
    assert_eq!((panel.step, panel.baseline.as_str()), (2, "ADAM"));
    assert_eq!(panel.baseline_mean, 2.0);
    let (name, m, d) = &panel.learned[0];
    assert_eq!((name.as_str(), *m), ("lstm", 2.5));
    assert_eq!(d, &vec![-0.5, 0.5, 1.5]);
    let (mean, se) = mean_and_se(d);
    assert_eq!(mean, 0.5);
    assert!((se - 1.0 / 3f64.sqrt()).abs() < 1e-12);
    // 0.5 ± 0.58 is a tie either way.
    assert_eq!(
        Verdict::of(Expect::Wins, mean, se),
        Verdict::NotDistinguishable
    );
    assert_eq!(
        Verdict::of(Expect::Loses, mean, se),
        Verdict::NotDistinguishable
    );
}

/// Against a named learned optimizer (Appendix D's rows), the others are paired with it, and
/// the baselines play no part.
#[test]
fn the_comparison_against_a_learned_optimizer_pairs_the_others_with_it() {
    let mut rows = Vec::new();
    for p in 0..2 {
        rows.push(row("adam", p, 2, 0.1, Some(0.01)));
        rows.push(row("lstm:LSTM", p, 2, 1.0 + p as f64, None));
        rows.push(row("lstm:LSTM+GAC", p, 2, 0.5 + 3.0 * p as f64, None));
    }
    let panel = compare(&tabulate(&rows, Measure::Loss), Some("lstm:LSTM")).unwrap();
    assert_eq!(
        (panel.baseline.as_str(), panel.baseline_mean),
        ("LSTM", 1.5)
    );
    assert_eq!(panel.learned.len(), 1);
    let (name, m, d) = &panel.learned[0];
    assert_eq!(
        (name.as_str(), *m, d),
        ("lstm:LSTM+GAC", 2.0, &vec![-0.5, 1.5])
    );
}

/// A tie is never marked held: a difference on the expected side within two standard
/// errors is not distinguishable; beyond them it holds, and on the other side it fails.
#[test]
fn a_tie_is_never_marked_held() {
    assert_eq!(
        Verdict::of(Expect::Wins, -0.0021, 0.0063),
        Verdict::NotDistinguishable
    );
    assert_eq!(
        Verdict::of(Expect::Wins, -0.0023, 0.0072),
        Verdict::NotDistinguishable
    );
    assert_eq!(
        Verdict::of(Expect::Wins, -0.0200, 0.0100),
        Verdict::NotDistinguishable
    );
    assert_eq!(Verdict::of(Expect::Wins, -0.0226, 0.0089), Verdict::Holds);
    assert_eq!(Verdict::of(Expect::Wins, 0.0300, 0.0100), Verdict::Fails);
    assert_eq!(Verdict::of(Expect::Loses, 0.0300, 0.0100), Verdict::Holds);
    assert_eq!(
        Verdict::of(Expect::Wins, -1.0, f64::NAN),
        Verdict::NotDistinguishable
    );
}

/// Pooling draws: one draw is that draw's paired difference; draws that disagree widen
/// the standard error beyond the runs' own spread.
#[test]
fn draws_pool_with_their_spread() {
    let one = vec![vec![-0.1, -0.2, -0.3]];
    assert_eq!(pool_draws(&one), mean_and_se(&one[0]));
    let agree = vec![vec![-0.1, -0.2, -0.3]; 3];
    let (m, se) = pool_draws(&agree);
    assert!((m + 0.2).abs() < 1e-12 && (se - mean_and_se(&agree[0]).1).abs() < 1e-12);
    // Two draws win clearly, one loses: the pooled difference is a tie.
    let disagree = vec![
        vec![-0.5, -0.6, -0.4],
        vec![-0.5, -0.6, -0.4],
        vec![0.6, 0.7, 0.5],
    ];
    let (m, se) = pool_draws(&disagree);
    assert!(m < 0.0);
    assert_eq!(
        Verdict::of(Expect::Wins, m, se),
        Verdict::NotDistinguishable
    );
}

#[test]
fn with_no_outputs_every_claim_has_no_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let claims = measure(dir.path()).unwrap();
    assert!(claims.len() >= 10);
    assert!(claims.iter().all(|c| c.evidence.is_empty()));
}

/// A claim whose outputs are missing tells the user which make target writes them, so every
/// target a claim names must be one the Makefile or a pipeline fragment defines.
#[test]
fn every_claim_names_a_make_target_that_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut make_text = std::fs::read_to_string(root.join("Makefile")).unwrap();
    for entry in std::fs::read_dir(root.join("pipelines")).unwrap() {
        make_text += &std::fs::read_to_string(entry.unwrap().path()).unwrap();
    }
    for spec in specs() {
        let rule = format!("\n{}:", spec.target);
        assert!(
            make_text.contains(&rule),
            "{}: no rule for {}",
            spec.section,
            spec.target
        );
    }
}

/// Against a learned optimizer each draw is paired with its own, so the reference's mean is
/// the draws' mean, and the learned mean is it plus the pooled difference.
#[test]
fn a_learned_reference_is_pooled_over_the_draws() {
    use crate::trajectory::{write_trajectories, Curves};
    let dir = tempfile::tempdir().unwrap();
    let write = |draw: &str, lstm: f64, gac: f64| {
        let path = dir
            .path()
            .join(draw)
            .join("appendix-d/quadratic_100.parquet");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let curves = |label: &str, last: f64| Curves {
            label: label.into(),
            lr: None,
            losses: ndarray::Array2::from_shape_fn((2, 101), |(p, s)| match s {
                100 => last + p as f64,
                _ => 10.0,
            }),
            test_losses: None,
        };
        let both = [curves("lstm:LSTM", lstm), curves("lstm:LSTM+GAC", gac)];
        write_trajectories(&path, &both).unwrap();
    };
    write("", 1.0, 1.5);
    write("seeds/1", 3.0, 3.1);
    let spec = specs()
        .into_iter()
        .find(|s| s.against.is_some() && s.section.contains("10-d quadratics, step 100"))
        .unwrap();
    let evidence = paired_evidence(dir.path(), &spec).unwrap();
    let e = &evidence[0];
    assert_eq!((e.learned.as_str(), e.draws.len()), ("LSTM+GAC", 2));
    // The LSTM's means are 1.5 and 3.5; the differences 0.5 and 0.1.
    assert!((e.baseline_mean - 2.5).abs() < 1e-12, "{}", e.baseline_mean);
    assert!((e.difference - 0.3).abs() < 1e-12, "{}", e.difference);
    assert!((e.learned_mean - 2.8).abs() < 1e-12, "{}", e.learned_mean);
}

/// Figure 6's sweep pools its complete draws cell by cell, as a claim pools runs.
#[test]
fn a_sweep_pools_its_draws() {
    use crate::trajectory::{write_trajectories, Curves};
    let dir = tempfile::tempdir().unwrap();
    let spec = specs().into_iter().find(|s| s.sweep).unwrap();
    let write = |draw: &str, learned: f64| {
        for cell in &spec.sources[0] {
            let path = dir.path().join(draw).join(cell);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let curves = |label: &str, last: f64| Curves {
                label: label.into(),
                lr: Some(0.1).filter(|_| label == "nag"),
                losses: ndarray::Array2::from_shape_fn((2, 101), |(_, s)| match s {
                    100 => last,
                    _ => 10.0,
                }),
                test_losses: None,
            };
            write_trajectories(&path, &[curves("lstm:LSTM", learned), curves("nag", 1.0)]).unwrap();
        }
    };
    write("", 1.5);
    write("seeds/1", 0.9);
    // A draw with a cell missing does not count.
    write("seeds/2", 0.0);
    std::fs::remove_file(dir.path().join("seeds/2").join(&spec.sources[0][3])).unwrap();
    let evidence = sweep_evidence(dir.path(), &spec).unwrap();
    let e = &evidence[0];
    assert_eq!(
        (e.learned.as_str(), e.draws.len(), e.count),
        ("LSTM", 2, 15)
    );
    let seeds: Vec<u64> = e.draws.iter().map(|d| d.seed).collect();
    assert_eq!(seeds, [0, 1]);
    // Cells agree within a draw; the draws' +0.5 and −0.1 spread by 0.3 in SE.
    assert!((e.difference - 0.2).abs() < 1e-12, "{}", e.difference);
    assert!(
        (e.standard_error - 0.3).abs() < 1e-12,
        "{}",
        e.standard_error
    );
    assert_eq!(e.lower, 0);
    assert_eq!(e.verdict, Verdict::NotDistinguishable);
}

//! Meta-training epochs, resume, curricula, and the settings refused before training.

use super::*;
use crate::ranks::OneProcess;

/// A fresh run with a base rule starts as exactly that rule: the output layer is zero.
#[test]
fn a_fresh_run_with_a_base_rule_starts_as_the_rule() {
    let mut cfg = tiny_config(Preprocessing::LogSign { p: 10.0 });
    cfg.base = Some(NAG_BASE);
    let set = tiny_batch();
    let learned = MetaTrainer::new(cfg)
        .unwrap()
        .run_with(&set, 6, |_| ())
        .unwrap();
    let nag = OptimizerChoice::Baseline {
        kind: NAG_BASE.kind,
        lr: NAG_BASE.lr,
    };
    assert_eq!(
        learned.losses,
        evaluation::run(&set, &nag, 6).unwrap().losses
    );
}

#[test]
fn training_reduces_the_meta_loss_and_is_deterministic() {
    let mut cfg = tiny_config(Preprocessing::Scale(0.1));
    cfg.epochs = 30;
    cfg.batch = 8;
    cfg.meta_lr = 0.01;
    let family = QuadraticFamily {
        dims: 3,
        distribution: ValueDistribution::Normal,
        theta0_std: 1.0,
    };
    let source = QuadraticSource::Family { family, seed: 1 };
    let run = |cfg: &MetaTrainConfig| {
        let mut t = MetaTrainer::new(cfg.clone()).unwrap();
        let first = source.draw(0, cfg.batch);
        let mut ws = Workspace::new(cfg, &first, &OneProcess).unwrap();
        let mut losses = Vec::new();
        for e in 0..cfg.epochs {
            losses.push(
                t.train_epoch(&source.draw(e, cfg.batch), &mut ws, &OneProcess)
                    .mean_loss,
            );
        }
        (t.weights, losses)
    };
    let (w1, l1) = run(&cfg);
    let (w2, _) = run(&cfg);
    assert_eq!(w1, w2);
    let early: f64 = l1[..5].iter().sum();
    let late: f64 = l1[25..].iter().sum();
    assert!(late < early, "meta-loss did not fall: {l1:?}");
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    // The paper's training; imitation that hands over to the meta-loss between the two
    // halves; and evolution strategies.
    let plain = MetaTrainConfig {
        epochs: 6,
        ..tiny_config(Preprocessing::Scale(0.1))
    };
    let imitating = MetaTrainConfig {
        imitation: Some(Imitation {
            teacher: Baseline::Nag,
            lr: 0.05,
            epochs: 3,
            meta_lr: 0.01,
            rollout: Rollout::Student,
            loss: ImitationLoss::Squared,
        }),
        ..plain.clone()
    };
    let evolving = MetaTrainConfig {
        meta_gradient: MetaGradient::Es {
            pairs: 2,
            sigma: 0.05,
            scope: EsScope::All,
        },
        ..plain.clone()
    };
    for cfg in [imitating, evolving, plain] {
        check_resume(cfg);
    }
}

/// Trains `cfg` for its epochs straight, and in two halves with a resume between them.
fn check_resume(cfg: MetaTrainConfig) {
    let dir = tempfile::tempdir().unwrap();
    let family = QuadraticFamily {
        dims: 2,
        distribution: ValueDistribution::Normal,
        theta0_std: 1.0,
    };
    let source = QuadraticSource::Family { family, seed: 4 };
    let validation = family.sample(99, 4, |i| i);
    let run = |trainer: MetaTrainer, out: &std::path::Path| {
        train(
            trainer,
            &source,
            Some(&validation),
            out,
            &OneProcess,
            |_| {},
        )
        .unwrap()
    };
    let straight = run(
        MetaTrainer::new(cfg.clone()).unwrap(),
        &dir.path().join("a.npz"),
    );

    let out = dir.path().join("b.npz");
    let half = MetaTrainConfig {
        epochs: 4,
        ..cfg.clone()
    };
    run(MetaTrainer::new(half).unwrap(), &out);
    let resumed =
        MetaTrainer::resume(cfg.clone(), &resume_path(&out).unwrap(), &source.describe()).unwrap();
    assert_eq!(resumed.epoch, 4);
    let finished = run(resumed, &out);
    assert_eq!(straight, finished, "{cfg:?}");

    let other = MetaTrainConfig { seed: 12, ..cfg };
    let err =
        MetaTrainer::resume(other, &resume_path(&out).unwrap(), &source.describe()).unwrap_err();
    assert!(err.to_string().contains("--restart"), "{err}");
}

#[test]
fn curriculum_grows_the_horizon_one_unroll_per_stage() {
    let cfg = MetaTrainConfig {
        steps: 60,
        unroll: 20,
        curriculum: Some(10),
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    let unrolls: Vec<usize> = [0, 9, 10, 25, 1000]
        .iter()
        .map(|&e| cfg.unrolls_at(e))
        .collect();
    assert_eq!(unrolls, [1, 1, 2, 3, 3]);
    assert_eq!(
        MetaTrainConfig {
            curriculum: None,
            ..cfg
        }
        .unrolls_at(0),
        3
    );
}

#[test]
fn bad_settings_are_refused_before_training() {
    let cfg = MetaTrainConfig {
        steps: 10,
        unroll: 3,
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    assert!(MetaTrainer::new(cfg).is_err());
    let cfg = MetaTrainConfig {
        meta_lr: -1.0,
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    assert!(MetaTrainer::new(cfg).is_err());
    let based = MetaTrainConfig {
        base: Some(NAG_BASE),
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    for cfg in [
        MetaTrainConfig {
            base: Some(BaseStep {
                lr: 0.0,
                ..NAG_BASE
            }),
            ..based.clone()
        },
        MetaTrainConfig {
            meta_gradient: MetaGradient::SecondOrder,
            ..based.clone()
        },
        MetaTrainConfig {
            imitation: Some(Imitation {
                teacher: Baseline::Nag,
                lr: 0.1,
                epochs: 1,
                meta_lr: 0.01,
                rollout: Rollout::Teacher,
                loss: ImitationLoss::Squared,
            }),
            ..based.clone()
        },
    ] {
        let e = MetaTrainer::new(cfg).err().expect("refused").to_string();
        assert!(e.contains("--base"), "{e}");
    }
    // A checkpoint continues only under its own base rule.
    let plain = MetaTrainer::new(tiny_config(Preprocessing::Scale(1.0)))
        .unwrap()
        .current(f64::NAN);
    let e = MetaTrainer::starting_from(based, &plain)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("drop --base"), "{e}");
}

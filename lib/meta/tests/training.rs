//! Meta-training epochs, resume, curricula, and the settings refused before training.

use super::*;
use crate::ranks::OneProcess;

/// A fresh run with a base rule starts as exactly that rule: the output layer is zero.
#[test]
fn a_fresh_run_with_a_base_rule_starts_as_the_rule() {
    let mut cfg = tiny_config(Preprocessing::LogSign { p: 10.0 });
    cfg.base = Some(NAG_BASE);
    let set = tiny_batch();
    let learned = trainer(cfg).unwrap().run_with(&set, 6, |_| ()).unwrap();
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
    let run = |cfg: &MetaTrainSettings| {
        let mut t = trainer(cfg.clone()).unwrap();
        let first = source.draw(0, cfg.batch);
        let mut ws = Workspace::new(&cfg.clone().check().unwrap(), &first, &OneProcess).unwrap();
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
    let plain = MetaTrainSettings {
        epochs: 6,
        ..tiny_config(Preprocessing::Scale(0.1))
    };
    let imitating = MetaTrainSettings {
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
    let evolving = MetaTrainSettings {
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
fn check_resume(cfg: MetaTrainSettings) {
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
            Stopping::default(),
            |_| {},
        )
        .unwrap()
    };
    let straight = run(trainer(cfg.clone()).unwrap(), &dir.path().join("a.npz"));

    let out = dir.path().join("b.npz");
    let half = MetaTrainSettings {
        epochs: 4,
        ..cfg.clone()
    };
    run(trainer(half).unwrap(), &out);
    let resumed = MetaTrainer::resume(
        cfg.clone().check().unwrap(),
        &resume_path(&out).unwrap(),
        &source.describe(),
    )
    .unwrap();
    assert_eq!(resumed.epoch, 4);
    let finished = run(resumed, &out);
    assert_eq!(straight, finished, "{cfg:?}");

    let other = MetaTrainSettings { seed: 12, ..cfg };
    let err = MetaTrainer::resume(
        other.check().unwrap(),
        &resume_path(&out).unwrap(),
        &source.describe(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("pass `restart`"), "{err}");
}

#[test]
fn curriculum_grows_the_horizon_one_unroll_per_stage() {
    let cfg = MetaTrainSettings {
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
        MetaTrainSettings {
            curriculum: None,
            ..cfg
        }
        .unrolls_at(0),
        3
    );
}

#[test]
fn bad_settings_are_refused_before_training() {
    let cfg = MetaTrainSettings {
        steps: 10,
        unroll: 3,
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    assert!(trainer(cfg).is_err());
    let cfg = MetaTrainSettings {
        meta_lr: -1.0,
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    assert!(trainer(cfg).is_err());
    let based = MetaTrainSettings {
        base: Some(NAG_BASE),
        ..tiny_config(Preprocessing::Scale(1.0))
    };
    for cfg in [
        MetaTrainSettings {
            base: Some(BaseStep {
                lr: 0.0,
                ..NAG_BASE
            }),
            ..based.clone()
        },
        MetaTrainSettings {
            meta_gradient: MetaGradient::SecondOrder,
            ..based.clone()
        },
        MetaTrainSettings {
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
        let e = trainer(cfg).err().expect("refused").to_string();
        assert!(
            e.starts_with("invalid setting: ") && e.contains("base"),
            "{e}"
        );
    }
    // A checkpoint continues only under its own base rule.
    let plain = trainer(tiny_config(Preprocessing::Scale(1.0)))
        .unwrap()
        .current(f64::NAN);
    let e = MetaTrainer::starting_from(based.check().unwrap(), &plain)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("drop `base`"), "{e}");
}

/// Every setting but the epoch budget is part of the resume fingerprint, which is derived from
/// the settings themselves: changing any one of them is named as the difference, and changing
/// the budget is not one. The destructuring lists every field without `..`, so a setting added
/// to `MetaTrainSettings` does not compile here until this test changes it too.
#[test]
fn every_setting_but_the_epoch_budget_must_match_to_resume() {
    let MetaTrainSettings {
        hidden: _,
        groups: _,
        preprocessing: _,
        output_scale: _,
        base: _,
        forget_bias: _,
        batch: _,
        steps: _,
        unroll: _,
        meta_lr: _,
        meta_lr_decay: _,
        clip: _,
        curriculum: _,
        meta_loss: _,
        loss_from: _,
        imitation: _,
        meta_gradient: _,
        validation_steps: _,
        validation_window: _,
        epochs: _,
        eval_every: _,
        seed: _,
        architecture: _,
    } = MetaTrainSettings::default();
    let start = tiny_config(Preprocessing::Scale(0.1));
    let fingerprint = |s: &MetaTrainSettings| s.clone().check().unwrap().fingerprint("spec");
    let changes: Vec<(&str, Box<dyn Fn(&mut MetaTrainSettings)>)> = vec![
        ("hidden", Box::new(|s| s.hidden = 4)),
        (
            "groups",
            Box::new(|s| s.groups = vec!["conv".into(), "fc".into()]),
        ),
        (
            "preprocessing",
            Box::new(|s| s.preprocessing = Preprocessing::Scale(0.2)),
        ),
        ("output_scale", Box::new(|s| s.output_scale = 0.25)),
        ("base", Box::new(|s| s.base = Some(NAG_BASE))),
        ("forget_bias", Box::new(|s| s.forget_bias = 2.0)),
        ("batch", Box::new(|s| s.batch = 4)),
        ("steps", Box::new(|s| s.steps = 9)),
        ("unroll", Box::new(|s| s.unroll = 2)),
        ("meta_lr", Box::new(|s| s.meta_lr = 0.02)),
        ("meta_lr_decay", Box::new(|s| s.meta_lr_decay = 0.5)),
        ("clip", Box::new(|s| s.clip = Some(1.0))),
        ("curriculum", Box::new(|s| s.curriculum = Some(2))),
        ("meta_loss", Box::new(|s| s.meta_loss = MetaLoss::Log)),
        ("loss_from", Box::new(|s| s.loss_from = 2)),
        (
            "imitation",
            Box::new(|s| {
                s.imitation = Some(Imitation {
                    teacher: Baseline::Nag,
                    lr: 0.05,
                    epochs: 1,
                    meta_lr: 0.01,
                    rollout: Rollout::Teacher,
                    loss: ImitationLoss::Squared,
                })
            }),
        ),
        (
            "meta_gradient",
            Box::new(|s| {
                s.meta_gradient = MetaGradient::Es {
                    pairs: 2,
                    sigma: 0.05,
                    scope: EsScope::All,
                }
            }),
        ),
        ("validation_steps", Box::new(|s| s.validation_steps = 5)),
        ("validation_window", Box::new(|s| s.validation_window = 2)),
        ("eval_every", Box::new(|s| s.eval_every = 3)),
        ("seed", Box::new(|s| s.seed = 12)),
        (
            "architecture",
            Box::new(|s| s.architecture = ArchitectureChoice::LstmGac { averaging: 1 }),
        ),
    ];
    for (name, change) in &changes {
        let mut changed = start.clone();
        change(&mut changed);
        let differ = super::super::fingerprint::differing_settings(
            &fingerprint(&changed),
            &fingerprint(&start),
        );
        assert_eq!(differ, Some(vec![name.to_string()]), "changing {name}");
    }
    let longer = MetaTrainSettings {
        epochs: start.epochs + 10,
        ..start.clone()
    };
    assert_eq!(fingerprint(&longer), fingerprint(&start));
    // The paper's LSTM is left out, as in the resume states written before the choice.
    assert!(!fingerprint(&start).contains("architecture"));
    let moved = start.clone().check().unwrap().fingerprint("another spec");
    assert_eq!(
        super::super::fingerprint::differing_settings(&moved, &fingerprint(&start)),
        Some(vec!["source".to_string()])
    );
    // A resume state of the hand-formatted kind earlier versions wrote is told apart.
    assert_eq!(
        super::super::fingerprint::differing_settings("hidden=20 batch=1 source=spec", &moved),
        None
    );
}

//! Truncated BPTT's meta-gradient, with and without the second-order terms, against finite
//! differences of each unroll's meta-loss (docs/method.md, "Truncated BPTT").

use super::*;

#[test]
fn bptt_gradient_matches_finite_differences_scaled_input() {
    check_gradient(Preprocessing::Scale(0.1), MetaLoss::Sum, None);
}

#[test]
fn bptt_gradient_matches_finite_differences_log_sign_input() {
    check_gradient(Preprocessing::LogSign { p: 10.0 }, MetaLoss::Sum, None);
}

#[test]
fn bptt_gradient_matches_finite_differences_log_meta_loss() {
    check_gradient(Preprocessing::LogSign { p: 10.0 }, MetaLoss::Log, None);
}

#[test]
fn bptt_gradient_matches_finite_differences_imitating_nag() {
    check_gradient(
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        Some((Rollout::Teacher, ImitationLoss::Squared)),
    );
}

#[test]
fn bptt_gradient_matches_finite_differences_imitating_relative() {
    check_gradient(
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        Some((Rollout::Teacher, ImitationLoss::Relative)),
    );
}

/// On-policy, the LSTM's own steps choose where the next gradients are taken, which BPTT
/// (the paper's assumption) does not differentiate; on a problem whose gradients do not
/// depend on θ the two must agree.
#[test]
fn bptt_gradient_matches_finite_differences_imitating_on_policy() {
    let linear = Linear {
        slope: vec![0.3, -0.7],
        count: 3,
    };
    check_gradient_on(
        &linear,
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        Some((Rollout::Student, ImitationLoss::Squared)),
        |_| {},
    );
}

/// With the Hessian terms the gradient is exact for the truncated meta-loss, which the
/// finite differences measure, on problems whose gradients do depend on θ: the quadratics,
/// and a sigmoid MLP (a ReLU MLP's kinks make the differences of whole trajectories
/// unreliable; its Hessian-vector product has its own check in `problems::mlp`).
#[test]
fn second_order_gradient_matches_finite_differences() {
    for (pre, loss) in [
        (Preprocessing::Scale(0.1), MetaLoss::Sum),
        (Preprocessing::LogSign { p: 10.0 }, MetaLoss::Log),
    ] {
        check_gradient_on(&tiny_batch(), pre, loss, None, second_order);
    }
    check_gradient_on(
        &tiny_mlp(Activation::Sigmoid),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        None,
        second_order,
    );
}

/// Eq. (3) with w_t = 0 before step 5 of 6: the first unroll (steps 1–3) adds nothing to
/// the meta-loss, the second only its last two steps; with and without the Hessian terms.
#[test]
fn gradient_matches_finite_differences_of_a_late_meta_loss() {
    check_gradient_on(
        &tiny_batch(),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Log,
        None,
        |cfg| cfg.loss_from = 5,
    );
    check_gradient_on(
        &tiny_batch(),
        Preprocessing::Scale(0.1),
        MetaLoss::Sum,
        None,
        |cfg| {
            cfg.loss_from = 5;
            second_order(cfg);
        },
    );
}

/// Truncated BPTT with a base rule's steps added to the LSTM's, on problems whose gradients
/// do not depend on θ (where BPTT's assumption holds, so the differences must agree).
#[test]
fn bptt_gradient_matches_finite_differences_with_a_base_rule() {
    let linear = Linear {
        slope: vec![0.3, -0.7],
        count: 3,
    };
    for base in [
        NAG_BASE,
        BaseStep {
            kind: Baseline::Adam,
            lr: 0.05,
            form: CorrectionForm::Added,
        },
    ] {
        check_gradient_on(
            &linear,
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            None,
            |cfg| cfg.base = Some(base),
        );
    }
}

/// One network per parameter group: the meta-gradient of both networks' weights, with and
/// without the Hessian terms, on quadratics of 5 coordinates whose odd and even coordinates
/// are served by different networks.
#[test]
fn gradient_matches_finite_differences_with_a_network_per_group() {
    let family = QuadraticFamily {
        dims: 5,
        distribution: ValueDistribution::Normal,
        theta0_std: 0.5,
    };
    let batch = TwoGroups(family.sample(3, 3, |i| i));
    for second in [false, true] {
        check_gradient_on(
            &batch,
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            None,
            |cfg| {
                cfg.groups = vec!["conv".into(), "fc".into()];
                if second {
                    second_order(cfg);
                }
            },
        );
    }
}

/// The BPTT gradient at the paper's size (two layers of 20 units), where the LSTM runs its
/// fused 5-chunk kernel.
#[test]
fn bptt_gradient_matches_finite_differences_at_the_paper_size() {
    check_gradient_on(
        &tiny_batch(),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        None,
        |cfg| cfg.hidden = 20,
    );
}

/// Appendix D's LSTM+GAC, one averaging cell of three per layer: BPTT carries the meta-loss's
/// gradient back through the averages over each problem's coordinates, with and without the
/// Hessian terms, and with a network per parameter group (each averaging over its own rows).
#[test]
fn lstm_gac_gradient_matches_finite_differences() {
    let gac = |cfg: &mut MetaTrainSettings| {
        cfg.architecture = ArchitectureChoice::LstmGac { averaging: 1 }
    };
    with_and_without_second_order(gac);
    let family = QuadraticFamily {
        dims: 5,
        distribution: ValueDistribution::Normal,
        theta0_std: 0.5,
    };
    check_gradient_on(
        &TwoGroups(family.sample(3, 3, |i| i)),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        None,
        |cfg| {
            gac(cfg);
            cfg.groups = vec!["conv".into(), "fc".into()];
        },
    );
}

/// LSTM+GAC at the size Appendix D's experiment trains (two layers of 20 units, 2 averaging
/// cells each) on §3.1's 10-d quadratics, and on a sigmoid MLP.
#[test]
fn lstm_gac_gradient_matches_finite_differences_at_the_experiments_size() {
    let gac = |cfg: &mut MetaTrainSettings| {
        cfg.hidden = 20;
        cfg.architecture = ArchitectureChoice::LstmGac { averaging: 2 };
    };
    let family = QuadraticFamily {
        dims: 10,
        distribution: ValueDistribution::Normal,
        theta0_std: 0.5,
    };
    check_gradient_on(
        &family.sample(3, 3, |i| i),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        None,
        gac,
    );
    check_gradient_on(
        &tiny_mlp(Activation::Sigmoid),
        Preprocessing::LogSign { p: 10.0 },
        MetaLoss::Sum,
        None,
        gac,
    );
}

/// NTM-BFGS and NTM-L-BFGS: BPTT through the heads, the memory's writes and reads, and the
/// read results fed back to the controller, against finite differences. At tiny sizes (3 units,
/// one averaging cell, 2 read and 2 write heads; a history shorter than an unroll, so that
/// writes leave the window inside it), with and without the Hessian terms; then at the
/// experiment's size (20 units, 2 averaging cells, 1 read and 3 write heads) on 10-d quadratics.
#[test]
fn ntm_gradients_match_finite_differences() {
    use crate::learned::ntm::MemoryKind;
    for memory in [MemoryKind::Full, MemoryKind::History(2)] {
        let ntm = |cfg: &mut MetaTrainSettings| {
            cfg.architecture = ArchitectureChoice::Ntm {
                averaging: 1,
                reads: 2,
                writes: 2,
                memory,
            }
        };
        with_and_without_second_order(ntm);
        let family = QuadraticFamily {
            dims: 10,
            distribution: ValueDistribution::Normal,
            theta0_std: 0.5,
        };
        check_gradient_on(
            &family.sample(3, 3, |i| i),
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            None,
            |cfg| {
                cfg.hidden = 20;
                cfg.architecture = ArchitectureChoice::Ntm {
                    averaging: 2,
                    reads: 1,
                    writes: 3,
                    memory,
                };
            },
        );
    }
}

/// The check on the tiny quadratics with `architecture` set by `choose`, by BPTT and with the
/// Hessian terms.
fn with_and_without_second_order(choose: impl Fn(&mut MetaTrainSettings)) {
    for second in [false, true] {
        check_gradient_on(
            &tiny_batch(),
            Preprocessing::LogSign { p: 10.0 },
            MetaLoss::Sum,
            None,
            |cfg| {
                choose(cfg);
                if second {
                    second_order(cfg);
                }
            },
        );
    }
}

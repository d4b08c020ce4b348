//! `meta-train`'s flags, and the settings they ask for.

use clap::{Parser, ValueEnum};
use l2l::baselines::{Baseline, CorrectionForm};
use l2l::learned::ntm::MemoryKind;
use l2l::learned::{ArchitectureChoice, Preprocessing};
use l2l::meta::{
    EsScope, ImitationLoss, MetaGradient, MetaLoss, MetaTrainParams, MetaTrainSettings, Rollout,
    RuleRequest,
};
use std::path::PathBuf;

/// Meta-train a coordinatewise LSTM optimizer (§2.1: two LSTM layers, weights shared by every
/// coordinate) on a class of problems, by truncated BPTT with Adam on the LSTM weights.
///
/// Every epoch draws --batch fresh problems from the family recorded in the --train spec (a
/// spec without that record, e.g. one written by numpy, is used as a pool to draw from). The
/// best weights by mean final loss on --validation are written to --output at the end.
/// A killed run resumes from <output stem>.resume.npz, saved at every validation. Every epoch's losses (and every validation) go to <output stem>.log.parquet.
#[derive(Parser)]
#[command(version, about, long_about)]
pub struct Args {
    /// Training spec (from sample-optimizee): the problem family to draw from.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation spec for early stopping; without it the last weights are kept.
    #[arg(long)]
    pub validation: Option<PathBuf>,
    /// Output checkpoint (.npz).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Meta-training epochs (one epoch = one trajectory of --steps for each of --batch problems).
    #[arg(long, default_value_t = 1000)]
    pub epochs: u64,
    /// Problems per epoch.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Optimizee steps per trajectory (the horizon of eq. 3).
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Steps per truncated BPTT unroll.
    #[arg(long, default_value_t = 20)]
    pub unroll: usize,
    /// Adam learning rate on the LSTM weights.
    #[arg(long = "meta-lr", default_value_t = 0.001)]
    pub meta_lr: f64,
    /// Multiply the meta learning rate by this after every epoch (1 = constant).
    #[arg(long = "meta-lr-decay", default_value_t = 1.0)]
    pub meta_lr_decay: f64,
    /// Clip each meta-gradient to this global L2 norm (default: no clipping).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Curriculum over trajectory length (Chen et al., NeurIPS 2020): start with one unroll
    /// and add one every this many epochs, up to --steps (default: always --steps).
    #[arg(long)]
    pub curriculum: Option<u64>,
    /// Meta-loss of a trajectory: `sum` is eq. (3) with w_t = 1, Σ_t f(θ_t) (the paper);
    /// `log` is Σ_t log f(θ_t), which weighs every step's relative progress the same, so the
    /// late steps are not drowned out by the large early losses.
    #[arg(long = "meta-loss", value_enum, default_value_t = MetaLoss::Sum)]
    pub meta_loss: MetaLoss,
    /// Count only the losses from this step on in the meta-loss (eq. 3's w_t = 0 before it;
    /// default 1, every step), to train for the end of long runs, e.g. --steps 200
    /// --meta-loss-from 101.
    #[arg(long = "meta-loss-from", default_value_t = 1)]
    pub meta_loss_from: usize,
    /// Imitate a hand-designed optimizer first (Chen et al., NeurIPS 2020), given as NAME
    /// (its learning rate tuned on --validation over 1e-4 … 10, as `evaluate --tune` does) or
    /// NAME=LR: for --imitation-epochs epochs the LSTM learns to reproduce its updates from
    /// the same gradients; then --meta-loss takes over.
    #[arg(long)]
    pub imitate: Option<String>,
    /// Whose updates the imitation trajectories follow: the `teacher`'s (behaviour cloning),
    /// or the LSTM's own, `student` (on-policy, as DAgger: the teacher says what it would do
    /// at the states the LSTM reaches, so the LSTM learns to correct its own drift).
    #[arg(long = "imitation-rollout", value_enum, default_value_t = Rollout::Teacher)]
    pub imitation_rollout: Rollout,
    /// How imitation weighs each coordinate's error: `squared`, the mean squared difference of
    /// the updates, which the largest updates dominate; or `relative`, each coordinate's
    /// squared error divided by the teacher's recent mean squared update there (floored at
    /// 10⁻⁴ × its mean over the problem), so the tiny updates of deep layers, and the zero
    /// update where the gradient is zero, are imitated as carefully as the large ones.
    #[arg(long = "imitation-loss", value_enum, default_value_t = ImitationLoss::Squared)]
    pub imitation_loss: ImitationLoss,
    /// Epochs of imitation before the meta-loss takes over (with --imitate).
    #[arg(long = "imitation-epochs", default_value_t = 100)]
    pub imitation_epochs: u64,
    /// Adam learning rate on the LSTM weights while imitating (--meta-lr applies after).
    #[arg(long = "imitation-meta-lr", default_value_t = 0.001)]
    pub imitation_meta_lr: f64,
    /// How the meta-gradient is estimated: `bptt` is the paper's truncated BPTT without second
    /// derivatives; `second-order` is the same BPTT with them, by a Hessian-vector product of
    /// the optimizee at every step (the exact gradient of the truncated meta-loss, about three
    /// times the optimizee cost); `es` is antithetic evolution strategies over whole --steps
    /// trajectories (forward runs only, unbiased, curvature included), best for refining a
    /// trained optimizer (with --init or after --imitate).
    #[arg(long = "meta-gradient", value_enum, default_value_t = Estimator::Bptt)]
    pub meta_gradient: Estimator,
    /// ES: antithetic pairs of perturbations per epoch.
    #[arg(long = "es-pairs", default_value_t = 8)]
    pub es_pairs: usize,
    /// ES: standard deviation of the perturbations of the LSTM weights.
    #[arg(long = "es-sigma", default_value_t = 0.01)]
    pub es_sigma: f32,
    /// ES: perturb only the output layer (`output`) or every weight (`all`).
    #[arg(long = "es-scope", value_enum, default_value_t = EsScope::Output)]
    pub es_scope: EsScope,
    /// Steps of the validation runs that select the checkpoint (default: --steps).
    #[arg(long = "validation-steps")]
    pub validation_steps: Option<usize>,
    /// Judge validation runs (the checkpoint, and a base or imitated rule's tuned rate) by the
    /// mean loss over their last W steps rather than the final loss alone (W = 1, the paper's
    /// choice): on minibatch losses such as CIFAR-10's, one step's loss is too noisy to rank.
    #[arg(long = "validation-window", value_name = "W", default_value_t = 1)]
    pub validation_window: usize,
    /// Validate and keep the best weights every this many epochs.
    #[arg(long = "eval-every", default_value_t = 10)]
    pub eval_every: u64,
    /// Stop early once N validations in a row found no better weights, before --epochs if
    /// need be (default: run every epoch). A run may resume with another N, or none.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub patience: Option<u64>,
    /// Hidden units in each of the two LSTM layers.
    #[arg(long, default_value_t = 20)]
    pub hidden: usize,
    /// The learned optimizer: `lstm`, the coordinatewise LSTM of §2.1; Appendix D's
    /// `lstm-gac`, whose last --averaging-cells units of each layer are averaged over every
    /// coordinate of a problem at each step; `ntm-bfgs`, an LSTM+GAC controller with
    /// --read-heads and --write-heads on an n × n memory per problem; `ntm-lbfgs`, the same
    /// with the writes of the last --history steps in place of the memory.
    #[arg(long, value_enum, default_value_t = Arch::Lstm)]
    pub architecture: Arch,
    /// Global averaging cells per layer of lstm-gac, ntm-bfgs and ntm-lbfgs (at most --hidden;
    /// default 2, what Appendix D's construction of BFGS needs).
    #[arg(long = "averaging-cells", value_name = "N")]
    pub averaging_cells: Option<usize>,
    /// Read heads of ntm-bfgs and ntm-lbfgs (default 1).
    #[arg(long = "read-heads", value_name = "N")]
    pub read_heads: Option<usize>,
    /// Write heads of ntm-bfgs and ntm-lbfgs (default 3, which Appendix D says can simulate
    /// BFGS).
    #[arg(long = "write-heads", value_name = "N")]
    pub write_heads: Option<usize>,
    /// Steps whose writes ntm-lbfgs keeps (default 5).
    #[arg(long, value_name = "K")]
    pub history: Option<usize>,
    /// Input processing: `scale` multiplies the gradient by --input-scale (§2.1; the paper's
    /// quadratics use none, i.e. scale 1); `log-sign` is Appendix A with parameter --p.
    #[arg(long, value_enum, default_value_t = Pre::Scale)]
    pub preprocessing: Pre,
    /// Gradient multiplier for --preprocessing scale. The default 1/128 feeds the LSTM the
    /// gradient of the batch-mean loss over 128 problems, as the original code did, which
    /// keeps its inputs where its tanh units are not saturated.
    #[arg(long = "input-scale", default_value_t = 0.0078125)]
    pub input_scale: f32,
    /// The p of Appendix A's preprocessing.
    #[arg(long, default_value_t = 10.0)]
    pub p: f32,
    /// The LSTM's output is multiplied by this before it is added to θ (§3.2 uses 0.1).
    #[arg(long = "output-scale", default_value_t = 1.0)]
    pub output_scale: f32,
    /// Add the LSTM's output to the step of a hand-designed rule, NAME or NAME=LR (beyond the
    /// paper): the LSTM learns a correction to it. Without LR the rate is tuned on
    /// --validation as for --imitate. A fresh run starts with the output layer at zero, i.e.
    /// as exactly this rule. Not with --imitate or --meta-gradient second-order.
    #[arg(long, value_name = "NAME[=LR]")]
    pub base: Option<String>,
    /// How the LSTM's output m corrects --base's step Δ: added, θ ← θ + Δ + s·m; or scaled,
    /// θ ← θ + Δ·exp(s·m), which stretches or shrinks the rule's step coordinate by
    /// coordinate (s: --output-scale). Scaled trains by --meta-gradient es.
    #[arg(long = "base-form", value_enum, default_value_t = CorrectionForm::Added)]
    pub base_form: CorrectionForm,
    /// The rates tried when --base or --imitate names a rule without one:
    /// 10^(k/PER_DECADE) from LO to HI, as evaluate --lr-grid.
    #[arg(
        long = "lr-grid",
        value_name = "LO:HI:PER_DECADE",
        default_value = "1e-4:10:4"
    )]
    pub lr_grid: String,
    /// Initial bias of both layers' forget gates.
    #[arg(long = "forget-bias", default_value_t = 1.0)]
    pub forget_bias: f32,
    /// Seed of the weight initialisation and, for a pool spec, of its minibatches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Instead of training: on the first N training batches, compare the BPTT meta-gradient
    /// (with these settings' --meta-gradient bptt or second-order, --unroll and --meta-loss) with the true gradient of the
    /// whole-trajectory meta-loss, by central differences over the output layer, at the
    /// starting weights (--init, or a fresh initialisation); prints the cosine of each and
    /// writes nothing.
    #[arg(long = "check-meta-gradient", value_name = "N")]
    pub check_meta_gradient: Option<u64>,
    /// Start from the weights of this checkpoint instead of a fresh initialisation (its
    /// architecture, --preprocessing, --p, --output-scale and --base must be given to match). Only
    /// used when a run starts; a resumed run continues from its own state.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Ignore an existing resume state and start again.
    #[arg(long)]
    pub restart: bool,
    /// Instead of the path the spec records (its checksum must match): the dataset of an MLP
    /// spec, the CIFAR-10 folder of a conv spec, the feature network of a neural-art spec.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Worker threads (0 = one per core). Results are identical for any count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Estimator {
    Bptt,
    SecondOrder,
    Es,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Arch {
    Lstm,
    LstmGac,
    NtmBfgs,
    NtmLbfgs,
}

/// The sizes of Appendix D's architectures unless their flags say otherwise: the two averaging
/// cells and the one read and three write heads of Appendix D's construction of BFGS, and a
/// history of five steps.
const AVERAGING_CELLS: usize = 2;
const READ_HEADS: usize = 1;
const WRITE_HEADS: usize = 3;
const HISTORY: usize = 5;

/// The architecture the flags ask for; a size given to an architecture without it is refused.
fn architecture(args: &Args) -> anyhow::Result<ArchitectureChoice> {
    use Arch::*;
    let sizes = [
        (
            "--averaging-cells",
            args.averaging_cells,
            &[LstmGac, NtmBfgs, NtmLbfgs][..],
        ),
        ("--read-heads", args.read_heads, &[NtmBfgs, NtmLbfgs][..]),
        ("--write-heads", args.write_heads, &[NtmBfgs, NtmLbfgs][..]),
        ("--history", args.history, &[NtmLbfgs][..]),
    ];
    for (flag, value, takers) in sizes {
        if value.is_some() && !takers.contains(&args.architecture) {
            let names: Vec<_> = takers
                .iter()
                .map(|a| a.to_possible_value().unwrap().get_name().to_string())
                .collect();
            anyhow::bail!(
                "{flag} is a size of --architecture {}; drop it or choose one of those",
                names.join(" or ")
            );
        }
    }
    let averaging = args.averaging_cells.unwrap_or(AVERAGING_CELLS);
    let ntm = |memory| ArchitectureChoice::Ntm {
        averaging,
        reads: args.read_heads.unwrap_or(READ_HEADS),
        writes: args.write_heads.unwrap_or(WRITE_HEADS),
        memory,
    };
    Ok(match args.architecture {
        Lstm => ArchitectureChoice::Lstm,
        LstmGac => ArchitectureChoice::LstmGac { averaging },
        NtmBfgs => ntm(MemoryKind::Full),
        NtmLbfgs => ntm(MemoryKind::History(args.history.unwrap_or(HISTORY))),
    })
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Pre {
    Scale,
    LogSign,
}

/// A hand-designed rule named by --imitate or --base (`flag`): `NAME` or `NAME=LR`.
fn parse_rule(flag: &str, text: &str) -> anyhow::Result<RuleRequest> {
    let usage = || {
        anyhow::anyhow!(
            "{flag} takes NAME or NAME=LR with NAME one of sgd, nag, rmsprop, adam (e.g. nag=1), got '{text}'"
        )
    };
    let (name, lr) = match text.split_once('=') {
        Some((name, lr)) => (name, Some(lr.parse().map_err(|_| usage())?)),
        None => (text, None),
    };
    Ok(RuleRequest {
        kind: Baseline::from_name(name).ok_or_else(usage)?,
        lr,
    })
}

/// The settings the flags ask for, before they are checked.
pub fn params(args: &Args) -> anyhow::Result<MetaTrainParams> {
    let settings = MetaTrainSettings {
        hidden: args.hidden,
        preprocessing: match args.preprocessing {
            Pre::Scale => Preprocessing::Scale(args.input_scale),
            Pre::LogSign => Preprocessing::LogSign { p: args.p },
        },
        output_scale: args.output_scale,
        forget_bias: args.forget_bias,
        batch: args.batch,
        steps: args.steps,
        unroll: args.unroll,
        meta_lr: args.meta_lr,
        meta_lr_decay: args.meta_lr_decay,
        clip: args.clip,
        curriculum: args.curriculum,
        meta_gradient: match args.meta_gradient {
            Estimator::Bptt => MetaGradient::Bptt,
            Estimator::SecondOrder => MetaGradient::SecondOrder,
            Estimator::Es => MetaGradient::Es {
                pairs: args.es_pairs,
                sigma: args.es_sigma,
                scope: args.es_scope,
            },
        },
        meta_loss: args.meta_loss,
        loss_from: args.meta_loss_from,
        validation_steps: args.validation_steps.unwrap_or(args.steps),
        validation_window: args.validation_window,
        epochs: args.epochs,
        eval_every: args.eval_every,
        seed: args.seed,
        architecture: architecture(args)?,
        ..MetaTrainSettings::default()
    };
    Ok(MetaTrainParams {
        settings,
        imitate: args
            .imitate
            .as_deref()
            .map(|t| parse_rule("--imitate", t))
            .transpose()?,
        imitation_epochs: args.imitation_epochs,
        imitation_meta_lr: args.imitation_meta_lr,
        imitation_rollout: args.imitation_rollout,
        imitation_loss: args.imitation_loss,
        base: args
            .base
            .as_deref()
            .map(|t| parse_rule("--base", t))
            .transpose()?,
        base_form: args.base_form,
        lr_grid: l2l::evaluation::LrGrid::parse(&args.lr_grid)?,
    })
}

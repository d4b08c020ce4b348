//! `meta-train`: trains a learned LSTM optimizer by truncated BPTT and writes a checkpoint.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use l2l::baselines::{Baseline, CorrectionForm};
use l2l::learned::{LearnedOptimizer, Preprocessing};
use l2l::meta::{
    check_ranks, resume_path, train, EsScope, GradientAgreement, ImitationLoss, MetaGradient,
    MetaLoss, MetaTrainConfig, MetaTrainParams, MetaTrainSettings, MetaTrainer, Progress, Rollout,
    RuleRequest,
};
use l2l::problems::{load_companion, FromSpec, ProblemSet, SourceVisitor, Spec, TrainingSource};
use l2l::ranks::Ranks;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Meta-train a coordinatewise LSTM optimizer (§2.1: two LSTM layers, weights shared by every
/// coordinate) on a class of problems, by truncated BPTT with Adam on the LSTM weights.
///
/// Every epoch draws --batch fresh problems from the family recorded in the --train spec (a
/// spec without that record, e.g. one written by numpy, is used as a pool to draw from). The
/// best weights by mean final loss on --validation are written to --output at the end.
/// A killed run resumes from <output stem>.resume.npz, saved at every validation. Every epoch's losses (and every validation) go to <output stem>.log.parquet.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Training spec (from sample-optimizee): the problem family to draw from.
    #[arg(long)]
    train: PathBuf,
    /// Validation spec for early stopping; without it the last weights are kept.
    #[arg(long)]
    validation: Option<PathBuf>,
    /// Output checkpoint (.npz).
    #[arg(short, long)]
    output: PathBuf,
    /// Meta-training epochs (one epoch = one trajectory of --steps for each of --batch problems).
    #[arg(long, default_value_t = 1000)]
    epochs: u64,
    /// Problems per epoch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Optimizee steps per trajectory (the horizon of eq. 3).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Steps per truncated BPTT unroll.
    #[arg(long, default_value_t = 20)]
    unroll: usize,
    /// Adam learning rate on the LSTM weights.
    #[arg(long = "meta-lr", default_value_t = 0.001)]
    meta_lr: f64,
    /// Multiply the meta learning rate by this after every epoch (1 = constant).
    #[arg(long = "meta-lr-decay", default_value_t = 1.0)]
    meta_lr_decay: f64,
    /// Clip each meta-gradient to this global L2 norm (default: no clipping).
    #[arg(long)]
    clip: Option<f64>,
    /// Curriculum over trajectory length (Chen et al., NeurIPS 2020): start with one unroll
    /// and add one every this many epochs, up to --steps (default: always --steps).
    #[arg(long)]
    curriculum: Option<u64>,
    /// Meta-loss of a trajectory: `sum` is eq. (3) with w_t = 1, Σ_t f(θ_t) (the paper);
    /// `log` is Σ_t log f(θ_t), which weighs every step's relative progress the same, so the
    /// late steps are not drowned out by the large early losses.
    #[arg(long = "meta-loss", value_enum, default_value_t = Objective::Sum)]
    meta_loss: Objective,
    /// Count only the losses from this step on in the meta-loss (eq. 3's w_t = 0 before it;
    /// default 1, every step), to train for the end of long runs, e.g. --steps 200
    /// --meta-loss-from 101.
    #[arg(long = "meta-loss-from", default_value_t = 1)]
    meta_loss_from: usize,
    /// Imitate a hand-designed optimizer first (Chen et al., NeurIPS 2020), given as NAME
    /// (its learning rate tuned on --validation over 1e-4 … 10, as `evaluate --tune` does) or
    /// NAME=LR: for --imitation-epochs epochs the LSTM learns to reproduce its updates from
    /// the same gradients; then --meta-loss takes over.
    #[arg(long)]
    imitate: Option<String>,
    /// Whose updates the imitation trajectories follow: the `teacher`'s (behaviour cloning),
    /// or the LSTM's own, `student` (on-policy, as DAgger: the teacher says what it would do
    /// at the states the LSTM reaches, so the LSTM learns to correct its own drift).
    #[arg(long = "imitation-rollout", value_enum, default_value_t = RolloutArg::Teacher)]
    imitation_rollout: RolloutArg,
    /// How imitation weighs each coordinate's error: `squared`, the mean squared difference of
    /// the updates, which the largest updates dominate; or `relative`, each coordinate's
    /// squared error divided by the teacher's recent mean squared update there (floored at
    /// 10⁻⁴ × its mean over the problem), so the tiny updates of deep layers, and the zero
    /// update where the gradient is zero, are imitated as carefully as the large ones.
    #[arg(long = "imitation-loss", value_enum, default_value_t = ImitationLossArg::Squared)]
    imitation_loss: ImitationLossArg,
    /// Epochs of imitation before the meta-loss takes over (with --imitate).
    #[arg(long = "imitation-epochs", default_value_t = 100)]
    imitation_epochs: u64,
    /// Adam learning rate on the LSTM weights while imitating (--meta-lr applies after).
    #[arg(long = "imitation-meta-lr", default_value_t = 0.001)]
    imitation_meta_lr: f64,
    /// How the meta-gradient is estimated: `bptt` is the paper's truncated BPTT without second
    /// derivatives; `second-order` is the same BPTT with them, by a Hessian-vector product of
    /// the optimizee at every step (the exact gradient of the truncated meta-loss, about three
    /// times the optimizee cost); `es` is antithetic evolution strategies over whole --steps
    /// trajectories (forward runs only, unbiased, curvature included), best for refining a
    /// trained optimizer (with --init or after --imitate).
    #[arg(long = "meta-gradient", value_enum, default_value_t = Estimator::Bptt)]
    meta_gradient: Estimator,
    /// ES: antithetic pairs of perturbations per epoch.
    #[arg(long = "es-pairs", default_value_t = 8)]
    es_pairs: usize,
    /// ES: standard deviation of the perturbations of the LSTM weights.
    #[arg(long = "es-sigma", default_value_t = 0.01)]
    es_sigma: f32,
    /// ES: perturb only the output layer (`output`) or every weight (`all`).
    #[arg(long = "es-scope", value_enum, default_value_t = Scope::Output)]
    es_scope: Scope,
    /// Steps of the validation runs that select the checkpoint (default: --steps).
    #[arg(long = "validation-steps")]
    validation_steps: Option<usize>,
    /// Judge validation runs (the checkpoint, and a base or imitated rule's tuned rate) by the
    /// mean loss over their last W steps rather than the final loss alone (W = 1, the paper's
    /// choice): on minibatch losses such as CIFAR-10's, one step's loss is too noisy to rank.
    #[arg(long = "validation-window", value_name = "W", default_value_t = 1)]
    validation_window: usize,
    /// Validate and keep the best weights every this many epochs.
    #[arg(long = "eval-every", default_value_t = 10)]
    eval_every: u64,
    /// Hidden units in each of the two LSTM layers.
    #[arg(long, default_value_t = 20)]
    hidden: usize,
    /// Input processing: `scale` multiplies the gradient by --input-scale (§2.1; the paper's
    /// quadratics use none, i.e. scale 1); `log-sign` is Appendix A with parameter --p.
    #[arg(long, value_enum, default_value_t = Pre::Scale)]
    preprocessing: Pre,
    /// Gradient multiplier for --preprocessing scale. The default 1/128 feeds the LSTM the
    /// gradient of the batch-mean loss over 128 problems, as the original code did, which
    /// keeps its inputs where its tanh units are not saturated.
    #[arg(long = "input-scale", default_value_t = 0.0078125)]
    input_scale: f32,
    /// The p of Appendix A's preprocessing.
    #[arg(long, default_value_t = 10.0)]
    p: f32,
    /// The LSTM's output is multiplied by this before it is added to θ (§3.2 uses 0.1).
    #[arg(long = "output-scale", default_value_t = 1.0)]
    output_scale: f32,
    /// Add the LSTM's output to the step of a hand-designed rule, NAME or NAME=LR (beyond the
    /// paper): the LSTM learns a correction to it. Without LR the rate is tuned on
    /// --validation as for --imitate. A fresh run starts with the output layer at zero, i.e.
    /// as exactly this rule. Not with --imitate or --meta-gradient second-order.
    #[arg(long, value_name = "NAME[=LR]")]
    base: Option<String>,
    /// How the LSTM's output m corrects --base's step Δ: added, θ ← θ + Δ + s·m; or scaled,
    /// θ ← θ + Δ·exp(s·m), which stretches or shrinks the rule's step coordinate by
    /// coordinate (s: --output-scale). Scaled trains by --meta-gradient es.
    #[arg(long = "base-form", value_enum, default_value_t = BaseFormArg::Added)]
    base_form: BaseFormArg,
    /// The rates tried when --base or --imitate names a rule without one:
    /// 10^(k/PER_DECADE) from LO to HI, as evaluate --lr-grid.
    #[arg(
        long = "lr-grid",
        value_name = "LO:HI:PER_DECADE",
        default_value = "1e-4:10:4"
    )]
    lr_grid: String,
    /// Initial bias of both layers' forget gates.
    #[arg(long = "forget-bias", default_value_t = 1.0)]
    forget_bias: f32,
    /// Seed of the weight initialisation and, for a pool spec, of its minibatches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instead of training: on the first N training batches, compare the BPTT meta-gradient
    /// (with these settings' --meta-gradient bptt or second-order, --unroll and --meta-loss) with the true gradient of the
    /// whole-trajectory meta-loss, by central differences over the output layer, at the
    /// starting weights (--init, or a fresh initialisation); prints the cosine of each and
    /// writes nothing.
    #[arg(long = "check-meta-gradient", value_name = "N")]
    check_meta_gradient: Option<u64>,
    /// Start from the weights of this checkpoint instead of a fresh initialisation (its
    /// architecture, --preprocessing, --p, --output-scale and --base must be given to match). Only
    /// used when a run starts; a resumed run continues from its own state.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Ignore an existing resume state and start again.
    #[arg(long)]
    restart: bool,
    /// Instead of the path the spec records (its checksum must match): the dataset of an MLP
    /// spec, the CIFAR-10 folder of a conv spec, the feature network of a neural-art spec.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Worker threads (0 = one per core). Results are identical for any count.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Estimator {
    Bptt,
    SecondOrder,
    Es,
}

#[derive(Clone, Copy, ValueEnum)]
enum BaseFormArg {
    Added,
    Scaled,
}

#[derive(Clone, Copy, ValueEnum)]
enum RolloutArg {
    Teacher,
    Student,
}

#[derive(Clone, Copy, ValueEnum)]
enum ImitationLossArg {
    Squared,
    Relative,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scope {
    Output,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum Objective {
    Sum,
    Log,
}

#[derive(Clone, Copy, ValueEnum)]
enum Pre {
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
fn params(args: &Args) -> anyhow::Result<MetaTrainParams> {
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
                scope: match args.es_scope {
                    Scope::Output => EsScope::Output,
                    Scope::All => EsScope::All,
                },
            },
        },
        meta_loss: match args.meta_loss {
            Objective::Sum => MetaLoss::Sum,
            Objective::Log => MetaLoss::Log,
        },
        loss_from: args.meta_loss_from,
        validation_steps: args.validation_steps.unwrap_or(args.steps),
        validation_window: args.validation_window,
        epochs: args.epochs,
        eval_every: args.eval_every,
        seed: args.seed,
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
        imitation_rollout: match args.imitation_rollout {
            RolloutArg::Teacher => Rollout::Teacher,
            RolloutArg::Student => Rollout::Student,
        },
        imitation_loss: match args.imitation_loss {
            ImitationLossArg::Squared => ImitationLoss::Squared,
            ImitationLossArg::Relative => ImitationLoss::Relative,
        },
        base: args
            .base
            .as_deref()
            .map(|t| parse_rule("--base", t))
            .transpose()?,
        base_form: match args.base_form {
            BaseFormArg::Added => CorrectionForm::Added,
            BaseFormArg::Scaled => CorrectionForm::Scaled,
        },
        lr_grid: l2l::evaluation::LrGrid::parse(&args.lr_grid)?,
    })
}

fn run(args: Args, ranks: &dyn Ranks) -> anyhow::Result<()> {
    l2l::cli::init_threads_in_job(args.threads, ranks)?;
    let params = params(&args)?;
    // Every setting that needs no data is checked before the spec is read.
    params.check_settings(args.validation.is_some())?;
    anyhow::ensure!(
        args.check_meta_gradient.is_none() || ranks.size() == 1,
        "--check-meta-gradient runs in one process; run it without mpirun"
    );
    let state = resume_path(&args.output);
    let log = l2l::training_log::log_path(&args.output);
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--train", args.train.as_path())];
    inputs.extend(args.validation.as_deref().map(|p| ("--validation", p)));
    inputs.extend(args.init.as_deref().map(|p| ("--init", p)));
    inputs.extend(args.data.as_deref().map(|p| ("--data", p)));
    // The claims are held to the end of the run: no second run can write this checkpoint or
    // its resume state meanwhile. Under mpirun rank 0 alone writes, and claims.
    let _claims = if args.check_meta_gradient.is_none() {
        let mut outputs = vec![("--output", args.output.as_path())];
        outputs.extend(
            state
                .as_deref()
                .map(|s| ("the resume state of --output", s)),
        );
        outputs.extend(log.as_deref().map(|l| ("the training log of --output", l)));
        l2l::cli::claim_outputs_in_job(&outputs, &inputs, ranks)?
    } else {
        Vec::new()
    };
    let spec = Spec::load(&args.train, args.data.as_deref())?;
    spec.visit_source(
        args.seed,
        Training {
            args: &args,
            params,
            ranks,
        },
    )
}

/// Meta-training on the training source of whatever kind the spec is.
struct Training<'a> {
    args: &'a Args,
    params: MetaTrainParams,
    ranks: &'a dyn Ranks,
}

impl SourceVisitor for Training<'_> {
    type Output = anyhow::Result<()>;
    fn visit<S: TrainingSource>(self, source: S) -> anyhow::Result<()>
    where
        S::Set: FromSpec,
    {
        let (args, ranks) = (self.args, self.ranks);
        source.check_batch(self.params.settings.batch)?;
        check_ranks(&self.params.settings, &source.draw(0, 1), ranks.size())?;
        let validation: Option<S::Set> = match &args.validation {
            Some(p) => Some(load_companion(p, args.data.as_deref(), &source.draw(0, 1))?),
            None => None,
        };
        let mut params = self.params;
        params.settings.groups = source
            .draw(0, 1)
            .groups()
            .into_iter()
            .map(|g| g.name)
            .collect();
        let (config, tuned) = params.check(validation.as_ref(), ranks)?;
        for t in tuned.iter().filter(|_| ranks.is_leader()) {
            eprintln!(
                "meta-train: {} {} with lr {} (best of {} rates on the validation runs, mean {} {:.4} after {} steps)",
                t.role,
                t.best.optimizer.name(),
                t.best.lr,
                t.tried,
                config.validation_measure().describe(),
                t.best.validation_final_loss,
                t.steps,
            );
        }
        train_with(args, config, source, validation, ranks)
    }
}

fn train_with<S: TrainingSource>(
    args: &Args,
    config: MetaTrainConfig,
    source: S,
    validation: Option<S::Set>,
    ranks: &dyn Ranks,
) -> anyhow::Result<()> {
    let leader = ranks.is_leader();
    if let Some(batches) = args.check_meta_gradient {
        return check_meta_gradient(&fresh_trainer(args, config)?, &source, batches);
    }
    let state = resume_path(&args.output).filter(|s| s.exists() && !args.restart);
    let trainer = if let Some(state) = state {
        let t = MetaTrainer::resume(config.clone(), &state, &source.describe())
            .with_context(|| format!("resuming from {}", state.display()))?;
        if leader {
            eprintln!(
                "meta-train: resuming from {} at epoch {}",
                state.display(),
                t.epoch
            );
        }
        t
    } else {
        fresh_trainer(args, config.clone())?
    };
    let processes = match ranks.size() {
        1 => String::new(),
        k => format!(" in each of {k} ranks"),
    };
    if leader {
        eprintln!(
            "meta-train: {} epochs × {} problems × {} steps (unrolls of {}), {} weights in {} network{}, {} threads{processes}",
            config.epochs,
            config.batch,
            config.steps,
            config.unroll,
            trainer.weights.len(),
            trainer.networks.len(),
            if trainer.networks.len() == 1 { "" } else { "s" },
            rayon::current_num_threads()
        );
    }
    let mut last_print = Instant::now();
    let started = Instant::now();
    let mut last: Option<Progress> = None;
    let best = train(
        trainer,
        &source,
        validation.as_ref(),
        &args.output,
        ranks,
        |p| {
            let now = Instant::now();
            if p.validation_loss.is_some() && (now - last_print).as_secs_f64() >= 2.0
                || p.epoch == p.epochs
            {
                last_print = now;
                let remaining = (p.epochs - p.epoch) as f64 * p.seconds
                    / (p.epoch - p.resumed_from.unwrap_or(0)).max(1) as f64;
                eprintln!(
                "epoch {:>6}/{}  train final {:>10.4}  val {:>10.4}  best {:>10.4} @ {:>6}  skipped unrolls {}  {:.0} optimizee steps/s  ETA {:.0}s",
                p.epoch,
                p.epochs,
                p.report.final_loss,
                p.validation_loss.unwrap_or(f64::NAN),
                p.best_validation_loss.unwrap_or(f64::NAN),
                p.best_epoch.unwrap_or(0),
                p.skipped_unrolls,
                p.optimizee_steps_per_second,
                remaining
            );
            }
            last = Some(p.clone());
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    let rate = last.map(|p| p.optimizee_steps_per_second).unwrap_or(0.0);
    if !leader {
        return Ok(());
    }
    eprintln!(
        "meta-train: wrote {} (epoch {}, validation loss {:.4}) after {secs:.1}s, {rate:.0} optimizee steps/s",
        l2l::io::describe(&args.output, true),
        best.epoch,
        best.validation_loss
    );
    Ok(())
}

/// A run at its first epoch: from --init's weights, or a fresh initialisation.
fn fresh_trainer(args: &Args, config: MetaTrainConfig) -> anyhow::Result<MetaTrainer> {
    Ok(match &args.init {
        Some(init) => {
            let start = LearnedOptimizer::load(init)
                .with_context(|| format!("reading the starting checkpoint {}", init.display()))?;
            MetaTrainer::starting_from(config, &start)?
        }
        None => MetaTrainer::new(config)?,
    })
}

/// Prints how well BPTT's meta-gradient agrees with the true one on `batches` batches.
fn check_meta_gradient<S: TrainingSource>(
    trainer: &MetaTrainer,
    source: &S,
    batches: u64,
) -> anyhow::Result<()> {
    let cfg = &trainer.config;
    let name = if cfg.meta_gradient == MetaGradient::SecondOrder {
        "second-order BPTT"
    } else {
        "BPTT"
    };
    let mut cosines = Vec::new();
    let mut summed: Option<GradientAgreement> = None;
    for epoch in 0..batches {
        let batch = source.draw(epoch, cfg.batch);
        let a = trainer.meta_gradient_agreement(&batch, 1e-3)?;
        summed = Some(match summed {
            None => a.clone(),
            Some(s) => s.plus(&a),
        });
        eprintln!(
            "batch {epoch}: cosine({name}, true) {:>7.3}  |{name}| / |true| {:.3}",
            a.cosine(),
            a.norm_ratio()
        );
        cosines.push(a.cosine());
    }
    let mean = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
    println!(
        "mean cosine between the {name} meta-gradient (unrolls of {}, {} meta-loss) and the true one over the output layer, {} batches: {mean:.3}",
        cfg.unroll, cfg.meta_loss, batches
    );
    if let Some(s) = summed {
        println!(
            "cosine between the two summed over the {batches} batches (the direction training follows on average): {:.3}",
            s.cosine()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match l2l::cli::parse_args::<Args>("meta-train") {
        Ok(args) => l2l::cli::finish_in_job("meta-train", |ranks| run(args, ranks)),
        Err(code) => code,
    }
}

//! `meta-train`: trains a learned LSTM optimizer by truncated BPTT and writes a checkpoint.

use anyhow::Context;
use l2l::learned::LearnedOptimizer;
use l2l::meta::{
    check_ranks, resume_path, train, GradientAgreement, MetaGradient, MetaTrainConfig,
    MetaTrainParams, MetaTrainer, Progress, Stopping,
};
use l2l::problems::{load_companion, FromSpec, ProblemSet, SourceVisitor, Spec, TrainingSource};
use l2l::ranks::Ranks;
use std::process::ExitCode;
use std::time::Instant;

mod flags;
use flags::{params, Args};

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
    let first_epoch = trainer.epoch;
    let best = train(
        trainer,
        &source,
        validation.as_ref(),
        &args.output,
        ranks,
        Stopping {
            patience: args.patience,
        },
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
    if !leader {
        return Ok(());
    }
    let reached = last.as_ref().map_or(first_epoch, |p| p.epoch);
    if let (Some(patience), true) = (args.patience, reached < config.epochs) {
        eprintln!(
            "meta-train: stopped at epoch {reached} of {}: {patience} validations in a row found \
             no better weights than epoch {}'s",
            config.epochs, best.epoch
        );
    }
    let rate = last.map(|p| p.optimizee_steps_per_second).unwrap_or(0.0);
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

//! `evaluate`: runs learned or hand-designed optimizers on a spec and writes trajectories.

use anyhow::Context;
use clap::Parser;
use l2l::baselines::{lbfgs::LBFGS_HISTORIES, Baseline};
use l2l::evaluation::{
    refuse_seen_data, run_observed, run_with_held_out, tune_choices, validate_steps, write_tuning,
    Curves, FinalPoints, LrGrid, ValidationMeasure,
};
use l2l::inspection::{probe, ProbeRequest};
use l2l::io::describe;
use l2l::learned::OptimizerChoice;
use l2l::problems::{load_companion, FromSpec, SetVisitor, Spec};
use l2l::proposals::write_proposals;
use l2l::ranks::Ranks;
use l2l::trajectory::write_trajectories;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run optimizers on every problem of a spec and write their learning curves as a parquet
/// trajectory file (columns optimizer, problem, step, loss, lr; step 0 is the loss at θ0).
///
/// Optimizers: lstm:<checkpoint.npz>, sgd, nag, rmsprop, adam. A baseline takes its learning
/// rate from NAME=LR, else --lr, else --tune, else Torch7's default. Other hyperparameters are
/// Torch7 optim's defaults: NAG momentum 0.9; RMSprop alpha 0.99, epsilon 1e-8; Adam beta1 0.9,
/// beta2 0.999, epsilon 1e-8.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Problem spec to run on.
    #[arg(long, required_unless_present = "serve_updates")]
    spec: Option<PathBuf>,
    /// Instead of a spec: step a training loop in another process with the one -O optimizer,
    /// over standard input and output (docs/formats.md, "Learned updates").
    #[arg(long = "serve-updates", conflicts_with_all = ["spec", "output", "tune"])]
    serve_updates: bool,
    /// Optimizers to run (repeat the flag or separate with commas): lstm:<checkpoint.npz>, sgd,
    /// nag, rmsprop, adam, or lbfgs (L-BFGS without a line search; --tune tunes its history of
    /// pairs with its rate, and lbfgs-mK fixes the history at K), each optionally NAME=LR.
    #[arg(
        long = "optimizer",
        short = 'O',
        value_delimiter = ',',
        required = true
    )]
    optimizers: Vec<String>,
    /// Optimizer steps per problem. Several horizons, comma-separated (e.g. 100,200), each
    /// with its own -o (and --tuning-output), in the same order: the runs are made once, to the
    /// longest, and each output holds what a run with that --steps alone writes, bit for bit
    /// (the baselines tuned at its horizon).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    steps: Vec<usize>,
    /// Learning rate for every baseline given without NAME=LR.
    #[arg(long)]
    lr: Option<f64>,
    /// Tune each baseline without an explicit rate: try the rates of --lr-grid on
    /// --validation and keep the rate with the best mean final loss.
    #[arg(long, requires = "validation")]
    tune: bool,
    /// The rates --tune tries: 10^(k/PER_DECADE) from LO to HI (the default: 1e-4 … 10 in
    /// quarter decades, 21 rates).
    #[arg(
        long = "lr-grid",
        value_name = "LO:HI:PER_DECADE",
        default_value = "1e-4:10:4"
    )]
    lr_grid: String,
    /// Validation spec for --tune (never the test spec).
    #[arg(long)]
    validation: Option<PathBuf>,
    /// Steps to tune over (default: --steps).
    #[arg(long = "tune-steps")]
    tune_steps: Option<usize>,
    /// Judge each rate by the mean loss over the last W tuning steps rather than the final loss
    /// alone (W = 1), as meta-train's --validation-window judges its checkpoints.
    #[arg(long = "validation-window", value_name = "W", default_value_t = 1)]
    validation_window: usize,
    /// Where to write the tuning grid (parquet: optimizer, lr, validation_final_loss, chosen);
    /// one per --steps horizon.
    #[arg(long = "tuning-output")]
    tuning_output: Vec<PathBuf>,
    /// Output trajectory file (.parquet); one per --steps horizon.
    #[arg(short, long, required_unless_present = "serve_updates")]
    output: Vec<PathBuf>,
    /// On problems with held-out data (CIFAR-10's test images), record the loss there at step
    /// 0, every N steps and at the last step, in the column test_loss (0: never).
    #[arg(long = "test-every", value_name = "N", default_value_t = 10)]
    test_every: usize,
    /// Write each run's final image to this folder as a PNG, `<optimizer>-<run>.png`, for
    /// problems whose parameters are an image (neural art: content | result | style),
    /// enlarged by repeating pixels to at least 256 px tall.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Appendix B: for these coordinates (comma-separated) of run --probe-run, record the
    /// update the first -O optimizer proposes along its own trajectory and the updates every
    /// other -O optimizer would propose at the same iterates from the same gradients, its state
    /// fed the same gradients, to --probe-output.
    #[arg(long, value_delimiter = ',', requires = "probe_output")]
    probe: Vec<usize>,
    /// The run (problem) of the spec that --probe follows.
    #[arg(long = "probe-run", default_value_t = 0)]
    probe_run: usize,
    /// Steps (comma-separated) at which --probe also asks every optimizer what it would propose
    /// for each of --probe-gradients, its state left as the trajectory made it (Figures 11-13).
    #[arg(long = "probe-sweep-steps", value_delimiter = ',')]
    probe_sweep_steps: Vec<usize>,
    /// The swept gradient values, LO:HI:N (N evenly spaced values from LO to HI).
    #[arg(
        long = "probe-gradients",
        default_value = "-1:1:41",
        allow_hyphen_values = true
    )]
    probe_gradients: String,
    /// The proposals of --probe (parquet: step, coordinate, gradient, update, optimizer,
    /// swept).
    #[arg(long = "probe-output", requires = "probe")]
    probe_output: Option<PathBuf>,
    /// Instead of the path the spec records (its checksum must match): the dataset of an MLP
    /// spec, the CIFAR-10 folder of a conv spec, the feature network of a neural-art spec.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn run(args: Args, ranks: &dyn Ranks) -> anyhow::Result<()> {
    l2l::cli::init_threads_in_job(args.threads, ranks)?;
    let Some(spec) = args.spec.as_deref() else {
        anyhow::ensure!(
            args.optimizers.len() == 1,
            "--serve-updates serves one -O optimizer"
        );
        let (choice, _) = l2l::cli::parse_optimizer(args.optimizers[0].trim(), args.lr)?;
        let (input, output) = (std::io::stdin().lock(), std::io::stdout().lock());
        let steps = l2l::learned::serve::serve_updates(&choice, input, output)?;
        eprintln!("evaluate: served {steps} steps of {}", choice.label());
        return Ok(());
    };
    l2l::cli::check_horizons(
        &args.steps,
        args.output.len(),
        args.tuning_output.len(),
        &[
            (args.probe_output.is_some(), "--probe"),
            (args.images.is_some(), "--images"),
            (args.tune_steps.is_some(), "--tune-steps"),
        ],
    )?;
    let grid = LrGrid::parse(&args.lr_grid)?;
    if let Some(lr) = args.lr {
        l2l::baselines::validate_lr(lr)?;
    }
    // Claimed first: a checkpoint of `-` is read only after standard input is checked.
    let checkpoints: Vec<PathBuf> = args
        .optimizers
        .iter()
        .filter_map(|o| o.trim().strip_prefix("lstm:").map(PathBuf::from))
        .collect();
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--spec", spec)];
    inputs.extend(args.validation.as_deref().map(|p| ("--validation", p)));
    inputs.extend(args.data.as_deref().map(|p| ("--data", p)));
    inputs.extend(
        checkpoints
            .iter()
            .map(|p| ("a checkpoint of -O", p.as_path())),
    );
    let mut outputs: Vec<(&str, &std::path::Path)> = args
        .output
        .iter()
        .map(|p| ("--output", p.as_path()))
        .collect();
    outputs.extend(args.probe_output.as_deref().map(|p| ("--probe-output", p)));
    outputs.extend(
        args.tuning_output
            .iter()
            .map(|p| ("--tuning-output", p.as_path())),
    );
    let _claims = l2l::cli::claim_outputs_in_job(&outputs, &inputs, ranks)?;
    if let Some(dir) = &args.images {
        anyhow::ensure!(
            ranks.size() == 1,
            "--images keeps every run's final point, which runs in one process; run it without \
             mpirun"
        );
        anyhow::ensure!(
            dir.is_dir(),
            "--images {}: no such folder; create it first",
            dir.display()
        );
    }
    let mut choices = Vec::new();
    for arg in &args.optimizers {
        choices.push(l2l::cli::parse_optimizer(arg.trim(), args.lr)?);
    }
    l2l::cli::label_learned_by_file(&mut choices, &args.optimizers)?;
    Spec::load(spec, args.data.as_deref())?.visit(Evaluation {
        args: &args,
        grid,
        choices,
        ranks,
    })
}

/// Evaluation on the problem set of whatever kind the spec is.
struct Evaluation<'a> {
    args: &'a Args,
    grid: LrGrid,
    choices: Vec<(OptimizerChoice, bool)>,
    ranks: &'a dyn Ranks,
}

impl SetVisitor for Evaluation<'_> {
    type Output = anyhow::Result<()>;
    fn visit<P: FromSpec>(self, set: P) -> anyhow::Result<()> {
        evaluate_on(self.args, &self.grid, self.choices, &set, self.ranks)
    }
}

fn evaluate_on<P: FromSpec>(
    args: &Args,
    grid: &LrGrid,
    choices: Vec<(OptimizerChoice, bool)>,
    set: &P,
    ranks: &dyn Ranks,
) -> anyhow::Result<()> {
    // Rank 0 alone prints and writes; every rank runs its share of every run.
    let leader = ranks.is_leader();
    let longest = *args.steps.iter().max().expect("clap gives a default");
    l2l::evaluation::validate_run_size(set.count(), longest)?;
    let learned: Vec<OptimizerChoice> = choices.iter().map(|(c, _)| c.clone()).collect();
    let spec = args.spec.as_deref().expect("a spec is evaluated");
    refuse_seen_data(&learned, set, spec)?;
    // Checked before any run, as everything else.
    let probe_request = match &args.probe_output {
        Some(_) => {
            let request = ProbeRequest {
                problem: args.probe_run,
                coordinates: args.probe.clone(),
                steps: longest,
                sweep_steps: args.probe_sweep_steps.clone(),
                sweep_gradients: ProbeRequest::parse_sweep(&args.probe_gradients)?,
            };
            request.validate(set)?;
            Some(request)
        }
        None => None,
    };
    if args.images.is_some() {
        let mut theta0 = vec![0.0; set.dim()];
        set.initial_point(0, &mut theta0);
        anyhow::ensure!(
            set.render(0, &theta0).is_some(),
            "--images needs problems whose parameters are an image (a neural-art spec)"
        );
    }
    // The optimizers of each horizon: the same, but for the rates tuned at that horizon.
    let mut per_horizon = vec![choices; args.steps.len()];
    if args.tune {
        tune_each_horizon(args, grid, set, &mut per_horizon, ranks)?;
    }

    // Longest horizon first, so that a shorter one can take the prefix of the same
    // optimizer's runs (Curves::prefix), which are the same bits as runs of its own.
    let mut order: Vec<usize> = (0..args.steps.len()).collect();
    order.sort_by_key(|&h| std::cmp::Reverse(args.steps[h]));
    let mut curves: Vec<Vec<Curves>> = vec![Vec::new(); args.steps.len()];
    for (n, &h) in order.iter().enumerate() {
        let steps = args.steps[h];
        for (i, (c, _)) in per_horizon[h].iter().enumerate() {
            let shared = order[..n]
                .iter()
                .filter(|&&longer| per_horizon[longer][i].0.lr() == c.lr())
                .find_map(|&longer| curves[longer][i].prefix(steps, args.test_every));
            let run = match (shared, &args.images) {
                (Some(prefix), _) => prefix,
                // Final points are kept only for --images (one horizon).
                (None, Some(dir)) => {
                    let finals = FinalPoints::new(set.count());
                    let curves = run_observed(set, c, steps, args.test_every, &finals, ranks)?;
                    finals.write_images(dir, &curves.label, set)?;
                    eprintln!(
                        "evaluate: wrote {} images of {} to {}",
                        set.count(),
                        curves.label,
                        dir.display()
                    );
                    curves
                }
                (None, None) => run_with_held_out(set, c, steps, args.test_every, ranks)?,
            };
            if leader {
                eprintln!("evaluate: {}", run.progress_line());
            }
            curves[h].push(run);
        }
    }
    if !leader {
        return Ok(());
    }
    if let (Some(path), Some(request)) = (&args.probe_output, probe_request) {
        let all: Vec<OptimizerChoice> = per_horizon
            .swap_remove(0)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let rows = probe(set, &all[0], &all[1..], &request)?;
        write_proposals(path, &rows)
            .with_context(|| format!("writing {}", describe(path, true)))?;
        eprintln!(
            "evaluate: wrote {} proposals at {} coordinates of run {} to {}",
            rows.len(),
            request.coordinates.len(),
            request.problem,
            describe(path, true)
        );
    }
    for (output, runs) in args.output.iter().zip(&curves) {
        write_trajectories(output, runs)
            .with_context(|| format!("writing {}", describe(output, true)))?;
    }
    Ok(())
}

/// Tunes every baseline given without a rate, at each horizon of --steps (one set of runs,
/// to the longest: `tune_horizons`), sets the rates in `per_horizon`, and writes each
/// horizon's --tuning-output.
fn tune_each_horizon<P: FromSpec>(
    args: &Args,
    grid: &LrGrid,
    set: &P,
    per_horizon: &mut [Vec<(OptimizerChoice, bool)>],
    ranks: &dyn Ranks,
) -> anyhow::Result<()> {
    let leader = ranks.is_leader();
    let validation_path = args.validation.as_ref().expect("clap requires it");
    let validation: P = load_companion(validation_path, args.data.as_deref(), set)?;
    let mut measures = Vec::new();
    for &steps in &args.steps {
        let steps = args.tune_steps.unwrap_or(steps);
        validate_steps(steps)?;
        let measure = ValidationMeasure {
            steps,
            window: args.validation_window,
        };
        measure.validate()?;
        measures.push(measure);
    }
    if leader {
        let to_tune: Vec<Baseline> = per_horizon[0]
            .iter()
            .filter_map(|(c, explicit)| match c {
                OptimizerChoice::Baseline { kind, .. } if !explicit => Some(*kind),
                _ => None,
            })
            .collect();
        let names: Vec<String> = to_tune.iter().map(|b| b.tuning_name()).collect();
        let histories = match to_tune.contains(&Baseline::Lbfgs { history: None }) {
            true => format!(" (lbfgs with each history of {LBFGS_HISTORIES:?})"),
            false => String::new(),
        };
        eprintln!(
            "evaluate: tuning {} over {} learning rates{histories} on {} validation problems",
            names.join(", "),
            grid.rates().len(),
            validation.count()
        );
    }
    let tuned = tune_choices(&validation, &per_horizon[0], &measures, grid, ranks)?;
    for (h, ((choices, points), measure)) in tuned.into_iter().zip(&measures).enumerate() {
        // Each horizon is named where there are several.
        let at = match args.steps.len() {
            1 => String::new(),
            _ => format!(" at step {}", measure.steps),
        };
        for p in points.iter().filter(|p| p.chosen && leader) {
            eprintln!(
                "evaluate: {} lr = {} (validation mean {}{at} {:.4})",
                p.optimizer.tuning_name(),
                p.lr,
                measure.describe(),
                p.validation_final_loss
            );
        }
        if let (Some(path), true) = (args.tuning_output.get(h), leader) {
            write_tuning(path, &points, *measure)
                .with_context(|| format!("writing {}", describe(path, true)))?;
        }
        per_horizon[h] = choices;
    }
    Ok(())
}

fn main() -> ExitCode {
    match l2l::cli::parse_args::<Args>("evaluate") {
        Ok(args) => l2l::cli::finish_in_job("evaluate", |ranks| run(args, ranks)),
        Err(code) => code,
    }
}

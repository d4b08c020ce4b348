//! What every binary shares: exit codes, error lines, thread setup and argument parsing of
//! optimizer names.

use crate::baselines::{validate_lr, Baseline, CorrectionForm};
use crate::error::{Error, Result};
use crate::io::{check_stdio, is_stdio, is_written_in_place, replaced_file, OutputLock};
use crate::learned::{LearnedOptimizer, OptimizerChoice};
use crate::ranks::Ranks;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The exit status of a command line the parser refuses (a usage error, as clap and most Unix
/// tools use); errors found after parsing exit 1.
pub const USAGE_ERROR: u8 = 2;

/// Parses the command line. `--help` and `--version` print to standard output and exit 0; a
/// usage error is one line on stderr (`<binary>: error: <what>; see <binary> --help`) and
/// exit status [`USAGE_ERROR`].
pub fn parse_args<T: clap::Parser>(binary: &str) -> Result<T, ExitCode> {
    use clap::error::ErrorKind;
    T::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("{binary}: error: a subcommand is required; see {binary} --help");
            ExitCode::from(USAGE_ERROR)
        }
        _ => {
            // clap's message is its first paragraph (a list of missing arguments may follow
            // the first line); the tip and usage after it are left to --help.
            let text = e.render().to_string();
            let what: Vec<&str> = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty())
                .collect();
            let what = what.join(" ");
            let what = what.trim_start_matches("error: ");
            eprintln!("{binary}: error: {what}; see {binary} --help");
            ExitCode::from(USAGE_ERROR)
        }
    })
}

/// Turns a binary's result into its exit code: errors become one line on stderr
/// (`<binary>: error: <message>: <cause>`) and exit 1; a closed stdout (broken pipe) exits 0.
pub fn finish(binary: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("{binary}: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs a binary's `work` as this process's part of its job ([`crate::ranks::join`]: one
/// process, or a rank of `mpirun -np K`) and turns the result into the exit code as
/// [`finish`] does. Under K > 1 ranks an error on any rank is printed by that rank, naming
/// it, and ends every rank of the job (the other ranks would wait for it forever).
pub fn finish_in_job(
    binary: &str,
    work: impl FnOnce(&dyn Ranks) -> anyhow::Result<()>,
) -> ExitCode {
    let ranks = match crate::ranks::join() {
        Ok(ranks) => ranks,
        Err(e) => return finish(binary, Err(e.into())),
    };
    match work(ranks.as_ref()) {
        Err(e) if ranks.size() > 1 => {
            eprintln!(
                "{binary} (rank {} of {}): error: {}; ending the job",
                ranks.rank(),
                ranks.size(),
                error_line(&e)
            );
            ranks.abort(1)
        }
        result => finish(binary, result),
    }
}

/// The flag that gives a library setting: its name in kebab case (`meta_lr`: `--meta-lr`), but
/// for the settings whose flag says more than their field.
pub fn flag(setting: &str) -> String {
    match setting {
        "loss_from" => "--meta-loss-from".into(),
        s => format!("--{}", s.replace('_', "-")),
    }
}

/// The error and its causes on one line, each cause once: a library error that already
/// shows its cause (e.g. `path: No such file or directory`) is not followed by it again.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<Error>() {
            Some(e) => e.naming_settings(&flag),
            None => cause.to_string(),
        };
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Sets the number of worker threads (0 = one per core) and keeps BLAS single-threaded.
pub fn init_threads(threads: usize) -> Result<()> {
    crate::init_blas_threads(1);
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| Error::Config(format!("--threads: {e}")))?;
    }
    Ok(())
}

/// [`init_threads`] for a rank of a job. `--threads 0` means the cores this process may run
/// on; a rank that may run on every core of its machine (started with `--bind-to none`)
/// shares them with the other ranks there, so K ranks do not start K threads per core.
/// (Open MPI binds each of 1 or 2 ranks to a core, and more to a socket, by default; Slurm
/// binds each to its `--cpus-per-task`.)
pub fn init_threads_in_job(threads: usize, ranks: &dyn Ranks) -> Result<()> {
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match (threads, ranks.size()) {
        (0, k) if k > 1 && allowed == online_cpus() => {
            (allowed / crate::ranks::ranks_on_this_machine().max(1)).max(1)
        }
        _ => threads,
    };
    init_threads(threads)
}

/// The machine's online CPUs (1 where /sys does not say).
fn online_cpus() -> usize {
    cpus_in_list(&std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default())
}

/// The CPUs of a Linux CPU list such as `0-7,9` (at least 1).
fn cpus_in_list(text: &str) -> usize {
    text.trim()
        .split(',')
        .filter_map(|r| match r.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?),
            None => r.parse::<usize>().ok().map(|_| 1),
        })
        .sum::<usize>()
        .max(1)
}

/// The file a path names, as an absolute path with links resolved, whether or not the file
/// exists yet; an error if its folder does not exist.
fn canonical(path: &Path) -> Result<std::path::PathBuf> {
    if path.exists() {
        return std::fs::canonicalize(path).map_err(|e| Error::io(path, e));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).map_err(|_| {
        Error::bad_file(
            path,
            format!("folder {} does not exist; create it first", dir.display()),
        )
    })?;
    Ok(dir.join(path.file_name().unwrap_or_default()))
}

/// Claims a run's outputs before any work: refuses an output that is one of the inputs or
/// another output (paths are compared as the files they name, so `./a.npz` and `a.npz` are
/// one file), or whose folder is missing or not writable, or that another run is writing, and
/// checks the uses of `-` (standard input and output; see [`check_stdio`]).
/// Each entry is (the flag that names it, the path). The claims last until the returned locks
/// are dropped, at exit.
pub fn claim_outputs(
    outputs: &[(&str, &Path)],
    inputs: &[(&str, &Path)],
) -> Result<Vec<OutputLock>> {
    check_stdio(outputs, inputs)?;
    let inputs: Vec<(&str, std::path::PathBuf)> = inputs
        .iter()
        .filter(|(_, p)| !is_stdio(p))
        .filter_map(|(flag, p)| canonical(p).ok().map(|c| (*flag, c)))
        .collect();
    let mut seen: Vec<(&str, std::path::PathBuf)> = Vec::new();
    for (flag, path) in outputs {
        if is_written_in_place(path) {
            // A terminal or pipe behind /dev/stdout may have no name to compare.
            continue;
        }
        let c = canonical(path)?;
        if c.is_dir() {
            return Err(Error::Config(format!(
                "{flag} {} is a folder; name a file",
                path.display()
            )));
        }
        if let Some((other, _)) = inputs.iter().chain(&seen).find(|(_, p)| *p == c) {
            return Err(Error::Config(format!(
                "{flag} {} is the same file as {other}; writing it would destroy that input, \
                 so choose another output",
                path.display()
            )));
        }
        seen.push((flag, c));
    }
    // Standard output, a device, pipe or socket is written in place, and has no folder of
    // ours to lock in.
    outputs
        .iter()
        .filter(|(_, path)| !is_written_in_place(path))
        .map(|(flag, path)| OutputLock::claim(flag, &replaced_file(path)))
        .collect()
}

/// [`claim_outputs`] for a rank of a job: rank 0 alone writes the outputs, so it alone claims
/// them. Under K > 1 ranks no input may be standard input, which the launcher hands to rank 0
/// only.
pub fn claim_outputs_in_job(
    outputs: &[(&str, &Path)],
    inputs: &[(&str, &Path)],
    ranks: &dyn Ranks,
) -> Result<Vec<OutputLock>> {
    if ranks.size() > 1 {
        if let Some((flag, _)) = inputs.iter().find(|(_, p)| is_stdio(p)) {
            return Err(Error::Config(format!(
                "{flag} is - (standard input), which mpirun hands to rank 0 only; under mpirun \
                 name a file"
            )));
        }
    }
    if ranks.is_leader() {
        claim_outputs(outputs, inputs)
    } else {
        Ok(Vec::new())
    }
}

/// Checks `evaluate`'s horizons (`--steps`) against its outputs before anything is read: each
/// horizon valid, one `-o` (and, if any, one `--tuning-output`) per horizon, no horizon twice,
/// and one horizon with any of the `single_run` flags given (each: whether given, its name).
pub fn check_horizons(
    steps: &[usize],
    outputs: usize,
    tuning_outputs: usize,
    single_run: &[(bool, &str)],
) -> Result<()> {
    for &s in steps {
        crate::evaluation::validate_steps(s)?;
    }
    let horizons = steps.len();
    let list = steps
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let refuse = |msg: String| Err(Error::Config(msg));
    if outputs != horizons {
        return refuse(format!(
            "--steps {list} gives {horizons} horizon(s) but -o names {outputs} output(s); give \
             one -o per horizon, in the same order"
        ));
    }
    if tuning_outputs != 0 && tuning_outputs != horizons {
        return refuse(format!(
            "--steps {list} gives {horizons} horizon(s) but --tuning-output names \
             {tuning_outputs}; give one per horizon, in the same order, or none"
        ));
    }
    let mut sorted = steps.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != horizons {
        return refuse(format!("--steps {list} repeats a horizon; give each once"));
    }
    match single_run.iter().find(|(given, _)| *given && horizons > 1) {
        Some((_, flag)) => refuse(format!(
            "{flag} follows one run; give --steps a single horizon with it, not {list}"
        )),
        None => Ok(()),
    }
}

/// Parses an optimizer argument: `lstm:<checkpoint>`, or a baseline name with an optional
/// learning rate, `adam` or `adam=0.1`. `default_lr` applies to a baseline given without one.
pub fn parse_optimizer(arg: &str, default_lr: Option<f64>) -> Result<(OptimizerChoice, bool)> {
    if let Some(path) = arg.strip_prefix("lstm:") {
        let optimizer = LearnedOptimizer::load(Path::new(path))?;
        // Labelled by its architecture ("lstm", "lstm-gac"); a learned correction to a rule
        // as one ("nag+lstm", or "nagxlstm" for a step scaled by the LSTM), not as the
        // paper's pure LSTM.
        let network = optimizer
            .networks
            .iter()
            .next()
            .map(|n| n.architecture.label());
        let network = network.unwrap_or("lstm");
        let label = match &optimizer.base {
            Some(base) if base.form == CorrectionForm::Scaled => {
                format!("{}x{network}", base.kind.name())
            }
            Some(base) => format!("{}+{network}", base.kind.name()),
            None => network.into(),
        };
        return Ok((
            OptimizerChoice::Learned {
                label,
                optimizer: Arc::new(optimizer),
            },
            true,
        ));
    }
    let (name, lr) = match arg.split_once('=') {
        Some((n, v)) => {
            let lr: f64 = v.parse().map_err(|_| {
                Error::Config(format!("optimizer '{arg}': '{v}' is not a learning rate"))
            })?;
            (n, Some(lr))
        }
        None => (arg, None),
    };
    let kind = Baseline::evaluated_from_name(name).ok_or_else(|| {
        Error::Config(format!(
            "unknown optimizer '{name}'; use one of lstm:<checkpoint.npz>, sgd, nag, rmsprop, adam, lbfgs or lbfgs-mK for a history of K pairs (optionally NAME=LR)"
        ))
    })?;
    let explicit = lr.is_some() || default_lr.is_some();
    let lr = lr.or(default_lr).unwrap_or(kind.default_lr());
    validate_lr(lr)?;
    Ok((OptimizerChoice::Baseline { kind, lr }, explicit))
}

/// Several learned optimizers in one trajectory file are told apart by their checkpoints' file
/// stems (`lstm:base`, `lstm:long`); a single one is plain `lstm`, or `<rule>+lstm` when it
/// corrects a rule (`meta-train --base`). Two optimizers with one
/// label could not be told apart in the trajectory, so that is an error.
pub fn label_learned_by_file(
    choices: &mut [(OptimizerChoice, bool)],
    args: &[String],
) -> Result<()> {
    name_learned_by_file(choices, args);
    let mut seen = std::collections::HashSet::new();
    for (choice, _) in choices.iter() {
        let label = choice.label();
        if !seen.insert(label.clone()) {
            return Err(Error::Config(format!(
                "two optimizers would both be labelled '{label}' in the trajectory; \
                 give each baseline once and checkpoints distinct file names"
            )));
        }
    }
    Ok(())
}

fn name_learned_by_file(choices: &mut [(OptimizerChoice, bool)], args: &[String]) {
    let learned = choices
        .iter()
        .filter(|(c, _)| matches!(c, OptimizerChoice::Learned { .. }))
        .count();
    if learned < 2 {
        return;
    }
    for ((choice, _), arg) in choices.iter_mut().zip(args) {
        if let (OptimizerChoice::Learned { label, .. }, Some(path)) =
            (choice, arg.trim().strip_prefix("lstm:"))
        {
            let stem = Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            *label = format!("lstm:{stem}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_baselines_and_rejects_unknown_names() {
        let (c, explicit) = parse_optimizer("adam=0.5", None).unwrap();
        assert_eq!(
            (c.label(), c.lr(), explicit),
            ("adam".into(), Some(0.5), true)
        );
        let (c, explicit) = parse_optimizer("rmsprop", None).unwrap();
        assert_eq!((c.lr(), explicit), (Some(1e-2), false));
        let (c, explicit) = parse_optimizer("lbfgs", None).unwrap();
        assert_eq!(
            (c.label(), c.lr(), explicit),
            ("lbfgs".into(), Some(1.0), false)
        );
        let e = parse_optimizer("bfgs", None).err().unwrap().to_string();
        assert!(e.contains("unknown optimizer 'bfgs'"), "{e}");
        assert!(parse_optimizer("sgd=-1", None).is_err());
    }

    #[test]
    fn error_line_names_each_cause_once() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(Error::io("data.csv.gz", missing)).context("reading the spec");
        assert_eq!(
            error_line(&e),
            "reading the spec: data.csv.gz: No such file"
        );
    }

    #[test]
    fn a_cpu_list_counts_its_ranges_and_singles() {
        assert_eq!(cpus_in_list("0-1\n"), 2);
        assert_eq!(cpus_in_list("0-7,9,12-13"), 11);
        assert_eq!(cpus_in_list(""), 1);
    }
}

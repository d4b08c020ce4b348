//! The executor of meta-training (argmin style): runs epochs, validation and early stopping,
//! reports progress to an observer, and keeps the resume state and the checkpoint.

use super::config::MetaTrainConfig;
use super::trainer::{EpochReport, MetaTrainer};
use super::workspace::Workspace;
use crate::error::{Error, Result};
use crate::io::{companion, write_npz, Npz};
use crate::learned::LearnedOptimizer;
use crate::problems::{ProblemSet, TrainingSource};
use crate::ranks::Ranks;
use crate::training_log::{log_path, LogRow, TrainingLog};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress of a run, handed to the observer after every epoch.
#[derive(Clone, Debug)]
pub struct Progress {
    pub epoch: u64,
    pub epochs: u64,
    pub report: EpochReport,
    /// Set on the epochs that ran validation.
    pub validation_loss: Option<f64>,
    pub best_validation_loss: Option<f64>,
    pub best_epoch: Option<u64>,
    pub skipped_unrolls: u64,
    pub seconds: f64,
    /// Optimizee steps per second over this session (problems × steps per epoch / time).
    pub optimizee_steps_per_second: f64,
    pub resumed_from: Option<u64>,
}

/// When a run stops before its epoch budget: early stopping after `patience` validations in a
/// row that found no better weights (None: every epoch of the budget runs). It is not a
/// setting of the training itself, so a run may resume with another patience, or none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stopping {
    pub patience: Option<u64>,
}

impl Stopping {
    /// Whether a run at `epoch`, whose best weights are those of `best_epoch` (None: no
    /// validation was finite), validating every `eval_every` epochs, has spent its patience.
    pub fn spent(&self, epoch: u64, best_epoch: Option<u64>, eval_every: u64) -> bool {
        self.patience.is_some_and(|p| {
            epoch
                >= best_epoch
                    .unwrap_or(0)
                    .saturating_add(p.saturating_mul(eval_every))
        })
    }
}

/// The resume-state file kept beside a checkpoint. A checkpoint written to standard output
/// (`-`), a pipe or a device has no folder of its own to keep one in, so that run keeps none
/// and cannot be resumed.
pub fn resume_path(output: &Path) -> Option<PathBuf> {
    companion(output, ".resume.npz")
}

/// Runs `trainer` to `config.epochs`, or until `stopping` says so, validating the starting
/// point and then every `eval_every` epochs, and keeping the best weights. The resume state is
/// saved at every validation, so a killed run loses at most `eval_every` epochs; the
/// checkpoint at `output` is written once training is complete.
/// Under K > 1 `ranks` every rank runs this with the same arguments and holds the same state
/// throughout; rank 0 alone writes the files and is shown the progress.
pub fn train<Src: TrainingSource, V: ProblemSet>(
    mut trainer: MetaTrainer,
    source: &Src,
    validation: Option<&V>,
    output: &Path,
    ranks: &dyn Ranks,
    stopping: Stopping,
    mut observe: impl FnMut(&Progress),
) -> Result<LearnedOptimizer> {
    let leader = ranks.is_leader();
    let cfg = trainer.config.clone();
    let state_path = resume_path(output);
    let describe = source.describe();
    let resumed_from = (trainer.epoch > 0).then_some(trainer.epoch);
    let start = Instant::now();
    let seconds_before = trainer.log.seconds_so_far();
    let mut optimizee_steps = 0.0;
    let mut workspace: Option<Workspace<<Src::Set as ProblemSet>::Scratch>> = None;
    // The starting point is a candidate too: a correction to a tuned rule (--base) or an --init
    // checkpoint starts as a working optimizer, and early stopping must not return one that
    // validates worse than where training began.
    if let (0, None, Some(v)) = (trainer.epoch, &trainer.best, validation) {
        let loss = trainer.validate(v, ranks)?;
        if loss.is_finite() {
            trainer.best = Some(trainer.current(loss));
        }
        trainer.log.rows.push(LogRow {
            epoch: 0,
            training_mean_loss: f64::NAN,
            training_final_loss: f64::NAN,
            validation_loss: Some(loss),
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    let best_epoch = |t: &MetaTrainer| t.best.as_ref().map(|b| b.epoch);
    while trainer.epoch < cfg.epochs
        && !stopping.spent(trainer.epoch, best_epoch(&trainer), cfg.eval_every)
    {
        let batch = source.draw(trainer.epoch, cfg.batch);
        optimizee_steps += cfg.optimizee_steps_at(trainer.epoch) as f64;
        if workspace.is_none() {
            if let Some(available) = crate::kernels::machine::available_memory_bytes() {
                Workspace::check_fits(&cfg, &batch, ranks, available)?;
            }
            workspace = Some(Workspace::new(&cfg, &batch, ranks)?);
        }
        let ws = workspace.as_mut().expect("made above");
        let report = trainer.train_epoch(&batch, ws, ranks);
        // A fault ends the run here, before the resume state is saved: it keeps the last
        // good epoch's.
        batch.fault()?;
        let epoch = trainer.epoch;
        let due = epoch % cfg.eval_every == 0 || epoch == cfg.epochs;
        let mut validation_loss = None;
        if due {
            let loss = match validation {
                Some(v) => trainer.validate(v, ranks)?,
                None => report.final_loss,
            };
            validation_loss = Some(loss);
            let better = match &trainer.best {
                None => true,
                Some(b) => loss < b.validation_loss || !b.validation_loss.is_finite(),
            };
            if better && (loss.is_finite() || trainer.best.is_none()) {
                trainer.best = Some(trainer.current(loss));
            }
        }
        trainer.log.rows.push(LogRow {
            epoch,
            training_mean_loss: report.mean_loss,
            training_final_loss: report.final_loss,
            validation_loss,
            seconds: seconds_before + start.elapsed().as_secs_f64(),
        });
        if due && leader {
            if let Some(path) = &state_path {
                trainer.save_state(path, &describe)?;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let progress = Progress {
            epoch,
            epochs: cfg.epochs,
            report,
            validation_loss,
            best_validation_loss: trainer.best.as_ref().map(|b| b.validation_loss),
            best_epoch: trainer.best.as_ref().map(|b| b.epoch),
            skipped_unrolls: trainer.skipped_unrolls,
            seconds,
            optimizee_steps_per_second: optimizee_steps / seconds.max(1e-9),
            resumed_from,
        };
        if leader {
            observe(&progress);
        }
    }
    let ran = trainer.epoch > resumed_from.unwrap_or(0);
    if ran && trainer.updates == 0 {
        if let (None, Some(path), true) = (resumed_from, &state_path, leader) {
            let _ = std::fs::remove_file(path);
        }
        return Err(Error::Other(format!(
            "nothing was trained: all {} unrolls were skipped because the loss or the \
             meta-gradient was NaN or Inf; check the training problems (their size, NaN or Inf) \
             and try a lower `meta_lr` or `output_scale`. No checkpoint was written",
            trainer.skipped_unrolls
        )));
    }
    let best = LearnedOptimizer {
        trained_on: source.data_split(),
        ..match trainer.best.clone() {
            Some(b) => b,
            None => trainer.current(f64::NAN),
        }
    };
    if leader {
        best.save(output)?;
        if let Some(path) = log_path(output) {
            trainer.log.write(&path, Some(best.epoch))?;
        }
    }
    Ok(best)
}

impl MetaTrainer {
    /// Writes everything needed to continue this run: current and best weights, the Adam
    /// state, the epoch (which fixes the random streams of every later epoch) and the settings.
    pub fn save_state(&self, path: &Path, source: &str) -> Result<()> {
        write_npz(path, |a| {
            self.current(f64::NAN).add_to(a, "");
            if let Some(best) = &self.best {
                best.add_to(a, "best_");
            }
            a.add("adam_m", ndarray::Array1::from(self.adam_m.clone()));
            a.add("adam_v", ndarray::Array1::from(self.adam_v.clone()));
            a.scalar_i64("adam_t", self.adam_t as i64);
            a.scalar_i64("skipped_unrolls", self.skipped_unrolls as i64);
            let (epochs, values) = self.log.to_arrays();
            a.add("log_epoch", ndarray::Array1::from(epochs));
            a.add(
                "log_values",
                ndarray::Array2::from_shape_vec(
                    (values.len(), 4),
                    values.into_iter().flatten().collect(),
                )
                .expect("four values per row"),
            );
            a.add(
                "settings",
                ndarray::Array1::from(self.config.fingerprint(source).into_bytes()),
            );
            Ok(())
        })
    }

    /// Continues a run from [`MetaTrainer::save_state`]'s file; its settings must match.
    pub fn resume(config: MetaTrainConfig, path: &Path, source: &str) -> Result<Self> {
        let mut t = MetaTrainer::new(config)?;
        let mut npz = Npz::open(path)?;
        let saved = npz.text("settings")?;
        let wanted = t.config.fingerprint(source);
        let earlier = saved == super::fingerprint::earlier_record(t.config.settings(), source);
        if saved != wanted && !earlier {
            let detail = match super::fingerprint::differing_settings(&saved, &wanted) {
                Some(names) => format!(
                    "resume state was made with other settings ({} differ); delete it or pass \
                     `restart`",
                    if names.is_empty() {
                        "their form".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
                None => "resume state was made by an earlier version of l2l with other settings; \
                         delete it or pass `restart`"
                    .to_string(),
            };
            return Err(Error::bad_file(path, detail));
        }
        let current = LearnedOptimizer::read_from(&mut npz)?;
        if current.networks != t.networks {
            return Err(Error::bad_file(
                path,
                "resume state has another architecture; pass `restart`",
            ));
        }
        t.weights = current.weights.clone();
        t.epoch = current.epoch;
        if npz.has("best_epoch") {
            t.best = Some(LearnedOptimizer::read_prefixed(
                &mut npz, "best_", &current,
            )?);
        }
        let n = t.weights.len();
        for (name, dst) in [("adam_m", &mut t.adam_m), ("adam_v", &mut t.adam_v)] {
            let a = npz.array::<f32>(name)?;
            if a.len() != n {
                return Err(Error::bad_file(
                    path,
                    format!("'{name}' has {} values, expected {n}", a.len()),
                ));
            }
            // Meta-Adam's moments are finite, and its second moments not negative, in every
            // state meta-train writes; others would turn every update into NaN.
            if a.iter()
                .any(|x| !x.is_finite() || (name == "adam_v" && *x < 0.0))
            {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "'{name}' holds NaN, infinite or negative values, which meta-train never \
                         writes; delete it or pass `restart`"
                    ),
                ));
            }
            *dst = a.iter().copied().collect();
        }
        let count = |npz: &mut Npz, name: &str| -> Result<u64> {
            let v = npz.scalar(name)?;
            if !(v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53)) {
                return Err(Error::bad_file(
                    path,
                    format!("'{name}' must be a count (a whole number from 0), found {v}"),
                ));
            }
            Ok(v as u64)
        };
        t.adam_t = count(&mut npz, "adam_t")?;
        t.skipped_unrolls = count(&mut npz, "skipped_unrolls")?;
        // A resume state from before the log existed continues with an empty one.
        if npz.has("log_epoch") {
            let epochs = npz.array::<i64>("log_epoch")?;
            let values = npz.array::<f64>("log_values")?;
            if values.ndim() != 2 || values.shape() != [epochs.len(), 4] {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "'log_values' has shape {:?}, expected [{}, 4]",
                        values.shape(),
                        epochs.len()
                    ),
                ));
            }
            let flat: Vec<f64> = values.iter().copied().collect();
            let rows: Vec<[f64; 4]> = flat
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect();
            let epochs: Vec<i64> = epochs.iter().copied().collect();
            t.log = TrainingLog::from_arrays(&epochs, &rows);
        }
        Ok(t)
    }
}

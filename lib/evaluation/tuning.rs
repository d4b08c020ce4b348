//! Tuning the baselines' learning rates on validation problems (§3): the grid, the measure a
//! validation run is judged by, and the tuning table.

use super::run;
use crate::baselines::Baseline;
use crate::error::{Error, Result};
use crate::io::table::{write_table_with_metadata, Column};
use crate::learned::OptimizerChoice;
use crate::problems::ProblemSet;
use crate::ranks::{Gathered, Ranks};
use rayon::prelude::*;
use std::path::Path;

/// A learning-rate grid 10^(k/per_decade) for k = from … to (`--lr-grid LO:HI:PER_DECADE`).
/// The default is `--tune`'s grid, 1e-4 to 10 in quarter decades: finer than the half decades
/// the paper's comparison needs, so baselines are not handicapped by a coarse grid. Problems
/// whose runs cost too much for its 21 rates (the CIFAR-10 conv net) take a coarser one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrGrid {
    from: i32,
    to: i32,
    per_decade: i32,
}

impl Default for LrGrid {
    fn default() -> Self {
        LrGrid {
            from: -16,
            to: 4,
            per_decade: 4,
        }
    }
}

impl LrGrid {
    /// Parses `LO:HI:PER_DECADE`, e.g. `1e-4:10:4` (the default) or `1e-3:1:2`; LO and HI must
    /// lie on the grid of PER_DECADE (1 to 8) points a decade.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Config(format!(
                "`lr_grid` {text:?}: {why}; expected LO:HI:PER_DECADE, e.g. 1e-4:10:4"
            ))
        };
        let parts: Vec<&str> = text.split(':').map(str::trim).collect();
        let [lo, hi, per] = parts[..] else {
            return Err(bad("three fields are needed"));
        };
        let per_decade: i32 = per
            .parse()
            .ok()
            .filter(|p| (1..=8).contains(p))
            .ok_or_else(|| bad("PER_DECADE must be an integer from 1 to 8"))?;
        let exponent = |v: &str| -> Result<i32> {
            let x: f64 = v
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x > 0.0)
                .ok_or_else(|| bad("LO and HI must be positive numbers"))?;
            let k = (x.log10() * per_decade as f64).round();
            if (10f64.powf(k / per_decade as f64) / x - 1.0).abs() > 1e-6 || k.abs() > 100.0 {
                return Err(bad(&format!(
                    "{v} is not 10^(k/{per_decade}) for an integer k"
                )));
            }
            Ok(k as i32)
        };
        let (from, to) = (exponent(lo)?, exponent(hi)?);
        if from > to {
            return Err(bad("LO must not exceed HI"));
        }
        let grid = LrGrid {
            from,
            to,
            per_decade,
        };
        for lr in grid.rates() {
            crate::baselines::validate_lr(lr)?;
        }
        Ok(grid)
    }

    pub fn rates(&self) -> Vec<f64> {
        (self.from..=self.to)
            .map(|k| 10f64.powf(k as f64 / self.per_decade as f64))
            .collect()
    }
}

/// One grid point of a tuning run.
#[derive(Clone, Debug)]
pub struct TuningPoint {
    pub optimizer: Baseline,
    pub lr: f64,
    pub validation_final_loss: f64,
    pub chosen: bool,
}

/// What a validation run is judged by: the mean loss over its problems and its last `window`
/// of `steps` steps (`window` 1: the final loss, as the paper chose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidationMeasure {
    pub steps: usize,
    pub window: usize,
}

impl ValidationMeasure {
    /// Refuses a window that is empty or longer than the run.
    pub fn validate(&self) -> Result<()> {
        if self.window == 0 || self.window > self.steps {
            return Err(Error::setting(
                "validation_window",
                format!(
                    "between 1 and the steps of a validation run ({})",
                    self.steps
                ),
                self.window,
            ));
        }
        Ok(())
    }
    /// "final loss", or "loss over the last W steps", for progress lines.
    pub fn describe(&self) -> String {
        match self.window {
            1 => "final loss".into(),
            w => format!("loss over the last {w} steps"),
        }
    }
}

/// Picks each baseline's learning rate from `grid` by the best `measure` on the validation
/// set. Every (baseline, rate) pair runs in parallel; under K > 1 `ranks`, each rank runs its
/// share of the pairs and every rank gets every measure.
pub fn tune<P: ProblemSet>(
    validation: &P,
    baselines: &[Baseline],
    measure: ValidationMeasure,
    grid: &LrGrid,
    ranks: &dyn Ranks,
) -> Result<Vec<TuningPoint>> {
    let mut tables = tune_horizons(validation, baselines, &[measure], grid, ranks)?;
    Ok(tables.pop().expect("one table per measure"))
}

/// [`tune`] by several measures at once, one table of points each: every (baseline, rate) pair
/// runs once, to the longest of their horizons, and each measure judges the prefix of those
/// runs that its horizon takes ([`Curves::prefix`]), the same bits as a tuning by that measure
/// alone. So the panels of steps 100 and 200 cost one tuning of 200 steps.
pub fn tune_horizons<P: ProblemSet>(
    validation: &P,
    baselines: &[Baseline],
    measures: &[ValidationMeasure],
    grid: &LrGrid,
    ranks: &dyn Ranks,
) -> Result<Vec<Vec<TuningPoint>>> {
    let longest = measures.iter().map(|m| m.steps).max().unwrap_or(0);
    let grid = grid.rates();
    let pairs: Vec<(Baseline, f64)> = baselines
        .iter()
        .flat_map(|b| b.tuning_variants())
        .flat_map(|b| grid.iter().map(move |&lr| (b, lr)))
        .collect();
    let mine: Vec<Vec<f64>> = pairs[ranks.share(pairs.len())]
        .par_iter()
        .map(|&(kind, lr)| {
            let curves = run(validation, &OptimizerChoice::Baseline { kind, lr }, longest)?;
            Ok(measures
                .iter()
                .map(|m| {
                    curves
                        .prefix(m.steps, 0)
                        .expect("a validation run records no held-out losses")
                        .window_mean(m.window)
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let width = measures.len();
    let mut gathered = Gathered::<f64>::new(ranks, pairs.len(), width);
    for (block, values) in gathered.mine().chunks_exact_mut(width).zip(&mine) {
        block.copy_from_slice(values);
    }
    let all = gathered.exchange(ranks).to_vec();
    Ok((0..width)
        .map(|m| {
            let finals = all.iter().skip(m).step_by(width.max(1)).copied();
            choose_rates(&pairs, finals, baselines)
        })
        .collect())
}

/// The tuning table of `pairs` judged by `finals`, each baseline's best point (its rate, and
/// for L-BFGS its history) marked chosen.
fn choose_rates(
    pairs: &[(Baseline, f64)],
    finals: impl Iterator<Item = f64>,
    baselines: &[Baseline],
) -> Vec<TuningPoint> {
    let mut points: Vec<TuningPoint> = pairs
        .iter()
        .zip(finals)
        .map(|(&(optimizer, lr), f)| TuningPoint {
            optimizer,
            lr,
            validation_final_loss: f,
            chosen: false,
        })
        .collect();
    for &b in baselines {
        let best = points
            .iter()
            .enumerate()
            .filter(|(_, p)| b.is_tuned_by(p.optimizer))
            .min_by(|a, c| {
                a.1.validation_final_loss
                    .total_cmp(&c.1.validation_final_loss)
            })
            .map(|(i, _)| i);
        if let Some(i) = best {
            points[i].chosen = true;
        }
    }
    points
}

/// The key, in a tuning table's key-value metadata, of the validation window (absent: 1).
pub const VALIDATION_WINDOW_KEY: &str = "validation_window";

/// A set of optimizers with the rates tuned for one horizon, and that horizon's tuning table.
pub type TunedChoices = (Vec<(OptimizerChoice, bool)>, Vec<TuningPoint>);

/// Tunes every baseline of `choices` given without a rate (`false` beside it) on `validation`,
/// once for all of `measures` (one set of runs, to the longest: [`tune_horizons`]). Returns,
/// for each measure, the choices with the rates chosen by it, and its table.
pub fn tune_choices<P: ProblemSet>(
    validation: &P,
    choices: &[(OptimizerChoice, bool)],
    measures: &[ValidationMeasure],
    grid: &LrGrid,
    ranks: &dyn Ranks,
) -> Result<Vec<TunedChoices>> {
    let to_tune: Vec<Baseline> = choices
        .iter()
        .filter_map(|(c, explicit)| match c {
            OptimizerChoice::Baseline { kind, .. } if !explicit => Some(*kind),
            _ => None,
        })
        .collect();
    let tables = tune_horizons(validation, &to_tune, measures, grid, ranks)?;
    Ok(tables
        .into_iter()
        .map(|points| {
            let mut tuned = choices.to_vec();
            for (choice, explicit) in &mut tuned {
                if let OptimizerChoice::Baseline { kind, lr } = choice {
                    let chosen = points
                        .iter()
                        .find(|p| p.chosen && kind.is_tuned_by(p.optimizer) && !*explicit);
                    if let Some(p) = chosen {
                        (*kind, *lr) = (p.optimizer, p.lr);
                    }
                }
            }
            (tuned, points)
        })
        .collect())
}

/// Writes a tuning grid as parquet: optimizer (its [`Baseline::tuning_name`]), lr,
/// validation_final_loss (the measure: the final loss, or the mean over the last
/// `validation_window` steps, which the file's metadata then records), chosen.
pub fn write_tuning(path: &Path, points: &[TuningPoint], measure: ValidationMeasure) -> Result<()> {
    let metadata = (measure.window != 1).then(|| {
        vec![parquet::file::metadata::KeyValue::new(
            VALIDATION_WINDOW_KEY.to_string(),
            measure.window.to_string(),
        )]
    });
    write_table_with_metadata(
        path,
        vec![
            (
                "optimizer",
                Column::Utf8(points.iter().map(|p| p.optimizer.tuning_name()).collect()),
            ),
            (
                "lr",
                Column::Float64(points.iter().map(|p| Some(p.lr)).collect()),
            ),
            (
                "validation_final_loss",
                Column::Float64(
                    points
                        .iter()
                        .map(|p| Some(p.validation_final_loss))
                        .collect(),
                ),
            ),
            (
                "chosen",
                Column::Bool(points.iter().map(|p| p.chosen).collect()),
            ),
        ],
        metadata,
    )
}

/// The validation window a tuning table records (1 when it records none, as before it could).
/// `path` names the file for the message.
pub fn tuning_window(table: &crate::io::Table, path: &Path) -> Result<usize> {
    match table.metadata(VALIDATION_WINDOW_KEY) {
        None => Ok(1),
        Some(v) => v
            .parse()
            .ok()
            .filter(|&w| w >= 1)
            .ok_or_else(|| Error::Parquet {
                path: crate::io::describe(path, false).into(),
                detail: format!(
                    "its {VALIDATION_WINDOW_KEY} must be a positive integer, got '{v}'"
                ),
            }),
    }
}

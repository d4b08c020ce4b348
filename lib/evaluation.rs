//! Running optimizers on a problem set and recording their learning curves, and tuning the
//! baselines' learning rates on a validation set (§3). An [`Observer`] sees every run's θ as
//! it goes, so a run can keep its final θ or record chosen coordinates without changing
//! [`run`].

use crate::baselines::Baseline;
use crate::error::{Error, Result};
use crate::io::table::{write_table_with_metadata, Column};
use crate::learned::OptimizerChoice;
use crate::problems::{shard_ranges, ProblemSet};
use crate::ranks::{Gathered, OneProcess, Ranks};
use ndarray::Array2;
use rayon::prelude::*;
use std::path::Path;

pub use crate::trajectory::{Curves, MAX_STEPS};

/// Rows per shard of parallel work.
pub const SHARD_ROWS: usize = 256;

/// The most losses a run may record (problems × (steps + 1)): 800 MB of f64 per optimizer.
pub const MAX_LOSSES: usize = 100_000_000;

/// Checks a run's length before any work: at least 1 and at most [`MAX_STEPS`].
pub fn validate_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::Config("--steps must be at least 1".into()));
    }
    if steps > MAX_STEPS {
        return Err(Error::Config(format!(
            "--steps must be at most {MAX_STEPS}, got {steps}"
        )));
    }
    Ok(())
}

/// Checks that `problems` runs of `steps` steps fit in [`MAX_LOSSES`] recorded losses.
pub fn validate_run_size(problems: usize, steps: usize) -> Result<()> {
    if problems.saturating_mul(steps.saturating_add(1)) > MAX_LOSSES {
        return Err(Error::Config(format!(
            "{problems} problems × {steps} steps would record more than {MAX_LOSSES} losses; \
             evaluate fewer problems or steps at a time"
        )));
    }
    Ok(())
}

/// Sees the runs of [`run_observed`] as they go. Calls come from several threads at once, one
/// shard of problems each; every call for one problem comes from one thread, in step order.
pub trait Observer: Sync {
    /// θ of `problem` after `step` updates (0 is θ0), with its loss there.
    fn at_step(&self, _problem: usize, _step: usize, _theta: &[f32], _loss: f64) {}
    /// θ of `problem` after the last step.
    fn finished(&self, _problem: usize, _theta: &[f32]) {}
}

/// Observes nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// Runs `choice` for `steps` steps on every problem of `set`, in parallel over shards of
/// problems. A problem whose loss turns NaN or Inf keeps recording it; the others go on,
/// since every update rule here is coordinatewise.
pub fn run<P: ProblemSet>(set: &P, choice: &OptimizerChoice, steps: usize) -> Result<Curves> {
    run_on(set, choice, steps, &OneProcess)
}

/// [`run`], its problems shared among `ranks` (see [`run_observed`]).
pub fn run_on<P: ProblemSet>(
    set: &P,
    choice: &OptimizerChoice,
    steps: usize,
    ranks: &dyn Ranks,
) -> Result<Curves> {
    run_observed(set, choice, steps, 0, &NoObserver, ranks)
}

/// [`run`], with the loss on held-out data ([`ProblemSet::held_out_loss`]) recorded at step 0,
/// every `every` steps and at the last step, where the set has held-out data (`every` = 0:
/// never).
pub fn run_with_held_out<P: ProblemSet>(
    set: &P,
    choice: &OptimizerChoice,
    steps: usize,
    every: usize,
    ranks: &dyn Ranks,
) -> Result<Curves> {
    run_observed(set, choice, steps, every, &NoObserver, ranks)
}

/// Whether the held-out loss is recorded at `step` of a run of `steps` ([`run_with_held_out`]).
fn held_out_at(step: usize, steps: usize, every: usize) -> bool {
    every > 0 && (step % every == 0 || step == steps)
}

/// One shard's losses, and its held-out losses where the set has held-out data.
type ShardCurves = (Array2<f64>, Option<Array2<f64>>);

/// [`run_with_held_out`], with `observer` shown every θ. Under K > 1 `ranks` each rank runs
/// its share of the shards of problems (so `observer` sees only those) and every rank returns
/// every problem's curves, the same bits as one process.
pub fn run_observed<P: ProblemSet>(
    set: &P,
    choice: &OptimizerChoice,
    steps: usize,
    held_out_every: usize,
    observer: &impl Observer,
    ranks: &dyn Ranks,
) -> Result<Curves> {
    let dim = set.dim();
    let groups = set.groups();
    let shards = shard_ranges(set.count(), dim, SHARD_ROWS);
    let mine = ranks.share(shards.len());
    let parts: Vec<ShardCurves> = shards[mine]
        .par_iter()
        .map(|range| {
            let rows = range.len() * dim;
            let mut rule = choice.rule(&groups, dim, range.len())?;
            let mut theta = vec![0.0f32; rows];
            let mut grad = vec![0.0f32; rows];
            let mut scratch = set.scratch();
            let mut losses = Array2::<f64>::zeros((range.len(), steps + 1));
            // Stays None for a set without held-out data.
            let mut held_out_losses: Option<Array2<f64>> = None;
            for (k, p) in range.clone().enumerate() {
                set.initial_point(p, &mut theta[k * dim..(k + 1) * dim]);
            }
            for step in 0..=steps {
                for (k, p) in range.clone().enumerate() {
                    let span = k * dim..(k + 1) * dim;
                    let loss = set.loss_and_gradient(
                        p,
                        step,
                        &theta[span.clone()],
                        &mut grad[span.clone()],
                        &mut scratch,
                    );
                    losses[[k, step]] = loss;
                    if held_out_at(step, steps, held_out_every) {
                        if let Some(h) = set.held_out_loss(&theta[span.clone()], &mut scratch) {
                            held_out_losses.get_or_insert_with(|| {
                                Array2::from_elem((range.len(), steps + 1), f64::NAN)
                            })[[k, step]] = h;
                        }
                    }
                    observer.at_step(p, step, &theta[span], loss);
                }
                if step < steps {
                    rule.step(&mut theta, &grad);
                }
            }
            for (k, p) in range.clone().enumerate() {
                observer.finished(p, &theta[k * dim..(k + 1) * dim]);
            }
            Ok((losses, held_out_losses))
        })
        .collect::<Result<_>>()?;
    let parts = if ranks.size() > 1 {
        gather_shard_curves(&shards, steps, held_out_every > 0, parts, ranks)
    } else {
        parts
    };
    let stack = |views: Vec<ndarray::ArrayView2<f64>>| {
        ndarray::concatenate(ndarray::Axis(0), &views).expect("shards share a width")
    };
    let test_losses = parts
        .iter()
        .map(|p| p.1.as_ref().map(|a| a.view()))
        .collect::<Option<Vec<_>>>()
        .map(stack);
    Ok(Curves {
        label: choice.label(),
        lr: choice.lr(),
        losses: stack(parts.iter().map(|p| p.0.view()).collect()),
        test_losses,
    })
}

/// Every shard's curves on every rank, from each rank's `mine` (its share of `shards`): one
/// block per shard of the largest shard's size, its first value 1 where it holds held-out
/// losses, then the losses and, where held-out losses may be recorded (`held_out`), room for
/// them.
fn gather_shard_curves(
    shards: &[std::ops::Range<usize>],
    steps: usize,
    held_out: bool,
    mine: Vec<ShardCurves>,
    ranks: &dyn Ranks,
) -> Vec<ShardCurves> {
    let row = steps + 1;
    let rows = shards.iter().map(|s| s.len()).max().unwrap_or(0);
    let width = 1 + (1 + usize::from(held_out)) * rows * row;
    let mut gathered = Gathered::<f64>::new(ranks, shards.len(), width);
    for (block, (losses, held_out)) in gathered.mine().chunks_exact_mut(width).zip(&mine) {
        let n = losses.len();
        block[0] = f64::from(u8::from(held_out.is_some()));
        block[1..1 + n].copy_from_slice(losses.as_slice().expect("made in standard order"));
        if let Some(h) = held_out {
            block[1 + rows * row..1 + rows * row + n]
                .copy_from_slice(h.as_slice().expect("made in standard order"));
        }
    }
    let all = gathered.exchange(ranks);
    shards
        .iter()
        .zip(all.chunks_exact(width))
        .map(|(range, block)| {
            let n = range.len() * row;
            let array = |values: &[f64]| {
                Array2::from_shape_vec((range.len(), row), values.to_vec()).expect("n values")
            };
            let held_out =
                (block[0] == 1.0).then(|| array(&block[1 + rows * row..1 + rows * row + n]));
            (array(&block[1..1 + n]), held_out)
        })
        .collect()
}

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
                "--lr-grid {text:?}: {why}; expected LO:HI:PER_DECADE, e.g. 1e-4:10:4"
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
            return Err(Error::Config(format!(
                "--validation-window must be between 1 and the validation steps ({}), got {}",
                self.steps, self.window
            )));
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
        .flat_map(|&b| grid.iter().map(move |&lr| (b, lr)))
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

/// The tuning table of `pairs` judged by `finals`, each baseline's best rate marked chosen.
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
            .filter(|(_, p)| p.optimizer == b)
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

/// Writes a tuning grid as parquet: optimizer, lr, validation_final_loss (the measure: the
/// final loss, or the mean over the last `validation_window` steps, which the file's metadata
/// then records), chosen.
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
                Column::Utf8(
                    points
                        .iter()
                        .map(|p| p.optimizer.name().to_string())
                        .collect(),
                ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::{QuadraticFamily, ValueDistribution};

    /// 3-dimensional quadratics with N(0, 1) entries and θ0.
    fn family() -> QuadraticFamily {
        QuadraticFamily {
            dims: 3,
            distribution: ValueDistribution::Normal,
            theta0_std: 1.0,
        }
    }

    #[test]
    fn grid_spans_the_documented_range() {
        let g = LrGrid::default().rates();
        assert_eq!(g.len(), 21);
        assert!((g[0] - 1e-4).abs() < 1e-12 && (g[20] - 10.0).abs() < 1e-9);
        assert_eq!(LrGrid::parse("1e-4:10:4").unwrap(), LrGrid::default());
        let half = LrGrid::parse("0.001:1:2").unwrap().rates();
        assert_eq!(half.len(), 7);
        assert!((half[1] - 10f64.powf(-2.5)).abs() < 1e-15);
        for bad in [
            "1e-4:10", "0:1:2", "1e-3:1:0", "3e-3:1:1", "1:1e-3:2", "x:1:2",
        ] {
            assert!(LrGrid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn curves_are_independent_of_sharding_and_threads() {
        let fam = family();
        let set = fam.sample(4, 37, |i| i);
        let choice = OptimizerChoice::Baseline {
            kind: Baseline::Adam,
            lr: 0.1,
        };
        let a = run(&set, &choice, 5).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one.install(|| run(&set, &choice, 5)).unwrap();
        assert_eq!(a.losses, b.losses);
        // Problem 5 alone gives the same curve as inside the set.
        let single = fam.sample(4, 6, |i| i);
        let c = run(&single, &choice, 5).unwrap();
        assert_eq!(a.losses.row(5), c.losses.row(5));
    }

    /// The observer sees θ0 and every later θ of every problem, and the final θ once, equal to
    /// the θ after the last step.
    #[test]
    fn an_observer_sees_every_step_and_the_final_point() {
        use std::sync::Mutex;
        #[derive(Default)]
        struct Record {
            steps: Mutex<Vec<(usize, usize, f32)>>,
            last: Mutex<Vec<(usize, Vec<f32>)>>,
        }
        impl Observer for Record {
            fn at_step(&self, problem: usize, step: usize, theta: &[f32], _loss: f64) {
                self.steps.lock().unwrap().push((problem, step, theta[0]));
            }
            fn finished(&self, problem: usize, theta: &[f32]) {
                self.last.lock().unwrap().push((problem, theta.to_vec()));
            }
        }
        let fam = family();
        let set = fam.sample(4, 5, |i| i);
        let choice = OptimizerChoice::Baseline {
            kind: Baseline::Nag,
            lr: 0.01,
        };
        let record = Record::default();
        let curves = run_observed(&set, &choice, 4, 0, &record, &OneProcess).unwrap();
        assert_eq!(curves.losses, run(&set, &choice, 4).unwrap().losses);
        let mut steps = record.steps.into_inner().unwrap();
        steps.sort_by_key(|s| (s.0, s.1));
        assert_eq!(steps.len(), 5 * 5);
        assert_eq!(steps[0].2, set.theta0[[0, 0]]);
        let mut last = record.last.into_inner().unwrap();
        last.sort_by_key(|l| l.0);
        assert_eq!(last.len(), 5);
        // The final θ is one step past the last one observed at a step.
        let mut rule = Baseline::Nag.rule(0.01, 3);
        let mut theta = set.theta0.row(2).to_vec();
        let mut grad = vec![0.0; 3];
        let mut scratch = set.scratch();
        for step in 0..4 {
            set.loss_and_gradient(2, step, &theta, &mut grad, &mut scratch);
            crate::baselines::UpdateRule::step(&mut rule, &mut theta, &grad);
        }
        assert_eq!(last[2].1, theta);
    }

    #[test]
    fn a_diverging_problem_does_not_stop_the_others() {
        let mut set = family().sample(4, 3, |i| i);
        set.w
            .index_axis_mut(ndarray::Axis(0), 1)
            .mapv_inplace(|x| x * 1e18);
        let curves = run(
            &set,
            &OptimizerChoice::Baseline {
                kind: Baseline::Sgd,
                lr: 1.0,
            },
            4,
        )
        .unwrap();
        assert!(!curves.losses[[1, 4]].is_finite());
        assert!(
            curves.losses[[0, 4]].is_finite(),
            "problem 0 does not diverge"
        );
        assert_eq!(curves.final_mean(), f64::INFINITY);
    }
}

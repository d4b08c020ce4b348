//! Running optimizers on a problem set and recording their learning curves, and tuning the
//! baselines' learning rates on a validation set (§3). An [`Observer`] sees every run's θ as
//! it goes, so a run can keep its final θ or record chosen coordinates without changing
//! [`run`].

use crate::error::{Error, Result};
use crate::learned::OptimizerChoice;
use crate::problems::{shard_ranges, ProblemSet};
use crate::ranks::{Gathered, OneProcess, Ranks};
use ndarray::Array2;
use rayon::prelude::*;

pub use crate::trajectory::{Curves, MAX_STEPS};
pub use final_points::{refuse_seen_data, FinalPoints};
pub use tuning::{
    tune, tune_choices, tune_horizons, tuning_window, write_tuning, LrGrid, TunedChoices,
    TuningPoint, ValidationMeasure,
};

mod final_points;
#[cfg(test)]
mod tests;
mod tuning;

/// Rows per shard of parallel work.
pub const SHARD_ROWS: usize = 256;

/// The most losses a run may record (problems × (steps + 1)): 800 MB of f64 per optimizer.
pub const MAX_LOSSES: usize = 100_000_000;

/// Checks a run's length before any work: at least 1 and at most [`MAX_STEPS`].
pub fn validate_steps(steps: usize) -> Result<()> {
    if steps == 0 || steps > MAX_STEPS {
        return Err(Error::setting(
            "steps",
            format!("between 1 and {MAX_STEPS}"),
            steps,
        ));
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
    set.fault()?;
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

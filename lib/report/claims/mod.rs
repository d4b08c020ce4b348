//! The paper's claims (§3.1 to §3.4, one per figure panel) and what the outputs under `out/`
//! measure of each: every learned optimizer against the best tuned baseline at the last
//! step, as paired differences over the same test problems.

use crate::error::Result;
use crate::plotting::display_name;
use crate::trajectory::{read_trajectories, TrajectoryRow};
use std::collections::BTreeMap;
use std::path::Path;

mod specs;
pub use specs::specs;

/// What the paper says of its learned optimizer on a panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// It has a lower loss than every tuned baseline.
    Wins,
    /// It fails (Figure 5's ReLU network): a higher loss than the best baseline.
    Loses,
}

/// Which measure a claim compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// The training loss (a minibatch's for MNIST) at the last step.
    Loss,
    /// The loss on held-out test data at the last step where it was measured.
    TestLoss,
}

/// One claim of the paper and where its evidence lies.
pub struct ClaimSpec {
    pub section: &'static str,
    pub claim: &'static str,
    /// The make target that writes its outputs.
    pub target: &'static str,
    /// Alternative file sets under `out/` (one per recipe's outputs), each read whole; a
    /// learned optimizer is taken from the first set that holds it.
    pub sources: Vec<Vec<String>>,
    pub measure: Measure,
    pub expect: Expect,
    /// Figure 6: the sources are the cells of a sweep, compared cell by cell.
    pub sweep: bool,
    /// Compare the other learned optimizers with this one (its trajectory name) rather than
    /// with the best tuned baseline (Appendix D: each architecture against the LSTM).
    pub against: Option<&'static str>,
}

/// What the outputs say of one learned optimizer on one claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// The learned optimizer, as its legend names it (`LSTM`, `NAG+LSTM`, …).
    pub learned: String,
    /// The file it was read from, relative to `out/`.
    pub file: String,
    pub step: i64,
    pub learned_mean: f64,
    /// The best tuned baseline there (by mean at `step`), its rate and mean.
    pub baseline: String,
    pub baseline_mean: f64,
    /// Paired difference learned − baseline: mean and standard error over problems (over
    /// cells for a sweep), how many, and in how many the learned optimizer is lower.
    pub difference: f64,
    pub standard_error: f64,
    pub count: usize,
    pub lower: usize,
    pub verdict: Verdict,
    /// Each meta-training draw's own paired difference and standard error, by META_SEED (0 is
    /// the figure's); the difference above pools them (docs/experiments.md, "Meta-training
    /// seeds"). One draw: the difference is that draw's.
    pub draws: Vec<Draw>,
}

/// One meta-training draw's paired difference on a claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Draw {
    pub seed: u64,
    pub difference: f64,
    pub standard_error: f64,
}

impl Draw {
    /// Draw `seed`'s mean paired difference over `differences` and its standard error.
    fn of(seed: u64, differences: &[f64]) -> Draw {
        let (difference, standard_error) = mean_and_se(differences);
        Draw {
            seed,
            difference,
            standard_error,
        }
    }
}

/// The meta-training seeds whose outputs lie under `out/seeds/K/`, besides the default 0.
fn seed_dirs(out: &Path) -> Vec<u64> {
    let mut seeds: Vec<u64> = std::fs::read_dir(out.join("seeds"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&k| k != 0)
        .collect();
    seeds.sort_unstable();
    seeds
}

/// The pooled paired difference of several draws on the same test runs: per run, the mean over
/// draws of learned − baseline, then the mean over runs. Its standard error adds the spread
/// between the draws' own differences to the spread between runs, so that a claim resting on
/// one lucky draw is not held: SE² = var_runs(d̄_r)/R + var_draws(D_s)/S.
pub fn pool_draws(per_draw: &[Vec<f64>]) -> (f64, f64) {
    let draws = per_draw.len();
    let runs = per_draw.iter().map(Vec::len).min().unwrap_or(0);
    let per_run: Vec<f64> = (0..runs)
        .map(|r| per_draw.iter().map(|d| d[r]).sum::<f64>() / draws as f64)
        .collect();
    let (mean, se_runs) = mean_and_se(&per_run);
    if draws < 2 {
        return (mean, se_runs);
    }
    let means: Vec<f64> = per_draw.iter().map(|d| mean_and_se(&d[..runs]).0).collect();
    let (_, se_draws) = mean_and_se(&means);
    (mean, (se_runs * se_runs + se_draws * se_draws).sqrt())
}

/// What the paired difference says of a claim. A difference within two standard errors of
/// zero is a tie: it is never counted as the claim holding, whichever its sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The difference lies beyond two standard errors on the side the claim expects.
    Holds,
    /// Within two standard errors of zero, or a standard error that cannot be had (one run).
    NotDistinguishable,
    /// Beyond two standard errors on the other side.
    Fails,
}

impl Verdict {
    /// The verdict on a claim that expects `expect`, from a paired difference and its standard
    /// error.
    pub fn of(expect: Expect, difference: f64, standard_error: f64) -> Verdict {
        if !(standard_error.is_finite() && difference.abs() > 2.0 * standard_error) {
            return Verdict::NotDistinguishable;
        }
        let expected_side = match expect {
            Expect::Wins => difference < 0.0,
            Expect::Loses => difference > 0.0,
        };
        if expected_side {
            Verdict::Holds
        } else {
            Verdict::Fails
        }
    }
}

/// A claim with its evidence; no evidence means its outputs do not exist yet.
pub struct Claim {
    pub spec: ClaimSpec,
    pub evidence: Vec<Evidence>,
}

/// Per optimizer (trajectory name, in the order of the files), its rate and, per step and
/// problem, the value.
type Values = Vec<(String, (Option<f64>, BTreeMap<i64, BTreeMap<i64, f64>>))>;

fn tabulate(rows: &[TrajectoryRow], measure: Measure) -> Values {
    let mut v: Values = Vec::new();
    for r in rows {
        let value = match measure {
            Measure::Loss => Some(r.loss),
            Measure::TestLoss => r.test_loss,
        };
        if let Some(x) = value {
            let i = match v.iter().position(|(name, _)| name == &r.optimizer) {
                Some(i) => i,
                None => {
                    v.push((r.optimizer.clone(), (r.lr, BTreeMap::new())));
                    v.len() - 1
                }
            };
            v[i].1 .1.entry(r.step).or_default().insert(r.problem, x);
        }
    }
    v
}

/// Mean over problems; infinite if any diverged.
fn mean(values: &BTreeMap<i64, f64>) -> f64 {
    if values.values().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    values.values().sum::<f64>() / values.len().max(1) as f64
}

/// Mean and standard error of `d`.
pub fn mean_and_se(d: &[f64]) -> (f64, f64) {
    let n = d.len() as f64;
    let m = d.iter().sum::<f64>() / n.max(1.0);
    if d.len() < 2 {
        return (m, f64::NAN);
    }
    let var = d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// One panel's comparison: each learned optimizer against the best baseline at the last step.
struct PanelResult {
    step: i64,
    baseline: String,
    baseline_mean: f64,
    /// (trajectory name, learned mean, per-problem differences).
    learned: Vec<(String, f64, Vec<f64>)>,
}

fn compare(values: &Values, against: Option<&str>) -> Option<PanelResult> {
    // The last step every optimizer measured.
    let step = values
        .iter()
        .filter_map(|(_, (_, steps))| steps.keys().next_back().copied())
        .min()?;
    let at = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, (_, s))| s.get(&step))
    };
    let (baseline, base) = match against {
        Some(reference) => (reference.to_string(), at(reference)?),
        None => values
            .iter()
            .filter(|(_, (lr, _))| lr.is_some())
            .filter_map(|(name, _)| at(name).map(|v| (name.clone(), v)))
            .min_by(|a, b| mean(a.1).total_cmp(&mean(b.1)))?,
    };
    let learned = values
        .iter()
        .filter(|(name, (lr, _))| lr.is_none() && Some(name.as_str()) != against)
        .filter_map(|(name, _)| {
            let mine = at(name)?;
            let d = mine
                .iter()
                .filter_map(|(p, x)| base.get(p).map(|b| x - b))
                .collect();
            Some((name.clone(), mean(mine), d))
        })
        .collect();
    Some(PanelResult {
        step,
        baseline_mean: mean(base),
        baseline: display_name(&baseline),
        learned,
    })
}

fn read_set(out: &Path, files: &[String]) -> Result<Option<Vec<TrajectoryRow>>> {
    if !files.iter().all(|f| out.join(f).is_file()) {
        return Ok(None);
    }
    let mut rows = Vec::new();
    for f in files {
        rows.extend(read_trajectories(&out.join(f))?);
    }
    Ok(Some(rows))
}

/// Measures every claim from the files under `out`; a file that exists but cannot be read is
/// an error.
pub fn measure(out: &Path) -> Result<Vec<Claim>> {
    let mut claims = Vec::new();
    for spec in specs() {
        let evidence = if spec.sweep {
            sweep_evidence(out, &spec)?
        } else {
            paired_evidence(out, &spec)?
        };
        claims.push(Claim { spec, evidence });
    }
    Ok(claims)
}

fn paired_evidence(out: &Path, spec: &ClaimSpec) -> Result<Vec<Evidence>> {
    let mut found: Vec<Evidence> = Vec::new();
    let seeds = seed_dirs(out);
    for files in &spec.sources {
        let Some(rows) = read_set(out, files)? else {
            continue;
        };
        let Some(panel) = compare(&tabulate(&rows, spec.measure), spec.against) else {
            continue;
        };
        // The other draws of the same files, each on the same test runs.
        let mut others = Vec::new();
        for &k in &seeds {
            let seeded: Vec<String> = files.iter().map(|f| format!("seeds/{k}/{f}")).collect();
            if let Some(rows) = read_set(out, &seeded)? {
                if let Some(p) = compare(&tabulate(&rows, spec.measure), spec.against) {
                    others.push((k, p));
                }
            }
        }
        for (name, _, d) in panel.learned {
            let learned = display_name(&name);
            if found.iter().any(|e| e.learned == learned) {
                continue;
            }
            let mut draws = vec![(0, d.clone())];
            // What each draw is compared with: the same baseline runs in every draw, or the
            // draw's own learned optimizer for a claim against one (`ClaimSpec::against`).
            let mut references = vec![panel.baseline_mean];
            for (k, p) in &others {
                if p.step != panel.step {
                    continue;
                }
                if let Some((_, _, dk)) = p.learned.iter().find(|(n, _, _)| n == &name) {
                    if dk.len() == d.len() {
                        draws.push((*k, dk.clone()));
                        references.push(p.baseline_mean);
                    }
                }
            }
            let per_draw: Vec<Vec<f64>> = draws.iter().map(|(_, d)| d.clone()).collect();
            let (difference, standard_error) = pool_draws(&per_draw);
            let reference = references.iter().sum::<f64>() / references.len() as f64;
            let runs = d.len();
            let lower = (0..runs)
                .filter(|&r| per_draw.iter().map(|dk| dk[r]).sum::<f64>() < 0.0)
                .count();
            found.push(Evidence {
                learned,
                file: files[0].clone(),
                step: panel.step,
                learned_mean: reference + difference,
                baseline: panel.baseline.clone(),
                baseline_mean: reference,
                difference,
                standard_error,
                count: runs,
                lower,
                verdict: Verdict::of(spec.expect, difference, standard_error),
                draws: draws.iter().map(|(k, dk)| Draw::of(*k, dk)).collect(),
            });
        }
    }
    Ok(found)
}

/// Figure 6: per learned optimizer, the cells where it is below the best baseline, and the
/// mean over cells of the difference of the means, judged as a paired difference over cells
/// and pooled over the draws whose sweep is complete, as [`pool_draws`] pools runs. Only
/// complete sweeps count.
fn sweep_evidence(out: &Path, spec: &ClaimSpec) -> Result<Vec<Evidence>> {
    let mut found: Vec<Evidence> = Vec::new();
    for cells in &spec.sources {
        let Some((step, per)) = sweep_means(out, cells, spec)? else {
            continue;
        };
        let mut others = Vec::new();
        for k in seed_dirs(out) {
            let seeded: Vec<String> = cells.iter().map(|f| format!("seeds/{k}/{f}")).collect();
            if let Some((_, p)) = sweep_means(out, &seeded, spec)? {
                others.push((k, p));
            }
        }
        for (name, pairs) in per {
            let learned = display_name(&name);
            if pairs.len() != cells.len() || found.iter().any(|e| e.learned == learned) {
                continue;
            }
            let mut draws = vec![(0, pairs)];
            for (k, p) in &others {
                if let Some(pk) = p.get(&name).filter(|pk| pk.len() == cells.len()) {
                    draws.push((*k, pk.clone()));
                }
            }
            let per_draw: Vec<Vec<f64>> = (draws.iter())
                .map(|(_, pairs)| pairs.iter().map(|(l, b)| l - b).collect())
                .collect();
            let (difference, standard_error) = pool_draws(&per_draw);
            let lower = (0..cells.len())
                .filter(|&c| per_draw.iter().map(|d| d[c]).sum::<f64>() < 0.0)
                .count();
            let mean_of = |f: fn(&(f64, f64)) -> f64| {
                let all: Vec<f64> = draws.iter().flat_map(|(_, p)| p.iter().map(f)).collect();
                all.iter().sum::<f64>() / all.len() as f64
            };
            found.push(Evidence {
                learned,
                file: cells[0].split("/fig6/").next().map_or(String::new(), |d| {
                    format!("{d}/fig6/*/trajectories.parquet")
                }),
                step,
                learned_mean: mean_of(|p| p.0),
                baseline: "best per cell".into(),
                baseline_mean: mean_of(|p| p.1),
                difference,
                standard_error,
                count: cells.len(),
                lower,
                verdict: Verdict::of(spec.expect, difference, standard_error),
                draws: (draws.iter().zip(&per_draw))
                    .map(|((k, _), d)| Draw::of(*k, d))
                    .collect(),
            });
        }
    }
    Ok(found)
}

/// Learned optimizer → (its mean, the cell's best baseline's mean) per cell of a complete
/// sweep, with the step; None where a cell is missing.
type SweepMeans = BTreeMap<String, Vec<(f64, f64)>>;
fn sweep_means(
    out: &Path,
    cells: &[String],
    spec: &ClaimSpec,
) -> Result<Option<(i64, SweepMeans)>> {
    if !cells.iter().all(|f| out.join(f).is_file()) {
        return Ok(None);
    }
    let mut per = SweepMeans::new();
    let mut step = 0;
    for cell in cells {
        let rows = read_trajectories(&out.join(cell))?;
        if let Some(panel) = compare(&tabulate(&rows, spec.measure), spec.against) {
            step = panel.step;
            for (name, m, _) in panel.learned {
                per.entry(name).or_default().push((m, panel.baseline_mean));
            }
        }
    }
    Ok(Some((step, per)))
}

#[cfg(test)]
mod tests;

//! What the spec files of every problem family share, and nothing of any one family: the header
//! (kind and format version, docs/formats.md), the seeds of each recorded run and θ0, and the
//! bounds on a set's size. Every family uses it; it uses no family, so no family imports another
//! and the spec dispatcher (`spec.rs`) can import them all.

use crate::datasets::Split;
use crate::error::{Error, Result};
use crate::io::{Npz, NpzArrays};
use crate::rng::Rng;
use ndarray::{Array1, Array2, Ix1, Ix2};

/// The newest spec format version this l2l writes; it reads every version from 1.
/// Version 2 adds `split` to MLP and conv specs (docs/formats.md, "Splits").
pub const SPEC_VERSION: i64 = 2;

/// The split a spec's runs draw their images from (`all` where a version-1 spec records none).
pub fn read_split(npz: &mut Npz) -> Result<Split> {
    if !npz.has("split") {
        return Ok(Split::All);
    }
    let name = npz.text("split")?;
    Split::parse(&name).ok_or_else(|| {
        Error::bad_file(
            npz.path(),
            format!(
                "unknown split '{name}'; a spec's split is one of {}",
                Split::NAMES.join(", ")
            ),
        )
    })
}

/// Writes the `split` a spec's runs draw from (where its family has splits), then the `kind`
/// and `format_version` fields of a spec of kind `kind`, in the oldest version that holds it:
/// 2 for a spec that records a split, else 1.
pub fn write_header(a: &mut NpzArrays, kind: &str, split: Option<Split>) {
    if let Some(split) = split {
        a.add(
            "split",
            ndarray::Array1::from(split.name().as_bytes().to_vec()),
        );
    }
    a.add("kind", ndarray::Array1::from(kind.as_bytes().to_vec()));
    a.scalar_i64(
        "format_version",
        if split.is_some() { SPEC_VERSION } else { 1 },
    );
}

/// The most entries of W a set of quadratics, or of θ0 a set of runs, may hold (1 GiB of f32).
pub const MAX_ENTRIES: usize = 1 << 28;

/// Standard deviation of the initial weights and biases.
pub const INIT_STD: f64 = 0.01;

/// Seeds of one run: its initialisation and its minibatch sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSeeds {
    pub init: u64,
    pub minibatch: u64,
}

impl RunSeeds {
    /// The seeds of run `index` of the set drawn from `seed` in stream family `family`
    /// (0 for specs; meta-training uses one family per epoch), so that sets with different
    /// seeds never share a run.
    pub fn derive(seed: u64, family: u64, index: u64) -> Self {
        let mut rng = Rng::new(seed, (family << 32) ^ index ^ (0x4d4c_5000 << 40));
        RunSeeds {
            init: rng.next_u64(),
            minibatch: rng.next_u64(),
        }
    }

    /// Runs `0..count` of [`RunSeeds::derive`]'s family `family`: 0 for a spec's own runs,
    /// epoch + 1 for meta-training's fresh runs of an epoch.
    pub fn derive_runs(seed: u64, family: u64, count: usize) -> Vec<RunSeeds> {
        (0..count as u64)
            .map(|i| RunSeeds::derive(seed, family, i))
            .collect()
    }
}

/// Writes what [`RecordedRuns::read`] reads besides θ0, in the order every spec holds it:
/// `batch_size`, each run's `init_seeds` and `minibatch_seeds`, then the `seed` they were
/// derived from.
pub(crate) fn write_runs(z: &mut NpzArrays, batch_size: usize, runs: &[RunSeeds], seed: u64) {
    let each = |f: fn(&RunSeeds) -> u64| {
        Array1::from(runs.iter().map(|r| f(r) as i64).collect::<Vec<_>>())
    };
    z.scalar_i64("batch_size", batch_size as i64);
    z.add("init_seeds", each(|r| r.init));
    z.add("minibatch_seeds", each(|r| r.minibatch));
    z.scalar_i64("seed", seed as i64);
}

/// What every spec of trained runs records beside its network: the minibatch size, each run's
/// seeds, and θ0, checked against each other and against `params` parameters per run of the
/// network `network` (named in errors).
pub(crate) struct RecordedRuns {
    pub batch_size: usize,
    pub runs: Vec<RunSeeds>,
    pub theta0: Array2<f32>,
}

impl RecordedRuns {
    pub(crate) fn read(
        npz: &mut Npz,
        max_batch: usize,
        params: usize,
        network: &str,
    ) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        let batch_size = npz.scalar("batch_size")?;
        if !(1.0..=max_batch as f64).contains(&batch_size) {
            return Err(bad(
                npz,
                format!("batch_size must be between 1 and {max_batch}, found {batch_size}"),
            ));
        }
        let init: Vec<i64> = npz.array_nd::<i64, Ix1>("init_seeds")?.to_vec();
        let minibatch: Vec<i64> = npz.array_nd::<i64, Ix1>("minibatch_seeds")?.to_vec();
        if init.len() != minibatch.len() || init.is_empty() {
            return Err(bad(
                npz,
                format!(
                    "{} init seeds but {} minibatch seeds",
                    init.len(),
                    minibatch.len()
                ),
            ));
        }
        let theta0 = npz.array_nd::<f32, Ix2>("theta0")?;
        if theta0.dim() != (init.len(), params) {
            return Err(bad(
                npz,
                format!(
                    "'theta0' has shape {:?}; {} runs of {network} need [{}, {params}]",
                    theta0.shape(),
                    init.len(),
                    init.len(),
                ),
            ));
        }
        if theta0.iter().any(|x| !x.is_finite()) {
            return Err(bad(npz, "'theta0' contains NaN or Inf".into()));
        }
        let runs = init
            .iter()
            .zip(&minibatch)
            .map(|(&i, &m)| RunSeeds {
                init: i as u64,
                minibatch: m as u64,
            })
            .collect();
        Ok(RecordedRuns {
            batch_size: batch_size as usize,
            runs,
            theta0,
        })
    }
}

//! MLP classifiers trained on minibatches with a softmax cross-entropy loss (§3.2).
//!
//! The parameters of a run are one flat vector, layer after layer: W_l as [in, out] row-major,
//! then b_l (out). That vector is the learned optimizer's coordinate axis (15,910 coordinates
//! for 784-20-10). Every weight and bias starts iid N(0, 0.01²), as the original code did.
//! The minibatch of run r at step t is drawn uniformly with replacement from the stream
//! (minibatch seed of r, t), so every optimizer evaluated on a run sees the same θ0 and the
//! same sequence of minibatches.

mod architecture;
mod network;
mod sampling;

use super::recorded::{
    read_split, write_header, write_runs, RecordedRuns, RunSeeds, INIT_STD, MAX_ENTRIES,
};
use super::{HessianVector, ProblemSet, TrainingSource};
use crate::datasets::{DataSplit, Dataset, Split};
use crate::error::{Error, Result};
use crate::io::{write_npz, Npz};
use crate::rng::Rng;
pub use architecture::{Activation, MlpArchitecture};
use ndarray::{Array1, Array2, Ix1};
pub use network::MlpScratch;
use network::{mlp_hessian_vector, mlp_loss_and_gradient};
pub use sampling::MlpSampling;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most examples per minibatch (a spec's `batch_size`).
pub const MAX_MINIBATCH: usize = 100_000;

/// A set of MLP training runs on one dataset.
#[derive(Clone)]
pub struct MlpSet {
    pub architecture: MlpArchitecture,
    pub batch_size: usize,
    pub data: Arc<Dataset>,
    pub dataset_path: PathBuf,
    pub runs: Vec<RunSeeds>,
    pub theta0: Array2<f32>,
    /// The seed the runs were derived from.
    pub seed: u64,
}

/// Draws θ0 of one run: every parameter iid N(0, 0.01²).
fn initial_parameters(arch: &MlpArchitecture, seed: u64, out: &mut [f32]) {
    let mut rng = Rng::new(seed, 0);
    for x in out.iter_mut().take(arch.num_params()) {
        *x = (rng.normal() * INIT_STD) as f32;
    }
}

impl MlpSet {
    pub fn new(
        architecture: MlpArchitecture,
        batch_size: usize,
        data: Arc<Dataset>,
        dataset_path: PathBuf,
        runs: Vec<RunSeeds>,
        seed: u64,
    ) -> Result<Self> {
        architecture.validate()?;
        if batch_size == 0 || batch_size > MAX_MINIBATCH {
            return Err(Error::setting(
                "batch_size",
                format!("between 1 and {MAX_MINIBATCH}"),
                batch_size,
            ));
        }
        if data.pixels() != architecture.inputs || data.classes > architecture.classes {
            return Err(Error::Config(format!(
                "the data has {} inputs and {} classes; the MLP {} does not fit it",
                data.pixels(),
                data.classes,
                architecture.describe()
            )));
        }
        let p = architecture.num_params();
        if runs.len().saturating_mul(p) > MAX_ENTRIES {
            return Err(Error::Config(format!(
                "{} runs of the MLP {} ({p} parameters) would hold more than {} values of θ0; \
                 use fewer runs or a smaller network",
                runs.len(),
                architecture.describe(),
                MAX_ENTRIES
            )));
        }
        let mut theta0 = Array2::zeros((runs.len(), p));
        for (mut row, r) in theta0.rows_mut().into_iter().zip(&runs) {
            initial_parameters(&architecture, r.init, row.as_slice_mut().unwrap());
        }
        Ok(MlpSet {
            architecture,
            batch_size,
            data,
            dataset_path,
            runs,
            theta0,
            seed,
        })
    }

    /// `count` runs derived from `seed`.
    pub fn sample(
        architecture: MlpArchitecture,
        batch_size: usize,
        data: Arc<Dataset>,
        dataset_path: PathBuf,
        count: usize,
        seed: u64,
    ) -> Result<Self> {
        let runs = RunSeeds::derive_runs(seed, 0, count);
        Self::new(architecture, batch_size, data, dataset_path, runs, seed)
    }

    /// The same runs on another architecture (θ0 redrawn from the same seeds).
    pub fn with_architecture(&self, architecture: MlpArchitecture) -> Result<Self> {
        Self::new(
            architecture,
            self.batch_size,
            self.data.clone(),
            self.dataset_path.clone(),
            self.runs.clone(),
            self.seed,
        )
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let a = &self.architecture;
        write_npz(path, |z| {
            z.add("theta0", self.theta0.clone());
            z.add(
                "hidden_sizes",
                Array1::from(a.hidden.iter().map(|&h| h as i64).collect::<Vec<_>>()),
            );
            z.scalar_i64("inputs", a.inputs as i64);
            z.scalar_i64("classes", a.classes as i64);
            z.scalar_i64("activation", a.activation.code());
            write_runs(z, self.batch_size, &self.runs, self.seed);
            z.add(
                "dataset_sha256",
                Array1::from(self.data.sha256.as_bytes().to_vec()),
            );
            z.add(
                "dataset_path",
                Array1::from(self.dataset_path.to_string_lossy().as_bytes().to_vec()),
            );
            write_header(z, "mlp", Some(self.data.split));
            Ok(())
        })
    }

    /// Reads an MLP spec, loading its dataset from the recorded path (or `data_override`) and
    /// checking its checksum.
    pub fn load(npz: &mut Npz, data_override: Option<&Path>) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        let hidden: Vec<usize> = npz
            .array_nd::<i64, Ix1>("hidden_sizes")?
            .iter()
            .map(|&h| h.max(0) as usize)
            .collect();
        let code = npz.scalar("activation")? as i64;
        let activation = Activation::from_code(code)
            .ok_or_else(|| bad(npz, format!("unknown activation code {code}")))?;
        let architecture = MlpArchitecture {
            inputs: npz.scalar("inputs")? as usize,
            hidden,
            classes: npz.scalar("classes")? as usize,
            activation,
        };
        architecture
            .validate()
            .map_err(|e| bad(npz, e.to_string()))?;
        let RecordedRuns {
            batch_size,
            runs,
            theta0,
        } = RecordedRuns::read(
            npz,
            MAX_MINIBATCH,
            architecture.num_params(),
            &architecture.describe(),
        )?;
        let recorded_path = PathBuf::from(npz.text("dataset_path")?);
        let sha = npz.text("dataset_sha256")?;
        let path = data_override
            .map(Path::to_path_buf)
            .unwrap_or(recorded_path);
        if data_override.is_none() && !path.exists() {
            return Err(bad(
                npz,
                format!(
                    "its dataset {} is missing (a relative path counts from the folder \
                     sample-optimizee ran in); run from there or pass `data` PATH",
                    path.display()
                ),
            ));
        }
        let split = read_split(npz)?;
        let data = Dataset::load_split(&path, split)?;
        if data.sha256 != sha {
            return Err(bad(
                npz,
                format!(
                "dataset {} has sha256 {} but the spec was made from {sha}; pass the original data",
                path.display(),
                data.sha256
            ),
            ));
        }
        let seed = npz.scalar_or("seed", 0.0)? as u64;
        let set = MlpSet {
            architecture,
            batch_size,
            data: Arc::new(data),
            dataset_path: path,
            runs,
            theta0,
            seed,
        };
        if set.data.pixels() != set.architecture.inputs {
            return Err(bad(
                npz,
                "the dataset's image size does not match the MLP's inputs".into(),
            ));
        }
        if set.data.classes > set.architecture.classes {
            return Err(bad(
                npz,
                format!(
                    "its MLP has {} classes but the dataset's labels need {}",
                    set.architecture.classes, set.data.classes
                ),
            ));
        }
        Ok(set)
    }
}

impl ProblemSet for MlpSet {
    type Scratch = MlpScratch;

    fn count(&self) -> usize {
        self.runs.len()
    }
    fn dim(&self) -> usize {
        self.architecture.num_params()
    }
    fn scratch(&self) -> MlpScratch {
        let b = self.batch_size;
        let layers = self.architecture.layers();
        // One [batch, units] buffer per layer, or per hidden layer.
        let per_layer = |of: &[(usize, usize)]| -> Vec<Array2<f32>> {
            of.iter().map(|&(_, o)| Array2::zeros((b, o))).collect()
        };
        let hidden = &layers[..layers.len() - 1];
        MlpScratch {
            x: Array2::zeros((b, self.architecture.inputs)),
            labels: vec![0; b],
            z: per_layer(&layers),
            a: per_layer(hidden),
            dz: per_layer(&layers),
            r_z: per_layer(&layers),
            r_a: per_layer(hidden),
            r_dz: per_layer(&layers),
        }
    }
    fn initial_point(&self, problem: usize, theta: &mut [f32]) {
        theta.copy_from_slice(self.theta0.row(problem).as_slice().unwrap());
    }
    fn loss_and_gradient(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        grad: &mut [f32],
        s: &mut MlpScratch,
    ) -> f64 {
        let mut rng = Rng::new(self.runs[problem].minibatch, step as u64);
        let n = self.data.len() as u64;
        for (mut row, label) in s.x.rows_mut().into_iter().zip(s.labels.iter_mut()) {
            let i = rng.below(n) as usize;
            row.assign(&self.data.images.row(i));
            *label = self.data.labels[i];
        }
        mlp_loss_and_gradient(&self.architecture, theta, grad, s)
    }
    fn hessian(&self) -> Option<&dyn HessianVector<MlpScratch>> {
        Some(self)
    }
    fn data_split(&self) -> Option<DataSplit> {
        Some(self.data.data_split())
    }
}

impl HessianVector<MlpScratch> for MlpSet {
    fn hessian_vector(
        &self,
        problem: usize,
        step: usize,
        theta: &[f32],
        v: &[f32],
        hv: &mut [f32],
        s: &mut MlpScratch,
    ) {
        // The forward and backward pass leave z, a and dz of this minibatch in the scratch;
        // their gradient output is overwritten below.
        self.loss_and_gradient(problem, step, theta, hv, s);
        mlp_hessian_vector(&self.architecture, theta, v, hv, s);
    }
}

/// Training runs for meta-training: every epoch, fresh runs (new θ0 and minibatches) of the
/// spec's architecture and data, from the spec's seed.
pub struct MlpSource {
    pub like: MlpSet,
}

impl TrainingSource for MlpSource {
    type Set = MlpSet;

    fn draw(&self, epoch: u64, batch: usize) -> MlpSet {
        let l = &self.like;
        let runs = RunSeeds::derive_runs(l.seed, epoch + 1, batch);
        MlpSet::new(
            l.architecture.clone(),
            l.batch_size,
            l.data.clone(),
            l.dataset_path.clone(),
            runs,
            l.seed,
        )
        .expect("the spec's architecture was validated")
    }

    fn describe(&self) -> String {
        let l = &self.like;
        let split = match l.data.split {
            Split::All => String::new(),
            other => format!(", split={}", other.name()),
        };
        format!(
            "mlp({}, batch_size={}, data_sha256={}{split}, seed={})",
            l.architecture.describe(),
            l.batch_size,
            l.data.sha256,
            l.seed
        )
    }

    fn data_split(&self) -> Option<DataSplit> {
        Some(self.like.data.data_split())
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! Conv-net classifiers on CIFAR-10 trained on minibatches with a softmax cross-entropy loss
//! (§3.3), with their parameters in two groups, each served by its own learned network.
//!
//! The parameters of a run are one flat vector (see `architecture.rs` for the order). Weights
//! and biases start iid N(0, 0.01²), batch norm's scale γ at 1 and its offset β at 0. A run
//! may use a subset of the ten labels (CIFAR-5, CIFAR-2), renumbered 0, 1, … in the order
//! given. A set draws from one split of CIFAR-10 (docs/formats.md, "Splits"): `train` runs
//! take their minibatches from the training batches and measure their held-out loss on the
//! test batch; `test` runs, which a learned optimizer meets only when it is tested (the
//! original code's `mode="test"`), take their minibatches from the test batch and measure their
//! held-out loss on as many training-batch images, the first of those labels in file order.
//! Either way the held-out images are ones the optimizee never trains on. The minibatch of run
//! r at step t is drawn uniformly with replacement from the stream (minibatch seed of r, t), so
//! every optimizer evaluated on a run sees the same θ0 and the same minibatches.

mod architecture;
mod network;
mod sampling;
#[cfg(test)]
mod tests;

use super::recorded::{
    read_split, write_header, write_runs, RecordedRuns, RunSeeds, INIT_STD, MAX_ENTRIES,
};
use super::{ParamGroup, ProblemSet, TrainingSource};
use crate::datasets::{DataSplit, Dataset, Split};
use crate::error::{Error, Result};
use crate::io::{write_npz, Npz};
use crate::rng::Rng;
pub use architecture::{BlockKind, ConvArchitecture, GroupAssignment};
use ndarray::{Array1, Array2, Ix1};
pub use network::ConvScratch;
use network::{conv_loss, conv_loss_and_gradient, Layout};
pub use sampling::{CifarSplit, ConvSampling};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Images per minibatch in §3.3 (the original code's 128).
pub const PAPER_MINIBATCH: usize = 128;
/// The most images per minibatch (a conv net's activations grow with it).
pub const MAX_MINIBATCH: usize = 4096;

/// CIFAR-10 as the conv runs read it: the training batches and the test batch of one folder.
#[derive(Debug)]
pub struct Cifar {
    pub folder: PathBuf,
    pub train: Dataset,
    pub test: Dataset,
}

impl Cifar {
    /// Reads `data_batch_*.bin` (in name order) and `test_batch.bin` from `folder`.
    pub fn load(folder: &Path) -> Result<Self> {
        let mut batches: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|e| Error::io(folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("data_batch_") && n.ends_with(".bin")
                })
            })
            .collect();
        batches.sort();
        let test = folder.join("test_batch.bin");
        if batches.is_empty() || !test.exists() {
            return Err(Error::bad_file(
                folder,
                "is not a CIFAR-10 folder: it needs data_batch_*.bin and test_batch.bin \
                 (the official binary version; make cifar10 fetches it)",
            ));
        }
        Ok(Cifar {
            folder: folder.to_path_buf(),
            train: Dataset::load_cifar(&batches)?,
            test: Dataset::load_cifar(&[test])?,
        })
    }
}

/// The images of a set of labels within a dataset, with those labels renumbered 0, 1, ….
#[derive(Debug)]
struct Subset {
    /// Rows of the dataset whose label is kept.
    rows: Vec<u32>,
    /// New label of each of those rows.
    labels: Vec<u8>,
}

impl Subset {
    /// The first `n` images of the subset (all of them when it has fewer).
    fn first(mut self, n: usize) -> Self {
        self.rows.truncate(n);
        self.labels.truncate(n);
        self
    }

    fn of(data: &Dataset, keep: &[u8]) -> Self {
        let (rows, labels) = data
            .labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                keep.iter()
                    .position(|k| k == l)
                    .map(|new| (i as u32, new as u8))
            })
            .unzip();
        Subset { rows, labels }
    }
}

/// A set of conv-net training runs on CIFAR-10 (or a subset of its labels).
#[derive(Clone)]
pub struct ConvSet {
    pub architecture: ConvArchitecture,
    pub assignment: GroupAssignment,
    /// The dataset's labels this set classifies, in the order of the net's outputs.
    pub labels: Vec<u8>,
    pub batch_size: usize,
    pub data: Arc<Cifar>,
    /// Where the minibatches come from: the training batches or the test batch.
    pub split: Split,
    /// The images of this set's labels that its minibatches are drawn from.
    pool: Arc<Subset>,
    /// The images of this set's labels that its held-out loss is taken over.
    held_out: Arc<Subset>,
    layout: Arc<Layout>,
    pub runs: Vec<RunSeeds>,
    pub theta0: Array2<f32>,
    pub seed: u64,
}

/// Draws θ0 of one run: weights and biases iid N(0, 0.01²), γ = 1, β = 0.
fn initial_parameters(arch: &ConvArchitecture, seed: u64, out: &mut [f32]) {
    let mut rng = Rng::new(seed, 0);
    for (kind, _, range) in arch.blocks() {
        for x in &mut out[range] {
            *x = match kind {
                BlockKind::ConvScale | BlockKind::FcScale => 1.0,
                BlockKind::ConvOffset | BlockKind::FcOffset => 0.0,
                _ => (rng.normal() * INIT_STD) as f32,
            };
        }
    }
}

/// θ0 of each run, one row each.
fn initial_points(arch: &ConvArchitecture, runs: &[RunSeeds]) -> Array2<f32> {
    let mut theta0 = Array2::zeros((runs.len(), arch.num_params()));
    for (mut row, r) in theta0.rows_mut().into_iter().zip(runs) {
        initial_parameters(arch, r.init, row.as_slice_mut().expect("a fresh array"));
    }
    theta0
}

/// Checks a label subset: 2 to 10 distinct labels of CIFAR-10.
pub fn validate_labels(labels: &[u8]) -> Result<()> {
    let mut seen = [false; 10];
    for &l in labels {
        if l > 9 || std::mem::replace(&mut seen[l as usize], true) {
            return Err(Error::Config(format!(
                "labels {labels:?}: each must be a distinct CIFAR-10 label 0-9"
            )));
        }
    }
    if labels.len() < 2 {
        return Err(Error::Config(format!(
            "labels {labels:?}: a classifier needs 2 labels or more"
        )));
    }
    Ok(())
}

/// The images a conv set classifies: CIFAR-10's labels it keeps, renumbered 0, 1, … in the
/// order given, and the split its minibatches come from (`train` or `test`).
#[derive(Clone, Debug)]
pub struct ConvImages {
    pub data: Arc<Cifar>,
    pub labels: Vec<u8>,
    pub split: Split,
}

impl ConvSet {
    pub fn new(
        architecture: ConvArchitecture,
        assignment: GroupAssignment,
        images: ConvImages,
        batch_size: usize,
        runs: Vec<RunSeeds>,
        seed: u64,
    ) -> Result<Self> {
        Self::build(
            architecture,
            assignment,
            images,
            batch_size,
            runs,
            None,
            seed,
        )
    }

    /// Checks the settings against each other and the data, then assembles the set, with θ0
    /// as given (a spec's) or drawn from the runs' seeds.
    fn build(
        architecture: ConvArchitecture,
        assignment: GroupAssignment,
        images: ConvImages,
        batch_size: usize,
        runs: Vec<RunSeeds>,
        theta0: Option<Array2<f32>>,
        seed: u64,
    ) -> Result<Self> {
        let ConvImages {
            data,
            labels,
            split,
        } = images;
        architecture.validate()?;
        validate_labels(&labels)?;
        if architecture.classes != labels.len() {
            return Err(Error::Config(format!(
                "the conv net has {} outputs for {} labels",
                architecture.classes,
                labels.len()
            )));
        }
        if batch_size == 0 || batch_size > MAX_MINIBATCH {
            return Err(Error::setting(
                "batch_size",
                format!("between 1 and {MAX_MINIBATCH}"),
                batch_size,
            ));
        }
        let (c, h, w) = architecture.input;
        if data.train.pixels() != c * h * w || data.test.pixels() != c * h * w {
            return Err(Error::Config(format!(
                "the images have {} values; the conv net {} needs {}",
                data.train.pixels(),
                architecture.describe(),
                c * h * w
            )));
        }
        let p = architecture.num_params();
        if runs.len().saturating_mul(p) > MAX_ENTRIES {
            return Err(Error::Config(format!(
                "{} runs of {p} parameters would hold more than {} values of θ0; use fewer runs",
                runs.len(),
                MAX_ENTRIES
            )));
        }
        let train = Subset::of(&data.train, &labels);
        let test = Subset::of(&data.test, &labels);
        if train.rows.is_empty() || test.rows.is_empty() {
            return Err(Error::Config(format!(
                "the data holds no training or no test images of labels {labels:?}"
            )));
        }
        let (pool, held_out) = match split {
            Split::Train => (train, test),
            Split::Test => {
                let n = test.rows.len();
                (test, train.first(n))
            }
            Split::All => {
                return Err(Error::Config(
                    "a CIFAR-10 run draws from the train split (data_batch_*.bin) or the test \
                     split (test_batch.bin); give `split` train or `split` test"
                        .into(),
                ))
            }
        };
        let theta0 = theta0.unwrap_or_else(|| initial_points(&architecture, &runs));
        Ok(ConvSet {
            layout: Arc::new(Layout::of(&architecture)),
            architecture,
            assignment,
            labels,
            batch_size,
            data,
            split,
            pool: Arc::new(pool),
            held_out: Arc::new(held_out),
            runs,
            theta0,
            seed,
        })
    }

    /// `count` runs derived from `seed`.
    pub fn sample(
        architecture: ConvArchitecture,
        assignment: GroupAssignment,
        images: ConvImages,
        batch_size: usize,
        count: usize,
        seed: u64,
    ) -> Result<Self> {
        let runs = RunSeeds::derive_runs(seed, 0, count);
        Self::new(architecture, assignment, images, batch_size, runs, seed)
    }

    /// Images of this set's labels that its minibatches are drawn from, and held-out images.
    pub fn image_counts(&self) -> (usize, usize) {
        (self.pool.rows.len(), self.held_out.rows.len())
    }

    /// The dataset the minibatches come from, and the one the held-out images come from.
    fn sources(&self) -> (&Dataset, &Dataset) {
        match self.split {
            Split::Test => (&self.data.test, &self.data.train),
            _ => (&self.data.train, &self.data.test),
        }
    }

    /// The images this set's runs draw from: the data (named by its training batches'
    /// SHA-256) and the split.
    pub fn data_split(&self) -> DataSplit {
        DataSplit {
            sha256: self.data.train.sha256.clone(),
            split: self.split,
        }
    }

    /// The mean loss over the held-out images of this set's labels at θ, in minibatches of
    /// the set's size (batch norm with each minibatch's statistics, as in training). The last
    /// minibatch is filled up by wrapping around to the first held-out images, so every image
    /// counts and a held-out set smaller than a minibatch still gives a loss. Forward passes
    /// only.
    pub fn test_loss(&self, theta: &[f32], s: &mut ConvScratch) -> f64 {
        let b = self.batch_size;
        let n = self.held_out.rows.len();
        let (_, images) = self.sources();
        let batches = n.div_ceil(b);
        let mut total = 0.0;
        for k in 0..batches {
            for i in 0..b {
                let at = (k * b + i) % n;
                s.set_image(
                    i,
                    images
                        .images
                        .row(self.held_out.rows[at] as usize)
                        .as_slice()
                        .expect("rows of a standard-layout array"),
                );
                s.labels[i] = self.held_out.labels[at];
            }
            total += conv_loss(&self.architecture, &self.layout, theta, s);
        }
        total / batches as f64
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let a = &self.architecture;
        let ints = |v: &[usize]| Array1::from(v.iter().map(|&x| x as i64).collect::<Vec<_>>());
        write_npz(path, |z| {
            z.add("theta0", self.theta0.clone());
            z.add("input_shape", ints(&[a.input.0, a.input.1, a.input.2]));
            z.add("conv_channels", ints(&a.conv_channels));
            z.scalar_i64("kernel", a.kernel as i64);
            z.add("fc_units", ints(&a.fc_units));
            z.add(
                "labels",
                Array1::from(self.labels.iter().map(|&l| l as i64).collect::<Vec<_>>()),
            );
            z.scalar_i64("group_assignment", self.assignment.code());
            write_runs(z, self.batch_size, &self.runs, self.seed);
            let text = |s: &str| Array1::from(s.as_bytes().to_vec());
            z.add("dataset_path", text(&self.data.folder.to_string_lossy()));
            z.add("train_sha256", text(&self.data.train.sha256));
            z.add("test_sha256", text(&self.data.test.sha256));
            write_header(z, "conv", Some(self.split));
            Ok(())
        })
    }

    /// Reads a conv spec, loading CIFAR-10 from the recorded folder (or `data_override`) and
    /// checking both checksums.
    pub fn load(npz: &mut Npz, data_override: Option<&Path>) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        let sizes = |npz: &mut Npz, name: &str| -> Result<Vec<usize>> {
            Ok(npz
                .array_nd::<i64, Ix1>(name)?
                .iter()
                .map(|&v| v.clamp(0, i64::MAX) as usize)
                .collect())
        };
        let input = sizes(npz, "input_shape")?;
        if input.len() != 3 {
            return Err(bad(
                npz,
                "'input_shape' must hold channels, height, width".into(),
            ));
        }
        let labels: Vec<u8> = npz
            .array_nd::<i64, Ix1>("labels")?
            .iter()
            .map(|&l| l.clamp(0, 255) as u8)
            .collect();
        validate_labels(&labels).map_err(|e| bad(npz, e.to_string()))?;
        let architecture = ConvArchitecture {
            input: (input[0], input[1], input[2]),
            conv_channels: sizes(npz, "conv_channels")?,
            kernel: npz.scalar("kernel")?.clamp(0.0, 1e6) as usize,
            fc_units: sizes(npz, "fc_units")?,
            classes: labels.len(),
        };
        architecture
            .validate()
            .map_err(|e| bad(npz, e.to_string()))?;
        let code = npz.scalar("group_assignment")? as i64;
        let assignment = GroupAssignment::from_code(code)
            .ok_or_else(|| bad(npz, format!("unknown group_assignment code {code}")))?;
        let RecordedRuns {
            batch_size,
            runs,
            theta0,
        } = RecordedRuns::read(
            npz,
            MAX_MINIBATCH,
            architecture.num_params(),
            &format!("the conv net {}", architecture.describe()),
        )?;
        let folder = data_override
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(npz.text("dataset_path").unwrap_or_default()));
        let (train_sha, test_sha) = (npz.text("train_sha256")?, npz.text("test_sha256")?);
        // Version 1 recorded no split: its runs drew from the training batches.
        let split = match read_split(npz)? {
            Split::All => Split::Train,
            split => split,
        };
        let data = Cifar::load(&folder).map_err(|e| {
            bad(
                npz,
                format!(
                    "its CIFAR-10 folder: {e}; run from where the spec was made or pass `data` DIR"
                ),
            )
        })?;
        if data.train.sha256 != train_sha || data.test.sha256 != test_sha {
            return Err(bad(
                npz,
                format!(
                    "CIFAR-10 in {} differs from the data the spec was made from (SHA-256 of \
                     its training batches or test batch); pass the original data",
                    folder.display()
                ),
            ));
        }
        let seed = npz.scalar_or("seed", 0.0)? as u64;
        let images = ConvImages {
            data: Arc::new(data),
            labels,
            split,
        };
        ConvSet::build(
            architecture,
            assignment,
            images,
            batch_size,
            runs,
            Some(theta0),
            seed,
        )
        .map_err(|e| bad(npz, e.to_string()))
    }
}

impl ProblemSet for ConvSet {
    type Scratch = ConvScratch;

    fn count(&self) -> usize {
        self.runs.len()
    }
    fn dim(&self) -> usize {
        self.architecture.num_params()
    }
    fn scratch(&self) -> ConvScratch {
        ConvScratch::new(&self.architecture, self.batch_size)
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
        s: &mut ConvScratch,
    ) -> f64 {
        let mut rng = Rng::new(self.runs[problem].minibatch, step as u64);
        let n = self.pool.rows.len() as u64;
        let (images, _) = self.sources();
        for i in 0..self.batch_size {
            let pick = rng.below(n) as usize;
            let row = images.images.row(self.pool.rows[pick] as usize);
            s.set_image(i, row.as_slice().unwrap());
            s.labels[i] = self.pool.labels[pick];
        }
        conv_loss_and_gradient(&self.architecture, &self.layout, theta, grad, s)
    }
    fn groups(&self) -> Vec<ParamGroup> {
        self.architecture.groups(self.assignment)
    }
    fn held_out_loss(&self, theta: &[f32], s: &mut ConvScratch) -> Option<f64> {
        Some(self.test_loss(theta, s))
    }
    fn data_split(&self) -> Option<DataSplit> {
        Some(ConvSet::data_split(self))
    }
}

/// Training runs for meta-training: every epoch, fresh runs (new θ0 and minibatches) of the
/// spec's architecture, labels and data, from the spec's seed.
pub struct ConvSource {
    pub like: ConvSet,
}

impl TrainingSource for ConvSource {
    type Set = ConvSet;

    fn draw(&self, epoch: u64, batch: usize) -> ConvSet {
        let l = &self.like;
        let runs = RunSeeds::derive_runs(l.seed, epoch + 1, batch);
        // The spec's settings were checked when it was read; only the runs are new.
        ConvSet {
            architecture: l.architecture.clone(),
            assignment: l.assignment,
            labels: l.labels.clone(),
            batch_size: l.batch_size,
            data: l.data.clone(),
            split: l.split,
            pool: l.pool.clone(),
            held_out: l.held_out.clone(),
            layout: l.layout.clone(),
            theta0: initial_points(&l.architecture, &runs),
            runs,
            seed: l.seed,
        }
    }

    fn describe(&self) -> String {
        let l = &self.like;
        format!(
            "conv({}, groups={}, labels={:?}, batch_size={}, train_sha256={}{split}, seed={})",
            l.architecture.describe(),
            l.assignment.name(),
            l.labels,
            l.batch_size,
            l.data.train.sha256,
            l.seed,
            // A `train` source describes itself as before splits existed, so that the
            // fingerprints of resumable runs stay the same.
            split = match l.split {
                Split::Train => String::new(),
                other => format!(", split={}", other.name()),
            }
        )
    }

    fn data_split(&self) -> Option<DataSplit> {
        Some(self.like.data_split())
    }
}

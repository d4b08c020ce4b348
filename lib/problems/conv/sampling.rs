//! `sample-optimizee conv`: the settings of a draw of conv-net runs on CIFAR-10.

use super::{validate_labels, Cifar, ConvArchitecture, ConvImages, ConvSet, GroupAssignment};
use crate::datasets::Split;
use crate::error::Result;
use crate::problems::sampling::{Draw, SampleSpec};
use crate::problems::ProblemSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Conv-net classifiers on CIFAR-10 (§3.3): three conv layers of 16 channels (5×5, SAME, batch
/// norm, ReLU, 2×2 max-pool), a fully connected layer of 32 units with batch norm and ReLU, and
/// a softmax output, trained on minibatches of 128. Each run has its own initialisation seed
/// (weights and biases N(0, 0.01²), batch norm's γ = 1, β = 0) and minibatch seed; the spec
/// records them with θ0, the architecture, the labels, the parameter groups, and the data
/// folder and its SHA-256.
#[derive(clap::Args)]
pub struct ConvSampling {
    /// The CIFAR-10 labels to classify, comma-separated, renumbered 0, 1, … in this order
    /// (CIFAR-5: 0,1,2,3,4; CIFAR-2: 0,1; the paper's LSTM-sub trains on 5,6,7,8,9).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7,8,9")]
    pub labels: Vec<u8>,
    /// Which learned network serves which parameter: by-layer (the paper: conv layers to
    /// `conv`, the rest to `fc`) or kernels-only (the original code: conv kernels to
    /// `conv_kernels`, every other parameter to `other`).
    #[arg(long, value_enum, default_value_t = GroupAssignment::ByLayer)]
    pub groups: GroupAssignment,
    /// Images per minibatch.
    #[arg(long = "batch-size", default_value_t = 128)]
    pub batch_size: usize,
    /// The CIFAR-10 folder: data_batch_*.bin and test_batch.bin (the official binary version).
    #[arg(long)]
    pub data: PathBuf,
    /// The images the runs draw minibatches from: train (data_batch_*.bin: meta-training,
    /// validation and tuning) or test (test_batch.bin, held out from them). The held-out loss
    /// is taken over the other split's images (docs/formats.md, "Splits"). `evaluate` refuses
    /// a learned optimizer on images it was meta-trained on.
    #[arg(long, value_enum, default_value_t = CifarSplit::Train)]
    pub split: CifarSplit,
    #[command(flatten)]
    pub draw: Draw,
}

/// CIFAR-10's splits: its files have no `all`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CifarSplit {
    Train,
    Test,
}

impl From<CifarSplit> for Split {
    fn from(s: CifarSplit) -> Split {
        match s {
            CifarSplit::Train => Split::Train,
            CifarSplit::Test => Split::Test,
        }
    }
}

impl SampleSpec for ConvSampling {
    type Set = ConvSet;

    fn draw(&self) -> &Draw {
        &self.draw
    }

    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        vec![("data", self.data.as_path())]
    }

    fn sample(self) -> Result<(ConvSet, String)> {
        self.draw.check()?;
        validate_labels(&self.labels)?;
        let images = ConvImages {
            data: Arc::new(Cifar::load(&self.data)?),
            labels: self.labels,
            split: self.split.into(),
        };
        let set = ConvSet::sample(
            ConvArchitecture::paper(images.labels.len()),
            self.groups,
            images,
            self.batch_size,
            self.draw.count,
            self.draw.seed,
        )?;
        let (pool, held_out) = set.image_counts();
        let summary = format!(
            "{} runs of the conv net {} ({} parameters, labels {:?}: minibatches from {pool} \
             images of the {} split, {held_out} held-out images)",
            self.draw.count,
            set.architecture.describe(),
            set.dim(),
            set.labels,
            set.split.name(),
        );
        Ok((set, summary))
    }
}

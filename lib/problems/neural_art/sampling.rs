//! `sample-optimizee neural-art`: the settings of a draw of neural-art problems.

use super::features::FeatureNet;
use super::loss::{LossLayers, LossWeights};
use super::{ArtSettings, NeuralArtSet, Start};
use crate::error::{Error, Result};
use crate::images::Photo;
use crate::problems::sampling::{Draw, SampleSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Neural art (§3.4): each problem is an image θ (3 × SIZE × SIZE, in network units
/// (p − 128)/128) whose loss weighs its content against a crop of a photo, its style against a
/// painting (Gram matrices) and its total variation, on a fixed feature network
/// (docs/neural_art.md). Crops are squares of side 50–100% of a photo's shorter side at a
/// seeded place, spread round-robin over the photos and resized to SIZE (bicubic); the style
/// image is resized to a shorter side of SIZE. The spec records the crops' pixels, files,
/// SHA-256 and boxes, the style's pixels and SHA-256, the layers, the weights, θ0, and the
/// feature network's path and SHA-256.
#[derive(clap::Args)]
pub struct NeuralArtSampling {
    /// Content photos (8-bit RGB JPEG or PNG), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub content: Vec<PathBuf>,
    /// Style image (8-bit RGB JPEG or PNG).
    #[arg(long)]
    pub style: PathBuf,
    /// Side of the image θ in pixels (the paper trains at 64 and tests at 64 and 128).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Feature network: an npz in the layout of docs/formats.md's "Feature network" (a layer
    /// table and convNN_w, convNN_b), such as NEURAL_ART/mobilenet_v1/mobilenet_v1.npz.
    #[arg(long)]
    pub features: PathBuf,
    /// The content layer (0-based; after its ReLU6).
    #[arg(long = "content-layer", default_value_t = 10)]
    pub content_layer: usize,
    /// The style layers, comma-separated (0-based).
    #[arg(
        long = "style-layers",
        value_delimiter = ',',
        default_value = "0,2,4,8,12"
    )]
    pub style_layers: Vec<usize>,
    /// The weights α, β, γ of content, style and total variation.
    #[arg(long, value_delimiter = ',', default_value = "1,1,5")]
    pub weights: Vec<f64>,
    /// θ0: the content crop itself, or uniform noise.
    #[arg(long, value_enum, default_value_t = Start::Content)]
    pub start: Start,
    #[command(flatten)]
    pub draw: Draw,
}

impl SampleSpec for NeuralArtSampling {
    type Set = NeuralArtSet;

    fn draw(&self) -> &Draw {
        &self.draw
    }

    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        let mut inputs: Vec<(&'static str, &Path)> = self
            .content
            .iter()
            .map(|p| ("content", p.as_path()))
            .collect();
        inputs.push(("style", self.style.as_path()));
        inputs.push(("features", self.features.as_path()));
        inputs
    }

    fn sample(self) -> Result<(NeuralArtSet, String)> {
        self.draw.check()?;
        let [content, style, tv] = self.weights[..] else {
            return Err(Error::setting(
                "weights",
                "α,β,γ (three numbers)",
                format!("{} numbers", self.weights.len()),
            ));
        };
        let settings = ArtSettings {
            size: self.size,
            layers: LossLayers {
                content: self.content_layer,
                style: self.style_layers,
            },
            weights: LossWeights { content, style, tv },
            start: self.start,
        };
        let net = FeatureNet::load(&self.features)?;
        settings.validate(&net)?;
        let photos = self
            .content
            .iter()
            .map(|p| Photo::load(p))
            .collect::<Result<Vec<_>>>()?;
        let painting = Photo::load(&self.style)?;
        let Draw { count, seed, .. } = self.draw;
        let set = NeuralArtSet::sample(Arc::new(net), settings, &photos, &painting, count, seed)?;
        let summary = format!(
            "{count} neural-art problems of {size}×{size} px ({} photos, style {})",
            photos.len(),
            self.style.display(),
            size = self.size,
        );
        Ok((set, summary))
    }
}

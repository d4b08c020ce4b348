//! Neural art (§3.4): each pair of a content crop and a style image is its own problem, and
//! the optimizee is the image θ itself, `[3, S, S]` in network units, (p − 128)/128. The loss
//! (`loss.rs`) compares θ's features with the crop's at one layer and its Gram matrices with
//! the style image's at several, on a fixed feature network (`features.rs`).
//!
//! A set holds a pool of crops of one size and one style. Evaluation runs every crop of the
//! pool; meta-training draws each epoch's crops from it. The spec records the crops'
//! pixels (with their files, checksums and boxes), the style image's pixels at the run's size,
//! the layers, the weights α, β, γ, θ0, and the feature network's path and SHA-256, so a spec
//! is read without the photos.

pub mod features;
pub mod loss;
mod sampling;
mod spec_file;
#[cfg(test)]
mod tests;

use super::{Picture, ProblemSet, TrainingSource};
use crate::error::{Error, Result};
use crate::images::{bytes_of, planes_of, CropBox, Photo};

use crate::rng::Rng;
use features::{forward, FeatureNet, FeaturePass};
use loss::{art_loss, layer_gram, ArtScratch, LossLayers, LossTerms, LossWeights, Targets};
use ndarray::Array2;
pub use sampling::NeuralArtSampling;

use std::sync::Arc;

/// The largest image side l2l optimizes (θ of 512² pixels holds 786,432 values).
pub const MAX_SIZE: usize = 512;

/// Where θ starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Start {
    /// The content crop itself, so the content term starts at 0 (docs/neural_art.md).
    Content,
    /// Uniform noise over the pixel range, drawn from the run's seed.
    Noise,
}

impl Start {
    pub fn name(self) -> &'static str {
        match self {
            Start::Content => "content",
            Start::Noise => "noise",
        }
    }
    pub fn parse(s: &str) -> Option<Start> {
        match s {
            "content" => Some(Start::Content),
            "noise" => Some(Start::Noise),
            _ => None,
        }
    }
}

/// The problem's definition, shared by every crop of a set.
#[derive(Clone, Debug, PartialEq)]
pub struct ArtSettings {
    /// Side of θ in pixels.
    pub size: usize,
    pub layers: LossLayers,
    pub weights: LossWeights,
    pub start: Start,
}

impl ArtSettings {
    /// Checks the settings against the feature network.
    pub fn validate(&self, net: &FeatureNet) -> Result<()> {
        if !(8..=MAX_SIZE).contains(&self.size) {
            return Err(Error::Config(format!(
                "the image size must be 8 to {MAX_SIZE} pixels, got {}",
                self.size
            )));
        }
        let n = net.layers.len();
        if self.layers.style.is_empty() {
            return Err(Error::Config(
                "the style term needs at least one layer".into(),
            ));
        }
        if let Some(l) = self
            .layers
            .style
            .iter()
            .chain([&self.layers.content])
            .find(|&&l| l >= n)
        {
            return Err(Error::Config(format!(
                "layer {l} does not exist: the feature network has layers 0-{}",
                n - 1
            )));
        }
        let w = &self.weights;
        if [w.content, w.style, w.tv]
            .iter()
            .any(|v| !v.is_finite() || *v < 0.0)
        {
            return Err(Error::Config(format!(
                "the loss weights must be finite and ≥ 0, got {w:?}"
            )));
        }
        Ok(())
    }
}

/// A content crop: where it came from and its pixels at the run's size (`S·S·3` bytes).
#[derive(Clone, Debug)]
pub struct Crop {
    pub file: String,
    pub sha256: String,
    pub crop: CropBox,
    pub pixels: Vec<u8>,
}

/// The style image at the run's size (shorter side S, aspect ratio kept).
#[derive(Clone, Debug)]
pub struct Style {
    pub file: String,
    pub sha256: String,
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Style {
    pub fn of(photo: &Photo, size: usize) -> Style {
        let (width, height, pixels) = photo.resized_shorter_side(size as u32);
        Style {
            file: photo.path.to_string_lossy().into_owned(),
            sha256: photo.sha256.clone(),
            width: width as usize,
            height: height as usize,
            pixels,
        }
    }
}

/// The crops of a set with what their loss needs: θ0 and the content features.
struct Pool {
    crops: Vec<Crop>,
    theta0: Array2<f32>,
    content: Vec<Vec<f32>>,
}

/// A pool of neural-art problems: one style, many content crops.
#[derive(Clone)]
pub struct NeuralArtSet {
    pub net: Arc<FeatureNet>,
    pub settings: ArtSettings,
    pub style: Arc<Style>,
    style_grams: Arc<Vec<Vec<f32>>>,
    pool: Arc<Pool>,
    /// The pool's crop of each problem.
    chosen: Vec<usize>,
    pub seed: u64,
}

impl NeuralArtSet {
    /// Computes every target (one forward pass per crop and one for the style) and θ0.
    pub fn new(
        net: Arc<FeatureNet>,
        settings: ArtSettings,
        style: Style,
        crops: Vec<Crop>,
        theta0: Option<Array2<f32>>,
        seed: u64,
    ) -> Result<Self> {
        settings.validate(&net)?;
        let s = settings.size;
        let dim = 3 * s * s;
        if crops.is_empty() {
            return Err(Error::Config(
                "a neural-art set needs at least one content crop".into(),
            ));
        }
        if let Some(c) = crops.iter().find(|c| c.pixels.len() != dim) {
            return Err(Error::Config(format!(
                "the crop of {} holds {} bytes, not {s}×{s}×3",
                c.file,
                c.pixels.len()
            )));
        }
        if style.width < s
            || style.height < s
            || style.pixels.len() != style.width * style.height * 3
        {
            return Err(Error::Config(format!(
                "the style image must be at least {s}×{s} RGB, got {}×{} with {} bytes",
                style.width,
                style.height,
                style.pixels.len()
            )));
        }
        let depth = settings.layers.depth();
        let mut planes = vec![0.0; style.pixels.len()];
        planes_of(&style.pixels, &mut planes);
        let mut pass = FeaturePass::new(&net, style.height, style.width, depth);
        forward(&net, &planes, &mut pass);
        let style_grams = settings
            .layers
            .style
            .iter()
            .map(|&l| layer_gram(&net, &pass, l))
            .collect();

        let mut pass = FeaturePass::new(&net, s, s, depth);
        let mut planes = vec![0.0; dim];
        let content = crops
            .iter()
            .map(|c| {
                planes_of(&c.pixels, &mut planes);
                forward(&net, &planes, &mut pass);
                pass.outputs[settings.layers.content].clone()
            })
            .collect();
        let theta0 = match theta0 {
            Some(t) if t.dim() == (crops.len(), dim) => t,
            Some(t) => {
                return Err(Error::Config(format!(
                    "theta0 has shape {:?}; {} crops of {s}×{s}×3 need ({}, {dim})",
                    t.shape(),
                    crops.len(),
                    crops.len()
                )))
            }
            None => initial_points(&crops, settings.start, seed, dim),
        };
        let count = crops.len();
        Ok(NeuralArtSet {
            net,
            settings,
            style: Arc::new(style),
            style_grams: Arc::new(style_grams),
            pool: Arc::new(Pool {
                crops,
                theta0,
                content,
            }),
            chosen: (0..count).collect(),
            seed,
        })
    }

    /// `count` crops, spread round-robin over `photos`, each a square of side 50–100% of the
    /// photo's shorter side at a uniformly drawn place (seeded by `seed` and the crop's index),
    /// resized to the run's size.
    pub fn sample(
        net: Arc<FeatureNet>,
        settings: ArtSettings,
        photos: &[Photo],
        style: &Photo,
        count: usize,
        seed: u64,
    ) -> Result<Self> {
        if photos.is_empty() || count == 0 {
            return Err(Error::Config(
                "neural art needs at least one photo and one crop".into(),
            ));
        }
        settings.validate(&net)?;
        if let Some(small) = photos
            .iter()
            .find(|p| (p.shorter_side() as usize) < settings.size)
        {
            let (w, h) = small.image.dimensions();
            return Err(Error::bad_file(
                &small.path,
                format!(
                    "is {w}×{h} px: a crop of {0}×{0} px is larger than the image (crops are never \
                     upscaled; use a smaller `size` or a larger photo)",
                    settings.size
                ),
            ));
        }
        let crops = (0..count)
            .map(|i| {
                let photo = &photos[i % photos.len()];
                let mut rng = Rng::new(seed, i as u64);
                let shorter = photo.shorter_side();
                let side =
                    ((shorter as f64 * (0.5 + 0.5 * rng.uniform())) as u32).clamp(1, shorter);
                let (w, h) = photo.image.dimensions();
                let crop = CropBox {
                    x: rng.below((w - side + 1) as u64) as u32,
                    y: rng.below((h - side + 1) as u64) as u32,
                    side,
                };
                Ok(Crop {
                    file: photo.path.to_string_lossy().into_owned(),
                    sha256: photo.sha256.clone(),
                    crop,
                    pixels: photo.crop_resized(crop, settings.size as u32)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let style = Style::of(style, settings.size);
        NeuralArtSet::new(net, settings, style, crops, None, seed)
    }

    /// The content crop of `problem`.
    pub fn crop(&self, problem: usize) -> &Crop {
        &self.pool.crops[self.chosen[problem]]
    }

    /// f(θ) of `problem` and its three terms, without the gradient.
    pub fn terms(&self, problem: usize, theta: &[f32], s: &mut ArtScratch) -> (f64, LossTerms) {
        self.evaluate(problem, theta, None, s)
    }

    fn evaluate(
        &self,
        problem: usize,
        theta: &[f32],
        grad: Option<&mut [f32]>,
        s: &mut ArtScratch,
    ) -> (f64, LossTerms) {
        let targets = Targets {
            content: &self.pool.content[self.chosen[problem]],
            style: &self.style_grams,
        };
        let size = self.settings.size;
        art_loss(
            &self.net,
            &self.settings.layers,
            &self.settings.weights,
            &targets,
            (size, size),
            theta,
            grad,
            s,
        )
    }
}

/// Square `size`×`size` RGB images in a row, with a white gap of `size / 16` pixels.
fn side_by_side(images: &[&[u8]], size: usize) -> Picture {
    let gap = (size / 16).max(1);
    let width = images.len() * size + (images.len() - 1) * gap;
    let mut rgb = vec![255u8; width * size * 3];
    for (k, image) in images.iter().enumerate() {
        let x0 = k * (size + gap);
        for y in 0..size {
            let to = (y * width + x0) * 3;
            rgb[to..to + 3 * size].copy_from_slice(&image[y * size * 3..(y + 1) * size * 3]);
        }
    }
    Picture {
        width: width as u32,
        height: size as u32,
        rgb,
    }
}

/// θ0 of every crop: the crop itself, or uniform noise over the pixel range.
fn initial_points(crops: &[Crop], start: Start, seed: u64, dim: usize) -> Array2<f32> {
    let mut theta0 = Array2::zeros((crops.len(), dim));
    for (i, (mut row, c)) in theta0.rows_mut().into_iter().zip(crops).enumerate() {
        let row = row.as_slice_mut().expect("a fresh array");
        match start {
            Start::Content => planes_of(&c.pixels, row),
            Start::Noise => {
                let mut rng = Rng::new(seed, 1 << 32 | i as u64);
                row.iter_mut()
                    .for_each(|v| *v = (2.0 * rng.uniform() - 1.0) as f32);
            }
        }
    }
    theta0
}

impl ProblemSet for NeuralArtSet {
    type Scratch = ArtScratch;

    fn count(&self) -> usize {
        self.chosen.len()
    }
    fn dim(&self) -> usize {
        3 * self.settings.size * self.settings.size
    }
    fn scratch(&self) -> ArtScratch {
        let s = self.settings.size;
        ArtScratch::new(&self.net, &self.settings.layers, s, s)
    }
    fn initial_point(&self, problem: usize, theta: &mut [f32]) {
        theta.copy_from_slice(
            self.pool
                .theta0
                .row(self.chosen[problem])
                .as_slice()
                .expect("rows of a standard-layout array"),
        );
    }
    /// The loss does not depend on the step: each problem is deterministic.
    /// Content crop | θ (clipped to the pixel range) | the style image's centre square, with
    /// white gaps between them.
    fn render(&self, problem: usize, theta: &[f32]) -> Option<Picture> {
        let s = self.settings.size;
        let style = &self.style;
        let (x0, y0) = ((style.width - s) / 2, (style.height - s) / 2);
        let style_square: Vec<u8> = (0..s)
            .flat_map(|y| {
                let row = ((y0 + y) * style.width + x0) * 3;
                style.pixels[row..row + 3 * s].iter().copied()
            })
            .collect();
        Some(side_by_side(
            &[&self.crop(problem).pixels, &bytes_of(theta), &style_square],
            s,
        ))
    }
    fn loss_and_gradient(
        &self,
        problem: usize,
        _step: usize,
        theta: &[f32],
        grad: &mut [f32],
        s: &mut ArtScratch,
    ) -> f64 {
        self.evaluate(problem, theta, Some(grad), s).0
    }
}

/// Meta-training problems: every epoch, `batch` crops drawn uniformly from the spec's pool.
pub struct NeuralArtSource {
    pub like: NeuralArtSet,
}

impl TrainingSource for NeuralArtSource {
    type Set = NeuralArtSet;

    fn draw(&self, epoch: u64, batch: usize) -> NeuralArtSet {
        let l = &self.like;
        let mut rng = Rng::new(l.seed, (2 << 32) | epoch);
        let pool = l.pool.crops.len() as u64;
        NeuralArtSet {
            chosen: (0..batch).map(|_| rng.below(pool) as usize).collect(),
            ..l.clone()
        }
    }

    fn describe(&self) -> String {
        let l = &self.like;
        format!(
            "neural_art(size={}, layers={:?}, weights={:?}, start={}, style_sha256={}, features_sha256={}, crops={}, seed={})",
            l.settings.size,
            l.settings.layers,
            l.settings.weights,
            l.settings.start.name(),
            l.style.sha256,
            l.net.sha256,
            l.pool.crops.len(),
            l.seed
        )
    }
}

//! A trained optimizer: LSTM weights with the input and output processing it was trained with,
//! and its checkpoint file.
//!
//! Checkpoint format (`.npz`, version 1): the weight blocks of
//! [`crate::lstm::weight_blocks`] as float32, plus scalars `format_version`, `num_layers`,
//! `hidden_size`, `input_features`, `preprocessing` (0 = scale, 1 = Appendix A log/sign),
//! `preprocessing_param` (the scale, or p), `output_scale`, `epoch`, `validation_loss`, and
//! `architecture` (uint8 bytes of "coordinatewise-lstm"). Version 2 ([`CHECKPOINT_VERSION`])
//! is version 1 plus `base_optimizer` (uint8 bytes of a baseline's name) and `base_lr`, the
//! hand-designed rule whose step the LSTM's output is added to; an optimizer without one is
//! still written as version 1, so that readers of version 1 keep reading it.

use crate::error::{Error, Result};
use crate::io::{write_npz, Npz, NpzArrays};
use crate::lstm::{weight_blocks, LstmShape, LstmWeights};
use crate::optimizers::{validate_lr, BaseStep, Baseline};
use crate::preprocessing::Preprocessing;
use ndarray::{Array1, Array2};
use std::path::Path;

pub const CHECKPOINT_VERSION: i64 = 2;
pub const ARCHITECTURE: &str = "coordinatewise-lstm";
pub const NUM_LAYERS: i64 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct LearnedOptimizer {
    pub weights: LstmWeights,
    pub preprocessing: Preprocessing,
    /// The LSTM's output is multiplied by this before it is added to θ (§3.2 uses 0.1).
    pub output_scale: f32,
    /// A hand-designed rule whose step is added to the LSTM's (None in the paper).
    pub base: Option<BaseStep>,
    /// Meta-training epochs behind these weights.
    pub epoch: u64,
    /// Mean final validation loss when these weights were kept (NaN if never validated).
    pub validation_loss: f64,
}

impl LearnedOptimizer {
    /// Adds the checkpoint arrays to an archive under construction (also used by the resume
    /// state of meta-training, which stores more beside them).
    pub fn add_to(&self, a: &mut NpzArrays, prefix: &str) {
        for (name, dims, data) in self.weights.blocks() {
            let data = data.to_vec();
            let name = format!("{prefix}{name}");
            if dims.len() == 2 {
                a.add(
                    &name,
                    Array2::from_shape_vec((dims[0], dims[1]), data).unwrap(),
                );
            } else {
                a.add(&name, Array1::from(data));
            }
        }
        if !prefix.is_empty() {
            a.scalar_i64(&format!("{prefix}epoch"), self.epoch as i64);
            a.scalar_f64(&format!("{prefix}validation_loss"), self.validation_loss);
            return;
        }
        let shape = self.weights.shape();
        let (code, param) = self.preprocessing.to_code();
        a.scalar_i64(
            "format_version",
            if self.base.is_some() {
                CHECKPOINT_VERSION
            } else {
                1
            },
        );
        if let Some(base) = self.base {
            a.add(
                "base_optimizer",
                Array1::from(base.kind.name().as_bytes().to_vec()),
            );
            a.scalar_f64("base_lr", base.lr);
        }
        a.add(
            "architecture",
            Array1::from(ARCHITECTURE.as_bytes().to_vec()),
        );
        a.scalar_i64("num_layers", NUM_LAYERS);
        a.scalar_i64("hidden_size", shape.hidden as i64);
        a.scalar_i64("input_features", shape.inputs as i64);
        a.scalar_i64("preprocessing", code);
        a.scalar_f64("preprocessing_param", param);
        a.scalar_f64("output_scale", self.output_scale as f64);
        a.scalar_i64("epoch", self.epoch as i64);
        a.scalar_f64("validation_loss", self.validation_loss);
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_npz(path, |a| {
            self.add_to(a, "");
            Ok(())
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::read_from(&mut Npz::open(path)?)
    }

    /// Reads the weights stored under `prefix` by [`LearnedOptimizer::add_to`], taking the
    /// architecture and processing from `like`.
    pub fn read_prefixed(npz: &mut Npz, prefix: &str, like: &LearnedOptimizer) -> Result<Self> {
        let shape = like.weights.shape();
        let mut data = Vec::with_capacity(shape.num_params());
        for (name, dims) in weight_blocks(shape) {
            let a = npz.array::<f32>(&format!("{prefix}{name}"))?;
            if a.shape() != dims.as_slice() {
                return Err(Error::bad_file(
                    npz.path(),
                    format!(
                        "'{prefix}{name}' has shape {:?}, expected {dims:?}",
                        a.shape()
                    ),
                ));
            }
            data.extend(a.iter().copied());
        }
        Ok(LearnedOptimizer {
            weights: LstmWeights::from_flat(shape, data).expect("sizes checked"),
            epoch: npz.scalar(&format!("{prefix}epoch"))?.max(0.0) as u64,
            validation_loss: npz.scalar(&format!("{prefix}validation_loss"))?,
            ..like.clone()
        })
    }

    /// Reads and checks the checkpoint arrays of an open archive.
    pub fn read_from(npz: &mut Npz) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        if !npz.has("format_version") || !npz.has("lstm1_w") {
            return Err(bad(
                npz,
                "is not an l2l optimizer checkpoint (no format_version or lstm1_w); \
                 make one with meta-train"
                    .into(),
            ));
        }
        let version = npz.scalar("format_version")? as i64;
        if !(1..=CHECKPOINT_VERSION).contains(&version) {
            return Err(bad(
                npz,
                format!(
                "checkpoint format version {version}; this l2l reads versions 1 to {CHECKPOINT_VERSION}"
            ),
            ));
        }
        let base = if version >= 2 {
            let name = npz.text("base_optimizer")?;
            let kind = Baseline::from_name(&name).ok_or_else(|| {
                bad(
                    npz,
                    format!("unknown base_optimizer '{name}'; expected sgd, nag, rmsprop or adam"),
                )
            })?;
            let lr = npz.scalar("base_lr")?;
            validate_lr(lr).map_err(|e| bad(npz, format!("base_lr: {e}")))?;
            Some(BaseStep { kind, lr })
        } else {
            None
        };
        let arch = npz.text("architecture")?;
        let layers = npz.scalar("num_layers")? as i64;
        if arch != ARCHITECTURE || layers != NUM_LAYERS {
            return Err(bad(npz, format!(
                "checkpoint is for architecture '{}' with {layers} layers; this l2l runs '{ARCHITECTURE}' with {NUM_LAYERS}",
                arch
            )));
        }
        let hidden = npz.scalar("hidden_size")?;
        let inputs = npz.scalar("input_features")?;
        if !(1.0..=256.0).contains(&hidden) || !(1.0..=2.0).contains(&inputs) {
            return Err(bad(
                npz,
                format!("implausible sizes: hidden_size {hidden}, input_features {inputs}"),
            ));
        }
        let shape = LstmShape {
            inputs: inputs as usize,
            hidden: hidden as usize,
        };
        let code = npz.scalar("preprocessing")? as i64;
        let param = npz.scalar("preprocessing_param")?;
        let preprocessing = Preprocessing::from_code(code, param)
            .ok_or_else(|| bad(npz, format!("unknown preprocessing code {code}")))?;
        if preprocessing.features() != shape.inputs {
            return Err(bad(
                npz,
                format!(
                    "preprocessing {preprocessing} gives {} input features but the weights take {}",
                    preprocessing.features(),
                    shape.inputs
                ),
            ));
        }
        preprocessing
            .validate()
            .map_err(|e| bad(npz, e.to_string()))?;
        let mut data = Vec::with_capacity(shape.num_params());
        for (name, dims) in weight_blocks(shape) {
            let a = npz.array::<f32>(name)?;
            if a.shape() != dims.as_slice() {
                return Err(bad(npz, format!(
                    "'{name}' has shape {:?}, expected {dims:?} for hidden_size {} and {} input features \
                     (a checkpoint from another architecture?)",
                    a.shape(),
                    shape.hidden,
                    shape.inputs
                )));
            }
            data.extend(a.iter().copied());
        }
        let weights = LstmWeights::from_flat(shape, data).expect("sizes checked");
        if !weights.is_finite() {
            return Err(bad(npz, "weights contain NaN or Inf".into()));
        }
        let output_scale = npz.scalar("output_scale")? as f32;
        if !(output_scale.is_finite() && output_scale > 0.0) {
            return Err(bad(
                npz,
                format!("output_scale must be positive, found {output_scale}"),
            ));
        }
        Ok(LearnedOptimizer {
            weights,
            preprocessing,
            output_scale,
            base,
            epoch: npz.scalar("epoch")?.max(0.0) as u64,
            validation_loss: npz.scalar("validation_loss")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_of(path: &Path) -> f64 {
        Npz::open(path).unwrap().scalar("format_version").unwrap()
    }

    #[test]
    fn checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.npz");
        let mut opt = LearnedOptimizer {
            weights: LstmWeights::init(
                LstmShape {
                    inputs: 2,
                    hidden: 4,
                },
                1,
                1.0,
            ),
            preprocessing: Preprocessing::LogSign { p: 10.0 },
            output_scale: 0.1,
            base: None,
            epoch: 12,
            validation_loss: 0.5,
        };
        opt.save(&path).unwrap();
        assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        assert_eq!(version_of(&path), 1.0);
        // A base rule makes it version 2.
        opt.base = Some(BaseStep {
            kind: Baseline::Nag,
            lr: 0.75,
        });
        opt.save(&path).unwrap();
        assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        assert_eq!(version_of(&path), 2.0);
    }
}

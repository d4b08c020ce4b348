//! The checkpoint file of a learned optimizer (`.npz`; docs/formats.md, "Checkpoints").
//!
//! Version 1: the weight blocks of the architecture (for the LSTM `lstm1_w` … `out_b`) as
//! float32, plus `format_version`, `architecture` (uint8 bytes), `num_layers`, `hidden_size`,
//! `input_features`, `preprocessing` (0 = scale, 1 = Appendix A log/sign),
//! `preprocessing_param`, `output_scale`, `epoch` and `validation_loss`. Version 2 adds
//! `base_optimizer` (uint8 bytes of a baseline's name) and `base_lr`. Version 3 holds one
//! network per parameter group: `networks` (uint8 bytes, the group names joined by commas) and,
//! for each group G, the weight blocks and architecture scalars under the prefix `G.`; a base
//! rule is optional there. Version 4 adds `base_form` (uint8 bytes, `scaled`: the base rule's
//! step is multiplied by exp(output_scale · m) rather than m added to it), with one network
//! or several. Each optimizer is written in the oldest version that holds it, so readers of
//! version 1 keep reading optimizers with one network and no base rule.

use super::optimizer::{LearnedOptimizer, Network, Networks};
use super::preprocessing::Preprocessing;
use super::registry::read_architecture;
use crate::baselines::{validate_lr, BaseStep, Baseline, CorrectionForm};
use crate::datasets::DataSplit;
use crate::error::{Error, Result};
use crate::io::{write_npz, Npz, NpzArrays};
use ndarray::{Array1, Array2};
use std::path::Path;

pub const CHECKPOINT_VERSION: i64 = 4;

/// The optional `training_data` field (any version): the dataset and split the optimizer was
/// meta-trained on, as `sha256=HEX split=NAME`.
fn read_trained_on(npz: &mut Npz) -> Result<Option<DataSplit>> {
    if !npz.has("training_data") {
        return Ok(None);
    }
    let text = npz.text("training_data")?;
    DataSplit::parse(&text).map(Some).ok_or_else(|| {
        Error::bad_file(
            npz.path(),
            format!("'training_data' is '{text}', not 'sha256=HEX split=all|train|test'"),
        )
    })
}

/// The prefix of network `net`'s arrays: none for a single network.
fn network_prefix(networks: &Networks, net: &Network) -> String {
    if networks.is_single() {
        String::new()
    } else {
        format!("{}.", net.group)
    }
}

impl LearnedOptimizer {
    /// The version this optimizer is written in: the oldest that holds it.
    pub fn format_version(&self) -> i64 {
        if self.base.is_some_and(|b| b.form != CorrectionForm::Added) {
            4
        } else if !self.networks.is_single() {
            3
        } else if self.base.is_some() {
            2
        } else {
            1
        }
    }

    /// Adds the checkpoint arrays to an archive under construction. With a `prefix` only the
    /// weights, epoch and validation loss are written (the resume state keeps its best
    /// weights so, beside the current ones).
    pub fn add_to(&self, a: &mut NpzArrays, prefix: &str) {
        for (net, range) in self.networks.iter().zip(self.networks.ranges()) {
            let mut rest = &self.weights[range];
            let net_prefix = network_prefix(&self.networks, net);
            for (name, dims) in net.architecture.checkpoint_blocks() {
                let (block, tail) = rest.split_at(dims.iter().product());
                rest = tail;
                let name = format!("{prefix}{net_prefix}{name}");
                if dims.len() == 2 {
                    a.add(
                        &name,
                        Array2::from_shape_vec((dims[0], dims[1]), block.to_vec()).unwrap(),
                    );
                } else {
                    a.add(&name, Array1::from(block.to_vec()));
                }
            }
        }
        if !prefix.is_empty() {
            a.scalar_i64(&format!("{prefix}epoch"), self.epoch as i64);
            a.scalar_f64(&format!("{prefix}validation_loss"), self.validation_loss);
            return;
        }
        let (code, param) = self.preprocessing.to_code();
        a.scalar_i64("format_version", self.format_version());
        if !self.networks.is_single() {
            a.add(
                "networks",
                Array1::from(self.networks.groups().join(",").into_bytes()),
            );
        }
        if let Some(base) = self.base {
            a.add(
                "base_optimizer",
                Array1::from(base.kind.name().as_bytes().to_vec()),
            );
            a.scalar_f64("base_lr", base.lr);
            if base.form != CorrectionForm::Added {
                a.add(
                    "base_form",
                    Array1::from(base.form.name().as_bytes().to_vec()),
                );
            }
        }
        for net in self.networks.iter() {
            net.architecture
                .write_metadata(a, &network_prefix(&self.networks, net));
        }
        a.scalar_i64("preprocessing", code);
        a.scalar_f64("preprocessing_param", param);
        a.scalar_f64("output_scale", self.output_scale as f64);
        a.scalar_i64("epoch", self.epoch as i64);
        a.scalar_f64("validation_loss", self.validation_loss);
        if let Some(data) = &self.trained_on {
            a.add("training_data", Array1::from(data.to_text().into_bytes()));
        }
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
    /// networks and processing from `like`.
    pub fn read_prefixed(npz: &mut Npz, prefix: &str, like: &LearnedOptimizer) -> Result<Self> {
        Ok(LearnedOptimizer {
            weights: read_weights(npz, prefix, &like.networks)?,
            epoch: npz.scalar(&format!("{prefix}epoch"))?.max(0.0) as u64,
            validation_loss: npz.scalar(&format!("{prefix}validation_loss"))?,
            ..like.clone()
        })
    }

    /// Reads and checks the checkpoint arrays of an open archive.
    pub fn read_from(npz: &mut Npz) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        if !npz.has("format_version") || !(npz.has("lstm1_w") || npz.has("networks")) {
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
        let base = if version == 2 || npz.has("base_optimizer") {
            let name = npz.text("base_optimizer")?;
            let kind = Baseline::from_name(&name).ok_or_else(|| {
                bad(
                    npz,
                    format!("unknown base_optimizer '{name}'; expected sgd, nag, rmsprop or adam"),
                )
            })?;
            let lr = npz.scalar("base_lr")?;
            validate_lr(lr).map_err(|e| bad(npz, format!("base_lr: {e}")))?;
            let form = if npz.has("base_form") {
                let name = npz.text("base_form")?;
                CorrectionForm::from_name(&name).ok_or_else(|| {
                    bad(
                        npz,
                        format!("unknown base_form '{name}'; expected added or scaled"),
                    )
                })?
            } else {
                CorrectionForm::Added
            };
            Some(BaseStep { kind, lr, form })
        } else {
            None
        };
        // Version 4 exists only for a scaled base rule, so a version-4 file without one is not
        // what it says.
        if version == 4 && !base.is_some_and(|b| b.form == CorrectionForm::Scaled) {
            return Err(bad(
                npz,
                "format version 4 holds a scaled base rule, but this file has no base_form 'scaled'"
                    .into(),
            ));
        }
        let networks = if version == 3 || (version == 4 && npz.has("networks")) {
            let names = npz.text("networks")?;
            let mut nets = Vec::new();
            for group in names.split(',') {
                if group.is_empty() || nets.iter().any(|n: &Network| n.group == group) {
                    return Err(bad(npz, format!("invalid network list '{names}'")));
                }
                nets.push(Network {
                    group: group.to_string(),
                    architecture: read_architecture(npz, &format!("{group}."))?,
                });
            }
            Networks(nets)
        } else {
            Networks::single(read_architecture(npz, "")?)
        };
        let code = npz.scalar("preprocessing")? as i64;
        let param = npz.scalar("preprocessing_param")?;
        let preprocessing = Preprocessing::from_code(code, param)
            .ok_or_else(|| bad(npz, format!("unknown preprocessing code {code}")))?;
        for net in networks.iter() {
            let inputs = net.architecture.input_features();
            if preprocessing.features() != inputs {
                return Err(bad(
                    npz,
                    format!(
                        "preprocessing {preprocessing} gives {} input features but the weights take {inputs}",
                        preprocessing.features(),
                    ),
                ));
            }
        }
        preprocessing
            .validate()
            .map_err(|e| bad(npz, e.to_string()))?;
        let weights = read_weights(npz, "", &networks)?;
        if weights.iter().any(|w| !w.is_finite()) {
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
            networks,
            weights,
            preprocessing,
            output_scale,
            base,
            epoch: npz.scalar("epoch")?.max(0.0) as u64,
            validation_loss: npz.scalar("validation_loss")?,
            trained_on: read_trained_on(npz)?,
        })
    }
}

/// φ of `networks` from the weight blocks stored under `prefix`, each checked against the
/// shape its architecture expects.
fn read_weights(npz: &mut Npz, prefix: &str, networks: &Networks) -> Result<Vec<f32>> {
    let mut data = Vec::with_capacity(networks.num_params());
    for net in networks.iter() {
        let net_prefix = network_prefix(networks, net);
        for (name, dims) in net.architecture.checkpoint_blocks() {
            let name = format!("{prefix}{net_prefix}{name}");
            let a = npz.array::<f32>(&name)?;
            if a.shape() != dims.as_slice() {
                return Err(Error::bad_file(
                    npz.path(),
                    format!(
                        "'{name}' has shape {:?}, expected {dims:?} for {} \
                         (a checkpoint from another architecture?)",
                        a.shape(),
                        net.architecture.describe()
                    ),
                ));
            }
            data.extend(a.iter().copied());
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::lstm::LstmShape;
    use crate::learned::Architecture;
    use crate::rng::streams::LSTM_INIT;
    use std::sync::Arc;

    fn version_of(path: &Path) -> f64 {
        Npz::open(path).unwrap().scalar("format_version").unwrap()
    }

    #[test]
    fn checkpoint_round_trips_in_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opt.npz");
        let shape = LstmShape {
            inputs: 2,
            hidden: 4,
        };
        let mut opt = LearnedOptimizer {
            networks: Networks::single(Arc::new(shape)),
            weights: shape.init(1, LSTM_INIT, 1.0),
            preprocessing: Preprocessing::LogSign { p: 10.0 },
            output_scale: 0.1,
            base: None,
            epoch: 12,
            validation_loss: 0.5,
            trained_on: None,
        };
        opt.save(&path).unwrap();
        assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        assert_eq!(version_of(&path), 1.0);
        // A base rule makes it version 2.
        opt.base = Some(BaseStep {
            kind: Baseline::Nag,
            lr: 0.75,
            form: CorrectionForm::Added,
        });
        opt.save(&path).unwrap();
        assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        assert_eq!(version_of(&path), 2.0);
        // Two networks, of different sizes, make it version 3, with or without a base rule.
        let wide = LstmShape {
            inputs: 2,
            hidden: 6,
        };
        opt.networks = Networks(vec![
            Network {
                group: "conv".into(),
                architecture: Arc::new(shape),
            },
            Network {
                group: "fc".into(),
                architecture: Arc::new(wide),
            },
        ]);
        opt.weights = opt.networks.init(3, LSTM_INIT, 1.0);
        for base in [None, opt.base] {
            opt.base = base;
            opt.save(&path).unwrap();
            assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
            assert_eq!(version_of(&path), 3.0);
        }
        {
            let mut npz = Npz::open(&path).unwrap();
            assert_eq!(npz.text("networks").unwrap(), "conv,fc");
            assert_eq!(npz.array::<f32>("fc.lstm1_w").unwrap().shape(), [8, 24]);
        }
        // A scaled base rule makes it version 4, with two networks or one.
        let scaled = BaseStep {
            kind: Baseline::Nag,
            lr: 0.03,
            form: CorrectionForm::Scaled,
        };
        opt.base = Some(scaled);
        opt.save(&path).unwrap();
        assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        assert_eq!(version_of(&path), 4.0);
        opt.networks = Networks::single(Arc::new(shape));
        opt.weights = opt.networks.init(3, LSTM_INIT, 1.0);
        opt.save(&path).unwrap();
        assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        assert_eq!(version_of(&path), 4.0);
        assert_eq!(
            Npz::open(&path).unwrap().text("base_form").unwrap(),
            "scaled"
        );
    }
}

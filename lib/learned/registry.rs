//! Every learned-optimizer architecture this build knows, by name: built from settings
//! ([`ArchitectureChoice`]) and read from checkpoints ([`read_architecture`]). Meta-training,
//! evaluation, the report, the bench and resume all come here, so a new architecture is its
//! module plus a line in each of the two matches below (docs/formats.md, "Checkpoints").

use super::architecture::Architecture;
use super::gac::{GacShape, ARCHITECTURE as GAC};
use super::lstm::{LstmShape, ARCHITECTURE as LSTM, NUM_LAYERS as LSTM_LAYERS};
use super::ntm::{MemoryKind, NtmShape, NTM_BFGS, NTM_LBFGS};
use crate::error::{setting_error, Error, Result};
use crate::io::Npz;
use std::sync::Arc;

/// The architectures' checkpoint names, for messages.
pub const NAMES: [&str; 4] = [LSTM, GAC, NTM_BFGS, NTM_LBFGS];

/// The most read or write heads, and the longest history, a checkpoint may ask for.
const MAX_HEADS: usize = 16;
const MAX_HISTORY: usize = 10_000;

/// Which architecture a meta-training run trains, with the sizes that are its own (the LSTM's
/// hidden size and input features are settings of every architecture).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchitectureChoice {
    /// The coordinatewise LSTM of §2.1.
    #[default]
    Lstm,
    /// Appendix D's LSTM+GAC, with `averaging` global averaging cells per layer.
    LstmGac { averaging: usize },
    /// Appendix D's NTM-BFGS (`memory` full) or NTM-L-BFGS (a history of writes): an
    /// LSTM+GAC controller with `reads` read heads and `writes` write heads.
    Ntm {
        averaging: usize,
        reads: usize,
        writes: usize,
        memory: MemoryKind,
    },
}

impl ArchitectureChoice {
    /// The architecture of these sizes, for `inputs` features per coordinate and `hidden`
    /// units per layer.
    pub fn build(&self, inputs: usize, hidden: usize) -> Arc<dyn Architecture> {
        let lstm = LstmShape { inputs, hidden };
        match *self {
            ArchitectureChoice::Lstm => Arc::new(lstm),
            ArchitectureChoice::LstmGac { averaging } => Arc::new(GacShape { lstm, averaging }),
            ArchitectureChoice::Ntm {
                averaging,
                reads,
                writes,
                memory,
            } => Arc::new(NtmShape::new(
                inputs, hidden, averaging, reads, writes, memory,
            )),
        }
    }

    /// Checks the sizes against the hidden size: an averaging cell is one of a layer's units.
    pub fn validate(&self, hidden: usize) -> Result<()> {
        let averaging = match *self {
            ArchitectureChoice::Lstm => return Ok(()),
            ArchitectureChoice::LstmGac { averaging } => averaging,
            ArchitectureChoice::Ntm {
                averaging,
                reads,
                writes,
                memory,
            } => {
                for (setting, heads) in [("read_heads", reads), ("write_heads", writes)] {
                    if heads == 0 || heads > MAX_HEADS {
                        return setting_error(setting, format!("between 1 and {MAX_HEADS}"), heads);
                    }
                }
                if let MemoryKind::History(k) = memory {
                    if k == 0 || k > MAX_HISTORY {
                        return setting_error("history", format!("between 1 and {MAX_HISTORY}"), k);
                    }
                }
                averaging
            }
        };
        if averaging == 0 || averaging > hidden {
            return setting_error(
                "averaging_cells",
                format!("between 1 and `hidden` ({hidden})"),
                averaging,
            );
        }
        Ok(())
    }
}

/// Reads the architecture recorded under `prefix` of a checkpoint and checks its sizes.
pub fn read_architecture(npz: &mut Npz, prefix: &str) -> Result<Arc<dyn Architecture>> {
    let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
    let arch = npz.text(&format!("{prefix}architecture"))?;
    if !NAMES.contains(&arch.as_str()) {
        return Err(bad(
            npz,
            format!(
                "architecture '{arch}' is unknown to this build of l2l, which knows {}",
                NAMES.join(", ")
            ),
        ));
    }
    let layers = npz.scalar(&format!("{prefix}num_layers"))? as i64;
    if layers != LSTM_LAYERS {
        return Err(bad(
            npz,
            format!("'{arch}' with {layers} layers; this l2l runs it with {LSTM_LAYERS}"),
        ));
    }
    let hidden = npz.scalar(&format!("{prefix}hidden_size"))?;
    let inputs = npz.scalar(&format!("{prefix}input_features"))?;
    if !(1.0..=256.0).contains(&hidden) || !(1.0..=2.0).contains(&inputs) {
        return Err(bad(
            npz,
            format!("implausible sizes: hidden_size {hidden}, input_features {inputs}"),
        ));
    }
    let mut size = |name: &str, most: f64| -> Result<usize> {
        let v = npz.scalar(&format!("{prefix}{name}"))?;
        if !(1.0..=most).contains(&v) || v.fract() != 0.0 {
            return Err(bad(npz, format!("{name} {v} is not between 1 and {most}")));
        }
        Ok(v as usize)
    };
    let choice = match arch.as_str() {
        GAC => ArchitectureChoice::LstmGac {
            averaging: size("averaging_cells", hidden)?,
        },
        NTM_BFGS | NTM_LBFGS => ArchitectureChoice::Ntm {
            averaging: size("averaging_cells", hidden)?,
            reads: size("read_heads", MAX_HEADS as f64)?,
            writes: size("write_heads", MAX_HEADS as f64)?,
            memory: match arch.as_str() {
                NTM_BFGS => MemoryKind::Full,
                _ => MemoryKind::History(size("history", MAX_HISTORY as f64)?),
            },
        },
        _ => ArchitectureChoice::Lstm,
    };
    Ok(choice.build(inputs as usize, hidden as usize))
}

//! Appendix D's NTM-BFGS and NTM-L-BFGS: an LSTM+GAC controller with read and write heads on
//! a memory shared by the coordinates of a problem (docs/method.md, "Sharing between
//! coordinates").
//!
//! Each coordinate's controller reads its preprocessed gradient and its component of the
//! previous step's read results, emits its update through the LSTM's output layer, and one
//! component of every head's vectors through a linear map from h2 (`heads_w`, `heads_b`):
//! the read vectors r_j, then the left vectors a_w, then the right vectors b_w. The memory
//! ([`memory`]) takes the writes, then answers the reads.

pub(crate) mod memory;
mod tape;

use super::architecture::{Architecture, CoordinateTape, TapeRows};
use super::gac::GacShape;
use super::lstm::{LstmShape, NUM_LAYERS};
use crate::error::{Error, Result};
use crate::io::NpzArrays;
use crate::rng::{streams, Rng};
pub use memory::MemoryKind;

/// The checkpoint names of the two memories.
pub const NTM_BFGS: &str = "ntm-bfgs";
pub const NTM_LBFGS: &str = "ntm-lbfgs";

/// The largest problem NTM-BFGS takes: its n × n memory is then 16 MiB a problem.
pub const MAX_FULL_MEMORY_ROWS: usize = 2048;

/// The sizes of an NTM-BFGS or NTM-L-BFGS optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtmShape {
    /// Features of the preprocessed gradient per coordinate.
    pub features: usize,
    /// The controller: an LSTM+GAC whose inputs are the features and the read results.
    pub controller: GacShape,
    pub reads: usize,
    pub writes: usize,
    pub memory: MemoryKind,
}

impl NtmShape {
    /// An optimizer reading `features` gradient features per coordinate.
    pub fn new(
        features: usize,
        hidden: usize,
        averaging: usize,
        reads: usize,
        writes: usize,
        memory: MemoryKind,
    ) -> Self {
        NtmShape {
            features,
            controller: GacShape {
                lstm: LstmShape {
                    inputs: features + reads,
                    hidden,
                },
                averaging,
            },
            reads,
            writes,
            memory,
        }
    }

    pub(crate) fn lstm(&self) -> LstmShape {
        self.controller.lstm
    }

    /// Outputs of the heads per coordinate: r, a and b.
    pub(crate) fn head_outputs(&self) -> usize {
        self.reads + 2 * self.writes
    }

    /// Where `heads_w` (hidden × head outputs) and `heads_b` start in φ.
    pub(crate) fn heads_at(&self) -> (usize, usize) {
        let w = self.lstm().num_params();
        (w, w + self.lstm().hidden * self.head_outputs())
    }
}

impl Architecture for NtmShape {
    fn name(&self) -> &'static str {
        match self.memory {
            MemoryKind::Full => NTM_BFGS,
            MemoryKind::History(_) => NTM_LBFGS,
        }
    }
    fn label(&self) -> &'static str {
        self.name()
    }
    fn describe(&self) -> String {
        let history = match self.memory {
            MemoryKind::Full => String::new(),
            MemoryKind::History(k) => format!(", history={k}"),
        };
        format!(
            "{}(layers={NUM_LAYERS}, hidden={}, averaging_cells={}, read_heads={}, write_heads={}{history}, inputs={})",
            self.name(),
            self.lstm().hidden,
            self.controller.averaging,
            self.reads,
            self.writes,
            self.features
        )
    }
    fn input_features(&self) -> usize {
        self.features
    }
    fn num_params(&self) -> usize {
        self.heads_at().1 + self.head_outputs()
    }
    /// The LSTM's output layer: the update, which a base rule's correction starts from zero.
    fn output_layer(&self) -> std::ops::Range<usize> {
        self.lstm().output_layer()
    }
    /// The controller as an LSTM of its inputs; the heads N(0, 0.3²/hidden), small enough that
    /// the first reads are small beside the gradient.
    fn init(&self, seed: u64, stream: u64, forget_bias: f32) -> Vec<f32> {
        let mut w = self.lstm().init(seed, stream, forget_bias);
        let std = 0.3 / (self.lstm().hidden as f64).sqrt();
        let mut rng = Rng::new(seed, streams::heads_init(stream));
        let heads = self.lstm().hidden * self.head_outputs();
        w.extend((0..heads).map(|_| (rng.normal() * std) as f32));
        w.resize(self.num_params(), 0.0);
        w
    }
    fn check_rows(&self, rows: TapeRows) -> Result<()> {
        let n = rows.per_problem();
        if self.memory == MemoryKind::Full && n > MAX_FULL_MEMORY_ROWS {
            return Err(Error::Config(format!(
                "ntm-bfgs keeps an n × n memory per problem, and this problem has n = {n} \
                 coordinates ({:.1} GiB a problem, beyond its bound of n = {MAX_FULL_MEMORY_ROWS}); \
                 use `architecture` ntm-lbfgs, whose memory is a history of writes",
                (n * n * 4) as f64 / (1u64 << 30) as f64
            )));
        }
        Ok(())
    }
    fn tape(&self, rows: TapeRows, slots: usize) -> Box<dyn CoordinateTape> {
        Box::new(tape::NtmTape::new(*self, rows, slots))
    }
    fn checkpoint_blocks(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut blocks = self.lstm().checkpoint_blocks();
        blocks.push(("heads_w", vec![self.lstm().hidden, self.head_outputs()]));
        blocks.push(("heads_b", vec![self.head_outputs()]));
        blocks
    }
    fn write_metadata(&self, a: &mut NpzArrays, prefix: &str) {
        let sizes = LstmShape {
            inputs: self.features,
            ..self.lstm()
        };
        sizes.write_sizes(a, prefix, self.name());
        let scalars = [
            ("averaging_cells", self.controller.averaging),
            ("read_heads", self.reads),
            ("write_heads", self.writes),
        ];
        for (name, value) in scalars {
            a.scalar_i64(&format!("{prefix}{name}"), value as i64);
        }
        if let MemoryKind::History(k) = self.memory {
            a.scalar_i64(&format!("{prefix}history"), k as i64);
        }
    }
    /// The controller's, plus the heads' products; the memory's reads and writes add
    /// O(heads · n) per coordinate for NTM-BFGS and O(k · heads²) for NTM-L-BFGS, not counted.
    fn flops_per_coordinate(&self) -> (f64, f64) {
        let (f, b) = self.lstm().flops_per_coordinate();
        let heads = 2.0 * (self.lstm().hidden * self.head_outputs()) as f64;
        (f + heads, b + 2.0 * heads)
    }
}

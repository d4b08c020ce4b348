//! What a learned optimizer architecture provides: a network applied to every coordinate of
//! the optimizee, with weights φ in one flat f32 vector (docs/method.md, "The optimizer").
//! The coordinatewise LSTM of §2.1 ([`crate::learned::lstm`]) is the first, Appendix D's
//! LSTM+GAC ([`crate::learned::gac`]), whose averaging cells see every coordinate of a problem,
//! the second. An architecture implements these two traits and is named once in
//! [`crate::learned::registry`], which builds it from settings and reads it from checkpoints.

use crate::io::NpzArrays;

/// The rows a tape serves: `problems` problems of `rows / problems` rows each, one after
/// another. An architecture that shares information between coordinates (Appendix D) does so
/// only inside one problem's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapeRows {
    pub rows: usize,
    pub problems: usize,
}

impl TapeRows {
    /// Rows of `problems` problems of `per_problem` rows each.
    pub fn new(problems: usize, per_problem: usize) -> Self {
        TapeRows {
            rows: problems * per_problem,
            problems,
        }
    }

    /// Rows of each problem (0 for no problem).
    pub fn per_problem(&self) -> usize {
        self.rows.checked_div(self.problems).unwrap_or(0)
    }
}

/// The forward and backward state of an architecture over `rows` coordinates (one row each),
/// with room for the steps of one truncated unroll.
pub trait CoordinateTape: Send {
    /// Bytes held, for memory reports.
    fn bytes(&self) -> usize;
    /// Zeroes the per-row state (a new trajectory).
    fn reset_state(&mut self);
    /// Begins a truncated unroll: the state carries over, but gradients stop here.
    fn start_unroll(&mut self);
    /// One step over every row: `inputs` holds `rows × input_features` preprocessed gradient
    /// features, `outputs` receives the network's raw output per row. On a recording tape the
    /// step is kept for BPTT.
    fn forward(&mut self, w: &[f32], inputs: &[f32], outputs: &mut [f32]);
    /// Truncated BPTT over the recorded steps: `d_outputs[t * rows + r]` is dL/d(output) of row
    /// r at step t; the inputs are constants (the paper's dashed edges). Adds dL/dφ to `grad`.
    fn backward(&mut self, w: &[f32], d_outputs: &[f32], grad: &mut [f32]);
    /// Starts a backward pass taken one step at a time by [`CoordinateTape::backward_step`].
    fn backward_begin(&mut self);
    /// Backward through recorded step `t` given its `dy` (one per row); writes dL/d(inputs)
    /// of that step to `d_inputs` (`rows × input_features`).
    fn backward_step(&mut self, w: &[f32], t: usize, dy: &[f32], d_inputs: &mut [f32]);
    /// Ends a step-by-step backward pass: adds dL/dφ to `grad`.
    fn backward_finish(&mut self, grad: &mut [f32]);
    /// A copy of this tape and its state.
    fn boxed_clone(&self) -> Box<dyn CoordinateTape>;
}

/// A learned optimizer architecture over flat parameters.
pub trait Architecture: Send + Sync + std::fmt::Debug {
    /// The name recorded in checkpoints (`architecture`).
    fn name(&self) -> &'static str;
    /// Its short name in a trajectory's `optimizer` column (`lstm`, `lstm-gac`).
    fn label(&self) -> &'static str;
    /// Every size that matters, for messages and equality.
    fn describe(&self) -> String;
    /// Features per coordinate it reads (1 for a scaled gradient, 2 for Appendix A's).
    fn input_features(&self) -> usize;
    fn num_params(&self) -> usize;
    /// Where the linear output layer sits in φ (zeroed to start from a base rule; ES's
    /// `--es-scope output`).
    fn output_layer(&self) -> std::ops::Range<usize>;
    /// Fresh weights from stream `stream` of `seed`; `forget_bias` is the initial bias of any
    /// forget gates.
    fn init(&self, seed: u64, stream: u64, forget_bias: f32) -> Vec<f32>;
    /// Refuses rows it cannot serve (a memory beyond its bound), before any tape is made.
    fn check_rows(&self, _rows: TapeRows) -> crate::error::Result<()> {
        Ok(())
    }
    /// A tape over `rows` (every problem's coordinates, problem after problem): forward-only
    /// with `slots == 1`, else recording `slots` steps for BPTT.
    fn tape(&self, rows: TapeRows, slots: usize) -> Box<dyn CoordinateTape>;
    /// The weight blocks in φ's order, as checkpoint array names and shapes.
    fn checkpoint_blocks(&self) -> Vec<(&'static str, Vec<usize>)>;
    /// Writes the scalars that describe the architecture, under `prefix`.
    fn write_metadata(&self, a: &mut NpzArrays, prefix: &str);
    /// FLOPs of one forward and one backward step per coordinate, for the benchmark.
    fn flops_per_coordinate(&self) -> (f64, f64);
}

/// Gradients of the parts of a tape (blocks of rows, or problems), one per part, allocated for a
/// recording tape only; [`add_in_order`] sums them.
pub(crate) fn part_gradients(parts: usize, params: usize, slots: usize) -> Vec<Vec<f32>> {
    if slots > 1 {
        vec![vec![0.0; params]; parts]
    } else {
        Vec::new()
    }
}

/// Adds the parts' gradients to `grad` in part order, so that the sum does not depend on which
/// thread took which part.
pub(crate) fn add_in_order(parts: &[Vec<f32>], grad: &mut [f32]) {
    for g in parts {
        for (a, b) in grad.iter_mut().zip(g) {
            *a += b;
        }
    }
}

impl Clone for Box<dyn CoordinateTape> {
    fn clone(&self) -> Self {
        self.boxed_clone()
    }
}

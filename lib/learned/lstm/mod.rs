//! The coordinatewise two-layer LSTM optimizer of §2.1 (docs/method.md, "The optimizer"), the
//! first [`Architecture`]: its sizes, the layout of its weights φ inside a flat vector, and its
//! tapes (`tape` for one block of rows, [`blocked`] for many).
//!
//! Every coordinate of the optimizee is a row; all rows share φ and keep their own (h, c) per
//! layer. Gate order inside each layer's 4H pre-activations: input i, forget f, cell candidate
//! g, output o.

pub mod blocked;
pub(crate) mod tape;

use super::architecture::{Architecture, CoordinateTape, TapeRows};
use crate::io::NpzArrays;
use crate::rng::Rng;
use ndarray::ArrayView2;

pub use blocked::{BlockedTape, BLOCK_ROWS};

/// The checkpoint's name for this architecture.
pub const ARCHITECTURE: &str = "coordinatewise-lstm";
/// LSTM layers (§2.1 uses two).
pub const NUM_LAYERS: i64 = 2;

/// The sizes of a two-layer coordinatewise LSTM optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LstmShape {
    /// Input features per coordinate: 1 for a scaled gradient, 2 for Appendix A's (log, sign).
    pub inputs: usize,
    /// Hidden units in each of the two layers (20 in the paper).
    pub hidden: usize,
}

/// Where each weight block lives inside the flat parameter vector.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) w1: usize,
    pub(crate) b1: usize,
    pub(crate) w2: usize,
    pub(crate) b2: usize,
    pub(crate) w_out: usize,
    pub(crate) b_out: usize,
    pub(crate) len: usize,
}

impl LstmShape {
    pub fn gates(&self) -> usize {
        4 * self.hidden
    }
    pub(crate) fn layout(&self) -> Layout {
        let (f, h) = (self.inputs, self.hidden);
        let w1 = 0;
        let b1 = w1 + (f + h) * 4 * h;
        let w2 = b1 + 4 * h;
        let b2 = w2 + 2 * h * 4 * h;
        let w_out = b2 + 4 * h;
        let b_out = w_out + h;
        Layout {
            w1,
            b1,
            w2,
            b2,
            w_out,
            b_out,
            len: b_out + 1,
        }
    }
    /// Multiply-adds of one forward step for one coordinate, counted as 2 FLOPs each, plus the
    /// element-wise gate work (about 12 FLOPs per hidden unit and layer, transcendental counted
    /// as one). Used only to report achieved GFLOP/s.
    pub fn forward_flops_per_coordinate(&self) -> f64 {
        let (f, h) = (self.inputs as f64, self.hidden as f64);
        2.0 * (f + h) * 4.0 * h + 2.0 * 2.0 * h * 4.0 * h + 2.0 * h + 2.0 * 12.0 * h
    }
    /// FLOPs of BPTT per coordinate and step: two GEMMs per layer (input gradient and weight
    /// gradient), each the size of the forward GEMM, plus element-wise work.
    pub fn backward_flops_per_coordinate(&self) -> f64 {
        let (f, h) = (self.inputs as f64, self.hidden as f64);
        2.0 * (2.0 * (f + h) * 4.0 * h + 2.0 * 2.0 * 2.0 * h * 4.0 * h) + 4.0 * h + 2.0 * 16.0 * h
    }
}

/// The names under which each weight block is stored in a checkpoint, with its shape.
pub fn weight_blocks(shape: LstmShape) -> [(&'static str, Vec<usize>); 6] {
    let (f, h) = (shape.inputs, shape.hidden);
    [
        ("lstm1_w", vec![f + h, 4 * h]),
        ("lstm1_b", vec![4 * h]),
        ("lstm2_w", vec![2 * h, 4 * h]),
        ("lstm2_b", vec![4 * h]),
        ("out_w", vec![h]),
        ("out_b", vec![1]),
    ]
}

impl Architecture for LstmShape {
    fn name(&self) -> &'static str {
        ARCHITECTURE
    }
    fn label(&self) -> &'static str {
        "lstm"
    }
    fn describe(&self) -> String {
        format!(
            "{ARCHITECTURE}(layers={NUM_LAYERS}, hidden={}, inputs={})",
            self.hidden, self.inputs
        )
    }
    fn input_features(&self) -> usize {
        self.inputs
    }
    fn num_params(&self) -> usize {
        self.layout().len
    }
    fn output_layer(&self) -> std::ops::Range<usize> {
        let l = self.layout();
        l.w_out..l.len
    }

    /// N(0, 1/fan_in) for the LSTM matrices, the given forget-gate bias, and a small output
    /// layer so that the first updates are small.
    fn init(&self, seed: u64, stream: u64, forget_bias: f32) -> Vec<f32> {
        let mut w = vec![0.0f32; self.num_params()];
        let mut rng = Rng::new(seed, stream);
        let l = self.layout();
        let h = self.hidden;
        let std1 = 1.0 / ((self.inputs + h) as f64).sqrt();
        let std2 = 1.0 / ((2 * h) as f64).sqrt();
        for x in &mut w[l.w1..l.b1] {
            *x = (rng.normal() * std1) as f32;
        }
        for x in &mut w[l.w2..l.b2] {
            *x = (rng.normal() * std2) as f32;
        }
        for b in [l.b1, l.b2] {
            w[b + h..b + 2 * h].fill(forget_bias);
        }
        for x in &mut w[l.w_out..l.b_out] {
            *x = (rng.normal() * 0.01) as f32;
        }
        w
    }

    fn tape(&self, rows: TapeRows, slots: usize) -> Box<dyn CoordinateTape> {
        Box::new(BlockedTape::new(*self, rows.rows, slots))
    }

    fn checkpoint_blocks(&self) -> Vec<(&'static str, Vec<usize>)> {
        weight_blocks(*self).into_iter().collect()
    }

    fn write_metadata(&self, a: &mut NpzArrays, prefix: &str) {
        self.write_sizes(a, prefix, ARCHITECTURE);
    }

    fn flops_per_coordinate(&self) -> (f64, f64) {
        (
            self.forward_flops_per_coordinate(),
            self.backward_flops_per_coordinate(),
        )
    }
}

impl LstmShape {
    /// Writes `architecture` (as `name`) and the LSTM's sizes under `prefix`: the scalars of
    /// this architecture, and of those built on it.
    pub(crate) fn write_sizes(&self, a: &mut NpzArrays, prefix: &str, name: &str) {
        a.add(
            &format!("{prefix}architecture"),
            ndarray::Array1::from(name.as_bytes().to_vec()),
        );
        a.scalar_i64(&format!("{prefix}num_layers"), NUM_LAYERS);
        a.scalar_i64(&format!("{prefix}hidden_size"), self.hidden as i64);
        a.scalar_i64(&format!("{prefix}input_features"), self.inputs as i64);
    }
}

/// The LSTM's blocks inside a flat weight (or gradient) vector.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a> {
    shape: LstmShape,
    data: &'a [f32],
}

impl<'a> Weights<'a> {
    pub(crate) fn new(shape: LstmShape, data: &'a [f32]) -> Self {
        assert_eq!(data.len(), shape.num_params(), "weights of another LSTM");
        Weights { shape, data }
    }
    pub(crate) fn w1(&self) -> ArrayView2<'a, f32> {
        let l = self.shape.layout();
        let rows = self.shape.inputs + self.shape.hidden;
        ArrayView2::from_shape((rows, self.shape.gates()), &self.data[l.w1..l.b1]).unwrap()
    }
    pub(crate) fn b1(&self) -> &'a [f32] {
        let l = self.shape.layout();
        &self.data[l.b1..l.w2]
    }
    pub(crate) fn w2(&self) -> ArrayView2<'a, f32> {
        let l = self.shape.layout();
        ArrayView2::from_shape(
            (2 * self.shape.hidden, self.shape.gates()),
            &self.data[l.w2..l.b2],
        )
        .unwrap()
    }
    pub(crate) fn b2(&self) -> &'a [f32] {
        let l = self.shape.layout();
        &self.data[l.b2..l.w_out]
    }
    pub(crate) fn w_out(&self) -> &'a [f32] {
        let l = self.shape.layout();
        &self.data[l.w_out..l.b_out]
    }
    pub(crate) fn b_out(&self) -> f32 {
        self.data[self.shape.layout().b_out]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_the_paper_architecture() {
        // Two layers of 20 with one input: 4·20·(1+20) + 80 + 4·20·40 + 80 + 20 + 1.
        let shape = LstmShape {
            inputs: 1,
            hidden: 20,
        };
        assert_eq!(shape.num_params(), 1680 + 80 + 3200 + 80 + 20 + 1);
        let w = shape.init(3, crate::rng::streams::LSTM_INIT, 1.0);
        let names: Vec<_> = shape.checkpoint_blocks().iter().map(|b| b.0).collect();
        assert_eq!(
            names,
            ["lstm1_w", "lstm1_b", "lstm2_w", "lstm2_b", "out_w", "out_b"]
        );
        assert_eq!(Weights::new(shape, &w).b1()[20..40], [1.0; 20]);
    }
}

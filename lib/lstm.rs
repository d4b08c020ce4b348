//! The coordinatewise two-layer LSTM optimizer of §2.1, its forward pass over blocks of
//! coordinates, and its hand-written truncated backpropagation through time.
//!
//! Every coordinate of the optimizee is a row; all rows share the weights φ and keep their own
//! (h, c) per layer. A step over `n` rows is one GEMM per layer, `[x_t | h_{t-1}] · W`, followed
//! by a fused kernel that applies the gates row by row while the row is in cache.
//!
//! Gate order inside each layer's 4H pre-activations: input i, forget f, cell candidate g,
//! output o.

use crate::preprocessing::Preprocessing;
use crate::rng::{streams, Rng};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

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
struct Layout {
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    w_out: usize,
    b_out: usize,
    len: usize,
}

impl LstmShape {
    pub fn gates(&self) -> usize {
        4 * self.hidden
    }
    fn layout(&self) -> Layout {
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
    pub fn num_params(&self) -> usize {
        self.layout().len
    }
    /// Where the output layer (its weights, then its bias) sits in the flat parameters.
    pub fn output_layer(&self) -> std::ops::Range<usize> {
        let l = self.layout();
        l.w_out..l.len
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

/// A flat vector with the LSTM's parameter layout: the weights φ, or a gradient with respect
/// to them.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmWeights {
    shape: LstmShape,
    data: Vec<f32>,
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

impl LstmWeights {
    pub fn zeros(shape: LstmShape) -> Self {
        LstmWeights {
            shape,
            data: vec![0.0; shape.num_params()],
        }
    }

    /// Initial weights: N(0, 1/fan_in) for the LSTM matrices, the given forget-gate bias, and a
    /// small output layer so that the first updates are small.
    pub fn init(shape: LstmShape, seed: u64, forget_bias: f32) -> Self {
        let mut w = Self::zeros(shape);
        let mut rng = Rng::new(seed, streams::LSTM_INIT);
        let l = shape.layout();
        let h = shape.hidden;
        let std1 = 1.0 / ((shape.inputs + h) as f64).sqrt();
        let std2 = 1.0 / ((2 * h) as f64).sqrt();
        for x in &mut w.data[l.w1..l.b1] {
            *x = (rng.normal() * std1) as f32;
        }
        for x in &mut w.data[l.w2..l.b2] {
            *x = (rng.normal() * std2) as f32;
        }
        for b in [l.b1, l.b2] {
            w.data[b + h..b + 2 * h].fill(forget_bias);
        }
        for x in &mut w.data[l.w_out..l.b_out] {
            *x = (rng.normal() * 0.01) as f32;
        }
        w
    }

    pub fn from_flat(shape: LstmShape, data: Vec<f32>) -> Option<Self> {
        (data.len() == shape.num_params()).then_some(LstmWeights { shape, data })
    }

    pub fn shape(&self) -> LstmShape {
        self.shape
    }
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The weight blocks in checkpoint order, as flat slices.
    pub fn blocks(&self) -> Vec<(&'static str, Vec<usize>, &[f32])> {
        let mut rest = self.data.as_slice();
        weight_blocks(self.shape)
            .into_iter()
            .map(|(name, dims)| {
                let (block, tail) = rest.split_at(dims.iter().product());
                rest = tail;
                (name, dims, block)
            })
            .collect()
    }

    fn w1(&self) -> ArrayView2<'_, f32> {
        let l = self.shape.layout();
        let rows = self.shape.inputs + self.shape.hidden;
        ArrayView2::from_shape((rows, self.shape.gates()), &self.data[l.w1..l.b1]).unwrap()
    }
    fn b1(&self) -> &[f32] {
        let l = self.shape.layout();
        &self.data[l.b1..l.w2]
    }
    fn w2(&self) -> ArrayView2<'_, f32> {
        let l = self.shape.layout();
        ArrayView2::from_shape(
            (2 * self.shape.hidden, self.shape.gates()),
            &self.data[l.w2..l.b2],
        )
        .unwrap()
    }
    fn b2(&self) -> &[f32] {
        let l = self.shape.layout();
        &self.data[l.b2..l.w_out]
    }
    fn w_out(&self) -> &[f32] {
        let l = self.shape.layout();
        &self.data[l.w_out..l.b_out]
    }
    fn b_out(&self) -> f32 {
        self.data[self.shape.layout().b_out]
    }

    /// Adds `other` to `self`, block for block.
    pub fn add_assign(&mut self, other: &LstmWeights) {
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a += b;
        }
    }

    pub fn fill_zero(&mut self) {
        self.data.fill(0.0);
    }

    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|x| x.is_finite())
    }
}

/// Per-row state and the record of a truncated unroll, for one block of `rows` coordinates.
///
/// With `slots == 1` it only runs forward (evaluation); with `slots == T` it records the T
/// steps of an unroll so that [`Tape::backward`] can run BPTT over them. All buffers are
/// allocated once here and reused by every step.
#[derive(Clone)]
pub struct Tape {
    shape: LstmShape,
    rows: usize,
    slots: usize,
    /// Steps recorded since the last [`Tape::start_unroll`].
    recorded: usize,
    // Current state, carried from step to step and across unroll boundaries.
    h1: Vec<f32>,
    c1: Vec<f32>,
    h2: Vec<f32>,
    c2: Vec<f32>,
    // The cell states at the start of the current unroll (the `c_{t-1}` of its first step).
    c1_start: Vec<f32>,
    c2_start: Vec<f32>,
    // Per slot: [x | h1_prev], gate activations (later their pre-activation gradients),
    // c and tanh(c) of layer 1; [h1 | h2_prev], gates, c, tanh(c) and h of layer 2.
    xh1: Vec<f32>,
    a1: Vec<f32>,
    c1s: Vec<f32>,
    tc1: Vec<f32>,
    xh2: Vec<f32>,
    a2: Vec<f32>,
    c2s: Vec<f32>,
    tc2: Vec<f32>,
    h2s: Vec<f32>,
    /// Per gate column: 2 for the cell candidate (tanh x = 2σ(2x) − 1), 1 for σ gates.
    gate_scale: Vec<f32>,
    // Backward scratch.
    dxh2: Vec<f32>,
    dh1_next: Vec<f32>,
    dh2_next: Vec<f32>,
    dc1_carry: Vec<f32>,
    dc2_carry: Vec<f32>,
    // The output layer's gradient, summed over the steps of a backward pass.
    dw_out: Vec<f32>,
    db_out: f32,
}

impl Tape {
    pub fn new(shape: LstmShape, rows: usize, slots: usize) -> Self {
        assert!(slots >= 1);
        let (f, h) = (shape.inputs, shape.hidden);
        let state = || vec![0.0f32; rows * h];
        let per_slot = |width: usize| vec![0.0f32; slots * rows * width];
        // What only BPTT reads: a forward-only tape does not keep it.
        let record = |width: usize| {
            if slots > 1 {
                per_slot(width)
            } else {
                Vec::new()
            }
        };
        let backward = slots > 1;
        let scratch = |width: usize| {
            if backward {
                vec![0.0f32; rows * width]
            } else {
                Vec::new()
            }
        };
        Tape {
            shape,
            rows,
            slots,
            recorded: 0,
            h1: state(),
            c1: state(),
            h2: state(),
            c2: state(),
            c1_start: state(),
            c2_start: state(),
            xh1: record(f + h),
            a1: per_slot(4 * h),
            c1s: record(h),
            tc1: record(h),
            xh2: record(2 * h),
            a2: per_slot(4 * h),
            c2s: record(h),
            tc2: record(h),
            h2s: record(h),
            gate_scale: (0..4 * h)
                .map(|k| {
                    if (2 * h..3 * h).contains(&k) {
                        2.0
                    } else {
                        1.0
                    }
                })
                .collect(),
            dxh2: scratch(2 * h),
            dh1_next: scratch(h),
            dh2_next: scratch(h),
            dc1_carry: scratch(h),
            dc2_carry: scratch(h),
            dw_out: if backward { vec![0.0; h] } else { Vec::new() },
            db_out: 0.0,
        }
    }

    /// Bytes held by this tape, for memory reports.
    pub fn bytes(&self) -> usize {
        let floats = [
            &self.h1,
            &self.c1,
            &self.h2,
            &self.c2,
            &self.c1_start,
            &self.c2_start,
            &self.xh1,
            &self.a1,
            &self.c1s,
            &self.tc1,
            &self.xh2,
            &self.a2,
            &self.c2s,
            &self.tc2,
            &self.h2s,
            &self.dxh2,
            &self.dh1_next,
            &self.dh2_next,
            &self.dc1_carry,
            &self.dc2_carry,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
        floats * 4
    }

    /// Zeroes the hidden and cell states (a new trajectory).
    pub fn reset_state(&mut self) {
        for v in [&mut self.h1, &mut self.c1, &mut self.h2, &mut self.c2] {
            v.fill(0.0);
        }
        self.recorded = 0;
    }

    /// Begins a truncated unroll: the state carries over, but gradients will stop here.
    pub fn start_unroll(&mut self) {
        self.c1_start.copy_from_slice(&self.c1);
        self.c2_start.copy_from_slice(&self.c2);
        self.recorded = 0;
    }

    /// One optimizer step over all rows: `inputs` holds `rows × shape.inputs` preprocessed
    /// gradient features; `outputs` receives the raw network output per row (before the
    /// output scale). With more than one slot the step is recorded for BPTT.
    pub fn forward(&mut self, w: &LstmWeights, inputs: &[f32], outputs: &mut [f32]) {
        let (f, h, n) = (self.shape.inputs, self.shape.hidden, self.rows);
        let g4 = 4 * h;
        assert_eq!(w.shape, self.shape);
        assert_eq!(inputs.len(), n * f);
        assert_eq!(outputs.len(), n);
        let slot = if self.slots == 1 { 0 } else { self.recorded };
        assert!(
            slot < self.slots,
            "tape holds {} steps; call start_unroll",
            self.slots
        );

        // Layer 1: [x_t | h1_{t-1}] · W1 + b1. BPTT needs the rows [x | h_prev] of every step
        // for its weight gradients; a forward-only tape does not build them.
        let recording = self.slots > 1;
        if recording {
            let xh1 = &mut self.xh1[slot * n * (f + h)..(slot + 1) * n * (f + h)];
            join_rows(xh1, inputs, f, &self.h1, h);
        }
        let a1 = &mut self.a1[slot * n * g4..(slot + 1) * n * g4];
        let c1s = slot_rows(&mut self.c1s, slot, n * h);
        let tc1 = slot_rows(&mut self.tc1, slot, n * h);
        let cell = CellBuffers {
            c: &mut self.c1,
            c_record: c1s,
            tanh_c_record: tc1,
            h_out: &mut self.h1,
        };
        lstm_layer_forward(inputs, w.w1(), w.b1(), &self.gate_scale, a1, cell, h);
        if recording {
            let xh2 = &mut self.xh2[slot * n * 2 * h..(slot + 1) * n * 2 * h];
            join_rows(xh2, &self.h1, h, &self.h2, h);
        }

        // Layer 2: [h1_t | h2_{t-1}] · W2 + b2.
        let a2 = &mut self.a2[slot * n * g4..(slot + 1) * n * g4];
        let c2s = slot_rows(&mut self.c2s, slot, n * h);
        let tc2 = slot_rows(&mut self.tc2, slot, n * h);
        let h2s = slot_rows(&mut self.h2s, slot, n * h);
        let cell = CellBuffers {
            c: &mut self.c2,
            c_record: c2s,
            tanh_c_record: tc2,
            h_out: &mut self.h2,
        };
        lstm_layer_forward(&self.h1, w.w2(), w.b2(), &self.gate_scale, a2, cell, h);
        if !h2s.is_empty() {
            h2s.copy_from_slice(&self.h2);
        }
        let h2 = &self.h2;

        // Linear output layer.
        let (w_out, b_out) = (w.w_out(), w.b_out());
        for (o, hv) in outputs.iter_mut().zip(h2.chunks_exact(h)) {
            *o = b_out + hv.iter().zip(w_out).map(|(a, b)| a * b).sum::<f32>();
        }
        self.recorded += 1;
    }

    /// BPTT over the steps recorded since [`Tape::start_unroll`].
    /// `d_outputs[t * stride + offset + r]` is the gradient of the meta-loss with respect to the
    /// raw output of this tape's row `r` at step `t` (the tape may be one block of a larger
    /// set of rows). The inputs are constants (the paper's dashed edges), and no gradient flows
    /// into the state at the start of the unroll (truncation). Adds the weight gradient into
    /// `grad`.
    pub fn backward(
        &mut self,
        w: &LstmWeights,
        d_outputs: &[f32],
        stride: usize,
        offset: usize,
        grad: &mut LstmWeights,
    ) {
        let (n, steps) = (self.rows, self.recorded);
        assert!(offset + n <= stride && d_outputs.len() >= (steps - 1) * stride + offset + n);
        self.backward_begin();
        for t in (0..steps).rev() {
            let dy = &d_outputs[t * stride + offset..t * stride + offset + n];
            self.backward_step(w, t, dy, None);
        }
        self.backward_finish(grad);
    }

    /// Starts a backward pass that [`Tape::backward_step`] takes one step at a time, from the
    /// last recorded step down, so that a caller can make each step's output gradient depend
    /// on the input gradients of the steps after it (the second-order meta-gradient).
    pub fn backward_begin(&mut self) {
        assert!(self.slots > 1, "this tape was made for forward-only use");
        self.dh1_next.fill(0.0);
        self.dh2_next.fill(0.0);
        self.dc1_carry.fill(0.0);
        self.dc2_carry.fill(0.0);
        self.dw_out.fill(0.0);
        self.db_out = 0.0;
    }

    /// Backward through recorded step `t`, given dL/d(raw output) `dy` of each row at that
    /// step; with `d_inputs`, also writes dL/d(input features) of step t (`rows × inputs`).
    pub fn backward_step(
        &mut self,
        w: &LstmWeights,
        t: usize,
        dy: &[f32],
        d_inputs: Option<&mut [f32]>,
    ) {
        let (f, h, n) = (self.shape.inputs, self.shape.hidden, self.rows);
        let g4 = 4 * h;
        assert!(t < self.recorded && dy.len() == n);
        let w_out = w.w_out();
        let w1 = w.w1();
        let w2 = w.w2();
        let h2s = &self.h2s[t * n * h..(t + 1) * n * h];
        // Output layer, and dh2 = dy · w_out + (gradient from step t+1).
        for ((&d, hv), dh2) in dy
            .iter()
            .zip(h2s.chunks_exact(h))
            .zip(self.dh2_next.chunks_exact_mut(h))
        {
            self.db_out += d;
            for k in 0..h {
                self.dw_out[k] += d * hv[k];
                dh2[k] += d * w_out[k];
            }
        }
        // Layer 2 cell, then its input gradient [dh1_t | dh2_{t-1}] = dz2 · W2ᵀ.
        let c2_prev = if t == 0 {
            &self.c2_start[..]
        } else {
            &self.c2s[(t - 1) * n * h..t * n * h]
        };
        let a2 = &mut self.a2[t * n * g4..(t + 1) * n * g4];
        lstm_cell_backward(
            a2,
            &self.tc2[t * n * h..(t + 1) * n * h],
            c2_prev,
            &self.dh2_next,
            &mut self.dc2_carry,
            h,
        );
        gemm(
            view(a2, n, g4),
            w2.t(),
            0.0,
            view_mut(&mut self.dxh2, n, 2 * h),
        );
        for ((dx, dh1), dh2) in self
            .dxh2
            .chunks_exact(2 * h)
            .zip(self.dh1_next.chunks_exact_mut(h))
            .zip(self.dh2_next.chunks_exact_mut(h))
        {
            for k in 0..h {
                dh1[k] += dx[k];
            }
            dh2.copy_from_slice(&dx[h..]);
        }
        // Layer 1 cell; [dx_t | dh1_{t-1}] = dz1 · W1ᵀ, where the paper's BPTT needs no dx_t.
        let c1_prev = if t == 0 {
            &self.c1_start[..]
        } else {
            &self.c1s[(t - 1) * n * h..t * n * h]
        };
        let a1 = &mut self.a1[t * n * g4..(t + 1) * n * g4];
        lstm_cell_backward(
            a1,
            &self.tc1[t * n * h..(t + 1) * n * h],
            c1_prev,
            &self.dh1_next,
            &mut self.dc1_carry,
            h,
        );
        if let Some(dx) = d_inputs {
            gemm(
                view(a1, n, g4),
                w1.slice(ndarray::s![..f, ..]).t(),
                0.0,
                view_mut(dx, n, f),
            );
        }
        gemm(
            view(a1, n, g4),
            w1.slice_move(ndarray::s![f.., ..]).t(),
            0.0,
            view_mut(&mut self.dh1_next, n, h),
        );
    }

    /// Ends a backward pass over every recorded step: adds the weight gradient into `grad`.
    pub fn backward_finish(&mut self, grad: &mut LstmWeights) {
        let (f, h, n) = (self.shape.inputs, self.shape.hidden, self.rows);
        let g4 = 4 * h;
        let layout = self.shape.layout();
        // Weight gradients over all steps at once: one tall GEMM per layer, since every slot's
        // pre-activation gradient now sits where its activations were.
        let total = self.recorded * n;
        let g = &mut grad.data;
        {
            let dw1 = &mut g[layout.w1..layout.b1];
            gemm(
                view(&self.xh1[..total * (f + h)], total, f + h).t(),
                view(&self.a1[..total * g4], total, g4),
                1.0,
                view_mut(dw1, f + h, g4),
            );
        }
        column_sums_into(&self.a1[..total * g4], g4, &mut g[layout.b1..layout.w2]);
        {
            let dw2 = &mut g[layout.w2..layout.b2];
            gemm(
                view(&self.xh2[..total * 2 * h], total, 2 * h).t(),
                view(&self.a2[..total * g4], total, g4),
                1.0,
                view_mut(dw2, 2 * h, g4),
            );
        }
        column_sums_into(&self.a2[..total * g4], g4, &mut g[layout.b2..layout.w_out]);
        for (a, b) in g[layout.w_out..layout.b_out].iter_mut().zip(&self.dw_out) {
            *a += b;
        }
        g[layout.b_out] += self.db_out;
    }
}

/// A tape over many rows, cut into blocks of a fixed number of rows that run in parallel.
/// The cut depends only on the row count, so results do not depend on the thread count.
#[derive(Clone)]
pub struct BlockedTape {
    blocks: Vec<Tape>,
    block_grads: Vec<LstmWeights>,
    block_rows: usize,
    rows: usize,
    inputs: usize,
}

/// Rows per block: the per-step working set of a block (about 1.3 kB a row) stays in L2.
pub const BLOCK_ROWS: usize = 512;

impl BlockedTape {
    pub fn new(shape: LstmShape, rows: usize, slots: usize) -> Self {
        let block_rows = BLOCK_ROWS;
        let blocks: Vec<Tape> = (0..rows.div_ceil(block_rows).max(1))
            .map(|b| {
                Tape::new(
                    shape,
                    block_rows.min(rows - (b * block_rows).min(rows)),
                    slots,
                )
            })
            .collect();
        let block_grads = if slots > 1 {
            vec![LstmWeights::zeros(shape); blocks.len()]
        } else {
            Vec::new()
        };
        BlockedTape {
            blocks,
            block_grads,
            block_rows,
            rows,
            inputs: shape.inputs,
        }
    }

    pub fn bytes(&self) -> usize {
        self.blocks.iter().map(Tape::bytes).sum()
    }

    pub fn reset_state(&mut self) {
        self.blocks.iter_mut().for_each(Tape::reset_state);
    }

    pub fn start_unroll(&mut self) {
        self.blocks.iter_mut().for_each(Tape::start_unroll);
    }

    /// One optimizer step over all rows, block by block in parallel: preprocess `grad` into
    /// `features`, run the LSTM, and add `output_scale` × its output to `theta`.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        w: &LstmWeights,
        pre: &Preprocessing,
        grad: &[f32],
        features: &mut [f32],
        outputs: &mut [f32],
        theta: &mut [f32],
        output_scale: f32,
    ) {
        let block_step =
            |tape: &mut Tape, g: &[f32], x: &mut [f32], y: &mut [f32], th: &mut [f32]| {
                pre.apply(g, x);
                tape.forward(w, x, y);
                for (t, o) in th.iter_mut().zip(y.iter()) {
                    *t += output_scale * o;
                }
            };
        let (br, f) = (self.block_rows, self.inputs);
        if let [only] = self.blocks.as_mut_slice() {
            return block_step(only, grad, features, outputs, theta);
        }
        self.blocks
            .par_iter_mut()
            .zip(grad.par_chunks(br))
            .zip(features.par_chunks_mut(br * f))
            .zip(outputs.par_chunks_mut(br))
            .zip(theta.par_chunks_mut(br))
            .for_each(|((((tape, g), x), y), th)| block_step(tape, g, x, y, th));
    }

    /// [`Tape::forward`] over all rows, block by block in parallel.
    pub fn forward(&mut self, w: &LstmWeights, inputs: &[f32], outputs: &mut [f32]) {
        assert_eq!(outputs.len(), self.rows);
        if let [only] = self.blocks.as_mut_slice() {
            return only.forward(w, inputs, outputs);
        }
        self.blocks
            .par_iter_mut()
            .zip(inputs.par_chunks(self.block_rows * self.inputs))
            .zip(outputs.par_chunks_mut(self.block_rows))
            .for_each(|((tape, x), y)| tape.forward(w, x, y));
    }

    /// [`Tape::backward`] over all rows: `d_outputs[t * rows + r]`. Block gradients are summed
    /// in block order.
    pub fn backward(&mut self, w: &LstmWeights, d_outputs: &[f32], grad: &mut LstmWeights) {
        let (rows, block_rows) = (self.rows, self.block_rows);
        if let ([only], [g]) = (self.blocks.as_mut_slice(), self.block_grads.as_mut_slice()) {
            g.fill_zero();
            only.backward(w, d_outputs, rows, 0, g);
        } else {
            self.blocks
                .par_iter_mut()
                .zip(self.block_grads.par_iter_mut())
                .enumerate()
                .for_each(|(b, (tape, g))| {
                    g.fill_zero();
                    tape.backward(w, d_outputs, rows, b * block_rows, g);
                });
        }
        for g in &self.block_grads {
            grad.add_assign(g);
        }
    }
}

impl BlockedTape {
    /// [`Tape::backward_begin`] on every block.
    pub fn backward_begin(&mut self) {
        self.blocks.iter_mut().for_each(Tape::backward_begin);
    }

    /// [`Tape::backward_step`] over all rows, block by block in parallel: `dy` has one value
    /// per row, `d_inputs` receives `rows × inputs`.
    pub fn backward_step(&mut self, w: &LstmWeights, t: usize, dy: &[f32], d_inputs: &mut [f32]) {
        let (br, f) = (self.block_rows, self.inputs);
        if let [only] = self.blocks.as_mut_slice() {
            return only.backward_step(w, t, dy, Some(d_inputs));
        }
        self.blocks
            .par_iter_mut()
            .zip(dy.par_chunks(br))
            .zip(d_inputs.par_chunks_mut(br * f))
            .for_each(|((tape, dy), dx)| tape.backward_step(w, t, dy, Some(dx)));
    }

    /// [`Tape::backward_finish`] on every block; block gradients are summed in block order.
    pub fn backward_finish(&mut self, grad: &mut LstmWeights) {
        self.blocks
            .par_iter_mut()
            .zip(self.block_grads.par_iter_mut())
            .for_each(|(tape, g)| {
                g.fill_zero();
                tape.backward_finish(g);
            });
        for g in &self.block_grads {
            grad.add_assign(g);
        }
    }
}

/// Rows `range` of a record, or nothing for a record that is not kept.
fn slot_rows_range(record: &mut [f32], range: std::ops::Range<usize>) -> &mut [f32] {
    if record.is_empty() {
        record
    } else {
        &mut record[range]
    }
}

/// Slot `slot` (of `len` values) of a per-slot record, or nothing for a record not kept.
fn slot_rows(record: &mut [f32], slot: usize, len: usize) -> &mut [f32] {
    slot_rows_range(record, slot * len..(slot + 1) * len)
}

/// Writes rows [left | right] into `dst`, row by row (BPTT's record of a layer's input).
fn join_rows(dst: &mut [f32], left: &[f32], left_width: usize, right: &[f32], right_width: usize) {
    for ((row, l), r) in dst
        .chunks_exact_mut(left_width + right_width)
        .zip(left.chunks_exact(left_width))
        .zip(right.chunks_exact(right_width))
    {
        row[..left_width].copy_from_slice(l);
        row[left_width..].copy_from_slice(r);
    }
}

fn view(data: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), data).expect("buffer sized for its view")
}

fn view_mut(data: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), data).expect("buffer sized for its view")
}

/// C = A·B + beta·C through BLAS sgemm.
fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, mut c: ArrayViewMut2<f32>) {
    general_mat_mul(1.0, &a, &b, beta, &mut c);
}

fn column_sums_into(data: &[f32], cols: usize, out: &mut [f32]) {
    for row in data.chunks_exact(cols) {
        for (o, x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

/// The per-row state a layer's forward pass advances and records.
struct CellBuffers<'a> {
    /// The carried cell state, advanced in place.
    c: &'a mut [f32],
    c_record: &'a mut [f32],
    tanh_c_record: &'a mut [f32],
    /// Receives h = o ⊙ tanh(c).
    h_out: &'a mut [f32],
}

impl CellBuffers<'_> {
    /// The rows `start..start + len` of every buffer, for `h` units.
    fn rows(&mut self, start: usize, len: usize, h: usize) -> CellBuffers<'_> {
        let r = start * h..(start + len) * h;
        CellBuffers {
            c: &mut self.c[r.clone()],
            c_record: slot_rows_range(self.c_record, r.clone()),
            tanh_c_record: slot_rows_range(self.tanh_c_record, r.clone()),
            h_out: &mut self.h_out[r],
        }
    }
}

/// Lanes of the fused kernel's accumulators (one AVX-512 register of f32).
const LANES: usize = 16;
/// Rows per tile of the fused kernel; a tile's 4H pre-activations stay in L1 for the gate pass
/// that follows.
const TILE: usize = 5;

/// One LSTM layer forward for every row: z = [input | h_prev] · W + b, then the gates.
/// `input` is `rows × a` with a = (rows of `w`) − h; h_prev is read from `cell.h_out`, which
/// then receives the new h (each row's inputs are read before its h is written). `z`
/// (`rows × 4H`) receives the gate activations.
///
/// When 4H is a multiple of [`LANES`] this is one fused pass over tiles of [`TILE`] rows: W
/// (at most a few tens of kB) stays in L1 while each tile's products accumulate in registers,
/// and the gates are applied to the tile while it is still in L1. This avoids BLAS's per-call
/// packing, which dominates for these skinny shapes (K ≤ 40+F, 4H = 80), and any copying of
/// [input | h_prev] rows. Otherwise it is two sgemms followed by the gate pass.
fn lstm_layer_forward(
    input: &[f32],
    w: ArrayView2<f32>,
    bias: &[f32],
    gate_scale: &[f32],
    z: &mut [f32],
    mut cell: CellBuffers,
    h: usize,
) {
    let (k, g4) = w.dim();
    let a = k - h;
    let rows = z.len() / g4;
    let w = w.as_slice().expect("weights are contiguous");
    if g4 % LANES != 0 {
        let (w_in, w_rec) = w.split_at(a * g4);
        gemm(
            view(input, rows, a),
            view(w_in, a, g4),
            0.0,
            view_mut(z, rows, g4),
        );
        gemm(
            view(cell.h_out, rows, h),
            view(w_rec, h, g4),
            1.0,
            view_mut(z, rows, g4),
        );
        return lstm_cell_forward(z, Some(bias), gate_scale, cell, h);
    }
    assert!(
        a <= 256 && h <= 256,
        "layer wider than the fused kernel supports"
    );
    for start in (0..rows).step_by(TILE) {
        let len = TILE.min(rows - start);
        let z_tile = &mut z[start * g4..(start + len) * g4];
        let mut tile = cell.rows(start, len, h);
        if len == TILE {
            matmul_tile(
                &input[start * a..(start + TILE) * a],
                tile.h_out,
                w,
                bias,
                a,
                h,
                g4,
                z_tile,
            );
        } else {
            // The last, partial tile: pad its inputs with zero rows.
            let (mut x, mut r) = ([0.0f32; TILE * 256], [0.0f32; TILE * 256]);
            x[..len * a].copy_from_slice(&input[start * a..(start + len) * a]);
            r[..len * h].copy_from_slice(tile.h_out);
            let mut out = [0.0f32; TILE * 4 * 256];
            matmul_tile(
                &x[..TILE * a],
                &r[..TILE * h],
                w,
                bias,
                a,
                h,
                g4,
                &mut out[..TILE * g4],
            );
            z_tile.copy_from_slice(&out[..len * g4]);
        }
        lstm_cell_forward(z_tile, None, gate_scale, tile.rows(0, len, h), h);
    }
}

/// `out` (TILE × g4) = [`input` (TILE × a) | `recurrent` (TILE × h)] · `w` ((a+h) × g4) +
/// `bias`. Each pass covers up to [`CHUNKS`] chunks of LANES columns for all TILE rows, so
/// TILE × CHUNKS accumulators and CHUNKS rows of W sit in registers, and each input value,
/// broadcast once, feeds CHUNKS FMAs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn matmul_tile(
    input: &[f32],
    recurrent: &[f32],
    w: &[f32],
    bias: &[f32],
    a: usize,
    h: usize,
    g4: usize,
    out: &mut [f32],
) {
    let chunks = g4 / LANES;
    let mut j0 = 0;
    // 4H = 80 (the paper's 20 units) is exactly one pass of five chunks.
    for _ in 0..chunks / CHUNKS {
        matmul_tile_pass::<CHUNKS>(input, recurrent, w, bias, a, h, g4, j0, out);
        j0 += CHUNKS * LANES;
    }
    for _ in 0..chunks % CHUNKS {
        matmul_tile_pass::<1>(input, recurrent, w, bias, a, h, g4, j0, out);
        j0 += LANES;
    }
}

/// Column chunks per pass of [`matmul_tile`]: 5 rows × 5 chunks of accumulators plus 5 of W
/// use 30 of the 32 vector registers of AVX-512.
const CHUNKS: usize = 5;

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn matmul_tile_pass<const C: usize>(
    input: &[f32],
    recurrent: &[f32],
    w: &[f32],
    bias: &[f32],
    a: usize,
    h: usize,
    g4: usize,
    j0: usize,
    out: &mut [f32],
) {
    let mut acc = [[[0.0f32; LANES]; C]; TILE];
    for row in acc.iter_mut() {
        for (c, v) in row.iter_mut().enumerate() {
            v.copy_from_slice(&bias[j0 + c * LANES..j0 + (c + 1) * LANES]);
        }
    }
    // The input columns, then the recurrent ones, in the order of W's rows.
    for (source, width, w_row0) in [(&input[..TILE * a], a, 0), (&recurrent[..TILE * h], h, a)] {
        for kk in 0..width {
            let mut wv = [[0.0f32; LANES]; C];
            for (c, v) in wv.iter_mut().enumerate() {
                let at = (w_row0 + kk) * g4 + j0 + c * LANES;
                v.copy_from_slice(&w[at..at + LANES]);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let x = source[r * width + kk];
                for (v_acc, v) in row.iter_mut().zip(&wv) {
                    for l in 0..LANES {
                        v_acc[l] = x.mul_add(v[l], v_acc[l]);
                    }
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let at = r * g4 + j0 + c * LANES;
            out[at..at + LANES].copy_from_slice(v);
        }
    }
}

/// Gates of one LSTM layer for every row: turns the pre-activations `z` into activations in
/// place (adding `bias` first if given), advances the carried cell state, records c and
/// tanh(c), and writes h = o ⊙ tanh(c).
///
/// Written as two flat loops so that both vectorise: every gate is σ(s·z)·s − (s−1), with
/// s = 2 for the cell candidate (tanh x = 2σ(2x) − 1) and s = 1 for the σ gates, so one pass
/// covers all 4H gates of a row with the same instructions.
fn lstm_cell_forward(
    z: &mut [f32],
    bias: Option<&[f32]>,
    gate_scale: &[f32],
    cell: CellBuffers,
    h: usize,
) {
    let g4 = 4 * h;
    let scale = &gate_scale[..g4];
    for zr in z.chunks_exact_mut(g4) {
        let zr = &mut zr[..g4];
        if let Some(bias) = bias {
            for (x, b) in zr.iter_mut().zip(&bias[..g4]) {
                *x += b;
            }
        }
        for k in 0..g4 {
            let s = scale[k];
            zr[k] = s * sigmoid(s * zr[k]) - (s - 1.0);
        }
    }
    let CellBuffers {
        c,
        c_record,
        tanh_c_record,
        h_out,
    } = cell;
    let recording = !c_record.is_empty();
    let mut tanh_c = [0.0f32; 256];
    for (r, ((ar, cr), hr)) in z
        .chunks_exact(g4)
        .zip(c.chunks_exact_mut(h))
        .zip(h_out.chunks_exact_mut(h))
        .enumerate()
    {
        let (i, f, g, o) = (&ar[..h], &ar[h..2 * h], &ar[2 * h..3 * h], &ar[3 * h..g4]);
        let (cr, hr, tc) = (&mut cr[..h], &mut hr[..h], &mut tanh_c[..h]);
        for k in 0..h {
            let c_new = f[k] * cr[k] + i[k] * g[k];
            tc[k] = tanh(c_new);
            cr[k] = c_new;
            hr[k] = o[k] * tc[k];
        }
        if recording {
            c_record[r * h..(r + 1) * h].copy_from_slice(cr);
            tanh_c_record[r * h..(r + 1) * h].copy_from_slice(tc);
        }
    }
}

/// Backward through one LSTM layer's gates for every row, fused. `acts` holds the gate
/// activations of the step and is overwritten with the pre-activation gradients dz.
/// `dc_carry` enters as dc_{t+1} ⊙ f_{t+1} and leaves as dc_t ⊙ f_t.
fn lstm_cell_backward(
    acts: &mut [f32],
    tanh_c: &[f32],
    c_prev: &[f32],
    dh: &[f32],
    dc_carry: &mut [f32],
    h: usize,
) {
    for ((((ar, tc), cp), dhr), dcr) in acts
        .chunks_exact_mut(4 * h)
        .zip(tanh_c.chunks_exact(h))
        .zip(c_prev.chunks_exact(h))
        .zip(dh.chunks_exact(h))
        .zip(dc_carry.chunks_exact_mut(h))
    {
        let (ai, rest) = ar.split_at_mut(h);
        let (af, rest) = rest.split_at_mut(h);
        let (ag, ao) = rest.split_at_mut(h);
        let (ai, af, ag, ao) = (&mut ai[..h], &mut af[..h], &mut ag[..h], &mut ao[..h]);
        let (tc, cp, dhr, dcr) = (&tc[..h], &cp[..h], &dhr[..h], &mut dcr[..h]);
        for k in 0..h {
            let (i, f, g, o) = (ai[k], af[k], ag[k], ao[k]);
            let dc = dhr[k] * o * (1.0 - tc[k] * tc[k]) + dcr[k];
            let d_o = dhr[k] * tc[k];
            ai[k] = dc * g * i * (1.0 - i);
            af[k] = dc * cp[k] * f * (1.0 - f);
            ag[k] = dc * i * (1.0 - g * g);
            ao[k] = d_o * o * (1.0 - o);
            dcr[k] = dc * f;
        }
    }
}

/// e^x in f32, written so that it vectorises: range reduction to r ∈ [−ln2/2, ln2/2], a
/// degree-6 polynomial (relative error about 1e-7), and 2^n built from exponent bits.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n_bits + 127) as u32) << 23)
}

/// ln x in f32 for positive normal x, written so that it vectorises: x = m·2^e with
/// m ∈ [√½, √2), and ln m = 2 atanh((m−1)/(m+1)) by its odd series (error below 1e-7).
#[inline(always)]
pub(crate) fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { 0.5 * m } else { m };
    e += big as i32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + series
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp_f32(-2.0 * x)) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_float_precision() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (a, b) = (exp_f32(x), x.exp());
            assert!(((a - b) / b).abs() < 4e-7, "x={x}: {a} vs {b}");
            x += 0.0137;
        }
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite());
    }

    #[test]
    fn ln_matches_std() {
        let mut x = 1e-30f32;
        while x < 1e30 {
            let (a, b) = (ln_f32(x), x.ln());
            assert!((a - b).abs() < 2e-6 * (1.0 + b.abs()), "x={x}: {a} vs {b}");
            x *= 1.37;
        }
        assert_eq!(ln_f32(1.0), 0.0);
    }

    #[test]
    fn sigmoid_and_tanh_are_accurate_and_saturate() {
        for &x in &[-50.0f32, -5.0, -0.3, 0.0, 1e-4, 0.7, 9.0, 50.0] {
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6);
            assert!((tanh(x) - x.tanh()).abs() < 1e-6);
        }
        assert_eq!(sigmoid(1e30), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn parameter_count_matches_the_paper_architecture() {
        // Two layers of 20 with one input: 4·20·(1+20) + 80 + 4·20·40 + 80 + 20 + 1.
        let shape = LstmShape {
            inputs: 1,
            hidden: 20,
        };
        assert_eq!(shape.num_params(), 1680 + 80 + 3200 + 80 + 20 + 1);
        let w = LstmWeights::init(shape, 3, 1.0);
        let names: Vec<_> = w.blocks().iter().map(|b| b.0).collect();
        assert_eq!(
            names,
            ["lstm1_w", "lstm1_b", "lstm2_w", "lstm2_b", "out_w", "out_b"]
        );
        assert_eq!(w.b1()[20..40], [1.0; 20]);
    }

    #[test]
    fn fused_layer_matches_sgemm_then_gates() {
        for h in [4, 3] {
            // h = 4 takes the fused kernel, h = 3 the sgemm fallback; 19 rows end in a partial tile.
            let (a, rows) = (3, 19);
            let k = a + h;
            let w: Vec<f32> = (0..k * 4 * h)
                .map(|i| ((i * 29) % 17) as f32 * 0.05 - 0.4)
                .collect();
            let bias: Vec<f32> = (0..4 * h).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
            let x: Vec<f32> = (0..rows * a)
                .map(|i| ((i * 11) % 13) as f32 * 0.1 - 0.6)
                .collect();
            let h_prev: Vec<f32> = (0..rows * h)
                .map(|i| ((i * 7) % 9) as f32 * 0.1 - 0.4)
                .collect();
            let scale: Vec<f32> = (0..4 * h)
                .map(|j| {
                    if (2 * h..3 * h).contains(&j) {
                        2.0
                    } else {
                        1.0
                    }
                })
                .collect();
            let w = ArrayView2::from_shape((k, 4 * h), &w).unwrap();
            // Reference: the concatenated rows [x | h_prev] through one sgemm, then the gates.
            let xh: Vec<f32> = (0..rows)
                .flat_map(|r| {
                    x[r * a..(r + 1) * a]
                        .iter()
                        .chain(&h_prev[r * h..(r + 1) * h])
                        .copied()
                })
                .collect();
            let run = |fused: bool| {
                let mut z = vec![0.0f32; rows * 4 * h];
                let (mut c, mut cr, mut tr, mut ho) = (
                    vec![0.3f32; rows * h],
                    vec![0.0; rows * h],
                    vec![0.0; rows * h],
                    h_prev.clone(),
                );
                let cell = CellBuffers {
                    c: &mut c,
                    c_record: &mut cr,
                    tanh_c_record: &mut tr,
                    h_out: &mut ho,
                };
                if fused {
                    lstm_layer_forward(&x, w, &bias, &scale, &mut z, cell, h);
                } else {
                    gemm(view(&xh, rows, k), w, 0.0, view_mut(&mut z, rows, 4 * h));
                    lstm_cell_forward(&mut z, Some(&bias), &scale, cell, h);
                }
                (z, c, ho)
            };
            let (got, want) = (run(true), run(false));
            for (u, v) in got
                .0
                .iter()
                .zip(&want.0)
                .chain(got.1.iter().zip(&want.1))
                .chain(got.2.iter().zip(&want.2))
            {
                assert!((u - v).abs() < 1e-5, "h={h}: {u} vs {v}");
            }
        }
    }

    #[test]
    fn blocked_tape_equals_one_tape() {
        let shape = LstmShape {
            inputs: 1,
            hidden: 4,
        };
        let w = LstmWeights::init(shape, 2, 1.0);
        let rows = 2 * BLOCK_ROWS + 7;
        let x: Vec<f32> = (0..rows)
            .map(|r| ((r * 37) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let d: Vec<f32> = (0..2 * rows)
            .map(|r| ((r * 13) % 7) as f32 * 0.01)
            .collect();
        let (mut one, mut blocked) = (Tape::new(shape, rows, 2), BlockedTape::new(shape, rows, 2));
        let (mut y1, mut y2) = (vec![0.0; rows], vec![0.0; rows]);
        for _ in 0..2 {
            one.forward(&w, &x, &mut y1);
            blocked.forward(&w, &x, &mut y2);
            for (a, b) in y1.iter().zip(&y2) {
                assert!((a - b).abs() < 1e-6);
            }
        }
        let (mut g1, mut g2) = (LstmWeights::zeros(shape), LstmWeights::zeros(shape));
        one.backward(&w, &d, rows, 0, &mut g1);
        blocked.backward(&w, &d, &mut g2);
        for (a, b) in g1.as_slice().iter().zip(g2.as_slice()) {
            assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn rows_are_independent() {
        // The same input in two rows gives the same output; the weights are shared.
        let shape = LstmShape {
            inputs: 2,
            hidden: 5,
        };
        let w = LstmWeights::init(shape, 1, 1.0);
        let mut tape = Tape::new(shape, 3, 1);
        let mut out = [0.0f32; 3];
        for _ in 0..4 {
            tape.forward(&w, &[0.3, -1.0, 0.5, 0.5, 0.3, -1.0], &mut out);
        }
        assert_eq!(out[0], out[2]);
        assert_ne!(out[0], out[1]);
    }
}

//! One block of rows of the coordinatewise LSTM: its per-row state, the record of a truncated
//! unroll, and the hand-written truncated BPTT over it (docs/method.md, "Truncated BPTT").

use super::{LstmShape, Weights};
use crate::kernels::lstm_cell::{
    gate_scale, gate_scratch_len, lstm_cell_backward, lstm_layer_forward, CellBuffers,
    CellGradients,
};
use crate::kernels::{gemm, join_rows, record_rows, view, view_mut};

/// Per-row state and the record of a truncated unroll, for one block of `rows` coordinates.
///
/// With `slots == 1` it only runs forward (evaluation); with `slots == T` it records the T
/// steps of an unroll so that [`Tape::backward`] can run BPTT over them. All buffers are
/// allocated once here and reused by every step.
#[derive(Clone)]
pub(crate) struct Tape {
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
    // Per slot: [x | h1_prev], gate activations, c and tanh(c) of layer 1; [h1 | h2_prev], gates, c, tanh(c) and h of layer 2.
    // A forward-only tape keeps no record, and its gate activations are one tile's scratch.
    xh1: Vec<f32>,
    a1: Vec<f32>,
    c1s: Vec<f32>,
    tc1: Vec<f32>,
    xh2: Vec<f32>,
    a2: Vec<f32>,
    c2s: Vec<f32>,
    tc2: Vec<f32>,
    h2s: Vec<f32>,
    /// Appendix D's global averaging cells, if any: the outputs of the last units of each
    /// layer are replaced by their mean over each problem's rows.
    averaging: Option<Averaging>,
    /// Per gate column: 2 for the cell candidate (tanh x = 2σ(2x) − 1), 1 for σ gates.
    gate_scale: Vec<f32>,
    // Backward scratch: one step's pre-activation gradients of each layer, which stay in cache
    // while they feed the weight gradients and the input gradients of that step.
    dz1: Vec<f32>,
    dz2: Vec<f32>,
    dxh2: Vec<f32>,
    dh1_next: Vec<f32>,
    dh2_next: Vec<f32>,
    dc1_carry: Vec<f32>,
    dc2_carry: Vec<f32>,
    // The weight gradients, summed over the steps of a backward pass (latest step first).
    dw1: Vec<f32>,
    db1: Vec<f32>,
    dw2: Vec<f32>,
    db2: Vec<f32>,
    dw_out: Vec<f32>,
    db_out: f32,
}

/// Appendix D's global averaging cells (docs/method.md, "Sharing between coordinates"): the
/// last `cells` units of each layer, whose outputs h are averaged over the `rows_per_problem`
/// rows of each problem as soon as the layer has computed them, so that the next layer, the
/// output and the next step all see the average. Their cell states c stay per coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Averaging {
    pub(crate) cells: usize,
    pub(crate) rows_per_problem: usize,
}

impl Averaging {
    /// Replaces the last `cells` of the `h` columns of `values` (rows × h) by their mean over
    /// each problem's rows. The map is a symmetric projection, so the same call carries a
    /// gradient with respect to the averaged outputs back to the cells' own outputs.
    pub(crate) fn apply(&self, values: &mut [f32], h: usize) {
        let per = self.rows_per_problem;
        let scale = 1.0 / per as f32;
        for problem in values.chunks_exact_mut(per * h) {
            for k in h - self.cells..h {
                let sum: f32 = problem.chunks_exact(h).map(|row| row[k]).sum();
                let mean = sum * scale;
                problem.chunks_exact_mut(h).for_each(|row| row[k] = mean);
            }
        }
    }
}

impl Tape {
    /// A tape of the coordinatewise LSTM (no averaging cells).
    #[cfg(test)]
    pub fn new(shape: LstmShape, rows: usize, slots: usize) -> Self {
        Self::with_averaging(shape, rows, slots, None)
    }

    /// A tape whose rows are whole problems of `averaging.rows_per_problem` rows each, with
    /// that many averaging cells per layer (`None`: the coordinatewise LSTM).
    pub fn with_averaging(
        shape: LstmShape,
        rows: usize,
        slots: usize,
        averaging: Option<Averaging>,
    ) -> Self {
        if let Some(a) = averaging {
            assert!(a.cells <= shape.hidden && a.rows_per_problem > 0);
            assert_eq!(rows % a.rows_per_problem, 0, "a tape holds whole problems");
        }
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
        // Gate activations of every row and slot for BPTT, or a tile's scratch that stays in
        // L1 (docs/performance.md, "The bound, measured").
        let gates = || {
            if slots > 1 {
                per_slot(4 * h)
            } else {
                vec![0.0f32; gate_scratch_len(h)]
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
        let gradient = |len: usize| {
            if backward {
                vec![0.0f32; len]
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
            a1: gates(),
            c1s: record(h),
            tc1: record(h),
            xh2: record(2 * h),
            a2: gates(),
            c2s: record(h),
            tc2: record(h),
            h2s: record(h),
            averaging,
            gate_scale: gate_scale(h),
            dz1: scratch(4 * h),
            dz2: scratch(4 * h),
            dxh2: scratch(2 * h),
            dh1_next: scratch(h),
            dh2_next: scratch(h),
            dc1_carry: scratch(h),
            dc2_carry: scratch(h),
            dw1: gradient((f + h) * 4 * h),
            db1: gradient(4 * h),
            dw2: gradient(2 * h * 4 * h),
            db2: gradient(4 * h),
            dw_out: gradient(h),
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
            &self.dz1,
            &self.dz2,
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
    pub fn forward(&mut self, w: Weights, inputs: &[f32], outputs: &mut [f32]) {
        let (f, h, n) = (self.shape.inputs, self.shape.hidden, self.rows);
        let g4 = 4 * h;
        assert_eq!(w.shape, self.shape, "weights of another LSTM");
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
        let a1 = gate_rows(&mut self.a1, recording, slot, n * g4);
        let c1s = slot_rows(&mut self.c1s, slot, n * h);
        let tc1 = slot_rows(&mut self.tc1, slot, n * h);
        let cell = CellBuffers {
            c: &mut self.c1,
            c_record: c1s,
            tanh_c_record: tc1,
            h_out: &mut self.h1,
        };
        lstm_layer_forward(inputs, w.w1(), w.b1(), &self.gate_scale, a1, cell, h);
        if let Some(averaging) = &self.averaging {
            averaging.apply(&mut self.h1, h);
        }
        if recording {
            let xh2 = &mut self.xh2[slot * n * 2 * h..(slot + 1) * n * 2 * h];
            join_rows(xh2, &self.h1, h, &self.h2, h);
        }

        // Layer 2: [h1_t | h2_{t-1}] · W2 + b2.
        let a2 = gate_rows(&mut self.a2, recording, slot, n * g4);
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
        if let Some(averaging) = &self.averaging {
            averaging.apply(&mut self.h2, h);
        }
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

    /// Steps recorded since the unroll began.
    pub fn recorded(&self) -> usize {
        self.recorded
    }

    /// The second layer's output h2 (`rows × hidden`) of the last step: what the output layer
    /// read, and what heads built on this LSTM read (Appendix D's NTM-BFGS).
    pub fn h2(&self) -> &[f32] {
        &self.h2
    }

    /// The second layer's output of recorded step `t`.
    pub fn h2_at(&self, t: usize) -> &[f32] {
        let len = self.rows * self.shape.hidden;
        &self.h2s[t * len..(t + 1) * len]
    }

    /// Adds `dh2` to dL/dh2 of the step the next [`Tape::backward_step`] takes: the gradient
    /// that heads reading h2 beside the output layer send back.
    pub fn add_to_dh2(&mut self, dh2: &[f32]) {
        for (a, b) in self.dh2_next.iter_mut().zip(dh2) {
            *a += b;
        }
    }

    /// BPTT over the steps recorded since [`Tape::start_unroll`].
    /// `d_outputs[t * stride + offset + r]` is the gradient of the meta-loss with respect to the
    /// raw output of this tape's row `r` at step `t` (the tape may be one block of a larger
    /// set of rows). The inputs are constants (the paper's dashed edges), and no gradient flows
    /// into the state at the start of the unroll (truncation). Adds the weight gradient into
    /// `grad`.
    pub fn backward(
        &mut self,
        w: Weights,
        d_outputs: &[f32],
        stride: usize,
        offset: usize,
        grad: &mut [f32],
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
        for g in [&mut self.dw1, &mut self.db1, &mut self.dw2, &mut self.db2] {
            g.fill(0.0);
        }
        self.dw_out.fill(0.0);
        self.db_out = 0.0;
    }

    /// Backward through recorded step `t`, given dL/d(raw output) `dy` of each row at that
    /// step; with `d_inputs`, also writes dL/d(input features) of step t (`rows × inputs`).
    pub fn backward_step(
        &mut self,
        w: Weights,
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
        // Through the averaging: dL/dh of the cells' own outputs.
        if let Some(averaging) = &self.averaging {
            averaging.apply(&mut self.dh2_next, h);
        }
        // Layer 2 cell; its weight gradient dW2 += [h1_t | h2_{t-1}]ᵀ · dz2 while dz2 is in
        // cache; then its input gradient [dh1_t | dh2_{t-1}] = dz2 · W2ᵀ.
        gates_backward(
            GateRecord {
                acts: &self.a2,
                tanh_c: &self.tc2,
                c: &self.c2s,
                c_start: &self.c2_start,
            },
            &self.dh2_next,
            CellGradients {
                dz: &mut self.dz2,
                db: &mut self.db2,
                dc_carry: &mut self.dc2_carry,
            },
            t,
            n,
            h,
        );
        let dz2 = view(&self.dz2, n, g4);
        let xh2 = &self.xh2[t * n * 2 * h..(t + 1) * n * 2 * h];
        gemm(
            view(xh2, n, 2 * h).t(),
            dz2,
            1.0,
            view_mut(&mut self.dw2, 2 * h, g4),
        );
        gemm(dz2, w2.t(), 0.0, view_mut(&mut self.dxh2, n, 2 * h));
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
        if let Some(averaging) = &self.averaging {
            averaging.apply(&mut self.dh1_next, h);
        }
        // Layer 1 cell; dW1 += [x_t | h1_{t-1}]ᵀ · dz1; [dx_t | dh1_{t-1}] = dz1 · W1ᵀ, where
        // the paper's BPTT needs no dx_t.
        gates_backward(
            GateRecord {
                acts: &self.a1,
                tanh_c: &self.tc1,
                c: &self.c1s,
                c_start: &self.c1_start,
            },
            &self.dh1_next,
            CellGradients {
                dz: &mut self.dz1,
                db: &mut self.db1,
                dc_carry: &mut self.dc1_carry,
            },
            t,
            n,
            h,
        );
        let dz1 = view(&self.dz1, n, g4);
        let xh1 = &self.xh1[t * n * (f + h)..(t + 1) * n * (f + h)];
        gemm(
            view(xh1, n, f + h).t(),
            dz1,
            1.0,
            view_mut(&mut self.dw1, f + h, g4),
        );
        if let Some(dx) = d_inputs {
            gemm(
                dz1,
                w1.slice(ndarray::s![..f, ..]).t(),
                0.0,
                view_mut(dx, n, f),
            );
        }
        gemm(
            dz1,
            w1.slice_move(ndarray::s![f.., ..]).t(),
            0.0,
            view_mut(&mut self.dh1_next, n, h),
        );
    }

    /// Ends a backward pass over every recorded step: adds the weight gradient into `grad`.
    pub fn backward_finish(&mut self, grad: &mut [f32]) {
        let layout = self.shape.layout();
        let parts = [
            (layout.w1, &self.dw1),
            (layout.b1, &self.db1),
            (layout.w2, &self.dw2),
            (layout.b2, &self.db2),
            (layout.w_out, &self.dw_out),
        ];
        for (start, part) in parts {
            for (a, b) in grad[start..start + part.len()].iter_mut().zip(part) {
                *a += b;
            }
        }
        grad[layout.b_out] += self.db_out;
    }
}

/// Slot `slot` (of `len` values) of a per-slot record, or nothing for a record not kept.
fn slot_rows(record: &mut [f32], slot: usize, len: usize) -> &mut [f32] {
    record_rows(record, slot * len..(slot + 1) * len)
}

/// Slot `slot` (of `len` values) of recorded gate activations, or the whole tile scratch of a
/// tape that does not record.
fn gate_rows(gates: &mut [f32], recording: bool, slot: usize, len: usize) -> &mut [f32] {
    if recording {
        &mut gates[slot * len..(slot + 1) * len]
    } else {
        gates
    }
}

/// What one layer's forward pass recorded over an unroll, per slot: the gate activations, and
/// tanh(c) and c of each step, with c at the unroll's start.
struct GateRecord<'a> {
    acts: &'a [f32],
    tanh_c: &'a [f32],
    c: &'a [f32],
    c_start: &'a [f32],
}

/// Backward through the gates of recorded step `t` of one layer (`n` rows, `h` units).
fn gates_backward(
    record: GateRecord,
    dh: &[f32],
    out: CellGradients,
    t: usize,
    n: usize,
    h: usize,
) {
    let c_prev = if t == 0 {
        record.c_start
    } else {
        &record.c[(t - 1) * n * h..t * n * h]
    };
    let acts = &record.acts[t * n * 4 * h..(t + 1) * n * 4 * h];
    let tanh_c = &record.tanh_c[t * n * h..(t + 1) * n * h];
    lstm_cell_backward(acts, tanh_c, c_prev, dh, out, h);
}

//! The tape of NTM-BFGS and NTM-L-BFGS: one controller and one memory per problem, problems in
//! parallel, and the truncated BPTT through heads and memory.

use super::memory::Memory;
use super::NtmShape;
use crate::kernels::join_rows;
use crate::learned::architecture::{
    add_in_order, part_gradients, Architecture, CoordinateTape, TapeRows,
};
use crate::learned::lstm::tape::{Averaging, Tape};
use crate::learned::lstm::Weights;
use rayon::prelude::*;

/// One problem's controller, heads and memory.
#[derive(Clone)]
struct ProblemTape {
    shape: NtmShape,
    n: usize,
    recording: bool,
    controller: Tape,
    memory: Memory,
    /// The read results ρ of the last step (`n × reads`), the controller's next input.
    read_result: Vec<f32>,
    /// [features | ρ] of the current step (`n × (features + reads)`).
    controller_input: Vec<f32>,
    /// The heads' outputs of the current step, split: r (`n × reads`), a and b (`n × writes`).
    r: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    // Backward: dL/dρ of the step being taken back (from the step after it), the heads'
    // gradients, and the controller's input gradient.
    d_read: Vec<f32>,
    d_r: Vec<f32>,
    d_heads: Vec<f32>,
    dh2: Vec<f32>,
    d_controller_input: Vec<f32>,
    d_heads_w: Vec<f32>,
    d_heads_b: Vec<f32>,
}

impl ProblemTape {
    fn new(shape: NtmShape, n: usize, slots: usize) -> Self {
        let lstm = shape.lstm();
        let averaging = Averaging {
            cells: shape.controller.averaging,
            rows_per_problem: n,
        };
        let (nr, nw, h) = (shape.reads, shape.writes, lstm.hidden);
        let backward = |len: usize| {
            if slots > 1 {
                vec![0.0; len]
            } else {
                Vec::new()
            }
        };
        ProblemTape {
            shape,
            n,
            recording: slots > 1,
            controller: Tape::with_averaging(lstm, n, slots, Some(averaging)),
            memory: Memory::new(shape.memory, n, nr, nw),
            read_result: vec![0.0; n * nr],
            controller_input: vec![0.0; n * lstm.inputs],
            r: vec![0.0; n * nr],
            a: vec![0.0; n * nw],
            b: vec![0.0; n * nw],
            d_read: backward(n * nr),
            d_r: backward(n * nr),
            d_heads: backward(n * shape.head_outputs()),
            dh2: backward(n * h),
            d_controller_input: backward(n * lstm.inputs),
            d_heads_w: backward(h * shape.head_outputs()),
            d_heads_b: backward(shape.head_outputs()),
        }
    }

    fn forward(&mut self, w: &[f32], inputs: &[f32], outputs: &mut [f32]) {
        let s = self.shape;
        let (f, nr, nw, h) = (s.features, s.reads, s.writes, s.lstm().hidden);
        let lstm_len = s.lstm().num_params();
        join_rows(&mut self.controller_input, inputs, f, &self.read_result, nr);
        let controller = Weights::new(s.lstm(), &w[..lstm_len]);
        self.controller
            .forward(controller, &self.controller_input, outputs);
        // The heads: [r | a | b] = h2 · heads_w + heads_b, row by row.
        let (hw, hb) = s.heads_at();
        let k = s.head_outputs();
        let (heads_w, heads_b) = (&w[hw..hb], &w[hb..hb + k]);
        for (i, h2) in self.controller.h2().chunks_exact(h).enumerate() {
            for c in 0..k {
                let mut v = heads_b[c];
                for (u, x) in h2.iter().enumerate() {
                    v += x * heads_w[u * k + c];
                }
                match c {
                    c if c < nr => self.r[i * nr + c] = v,
                    c if c < nr + nw => self.a[i * nw + c - nr] = v,
                    c => self.b[i * nw + c - nr - nw] = v,
                }
            }
        }
        self.memory.write(&self.a, &self.b);
        self.memory
            .read(&self.r, &mut self.read_result, self.recording);
        if !self.recording {
            self.memory.settle();
        }
    }

    fn backward_begin(&mut self) {
        self.controller.backward_begin();
        self.memory.backward_begin();
        self.d_read.fill(0.0);
        self.d_heads_w.fill(0.0);
        self.d_heads_b.fill(0.0);
    }

    /// Step `t` back: the read, the heads, then the controller; dL/dρ of step t − 1 is kept.
    fn backward_step(&mut self, w: &[f32], t: usize, dy: &[f32], d_inputs: &mut [f32]) {
        let s = self.shape;
        let (f, nr, nw, h) = (s.features, s.reads, s.writes, s.lstm().hidden);
        let k = s.head_outputs();
        self.memory.backward_read(t, &self.d_read, &mut self.d_r);
        let (da, db) = self.memory.d_writes(t);
        for i in 0..self.n {
            let row = &mut self.d_heads[i * k..(i + 1) * k];
            row[..nr].copy_from_slice(&self.d_r[i * nr..(i + 1) * nr]);
            row[nr..nr + nw].copy_from_slice(&da[i * nw..(i + 1) * nw]);
            row[nr + nw..].copy_from_slice(&db[i * nw..(i + 1) * nw]);
        }
        let (hw, _) = s.heads_at();
        let heads_w = &w[hw..hw + h * k];
        let h2 = self.controller.h2_at(t);
        for i in 0..self.n {
            let (x, d) = (&h2[i * h..(i + 1) * h], &self.d_heads[i * k..(i + 1) * k]);
            for (c, dc) in d.iter().enumerate() {
                self.d_heads_b[c] += dc;
            }
            for u in 0..h {
                let mut acc = 0.0;
                for (c, dc) in d.iter().enumerate() {
                    self.d_heads_w[u * k + c] += x[u] * dc;
                    acc += heads_w[u * k + c] * dc;
                }
                self.dh2[i * h + u] = acc;
            }
        }
        self.controller.add_to_dh2(&self.dh2);
        let controller = Weights::new(s.lstm(), &w[..s.lstm().num_params()]);
        self.controller
            .backward_step(controller, t, dy, Some(&mut self.d_controller_input));
        let width = f + nr;
        for (i, row) in self.d_controller_input.chunks_exact(width).enumerate() {
            d_inputs[i * f..(i + 1) * f].copy_from_slice(&row[..f]);
            self.d_read[i * nr..(i + 1) * nr].copy_from_slice(&row[f..]);
        }
    }

    fn backward_finish(&mut self, grad: &mut [f32]) {
        let (hw, hb) = self.shape.heads_at();
        self.controller.backward_finish(&mut grad[..hw]);
        for (g, d) in grad[hw..hb].iter_mut().zip(&self.d_heads_w) {
            *g += d;
        }
        for (g, d) in grad[hb..].iter_mut().zip(&self.d_heads_b) {
            *g += d;
        }
    }
}

/// Every problem's [`ProblemTape`], taken in parallel; gradients summed in problem order, so
/// results do not depend on the thread count.
#[derive(Clone)]
pub(super) struct NtmTape {
    shape: NtmShape,
    problems: Vec<ProblemTape>,
    grads: Vec<Vec<f32>>,
    rows: usize,
    n: usize,
}

impl NtmTape {
    pub(super) fn new(shape: NtmShape, rows: TapeRows, slots: usize) -> Self {
        let n = rows.per_problem();
        let problems: Vec<ProblemTape> = (0..rows.problems)
            .map(|_| ProblemTape::new(shape, n, slots))
            .collect();
        let grads = part_gradients(problems.len(), shape.num_params(), slots);
        NtmTape {
            shape,
            problems,
            grads,
            rows: rows.rows,
            n,
        }
    }
}

impl CoordinateTape for NtmTape {
    fn bytes(&self) -> usize {
        self.problems
            .iter()
            .map(|p| p.controller.bytes() + p.memory.bytes())
            .sum()
    }
    fn reset_state(&mut self) {
        for p in &mut self.problems {
            p.controller.reset_state();
            p.memory.clear();
            p.read_result.fill(0.0);
        }
    }
    fn start_unroll(&mut self) {
        for p in &mut self.problems {
            p.controller.start_unroll();
            p.memory.settle();
        }
    }
    fn forward(&mut self, w: &[f32], inputs: &[f32], outputs: &mut [f32]) {
        assert_eq!(outputs.len(), self.rows);
        let (n, f) = (self.n, self.shape.features);
        if n == 0 {
            return;
        }
        self.problems
            .par_iter_mut()
            .zip(inputs.par_chunks(n * f))
            .zip(outputs.par_chunks_mut(n))
            .for_each(|((p, x), y)| p.forward(w, x, y));
    }
    fn backward(&mut self, w: &[f32], d_outputs: &[f32], grad: &mut [f32]) {
        let (n, f) = (self.n, self.shape.features);
        let rows = self.rows;
        self.grads
            .par_iter_mut()
            .zip(self.problems.par_iter_mut())
            .enumerate()
            .for_each(|(k, (g, p))| {
                let mut d_inputs = vec![0.0; n * f];
                p.backward_begin();
                for t in (0..p.controller.recorded()).rev() {
                    let dy = &d_outputs[t * rows + k * n..t * rows + (k + 1) * n];
                    p.backward_step(w, t, dy, &mut d_inputs);
                }
                g.fill(0.0);
                p.backward_finish(g);
            });
        add_in_order(&self.grads, grad);
    }
    fn backward_begin(&mut self) {
        self.problems
            .iter_mut()
            .for_each(ProblemTape::backward_begin);
    }
    fn backward_step(&mut self, w: &[f32], t: usize, dy: &[f32], d_inputs: &mut [f32]) {
        let (n, f) = (self.n, self.shape.features);
        if n == 0 {
            return;
        }
        self.problems
            .par_iter_mut()
            .zip(dy.par_chunks(n))
            .zip(d_inputs.par_chunks_mut(n * f))
            .for_each(|((p, dy), dx)| p.backward_step(w, t, dy, dx));
    }
    fn backward_finish(&mut self, grad: &mut [f32]) {
        self.grads
            .par_iter_mut()
            .zip(self.problems.par_iter_mut())
            .for_each(|(g, p)| {
                g.fill(0.0);
                p.backward_finish(g);
            });
        add_in_order(&self.grads, grad);
    }
    fn boxed_clone(&self) -> Box<dyn CoordinateTape> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::ntm::MemoryKind;
    use crate::learned::Architecture;
    use crate::rng::streams::LSTM_INIT;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 37) % 23) as f32 * 0.08 - 0.9)
            .collect()
    }

    /// dL/dφ of L = Σ_t c_t · y_t over one unroll, through the controller, the heads and the
    /// memory, against central differences with the state at the unroll's start held fixed
    /// (two steps were taken before it, so M, the carried writes and ρ are not zero). The
    /// heads (with biases of order one) and the output layer are scaled up so that the memory's share of the gradient is
    /// not lost in the controller's.
    fn check(shape: NtmShape, rows: TapeRows, every: usize, eps: f32) {
        let mut w = shape.init(3, LSTM_INIT, 1.0);
        let (hw, _) = shape.heads_at();
        w[hw..].iter_mut().for_each(|x| *x *= 6.0);
        w[shape.output_layer()].iter_mut().for_each(|x| *x *= 50.0);
        let (_, hb) = shape.heads_at();
        let biases = values(shape.head_outputs(), 7);
        w[hb..].copy_from_slice(&biases);
        let (f, steps) = (shape.features, 4);
        let x = |t: usize| values(rows.rows * f, 5 * t);
        let c = values(steps * rows.rows, 99);
        let mut start = NtmTape::new(shape, rows, steps);
        let mut y = vec![0.0; rows.rows];
        for t in 0..2 {
            start.forward(&w, &x(t), &mut y);
        }
        start.start_unroll();
        let run = |w: &[f32]| {
            let mut tape = start.clone();
            let mut total = 0.0f64;
            let mut out = vec![0.0; rows.rows];
            for t in 0..steps {
                tape.forward(w, &x(t + 2), &mut out);
                let ct = &c[t * rows.rows..(t + 1) * rows.rows];
                total += ct
                    .iter()
                    .zip(&out)
                    .map(|(a, b)| (a * b) as f64)
                    .sum::<f64>();
            }
            (total, tape)
        };
        let (_, mut tape) = run(&w);
        let mut analytic = vec![0.0; w.len()];
        tape.backward(&w, &c, &mut analytic);
        // The step-by-step pass gives the same gradient.
        let (_, mut stepped) = run(&w);
        let mut by_step = vec![0.0; w.len()];
        stepped.backward_begin();
        let mut dx = vec![0.0; rows.rows * f];
        for t in (0..steps).rev() {
            stepped.backward_step(&w, t, &c[t * rows.rows..(t + 1) * rows.rows], &mut dx);
        }
        stepped.backward_finish(&mut by_step);
        assert_eq!(analytic, by_step);
        let scale = analytic.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        let mut worst = 0.0f64;
        for k in (0..w.len()).step_by(every) {
            let at = |d: f32| {
                let mut v = w.clone();
                v[k] += d;
                run(&v).0
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let a = analytic[k] as f64;
            let err = (a - numeric).abs() / (a.abs().max(numeric.abs()) + 3e-3 * scale as f64);
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "weight {k} of {}: analytic {a} vs {numeric}",
                w.len()
            );
        }
        // The heads' own gradients are a visible share of the largest.
        let heads = analytic[hw..].iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(heads > 1e-2 * scale, "heads {heads} vs largest {scale}");
        eprintln!(
            "{}: {} of {} weights, worst relative error {worst:.2e}",
            shape.describe(),
            w.len().div_ceil(every),
            w.len()
        );
    }

    /// Tiny sizes: 5 units, 2 read and 2 write heads, two problems of 4 coordinates. A window
    /// of 3 steps: writes of the steps before the unroll leave it during the unroll.
    #[test]
    fn the_gradients_match_finite_differences() {
        for memory in [MemoryKind::Full, MemoryKind::History(3)] {
            check(
                NtmShape::new(2, 5, 2, 2, 2, memory),
                TapeRows::new(2, 4),
                1,
                1e-2,
            );
        }
    }

    /// The experiment's sizes: 20 units with 2 averaging cells, 1 read and 3 write heads, the
    /// gradient as its one feature, 10-d problems; every 7th weight, with a wider step for the
    /// differences to rise above the rounding of the larger sums.
    #[test]
    fn the_gradients_match_finite_differences_at_the_experiments_size() {
        for memory in [MemoryKind::Full, MemoryKind::History(5)] {
            check(
                NtmShape::new(1, 20, 2, 1, 3, memory),
                TapeRows::new(2, 10),
                7,
                2e-2,
            );
        }
    }
}

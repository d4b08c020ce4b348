//! The coordinatewise LSTM over many rows, cut into blocks of a fixed number of rows that run
//! in parallel; the [`CoordinateTape`] of [`LstmShape`].

use super::tape::{Averaging, Tape};
use super::{LstmShape, Weights};
use crate::learned::architecture::{add_in_order, part_gradients, Architecture, CoordinateTape};
use rayon::prelude::*;

/// A tape over many rows, cut into blocks of a fixed number of rows that run in parallel.
/// The cut depends only on the row count, so results do not depend on the thread count.
#[derive(Clone)]
pub struct BlockedTape {
    shape: LstmShape,
    blocks: Vec<Tape>,
    block_grads: Vec<Vec<f32>>,
    block_rows: usize,
    rows: usize,
}

/// Rows per block: the per-step working set of a block (about 1.3 kB a row) stays in L2.
pub const BLOCK_ROWS: usize = 512;

impl BlockedTape {
    pub fn new(shape: LstmShape, rows: usize, slots: usize) -> Self {
        Self::cut(shape, rows, BLOCK_ROWS, slots, None)
    }

    /// A tape with `averaging.cells` global averaging cells per layer over `rows` rows of
    /// whole problems: each block holds whole problems (as many as fit in [`BLOCK_ROWS`], at
    /// least one), so that every average is taken inside one block.
    pub(crate) fn averaging(
        shape: LstmShape,
        rows: usize,
        slots: usize,
        averaging: Averaging,
    ) -> Self {
        let per = averaging.rows_per_problem;
        let block_rows = per * (BLOCK_ROWS / per).max(1);
        Self::cut(shape, rows, block_rows, slots, Some(averaging))
    }

    fn cut(
        shape: LstmShape,
        rows: usize,
        block_rows: usize,
        slots: usize,
        averaging: Option<Averaging>,
    ) -> Self {
        let blocks: Vec<Tape> = (0..rows.div_ceil(block_rows).max(1))
            .map(|b| {
                let len = block_rows.min(rows - (b * block_rows).min(rows));
                Tape::with_averaging(shape, len, slots, averaging)
            })
            .collect();
        let block_grads = part_gradients(blocks.len(), shape.num_params(), slots);
        BlockedTape {
            shape,
            blocks,
            block_grads,
            block_rows,
            rows,
        }
    }
}

impl CoordinateTape for BlockedTape {
    fn bytes(&self) -> usize {
        self.blocks.iter().map(Tape::bytes).sum()
    }

    fn reset_state(&mut self) {
        self.blocks.iter_mut().for_each(Tape::reset_state);
    }

    fn start_unroll(&mut self) {
        self.blocks.iter_mut().for_each(Tape::start_unroll);
    }

    /// `Tape::forward` over all rows, block by block in parallel.
    fn forward(&mut self, w: &[f32], inputs: &[f32], outputs: &mut [f32]) {
        assert_eq!(outputs.len(), self.rows);
        let w = Weights::new(self.shape, w);
        if let [only] = self.blocks.as_mut_slice() {
            return only.forward(w, inputs, outputs);
        }
        self.blocks
            .par_iter_mut()
            .zip(inputs.par_chunks(self.block_rows * self.shape.inputs))
            .zip(outputs.par_chunks_mut(self.block_rows))
            .for_each(|((tape, x), y)| tape.forward(w, x, y));
    }

    /// `Tape::backward` over all rows: `d_outputs[t * rows + r]`.
    fn backward(&mut self, w: &[f32], d_outputs: &[f32], grad: &mut [f32]) {
        let (rows, block_rows) = (self.rows, self.block_rows);
        let w = Weights::new(self.shape, w);
        if let ([only], [g]) = (self.blocks.as_mut_slice(), self.block_grads.as_mut_slice()) {
            g.fill(0.0);
            only.backward(w, d_outputs, rows, 0, g);
        } else {
            self.blocks
                .par_iter_mut()
                .zip(self.block_grads.par_iter_mut())
                .enumerate()
                .for_each(|(b, (tape, g))| {
                    g.fill(0.0);
                    tape.backward(w, d_outputs, rows, b * block_rows, g);
                });
        }
        add_in_order(&self.block_grads, grad);
    }

    fn backward_begin(&mut self) {
        self.blocks.iter_mut().for_each(Tape::backward_begin);
    }

    /// `Tape::backward_step` over all rows, block by block in parallel.
    fn backward_step(&mut self, w: &[f32], t: usize, dy: &[f32], d_inputs: &mut [f32]) {
        let (br, f) = (self.block_rows, self.shape.inputs);
        let w = Weights::new(self.shape, w);
        if let [only] = self.blocks.as_mut_slice() {
            return only.backward_step(w, t, dy, Some(d_inputs));
        }
        self.blocks
            .par_iter_mut()
            .zip(dy.par_chunks(br))
            .zip(d_inputs.par_chunks_mut(br * f))
            .for_each(|((tape, dy), dx)| tape.backward_step(w, t, dy, Some(dx)));
    }

    fn boxed_clone(&self) -> Box<dyn CoordinateTape> {
        Box::new(self.clone())
    }

    fn backward_finish(&mut self, grad: &mut [f32]) {
        self.blocks
            .par_iter_mut()
            .zip(self.block_grads.par_iter_mut())
            .for_each(|(tape, g)| {
                g.fill(0.0);
                tape.backward_finish(g);
            });
        add_in_order(&self.block_grads, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::streams::LSTM_INIT;

    /// Many blocks (the last one partial) give what one tape over all rows gives, forward and
    /// backward, at the paper's size.
    #[test]
    fn blocked_tape_equals_one_tape() {
        for hidden in [20, 4] {
            let shape = LstmShape { inputs: 2, hidden };
            let w = shape.init(2, LSTM_INIT, 1.0);
            let rows = 2 * BLOCK_ROWS + 7;
            let x: Vec<f32> = (0..rows * 2)
                .map(|r| ((r * 37) % 11) as f32 * 0.1 - 0.5)
                .collect();
            let d: Vec<f32> = (0..2 * rows)
                .map(|r| ((r * 13) % 7) as f32 * 0.01)
                .collect();
            let (mut one, mut blocked) =
                (Tape::new(shape, rows, 2), BlockedTape::new(shape, rows, 2));
            let (mut y1, mut y2) = (vec![0.0; rows], vec![0.0; rows]);
            for _ in 0..2 {
                one.forward(Weights::new(shape, &w), &x, &mut y1);
                blocked.forward(&w, &x, &mut y2);
                for (a, b) in y1.iter().zip(&y2) {
                    assert!((a - b).abs() < 1e-6);
                }
            }
            let n = shape.num_params();
            let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
            one.backward(Weights::new(shape, &w), &d, rows, 0, &mut g1);
            blocked.backward(&w, &d, &mut g2);
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
    }

    /// A forward-only tape, whose gate activations are one tile's scratch, steps to the bits
    /// of a tape that records every row's activations for BPTT, whole tiles and a partial one.
    #[test]
    fn forward_only_tape_gives_the_recording_tape_bits() {
        for (hidden, rows) in [(20, BLOCK_ROWS), (20, 37), (4, 5)] {
            let shape = LstmShape { inputs: 2, hidden };
            let w = shape.init(3, LSTM_INIT, 1.0);
            let (mut forward_only, mut recording) =
                (Tape::new(shape, rows, 1), Tape::new(shape, rows, 5));
            let (mut y1, mut y2) = (vec![0.0; rows], vec![0.0; rows]);
            for step in 0..5 {
                let x: Vec<f32> = (0..rows * 2)
                    .map(|r| ((r * 37 + step * 5) % 11) as f32 * 0.1 - 0.5)
                    .collect();
                forward_only.forward(Weights::new(shape, &w), &x, &mut y1);
                recording.forward(Weights::new(shape, &w), &x, &mut y2);
                let bits = |y: &[f32]| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&y1),
                    bits(&y2),
                    "{hidden} units, {rows} rows, step {step}"
                );
            }
        }
    }

    #[test]
    fn rows_are_independent() {
        // The same input in two rows gives the same output; the weights are shared.
        let shape = LstmShape {
            inputs: 2,
            hidden: 5,
        };
        let w = shape.init(1, LSTM_INIT, 1.0);
        let mut tape = Tape::new(shape, 3, 1);
        let mut out = [0.0f32; 3];
        for _ in 0..4 {
            tape.forward(
                Weights::new(shape, &w),
                &[0.3, -1.0, 0.5, 0.5, 0.3, -1.0],
                &mut out,
            );
        }
        assert_eq!(out[0], out[2]);
        assert_ne!(out[0], out[1]);
    }
}

//! `l2l-bench`'s rows of the LSTM's layer kernel alone (docs/performance.md, "The
//! bound, measured"): both layers of one block of rows, in cache, on one thread.
//! It separates the two costs of a forward step, the GEMM and the gates, and gives the fraction
//! of sgemm that the step would reach if its GEMM ran at sgemm's own rate and its gates stayed
//! as they are: the most any faster GEMM can bring on this machine.

use super::{time, Rows};
use crate::kernels::lstm_cell::{gate_scale, lstm_cell_forward, lstm_layer_forward, CellBuffers};
use crate::learned::lstm::{LstmShape, BLOCK_ROWS};
use ndarray::Array2;

/// Calls of the kernel per timed sample: one call takes about 0.1 ms, too short to time alone.
const CALLS: usize = 200;

/// A layer's carried state, with nothing recorded (as in evaluation).
fn cell<'a>(c: &'a mut [f32], h_out: &'a mut [f32]) -> CellBuffers<'a> {
    CellBuffers {
        c,
        c_record: &mut [],
        tanh_c_record: &mut [],
        h_out,
    }
}

/// Adds the rows for the optimizer `shape` (the paper's: 2 inputs, 20 units), against the
/// same run's 1-thread `sgemm` (GFLOP/s). Runs on the calling thread.
pub fn lstm_kernel_rows(shape: LstmShape, sgemm: f64, repeats: usize, out: &mut Rows) {
    let (rows, h) = (BLOCK_ROWS, shape.hidden);
    let g4 = 4 * h;
    let scale = gate_scale(h);
    let bias = vec![0.01f32; g4];
    let (mut fused, mut gates, mut flops) = (0.0, 0.0, 0.0);
    // Layer 1 reads the preprocessed gradient, layer 2 the first layer's h.
    for inputs in [shape.inputs, h] {
        let k = inputs + h;
        // Weights and inputs of the sizes a trained optimizer has, so that no gate saturates.
        let w = Array2::from_shape_fn((k, g4), |(i, j)| {
            ((i * 31 + j * 17) % 23) as f32 * 0.02 - 0.22
        });
        let input: Vec<f32> = (0..rows * inputs)
            .map(|i| (i % 19) as f32 * 0.1 - 0.9)
            .collect();
        let mut z = vec![0.0f32; rows * g4];
        let (mut c, mut h_out) = (vec![0.1f32; rows * h], vec![0.05f32; rows * h]);
        let layer = time(repeats, || {
            for _ in 0..CALLS {
                lstm_layer_forward(
                    &input,
                    w.view(),
                    &bias,
                    &scale,
                    &mut z,
                    cell(&mut c, &mut h_out),
                    h,
                );
            }
        }) / CALLS as f64;
        // The gates alone, on the pre-activations saved before each call (the copy's time
        // is measured and taken off).
        let saved = z.clone();
        let with_copy = time(repeats, || {
            for _ in 0..CALLS {
                z.copy_from_slice(&saved);
                lstm_cell_forward(&mut z, None, &scale, cell(&mut c, &mut h_out), h);
            }
        }) / CALLS as f64;
        let copy = time(repeats, || {
            for _ in 0..CALLS {
                z.copy_from_slice(std::hint::black_box(&saved));
                std::hint::black_box(&mut z);
            }
        }) / CALLS as f64;
        fused += layer;
        gates += (with_copy - copy).max(0.0);
        flops += 2.0 * (k * g4 * rows) as f64;
    }
    let task = format!(
        "LSTM layers forward alone, {rows} rows in cache ({} inputs, {h} units)",
        shape.inputs
    );
    out.add(
        &task,
        "microseconds per step of both layers, 1 thread",
        fused * 1e6,
        "µs",
    );
    out.add(
        &task,
        "GEMM fraction of sgemm, 1 thread",
        flops / fused / 1e9 / sgemm,
        "ratio",
    );
    out.add(&task, "gates' share of the time", gates / fused, "ratio");
    out.add(
        &task,
        "GEMM fraction of sgemm with the GEMM at sgemm's rate, 1 thread",
        flops / (flops / (sgemm * 1e9) + gates) / 1e9 / sgemm,
        "ratio",
    );
}

//! `l2l-bench`'s rows of the matrix products every result goes through (`kernels::gemm`,
//! docs/performance.md, "Deterministic products"): each shape l2l multiplies, timed on one
//! thread through l2l's kernel and through OpenBLAS's sgemm on the same operands.

use super::{time, Rows};
use ndarray::{Array2, ArrayView2};

/// (name, m, k, n, whether A is a transposed view), as l2l calls them.
const SHAPES: [(&str, usize, usize, usize, bool); 8] = [
    ("MNIST MLP forward", 128, 784, 20, false),
    ("MNIST MLP weight gradient", 784, 128, 20, true),
    ("LSTM input gradient", 8_000, 80, 40, false),
    ("LSTM weight gradient", 40, 160_000, 80, true),
    ("conv net fc layer", 128, 1_024, 32, false),
    ("neural art 1x1 conv", 128, 64, 4_096, false),
    ("neural art 1x1 conv gradient", 64, 128, 4_096, true),
    ("square", 512, 512, 512, false),
];

/// Adds, for each shape, l2l's GFLOP/s and its ratio to OpenBLAS's on the same product.
/// OpenBLAS runs single-threaded here, as `run` leaves it.
pub fn product_rows(repeats: usize, out: &mut Rows) {
    for (name, m, k, n, transposed) in SHAPES {
        let value = |i: usize, j: usize| ((i * 31 + j * 7) % 13) as f32 * 0.01;
        let a = Array2::from_shape_fn(if transposed { (k, m) } else { (m, k) }, |(i, j)| {
            value(i, j)
        });
        let a: ArrayView2<f32> = if transposed { a.t() } else { a.view() };
        let b = Array2::from_shape_fn((k, n), |(i, j)| value(j, i));
        let mut c = Array2::<f32>::zeros((m, n));
        // Enough calls per sample to time (about 50 MFLOP).
        let calls = (5e7 / (2.0 * (m * k * n) as f64)).ceil() as usize;
        let gflops = |seconds: f64| 2.0 * (m * k * n * calls) as f64 / seconds / 1e9;
        let own = gflops(time(repeats, || {
            for _ in 0..calls {
                crate::kernels::gemm(a, b.view(), 0.0, c.view_mut());
            }
        }));
        let blas = gflops(time(repeats, || {
            for _ in 0..calls {
                ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
            }
        }));
        let task = format!("kernels::gemm {name} {m}x{k}x{n}");
        out.add(&task, "GFLOP/s, 1 thread", own, "GFLOP/s");
        out.add(
            &task,
            "ratio to OpenBLAS sgemm, 1 thread",
            own / blas,
            "ratio",
        );
    }
}

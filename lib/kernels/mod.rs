//! Compute kernels: free functions over slices and views, with no knowledge of optimizers or
//! problems. The learned optimizers (`learned/`) and the optimizees (`problems/`) are built on
//! them; see docs/performance.md for how they reach the benchmark's rates.

pub mod conv;
pub mod direct_conv;
pub mod fastmath;
pub mod feature_conv;
pub mod gemm;
pub mod isa;
pub mod lstm_cell;
pub mod machine;

use ndarray::{ArrayView2, ArrayViewMut2};

/// A row-major `rows × cols` view of a buffer sized for it.
pub fn view(data: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), data).expect("buffer sized for its view")
}

/// A mutable row-major `rows × cols` view of a buffer sized for it.
pub fn view_mut(data: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), data).expect("buffer sized for its view")
}

pub use gemm::gemm;

/// Mean softmax cross-entropy of the rows of `logits` (`[B, K]`, one example a row) against
/// `labels`, with its gradient written to `dlogits`. The log-sum-exp is shifted by each row's
/// maximum.
pub fn softmax_cross_entropy(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    dlogits: &mut [f32],
) -> f64 {
    let inv_b = 1.0 / labels.len() as f32;
    let mut loss = 0.0f64;
    for ((zr, dr), &y) in logits
        .chunks_exact(classes)
        .zip(dlogits.chunks_exact_mut(classes))
        .zip(labels)
    {
        let m = zr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = zr.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + sum.ln();
        loss += (lse - zr[y as usize]) as f64;
        for (k, (d, &v)) in dr.iter_mut().zip(zr).enumerate() {
            *d = ((v - lse).exp() - if k == y as usize { 1.0 } else { 0.0 }) * inv_b;
        }
    }
    loss / labels.len() as f64
}

/// Adds `bias[r]` to every value of row r of the row-major `data` (`cols` wide).
pub fn add_row_bias(data: &mut [f32], cols: usize, bias: &[f32]) {
    for (row, &b) in data.chunks_exact_mut(cols).zip(bias) {
        row.iter_mut().for_each(|v| *v += b);
    }
}

/// Writes the sum of each row of the row-major `data` (`cols` wide) to `out`, each a
/// [`lane_sum`] (rows of the conv net hold up to 131,072 values).
pub fn row_sums(data: &[f32], cols: usize, out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(data.chunks_exact(cols)) {
        *o = lane_sum(row, |v| v);
    }
}

/// Σ f(v) over `values` in 8 interleaved partial sums (one vector's lanes) added at the end:
/// one running sum over a long row would wait on each add.
#[inline(always)]
pub fn lane_sum<A>(values: &[f32], f: impl Fn(f32) -> A) -> A
where
    A: Copy + Default + std::ops::Add<Output = A> + std::iter::Sum,
{
    let mut acc = [A::default(); 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = *a + f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = *a + f(v);
    }
    acc.into_iter().sum()
}

/// Adds the column sums of the row-major `data` (`cols` wide) to `out`.
pub fn column_sums_into(data: &[f32], cols: usize, out: &mut [f32]) {
    for row in data.chunks_exact(cols) {
        for (o, x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

/// Writes rows [left | right] into `dst`, row by row.
pub fn join_rows(
    dst: &mut [f32],
    left: &[f32],
    left_width: usize,
    right: &[f32],
    right_width: usize,
) {
    for ((row, l), r) in dst
        .chunks_exact_mut(left_width + right_width)
        .zip(left.chunks_exact(left_width))
        .zip(right.chunks_exact(right_width))
    {
        row[..left_width].copy_from_slice(l);
        row[left_width..].copy_from_slice(r);
    }
}

/// Values `range` of a record, or nothing for a record that is not kept (empty).
pub fn record_rows(record: &mut [f32], range: std::ops::Range<usize>) -> &mut [f32] {
    if record.is_empty() {
        record
    } else {
        &mut record[range]
    }
}

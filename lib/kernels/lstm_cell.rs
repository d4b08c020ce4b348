//! The fused kernels of one coordinatewise LSTM layer (§2.1): the forward GEMM and gates over
//! tiles of rows, and the gates' backward. Free functions over slices, shared by every LSTM
//! the learned optimizers build.

use super::fastmath::{reciprocal_one_plus_exp, tanh};
use super::isa::{self, multiply_add, TileShape, MAX_TILE_ROWS};
use super::record_rows;
use ndarray::ArrayView2;

/// The per-row state a layer's forward pass advances and records.
pub struct CellBuffers<'a> {
    /// The carried cell state, advanced in place.
    pub c: &'a mut [f32],
    pub c_record: &'a mut [f32],
    pub tanh_c_record: &'a mut [f32],
    /// Receives h = o ⊙ tanh(c).
    pub h_out: &'a mut [f32],
}

impl CellBuffers<'_> {
    /// The rows `start..start + len` of every buffer, for `h` units.
    fn rows(&mut self, start: usize, len: usize, h: usize) -> CellBuffers<'_> {
        let r = start * h..(start + len) * h;
        CellBuffers {
            c: &mut self.c[r.clone()],
            c_record: record_rows(self.c_record, r.clone()),
            tanh_c_record: record_rows(self.tanh_c_record, r.clone()),
            h_out: &mut self.h_out[r],
        }
    }
}

/// One LSTM layer forward for every row: z = [input | h_prev] · W + b, then the gates.
/// `input` is `rows × a` with a = (rows of `w`) − h; h_prev is read from `cell.h_out`, which
/// then receives the new h (each row's inputs are read before its h is written), so the rows
/// are `cell.h_out`'s. `z` receives the gate activations: of every row (`rows × 4H`) where
/// BPTT will read them, or, where it holds fewer rows (forward only), of one tile at a time,
/// reused tile after tile so that it stays in L1 ([`gate_scratch_len`] values).
///
/// When 4H is a multiple of the tile's lanes this is one fused pass over tiles of rows: W
/// (at most a few tens of kB) stays in L1 while each tile's products accumulate in registers,
/// and the gates are applied to the tile while it is still in L1. This avoids BLAS's per-call
/// packing, which dominates for these skinny shapes (K ≤ 40+F, 4H = 80), and any copying of
/// [input | h_prev] rows. The tile is the one this build's instruction set fits ([`isa::TILE`])
/// when 4H is a whole number of its vectors, else the 4-lane tile ([`isa::PORTABLE_TILE`]; 4H
/// always is a multiple of 4). Every tile sums in the same order, so a layer of any width gives
/// the same bits on every instruction set.
pub fn lstm_layer_forward(
    input: &[f32],
    w: ArrayView2<f32>,
    bias: &[f32],
    gate_scale: &[f32],
    z: &mut [f32],
    cell: CellBuffers,
    h: usize,
) {
    const T: TileShape = isa::TILE;
    const P: TileShape = isa::PORTABLE_TILE;
    if (4 * h).is_multiple_of(T.lanes) {
        layer_forward_tiled::<{ T.lanes }, { T.rows }, { T.chunks }>(
            input, w, bias, gate_scale, z, cell, h,
        )
    } else {
        layer_forward_tiled::<{ P.lanes }, { P.rows }, { P.chunks }>(
            input, w, bias, gate_scale, z, cell, h,
        )
    }
}

/// [`lstm_layer_forward`] with tiles of R rows × C chunks of L lanes. Every shape computes
/// each gate's sum in the same order (bias, then W's rows in turn, one multiply-add each), so
/// all shapes give the same bits.
fn layer_forward_tiled<const L: usize, const R: usize, const C: usize>(
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
    let rows = cell.h_out.len() / h;
    let keep_all = z.len() == rows * g4;
    assert!(
        keep_all || z.len() >= R * g4,
        "gate activations hold neither every row nor a tile"
    );
    let w = w.as_slice().expect("weights are contiguous");
    assert!(
        g4 % L == 0,
        "4H = {g4} is not a whole number of {L}-lane vectors"
    );
    for start in (0..rows).step_by(R) {
        let len = R.min(rows - start);
        let z_tile = if keep_all {
            &mut z[start * g4..(start + len) * g4]
        } else {
            &mut z[..len * g4]
        };
        let mut tile = cell.rows(start, len, h);
        let operands = |first: usize, n: usize| TileOperands {
            input: &input[(start + first) * a..(start + first + n) * a],
            recurrent: &tile.h_out[first * h..(first + n) * h],
            w,
            bias,
            a,
            h,
            g4,
        };
        if len == R {
            matmul_tile::<L, R, C>(&operands(0, R), z_tile);
        } else {
            // The last, partial tile, a row at a time: a one-row tile sums in the same order,
            // so gives the same bits, and nothing is padded or copied.
            for (row, z_row) in z_tile.chunks_exact_mut(g4).enumerate() {
                matmul_tile::<L, 1, C>(&operands(row, 1), z_row);
            }
        }
        lstm_cell_forward(z_tile, None, gate_scale, tile.rows(0, len, h), h);
    }
}

/// The operands of one tile's GEMM: `input` (R × a) and `recurrent` (R × h) rows, the
/// layer's weights `w` ((a+h) × g4, row-major) and `bias` (g4).
#[derive(Clone, Copy)]
struct TileOperands<'a> {
    input: &'a [f32],
    recurrent: &'a [f32],
    w: &'a [f32],
    bias: &'a [f32],
    a: usize,
    h: usize,
    g4: usize,
}

/// `out` (R × g4) = [input | recurrent] · w + bias. Each pass covers up to C chunks of L
/// columns for all R rows, so R × C accumulators and C vectors of W sit in registers, and each
/// input value, broadcast once, feeds C multiply-adds.
#[inline(always)]
fn matmul_tile<const L: usize, const R: usize, const C: usize>(t: &TileOperands, out: &mut [f32]) {
    let chunks = t.g4 / L;
    let mut j0 = 0;
    // 4H = 80 (the paper's 20 units) is whole passes on every tile shape.
    for _ in 0..chunks / C {
        matmul_tile_pass::<L, R, C>(t, j0, out);
        j0 += C * L;
    }
    for _ in 0..chunks % C {
        matmul_tile_pass::<L, R, 1>(t, j0, out);
        j0 += L;
    }
}

/// One pass of [`matmul_tile`] over C chunks of columns from column `j0`.
#[inline(always)]
fn matmul_tile_pass<const L: usize, const R: usize, const C: usize>(
    t: &TileOperands,
    j0: usize,
    out: &mut [f32],
) {
    let TileOperands {
        input,
        recurrent,
        w,
        bias,
        a,
        h,
        g4,
    } = *t;
    // Every read below is inside these bounds, so the loop reads without a check per value,
    // which cost about a sixth of the tile's time on an Intel Xeon with AVX-512
    // (docs/performance.md, "The bound, measured").
    assert!(
        input.len() >= R * a
            && recurrent.len() >= R * h
            && w.len() >= (a + h) * g4
            && j0 + C * L <= g4
            && bias.len() >= g4
            && out.len() >= R * g4,
        "a tile's operands are smaller than its shape"
    );
    let mut acc = [[[0.0f32; L]; C]; R];
    for row in acc.iter_mut() {
        for (c, v) in row.iter_mut().enumerate() {
            v.copy_from_slice(&bias[j0 + c * L..j0 + (c + 1) * L]);
        }
    }
    // The input columns, then the recurrent ones, in the order of W's rows.
    for (source, width, w_row0) in [(input.as_ptr(), a, 0), (recurrent.as_ptr(), h, a)] {
        for kk in 0..width {
            let w_at = (w_row0 + kk) * g4 + j0;
            let mut wv = [[0.0f32; L]; C];
            for (c, v) in wv.iter_mut().enumerate() {
                for (l, x) in v.iter_mut().enumerate() {
                    // SAFETY: w_at + C·L ≤ (a + h)·g4 ≤ w.len(), asserted above.
                    *x = unsafe { *w.as_ptr().add(w_at + c * L + l) };
                }
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: r·width + kk < R·width ≤ the source's length, asserted above.
                let x = unsafe { *source.add(r * width + kk) };
                for (v_acc, v) in row.iter_mut().zip(&wv) {
                    for l in 0..L {
                        v_acc[l] = multiply_add(x, v[l], v_acc[l]);
                    }
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let at = r * g4 + j0 + c * L;
            out[at..at + L].copy_from_slice(v);
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
pub fn lstm_cell_forward(
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
        // s·σ(s·z) − (s − 1) as one multiply-add, and σ's −s·z as one product: s is 1 or
        // 2, so s·σ and −s·z are exact and these give the bits of the plain formula.
        for k in 0..g4 {
            let s = scale[k];
            zr[k] = multiply_add(s, reciprocal_one_plus_exp(zr[k] * -s), 1.0 - s);
        }
    }
    let CellBuffers {
        c,
        c_record,
        tanh_c_record,
        h_out,
    } = cell;
    let recording = !c_record.is_empty();
    // Rows are taken GATE_ROWS at a time so that tanh(c) runs over all their cells in one
    // flat loop: with h = 20 and 8 or 16 lanes, a loop per row would end each row in a scalar
    // remainder of exponentials. tanh(c) is written where h goes, then multiplied by o there;
    // each value is computed by the same operations as one row at a time.
    for (group, ((zg, cg), hg)) in z
        .chunks(GATE_ROWS * g4)
        .zip(c.chunks_mut(GATE_ROWS * h))
        .zip(h_out.chunks_mut(GATE_ROWS * h))
        .enumerate()
    {
        // c_t = f ⊙ c_{t−1} + i ⊙ g, row by row.
        for (ar, cr) in zg.chunks_exact(g4).zip(cg.chunks_exact_mut(h)) {
            let (i, f, g) = (&ar[..h], &ar[h..2 * h], &ar[2 * h..3 * h]);
            let cr = &mut cr[..h];
            for k in 0..h {
                cr[k] = f[k] * cr[k] + i[k] * g[k];
            }
        }
        for (t, &cv) in hg.iter_mut().zip(cg.iter()) {
            *t = tanh(cv);
        }
        if recording {
            let at = group * GATE_ROWS * h;
            c_record[at..at + cg.len()].copy_from_slice(cg);
            tanh_c_record[at..at + hg.len()].copy_from_slice(hg);
        }
        // h_t = o ⊙ tanh(c_t).
        for (ar, hr) in zg.chunks_exact(g4).zip(hg.chunks_exact_mut(h)) {
            let (o, hr) = (&ar[3 * h..g4], &mut hr[..h]);
            for k in 0..h {
                hr[k] *= o[k];
            }
        }
    }
}

/// Values of the tile-sized gate scratch that a forward-only [`lstm_layer_forward`] of `h`
/// units takes in place of every row's activations.
pub fn gate_scratch_len(h: usize) -> usize {
    MAX_TILE_ROWS * 4 * h
}

/// The per-gate scale s of [`lstm_cell_forward`] for `h` units: 2 for the cell candidate
/// (tanh x = 2σ(2x) − 1), 1 for the input, forget and output gates.
pub fn gate_scale(h: usize) -> Vec<f32> {
    (0..4 * h)
        .map(|j| {
            if (2 * h..3 * h).contains(&j) {
                2.0
            } else {
                1.0
            }
        })
        .collect()
}

/// Rows whose cell updates [`lstm_cell_forward`] takes together (at least any tile's rows).
const GATE_ROWS: usize = 8;

/// What [`lstm_cell_backward`] writes: the pre-activation gradients `dz` of every row, the bias
/// gradient `db` they are added into, and the cell-state carry.
pub struct CellGradients<'a> {
    pub dz: &'a mut [f32],
    pub db: &'a mut [f32],
    pub dc_carry: &'a mut [f32],
}

/// Backward through one LSTM layer's gates for every row, fused. `acts` holds the gate
/// activations of the step; `dz` receives the pre-activation gradients, which are also added
/// into `db` row after row (so the bias gradient needs no second pass over them).
/// `dc_carry` enters as dc_{t+1} ⊙ f_{t+1} and leaves as dc_t ⊙ f_t.
pub fn lstm_cell_backward(
    acts: &[f32],
    tanh_c: &[f32],
    c_prev: &[f32],
    dh: &[f32],
    out: CellGradients,
    h: usize,
) {
    let db = &mut out.db[..4 * h];
    for (((((acts, dz), tanh_c), c_prev), dh), dc_carry) in acts
        .chunks_exact(4 * h)
        .zip(out.dz.chunks_exact_mut(4 * h))
        .zip(tanh_c.chunks_exact(h))
        .zip(c_prev.chunks_exact(h))
        .zip(dh.chunks_exact(h))
        .zip(out.dc_carry.chunks_exact_mut(h))
    {
        let mut row = BackwardRow {
            acts,
            tanh_c,
            c_prev,
            dh,
            dz,
            db: &mut *db,
            dc_carry,
        };
        let mut k = 0;
        while k + 16 <= h {
            backward_run::<16>(&mut row, k);
            k += 16;
        }
        while k + 4 <= h {
            backward_run::<4>(&mut row, k);
            k += 4;
        }
        while k < h {
            backward_run::<1>(&mut row, k);
            k += 1;
        }
    }
}

/// One row of [`lstm_cell_backward`]: its gate activations (i, f, g, o; 4H), tanh(c_t),
/// c_{t−1}, dh and the cell-state carry (H each, so H is their length); its dz (4H) and the
/// bias gradient (4H).
struct BackwardRow<'a> {
    acts: &'a [f32],
    tanh_c: &'a [f32],
    c_prev: &'a [f32],
    dh: &'a [f32],
    dz: &'a mut [f32],
    db: &'a mut [f32],
    dc_carry: &'a mut [f32],
}

/// Units `k..k + W` of a [`BackwardRow`]. Every operand is read into arrays of W values and
/// every result written back from them, so that a run becomes whole vectors: written over the
/// row's slices, the loop stayed scalar, as LLVM could not rule out that the eleven slices
/// overlap (docs/performance.md, "The bound, measured"). Each value is computed by the same
/// operations in the same order either way, so the bits are the same.
#[inline(always)]
fn backward_run<const W: usize>(row: &mut BackwardRow, k: usize) {
    let h = row.tanh_c.len();
    let load = |values: &[f32], at: usize| -> [f32; W] {
        let mut run = [0.0f32; W];
        run.copy_from_slice(&values[at..at + W]);
        run
    };
    let (i, f, g, o) = (
        load(row.acts, k),
        load(row.acts, h + k),
        load(row.acts, 2 * h + k),
        load(row.acts, 3 * h + k),
    );
    let (tc, cp, dh, carry_in) = (
        load(row.tanh_c, k),
        load(row.c_prev, k),
        load(row.dh, k),
        load(row.dc_carry, k),
    );
    let mut dz = [[0.0f32; W]; 4];
    let mut carry = [0.0f32; W];
    for l in 0..W {
        let dc = dh[l] * o[l] * (1.0 - tc[l] * tc[l]) + carry_in[l];
        let d_o = dh[l] * tc[l];
        dz[0][l] = dc * g[l] * i[l] * (1.0 - i[l]);
        dz[1][l] = dc * cp[l] * f[l] * (1.0 - f[l]);
        dz[2][l] = dc * i[l] * (1.0 - g[l] * g[l]);
        dz[3][l] = d_o * o[l] * (1.0 - o[l]);
        carry[l] = dc * f[l];
    }
    for (gate, d) in dz.iter().enumerate() {
        let at = gate * h + k;
        row.dz[at..at + W].copy_from_slice(d);
        for (b, v) in row.db[at..at + W].iter_mut().zip(d) {
            *b += v;
        }
    }
    row.dc_carry[k..k + W].copy_from_slice(&carry);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer's inputs for the forward tests: `a` inputs, `h` units, `rows` rows.
    struct LayerCase {
        a: usize,
        h: usize,
        rows: usize,
        w: Vec<f32>,
        bias: Vec<f32>,
        x: Vec<f32>,
        h_prev: Vec<f32>,
        scale: Vec<f32>,
    }

    /// z, c, h, and the records of c and tanh(c), after one forward.
    type LayerOutputs = [Vec<f32>; 5];

    impl LayerCase {
        fn new(a: usize, h: usize, rows: usize) -> Self {
            LayerCase {
                a,
                h,
                rows,
                w: (0..(a + h) * 4 * h)
                    .map(|i| ((i * 29) % 17) as f32 * 0.05 - 0.4)
                    .collect(),
                bias: (0..4 * h).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect(),
                x: (0..rows * a)
                    .map(|i| ((i * 11) % 13) as f32 * 0.1 - 0.6)
                    .collect(),
                h_prev: (0..rows * h)
                    .map(|i| ((i * 7) % 9) as f32 * 0.1 - 0.4)
                    .collect(),
                scale: gate_scale(h),
            }
        }
        fn w(&self) -> ArrayView2<'_, f32> {
            ArrayView2::from_shape((self.a + self.h, 4 * self.h), &self.w).unwrap()
        }
        /// Runs `forward` on fresh buffers (c = 0.3, h = h_prev) and returns what it wrote.
        fn run(&self, forward: impl FnOnce(&mut [f32], CellBuffers)) -> LayerOutputs {
            let n = self.rows * self.h;
            let mut z = vec![0.0f32; self.rows * 4 * self.h];
            let (mut c, mut cr, mut tr, mut ho) = (
                vec![0.3f32; n],
                vec![0.0; n],
                vec![0.0; n],
                self.h_prev.clone(),
            );
            let cell = CellBuffers {
                c: &mut c,
                c_record: &mut cr,
                tanh_c_record: &mut tr,
                h_out: &mut ho,
            };
            forward(&mut z, cell);
            [z, c, ho, cr, tr]
        }
    }

    /// The fused kernel against the concatenated rows [x | h_prev] through one matrix product,
    /// then the gates, for a layer with `a` inputs, `h` units and `rows` rows.
    fn check_layer(a: usize, h: usize, rows: usize) {
        let t = LayerCase::new(a, h, rows);
        let xh: Vec<f32> = (0..rows)
            .flat_map(|r| {
                t.x[r * a..(r + 1) * a]
                    .iter()
                    .chain(&t.h_prev[r * h..(r + 1) * h])
                    .copied()
            })
            .collect();
        let got = t.run(|z, cell| lstm_layer_forward(&t.x, t.w(), &t.bias, &t.scale, z, cell, h));
        let want = t.run(|z, cell| {
            use crate::kernels::{gemm, view, view_mut};
            gemm(view(&xh, rows, a + h), t.w(), 0.0, view_mut(z, rows, 4 * h));
            lstm_cell_forward(z, Some(&t.bias), &t.scale, cell, h);
        });
        for (u, v) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((u - v).abs() < 1e-5, "a={a} h={h} rows={rows}: {u} vs {v}");
        }
    }

    /// The shapes production runs: the paper's 20 units (4H = 80, the 5-chunk pass), both
    /// layers (1 or 2 input features, then the 20 units of layer 1), over a full block of 512
    /// rows and the partial block left over by the MNIST network's 15,910 coordinates (38 rows,
    /// ending in a partial tile). Then a 1-chunk width (h = 4) and widths that are not whole
    /// vectors of this build (h = 3, 6).
    #[test]
    fn fused_layer_matches_a_product_then_gates() {
        for (a, h, rows) in [
            (1, 20, 512),
            (2, 20, 512),
            (20, 20, 512),
            (2, 20, 15_910 % 512),
            (20, 20, 38),
            (3, 4, 19),
            (3, 3, 19),
            (2, 6, 40),
        ] {
            check_layer(a, h, rows);
        }
    }

    /// Every instruction set's tile shape, run in this build: each computes every gate's sum
    /// in the same order, so all give the same bits as the shape this build uses, at the
    /// production shapes (both layers of 20 units over a block of 512 rows and a partial one).
    #[test]
    fn every_tile_shape_gives_the_same_bits() {
        use crate::kernels::isa::ALL_TILES;
        let bits =
            |v: [Vec<f32>; 5]| v.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>());
        for (a, h, rows) in [
            (2, 20, 512),
            (20, 20, 512),
            (2, 20, 38),
            (20, 20, 37),
            (2, 6, 40),
        ] {
            let t = LayerCase::new(a, h, rows);
            let run = |shape: TileShape| {
                let f = match (shape.lanes, shape.rows, shape.chunks) {
                    (16, 5, 5) => layer_forward_tiled::<16, 5, 5>,
                    (8, 6, 2) => layer_forward_tiled::<8, 6, 2>,
                    (4, 5, 5) => layer_forward_tiled::<4, 5, 5>,
                    (4, 6, 2) => layer_forward_tiled::<4, 6, 2>,
                    other => panic!("no instance for the tile {other:?}"),
                };
                bits(t.run(|z, cell| f(&t.x, t.w(), &t.bias, &t.scale, z, cell, h)))
            };
            let here = bits(
                t.run(|z, cell| lstm_layer_forward(&t.x, t.w(), &t.bias, &t.scale, z, cell, h)),
            );
            for shape in ALL_TILES.into_iter().filter(|s| (4 * h) % s.lanes == 0) {
                assert!(
                    run(shape) == here,
                    "{shape:?} differs from this build's (a={a} h={h} rows={rows})",
                );
            }
        }
    }

    /// The gates' backward against central differences of Σ dh·h + Σ dc_next·f·c, the two
    /// ways a step's pre-activations reach the loss.
    #[test]
    fn cell_backward_matches_finite_differences() {
        let (h, rows) = (20, 3);
        let scale = gate_scale(h);
        let z0: Vec<f32> = (0..rows * 4 * h)
            .map(|i| ((i * 13) % 23) as f32 * 0.08 - 0.9)
            .collect();
        let c_prev: Vec<f32> = (0..rows * h)
            .map(|i| ((i * 5) % 7) as f32 * 0.2 - 0.6)
            .collect();
        let dh: Vec<f32> = (0..rows * h)
            .map(|i| ((i * 3) % 5) as f32 * 0.3 - 0.5)
            .collect();
        let dc_in: Vec<f32> = (0..rows * h)
            .map(|i| ((i * 7) % 4) as f32 * 0.25 - 0.3)
            .collect();
        // The loss of pre-activations z: h and c of the step, weighted by dh and dc_in.
        let loss = |z: &[f32]| -> f64 {
            let mut acts = z.to_vec();
            let (mut c, mut ho) = (c_prev.clone(), vec![0.0f32; rows * h]);
            let cell = CellBuffers {
                c: &mut c,
                c_record: &mut [],
                tanh_c_record: &mut [],
                h_out: &mut ho,
            };
            lstm_cell_forward(&mut acts, None, &scale, cell, h);
            ho.iter()
                .zip(&dh)
                .chain(c.iter().zip(&dc_in))
                .map(|(a, b)| (a * b) as f64)
                .sum()
        };
        let mut acts = z0.clone();
        let (mut c, mut ho, mut tc) = (
            c_prev.clone(),
            vec![0.0f32; rows * h],
            vec![0.0f32; rows * h],
        );
        let mut c_rec = vec![0.0f32; rows * h];
        let cell = CellBuffers {
            c: &mut c,
            c_record: &mut c_rec,
            tanh_c_record: &mut tc,
            h_out: &mut ho,
        };
        lstm_cell_forward(&mut acts, None, &scale, cell, h);
        let mut carry = dc_in.clone();
        let (mut dz, mut db) = (vec![0.0f32; acts.len()], vec![0.0f32; 4 * h]);
        let grads = CellGradients {
            dz: &mut dz,
            db: &mut db,
            dc_carry: &mut carry,
        };
        lstm_cell_backward(&acts, &tc, &c_prev, &dh, grads, h);
        for (j, &b) in db.iter().enumerate() {
            let sum: f32 = dz.iter().skip(j).step_by(4 * h).sum();
            assert!((b - sum).abs() <= 1e-6 * (1.0 + sum.abs()), "db[{j}]");
        }
        let acts = dz;
        let eps = 1e-2f32;
        for k in (0..z0.len()).step_by(7) {
            let at = |d: f32| {
                let mut z = z0.clone();
                z[k] += d;
                loss(&z)
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let err = (fd - acts[k] as f64).abs() / (fd.abs().max(1e-2));
            assert!(err < 2e-2, "z[{k}]: analytic {} vs {fd}", acts[k]);
        }
    }
}

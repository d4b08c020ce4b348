//! l2l's own matrix product, `C = α·A·B + β·C`, whose every value is summed in one fixed
//! order, so that results are the same bits whatever the CPU, the vector width, the tile or
//! the layout of the operands (docs/performance.md, "Deterministic products").
//!
//! BLAS sums in an order that depends on the kernel it picks for the CPU, and meta-training
//! turns a difference in the last bit into another checkpoint. Here each value of C is:
//!
//! ```text
//! p_b  = Σ_{k in block b} a_ik · b_kj     (one multiply-add each, k ascending, from 0)
//! c_ij = β·c_ij + α·p_0,  then  c_ij = c_ij + α·p_b  for b = 1, 2, ...
//! ```
//!
//! over blocks of [`K_BLOCK`] values of k (β = 0 ignores what C held). The order depends on
//! nothing but k, so a product may be vectorised along the columns of C, or along its rows
//! (the transposed product, since a·b = b·a in a multiply-add), with any tile. The blocks keep
//! the sums over long k (an LSTM's weight gradient sums over every coordinate and step) short
//! and the packed operands in cache.
//!
//! The kernel is the usual packed one: a block of B is packed into strips of `NR` columns,
//! a block of A into groups of `MR` rows, and a register tile of `MR × NR` sums runs over the
//! block. Multiply-adds are fused where the build has FMA ([`super::isa::multiply_add`]);
//! every build with FMA (AVX2, AVX-512, NEON) gives the same bits.

use super::isa::{multiply_add, KERNEL_ISA};
use ndarray::{ArrayView2, ArrayViewMut2};

/// The values of k summed in one block. Fixed for every build: it is part of the order.
pub const K_BLOCK: usize = 256;

/// About how many columns of B one pass over A's rows covers (a block of K_BLOCK × J_BLOCK
/// values, 256 KiB, stays in L2). Any value gives the same bits.
const J_BLOCK: usize = 256;

/// A register tile: `rows` of C × `chunks` vectors of `lanes` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTile {
    pub lanes: usize,
    pub rows: usize,
    pub chunks: usize,
}

impl GemmTile {
    const fn new(lanes: usize, rows: usize, chunks: usize) -> Self {
        GemmTile {
            lanes,
            rows,
            chunks,
        }
    }
    const fn width(&self) -> usize {
        self.lanes * self.chunks
    }
}

/// The tiles of this build, widest first: sums, vectors of B and one broadcast fit the
/// register file (32 of 16 floats with AVX-512, 16 of 8 with AVX2, 32 of 4 with NEON, 16 of 4
/// otherwise).
/// AVX-512 has a third, 80 columns wide: the LSTM's 4 × 20 gates.
const TILES: &[GemmTile] = match KERNEL_ISA.as_bytes() {
    b"avx512" => &[
        GemmTile::new(16, 6, 4),
        GemmTile::new(16, 12, 2),
        GemmTile::new(16, 4, 5),
    ],
    b"avx2+fma" => &[GemmTile::new(8, 6, 2), GemmTile::new(8, 12, 1)],
    b"neon" => &[GemmTile::new(4, 5, 5), GemmTile::new(4, 12, 2)],
    _ => &[GemmTile::new(4, 6, 2), GemmTile::new(4, 12, 1)],
};

/// Every tile of every build, so that a test can run each one in any build.
pub const ALL_TILES: [GemmTile; 9] = [
    GemmTile::new(16, 6, 4),
    GemmTile::new(16, 4, 5),
    GemmTile::new(16, 12, 2),
    GemmTile::new(8, 6, 2),
    GemmTile::new(8, 12, 1),
    GemmTile::new(4, 5, 5),
    GemmTile::new(4, 12, 2),
    GemmTile::new(4, 6, 2),
    GemmTile::new(4, 12, 1),
];

/// C = A·B + β·C in the order of the module docs.
pub fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    gemm_scaled(1.0, a, b, beta, c)
}

/// C = α·A·B + β·C in the order of the module docs, with the tile and orientation that cost
/// the fewest cycles by a simple count ([`cost`]).
pub fn gemm_scaled(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    let mut best = (f64::MAX, TILES[0], false);
    for &tile in TILES {
        for transposed in [false, true] {
            let [rows, cols] = [c.strides()[0], c.strides()[1]];
            let cost = if transposed {
                cost(tile, &b.t(), &a.t(), [cols, rows])
            } else {
                cost(tile, &a, &b, [rows, cols])
            };
            if cost < best.0 {
                best = (cost, tile, transposed);
            }
        }
    }
    gemm_with(best.1, best.2, alpha, a, b, beta, c)
}

/// The cost of [`blocked`] with `tile` on A, B and C, in multiply-adds (a vector of L of them
/// takes half a cycle, so a cycle is 2L):
/// - the padded tiles' multiply-adds, each with its share of the tile's loads (C vectors of B
///   and R broadcasts per R·C vector multiply-adds);
/// - each value packed: 2 for a copy along contiguous runs, 2L for one gathered across rows;
/// - each value of C stored per block of k: 2L where C's rows are contiguous, 8L where each
///   value lies on a line of its own.
fn cost(tile: GemmTile, a: &ArrayView2<f32>, b: &ArrayView2<f32>, c_strides: [isize; 2]) -> f64 {
    let ((m, k), n) = (a.dim(), b.dim().1);
    let (rows, width, lanes) = (tile.rows, tile.width(), tile.lanes);
    let padded = (m.div_ceil(rows) * rows * n.div_ceil(width) * width * k) as f64;
    let loads = (rows + tile.chunks) as f64 / (rows * tile.chunks) as f64;
    let packed_a = if a_in_place(a.strides()) { m % rows } else { m };
    let b_runs = b.strides()[1] == 1;
    let packed_b = if b_runs && reads_in_place(b.strides()[0]) {
        n % width
    } else {
        n
    };
    let per_b = if b_runs { 2 } else { 2 * lanes };
    let per_c = if c_strides[1] == 1 {
        2 * lanes
    } else {
        8 * lanes
    };
    padded * (1.0 + 0.5 * loads)
        + (packed_a * k * 2 * lanes + packed_b * k * per_b + m * n * k.div_ceil(K_BLOCK) * per_c)
            as f64
}

/// [`gemm_scaled`] with a given tile, vectorised along the rows of C (`transposed`: the
/// product Cᵀ = Bᵀ·Aᵀ) or its columns. Every choice gives the same bits.
pub fn gemm_with(
    tile: GemmTile,
    transposed: bool,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    let (m, k) = a.dim();
    let (k_b, n) = b.dim();
    assert!(
        k == k_b && c.dim() == (m, n),
        "gemm: A {m}×{k}, B {k_b}×{n}, C {:?}",
        c.dim()
    );
    if transposed {
        dispatch(
            tile,
            alpha,
            b.reversed_axes(),
            a.reversed_axes(),
            beta,
            c.reversed_axes(),
        )
    } else {
        dispatch(tile, alpha, a, b, beta, c)
    }
}

fn dispatch(
    tile: GemmTile,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    match (tile.lanes, tile.rows, tile.chunks) {
        (16, 6, 4) => blocked::<16, 6, 4>(alpha, a, b, beta, c),
        (16, 12, 2) => blocked::<16, 12, 2>(alpha, a, b, beta, c),
        (16, 4, 5) => blocked::<16, 4, 5>(alpha, a, b, beta, c),
        (8, 6, 2) => blocked::<8, 6, 2>(alpha, a, b, beta, c),
        (8, 12, 1) => blocked::<8, 12, 1>(alpha, a, b, beta, c),
        (4, 5, 5) => blocked::<4, 5, 5>(alpha, a, b, beta, c),
        (4, 12, 2) => blocked::<4, 12, 2>(alpha, a, b, beta, c),
        (4, 6, 2) => blocked::<4, 6, 2>(alpha, a, b, beta, c),
        (4, 12, 1) => blocked::<4, 12, 1>(alpha, a, b, beta, c),
        _ => panic!("gemm: no kernel for the tile {tile:?}"),
    }
}

/// One operand of a register tile: value (r, kk) of an A group is at `ptr + r·lane + kk·step`;
/// lane l of chunk c of a B strip at `ptr + c·L + l + kk·step` (`lane` unused).
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    step: isize,
    lane: isize,
}

/// The blocked product with tiles of R rows × C chunks of L lanes. A group of rows of A is read
/// where it lies (one broadcast a value, whatever A's layout), and a strip of B when B's rows
/// are contiguous (vector loads); the rest (a transposed B, the last partial group or strip) is
/// packed first.
fn blocked<const L: usize, const R: usize, const C: usize>(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.mapv_inplace(|v| if beta == 0.0 { 0.0 } else { beta * v });
        return;
    }
    let nr = L * C;
    let strips = n.div_ceil(nr);
    // Strips of B taken together: about J_BLOCK columns, whose k block stays in L2 while every
    // group of A's rows passes over it.
    let block_strips = J_BLOCK.div_ceil(nr);
    let (a_rows, a_cols) = (a.strides()[0], a.strides()[1]);
    let (b_rows, b_cols) = (b.strides()[0], b.strides()[1]);
    let b_direct = b_cols == 1 && reads_in_place(b_rows);
    let a_direct = a_in_place(a.strides());
    // Packed strips of B: every strip of a block when B is packed, else only a block's last
    // partial strip. Sized to what is packed: zeroing a whole block's worth (up to 256 KiB)
    // on every call took 5% of the quadratics' meta-training (docs/performance.md, "Pack
    // buffers sized to what is packed").
    let pack_slots = match (b_direct, n % nr) {
        (true, 0) => 0,
        (true, _) => 1,
        (false, _) => block_strips.min(strips),
    };
    let mut b_pack = vec![0.0f32; pack_slots * K_BLOCK.min(k) * nr];
    let mut a_pack = vec![0.0f32; R * K_BLOCK.min(k)];
    let mut b_strips = Vec::with_capacity(block_strips);
    for k0 in (0..k).step_by(K_BLOCK) {
        let kc = K_BLOCK.min(k - k0);
        let combine = match (k0, beta) {
            (0, 0.0) => Combine::Overwrite,
            (0, _) => Combine::Scale(beta),
            _ => Combine::Add,
        };
        for s0 in (0..strips).step_by(block_strips) {
            b_strips.clear();
            let mut packs = b_pack.chunks_exact_mut(kc * nr);
            for s in s0..strips.min(s0 + block_strips) {
                let (j0, cols) = (s * nr, nr.min(n - s * nr));
                b_strips.push(if b_direct && cols == nr {
                    Operand {
                        // SAFETY: row k0, column j0 lies inside B.
                        ptr: unsafe { b.as_ptr().offset(k0 as isize * b_rows + j0 as isize) },
                        step: b_rows,
                        lane: 1,
                    }
                } else {
                    let packed = packs.next().expect("a slot for every packed strip");
                    pack_panel(&b, (k0, kc), (j0, cols), nr, packed);
                    Operand {
                        ptr: packed.as_ptr(),
                        step: nr as isize,
                        lane: 1,
                    }
                });
            }
            for g in 0..m.div_ceil(R) {
                let (i0, rows) = (g * R, R.min(m - g * R));
                let a_group = if rows == R && a_direct {
                    Operand {
                        // SAFETY: row i0, column k0 lies inside A.
                        ptr: unsafe {
                            a.as_ptr()
                                .offset(i0 as isize * a_rows + k0 as isize * a_cols)
                        },
                        step: a_cols,
                        lane: a_rows,
                    }
                } else {
                    pack_panel(&a.t(), (k0, kc), (i0, rows), R, &mut a_pack);
                    Operand {
                        ptr: a_pack.as_ptr(),
                        step: R as isize,
                        lane: 1,
                    }
                };
                for (s, &b_strip) in (s0..).zip(&b_strips) {
                    // SAFETY: both operands cover kc values of k and the tile's R rows and
                    // L·C columns, inside A and B or their packed copies (which live to the
                    // loop's end).
                    let sums = unsafe { tile_sums::<L, R, C>(a_group, b_strip, kc) };
                    let tile = Tile {
                        rows,
                        cols: nr.min(n - s * nr),
                        at: (i0, s * nr),
                    };
                    store(&sums, tile, alpha, combine, &mut c);
                }
            }
        }
    }
}

/// Whether a group of A's rows is read in place: along its rows (one stream a row), or across
/// them where the values of one k are contiguous and the next k is not too far.
fn a_in_place(strides: &[isize]) -> bool {
    strides[1] == 1 || reads_in_place(strides[1])
}

/// Whether B's rows, `stride` floats apart, are read in place rather than packed: a tile's
/// strip reads one row per k, and rows whose distance is a multiple of 4 KiB (or that are each
/// on a page of their own) fall into the same few cache sets and TLB entries.
fn reads_in_place(stride: isize) -> bool {
    let bytes = stride.unsigned_abs() * 4;
    bytes < 4096 && !bytes.is_multiple_of(2048)
}

/// Where a register tile's sums go in C: its top-left value and how many rows and columns
/// of it are C's (the rest is padding).
#[derive(Clone, Copy)]
struct Tile {
    rows: usize,
    cols: usize,
    at: (usize, usize),
}

/// How a block's sums p join C: c = α·p (β = 0, first block), c = β·c + α·p (first block),
/// or c = c + α·p (every later block).
#[derive(Clone, Copy)]
enum Combine {
    Overwrite,
    Scale(f32),
    Add,
}

fn store<const L: usize, const R: usize, const C: usize>(
    sums: &[[[f32; L]; C]; R],
    tile: Tile,
    alpha: f32,
    combine: Combine,
    c: &mut ArrayViewMut2<f32>,
) {
    let (i0, j0) = tile.at;
    let (rs, cs) = (c.strides()[0], c.strides()[1]);
    assert!(i0 + tile.rows <= c.dim().0 && j0 + tile.cols <= c.dim().1);
    let base = c.as_mut_ptr();
    for (r, row) in sums.iter().enumerate().take(tile.rows) {
        let sums = &row.as_flattened()[..tile.cols];
        if cs == 1 {
            // SAFETY: the row's tile.cols values from (i0 + r, j0) lie inside C (asserted).
            let out = unsafe {
                std::slice::from_raw_parts_mut(
                    base.offset((i0 + r) as isize * rs + j0 as isize),
                    tile.cols,
                )
            };
            for (v, &p) in out.iter_mut().zip(sums) {
                *v = match combine {
                    Combine::Overwrite => alpha * p,
                    Combine::Scale(beta) => beta * *v + alpha * p,
                    Combine::Add => *v + alpha * p,
                };
            }
            continue;
        }
        for (j, &p) in sums.iter().enumerate() {
            // SAFETY: (i0 + r, j0 + j) lies inside C, asserted above; strides are C's own.
            let v = unsafe { &mut *base.offset((i0 + r) as isize * rs + (j0 + j) as isize * cs) };
            *v = match combine {
                Combine::Overwrite => alpha * p,
                Combine::Scale(beta) => beta * *v + alpha * p,
                Combine::Add => *v + alpha * p,
            };
        }
    }
}

/// Packs values k0..k0+kc (axis 0) × lanes l0..l0+lanes (axis 1) of `src` k-major into `out`
/// (kc × width), the lanes past `lanes` zero: a strip of B (`src` = B, lanes its columns) or a
/// group of A's rows (`src` = Aᵀ). It reads along whichever axis is contiguous.
fn pack_panel(
    src: &ArrayView2<f32>,
    (k0, kc): (usize, usize),
    (l0, lanes): (usize, usize),
    width: usize,
    out: &mut [f32],
) {
    assert!(k0 + kc <= src.dim().0 && l0 + lanes <= src.dim().1 && out.len() >= kc * width);
    let (ks, ls) = (src.strides()[0], src.strides()[1]);
    let base = src.as_ptr();
    // SAFETY: k0 + kk < rows and l0 + l < columns of `src`, asserted above.
    let at = |kk: usize, l: usize| unsafe {
        *base.offset((k0 + kk) as isize * ks + (l0 + l) as isize * ls)
    };
    if lanes < width {
        out[..kc * width].fill(0.0);
    }
    if ks == 1 && ls != 1 {
        // Contiguous along k (a transposed view): read along it.
        for l in 0..lanes {
            for kk in 0..kc {
                out[kk * width + l] = at(kk, l);
            }
        }
    } else {
        for kk in 0..kc {
            for l in 0..lanes {
                out[kk * width + l] = at(kk, l);
            }
        }
    }
}

/// The sums of one register tile over kc values of k.
///
/// # Safety
/// `a` must address R rows and `b` L·C columns, each for kc steps.
#[inline(always)]
unsafe fn tile_sums<const L: usize, const R: usize, const C: usize>(
    a: Operand,
    b: Operand,
    kc: usize,
) -> [[[f32; L]; C]; R] {
    let mut acc = [[[0.0f32; L]; C]; R];
    for kk in 0..kc as isize {
        let w = b.ptr.offset(kk * b.step);
        let mut wv = [[0.0f32; L]; C];
        for (c, v) in wv.iter_mut().enumerate() {
            v.copy_from_slice(std::slice::from_raw_parts(w.add(c * L), L));
        }
        let x = a.ptr.offset(kk * a.step);
        for (r, row) in acc.iter_mut().enumerate() {
            let xv = *x.offset(r as isize * a.lane);
            for (v_acc, v) in row.iter_mut().zip(&wv) {
                for l in 0..L {
                    v_acc[l] = multiply_add(xv, v[l], v_acc[l]);
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn matrix(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let h = (i * 7919 + j * 104_729 + seed * 31) % 1009;
            h as f32 / 504.5 - 1.0
        })
    }

    /// The order of the module docs, written out one value at a time.
    fn reference(alpha: f32, a: &Array2<f32>, b: &Array2<f32>, beta: f32, c: &mut Array2<f32>) {
        let (m, k) = a.dim();
        for i in 0..m {
            for j in 0..b.dim().1 {
                for k0 in (0..k).step_by(K_BLOCK) {
                    let mut p = 0.0f32;
                    for kk in k0..(k0 + K_BLOCK).min(k) {
                        p = multiply_add(a[(i, kk)], b[(kk, j)], p);
                    }
                    let v = &mut c[(i, j)];
                    *v = if k0 > 0 {
                        *v + alpha * p
                    } else if beta == 0.0 {
                        alpha * p
                    } else {
                        beta * *v + alpha * p
                    };
                }
            }
        }
    }

    /// Every tile, both orientations and transposed operands give the reference's bits, on
    /// shapes with partial tiles, several k blocks, several blocks of B's strips and the shapes
    /// l2l multiplies.
    #[test]
    fn every_tile_and_layout_gives_the_reference_bits() {
        let shapes = [
            (1, 1, 1),
            (7, 3, 5),
            (13, 300, 21),
            (128, 784, 20),
            (37, 80, 40),
            (22, 600, 80),
            (130, 20, 97),
            (9, 600, 300),
        ];
        for (m, k, n) in shapes {
            let (a, b) = (matrix(m, k, 1), matrix(k, n, 2));
            let (at, bt) = (a.t().to_owned(), b.t().to_owned());
            for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (0.25, 0.5)] {
                let c0 = matrix(m, n, 3);
                let mut want = c0.clone();
                reference(alpha, &a, &b, beta, &mut want);
                for tile in ALL_TILES {
                    for transposed in [false, true] {
                        let mut c = c0.clone();
                        gemm_with(
                            tile,
                            transposed,
                            alpha,
                            a.view(),
                            b.view(),
                            beta,
                            c.view_mut(),
                        );
                        assert_eq!(c, want, "{m}×{k}×{n} {tile:?} transposed {transposed}");
                        let mut c = c0.clone();
                        gemm_with(tile, transposed, alpha, at.t(), bt.t(), beta, c.view_mut());
                        assert_eq!(c, want, "{m}×{k}×{n} {tile:?} from transposes");
                    }
                }
                let mut c = c0.clone();
                gemm_scaled(alpha, a.view(), b.view(), beta, c.view_mut());
                assert_eq!(c, want);
                let mut c = c0.t().to_owned();
                gemm_scaled(alpha, b.t(), a.t(), beta, c.view_mut());
                assert_eq!(c.t(), want);
            }
        }
    }

    /// β = 0 ignores what C held (NaN included); k = 0 leaves β·C.
    #[test]
    fn beta_zero_ignores_c_and_empty_k_scales_it() {
        let (a, b) = (matrix(5, 4, 1), matrix(4, 6, 2));
        let mut c = Array2::from_elem((5, 6), f32::NAN);
        gemm(a.view(), b.view(), 0.0, c.view_mut());
        assert!(c.iter().all(|v| v.is_finite()));
        let mut c = Array2::from_elem((2, 3), 2.0f32);
        gemm(
            Array2::zeros((2, 0)).view(),
            Array2::zeros((0, 3)).view(),
            0.5,
            c.view_mut(),
        );
        assert!(c.iter().all(|&v| v == 1.0));
    }

    /// Against f64 products: the blocked f32 sums are accurate to a few units in the last place
    /// of the terms' magnitudes, also over long k.
    #[test]
    fn matches_f64_products() {
        for (m, k, n) in [(9, 5000, 11), (40, 80, 33)] {
            let (a, b) = (matrix(m, k, 4), matrix(k, n, 5));
            let mut c = Array2::zeros((m, n));
            gemm(a.view(), b.view(), 0.0, c.view_mut());
            for i in 0..m {
                for j in 0..n {
                    let (mut exact, mut size) = (0.0f64, 0.0f64);
                    for kk in 0..k {
                        let t = a[(i, kk)] as f64 * b[(kk, j)] as f64;
                        exact += t;
                        size += t.abs();
                    }
                    let err = (c[(i, j)] as f64 - exact).abs();
                    assert!(err <= 1e-6 * size, "{i},{j}: {} vs {exact}", c[(i, j)]);
                }
            }
        }
    }
}

//! The instruction set the kernels are compiled for, and the register tile of the fused LSTM
//! kernel on each (docs/performance.md, "Kernel shapes per instruction set"). The choice is
//! made at compile time from the target features: `make` builds with `target-cpu=native`, so a
//! build uses the widest vectors of the machine it was built on.
//!
//! A tile of the fused forward GEMM keeps `rows × chunks` accumulators of `lanes` floats, plus
//! `chunks` vectors of W and one broadcast input, in vector registers. The shapes are sized so
//! that they fit without spilling:
//! - AVX-512: 32 registers of 16 floats; 5 × 5 accumulators + 5 of W + 1 = 31.
//! - AVX2 + FMA: 16 registers of 8 floats; 6 × 2 accumulators + 2 of W + 1 = 15 (the AVX-512
//!   tile would need about 50 and spill).
//! - NEON (aarch64): 32 registers of 4 floats; 5 × 5 + 5 + 1 = 31.
//! - Anything else (x86-64's SSE2 baseline): 16 registers of 4 floats; 6 × 2 + 2 + 1 = 15.

/// A register tile of the fused kernel: `rows` coordinates × `chunks` vectors of `lanes` gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileShape {
    pub lanes: usize,
    pub rows: usize,
    pub chunks: usize,
}

impl TileShape {
    const fn new(lanes: usize, rows: usize, chunks: usize) -> Self {
        TileShape {
            lanes,
            rows,
            chunks,
        }
    }
}

/// The AVX-512 tile.
pub const AVX512_TILE: TileShape = TileShape::new(16, 5, 5);
/// The AVX2 + FMA tile.
pub const AVX2_TILE: TileShape = TileShape::new(8, 6, 2);
/// The NEON tile.
pub const NEON_TILE: TileShape = TileShape::new(4, 5, 5);
/// The tile for 16 registers of 4 floats (SSE2, and any other target).
pub const PORTABLE_TILE: TileShape = TileShape::new(4, 6, 2);
/// Every tile, so that a test can run each one in any build.
pub const ALL_TILES: [TileShape; 4] = [AVX512_TILE, AVX2_TILE, NEON_TILE, PORTABLE_TILE];
/// The most rows any tile has (sizes the gate scratch of a forward-only layer).
pub const MAX_TILE_ROWS: usize = {
    let (mut most, mut i) = (0, 0);
    while i < ALL_TILES.len() {
        if ALL_TILES[i].rows > most {
            most = ALL_TILES[i].rows;
        }
        i += 1;
    }
    most
};

/// The register tiles of the direct convolution kernels (`kernels/direct_conv/`), whose
/// vectors are runs of 8 pixels (one register with AVX2 or AVX-512, two with NEON or SSE2):
/// - the forward one keeps `rows × runs` vectors of sums, `runs` vectors of inputs and one
///   broadcast weight;
/// - the kernel's gradient keeps `gradient_rows × 5` vectors of lane sums (a row of the
///   paper's 5×5 kernel), `gradient_rows` vectors of the output's gradient and one of inputs
///   (wider kernels take one row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTile {
    pub rows: usize,
    pub runs: usize,
    pub gradient_rows: usize,
}

impl ConvTile {
    const fn new(rows: usize, runs: usize, gradient_rows: usize) -> Self {
        ConvTile {
            rows,
            runs,
            gradient_rows,
        }
    }
    /// Vector registers the tiles need, for vectors of `per_run` registers: the larger of the
    /// forward's and the gradient's.
    pub const fn registers(&self, per_run: usize) -> usize {
        let forward = (self.rows * self.runs + self.runs) * per_run + 1;
        let gradient = (self.gradient_rows * 5 + self.gradient_rows + 1) * per_run;
        if forward > gradient {
            forward
        } else {
            gradient
        }
    }
}

/// 32 registers of 16 floats: a run of 8 is one register.
pub const AVX512_CONV: ConvTile = ConvTile::new(8, 3, 4);
/// 16 registers of 8 floats.
pub const AVX2_CONV: ConvTile = ConvTile::new(4, 2, 2);
/// 32 registers of 4 floats: a run is two.
pub const NEON_CONV: ConvTile = ConvTile::new(4, 3, 2);
/// 16 registers of 4 floats: a run is two.
pub const PORTABLE_CONV: ConvTile = ConvTile::new(2, 2, 1);

#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
mod chosen {
    pub const NAME: &str = "avx512";
    pub const TILE: super::TileShape = super::AVX512_TILE;
    pub const CONV: super::ConvTile = super::AVX512_CONV;
}
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    not(target_feature = "avx512f")
))]
mod chosen {
    pub const NAME: &str = "avx2+fma";
    pub const TILE: super::TileShape = super::AVX2_TILE;
    pub const CONV: super::ConvTile = super::AVX2_CONV;
}
#[cfg(target_arch = "aarch64")]
mod chosen {
    pub const NAME: &str = "neon";
    pub const TILE: super::TileShape = super::NEON_TILE;
    pub const CONV: super::ConvTile = super::NEON_CONV;
}
#[cfg(not(any(
    all(target_arch = "x86_64", target_feature = "avx512f"),
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ),
    target_arch = "aarch64"
)))]
mod chosen {
    pub const NAME: &str = "portable";
    pub const TILE: super::TileShape = super::PORTABLE_TILE;
    pub const CONV: super::ConvTile = super::PORTABLE_CONV;
}

/// The instruction set this build's kernels were compiled for: "avx512", "avx2+fma", "neon"
/// or "portable".
pub const KERNEL_ISA: &str = chosen::NAME;
/// The fused kernel's tile in this build.
pub const TILE: TileShape = chosen::TILE;
/// The direct convolution's tiles in this build.
pub const CONV_TILE: ConvTile = chosen::CONV;

/// Whether this build multiplies and adds in one rounding (a fused multiply-add instruction).
/// Without one, `f32::mul_add` would call the C library's software `fmaf`, which is far
/// slower than a multiply and an add, so the kernels round twice there instead; results then
/// differ in the last bits from an FMA build.
pub const FUSED_MULTIPLY_ADD: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

/// acc + x·w, fused where the machine can.
#[inline(always)]
pub fn multiply_add(x: f32, w: f32, acc: f32) -> f32 {
    if FUSED_MULTIPLY_ADD {
        x.mul_add(w, acc)
    } else {
        acc + x * w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each tile fits its register file: accumulators, W's vectors and one broadcast.
    #[test]
    fn every_tile_fits_its_registers() {
        for (tile, registers) in [
            (AVX512_TILE, 32),
            (AVX2_TILE, 16),
            (NEON_TILE, 32),
            (PORTABLE_TILE, 16),
        ] {
            let used = tile.rows * tile.chunks + tile.chunks + 1;
            assert!(used <= registers, "{tile:?} needs {used} registers");
            assert!(tile.rows <= MAX_TILE_ROWS);
        }
        assert!(ALL_TILES.contains(&TILE));
        for (tile, registers, per_run) in [
            (AVX512_CONV, 32, 1),
            (AVX2_CONV, 16, 1),
            (NEON_CONV, 32, 2),
            (PORTABLE_CONV, 16, 2),
        ] {
            let used = tile.registers(per_run);
            assert!(used <= registers, "{tile:?} needs {used} registers");
        }
    }
}

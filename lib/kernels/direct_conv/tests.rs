//! The direct convolution kernels against plain loops in f64, at the conv net's sizes and at
//! odd ones, and every tile shape and block size against each other, bit for bit.

use super::*;
use crate::kernels::conv::flip_kernel;
use crate::kernels::isa::{AVX2_CONV, AVX512_CONV, NEON_CONV, PORTABLE_CONV};

fn normal(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::Rng::new(seed, 0);
    (0..len).map(|_| rng.normal() as f32).collect()
}

/// x[c, b, i, j], or 0 outside the image (SAME padding).
fn at(x: &[f32], s: Planes, c: usize, b: usize, i: isize, j: isize) -> f64 {
    if i < 0 || j < 0 || i >= s.height as isize || j >= s.width as isize {
        return 0.0;
    }
    x[c * s.per_channel() + (b * s.height + i as usize) * s.width + j as usize] as f64
}

/// Each output of the SAME convolution and the sum of its terms' magnitudes, in f64.
fn reference_convolution(x: &[f32], s: Planes, w: &[f32], out: usize, k: usize) -> Vec<(f64, f64)> {
    let p = (k / 2) as isize;
    let mut y = Vec::new();
    for o in 0..out {
        for b in 0..s.batch {
            for i in 0..s.height as isize {
                for j in 0..s.width as isize {
                    let (mut sum, mut size) = (0.0, 0.0);
                    for c in 0..s.channels {
                        for di in 0..k {
                            for dj in 0..k {
                                let wv = w[o * s.channels * k * k + (c * k + di) * k + dj] as f64;
                                let v =
                                    wv * at(x, s, c, b, i + di as isize - p, j + dj as isize - p);
                                sum += v;
                                size += v.abs();
                            }
                        }
                    }
                    y.push((sum, size));
                }
            }
        }
    }
    y
}

/// Each entry of the kernel's gradient Σ dz[o]·x_tap over every pixel, with its size, in f64.
fn reference_kernel_gradient(
    x: &[f32],
    s: Planes,
    dz: &[f32],
    out: usize,
    k: usize,
) -> Vec<(f64, f64)> {
    let p = (k / 2) as isize;
    let mut g = Vec::new();
    for o in 0..out {
        for c in 0..s.channels {
            for di in 0..k {
                for dj in 0..k {
                    let (mut sum, mut size) = (0.0, 0.0);
                    for b in 0..s.batch {
                        for i in 0..s.height {
                            for j in 0..s.width {
                                let d = dz[o * s.per_channel() + (b * s.height + i) * s.width + j];
                                let (ii, jj) =
                                    (i as isize + di as isize - p, j as isize + dj as isize - p);
                                let v = d as f64 * at(x, s, c, b, ii, jj);
                                sum += v;
                                size += v.abs();
                            }
                        }
                    }
                    g.push((sum, size));
                }
            }
        }
    }
    g
}

/// The forward convolution through the kernels with an R × P tile, in blocks of `block`.
fn convolve_with<const R: usize, const P: usize>(
    x: &[f32],
    s: Planes,
    w: &[f32],
    out: usize,
    k: usize,
    block: usize,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; out * s.per_channel()];
    let mut padded = vec![f32::NAN; Padded::of(s, k, block).len()];
    for b0 in (0..s.batch).step_by(block) {
        let images = b0..(b0 + block).min(s.batch);
        let g = Padded::of(s, k, images.len());
        pad_images(x, s, images, &g, &mut padded);
        convolve_with_tile::<R, P>(&padded, &g, w, out, &mut y, b0);
    }
    y
}

/// The kernel's gradient through the kernels with tiles of R output channels, in blocks of
/// `block`.
fn gradient_with<const R: usize>(
    x: &[f32],
    s: Planes,
    dz: &[f32],
    out: usize,
    k: usize,
    block: usize,
) -> Vec<f32> {
    let outputs = Planes { channels: out, ..s };
    let taps = s.channels * k * k;
    let mut lanes = vec![0.0; out * taps * LANES];
    let mut padded_x = vec![f32::NAN; Padded::of(s, k, block).len()];
    let mut padded_dz = vec![f32::NAN; Padded::of(outputs, k, block).len()];
    for b0 in (0..s.batch).step_by(block) {
        let images = b0..(b0 + block).min(s.batch);
        let g = Padded::of(s, k, images.len());
        pad_images(x, s, images.clone(), &g, &mut padded_x);
        pad_images(dz, outputs, images, &g.with_channels(out), &mut padded_dz);
        gradient_with_tile::<R>(&padded_x, &g, &padded_dz, out, &mut lanes);
    }
    let mut dkernel = vec![f32::NAN; out * taps];
    finish_kernel_gradient(&lanes, &mut dkernel);
    dkernel
}

fn assert_close(what: &str, got: &[f32], expected: &[(f64, f64)]) {
    assert_eq!(got.len(), expected.len());
    for (n, (&g, &(e, size))) in got.iter().zip(expected).enumerate() {
        assert!(
            (g as f64 - e).abs() <= 1e-5 * size + 1e-6,
            "{what}: entry {n} is {g}, expected {e} (terms of size {size})"
        );
    }
}

/// (input channels, images, height, width, output channels, kernel): the conv net's three
/// layers (fewer images), then widths that are not whole runs and a 3×3 kernel.
const CASES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (3, 2, 32, 32, 16, 5),
    (16, 3, 16, 16, 16, 5),
    (16, 5, 8, 8, 16, 5),
    (1, 2, 28, 28, 6, 5),
    (3, 3, 7, 13, 5, 3),
    (2, 2, 4, 3, 3, 5),
    (5, 1, 1, 1, 7, 3),
];

#[test]
fn the_convolution_matches_plain_loops() {
    for (n, &(c, b, h, w, out, k)) in CASES.iter().enumerate() {
        let s = Planes::new(c, b, h, w);
        let (x, wt) = (normal(s.len(), 1 + n as u64), normal(out * c * k * k, 50));
        let expected = reference_convolution(&x, s, &wt, out, k);
        let block = images_per_block(s, out, k, 64 * 1024);
        let got = convolve_with::<4, 2>(&x, s, &wt, out, k, block);
        assert_close(&format!("case {n}"), &got, &expected);
    }
}

#[test]
fn the_kernel_gradient_matches_plain_loops() {
    for (n, &(c, b, h, w, out, k)) in CASES.iter().enumerate() {
        let s = Planes::new(c, b, h, w);
        let (x, dz) = (
            normal(s.len(), 10 + n as u64),
            normal(out * s.per_channel(), 60),
        );
        let expected = reference_kernel_gradient(&x, s, &dz, out, k);
        let block = images_per_block(s, out, k, 64 * 1024);
        let got = gradient_with::<2>(&x, s, &dz, out, k, block);
        assert_close(&format!("case {n}"), &got, &expected);
    }
}

/// Every instruction set's tiles, and any block of images, give the same bits: each sum runs
/// in one order whatever the tile and the block.
#[test]
fn every_tile_and_block_gives_the_same_bits() {
    const A: ConvTile = AVX512_CONV;
    const B: ConvTile = AVX2_CONV;
    const C: ConvTile = NEON_CONV;
    const D: ConvTile = PORTABLE_CONV;
    for (n, &(c, b, h, w, out, k)) in CASES.iter().enumerate() {
        let s = Planes::new(c, b, h, w);
        let (x, wt) = (normal(s.len(), 20 + n as u64), normal(out * c * k * k, 70));
        let dz = normal(out * s.per_channel(), 80);
        let forward = [
            convolve_with::<{ A.rows }, { A.runs }>(&x, s, &wt, out, k, b),
            convolve_with::<{ B.rows }, { B.runs }>(&x, s, &wt, out, k, 1),
            convolve_with::<{ C.rows }, { C.runs }>(&x, s, &wt, out, k, 2),
            convolve_with::<{ D.rows }, { D.runs }>(&x, s, &wt, out, k, b),
            convolve_with::<1, 1>(&x, s, &wt, out, k, 1),
        ];
        let gradient = [
            gradient_with::<{ A.gradient_rows }>(&x, s, &dz, out, k, b),
            gradient_with::<{ B.gradient_rows }>(&x, s, &dz, out, k, 1),
            gradient_with::<{ C.gradient_rows }>(&x, s, &dz, out, k, 2),
            gradient_with::<{ D.gradient_rows }>(&x, s, &dz, out, k, b),
            gradient_with::<1>(&x, s, &dz, out, k, 1),
        ];
        for other in 1..forward.len() {
            let same =
                |u: &[f32], v: &[f32]| u.iter().zip(v).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(
                same(&forward[0], &forward[other]),
                "case {n}, forward {other}"
            );
            assert!(
                same(&gradient[0], &gradient[other]),
                "case {n}, gradient {other}"
            );
        }
    }
}

/// ⟨conv(x; w), y⟩ = ⟨x, conv(y; flip(w))⟩ for any x, y and w: the flipped kernel's
/// convolution is the forward one's adjoint, so it gives the input's gradient.
#[test]
fn the_flipped_kernel_convolves_the_adjoint() {
    for (c_in, c_out, k, s) in [
        (3, 4, 5, Planes::new(3, 2, 6, 4)),
        (16, 16, 5, Planes::new(16, 2, 16, 16)),
    ] {
        let (x, w) = (normal(s.len(), 3), normal(c_out * c_in * k * k, 4));
        let y = normal(c_out * s.per_channel(), 5);
        let mut flipped = vec![0.0; w.len()];
        flip_kernel(&w, c_out, c_in, k, &mut flipped);
        let forward = convolve_with::<4, 2>(&x, s, &w, c_out, k, 1);
        let outputs = Planes {
            channels: c_out,
            ..s
        };
        let back = convolve_with::<4, 2>(&y, outputs, &flipped, c_in, k, 2);
        let lhs: f64 = forward.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}

#[test]
fn padding_surrounds_each_image_with_zeros() {
    // One 2×3 image, a 3×3 kernel: a border of 1, and the row widened to a whole run.
    let x = [1., 2., 3., 4., 5., 6.];
    let s = Planes::new(1, 1, 2, 3);
    let g = Padded::of(s, 3, 1);
    assert_eq!((g.row(), g.image_len()), (LANES + 2, 4 * (LANES + 2)));
    let mut padded = vec![f32::NAN; g.len()];
    pad_images(&x, s, 0..1, &g, &mut padded);
    let row = |i: usize| &padded[i * g.row()..][..5];
    assert_eq!(row(0), &[0.0; 5]);
    assert_eq!(row(1), &[0., 1., 2., 3., 0.]);
    assert_eq!(row(2), &[0., 4., 5., 6., 0.]);
    assert!(padded.iter().all(|v| !v.is_nan()));
}

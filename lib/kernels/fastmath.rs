//! Fast f32 elementary functions, written so that loops over them vectorise (the LSTM's gates,
//! Appendix A's log preprocessing, the MLP's sigmoid units).

use super::isa::multiply_add;

/// e^x in f32, written so that it vectorises: range reduction to r ∈ [−ln2/2, ln2/2], a
/// degree-5 polynomial in fused multiply-adds, and 2^n built from exponent bits. The
/// polynomial's coefficients minimise its largest relative error on that interval (9.1e-8 in
/// exact arithmetic); evaluated in f32 the result is within 2e-7 of e^x for x in [−87, 88]
/// (tested against f64 over the whole range). x below −87 gives e^−87, above 88 e^88.
/// Every build with FMA (AVX2, AVX-512, NEON) gives the same bits, whatever its vector width:
/// the lanes are independent and the operations the same.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, the first with trailing zero bits, so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const C: [f32; 5] = [
        0.999_999_7,
        0.499_991_5,
        0.166_676_36,
        0.041_897_93,
        0.008_290_315,
    ];
    let x = x.clamp(-87.0, 88.0);
    let t = multiply_add(x, LOG2E, ROUND);
    let n = t - ROUND;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = multiply_add(-n, LN2_LO, multiply_add(-n, LN2_HI, x));
    let mut p = C[4];
    for &c in C[..4].iter().rev() {
        p = multiply_add(p, r, c);
    }
    multiply_add(p, r, 1.0) * f32::from_bits(((n_bits + 127) as u32) << 23)
}

/// ln x in f32 for positive normal x, written so that it vectorises: x = m·2^e with
/// m ∈ [√½, √2), and ln m = 2 atanh((m−1)/(m+1)) by its odd series (error below 1e-7).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { 0.5 * m } else { m };
    e += big as i32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + series
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    reciprocal_one_plus_exp(-x)
}

/// 1 / (1 + eˣ): σ(−x), for callers that have −x at hand.
#[inline(always)]
pub fn reciprocal_one_plus_exp(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(x))
}

#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp_f32(-2.0 * x)) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 over the whole range, at 1.75 million points (every 1e-4) and at the ends.
    #[test]
    fn exp_is_within_its_bound_of_f64() {
        let mut worst = 0.0f64;
        for i in 0..=1_750_000 {
            let x = -87.0 + i as f64 * 1e-4;
            let got = exp_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max((got / want - 1.0).abs());
        }
        eprintln!("exp_f32: largest relative error {worst:e}");
        assert!(worst < 2e-7, "largest relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// The same bits in every build with FMA: values this build must reproduce, whatever its
    /// vector width (`make isa-check` runs this test in each build).
    #[test]
    fn exp_gives_the_same_bits_in_every_fused_build() {
        if !crate::kernels::isa::FUSED_MULTIPLY_ADD {
            return;
        }
        let xs = [-86.5f32, -20.25, -1.0, -0.1, 0.3, 1.0, 2.5, 10.0, 80.0];
        let bits: Vec<u32> = xs.iter().map(|&x| exp_f32(x).to_bits()).collect();
        // Vectorised over a slice as the gates run it, and one at a time: the same bits.
        let mut v = xs.to_vec();
        v.iter_mut().for_each(|x| *x = exp_f32(*x));
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), bits);
        assert_eq!(bits, EXP_BITS);
    }

    const EXP_BITS: [u32; 9] = [
        18070643, 819764976, 1052531379, 1063756652, 1068288046, 1076754517, 1094904703,
        1185682671, 2032843727,
    ];

    /// σ and tanh against f64 over their whole range (every 1e-3 from −100 to 100).
    #[test]
    fn sigmoid_and_tanh_are_within_their_bounds_of_f64() {
        let (mut sig_rel, mut tanh_abs) = (0.0f64, 0.0f64);
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-3;
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            if x >= -87.0 {
                sig_rel = sig_rel.max((sigmoid(x) as f64 / s - 1.0).abs());
            } else {
                assert!(sigmoid(x) < 2e-38);
            }
            tanh_abs = tanh_abs.max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        eprintln!("sigmoid: largest relative error {sig_rel:e}; tanh: largest error {tanh_abs:e}");
        assert!(
            sig_rel < 3e-7 && tanh_abs < 4e-7,
            "{sig_rel:e} {tanh_abs:e}"
        );
    }

    #[test]
    fn ln_matches_std() {
        let mut x = 1e-30f32;
        while x < 1e30 {
            let (a, b) = (ln_f32(x), x.ln());
            assert!((a - b).abs() < 2e-6 * (1.0 + b.abs()), "x={x}: {a} vs {b}");
            x *= 1.37;
        }
        assert_eq!(ln_f32(1.0), 0.0);
    }

    #[test]
    fn sigmoid_and_tanh_are_accurate_and_saturate() {
        for &x in &[-50.0f32, -5.0, -0.3, 0.0, 1e-4, 0.7, 9.0, 50.0] {
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6);
            assert!((tanh(x) - x.tanh()).abs() < 1e-6);
        }
        assert_eq!(sigmoid(1e30), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert!(sigmoid(f32::NAN).is_nan());
    }
}

//! Fast f32 elementary functions, written so that loops over them vectorise (the LSTM's gates,
//! Appendix A's log preprocessing, the MLP's sigmoid units).

/// e^x in f32, written so that it vectorises: range reduction to r ∈ [−ln2/2, ln2/2], a
/// degree-6 polynomial (relative error about 1e-7), and 2^n built from exponent bits.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n_bits + 127) as u32) << 23)
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
    1.0 / (1.0 + exp_f32(-x))
}

#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp_f32(-2.0 * x)) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_float_precision() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (a, b) = (exp_f32(x), x.exp());
            assert!(((a - b) / b).abs() < 4e-7, "x={x}: {a} vs {b}");
            x += 0.0137;
        }
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite());
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

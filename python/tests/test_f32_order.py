"""The emulated float32 arithmetic of python/examples/f32_order.py against exact rationals."""

import os
import sys
import unittest
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
from f32_order import F32, Rng, exp_f32, fma, gemm  # noqa: E402


def nearest_f32(exact):
    """The float32 nearest the rational `exact`, ties to even."""
    guess = F32(float(exact))
    below = guess if Fraction(float(guess)) <= exact else np.nextafter(guess, F32(-np.inf))
    above = np.nextafter(below, F32(np.inf))
    d_below, d_above = exact - Fraction(float(below)), Fraction(float(above)) - exact
    if d_below != d_above:
        return below if d_below < d_above else above
    return below if int(below.view(np.uint32)) % 2 == 0 else above


def exact_fma(a, b, c):
    return nearest_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


class FusedMultiplyAdd(unittest.TestCase):
    def test_a_sum_just_below_a_tie_rounds_down(self):
        # 1 + 2^-23 + 2^-24 - 2^-70 is just below the tie between 1 + 2^-23 and 1 + 2^-22:
        # rounded to float64 first it lands on the tie, which rounds to even, upwards.
        a, b = F32(1 + 2**-23), F32((1 - 2**-23) * 2**-24)
        c = F32(1 + 2**-23)
        self.assertEqual(fma(a, b, c), F32(1 + 2**-23))
        self.assertEqual(fma(a, b, c), exact_fma(a, b, c))
        self.assertNotEqual(F32(np.float64(a) * np.float64(b) + np.float64(c)), fma(a, b, c))

    def test_random_operands_round_once(self):
        rng = np.random.default_rng(7)
        a = (rng.standard_normal(3000) * 10.0 ** rng.integers(-6, 6, 3000)).astype(F32)
        b = (rng.standard_normal(3000) * 10.0 ** rng.integers(-6, 6, 3000)).astype(F32)
        c = (rng.standard_normal(3000) * 10.0 ** rng.integers(-12, 12, 3000)).astype(F32)
        got = fma(a, b, c)
        for i in range(len(a)):
            self.assertEqual(got[i], exact_fma(a[i], b[i], c[i]), (a[i], b[i], c[i]))

    def test_gemm_sums_blocks_of_256_in_turn(self):
        rng = np.random.default_rng(3)
        a = rng.standard_normal((3, 600)).astype(F32)
        b = rng.standard_normal((600, 2)).astype(F32)
        want = np.zeros((3, 2), dtype=F32)
        for i in range(3):
            for j in range(2):
                for k0 in range(0, 600, 256):
                    p = F32(0.0)
                    for k in range(k0, min(k0 + 256, 600)):
                        p = exact_fma(a[i, k], b[k, j], p)
                    want[i, j] = p if k0 == 0 else want[i, j] + p
        self.assertTrue(np.array_equal(gemm(a, b).view(np.uint32), want.view(np.uint32)))


class Elementary(unittest.TestCase):
    def test_exp_is_within_its_bound(self):
        x = np.linspace(-87, 88, 100_001).astype(F32)
        rel = np.abs(exp_f32(x).astype(np.float64) / np.exp(x.astype(np.float64)) - 1)
        self.assertLess(rel.max(), 2e-7)
        self.assertEqual(exp_f32(F32(0.0)), F32(1.0))

    def test_rng_repeats_and_draws_below_its_bound(self):
        a, b = Rng(7, 3), Rng(7, 3)
        self.assertEqual([a.next_u64() for _ in range(4)], [b.next_u64() for _ in range(4)])
        self.assertNotEqual(Rng(7, 4).next_u64(), Rng(7, 3).next_u64())
        self.assertTrue(all(0 <= Rng(1, i).below(10) < 10 for i in range(100)))


if __name__ == "__main__":
    unittest.main()

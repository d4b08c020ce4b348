"""l2l's float32 arithmetic, operation for operation, in numpy: what a port of one of l2l's
own models needs to give the same bits as l2l (docs/formats.md, "External optimizees").

- `fma`: a·b + c with one rounding, as l2l's multiply-adds on every build with FMA (numpy
  has none: the product is exact in float64, the sum is rounded to odd there, and rounding
  to odd at 53 bits then to nearest at 24 is a single rounding to nearest).
- `gemm`: l2l's matrix product (lib/kernels/gemm.rs): each value sums its products in blocks
  of 256 values of k, k ascending, one multiply-add each from zero, and the blocks' sums are
  added to C in turn.
- `exp_f32`, `sigmoid`: l2l's vectorised exponential (lib/kernels/fastmath.rs).
- `expf`, `logf`: the C library's, which l2l's softmax calls.
- `Rng`: l2l's xoshiro256++ seeded through SplitMix64, with Box-Muller normals (lib/rng.rs).
"""

import ctypes
import ctypes.util
import math

import numpy as np

F32 = np.float32
K_BLOCK = 256
_MASK = (1 << 64) - 1


def u64(x):
    """An integer as l2l's u64 holds it (npz files store seeds as int64)."""
    return int(x) & _MASK


def fma(a, b, c):
    """a·b + c in float32 with a single rounding, elementwise (arrays broadcast)."""
    return fma_exact_product(np.multiply(np.float64(a), np.float64(b)), c)


def fma_exact_product(p, c):
    """p + c rounded once to float32, where p is an exact float64 product of two float32s."""
    c = np.asarray(c, dtype=np.float64)
    s = p + c
    # TwoSum: e is what s lost, exactly.
    b = s - p
    e = (p - (s - b)) + (c - b)
    # Round to odd: an inexact s with an even last bit moves one ulp towards the exact sum.
    inexact_even = (e != 0) & ((np.asarray(s).view(np.int64) & 1) == 0)
    if np.any(inexact_even):
        s = np.where(inexact_even, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return np.asarray(s).astype(F32)


def gemm(a, b):
    """A·B (float32, [m, k] · [k, n]) in l2l's order of operations."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    (m, k), n = a64.shape, b64.shape[1]
    c = np.zeros((m, n), dtype=F32)
    for k0 in range(0, k, K_BLOCK):
        p = np.zeros((m, n), dtype=F32)
        for kk in range(k0, min(k0 + K_BLOCK, k)):
            p = fma_exact_product(np.multiply.outer(a64[:, kk], b64[kk]), p)
        c = p if k0 == 0 else c + p
    return c


_LOG2E = F32(math.log2(math.e))
_LN2_HI = F32(0.693_145_75)
_LN2_LO = F32(1.428_606_8e-6)
_ROUND = F32(12_582_912.0)
_EXP_C = [F32(c) for c in (0.999_999_7, 0.499_991_5, 0.166_676_36, 0.041_897_93, 0.008_290_315)]


def exp_f32(x):
    """l2l's e^x: range reduction, a degree-5 polynomial in multiply-adds, 2^n from bits."""
    x = np.clip(np.asarray(x, F32), F32(-87.0), F32(88.0))
    t = fma(x, _LOG2E, _ROUND)
    n = t - _ROUND
    n_bits = (t.view(np.int32) - _ROUND.view(np.int32)).astype(np.int32)
    r = fma(-n, _LN2_LO, fma(-n, _LN2_HI, x))
    p = np.full_like(r, _EXP_C[4])
    for c in reversed(_EXP_C[:4]):
        p = fma(p, r, c)
    scale = ((n_bits + 127).astype(np.uint32) << np.uint32(23)).view(F32)
    return fma(p, r, F32(1.0)) * scale


def sigmoid(x):
    """l2l's logistic function, 1 / (1 + e^-x) in float32."""
    return F32(1.0) / (F32(1.0) + exp_f32(-np.asarray(x, F32)))


_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_LIBM.expf.restype = _LIBM.logf.restype = ctypes.c_float
_LIBM.expf.argtypes = _LIBM.logf.argtypes = [ctypes.c_float]


def expf(x):
    """The C library's expf, elementwise."""
    x = np.asarray(x, F32)
    return np.array([_LIBM.expf(float(v)) for v in x.ravel()], dtype=F32).reshape(x.shape)


def logf(x):
    """The C library's logf, elementwise."""
    x = np.asarray(x, F32)
    return np.array([_LIBM.logf(float(v)) for v in x.ravel()], dtype=F32).reshape(x.shape)


def _splitmix64(state):
    state = (state + 0x9E37_79B9_7F4A_7C15) & _MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & _MASK
    return state, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & _MASK


class Rng:
    """l2l's generator for one (seed, stream) pair."""

    def __init__(self, seed, stream):
        a, b = seed & _MASK, (stream ^ 0x6A09_E667_F3BC_C909) & _MASK
        _, za = _splitmix64(a)
        _, zb = _splitmix64(b)
        sm = za ^ _rotl(zb, 17)
        s = []
        for _ in range(4):
            sm, w = _splitmix64(sm)
            s.append(w)
        if not any(s):
            s[0] = 1
        self.s = s
        self.spare = None

    def next_u64(self):
        s = self.s
        result = (_rotl((s[0] + s[3]) & _MASK, 23) + s[0]) & _MASK
        t = (s[1] << 17) & _MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def below(self, n):
        zone = _MASK - (_MASK - n + 1) % n
        while True:
            x = self.next_u64()
            if x <= zone:
                return x % n

    def normal(self):
        if self.spare is not None:
            z, self.spare = self.spare, None
            return z
        r = math.sqrt(-2.0 * math.log(1.0 - self.uniform()))
        angle = 2.0 * math.pi * self.uniform()
        self.spare = r * math.sin(angle)
        return r * math.cos(angle)

"""Analytic 1-d targets: sin, exp, sqrt, sigmoid (DESIGN §2.5). C̄ should be polylog in 1/eps."""
from __future__ import annotations

import numpy as np

from .base import Target, float_param, monotone_ranges, outward, register_function

# ----------------------------------------------------------------------------------------------------------------
# Analytic 1-d functions: C should be polylog in 1/eps (DESIGN §2.5), so gamma_theory is None. Source: n-bit
# values of exp, log, sin, sqrt and their compositions cost O(M(n) log n) bit operations, M(n) = O(n^2) that of
# an n-bit multiplication (Brent, "Fast multiple-precision evaluation of elementary functions", J. ACM 23, 1976),
# and n = O(log 1/eps) bits suffice (2 log2(1/eps) input bits for sqrt at 0): circuits of size polylog(1/eps).
# ----------------------------------------------------------------------------------------------------------------

TWO_PI = 2.0 * np.pi  # 2 fl(pi): |TWO_PI - 2 pi| < 2.5e-16

SIN_ERR = 2.0 ** -48
"""Bound on |sin(TWO_PI * t_float) - sin(2 pi t)| for the exactly reduced phase t in [-1/2, 1/2] (Sin._ranges).

t_float is t rounded (|error| <= 2u|t| + 2^-116 <= u + 2^-116), TWO_PI * t_float rounds once more (<= u pi) and
TWO_PI is off by < 2.5e-16, which |t| <= 1/2 halves: the argument is within 2 pi u + pi u + 1.3e-16 < 1.2e-15 of
2 pi t, and sin is 1-Lipschitz. libm adds LIBM_ULPS ulps of a result in [-1, 1], <= 4 * 2^-53 = 4.5e-16.
Total < 1.7e-15; SIN_ERR = 3.6e-15 leaves a factor 2."""


def _two_product(a, b):
    """p = fl(a b) and the exact rest e = a b - p (Dekker 1971, with Veltkamp's splitting; no FMA in numpy).

    Exact unless the products underflow, i.e. unless |a b| < ~2^-969, where e is off by a subnormal."""
    def split(v):
        big = v * 134217729.0  # 2^27 + 1
        hi = big - (big - v)
        return hi, v - hi
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _sin_phase_words(freq: float, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The phase freq c 2^-k mod 1 at every grid point c = 0 .. 2^k, exactly, as two uint64 words (T, R, j):
    phase = (T + R 2^-j) 2^-64 with T = floor(phase 2^64) and R < 2^j.

    freq = p / 2^s0 exactly (float.as_integer_ratio, p < 2^53), so the phase is p c / 2^s mod 1, s = s0 + k.
    uint64 products wrap modulo 2^64, which is exactly "mod 1" for a word in units of 2^-64. Split
    p = pH 2^j + pL with j = max(0, s - 64) and pL < 2^j: p c 2^(64-s) = pH c + pL c 2^-j, so
    T = pH c + floor(pL c 2^-j) (mod 2^64) and R = pL c mod 2^j (for s <= 64: j = 0, pH = p 2^(64-s), R = 0).
    pL c < 2^(j+k) must not wrap: j + k <= 64, which holds for freq >= 1/4 (then s0 <= 55) and k <= 36.
    No loop over cells, no int64 overflow: 2^20 cells take a few milliseconds.
    """
    p, q = float(freq).as_integer_ratio()
    s = q.bit_length() - 1 + k
    j = max(0, s - 64)
    if j + k > 64:
        raise ValueError(f"sin: exact phase reduction needs k <= 36 for freq >= 1/4, got k={k}")
    p_hi = (p << (64 - s)) % (1 << 64) if j == 0 else p >> j
    p_lo = p & ((1 << j) - 1)
    c = np.arange((1 << k) + 1, dtype=np.uint64)
    low = c * np.uint64(p_lo)
    return c * np.uint64(p_hi) + (low >> np.uint64(j)), low & np.uint64((1 << j) - 1), j


def _passes(T: np.ndarray, R: np.ndarray, at: int) -> np.ndarray:
    """Per cell (between grid points c and c + 1, whose phases advance by less than one period): whether the phase
    passes `at` 2^-64 (mod 1), exactly. The offset past that point, (T - at mod 2^64, R) compared
    lexicographically, is 0 at the cell's left end, or wraps around (decreases) inside the cell."""
    off = T - np.uint64(at)  # wraps: mod 1
    wraps = (off[1:] < off[:-1]) | ((off[1:] == off[:-1]) & (R[1:] < R[:-1]))
    return wraps | ((off[:-1] == 0) & (R[:-1] == 0))


@register_function("sin", version="2")
class Sin(Target):
    """sin(2 pi freq x) on [0,1], values in [-1,1].

    Why: analytic (entire), so C(f, eps) is polylog in 1/eps (Brent 1976, see above; or fixed-point CORDIC);
    `freq` raises the number of oscillations and hence the constant, not the rate. gamma_theory = None.
    Ranges: exact (endpoint values, plus +-1 where a crest (phase 1/4 mod 1) or trough (3/4) lies in the closed
    cell), with the phase freq x mod 1 at the dyadic endpoints reduced exactly in integer arithmetic
    (_sin_phase_words), so crests are found exactly and sin is evaluated on the reduced phase in [-1/2, 1/2]: the
    endpoint values are within SIN_ERR = 2^-48 of the true ones at every frequency, and so widened, then clipped
    to [-1, 1]. Cells that span a whole period get [-1, 1]; for freq < 1/4 the phase stays below 1/4, sin is
    increasing on [0,1] and freq x needs no reduction.
    Version 2: version 1 evaluated libm's sin at 2 pi freq x unreduced, whose rounding grows with freq: the true
    sin left its PAD-widened range by 8e-13 (freq 1000, k 14) and 4e-12 (freq 1e4, k 16).
    """
    d = 1

    def __init__(self, freq: float = 1.0):
        self.params = {"freq": float_param("freq", freq, lo=0.0, hi=1e6, lo_open=True)}

    def _eval(self, x):
        # freq x = p + e exactly (_two_product); p - rint(p) is exact, so the phase in [-1/2, 1/2] has one rounding
        p, e = _two_product(self.params["freq"], x[:, 0])
        return np.sin(TWO_PI * ((p - np.rint(p)) + e))

    def _ranges(self, k):
        freq, n = self.params["freq"], 1 << k
        if freq * 2.0 ** -k >= 1.0:  # every cell spans a whole period (exact: a power-of-2 scaling)
            return np.full(n, -1.0), np.ones(n)
        if freq < 0.25:  # phase freq x in [0, 1/4): no crest, no trough, no reduction; freq x rounds once
            t = freq * (np.arange(n + 1) * 2.0 ** -k)
            crest = trough = np.zeros(n, dtype=bool)
        else:
            T, R, j = _sin_phase_words(freq, k)
            t = T.view(np.int64) * 2.0 ** -64 + R * 2.0 ** -(64 + j)  # signed: the phase in [-1/2, 1/2)
            crest, trough = _passes(T, R, 1 << 62), _passes(T, R, 3 << 62)
        v = np.sin(TWO_PI * t)
        fa, fb = v[:-1], v[1:]
        lo = np.where(trough, -1.0, np.minimum(fa, fb))
        hi = np.where(crest, 1.0, np.maximum(fa, fb))
        lo, hi = outward(lo, hi, SIN_ERR)
        return np.maximum(lo, -1.0), np.minimum(hi, 1.0)


@register_function("exp", version="1")
class Exp(Target):
    """(e^x - 1) / (e - 1) on [0,1], values in [0,1].

    Why: analytic and monotone, the simplest polylog case (DESIGN §2.5; Brent 1976). gamma_theory = None.
    Ranges: exact by monotonicity, widened by PAD. Rounding: expm1(a) and expm1(1) carry LIBM_ULPS ulps each and
    the division one rounding, so a corner value is within a relative (2 * 4 + 1/2) 2^-52 < 2^-48 of the truth,
    and the values lie in [0, 1]: PAD = 2^-44 covers it.
    """
    d = 1

    def __init__(self):
        self.params = {}

    def _eval(self, x):
        return np.expm1(x[:, 0]) / np.expm1(1.0)

    def _ranges(self, k):
        return monotone_ranges(self._eval, 1, k)


@register_function("sqrt", version="1")
class Sqrt(Target):
    """sqrt(x) on [0,1], values in [0,1].

    Why: analytic on (0,1] but only Hoelder-1/2 at 0. A dyadic (hp) refinement towards 0 keeps C polylog, yet
    the input resolution must reach k ~ 2 log2(1/eps) bits: it tests that input bits, not gates, pay for the
    singularity. gamma_theory = None (polylog). Ranges: exact by monotonicity, widened by PAD. Rounding: sqrt is
    correctly rounded (IEEE 754), a relative u = 2^-53 at each corner; sqrt(0) = 0 exactly.
    """
    d = 1

    def __init__(self):
        self.params = {}

    def _eval(self, x):
        return np.sqrt(x[:, 0])

    def _ranges(self, k):
        return monotone_ranges(self._eval, 1, k)


@register_function("sigmoid", version="1")
class Sigmoid(Target):
    """1 / (1 + exp(-scale (x - 1/2))) on [0,1], values in (0,1).

    Why: analytic (Brent 1976); `scale` sharpens the transition, moving the constant of the polylog law, not its
    form. gamma_theory = None.
    Ranges: exact by monotonicity, widened by PAD. Rounding: x - 1/2 is exact at dyadic
    corners; y = (scale / 2)(x - 1/2) rounds once, which moves tanh by |y| u sech(y)^2 <= 0.45 u; tanh carries
    LIBM_ULPS ulps (<= 4 * 2^-53), 1 + tanh one rounding (<= 2^-53) and the halving none: an absolute
    0.5 (0.45 u + 4 * 2^-53 + 2^-53) < 2^-51, which PAD = 2^-44 covers.
    """
    d = 1

    def __init__(self, scale: float = 8.0):
        self.params = {"scale": float_param("scale", scale, lo=0.0, hi=1e6, lo_open=True)}

    def _eval(self, x):
        return 0.5 * (1.0 + np.tanh(0.5 * self.params["scale"] * (x[:, 0] - 0.5)))

    def _ranges(self, k):
        return monotone_ranges(self._eval, 1, k)

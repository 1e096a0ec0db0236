"""walsh_mixture: (1/m) sum_i sigma_i w_{S_i}(x), mixtures of Walsh functions whose parts are cheap and whose
mixtures are hard: the convexity test with a threshold (DESIGN §2.6)."""
from __future__ import annotations

import numpy as np

from .base import Target, int_param, register_function

MAX_BITS = 20   # 2^20 cell values: the exact ranges at k < n reduce this table (8 MiB)


def bit_mask(subset, n: int) -> int:
    """The n-bit code mask of a subset of bit positions {1..n}, bit 1 the most significant (DESIGN §2.1)."""
    return sum(1 << (n - j) for j in subset)


def walsh_values(mask: int, codes: np.ndarray) -> np.ndarray:
    """w_S at n-bit codes: (-1)^(parity of the bits of the code in S); mask = bit_mask(S, n)."""
    v = np.asarray(codes, dtype=np.int64) & mask
    parity = np.zeros(v.shape, dtype=np.int64)
    while np.any(v):
        parity ^= v & 1
        v >>= 1
    return 1.0 - 2.0 * parity


@register_function("walsh_mixture", version="1")
class WalshMixture(Target):
    """(1/m) sum_{i<=m} sigma_i w_{S_i}(x) on [0,1], x read at n bits (bit 1 the most significant); values in
    [-1, 1].

    w_S(x) = (-1)^(parity of the bits of x in S), S_i distinct random non-empty subsets of {1..n} and sigma_i
    random signs, both from numpy's default_rng(seed).
    Why: the convexity experiment with a threshold (DESIGN §2.6). Each part is a parity of |S_i| input bits: an
    XOR chain of |S_i| - 1 gates for every eps < 1, its exact circuit size up to polylog. Their mixtures are hard:
    for 1/m <= eps <= 1, C(f, eps) = Θ̃(min(m, eps^-2)), the upper bound by sampling O(eps^-2 log 2^n) parts
    (method `mc`), the lower bound by counting (most of the ~2^(m n) such mixtures are about 2 eps apart). So
    ||f||_{H^gamma} / max_i ||w_{S_i}||_{H^gamma} grows as m^max(0, 1/gamma - 1/2): a slope in log m that
    crosses 0 at gamma = 2. The derivation is the project's, not Jacot's (arXiv 2511.20888).
    gamma_theory = None: the rate is min(m, eps^-2), no single power law of eps.
    Parts: `subsets` (tuples of bit positions), `masks` (their n-bit code masks), `signs` (+-1) and `weights`
    (1/m each), so a method can use the structure (htmc.synthesis.mc_method).
    Ranges: exact. f is piecewise constant on the 2^n cells of n bits and discontinuous, so ranges are over
    half-open cells: at k >= n one value per cell, at k < n the min and max of the 2^(n-k) values in the cell.
    Each value is (integer)/m; it is exact in floats for m a power of 2 and otherwise correctly rounded (IEEE
    division), so its range is widened by one ulp each side (np.nextafter), which holds the exact quotient.
    """
    d = 1
    gamma_theory = None
    continuous = False

    def __init__(self, m: int = 4, n: int = 8, seed: int = 0):
        n = int_param("n", n, 1, MAX_BITS)
        m = int_param("m", m, 1, (1 << n) - 1)
        seed = int_param("seed", seed, 0)
        self.params = {"m": m, "n": n, "seed": seed}
        rng = np.random.default_rng(seed)
        # distinct subsets: masks drawn without replacement from the 2^n - 1 non-empty ones
        masks = rng.choice((1 << n) - 1, size=m, replace=False) + 1
        self.signs = rng.choice(np.array([-1, 1]), size=m)
        self.subsets = [tuple(j for j in range(1, n + 1) if int(mk) >> (n - j) & 1) for mk in masks]
        self.masks = [bit_mask(s, n) for s in self.subsets]
        self.weights = np.full(m, 1.0 / m)
        self._sums = None

    def part_gates(self) -> list[int]:
        """Exact B2 size of each part's circuit for eps < 1: the XOR chain of |S_i| - 1 gates (a parity of
        |S| >= 1 bits needs |S| - 1 two-input gates: each gate joins two of the connected pieces)."""
        return [len(s) - 1 for s in self.subsets]

    def integer_sums(self) -> np.ndarray:
        """sum_i sigma_i w_{S_i} at every n-bit code, exact integers (f = this / m)."""
        if self._sums is None:
            codes = np.arange(1 << self.params["n"], dtype=np.int64)
            total = np.zeros(codes.size, dtype=np.int64)
            for mask, sign in zip(self.masks, self.signs):
                total += int(sign) * walsh_values(mask, codes).astype(np.int64)
            self._sums = total
        return self._sums

    def _eval(self, x):
        n = self.params["n"]
        codes = np.minimum(np.floor(x[:, 0] * (1 << n)).astype(np.int64), (1 << n) - 1)
        return self.integer_sums()[codes] / float(self.params["m"])

    def _ranges(self, k):
        n, m = self.params["n"], self.params["m"]
        s = self.integer_sums()
        if k >= n:
            lo = hi = np.repeat(s, 1 << (k - n))
        else:
            blocks = s.reshape(1 << k, 1 << (n - k))
            lo, hi = blocks.min(axis=1), blocks.max(axis=1)
        lo, hi = lo / float(m), hi / float(m)
        if m & (m - 1):   # not a power of 2: the quotient was rounded (correctly, so within half an ulp)
            return np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)
        return lo, hi.copy()

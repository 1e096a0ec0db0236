"""Targets built from other targets: compositional (low-dimensional inner structure) and mixture (the
convexity test, DESIGN §2.6)."""
from __future__ import annotations

import numpy as np

from .base import Target, float_param, int_param, make_function, outward, register_function, rounding_bound, widen
from .holder import HolderRandom

# ----------------------------------------------------------------------------------------------------------------
# compositional: low-dimensional inner structure
# ----------------------------------------------------------------------------------------------------------------

def _derived_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


@register_function("compositional", version="2")
class Compositional(Target):
    """h(mean_p g_p(x_block_p)) on [0,1]^d, values in [-1,1].

    The d inputs split into d / inner_d consecutive blocks; g_p = holder_random(inner_d, s) on block p (seeds
    derived from `seed`); h(t) = sin(pi t / 2), smooth and increasing on [-1,1].
    Why: compositional functions with low-dimensional constituents (Poggio et al. 2017; Schmidt-Hieber 2020)
    escape the curse of dimension: a circuit computes each g_p on its own inner_d k input bits, adds, and applies
    h (polylog), so gamma = inner_d / s, not d / s. Compare holder_random(d, s).
    Ranges: exact up to PAD: the blocks share no variables, so the range of the mean on a cell is the mean of the
    blocks' ranges (exact for k <= levels), and h is monotone. Rounding: the mean of p = d / inner_d block values
    in [-1, 1] is within gamma_p (gamma_n) of the truth, h' <= pi/2, the argument pi t / 2 rounds once and sin
    carries LIBM_ULPS: below (pi/2) gamma_16 + 7e-16 < 2^-47 for p <= 16, which PAD = 2^-44 covers.
    Version 2: the blocks' ranges for k > levels are widened (holder_random version 3); unchanged for k <= levels.
    """

    def __init__(self, d: int = 4, inner_d: int = 2, s: float = 1.0, seed: int = 0):
        d = int_param("d", d, 1, 16)
        inner_d = int_param("inner_d", inner_d, 1, d)
        if d % inner_d:
            raise ValueError(f"d={d} must be a multiple of inner_d={inner_d}")
        s = float_param("s", s, lo=0.0, hi=1.0, lo_open=True)
        seed = int_param("seed", seed, 0)
        self.d, self.gamma_theory = d, inner_d / s
        self.params = {"d": d, "inner_d": inner_d, "s": s, "seed": seed}
        self.inner = [HolderRandom(inner_d, s, _derived_seed(seed, p)) for p in range(d // inner_d)]

    @staticmethod
    def _outer(t):
        return np.sin(0.5 * np.pi * t)

    def _eval(self, x):
        m = self.params["inner_d"]
        t = sum(g._eval(x[:, p * m:(p + 1) * m]) for p, g in enumerate(self.inner)) / len(self.inner)
        return self._outer(t)

    def formula(self):
        """h(mean_p g_p): the blocks as tables of their own ranges, h as a table of the mean (htmc.synthesis.expr;
        the `datapath` method). h(t) = sin(pi t / 2) is (pi/2)-Lipschitz; 8 ulps cover sin's 4 and the two
        roundings of its argument."""
        from htmc.synthesis.expr import apply, const, lookup, total
        m, p = self.params["inner_d"], len(self.inner)
        blocks = total(lookup(g, i * m) for i, g in enumerate(self.inner))
        mean = blocks / p if p & (p - 1) == 0 else blocks * const(1.0 / p)   # 1/p rounds once (verified after)
        return apply(self._outer, mean, lipschitz=float(np.pi / 2), fn_ulps=8)

    def _ranges(self, k):
        lo, hi = np.zeros(1), np.zeros(1)
        for g in self.inner:  # coordinate block 0 is the most significant part of the cell index
            glo, ghi = g.ranges(k)
            lo, hi = np.add.outer(lo, glo).ravel(), np.add.outer(hi, ghi).ravel()
        p = len(self.inner)
        return widen(self._outer(lo / p), self._outer(hi / p))



# ----------------------------------------------------------------------------------------------------------------
# mixture: the convexity test
# ----------------------------------------------------------------------------------------------------------------

_DEFAULT_PARTS = ({"name": "sin"}, {"name": "holder_random", "s": 0.5})


def _mixture_gamma(gammas: list[float | None]) -> float | None:
    """The rate of a finite mixture: the largest power law among its parts; polylog (None) ranks above constant
    size (0) and below any positive power."""
    powers = [g for g in gammas if g is not None and g > 0]
    if powers:
        return max(powers)
    return None if any(g is None for g in gammas) else 0.0


@register_function("mixture", version="2")
class Mixture(Target):
    """Convex combination sum_i w_i f_i of registered targets with the same d; values in the parts' hull.

    parts: list of {"name": family, **params}; weights: non-negative, summing to 1 (default: uniform).
    Why: the convexity experiment of DESIGN §1 and §2.6 mixes parts and compares the mixture's rate and norm with
    the parts'. A finite convex combination of fixed parts inherits its rate from them: approximating each part to
    eps/2 and adding the n weighted values in fixed point gives C(sum_i w_i f_i, eps) <= sum_i C(f_i, eps/2)
    + n polylog(1/eps), so the rate is at most the largest of the parts' (and generically equal to it):
    gamma_theory = the max over parts with a power law; None (polylog) if there is none but some part is
    polylog; 0 if every part has constant size. What convexity is about is the constant as the number of parts
    grows (walsh_mixture, DESIGN §2.6), not the rate of one fixed mixture.
    Ranges: sum_i w_i [lo_i, hi_i], rigorous (not exact: the parts' extrema need not coincide). Rounding: each
    end is a float dot product of length n, within gamma_n sum_i w_i max(|lo_i|, |hi_i|) (Higham's gamma_n, see
    gamma_n); widened by that (rounding_bound).
    Version: the family's version plus every part's, so a change in a part changes the mixture's version.
    Version 2: the pad is derived from the number of parts (was a fixed 2^-44); gamma_theory treats polylog
    parts as polylog (a mixture of parity and sin is polylog, not constant).
    """

    def __init__(self, parts: list | tuple | None = None, weights: list | tuple | None = None):
        specs = [dict(p) for p in (parts if parts is not None else _DEFAULT_PARTS)]
        if not specs:
            raise ValueError("parts must name at least one target function")
        self.parts = [self._build(spec) for spec in specs]
        self.weights = self._check_weights(weights, len(self.parts))
        dims = {p.d for p in self.parts}
        if len(dims) != 1:
            raise ValueError(f"all parts need the same d, got {sorted(dims)}")
        self.d = dims.pop()
        self.continuous = all(p.continuous for p in self.parts)
        self.gamma_theory = _mixture_gamma([p.gamma_theory for p in self.parts])
        self.params = {"parts": [{"name": p.name, **p.params} for p in self.parts],
                       "weights": [float(w) for w in self.weights]}
        self.version = type(self).version + "".join(f"+{p.name}@{p.version}" for p in self.parts)

    @staticmethod
    def _build(spec: dict) -> Target:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"each part must be a dict with a 'name' key, got {spec!r}")
        params = {key: val for key, val in spec.items() if key != "name"}
        return make_function(spec["name"], **params)

    @staticmethod
    def _check_weights(weights, n: int) -> np.ndarray:
        if weights is None:
            return np.full(n, 1.0 / n)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"weights must have one entry per part ({n}), got {list(weights)!r}")
        if np.any(~np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights must be non-negative and sum to 1, got {list(weights)!r}")
        return w

    def _eval(self, x):
        return sum(w * p._eval(x) for w, p in zip(self.weights, self.parts))

    def _ranges(self, k):
        lo = hi = mag = 0.0
        for w, p in zip(self.weights, self.parts):
            plo, phi = p.ranges(k)
            lo, hi = lo + w * plo, hi + w * phi
            mag = mag + w * np.maximum(np.abs(plo), np.abs(phi))
        return outward(lo, hi, rounding_bound(len(self.parts) + 1, mag))

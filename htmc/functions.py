"""Target functions: a registry of named, versioned, parameterized families (DESIGN §2.5).

Every family builds a `Target`: vectorized evaluation on [0,1]^d, RIGOROUS cell ranges for the interval truth
table of DESIGN §2.2, its domain, the rate gamma theory expects, and (in its docstring) why it is in the set.

    >>> f = make_function("holder_random", d=1, s=0.5, seed=3)
    >>> lo, hi = f.ranges(8)              # 2^8 cells, cell-index order of htmc.table
    >>> tab = f.table(8)                  # IntervalTable, domain "box"

Range conventions
- `ranges(k)` encloses f on every cell [c/2^k, (c+1)/2^k]^d, closed, for continuous targets. A discontinuous
  target (`continuous = False`, e.g. parity) encloses f on the half-open cell [c/2^k, (c+1)/2^k)^d, which is
  exactly the set of inputs whose code (DESIGN §2.1) is c.
- lo <= f <= hi holds for the mathematical function of the family's float parameters (weights, frequency, grid
  values), not only for its float evaluation: the table is compared with no tolerance (DESIGN §2.2). So every
  range computed in floats is widened by a bound on its rounding error, derived from the operations:
  - exact: product, absdiff, parity (dyadic corners, exact float arithmetic) and holder_random at k <= levels
    (extrema of its stored grid values);
  - monotone libm evaluations (exp, sqrt, sigmoid, compositional's outer sin): a few ulps (LIBM_ULPS), covered
    by PAD = 2^-44 (absolute, relative above 1), which exceeds each derived bound by more than 2^4;
  - sin: its phase freq x mod 1 is reduced exactly in integer arithmetic, so the error is a few ulps (SIN_ERR)
    at every frequency;
  - float sums (relu_ridges, resnet_teacher, mixture, holder_random's corner interpolation for k > levels): the
    a-priori bound |fl(sum) - sum| <= gamma_n sum |terms| (_gamma), with n and the terms of each sum.
  Every pad is far below any eps a ladder reaches (eps >= 2^-30).

Writing your own family (a plugin file; no package edits needed)

    # my_targets.py
    import numpy as np
    from htmc.functions import Target, cell_bounds, register_function

    @register_function("cube", version="1")
    class Cube(Target):
        '''x^3 on [0,1]. Monotone, so its cell ranges are exact; analytic, so C is polylog.'''
        d = 1
        gamma_theory = None

        def __init__(self, scale=1.0):
            self.params = {"scale": float(scale)}

        def _eval(self, x):                      # x: (N, d) in [0,1]^d
            return self.params["scale"] * x[:, 0] ** 3

        def _ranges(self, k):                    # optional: without it, set `lipschitz` instead
            a, b = cell_bounds(self.d, k)
            return self._eval(a), self._eval(b)

Load it with `htmc.registry.load_plugin("my_targets.py")`; afterwards `make_function("cube", scale=2)` works
and "cube" appears in FUNCTIONS. A family that does not define `_ranges` but sets the class attribute
`lipschitz` (a bound on |f(x) - f(y)| / ||x - y||_inf) gets the rigorous Lipschitz range f(mid) +- L 2^-(k+1).
A family may also be a plain factory function returning a Target.
"""
from __future__ import annotations

import inspect
import json
import math
from typing import Any, Callable

import numpy as np

from .registry import Registry, UnknownNameError, did_you_mean  # noqa: F401  (UnknownNameError re-exported)
from .table import IntervalTable, cell_index_grid

FUNCTIONS: Registry = Registry("target function")

PAD = 2.0 ** -44
"""Widening of the monotone libm families' ranges: above their derived error bounds (see _monotone_ranges)."""

UNIT_ROUNDOFF = 2.0 ** -53
"""u of IEEE double precision, round to nearest: fl(a op b) = (a op b)(1 + delta), |delta| <= u."""

LIBM_ULPS = 4
"""Error budget of numpy's float64 sin, exp, expm1 and tanh, in ulps of the result: they come from glibc (below 1
ulp on x86-64, per the glibc manual's table of known maximum errors) or, where numpy dispatches to AVX-512, from
Intel's SVML (at most 4 ulp, numpy PR #19478). sqrt and the four basic operations are correctly rounded."""

_MAX_CELLS_PER_CHUNK = 1 << 16


# ----------------------------------------------------------------------------------------------------------------
# Registration and construction
# ----------------------------------------------------------------------------------------------------------------

def register_function(name: str, version: str, *, replace: bool = False) -> Callable:
    """Decorator: register a Target subclass (or a factory returning a Target) under `name`.

    A thin wrapper over FUNCTIONS.register that also stamps `name` and `version` on a Target subclass, so that
    instances built directly (without make_function) still carry them.
    """
    def add(obj):
        if isinstance(obj, type) and issubclass(obj, Target):
            obj.name, obj.version = name, str(version)
        return FUNCTIONS.register(name, version, obj, replace=replace)
    return add


def _param_names(obj: Callable) -> list[str] | None:
    """The keyword parameters a family accepts; None if it takes **kwargs (no check possible)."""
    sig = inspect.signature(obj)
    names = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
    return names


def make_function(name: str, **params: Any) -> "Target":
    """Build the target of family `name` with `params` (missing ones take the family's defaults).

    Unknown family names raise UnknownNameError with a did-you-mean; unknown parameter names raise ValueError
    naming the key, the valid keys and the closest one; bad values raise ValueError from the family.
    """
    entry = FUNCTIONS.entry(name)
    valid = _param_names(entry.obj)
    if valid is not None:
        for key in params:
            if key not in valid:
                hint = did_you_mean(key, valid) if valid else "it takes no parameters"
                raise ValueError(f"unknown parameter '{key}' for target function '{name}': {hint}")
    target = entry.obj(**params)
    if not isinstance(target, Target):
        raise TypeError(f"target function '{name}' built a {type(target).__name__}, not a htmc.functions.Target")
    if not isinstance(entry.obj, type):  # a factory: stamp what a decorated class would carry
        target.name = name
        target.version = target.version or entry.version
    return target


# ----------------------------------------------------------------------------------------------------------------
# Parameter checks (messages name the bad value)
# ----------------------------------------------------------------------------------------------------------------

def _int_param(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    ok_type = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok_type and isinstance(value, float) and value.is_integer():
        ok_type = True
    if not ok_type:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def _float_param(name: str, value: Any, *, lo: float = -math.inf, hi: float = math.inf,
                 lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    bad = (not math.isfinite(v)) or v > hi or (v <= lo if lo_open else v < lo)
    if bad:
        left = "(" if lo_open else "["
        raise ValueError(f"{name} must be in {left}{lo}, {hi}], got {value!r}")
    return v


# ----------------------------------------------------------------------------------------------------------------
# Cell geometry helpers
# ----------------------------------------------------------------------------------------------------------------

def cell_bounds(d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners (each shape (2^(d k), d)) of every cell, in cell-index order."""
    codes = cell_index_grid(d, k).astype(np.float64)
    h = 2.0 ** -k
    return codes * h, (codes + 1.0) * h


def _widen(lo: np.ndarray, hi: np.ndarray, pad: float = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Outward rounding margin for ranges computed in floats (relative for values above 1)."""
    return lo - pad * np.maximum(1.0, np.abs(lo)), hi + pad * np.maximum(1.0, np.abs(hi))


def _outward(lo, hi, err) -> tuple[np.ndarray, np.ndarray]:
    """[lo - err, hi + err] for a derived error bound err, the subtraction and addition rounded outward.

    Round to nearest errs in either direction, and then the next float outward (nextafter) is on the safe side of
    the exact lo - err: a float strictly between them would be nearer than the rounded one.
    """
    return np.nextafter(lo - err, -np.inf), np.nextafter(hi + err, np.inf)


def _gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u) (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed. 2002, §3.1).

    A dot product (or sum) of n terms computed in floats, in any order of summation, with or without fused
    multiply-adds, satisfies |fl(x . y) - x . y| <= gamma_n |x| . |y| (Higham (3.4)); so does any expression that
    is a sum of products with at most n roundings on each term's path.
    """
    return n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)


def _rounding(n: int, mag):
    """2 gamma_n mag: a bound on the rounding error of a float expression whose error is at most gamma_n mag to
    first order, mag being the same expression evaluated on the absolute values of its terms (_gamma).

    Doubling covers the roundings of the bound itself: mag, a sum of non-negative terms, is computed below its
    exact value by a relative O(n u) (second order against an O(n u) bound), and adding the bound to a radius
    r <= 2 mag rounds by at most 2 u mag <= gamma_n mag, for n >= 2.
    """
    return (2.0 * _gamma(n)) * mag


def _monotone_ranges(f: Callable[[np.ndarray], np.ndarray], d: int, k: int, increasing: bool = True):
    """Ranges of a function monotone in every coordinate: its values at the two extreme corners, widened by PAD.

    Exact in exact arithmetic; the float evaluations at the corners are within a few ulps (derived in each
    family's docstring, at most 2^-48) of the true values, so PAD = 2^-44 covers them with a wide margin.
    """
    a, b = cell_bounds(d, k)
    fa, fb = f(a), f(b)
    return _widen(*((fa, fb) if increasing else (fb, fa)))


# ----------------------------------------------------------------------------------------------------------------
# Base class
# ----------------------------------------------------------------------------------------------------------------

class Target:
    """A target function f: [0,1]^d -> R with rigorous cell ranges (DESIGN §2.2, §2.5).

    Subclasses set `d`, `params` (canonical, JSON-able, defaults included) and implement `_eval`, and either
    `_ranges` or a class attribute `lipschitz`.
    """
    name: str = ""
    version: str = ""
    d: int = 1
    domain_default: str = "box"
    gamma_theory: float | None = None
    continuous: bool = True
    lipschitz: float | None = None
    params: dict

    @property
    def doc(self) -> str:
        return inspect.cleandoc(type(self).__doc__ or "")

    def __repr__(self) -> str:
        return f"{self.name or type(self).__name__}({json.dumps(self.params, sort_keys=True)})"

    # -- evaluation ---------------------------------------------------------------------------------------------
    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and self.d == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"{self.name}: x must have shape (N, {self.d}), got {x.shape}")
        if x.size and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError(f"{self.name}: x must lie in [0,1]^{self.d}")
        return np.asarray(self._eval(x), dtype=np.float64).reshape(x.shape[0])

    def _eval(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- ranges -------------------------------------------------------------------------------------------------
    def ranges(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rigorous (lo, hi) of f on each of the 2^(d k) cells at k bits per coordinate, cell-index order."""
        k = _int_param("k", k, 0, 62 // max(self.d, 1))
        lo, hi = self._ranges(k)
        n = 1 << (self.d * k)
        lo = np.asarray(lo, dtype=np.float64).reshape(n)
        hi = np.asarray(hi, dtype=np.float64).reshape(n)
        return lo, hi

    def _ranges(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.lipschitz is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither _ranges nor lipschitz")
        a, b = cell_bounds(self.d, k)
        mid = self(0.5 * (a + b))
        r = self.lipschitz * 2.0 ** -(k + 1)
        return _widen(mid - r, mid + r)

    def table(self, k: int, domain: str | None = None) -> IntervalTable:
        """Interval truth table: `box` from ranges(k); `grid` from exact values at the lower-corner codes."""
        domain = domain or self.domain_default
        if domain == "grid":
            x = cell_index_grid(self.d, k) / float(1 << k)
            return IntervalTable.exact(self(x), self.d, k)
        if domain != "box":
            raise ValueError(f"unknown domain '{domain}': {did_you_mean(domain, ['box', 'grid'])}")
        lo, hi = self.ranges(k)
        return IntervalTable(self.d, k, lo, hi, "box")


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
        self.params = {"freq": _float_param("freq", freq, lo=0.0, hi=1e6, lo_open=True)}

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
        lo, hi = _outward(lo, hi, SIN_ERR)
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
        return _monotone_ranges(self._eval, 1, k)


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
        return _monotone_ranges(self._eval, 1, k)


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
        self.params = {"scale": _float_param("scale", scale, lo=0.0, hi=1e6, lo_open=True)}

    def _eval(self, x):
        return 0.5 * (1.0 + np.tanh(0.5 * self.params["scale"] * (x[:, 0] - 0.5)))

    def _ranges(self, k):
        return _monotone_ranges(self._eval, 1, k)


# ----------------------------------------------------------------------------------------------------------------
# Arithmetic on two inputs
# ----------------------------------------------------------------------------------------------------------------

@register_function("product", version="1")
class Product(Target):
    """x0 * x1 on [0,1]^2, values in [0,1].

    Why: multiplication, the basic arithmetic benchmark; an array multiplier needs O(k^2) gates for k bits, so
    C is polylog. gamma_theory = None. Ranges: exact (monotone in each coordinate; dyadic corners multiply
    exactly in floats, so no padding).
    """
    d = 2

    def __init__(self):
        self.params = {}

    def _eval(self, x):
        return x[:, 0] * x[:, 1]

    def _ranges(self, k):
        a, b = cell_bounds(2, k)
        return a[:, 0] * a[:, 1], b[:, 0] * b[:, 1]


@register_function("absdiff", version="1")
class AbsDiff(Target):
    """|x0 - x1| on [0,1]^2, values in [0,1].

    Why: piecewise linear with a kink along the diagonal; a subtractor plus conditional negation, so C is
    polylog. gamma_theory = None. Ranges: exact (x0 - x1 spans [a0 - b1, b0 - a1] on a cell; |.| of it).
    """
    d = 2

    def __init__(self):
        self.params = {}

    def _eval(self, x):
        return np.abs(x[:, 0] - x[:, 1])

    def _ranges(self, k):
        a, b = cell_bounds(2, k)
        u, v = a[:, 0] - b[:, 1], b[:, 0] - a[:, 1]  # range of x0 - x1, exact for dyadic corners
        hi = np.maximum(np.abs(u), np.abs(v))
        lo = np.where((u <= 0) & (v >= 0), 0.0, np.minimum(np.abs(u), np.abs(v)))
        return lo, hi


# ----------------------------------------------------------------------------------------------------------------
# holder_random: a random Faber-Schauder series (DESIGN §2.5)
# ----------------------------------------------------------------------------------------------------------------

def _refine(v: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of grid values onto the grid of half the spacing, along every axis."""
    for axis in range(v.ndim):
        v = np.moveaxis(v, axis, 0)
        out = np.empty((2 * v.shape[0] - 1,) + v.shape[1:])
        out[0::2] = v
        out[1::2] = 0.5 * (v[:-1] + v[1:])
        v = np.moveaxis(out, 0, axis)
    return v


def _block_extrema(v: np.ndarray, k: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of grid values v ((2^J+1)^d points) over each closed level-k cell, k <= J, cell-index order."""
    t = 1 << (levels - k)
    mn = mx = v
    for axis in range(v.ndim):
        mn = _reduce_axis(mn, axis, t, np.minimum)
        mx = _reduce_axis(mx, axis, t, np.maximum)
    return mn.ravel(), mx.ravel()


def _reduce_axis(a: np.ndarray, axis: int, t: int, op: np.ufunc) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0] - 1
    red = op.reduce(a[:-1].reshape((n // t, t) + a.shape[1:]), axis=1)  # left-closed blocks
    red = op(red, a[t::t])  # plus each block's right endpoint: the cells are closed
    return np.moveaxis(red, 0, axis)


def _multilinear(v: np.ndarray, x: np.ndarray, levels: int) -> np.ndarray:
    """Evaluate the multilinear interpolant of grid values v ((2^J+1)^d) at points x (N, d)."""
    n, d = 1 << levels, x.shape[1]
    s = x * n
    idx = np.minimum(np.floor(s).astype(np.int64), n - 1)
    t = s - idx
    out = np.zeros(x.shape[0])
    for corner in range(1 << d):
        bits = [(corner >> (d - 1 - j)) & 1 for j in range(d)]
        w = np.ones(x.shape[0])
        for j, bit in enumerate(bits):
            w = w * (t[:, j] if bit else 1.0 - t[:, j])
        out += w * v[tuple(idx[:, j] + bits[j] for j in range(d))]
    return out


def default_levels(d: int) -> int:
    """Finest Faber-Schauder level J for dimension d: (2^J+1)^d grid values stay near 2^20 (8 MiB)."""
    return max(1, 20 // d)


def _max_partials(v: np.ndarray, j: int) -> np.ndarray:
    """max_m sup |d f / d x_m| over each level-j cell of the multilinear interpolant of v ((2^j+1)^d values).

    On a cell the interpolant is multilinear, so d/dx_m is constant along x_m and multilinear in the other
    coordinates: its extremes are on the cell's 2^(d-1) edges in direction m, where it is the edge's difference
    quotient. Shape (2^j,)*d, cell-index order.
    """
    n = 1 << j
    out = np.zeros((n,) * v.ndim)
    for m in range(v.ndim):
        g = np.abs(np.diff(v, axis=m)) * n
        for o in range(v.ndim):
            if o != m:  # each cell has two edges per other axis: keep the larger
                g = np.moveaxis(g, o, 0)
                g = np.moveaxis(np.maximum(g[:-1], g[1:]), 0, o)
        out = np.maximum(out, g)
    return out


HOLDER_SLOPE_CAP = 2.0  # the cap, in multiples of the rms slope of the uncapped series at the same level


@register_function("holder_random", version="3")
class HolderRandom(Target):
    """Random multiscale Faber-Schauder series with a capped slope, Hoelder-s on [0,1]^d, values in [-1,1].

    f = (1/Z) sum_{j<J} 2^(-j s) sum_i a_{j,i} H_{j,i},  H_{j,i}(x) = prod_m hat(2^j x_m - i_m),
    hat the tent on [0,1] with peak 1 at 1/2 (Faber-Schauder basis; Triebel, "Bases in function spaces", 2010),
    and Z = max |series| (attained at grid points), so max |f| = 1 exactly.
    Why: its eps-entropy is ~eps^(-d/s) (2^(jd) independent coefficients of size ~2^(-js) at every level), so
    theory expects gamma = d/s (DESIGN §2.5).

    Coefficients (version 2). a_{j,i} = r_{j,i} clipped to [-cap_{j,i}, cap_{j,i}], r = random sign *
    Uniform[1/2, 1] (the version-1 draws, in the same order). Write g_j = 2^(-j(1-s)) max_m sup |d_m f_<j| over
    the level-j cell (the normalised slope of the levels below; exact from the cell's edges, see
    _max_partials). A coefficient a adds at most 2|a| to it, and the next level rescales by 2^-(1-s), so
    cap = (c rho_(j+1) 2^(1-s) - g_j) / 2 keeps g_(j+1) <= c rho_(j+1) at every cell, where rho_j is the rms
    that g_j would have without the cap (a random walk: rho_(j+1)^2 = 4^-(1-s) (rho_j^2 + 4 E[r^2] 3^-(d-1)),
    3^-(d-1) the mean of the other coordinates' hat^2) and c = HOLDER_SLOPE_CAP = 2.
    Why the cap (version 1 had none): with free coefficients the level slopes can add up coherently. For s = 1
    the worst level-k cell then oscillates ~k 2^-k (the Zygmund class, not Lipschitz) while typical cells
    oscillate ~sqrt(k) 2^-k, so the resolution k that eps forces is set by a few outlier cells: in d = 2 the
    worst cell was 3.6x the median at k = 8 and eps = 2^-5 needed more than 16 input bits. With the cap the
    worst cell stays within ~2.5-3x the median at every level, so k grows by about 1/s bit per halving of eps.
    Regularity: on a level-k cell, f_<k has |d_m f| <= c rho_k 2^(k(1-s)) and the levels >= k add at most
    2 sum_{j>=k} 2^(-js), so its oscillation is <= (d c rho_k + 2 / (1 - 2^-s)) 2^(-ks) / Z.
    - s < 1: rho_k increases to a finite limit, so f is Hoelder-s with that explicit constant at every scale.
    - s = 1: rho_k ~ sqrt(k), so the modulus of continuity is ~h sqrt(log2(1/h)): between Lipschitz and
      Zygmund. Typical cells cannot do better while every level keeps coefficients of full size: the slope is
      a martingale along nested dyadic cells (the two halves' slopes average the parent's), so its variance grows
      linearly with the level. A Lipschitz f must let its coefficients shrink (Rademacher: Lipschitz f is
      differentiable almost everywhere), and its entropy with them, by a factor that grows with 1/eps. A
      constant cap (truly Lipschitz) did exactly that: the mean |a_j| fell ~20% per level in d = 1.
    Why the rate d/s holds: at every level the cap binds on a bounded fraction of cells (seed 0: d = 1, ~8% at
    s = 1 and ~6% at s = 1/2; d = 2, s = 1: 55% at level 2 falling to 30% at level 9, mostly partially), so the
    coefficients keep a level-independent size (mean |a_j| ~0.72 for d = 1 and ~0.62-0.67 for d = 2 at s = 1,
    against 0.75 uncapped) and the entropy stays ~eps^(-d/s).
    The rate claim holds for k < J = `levels` (default 20 // d): beyond J, f is piecewise multilinear and its
    oscillation falls like 2^-k, i.e. rate d.
    The function is the multilinear interpolant of the stored level-J grid values (`grid`, floats: the series
    above up to the rounding of its construction), which is what _eval computes and the ranges enclose.
    Ranges: exact for k <= J. f is multilinear on each finest (level-J) cell, so on a cell of level k <= J its
    extrema are at level-J grid points inside the closed cell: the block min/max of the stored grid, exact float
    comparisons. For k > J the extrema are at the cell's corners, interpolated in floats: 2^d weights (products
    of d factors t or 1 - t, summing to 1) times grid values |v| <= 1, summed, so within gamma_(2^d + d) of the
    truth (_gamma), and widened by that (_rounding).
    Version 3: version 2 returned the float-interpolated corner values unwidened for k > J (off by up to 1e-16).
    """

    def __init__(self, d: int = 1, s: float = 1.0, seed: int = 0, levels: int | None = None):
        d = _int_param("d", d, 1, 8)
        s = _float_param("s", s, lo=0.0, hi=1.0, lo_open=True)
        seed = _int_param("seed", seed, 0)
        levels = default_levels(d) if levels is None else _int_param("levels", levels, 1, 30)
        if d * levels > 24:
            raise ValueError(f"levels={levels} with d={d} needs (2^{levels}+1)^{d} grid values; "
                             f"keep d * levels <= 24")
        self.d, self.gamma_theory = d, d / s
        self.params = {"d": d, "s": s, "seed": seed, "levels": levels}
        self._v: np.ndarray | None = None

    @property
    def grid(self) -> np.ndarray:
        """f at the level-J dyadic grid, shape (2^J+1,)*d; built once, lazily."""
        if self._v is None:
            d, s, levels = self.params["d"], self.params["s"], self.params["levels"]
            rng = np.random.default_rng(self.params["seed"])
            step_var = 4.0 * (7.0 / 12.0) * 3.0 ** (1 - d)  # E[(2 r)^2] times the mean of the other hats^2
            shrink = 2.0 ** (1 - s)  # the normalised slope's rescaling from one level to the next
            var = 0.0
            v = np.zeros((2,) * d)  # level 0: all tents vanish on the boundary of the cube
            for j in range(levels):
                shape = (1 << j,) * d
                coef = rng.uniform(0.5, 1.0, shape) * rng.choice((-1.0, 1.0), shape)
                var = (var + step_var) / shrink ** 2  # rms^2 of the uncapped normalised slope at level j+1
                g = _max_partials(v, j) * 2.0 ** (-j * (1 - s))
                cap = np.maximum((HOLDER_SLOPE_CAP * math.sqrt(var) * shrink - g) / 2, 0.0)
                coef = np.clip(coef, -cap, cap)
                v = _refine(v)
                v[(slice(1, None, 2),) * d] += 2.0 ** (-j * s) * coef  # tent peaks: odd points of level j+1
            self._v = v / (np.abs(v).max() or 1.0)  # the sup of a multilinear interpolant is at grid points
        return self._v

    def _eval(self, x):
        return _multilinear(self.grid, x, self.params["levels"])

    def _ranges(self, k):
        levels = self.params["levels"]
        if k <= levels:
            return _block_extrema(self.grid, k, levels)
        a, b = cell_bounds(self.d, k)  # a cell inside one finest cell: multilinear, extrema at corners
        vals = np.stack([self._eval(np.where(_corner_mask(self.d, c), b, a)) for c in range(1 << self.d)])
        return _outward(vals.min(axis=0), vals.max(axis=0), _rounding((1 << self.d) + self.d, 1.0))


def _corner_mask(d: int, corner: int) -> np.ndarray:
    return np.array([(corner >> j) & 1 for j in range(d)], dtype=bool)


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
    in [-1, 1] is within gamma_p (_gamma) of the truth, h' <= pi/2, the argument pi t / 2 rounds once and sin
    carries LIBM_ULPS: below (pi/2) gamma_16 + 7e-16 < 2^-47 for p <= 16, which PAD = 2^-44 covers.
    Version 2: the blocks' ranges for k > levels are widened (holder_random version 3); unchanged for k <= levels.
    """

    def __init__(self, d: int = 4, inner_d: int = 2, s: float = 1.0, seed: int = 0):
        d = _int_param("d", d, 1, 16)
        inner_d = _int_param("inner_d", inner_d, 1, d)
        if d % inner_d:
            raise ValueError(f"d={d} must be a multiple of inner_d={inner_d}")
        s = _float_param("s", s, lo=0.0, hi=1.0, lo_open=True)
        seed = _int_param("seed", seed, 0)
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

    def _ranges(self, k):
        lo, hi = np.zeros(1), np.zeros(1)
        for g in self.inner:  # coordinate block 0 is the most significant part of the cell index
            glo, ghi = g.ranges(k)
            lo, hi = np.add.outer(lo, glo).ravel(), np.add.outer(hi, ghi).ravel()
        p = len(self.inner)
        return _widen(self._outer(lo / p), self._outer(hi / p))


# ----------------------------------------------------------------------------------------------------------------
# relu_ridges: Barron-type
# ----------------------------------------------------------------------------------------------------------------

def _chunks(n: int, d: int, width: int):
    """Slices of the cell range sized so that (cells x width x d) work arrays stay around 4 MiB."""
    step = max(1024, _MAX_CELLS_PER_CHUNK * 8 // max(1, width * d))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _dot_small(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """M (p, q) @ X (q, n) as q broadcast multiply-adds, skipping zero columns of M (sparse weights).

    These products are skinny (q is d, a width or a rank; n is cells): BLAS gains nothing there, and its thread
    start-up cost 10x the arithmetic on a loaded machine.
    """
    out = np.zeros((M.shape[0], X.shape[1]))
    for i in np.flatnonzero(np.any(M != 0, axis=0)):
        out += M[:, i, None] * X[i][None, :]
    return out


def _relu_slopes(zlo: np.ndarray, zhi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zonotope (DeepZ) relaxation of relu on [zlo, zhi] (Singh et al., NeurIPS 2018): relu(z) in lam z + [0, t].

    lam = clip(zhi / (zhi - zlo), 0, 1): 1 where the unit is active on the whole interval (zlo >= 0), 0 where it
    is dead (zhi <= 0), the chord's slope where the kink lies inside. The relaxation is sound for ANY lam in
    [0, 1], so lam's own rounding does no harm: relu(z) - lam z is convex and >= 0, so on [zlo, zhi] it lies in
    [0, t] with t = max((1 - lam) zhi, -lam zlo, 0), its larger end value (0 for active and dead units; the two
    terms agree for the exact chord slope). The caller bounds t's rounding.
    """
    width = zhi - zlo
    lam = np.where(width > 0, zhi / np.where(width > 0, width, 1.0), (zlo >= 0).astype(np.float64))
    lam = np.clip(lam, 0.0, 1.0)
    return lam, np.maximum(np.maximum((1.0 - lam) * zhi, -lam * zlo), 0.0)


def _chunk_codes(d: int, k: int, sl: slice) -> np.ndarray:
    """Per-coordinate codes of cells sl.start..sl.stop-1 (the rows of cell_index_grid, without building it all)."""
    c = np.arange(sl.start, sl.stop, dtype=np.int64)
    return np.stack([(c >> (k * (d - 1 - j))) & ((1 << k) - 1) for j in range(d)], axis=1)


@register_function("relu_ridges", version="2")
class ReluRidges(Target):
    """(1/Z) sum_i a_i relu(w_i . (x - z_i)) on [0,1]^d, values in [-1,1].

    a_i = +-1/m random signs, w_i Gaussian directions normalised to ||w_i||_1 = 1, z_i uniform in [0,1]^d, so
    every kink crosses the cube and |relu| <= 1. Z is the rigorous sup bound max_c max(|lo_c|, |hi_c|) of the
    unnormalised sum at k = 10 // d, so |f| <= 1 (the random signs cancel to ~m^-1/2 otherwise).
    Why: a shallow ReLU network, the Barron-type case. With m fixed, f is piecewise linear: a circuit computes
    the m dot products and ReLUs in fixed point with O(log 1/eps) bits, so C(f, eps) = m polylog(1/eps):
    gamma_theory = None. The power law belongs to the hull as m grows (the variation space of ReLU ridges, the
    Barron class): n ridges approximate it to n^-(d+3)/(2d) and no better (Siegel and Xu 2022, "Sharp bounds on
    the approximation rates, metric entropy, and n-widths of shallow neural networks", in L2; the same rate holds
    in the sup norm, Siegel 2023, "Optimal approximation of zonoids and uniform approximation by shallow neural
    networks"), so its rate is gamma = 2d/(d+3): 1/2 for d = 1, 4/5 for d = 2, reaching 2 (Maurey's
    dimension-free m^-1/2) only as d -> infinity. A large m can show that rate pre-asymptotically, while eps is
    above the finite sum's own resolution.
    Ranges: exact in exact arithmetic on cells that no kink crosses (f is linear there: the range of one linear
    form over a box); a ridge whose kink crosses the cell enters through the zonotope relaxation of relu
    (_relu_slopes; rigorous, not exact). Rounding: every term of the float sums is a_i times a quantity bounded by
    S_i = ||w_i||_1 + |b_i| (b_i = -w_i . z_i), the longest sum has m terms and the preactivations d + 1, so the
    computed ends are within 8 gamma_(m+d+6) sum_i |a_i| S_i of the exact ones (derived in _ranges; Higham's
    gamma_n, see _gamma): about 2^-39 for m = 64 and 2^-31 for m = 4096 (d = 2, seed 0). Widened by that.
    Version 2: gamma_theory None (was 2, the Maurey rate of the hull, not of the fixed-m function), and the ranges'
    pad is derived from m (was a fixed 2^-44, too small for large m).
    """

    def __init__(self, m: int = 64, d: int = 2, seed: int = 0):
        m = _int_param("m", m, 1, 1 << 16)
        d = _int_param("d", d, 1, 16)
        seed = _int_param("seed", seed, 0)
        self.d = d
        self.params = {"m": m, "d": d, "seed": seed}
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((m, d))
        self.w = w / np.abs(w).sum(axis=1, keepdims=True)
        self.b = -np.einsum("md,md->m", self.w, rng.uniform(0.0, 1.0, (m, d)))
        self.a = rng.choice((-1.0, 1.0), m) / m
        lo, hi = self._ranges(max(1, 10 // d))
        self.a = self.a / (max(float(np.abs(lo).max()), float(np.abs(hi).max())) or 1.0)

    def _eval(self, x):
        return np.maximum(_dot_small(x, self.w.T) + self.b, 0.0) @ self.a

    def _ranges(self, k):
        n = 1 << (self.d * k)
        lo, hi = np.empty(n), np.empty(n)
        for sl in _chunks(n, self.d, len(self.a)):
            lo[sl], hi[sl] = self._ranges_chunk(k, sl)
        # Rounding (u = 2^-53, A = sum_i |a_i| S_i). Preactivation zc = fl(w . mid + b) is within gamma_(d+1) S_i,
        # the radius within gamma_d S_i / 2 and their sum and difference round once more: t (1-Lipschitz in its
        # ends; two more roundings) is within 2 gamma_(d+6) S_i. The cell's linear part sums m terms
        # lam_i a_i (w_i . mid + b_i): gamma_(m+d+3) A; its radius rad ||g||_1 (rad <= 1/2): gamma_(m+d+1) A / 2;
        # sum_i a_i [0, t_i] (t_i <= 1.5 S_i): 2 gamma_(d+6) A + 1.5 gamma_m A; the two final additions of
        # values up to 3 A: 6 u A. All below 6 gamma_(m+d+6) A; 8 covers the second-order terms.
        size = float(np.abs(self.a) @ (np.abs(self.w).sum(axis=1) + np.abs(self.b)))  # A
        return _outward(lo, hi, 8.0 * _gamma(len(self.a) + self.d + 6) * size)

    def _ranges_chunk(self, k, sl):
        codes = _chunk_codes(self.d, k, sl).astype(np.float64)
        rad = 2.0 ** -(k + 1)
        mid = (codes + 0.5) * 2.0 ** -k
        zc = _dot_small(mid, self.w.T) + self.b           # (N, m) preactivation at the cell centre
        zr = rad * np.abs(self.w).sum(axis=1)             # its radius over the cell (same for all cells)
        # relu(z_i) in lam_i z_i + [0, t_i]: exact for ridges active or dead on the whole cell, the zonotope
        # relaxation where the kink crosses it. The lam-parts sum to one linear form g . x + c: exact range.
        # _relu_slopes, specialised (zhi - zlo = 2 zr > 0 is known; 4x faster on these (cells, m) arrays): with
        # lam's rounding t = max(-lam zlo, 0) may fall short of _relu_slopes' t by |lam - chord slope| 2 zr
        # <= 6 u zr, inside the 2 gamma_(d+6) S_i allowed for t in _ranges.
        lam = np.clip((zc + zr) * (0.5 / zr), 0.0, 1.0)
        t = np.maximum(lam * (zr - zc), 0.0)
        coef = lam * self.a                                # (N, m)
        g = np.stack([coef @ self.w[:, j] for j in range(self.d)], axis=1)  # (N, d)
        lin_c = np.einsum("nd,nd->n", g, mid) + coef @ self.b
        lin_r = rad * np.abs(g).sum(axis=1)
        top = t * self.a                                   # a_i [0, t_i]
        klo, khi = np.minimum(top, 0.0).sum(axis=1), np.maximum(top, 0.0).sum(axis=1)
        return lin_c - lin_r + klo, lin_c + lin_r + khi


# ----------------------------------------------------------------------------------------------------------------
# parity
# ----------------------------------------------------------------------------------------------------------------

@register_function("parity", version="1")
class Parity(Target):
    """Parity (XOR) of the top `bits` bits of every coordinate, on [0,1]^d; values in {0, 1}.

    Why: trivial for circuits (d*bits - 1 XOR gates, constant in eps once k >= bits) but a classic hard case for
    shallow models (Minsky and Papert, "Perceptrons", 1969): a check that circuit size, not smoothness, is what
    the project measures.
    gamma_theory = 0 (constant size). Piecewise constant and discontinuous, so its ranges are over half-open
    cells (the inputs with a given code, DESIGN §2.1): exact, [v, v] for k >= bits and [0, 1] for k < bits.
    """
    gamma_theory = 0.0
    continuous = False

    def __init__(self, d: int = 2, bits: int = 1):
        d = _int_param("d", d, 1, 16)
        bits = _int_param("bits", bits, 1, 16)
        self.d = d
        self.params = {"d": d, "bits": bits}

    def _parity_of_codes(self, codes: np.ndarray, k: int) -> np.ndarray:
        top = codes >> (k - self.params["bits"])  # the top `bits` bits of each coordinate's k-bit code
        ones = np.zeros(codes.shape[0], dtype=np.int64)
        for i in range(self.params["bits"]):
            ones += ((top >> i) & 1).sum(axis=1)
        return (ones & 1).astype(np.float64)

    def _eval(self, x):
        bits = self.params["bits"]
        codes = np.minimum(np.floor(x * (1 << bits)).astype(np.int64), (1 << bits) - 1)
        return self._parity_of_codes(codes, bits)

    def _ranges(self, k):
        n = 1 << (self.d * k)
        if k < self.params["bits"]:
            return np.zeros(n), np.ones(n)
        v = self._parity_of_codes(cell_index_grid(self.d, k), k)
        return v, v.copy()


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
    _gamma); widened by that (_rounding).
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
        return _outward(lo, hi, _rounding(len(self.parts) + 1, mag))


# ----------------------------------------------------------------------------------------------------------------
# resnet_teacher: a random sparse ResNet (DESIGN §2.4), in numpy
# ----------------------------------------------------------------------------------------------------------------

@register_function("resnet_teacher", version="2")
class ResNetTeacher(Target):
    """A random sparse ResNet of DESIGN §2.4 on [0,1]^d, output rescaled into [-1,1].

    h_0 = W_in x + b_in;  h_{l+1} = h_l + A_l relu(B_l h_l + c_l);  f = W_out h_L + b_out.
    Each weight of W_in, A_l, B_l is non-zero with probability `density`; values are Gaussian with variance
    1/(density fan_in). W_out and b_out are then set so that the union of the rigorous cell ranges at
    k = 10 // d is [-1,1], so |f| <= 1 (`self.weights` holds the final arrays: every ResNet norm of the teacher
    is known exactly).
    Why: the sandwich experiment (DESIGN §1, §2.4) needs a target whose ResNet norm is known. A fixed ReLU
    network is piecewise linear with finitely many pieces, and the network itself, run in fixed point with
    O(log 1/eps) bits per value, is a circuit of width rank depth polylog(1/eps) gates: C is polylog,
    gamma_theory = None.
    Ranges: affine arithmetic through the network, vectorized over cells: each hidden unit is an affine form in
    the cell's coordinates plus an error interval; certainly-active / certainly-dead ReLUs are exact, straddling
    ones use the zonotope relaxation relu(z) in lambda z + [0, t] (_relu_slopes; Singh et al. 2018). Exact on
    cells where no ReLU changes sign, in exact arithmetic. Rounding: every step adds a bound on its own rounding
    error to the units' error intervals (gamma_n of its dot products' lengths times the magnitudes of their terms,
    _rounding), so the errors propagate through the later layers like any other width of the forms, and the
    ranges enclose the exact network of the float weights at any depth and width.
    Version 2: version 1 widened the output by a fixed 2^-44 instead of propagating rounding through the layers.
    """

    def __init__(self, width: int = 8, depth: int = 3, rank: int = 2, seed: int = 0, d: int = 2,
                 density: float = 0.5):
        width = _int_param("width", width, 1, 4096)
        depth = _int_param("depth", depth, 0, 256)
        rank = _int_param("rank", rank, 1, 4096)
        seed = _int_param("seed", seed, 0)
        d = _int_param("d", d, 1, 16)
        density = _float_param("density", density, lo=0.0, hi=1.0, lo_open=True)
        self.d = d
        self.params = {"width": width, "depth": depth, "rank": rank, "seed": seed, "d": d, "density": density}
        self.weights = self._random_weights(np.random.default_rng(seed))
        self._normalise_output()

    def _random_weights(self, rng) -> dict:
        p = self.params
        w, r, dens = p["width"], p["rank"], p["density"]

        def sparse(rows, cols, scale=1.0):
            mask = rng.random((rows, cols)) < dens
            return mask * rng.standard_normal((rows, cols)) * scale / np.sqrt(dens * cols)

        return {
            "W_in": sparse(w, p["d"]), "b_in": rng.standard_normal(w) * 0.5,
            "A": [sparse(w, r, 1.0 / np.sqrt(max(1, p["depth"]))) for _ in range(p["depth"])],
            "B": [sparse(r, w) for _ in range(p["depth"])],
            "c": [rng.standard_normal(r) * 0.5 for _ in range(p["depth"])],
            "W_out": rng.standard_normal((1, w)) / np.sqrt(w), "b_out": np.zeros(1),
        }

    def _normalise_output(self):
        k = max(1, 10 // self.d)
        lo, hi = self._ranges(k)
        lo_all, hi_all = float(lo.min()), float(hi.max())
        half = 0.5 * (hi_all - lo_all) or 1.0
        wt = self.weights
        wt["b_out"] = (wt["b_out"] - 0.5 * (lo_all + hi_all)) / half
        wt["W_out"] = wt["W_out"] / half

    def _eval(self, x):
        wt = self.weights  # units-first layout: h is (width, N)
        h = _dot_small(wt["W_in"], x.T) + wt["b_in"][:, None]
        for A, B, c in zip(wt["A"], wt["B"], wt["c"]):
            h = h + _dot_small(A, np.maximum(_dot_small(B, h) + c[:, None], 0.0))
        return (_dot_small(wt["W_out"], h) + wt["b_out"][:, None])[0]

    def _ranges(self, k):
        n = 1 << (self.d * k)
        lo, hi = np.empty(n), np.empty(n)
        for sl in _chunks(n, self.d, self.params["width"]):
            lo[sl], hi[sl] = self._affine_ranges(k, sl)
        return lo, hi

    def _affine_ranges(self, k, sl):
        """Affine arithmetic: unit i on a cell is m_i + G_i . u + [-e_i, e_i], u in [-1,1]^d the cell's local
        coordinates. Units-first layout: m, e are (units, N); G is (units, N d), entry n d + j for cell n, u_j.

        Invariant: every exact h(x), x in the cell, lies in its unit's form. Each step keeps it by adding to e a
        first-order bound on its rounding, gamma_n times the step on absolute values (_rounding, Higham's (3.4));
        a rounding of a G entry moves the form by at most that entry's error over u in [-1,1]^d.
        """
        wt, d, w, r = self.weights, self.d, self.params["width"], self.params["rank"]
        mid = (_chunk_codes(d, k, sl) + 0.5) * 2.0 ** -k
        n = len(mid)

        def radius(G):  # sum_j |G_ij| per unit and cell: how far the linear part moves over the cell
            out = np.abs(G[:, 0::d])  # strided adds: a sum over a length-d last axis is 10x slower
            for j in range(1, d):
                out += np.abs(G[:, j::d])
            return out

        m = _dot_small(wt["W_in"], mid.T) + wt["b_in"][:, None]  # d + 1 terms, mid in [0,1]^d
        G = np.tile(wt["W_in"] * 2.0 ** -(k + 1), (1, n))          # exact: a power-of-2 scaling
        e0 = _rounding(d + 1, np.abs(wt["W_in"]).sum(axis=1) + np.abs(wt["b_in"]))
        e = np.repeat(e0[:, None], n, axis=1)
        for A, B, c in zip(wt["A"], wt["B"], wt["c"]):
            absA, absB = np.abs(A), np.abs(B)
            h_mag = np.abs(m) + radius(G) + e            # bounds |h| over the cell
            # z = B h + c: w + 1 terms; B e itself is computed low by up to gamma_w |B| e, hence the e in h_mag
            zm, zG = _dot_small(B, m) + c[:, None], _dot_small(B, G)
            ze = _dot_small(absB, e) + _rounding(w + 2, _dot_small(absB, h_mag) + np.abs(c)[:, None])
            zG_r = radius(zG)
            zr = zG_r + ze
            lam, t = _relu_slopes(zm - zr, zm + zr)      # relu(z) in lam z + [0, t] = lam z + t/2 +- t/2
            am = lam * zm + 0.5 * t
            aG = (zG.reshape(len(zm), n, d) * lam[:, :, None]).reshape(len(zm), n * d)
            # t's ends zm +- zr (d + 2 roundings) and t itself (2), then am, aG, ae (2 each) on terms up to
            # |zm| + zr: within gamma_(d+8) (|zm| + zr)
            ae = lam * ze + 0.5 * t + _rounding(d + 8, np.abs(zm) + zr)
            # h + A a: r + 1 terms (radius(aG) <= lam radius(zG) up to a relative O(u): second order here)
            mag = h_mag + _dot_small(absA, np.abs(am) + lam * zG_r + ae)
            m, G = m + _dot_small(A, am), G + _dot_small(A, aG)
            e = e + _dot_small(absA, ae) + _rounding(r + 1, mag)
        W, b = wt["W_out"], wt["b_out"][0]
        om = _dot_small(W, m)[0] + b                      # w + 1 terms, then the d-term radius
        rr = radius(_dot_small(W, G))[0] + _dot_small(np.abs(W), e)[0]
        mag = _dot_small(np.abs(W), np.abs(m) + radius(G) + e)[0] + abs(b)
        return _outward(om, om, rr + _rounding(w + d + 1, mag))

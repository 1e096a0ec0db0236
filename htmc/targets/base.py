"""The target registry and the Target base class: construction, parameter checks, cell geometry and the
rounding bounds every family's ranges use (see the package docstring)."""
from __future__ import annotations

import functools
import inspect
import json
import math
from typing import Any, Callable

import numpy as np

from ..registry import Registry, UnknownNameError, did_you_mean  # noqa: F401  (UnknownNameError re-exported)
from htmc.targets.table import cell_index_grid, IntervalTable

FUNCTIONS: Registry = Registry("target function")

PAD = 2.0 ** -44
"""Widening of the monotone libm families' ranges: above their derived error bounds (see monotone_ranges)."""

UNIT_ROUNDOFF = 2.0 ** -53
"""u of IEEE double precision, round to nearest: fl(a op b) = (a op b)(1 + delta), |delta| <= u."""

LIBM_ULPS = 4
"""Error budget of numpy's float64 sin, exp, expm1 and tanh, in ulps of the result: they come from glibc (below 1
ulp on x86-64, per the glibc manual's table of known maximum errors) or, where numpy dispatches to AVX-512, from
Intel's SVML (at most 4 ulp, numpy PR #19478). sqrt and the four basic operations are correctly rounded."""

MAX_CELLS_PER_CHUNK = 1 << 16


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


@functools.cache   # inspect.signature cost ~75 µs a call, once per planned task before (issue 22 A)
def _param_names(obj: Callable) -> tuple[str, ...] | None:
    """The keyword parameters a family accepts; None if it takes **kwargs (no check possible)."""
    sig = inspect.signature(obj)
    names = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
    return tuple(names)


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
        raise TypeError(f"target function '{name}' built a {type(target).__name__}, not a htmc.targets.Target")
    if not isinstance(entry.obj, type):  # a factory: stamp what a decorated class would carry
        target.name = name
        target.version = target.version or entry.version
    return target


# ----------------------------------------------------------------------------------------------------------------
# Parameter checks (messages name the bad value)
# ----------------------------------------------------------------------------------------------------------------

def int_param(name: str, value: Any, lo: int, hi: int | None = None) -> int:
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


def float_param(name: str, value: Any, *, lo: float = -math.inf, hi: float = math.inf,
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


def widen(lo: np.ndarray, hi: np.ndarray, pad: float = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Outward rounding margin for ranges computed in floats (relative for values above 1)."""
    return lo - pad * np.maximum(1.0, np.abs(lo)), hi + pad * np.maximum(1.0, np.abs(hi))


def outward(lo, hi, err) -> tuple[np.ndarray, np.ndarray]:
    """[lo - err, hi + err] for a derived error bound err, the subtraction and addition rounded outward.

    Round to nearest errs in either direction, and then the next float outward (nextafter) is on the safe side of
    the exact lo - err: a float strictly between them would be nearer than the rounded one.
    """
    return np.nextafter(lo - err, -np.inf), np.nextafter(hi + err, np.inf)


def gamma_n(n: int) -> float:
    """gamma_n = n u / (1 - n u) (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed. 2002, §3.1).

    A dot product (or sum) of n terms computed in floats, in any order of summation, with or without fused
    multiply-adds, satisfies |fl(x . y) - x . y| <= gamma_n |x| . |y| (Higham (3.4)); so does any expression that
    is a sum of products with at most n roundings on each term's path.
    """
    return n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)


def rounding_bound(n: int, mag):
    """2 gamma_n mag: a bound on the rounding error of a float expression whose error is at most gamma_n mag to
    first order, mag being the same expression evaluated on the absolute values of its terms (gamma_n).

    Doubling covers the roundings of the bound itself: mag, a sum of non-negative terms, is computed below its
    exact value by a relative O(n u) (second order against an O(n u) bound), and adding the bound to a radius
    r <= 2 mag rounds by at most 2 u mag <= gamma_n mag, for n >= 2.
    """
    return (2.0 * gamma_n(n)) * mag


def monotone_ranges(f: Callable[[np.ndarray], np.ndarray], d: int, k: int, increasing: bool = True):
    """Ranges of a function monotone in every coordinate: its values at the two extreme corners, widened by PAD.

    Exact in exact arithmetic; the float evaluations at the corners are within a few ulps (derived in each
    family's docstring, at most 2^-48) of the true values, so PAD = 2^-44 covers them with a wide margin.
    """
    a, b = cell_bounds(d, k)
    fa, fb = f(a), f(b)
    return widen(*((fa, fb) if increasing else (fb, fa)))


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
        k = int_param("k", k, 0, 62 // max(self.d, 1))
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
        return widen(mid - r, mid + r)

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

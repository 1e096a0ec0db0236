"""Fits of circuit size against accuracy on an eps ladder (DESIGN §2.3).

Given a ladder eps_j (usually eps_0 2^-j) and the best verified sizes C_j = C̄(f, eps_j):
- power law   log2 C = log2 c + gamma log2(1/eps)      (least squares; bootstrap CI for gamma),
- polylog     log2 C = log2 a + b log2(p),  p = log2(1/eps)   (smooth and analytic targets),
- the model with the lower AIC is preferred (both have 2 parameters and the same response log2 C, so AIC
  ranks them by residual sum of squares),
- local slopes between consecutive rungs,
- the HTMC norm estimate max_j eps_j C_j^(1/gamma): an UPPER estimate of ||f||_{H^gamma} restricted to the
  ladder's range (C̄ >= C), not a bound on the sup over all eps.
Points where the size saturates at the exact circuit are excluded from the fits (`exclude_saturated`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

FIT_VERSION = "1"


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------

def _check(eps: Sequence[float], sizes: Sequence[float], *, min_points: int = 2) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(eps, dtype=np.float64)
    c = np.asarray(sizes, dtype=np.float64)
    if e.ndim != 1 or c.ndim != 1:
        raise ValueError(f"eps and sizes must be 1-d sequences, got shapes {e.shape} and {c.shape}")
    if e.shape != c.shape:
        raise ValueError(f"eps and sizes must have the same length, got {len(e)} and {len(c)}")
    for name, a in (("eps", e), ("sizes", c)):
        bad = ~np.isfinite(a) | (a <= 0)
        if bad.any():
            raise ValueError(f"{name} must be finite and > 0, got {a[bad][0]!r} at index {int(np.argmax(bad))}")
    if len(np.unique(e)) < min_points:
        raise ValueError(f"need at least {min_points} distinct eps values to fit, got {len(np.unique(e))}")
    return e, c


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y = a + b x; returns (a, b, rss)."""
    b, a = np.polyfit(x, y, 1)
    rss = float(np.sum((y - (a + b * x)) ** 2))
    return float(a), float(b), rss


def _aic(rss: float, n: int, n_params: int = 2) -> float:
    """Gaussian least-squares AIC, n ln(RSS/n) + 2 p; RSS is floored so exact fits stay finite."""
    return n * math.log(max(rss, 1e-24 * n) / n) + 2 * n_params


# ----------------------------------------------------------------------------------------------------------------
# Power law
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class PowerFit:
    gamma: float
    c: float
    gamma_ci: tuple[float, float]
    residual: float  # RMS residual of log2 C
    aic: float
    n: int


def fit_power(eps: Sequence[float], sizes: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> PowerFit:
    """Fit log2 C = log2 c + gamma log2(1/eps) by least squares (DESIGN §2.3).

    The CI for gamma is the wider (union) of the bootstrap percentile interval (resampling points) and the
    t-interval from the OLS standard error. With few points the pairs bootstrap is too narrow (few distinct
    resamples), so the t-interval keeps it honest; with 2 points gamma is unconstrained: CI = (-inf, inf).
    """
    e, c = _check(eps, sizes)
    x, y = np.log2(1.0 / e), np.log2(c)
    a, gamma, rss = _line_fit(x, y)
    n = len(x)
    lo, hi = _t_interval(x, rss, gamma, level)
    blo, bhi = _bootstrap_interval(x, y, n_boot, seed, level)
    if math.isfinite(blo):
        lo, hi = min(lo, blo), max(hi, bhi)
    return PowerFit(gamma=gamma, c=float(2.0 ** a), gamma_ci=(lo, hi), residual=math.sqrt(rss / n),
                    aic=_aic(rss, n), n=n)


def _t_interval(x: np.ndarray, rss: float, slope: float, level: float) -> tuple[float, float]:
    n = len(x)
    if n <= 2:
        return -math.inf, math.inf
    se = math.sqrt(rss / (n - 2) / np.sum((x - x.mean()) ** 2))
    half = float(stats.t.ppf(0.5 + level / 2, n - 2)) * se
    return slope - half, slope + half


def _bootstrap_interval(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, level: float):
    """Percentile interval of the slope over resampled points; (nan, nan) if too few usable resamples."""
    n = len(x)
    if n_boot <= 0 or n < 3:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    xs, ys = x[idx], y[idx]
    xc = xs - xs.mean(axis=1, keepdims=True)
    sxx = np.sum(xc * xc, axis=1)
    ok = sxx > 1e-12 * max(1.0, float(np.sum((x - x.mean()) ** 2)))  # resamples with one distinct x: no slope
    if ok.sum() < max(20, n_boot // 2):
        return math.nan, math.nan
    slopes = np.sum(xc * ys, axis=1)[ok] / sxx[ok]
    q = (1 - level) / 2
    return float(np.quantile(slopes, q)), float(np.quantile(slopes, 1 - q))


# ----------------------------------------------------------------------------------------------------------------
# Polylog
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class PolylogFit:
    a: float
    b: float
    residual: float
    aic: float
    n: int


def fit_polylog(eps: Sequence[float], sizes: Sequence[float]) -> PolylogFit:
    """Fit C = a p^b, p = log2(1/eps), by least squares in log space: log2 C = log2 a + b log2 p.

    Needs eps < 1 (p > 0) at every point.
    """
    e, c = _check(eps, sizes)
    if np.any(e >= 1.0):
        raise ValueError(f"the polylog model needs eps < 1 (log2(1/eps) > 0), got eps = {e[e >= 1][0]!r}")
    x, y = np.log2(np.log2(1.0 / e)), np.log2(c)
    a, b, rss = _line_fit(x, y)
    return PolylogFit(a=float(2.0 ** a), b=b, residual=math.sqrt(rss / len(x)), aic=_aic(rss, len(x)), n=len(x))


# ----------------------------------------------------------------------------------------------------------------
# Slopes, saturation, norm
# ----------------------------------------------------------------------------------------------------------------

def local_slopes(eps: Sequence[float], sizes: Sequence[float]) -> np.ndarray:
    """Slopes Δlog2 C / Δlog2(1/eps) between consecutive rungs, ordered coarse to fine (eps decreasing)."""
    e, c = _check(eps, sizes)
    if len(np.unique(e)) != len(e):
        raise ValueError("local_slopes needs distinct eps values")
    order = np.argsort(-e)
    x, y = np.log2(1.0 / e[order]), np.log2(c[order])
    return np.diff(y) / np.diff(x)


def exclude_saturated(eps: Sequence[float], sizes: Sequence[float], *, exact_size: float | None = None,
                      min_eps: float | None = None, rel_tol: float = 0.0, min_run: int = 2) -> np.ndarray:
    """Boolean mask (input order) of the points to KEEP in a rate fit (DESIGN §2.3 'Saturation').

    Rule, applied in this order:
    1. a point with size >= exact_size (the size of the exact circuit at full output precision) is saturated;
    2. a point with eps < min_eps (below the output precision the search can reach) is saturated;
    3. the fine-end plateau: walking from the finest eps towards coarser ones, the run of points whose size
       equals the finest point's size (within rel_tol, relative) is saturated when it has >= min_run points:
       the size has stopped changing, so the search returned the same (exact) circuit.
    A plateau in the middle of the ladder is kept: only the fine end saturates.
    """
    e, c = _check(eps, sizes, min_points=1)
    keep = np.ones(len(e), dtype=bool)
    if exact_size is not None:
        keep &= c < exact_size
    if min_eps is not None:
        keep &= e >= min_eps
    order = np.argsort(e, kind="stable")  # finest first
    run = []
    for i in order:
        if abs(c[i] - c[order[0]]) <= rel_tol * c[order[0]]:
            run.append(i)
        else:
            break
    if len(run) >= min_run:
        keep[run] = False
    return keep


def htmc_norm(eps: Sequence[float], sizes: Sequence[float], gammas: Iterable[float]) -> dict[float, float]:
    """{gamma: max_j eps_j C_j^(1/gamma)} for each gamma (DESIGN §2.3 'Norm estimate').

    An UPPER estimate of ||f||_{H^gamma} restricted to the ladder's eps range (since C̄ >= C); it says nothing
    about eps outside the ladder.
    """
    e, c = _check(eps, sizes, min_points=1)
    out = {}
    for g in gammas:
        g = float(g)
        if not g > 0:
            raise ValueError(f"gamma must be > 0, got {g!r}")
        out[g] = float(np.max(e * c ** (1.0 / g)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Whole ladder
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class LadderFit:
    """Everything DESIGN §2.3 reports for one ladder. `to_json()` gives a JSON-safe dict."""
    gamma: float
    gamma_ci: list
    c: float
    polylog: tuple | None  # (a, b), None when some kept eps >= 1
    preferred_model: str | None  # "power" | "polylog"; None with only 2 kept points (both interpolate)
    local_slopes: list
    htmc_norm: dict  # gamma -> upper estimate over the ladder range
    kept: list
    residual_power: float = math.nan
    residual_polylog: float | None = None
    aic_power: float = math.nan
    aic_polylog: float | None = None
    n_used: int = 0
    eps_range: list = field(default_factory=list)
    htmc_norm_kind: str = "upper estimate over the ladder's eps range (C̄ >= C)"
    version: str = FIT_VERSION

    def to_json(self) -> dict:
        d = asdict(self)
        d["htmc_norm"] = {f"{g:g}": v for g, v in self.htmc_norm.items()}
        d["polylog"] = list(self.polylog) if self.polylog is not None else None
        return json_safe(d)

    def __getitem__(self, key: str):
        return self.to_json()[key]


def json_safe(v, leaf=None):
    """Lists for tuples/arrays, Python floats, None for non-finite numbers (JSON has no inf/nan).

    `leaf` converts any other value (e.g. pandas' NA and timestamps in analysis/); by default it is kept as is.
    """
    if isinstance(v, dict):
        return {str(k): json_safe(x, leaf) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [json_safe(x, leaf) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v if leaf is None else leaf(v)


def fit_ladder(eps: Sequence[float], sizes: Sequence[float], gammas: Iterable[float] = (2, 3, 4), *,
               exclude: bool = True, exact_size: float | None = None, min_eps: float | None = None,
               rel_tol: float = 0.0, n_boot: int = 1000, seed: int = 0) -> LadderFit:
    """Power and polylog fits on the unsaturated points, local slopes, and the HTMC norm estimate.

    Saturated points (see exclude_saturated) are dropped from the fits and local slopes when `exclude`; the norm
    estimate uses every point, since each C̄_j is a valid upper bound at its eps_j.
    """
    e, c = _check(eps, sizes)
    kept = (exclude_saturated(e, c, exact_size=exact_size, min_eps=min_eps, rel_tol=rel_tol)
            if exclude else np.ones(len(e), dtype=bool))
    ek, ck = e[kept], c[kept]
    if len(np.unique(ek)) < 2:
        raise ValueError(f"fewer than 2 usable (unsaturated) points: kept {int(kept.sum())} of {len(e)}; "
                         f"pass exclude=False to fit all points")
    power = fit_power(ek, ck, n_boot=n_boot, seed=seed)
    poly = fit_polylog(ek, ck) if np.all(ek < 1.0) else None
    if poly is None:
        preferred = "power"
    elif len(ek) < 3:
        preferred = None
    else:
        preferred = "polylog" if poly.aic < power.aic else "power"
    slopes = local_slopes(ek, ck) if len(np.unique(ek)) == len(ek) else np.array([])
    return LadderFit(
        gamma=power.gamma, gamma_ci=list(power.gamma_ci), c=power.c,
        polylog=(poly.a, poly.b) if poly else None, preferred_model=preferred,
        local_slopes=[float(s) for s in slopes], htmc_norm=htmc_norm(e, c, gammas),
        kept=[bool(k) for k in kept], residual_power=power.residual,
        residual_polylog=poly.residual if poly else None, aic_power=power.aic,
        aic_polylog=poly.aic if poly else None, n_used=int(kept.sum()),
        eps_range=[float(e.min()), float(e.max())])

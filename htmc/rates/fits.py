"""Fits of circuit size against accuracy on an eps ladder (DESIGN §2.3).

Given a ladder eps_j (usually eps_0 2^-j) and the best verified sizes C_j = C̄(f, eps_j):
- power law   log2 C = log2 c + gamma log2(1/eps)      (least squares),
- polylog     log2 C = log2 a + b log2(p),  p = log2(1/eps)   (smooth and analytic targets),
- the model choice by ΔAIC = AIC(polylog) - AIC(power) (negative favours polylog); "inconclusive" when
  |ΔAIC| < 2. Both models have 2 parameters and the same response log2 C, so AIC ranks them by residual sum of
  squares,
- the interval for gamma. The ladder is fixed, not sampled, so the residuals are model misfit, not noise: the
  interval describes the spread of the fit (how well one power law describes these rungs), not sampling error.
  With 3 or fewer fitted rungs it is not meaningful and is not reported (gamma_ci = None, see ci_note),
- local slopes between consecutive rungs,
- two HTMC norm estimates for each gamma, both upper estimates (C̄ >= C) restricted to the ladder:
    at the rungs         max_j eps_j C̄_j^(1/gamma),
    over the range       max_j eps_j M_{j+1}^(1/gamma) with M_k = min_{i >= k} C̄_i (rungs at or finer than eps_k):
                         bounds eps C(f, eps)^(1/gamma) for every eps in [eps_min, eps_max], between the rungs too.
Saturation (DESIGN §2.3): only rungs whose best circuit is the exactly rounded one (grid domain) can saturate;
the caller says which (`exact_rounded`), nothing is guessed from plateaus (`exclude_saturated`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

FIT_VERSION = "2"   # 2: saturation from exact_rounded, both norm estimates, ΔAIC, no interval with <= 3 rungs
MIN_CI_RUNGS = 4     # DESIGN §2.3: with 3 or fewer fitted rungs the interval is not meaningful
AIC_MARGIN = 2.0     # DESIGN §2.3: |ΔAIC| below this is inconclusive


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
    On an eps ladder the points are fixed, not sampled, and the residuals are model misfit: the interval then
    describes the spread of the fit, not sampling error (fit_ladder drops it with <= 3 rungs).
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


def resolution_rates(eps: Sequence[float], bits_in: Sequence[int]) -> dict[str, float]:
    """The rates the rungs' input resolution alone implies (issue 15), to read gamma-hat against.

    A rung's circuit reads an n-bit table, so `table` = the slope of n against log2(1/eps) is the rate of the
    table size 2^n, and `shannon` = the slope of n - log2 n the rate of 2^n/n, the size of a random n-input
    function (Shannon; Lupanov's construction reaches it). Theory's d/s is the asymptote of both; at finite n
    the 1/n factor keeps `shannon` below it (holder d=2 s=0.5 on 8-20 bits: table 4.00, shannon 3.56), and a
    resolution that grows faster than 1/s bits per halving of eps (a steep finest cell) lifts both above it.
    """
    e, n = _check(eps, bits_in)
    x = np.log2(1.0 / e)
    return {"table": _line_fit(x, n)[1], "shannon": _line_fit(x, n - np.log2(n))[1]}


def exclude_saturated(eps: Sequence[float], sizes: Sequence[float], exact_rounded: Sequence[bool] | None = None,
                      *, exact_size: float | None = None, min_eps: float | None = None,
                      rel_tol: float = 0.0) -> np.ndarray:
    """Boolean mask (input order) of the points to KEEP in a rate fit (DESIGN §2.3 'Saturation').

    exact_rounded[i]: rung i's best circuit is the exactly rounded one (every cell's accepted interval holds one
    output code; only on the grid domain). Saturated, and dropped, are:
    1. a rung at the exactly rounded circuit whose next coarser rung has the same size (within rel_tol,
       relative): the tail of a plateau at the exact circuit. The plateau's first point is kept: it is where the
       size reached the exact circuit, a real measurement; the rest only repeat it;
    2. a point with size >= exact_size (the size of the exact circuit at full output precision), if given;
    3. a point with eps < min_eps (below the output precision the search can reach), if given.
    Without exact_rounded (the box domain: there is no exact circuit) a plateau is data, e.g. parity's gamma ~ 0.
    """
    e, c = _check(eps, sizes, min_points=1)
    keep = ~_exact_plateau_tail(e, c, _flags(exact_rounded, len(e)), rel_tol)
    if exact_size is not None:
        keep &= c < exact_size
    if min_eps is not None:
        keep &= e >= min_eps
    return keep


def _flags(exact_rounded: Sequence[bool] | None, n: int) -> np.ndarray:
    if exact_rounded is None:
        return np.zeros(n, dtype=bool)
    f = np.asarray(exact_rounded, dtype=bool)
    if f.shape != (n,):
        raise ValueError(f"exact_rounded must have one flag per point ({n}), got shape {f.shape}")
    return f


def _exact_plateau_tail(e: np.ndarray, c: np.ndarray, flag: np.ndarray, rel_tol: float) -> np.ndarray:
    """Rungs at the exact circuit whose next coarser rung (eps order) has the same size, in input order."""
    order = np.argsort(-e, kind="stable")  # coarse to fine
    co = c[order]
    same = np.zeros(len(e), dtype=bool)
    same[1:] = np.abs(co[1:] - co[:-1]) <= rel_tol * co[:-1]
    out = np.zeros(len(e), dtype=bool)
    out[order] = flag[order] & same
    return out


def _gammas(gammas: Iterable[float]) -> list[float]:
    out = [float(g) for g in gammas]
    for g in out:
        if not g > 0:
            raise ValueError(f"gamma must be > 0, got {g!r}")
    return out


def htmc_norm_at_rungs(eps: Sequence[float], sizes: Sequence[float], gammas: Iterable[float]) -> dict[float, float]:
    """{gamma: max_j eps_j C̄_j^(1/gamma)}: the HTMC norm estimate at the rungs only (DESIGN §2.3).

    An upper estimate of max_j eps_j C(f, eps_j)^(1/gamma) (since C̄ >= C); between the rungs eps C^(1/gamma) can
    be larger, see htmc_norm_over_range.
    """
    e, c = _check(eps, sizes, min_points=1)
    return {g: float(np.max(e * c ** (1.0 / g))) for g in _gammas(gammas)}


def htmc_norm_over_range(eps: Sequence[float], sizes: Sequence[float],
                         gammas: Iterable[float]) -> dict[float, float]:
    """{gamma: an upper bound of eps C(f, eps)^(1/gamma) over the ladder's range [eps_min, eps_max]} (DESIGN §2.3).

    C is non-increasing in eps, so for eps in (eps_{j+1}, eps_j]: eps <= eps_j and C(f, eps) <= C(f, eps_{j+1})
    <= M_{j+1}, the least C̄ over the rungs at or finer than eps_{j+1}. The bound is max_j eps_j M_{j+1}^(1/gamma),
    and eps_min M_min^(1/gamma) for the finest rung itself. It says nothing about eps outside the range.
    """
    e, c = _check(eps, sizes, min_points=1)
    top, env = _envelope(e, c)
    size = np.append(env[1:], env[-1])   # the interval below rung j is bounded by rung j+1's envelope
    return {g: float(np.max(top * size ** (1.0 / g))) for g in _gammas(gammas)}


def _envelope(e: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct eps, coarse to fine, and M(eps) = min C̄ over the points at or finer than each."""
    order = np.lexsort((c, e))                 # eps ascending, smallest size first within an eps
    es, cs = e[order], c[order]
    ue = np.unique(es)
    per_eps = cs[np.searchsorted(es, ue)]      # the least size at each distinct eps
    return ue[::-1], np.minimum.accumulate(per_eps)[::-1]


def read_norms(fit: dict) -> tuple[dict, dict]:
    """(at the rungs, over the range) from a stored fit's JSON, {"2": value, ...} each.

    Fits before FIT_VERSION 2 stored one `htmc_norm`, max_j eps_j C̄_j^(1/gamma): the value at the rungs. They
    have no over-the-range estimate ({}).
    """
    at = fit.get("htmc_norm_at_rungs")
    if at is None:
        at = fit.get("htmc_norm")
    return dict(at or {}), dict(fit.get("htmc_norm_over_range") or {})


# ----------------------------------------------------------------------------------------------------------------
# Whole ladder
# ----------------------------------------------------------------------------------------------------------------

AT_RUNGS_KIND = "max_j eps_j C̄_j^(1/gamma): at the rungs only (upper estimate, C̄ >= C)"
OVER_RANGE_KIND = ("max_j eps_j min_{i>=j+1} C̄_i^(1/gamma): upper estimate of sup eps C(f, eps)^(1/gamma) over "
                   "the ladder's range [eps_min, eps_max], between the rungs too")


@dataclass
class LadderFit:
    """Everything DESIGN §2.3 reports for one ladder. `to_json()` gives a JSON-safe dict.

    gamma_ci is the spread of the fit over a fixed ladder (model misfit, not sampling error); None with 3 or
    fewer fitted rungs, where it is not meaningful (ci_note says which). delta_aic = aic_polylog - aic_power.
    """
    gamma: float
    gamma_ci: list | None  # None with <= 3 fitted rungs (ci_note)
    ci_note: str
    c: float
    polylog: tuple | None  # (a, b), None when some kept eps >= 1
    preferred_model: str | None  # "power" | "polylog" | "inconclusive"; None: polylog not fitted or 2 points
    delta_aic: float | None  # aic_polylog - aic_power: < 0 favours polylog; None without a polylog fit
    local_slopes: list
    htmc_norm_at_rungs: dict  # gamma -> max_j eps_j C̄_j^(1/gamma)
    htmc_norm_over_range: dict  # gamma -> upper estimate over [eps_min, eps_max]
    kept: list
    residual_power: float = math.nan
    residual_polylog: float | None = None
    aic_power: float = math.nan
    aic_polylog: float | None = None
    n_used: int = 0
    eps_range: list = field(default_factory=list)
    htmc_norm_at_rungs_kind: str = AT_RUNGS_KIND
    htmc_norm_over_range_kind: str = OVER_RANGE_KIND
    version: str = FIT_VERSION

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("htmc_norm_at_rungs", "htmc_norm_over_range"):
            d[key] = {f"{g:g}": v for g, v in getattr(self, key).items()}
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
               exact_rounded: Sequence[bool] | None = None, exclude: bool = True, exact_size: float | None = None,
               min_eps: float | None = None, rel_tol: float = 0.0, n_boot: int = 1000, seed: int = 0) -> LadderFit:
    """Power and polylog fits on the unsaturated points, the model choice, local slopes, both norm estimates.

    exact_rounded: per point, whether its circuit is the exactly rounded one (grid domain); only those can be
    saturated (see exclude_saturated), and saturated points are dropped from the fits and local slopes when
    `exclude`. The norm estimates use every point, since each C̄_j is a valid upper bound at its eps_j.
    """
    e, c = _check(eps, sizes)
    kept = (exclude_saturated(e, c, exact_rounded, exact_size=exact_size, min_eps=min_eps, rel_tol=rel_tol)
            if exclude else np.ones(len(e), dtype=bool))
    ek, ck = e[kept], c[kept]
    rungs = len(np.unique(ek))
    if rungs < 2:
        raise ValueError(f"fewer than 2 usable (unsaturated) points: kept {int(kept.sum())} of {len(e)}; "
                         f"pass exclude=False to fit all points")
    power = fit_power(ek, ck, n_boot=n_boot, seed=seed)
    poly = fit_polylog(ek, ck) if np.all(ek < 1.0) else None
    preferred, delta = _model_choice(power, poly, len(ek))
    ci, note = _interval(power, rungs)
    slopes = local_slopes(ek, ck) if rungs == len(ek) else np.array([])
    return LadderFit(
        gamma=power.gamma, gamma_ci=ci, ci_note=note, c=power.c,
        polylog=(poly.a, poly.b) if poly else None, preferred_model=preferred, delta_aic=delta,
        local_slopes=[float(s) for s in slopes], htmc_norm_at_rungs=htmc_norm_at_rungs(e, c, gammas),
        htmc_norm_over_range=htmc_norm_over_range(e, c, gammas), kept=[bool(k) for k in kept],
        residual_power=power.residual, residual_polylog=poly.residual if poly else None, aic_power=power.aic,
        aic_polylog=poly.aic if poly else None, n_used=int(kept.sum()), eps_range=[float(e.min()), float(e.max())])


def _model_choice(power: PowerFit, poly: PolylogFit | None, n: int) -> tuple[str | None, float | None]:
    """(preferred model, ΔAIC = AIC(polylog) - AIC(power)) by DESIGN §2.3.

    None when the polylog model could not be fitted (some eps >= 1): there was no choice, so "power" would claim
    a comparison that was not made; None with 2 points, where both models interpolate. "inconclusive" when
    |ΔAIC| < AIC_MARGIN."""
    if poly is None:
        return None, None
    delta = poly.aic - power.aic
    if n < 3:
        return None, delta
    if abs(delta) < AIC_MARGIN:
        return "inconclusive", delta
    return ("polylog" if delta < 0 else "power"), delta


def _interval(power: PowerFit, rungs: int) -> tuple[list | None, str]:
    """(gamma_ci, ci_note). A fixed ladder's residuals are misfit, not noise (DESIGN §2.3): the interval is the
    spread of the fit, and with <= 3 rungs (t with <= 1 degree of freedom) it says nothing, so it is None."""
    if rungs < MIN_CI_RUNGS:
        return None, f"not meaningful with {rungs} fitted rungs"
    return list(power.gamma_ci), f"spread of the fit over {rungs} fixed rungs (model misfit, not sampling error)"

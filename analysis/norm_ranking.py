"""Which ResNet norm predicts circuit size: per norm and size measure, Spearman's ρ over nets with its interval and
the log-log slope of size against norm, ranked. No ray/mlflow/boto3."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from htmc.rates.fits import fit_power

BOOT_MAX_N = 5000          # above this many nets, the Spearman interval is Fisher z (Bonett & Wright 2000)
N_BOOT = 1000
SIZE_TARGETS = ("compiled_gates", "cbar_at_error")


def norm_columns(nets: pd.DataFrame) -> list[str]:
    return sorted(c for c in nets.columns if c.startswith("norm_") and not c.endswith("_version")
                  and pd.api.types.is_numeric_dtype(nets[c]))


def avg_ranks(x: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata's 'average'), with at most one sort.
    order: an argsort of x when known (e.g. cut from the argsort of a superset)."""
    order = np.argsort(x) if order is None else order
    xs = x[order]
    new = np.ones(len(x), dtype=bool)
    new[1:] = xs[1:] != xs[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(x)))
    r = np.empty(len(x))
    r[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return r


def _sub_order(full_order: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """argsort of x[mask] from the argsort of x, without sorting again."""
    kept = full_order[mask[full_order]]
    pos = np.cumsum(mask) - 1          # index of each kept row within x[mask]
    return pos[kept]


def _spearman(x: np.ndarray, y: np.ndarray, ry: np.ndarray | None = None, x_order: np.ndarray | None = None) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (ry: y's ranks, x_order: an argsort of x,
    when already known)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    rx = avg_ranks(x, x_order)
    ry = avg_ranks(y) if ry is None else ry.astype(float, copy=True)
    rx -= rx.mean()
    ry -= ry.mean()
    return float(np.dot(rx, ry) / math.sqrt(np.dot(rx, rx) * np.dot(ry, ry)))


def spearman_interval(x: np.ndarray, y: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
                      boot_max_n: int = BOOT_MAX_N, ry: np.ndarray | None = None,
                      x_order: np.ndarray | None = None) -> tuple[float, float, float, str]:
    """(rho, lo, hi, method): Spearman's rho with a percentile bootstrap interval over nets (pairs resampled),
    or, for more than boot_max_n nets, the Fisher z interval with the Bonett-Wright variance (1 + rho^2/2)/(n-3)."""
    n = len(x)
    rho = _spearman(x, y, ry, x_order)
    if not math.isfinite(rho):
        return rho, math.nan, math.nan, "none"
    q = (1 - level) / 2
    if n > boot_max_n:
        z, se = math.atanh(min(max(rho, -0.999999), 0.999999)), math.sqrt((1 + rho * rho / 2) / (n - 3))
        half = stats.norm.ppf(1 - q) * se
        return rho, math.tanh(z - half), math.tanh(z + half), "fisher-z"
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    ok = den > 0
    if ok.sum() < n_boot // 2:
        return rho, math.nan, math.nan, "none"
    r = (rx * ry).sum(axis=1)[ok] / den[ok]
    return rho, float(np.quantile(r, q)), float(np.quantile(r, 1 - q)), "bootstrap"


def loglog_slope(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float, float, float]:
    """(slope, lo, hi, c) of log2 y = log2 c + slope log2 x with its interval: htmc.rates.fits.fit_power on (1/x, y),
    whose model log2 C = log2 c + γ log2(1/ε) is exactly this one with ε = 1/x."""
    try:
        f = fit_power(1.0 / x, y, seed=seed, n_boot=1000 if len(x) <= BOOT_MAX_N else 0)
    except ValueError:
        return math.nan, math.nan, math.nan, math.nan
    return f.gamma, f.gamma_ci[0], f.gamma_ci[1], f.c


def rank_norms(nets: pd.DataFrame, targets=SIZE_TARGETS) -> pd.DataFrame:
    rows = []
    norms = norm_columns(nets)
    xs_all = {nm: pd.to_numeric(nets[nm], errors="coerce").to_numpy(float) for nm in norms}
    orders: dict[str, np.ndarray] = {}     # one argsort per norm, cut to each target's nets
    for target in targets:
        if target not in nets.columns:
            continue
        y_all = pd.to_numeric(nets[target], errors="coerce").to_numpy(float)
        last_ok, ry = None, None
        for norm in norms:
            x_all = xs_all[norm]
            ok = np.isfinite(x_all) & np.isfinite(y_all) & (x_all > 0) & (y_all > 0)
            x, y = x_all[ok], y_all[ok]
            big = len(y) > BOOT_MAX_N
            if last_ok is None or not np.array_equal(ok, last_ok):
                last_ok, ry = ok, (avg_ranks(y) if big else None)  # y's ranks, shared by the norms
            if big and norm not in orders:
                orders[norm] = np.argsort(np.where(np.isfinite(x_all), x_all, np.inf))
            x_order = _sub_order(orders[norm], ok) if big else None
            rho, lo, hi, how = spearman_interval(x, y, ry=ry, x_order=x_order) if len(x) >= 3 else \
                (math.nan,) * 3 + ("none",)
            slope, slo, shi, c = loglog_slope(x, y) if len(x) >= 2 and np.ptp(x) > 0 else (math.nan,) * 4
            rows.append({"size": target, "norm": norm[len("norm_"):], "n_nets": int(ok.sum()), "spearman": rho,
                         "spearman_lo": lo, "spearman_hi": hi, "ci_method": how, "slope": slope,
                         "slope_lo": slo, "slope_hi": shi, "intercept_c": c})
    cols = ["size", "norm", "rank", "n_nets", "spearman", "spearman_lo", "spearman_hi", "ci_method", "slope",
            "slope_lo", "slope_hi", "intercept_c"]
    if not rows:
        return pd.DataFrame({c: [] for c in cols})
    df = pd.DataFrame(rows)
    df["rank"] = df.groupby("size")["spearman"].rank(ascending=False, method="min").astype("Int64")
    order = {t: i for i, t in enumerate(targets)}
    df = df.sort_values(["size", "rank"], key=lambda s: s.map(order) if s.name == "size" else s, kind="stable")
    return df[cols].reset_index(drop=True)

"""The convexity test with a threshold (DESIGN §2.6): how the HTMC norm of walsh_mixture(m, n, seed) grows with m,
against its parts'. Pure pandas/numpy; never imports ray, mlflow or boto3.

For each walsh_mixture ladder and gamma, K̂(m, gamma) = N_mix / max_i N_i, both norm estimates at the rungs of the
same ladder (htmc.rates.fits.htmc_norm_at_rungs, DESIGN §2.3):
- N_mix = max_j eps_j C̄_j^(1/gamma), C̄_j the ladder's verified size at rung j or any finer rung, whichever is
  smaller (`envelope`: each is an upper bound on C(f, eps_j));
- N_i, the part w_{S_i}'s: C(w_S, eps) = |S| - 1 for every eps < 1, exactly (its circuit is the XOR chain of
  |S| - 1 gates, and a parity of |S| bits needs |S| - 1 two-input gates), so N_i = max_j eps_j (|S_i|-1)^(1/gamma)
  over the same rungs. It is computed, not searched: `WalshMixture.part_gates`.
Sizes are floored at 1 gate on both sides (a part with |S| = 1 is a wire: norm 0, and K̂ would be infinite).
The slope of log K̂ against log m per gamma is a least-squares line over every (m, seed); its interval is the wider
of a bootstrap over seeds (whole ladders resampled by seed, so the seed-to-seed spread of K̂ counts) and the OLS
t-interval. Theory (DESIGN §2.6): C(f, eps) = Θ̃(min(m, eps^-2)) gives the slope max(0, 1/gamma - 1/2), which
crosses zero at gamma = 2.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from htmc.rates.fits import json_safe

from . import records as R

GAMMAS = (1.0, 1.5, 2.0, 2.5, 3.0)
FAMILY = "walsh_mixture"
LEVEL = 0.95


def theory_slope(gamma: float) -> float:
    """max(0, 1/gamma - 1/2): the growth exponent of ||mix_m||_{H^gamma} / max ||part|| in m (DESIGN §2.6)."""
    return max(0.0, 1.0 / gamma - 0.5)


def _params(row: dict) -> tuple[str | None, dict]:
    """(family, function params) of a ladder row: from params_json (the canonical task params), else from the
    row's own `function` and `function_params` (hand-made rows)."""
    pj = row.get("params_json")
    if isinstance(pj, str) and pj:
        p = json.loads(pj)
        return p.get("function"), dict(p.get("function_params") or {})
    fp = row.get("function_params") or {}
    return row.get("function"), dict(json.loads(fp) if isinstance(fp, str) else fp)


def _part_gates(m: int, n: int, seed: int, cache: dict) -> int:
    """max_i (|S_i| - 1) of walsh_mixture(m, n, seed), rebuilt from its seed (a few microseconds)."""
    if (m, n, seed) not in cache:
        from htmc.targets import make_function
        cache[(m, n, seed)] = max(make_function(FAMILY, m=m, n=n, seed=seed).part_gates())
    return cache[(m, n, seed)]


def walsh_ladders(ladder_rows) -> pd.DataFrame:
    """One row per ok walsh_mixture ladder record: m, n, seed, eps and cbar (arrays over the rungs with a verified
    circuit, coarse to fine) and part_gates (max_i |S_i| - 1)."""
    t = R.as_table(ladder_rows)
    mask = R.ok_mask(t) & (R.kind_mask(t, "circuit_ladder") if "kind" in t.column_names else True)
    rows, cache = [], {}
    for row in t.filter(pa.array(np.asarray(mask, dtype=bool))).to_pylist() if len(t) else []:
        family, fp = _params(row)
        if family != FAMILY or not row.get("points_json"):
            continue
        pts = [p for p in json.loads(row["points_json"]) if p.get("gates") is not None and p.get("eps")]
        if not pts:
            continue
        pts.sort(key=lambda p: -float(p["eps"]))
        m, n, seed = int(fp.get("m", 4)), int(fp.get("n", 8)), int(fp.get("seed", 0))
        rows.append({"m": m, "n": n, "seed": seed, "eps": np.array([float(p["eps"]) for p in pts]),
                     "cbar": np.array([float(p["gates"]) for p in pts]),
                     "method": [p.get("method") for p in pts], "part_gates": _part_gates(m, n, seed, cache)})
    return pd.DataFrame(rows, columns=["m", "n", "seed", "eps", "cbar", "method", "part_gates"])


def envelope(cbar: np.ndarray) -> np.ndarray:
    """min over the rung and every finer one of C̄ (rungs coarse to fine): a circuit within eps' <= eps is within
    eps, so this is still an upper bound on C(f, eps_j), and the better one where a coarse rung's search missed
    what a finer one found (a coarse eps makes the search pick a coarse input resolution)."""
    return np.minimum.accumulate(np.asarray(cbar, float)[::-1])[::-1]


def khat_table(ladders: pd.DataFrame, gammas=GAMMAS) -> pd.DataFrame:
    """K̂(m, gamma) per ladder: columns m, n, seed, gamma, mix_norm, part_norm, khat, eps_min, eps_max."""
    out = []
    for lad in ladders.itertuples(index=False):
        eps, size = lad.eps, np.maximum(envelope(lad.cbar), 1.0)
        part = max(float(lad.part_gates), 1.0)
        for g in gammas:
            mix = float(np.max(eps * size ** (1.0 / g)))
            pn = float(np.max(eps) * part ** (1.0 / g))
            out.append({"m": lad.m, "n": lad.n, "seed": lad.seed, "gamma": float(g), "mix_norm": mix,
                        "part_norm": pn, "khat": mix / pn, "eps_min": float(eps.min()), "eps_max": float(eps.max())})
    return pd.DataFrame(out, columns=["m", "n", "seed", "gamma", "mix_norm", "part_norm", "khat", "eps_min",
                                      "eps_max"])


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, t-interval half width; inf with <= 2 points)."""
    xc = x - x.mean()
    sxx = float(np.sum(xc * xc))
    slope = float(np.sum(xc * (y - y.mean())) / sxx)
    n = len(x)
    if n <= 2:
        return slope, math.inf
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float(np.sum(resid * resid)) / (n - 2) / sxx)
    return slope, float(stats.t.ppf(0.5 + LEVEL / 2, n - 2)) * se


def _seed_bootstrap(x, y, seeds, n_boot: int, rng) -> tuple[float, float]:
    """Percentile interval of the slope over resamples of whole seeds; nan with one seed."""
    groups = [np.flatnonzero(seeds == s) for s in np.unique(seeds)]
    if len(groups) < 2:
        return math.nan, math.nan
    slopes = []
    for _ in range(n_boot):
        idx = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        xs, ys = x[idx], y[idx]
        xc = xs - xs.mean()
        sxx = float(np.sum(xc * xc))
        if sxx > 0:
            slopes.append(float(np.sum(xc * (ys - ys.mean())) / sxx))
    if not slopes:
        return math.nan, math.nan
    q = (1 - LEVEL) / 2
    return float(np.quantile(slopes, q)), float(np.quantile(slopes, 1 - q))


def fit_slope(k: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Slope of log K̂ against log m over the rows of one gamma, with its interval (module docstring)."""
    x, y = np.log(k["m"].to_numpy(float)), np.log(k["khat"].to_numpy(float))
    if np.unique(x).size < 2:
        return {"slope": None, "lo": None, "hi": None, "n": len(x), "note": "fewer than 2 distinct m"}
    slope, half = _ols(x, y)
    blo, bhi = _seed_bootstrap(x, y, k["seed"].to_numpy(), n_boot, np.random.default_rng(seed))
    lo, hi = slope - half, slope + half
    if math.isfinite(blo):
        lo, hi = min(lo, blo), max(hi, bhi)
    return {"slope": slope, "lo": lo, "hi": hi, "n": len(x),
            "note": f"OLS over {len(x)} ladders; {LEVEL:.0%} interval: wider of seed bootstrap and t"}


def convexity_slopes(ladder_rows, gammas=GAMMAS, n_boot: int = 1000, seed: int = 0) -> dict:
    """{"slopes": [{"gamma", "slope", "lo", "hi", "theory", "n", "note"}], "points": K̂ rows, "n_ladders",
    "ms", "seeds", "family", "norm"}: JSON-safe, the shape of summary.json's "convexity" key."""
    ladders = walsh_ladders(ladder_rows)
    k = khat_table(ladders, gammas)
    slopes = []
    for g in gammas:
        sub = k[k["gamma"] == float(g)]
        fit = fit_slope(sub, n_boot, seed) if len(sub) else {"slope": None, "lo": None, "hi": None, "n": 0,
                                                             "note": "no walsh_mixture ladders"}
        slopes.append({"gamma": float(g), **{key: fit[key] for key in ("slope", "lo", "hi")},
                       "theory": theory_slope(float(g)), "n": fit["n"], "note": fit["note"]})
    return json_safe({"slopes": slopes, "points": k.to_dict("records"), "n_ladders": len(ladders),
                      "ms": sorted(int(m) for m in ladders["m"].unique()),
                      "seeds": sorted(int(s) for s in ladders["seed"].unique()), "family": FAMILY,
                      "norm": "max_j eps_j C̄_j^(1/gamma) at the rungs (sizes floored at 1), parts: |S|-1 exactly"})

"""The sandwich and the HTMC-vs-ResNet-norm phase diagram (DESIGN §2.6; issue 14 B). No ray/mlflow/boto3.

Input: the ok resnet_compile records (one trained net compiled at every rung of a ladder, analysis/records'
function ids) and C̄ per (function, ε) from analysis/cbar. Per function f and rung ε:
- a net counts at ε only through a compiled circuit that verified within some ε' <= ε (then it is within ε);
- Ḡ(f, ε) is the fewest compiled gates among those nets, R̄_ν(f, ε) the smallest norm ν among them;
- C̄(f, ε) is the circuits' bound at that rung: the ladder's value, else min C̄_j over rungs ε_j <= ε (C is
  non-increasing in ε, so that is still an upper bound on C(f, ε)).
Fits: ρ̂_ν from R̄_ν ≈ c ε^-ρ with htmc.rates.fits.fit_ladder (the machinery of γ̂: interval, polylog, ΔAIC; the
interval is not meaningful on 3 or fewer rungs and is then null), and per function the slope of log R̄_ν against
log C̄ across rungs (the empirical sandwich exponent; null with fewer than 2 rungs).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from htmc.rates.fits import fit_ladder

from .norm_ranking import loglog_slope

SANDWICH_COLUMNS = ["fid", "eps", "cbar", "cbar_source", "gates_min", "n_nets"]


def compiled_points(compiles: pd.DataFrame, fids: np.ndarray) -> pd.DataFrame:
    """One row per (compile record, rung): fid, eps, gates (None when it did not compile), verified, the net's
    norm_* and its identity (train_key, width, lam, seed)."""
    norms = [c for c in compiles.columns if c.startswith("norm_") and not c.endswith("_version")]
    rows = []
    for fid, (_, r) in zip(fids, compiles.iterrows()):
        try:
            pts = json.loads(r.get("points_json") or "[]")
        except ValueError:
            pts = []
        for p in pts if isinstance(pts, list) else []:
            rows.append({"fid": int(fid), "eps": p.get("eps"), "gates": p.get("gates"),
                         "verified": bool(p.get("verified")) and p.get("gates") is not None,
                         "max_error": p.get("max_error"), "k": p.get("k"), "seconds": p.get("seconds"),
                         "train_key": r.get("train_key"), "width": r.get("width"), "lam": r.get("lam"),
                         "seed": r.get("seed"), **{n: r.get(n) for n in norms}})
    cols = ["fid", "eps", "gates", "verified", "max_error", "k", "seconds", "train_key", "width", "lam", "seed"]
    return pd.DataFrame(rows, columns=cols + norms)


def with_cbar_ratio(cpts: pd.DataFrame, cbar: pd.DataFrame) -> pd.DataFrame:
    """cpts with cbar (C̄ of the net's function at the point's ε, as sandwich_table takes it) and ratio_to_cbar =
    compiled gates / C̄: how far each net's circuit is from the search's bound (issue 14 A, 'compile quality')."""
    out = cpts.copy()
    vals = [(_cbar_at(cbar[cbar["fid"] == f], e)[0] if len(cbar) else None) for f, e in zip(out["fid"], out["eps"])]
    out["cbar"] = pd.to_numeric(pd.Series(vals, index=out.index, dtype=object), errors="coerce")
    out["ratio_to_cbar"] = pd.to_numeric(out["gates"], errors="coerce") / out["cbar"]
    return out


def fill_compiled(nets: pd.DataFrame, cpts: pd.DataFrame) -> pd.DataFrame:
    """The per-net compiled columns (compiled_gates, compiled_eps, compiled_max_error, compiled_k) of nets that a
    resnet_compile record compiled: its circuit at the finest rung it verified at, where the net carries none of
    its own (`htmc resnet train --compile-eps` writes them into the training record)."""
    if nets.empty or cpts.empty or "task_key" not in nets:
        return nets
    ok = cpts[cpts["verified"]].sort_values("eps").drop_duplicates("train_key").set_index("train_key")
    out = nets.copy()
    take = out["task_key"].isin(ok.index)
    if "compiled_gates" in out:
        take &= out["compiled_gates"].isna()
    for col, src in (("compiled_gates", "gates"), ("compiled_eps", "eps"), ("compiled_max_error", "max_error"),
                     ("compiled_k", "k")):
        if col not in out:
            out[col] = np.nan
        out[col] = out[col].astype(float)
        out.loc[take, col] = ok.loc[out.loc[take, "task_key"], src].to_numpy(float)
    return out


def _cbar_at(cb: pd.DataFrame, eps: float) -> tuple[float | None, str]:
    exact = cb[np.isclose(cb["eps"], eps, rtol=1e-12, atol=0)]
    if len(exact):
        return float(exact["cbar"].min()), "rung"
    finer = cb[cb["eps"] <= eps]
    return (float(finer["cbar"].min()), "finer rung") if len(finer) else (None, "none")


def sandwich_table(cpts: pd.DataFrame, cbar: pd.DataFrame) -> pd.DataFrame:
    """Per (fid, rung ε): C̄, Ḡ, n_nets and norm_min_<ν> for every norm ν (module docstring)."""
    norms = [c for c in cpts.columns if c.startswith("norm_")]
    out = []
    for fid, g in cpts.groupby("fid"):
        ok = g[g["verified"]]
        cb = cbar[cbar["fid"] == fid] if len(cbar) else cbar
        for eps in sorted(g["eps"].dropna().unique(), reverse=True):
            elig = ok[ok["eps"] <= eps]
            c, src = _cbar_at(cb, eps) if len(cb) else (None, "none")
            row = {"fid": int(fid), "eps": float(eps), "cbar": c, "cbar_source": src,
                   "gates_min": float(elig["gates"].min()) if len(elig) else None,
                   "n_nets": int(elig["train_key"].nunique())}
            for n in norms:
                v = pd.to_numeric(elig[n], errors="coerce").dropna()
                row[f"{n.replace('norm_', 'norm_min_')}"] = float(v.min()) if len(v) else None
            out.append(row)
    return pd.DataFrame(out, columns=SANDWICH_COLUMNS + [n.replace("norm_", "norm_min_") for n in norms])


def norm_names(sandwich: pd.DataFrame) -> list[str]:
    return sorted(c[len("norm_min_"):] for c in sandwich.columns if c.startswith("norm_min_"))


def frac_within_square(sandwich: pd.DataFrame) -> tuple[float | None, int]:
    """(fraction of points with Ḡ <= C̄², number of points with both): the paper's 'within a power of 2'."""
    both = sandwich.dropna(subset=["cbar", "gates_min"]) if len(sandwich) else sandwich
    if not len(both):
        return None, 0
    return float(np.mean(both["gates_min"] <= both["cbar"] ** 2)), int(len(both))


def _rho(eps: np.ndarray, r: np.ndarray) -> list:
    """[ρ̂, lo, hi] of R̄ ≈ c ε^-ρ; None entries where it cannot be fitted (fewer than 2 rungs, zero norms)."""
    keep = np.isfinite(r) & (r > 0)
    if len(np.unique(eps[keep])) < 2:
        return [None, None, None]
    f = fit_ladder(eps[keep], r[keep], gammas=(), exclude=False, n_boot=200)
    lo, hi = f.gamma_ci or (None, None)
    return [float(f.gamma), lo, hi]


def _exponent(c: np.ndarray, r: np.ndarray) -> float | None:
    keep = np.isfinite(c) & np.isfinite(r) & (c > 0) & (r > 0)
    if keep.sum() < 2 or len(np.unique(c[keep])) < 2:
        return None
    s = loglog_slope(c[keep], r[keep])[0]
    return None if math.isnan(s) else float(s)


def resnet_phase(sandwich: pd.DataFrame, functions: pd.DataFrame) -> pd.DataFrame:
    """Per function with a sandwich: γ̂ and its interval (the circuits' fit), ρ̂_ν with its interval per norm, and
    the sandwich exponent per norm (slope of log R̄_ν against log C̄)."""
    rows = []
    fmeta = functions.set_index("fid") if "fid" in functions else pd.DataFrame()
    for fid, g in sandwich.groupby("fid"):
        g = g.sort_values("eps")
        e = g["eps"].to_numpy(float)
        row = {"fid": int(fid), "function": g["function"].iloc[0] if "function" in g else None}
        if fid in fmeta.index:
            m = fmeta.loc[fid]
            row.update(function_key=m.get("function_key"), gamma=m.get("gamma"),
                       gamma_lo=m.get("gamma_lo"), gamma_hi=m.get("gamma_hi"))
        row["rho"], row["sandwich_exponent"] = {}, {}
        for n in norm_names(sandwich):
            r = pd.to_numeric(g[f"norm_min_{n}"], errors="coerce").to_numpy(float)
            row["rho"][n] = _rho(e, r)
            row["sandwich_exponent"][n] = _exponent(pd.to_numeric(g["cbar"], errors="coerce").to_numpy(float), r)
        row["rungs_with_nets"] = int(g["gates_min"].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def sandwich_contract(sandwich: pd.DataFrame, phase: pd.DataFrame) -> tuple[dict, list]:
    """The `sandwich` and `resnet_phase` entries of summary.json (issue 14 D)."""
    points = []
    for _, r in sandwich.iterrows():
        points.append({"function": r.get("function"), "eps": r["eps"], "cbar": r["cbar"],
                       "gates_min": r["gates_min"], "n_nets": r["n_nets"],
                       "norms_min": {n: r[f"norm_min_{n}"] for n in norm_names(sandwich)}})
    frac, n = frac_within_square(sandwich)
    sand = {"points": points, "frac_within_square": frac, "n_points_with_both": n}
    ph = [{"function": r.get("function"), "gamma": r.get("gamma"), "gamma_lo": r.get("gamma_lo"),
           "gamma_hi": r.get("gamma_hi"), "rho": r["rho"], "sandwich_exponent": r["sandwich_exponent"],
           "rungs_with_nets": r["rungs_with_nets"]} for _, r in phase.iterrows()]
    return sand, ph

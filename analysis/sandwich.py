"""The sandwich and the HTMC-vs-ResNet-norm phase diagram (DESIGN §2.6; issue 14 B, issue 21 B). No ray/mlflow/boto3.

Input: the nets in the store with their own circuits (analysis/records' function ids): the ok resnet_compile
records (a λ-path net compiled at every rung, points_json) and the ok resnet_fit records (a net fitted to one rung,
flat columns), and C̄ per (function, ε) from analysis/cbar. Every gate count is the net's own circuit, built from
its netlist (htmc.resnets.compile_ladder); the table route is a separate column (gates_table). Per f and rung ε:
- a net counts at ε only through a circuit of its own that verified within some ε' <= ε (then it is within ε);
- R*_ν(f, ε) (norm_min_<ν>) is the smallest norm ν among those nets; G*_ν(f, ε) (gates_minnorm_<ν>) the gates of
  THAT net's circuit (its fewest-gate circuit within ε; ties in the norm go to fewer gates): the circuit the paper's
  claim is about, "minimizing the ResNet norm finds a near-minimal circuit" (issue 21 B);
- Ḡ(f, ε) (gates_min) is the fewest gates over all those nets, kept beside G* and labelled as such;
- C̄(f, ε) is the circuits' bound at that rung: the ladder's value, else min C̄_j over rungs ε_j <= ε (C is
  non-increasing in ε, so that is still an upper bound on C(f, ε)).
The rows are the rungs of the nets and of the function's C̄ (the circuit ladder); coverage counts the C̄ rungs
with a net. Fits: ρ̂_ν from R*_ν ≈ c ε^-ρ with htmc.rates.fits.fit_ladder (the machinery of γ̂: the interval is
not meaningful on 3 or fewer rungs and is then null); per function the slope of log G*_ν on log C̄ with its
interval (analysis.norm_ranking.loglog_slope; "not meaningful" on 3 or fewer points), and of log R*_ν on log C̄.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from htmc.rates.fits import fit_ladder

from .norm_ranking import loglog_slope

SANDWICH_COLUMNS = ["fid", "eps", "cbar", "cbar_source", "ladder_rung", "gates_min", "gates_table_min", "n_nets"]
POINT_COLUMNS = ["fid", "eps", "gates", "gates_table", "verified", "max_error", "k", "seconds", "net_id", "source",
                 "train_key", "width", "lam", "seed"]
MIN_CI_POINTS = 4          # an interval on 3 or fewer points is not meaningful (htmc.rates.fits._interval)
TABLE_GATES_VERSIONS = ("1", "2")   # compile versions whose `gates` could be the table route's (issue 21 B)


def _own_gates(p: dict):
    """A compiled point's gates when they count the net's own circuit: compile version 3 on; before it, up to 12
    input bits `gates` came from ABC on the net's output table, so such a point is a C̄ candidate, not a net's."""
    if str(p.get("compile_version")) in TABLE_GATES_VERSIONS:
        return None, p.get("gates")
    return p.get("gates"), p.get("gates_table")


def _norm_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("norm_") and not c.endswith(("_version", "_versions"))]


def _compile_rows(compiles: pd.DataFrame, fids: np.ndarray) -> list[dict]:
    """resnet_compile records: one row per (record, rung), net_id = the train_key (source lambda_path)."""
    norms, rows = _norm_cols(compiles), []
    for fid, (_, r) in zip(fids, compiles.iterrows()):
        try:
            pts = json.loads(r.get("points_json") or "[]")
        except ValueError:
            pts = []
        for p in pts if isinstance(pts, list) else []:
            own, table = _own_gates(p)
            rows.append({"fid": int(fid), "eps": p.get("eps"), "gates": own, "gates_table": table,
                         "verified": bool(p.get("verified")) and own is not None,
                         "max_error": p.get("max_error"), "k": p.get("k"), "seconds": p.get("seconds"),
                         "net_id": r.get("train_key"), "source": "lambda_path",
                         "train_key": r.get("train_key"), "width": r.get("width"), "lam": r.get("lam"),
                         "seed": r.get("seed"), **{n: r.get(n) for n in norms}})
    return rows


def _fit_rows(fits: pd.DataFrame, fids: np.ndarray) -> list[dict]:
    """resnet_fit records (one net fitted to one rung, flat): one row each, net_id = its task_key (source fit)."""
    norms, rows = _norm_cols(fits), []
    for fid, (_, r) in zip(fids, fits.iterrows()):
        g = _num(r.get("gates"))
        rows.append({"fid": int(fid), "eps": r.get("eps"), "gates": g, "gates_table": r.get("gates_table"),
                     "verified": bool(r.get("verified")) and g is not None, "max_error": r.get("max_error"),
                     "k": r.get("k"), "seconds": r.get("fit_seconds"), "net_id": r.get("task_key"),
                     "source": "fit", "train_key": None, "width": r.get("width"), "lam": r.get("lam"),
                     "seed": r.get("seed"), **{n: r.get(n) for n in norms}})
    return rows


def compiled_points(compiles: pd.DataFrame, fids: np.ndarray, fits: pd.DataFrame | None = None,
                    fit_fids: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (net, rung) with a circuit of the net's own or the reason it has none: fid, eps, gates (None
    when it did not compile), gates_table, verified, the net's norm_*, its identity (net_id, source: lambda_path
    for resnet_compile, fit for resnet_fit; train_key, width, lam, seed)."""
    rows = _compile_rows(compiles, fids) if len(compiles) else []
    if fits is not None and len(fits):
        rows += _fit_rows(fits, fit_fids)
    norms = sorted({k for r in rows for k in r if k.startswith("norm_")} |
                   set(_norm_cols(compiles)) | set(_norm_cols(fits) if fits is not None else []))
    out = pd.DataFrame(rows, columns=POINT_COLUMNS + norms)
    for c in ["eps", "gates", "gates_table", "max_error"] + norms:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    out = out.drop(columns=[n for n in norms if len(out) and out[n].isna().all()])   # norms no net here has
    out["verified"] = out["verified"].astype(bool)
    return out


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
    exact = cb[np.isclose(cb["eps"], eps, rtol=1e-9, atol=0)]
    if len(exact):
        return float(exact["cbar"].min()), "rung"
    finer = cb[cb["eps"] <= eps * (1 + 1e-9)]
    return (float(finer["cbar"].min()), "finer rung") if len(finer) else (None, "none")


def _argmin_norm(elig: pd.DataFrame, n: str) -> tuple[float | None, float | None]:
    """(R*, G*): the smallest norm n among the eligible circuits and the gates of that net's circuit (its fewest
    gates within ε; ties in the norm go to fewer gates)."""
    e = elig.dropna(subset=[n])
    if not len(e):
        return None, None
    best = e.sort_values([n, "gates"], kind="mergesort").iloc[0]
    return float(best[n]), float(best["gates"])


def _rungs(g: pd.DataFrame, cb: pd.DataFrame) -> list[float]:
    """The rungs of one function: its nets' and its C̄'s, coarse to fine (equal up to 1e-9 relative: one rung)."""
    out: list[float] = []
    for e in sorted(pd.concat([g["eps"], cb["eps"] if len(cb) else pd.Series([], dtype=float)]).dropna(),
                    reverse=True):
        if not out or not math.isclose(e, out[-1], rel_tol=1e-9):
            out.append(float(e))
    return out


def _is_ladder_rung(cb: pd.DataFrame, eps: float) -> bool:
    """Whether eps is a rung of the function's circuit ladder (a C̄ point from a circuit_ladder record; every C̄
    point when the table does not say its source)."""
    if not len(cb):
        return False
    at = cb[np.isclose(cb["eps"], eps, rtol=1e-9, atol=0)]
    return bool(len(at) and ("source" not in at or (at["source"] == "circuit_ladder").any()))


def sandwich_table(cpts: pd.DataFrame, cbar: pd.DataFrame) -> pd.DataFrame:
    """Per (fid, rung ε): C̄, Ḡ (gates_min), the table route's fewest gates, n_nets, and per norm ν R*_ν
    (norm_min_<ν>) and G*_ν (gates_minnorm_<ν>) (module docstring)."""
    norms = [c for c in cpts.columns if c.startswith("norm_")]
    out = []
    for fid, g in cpts.groupby("fid"):
        ok = g[g["verified"]]
        cb = cbar[cbar["fid"] == fid] if len(cbar) else cbar
        for eps in _rungs(g, cb):
            elig = ok[ok["eps"] <= eps * (1 + 1e-9)]
            c, src = _cbar_at(cb, eps) if len(cb) else (None, "none")
            tab = elig["gates_table"].dropna()
            row = {"fid": int(fid), "eps": float(eps), "cbar": c, "cbar_source": src,
                   "ladder_rung": _is_ladder_rung(cb, eps),
                   "gates_min": float(elig["gates"].min()) if len(elig) else None,
                   "gates_table_min": float(tab.min()) if len(tab) else None,
                   "n_nets": int(elig["net_id"].nunique())}
            for n in norms:
                nu = n[len("norm_"):]
                row[f"norm_min_{nu}"], row[f"gates_minnorm_{nu}"] = _argmin_norm(elig, n)
            out.append(row)
    extra = [f"{p}_{n[len('norm_'):]}" for n in norms for p in ("norm_min", "gates_minnorm")]
    return pd.DataFrame(out, columns=SANDWICH_COLUMNS + extra)


def norm_names(sandwich: pd.DataFrame) -> list[str]:
    return sorted(c[len("norm_min_"):] for c in sandwich.columns if c.startswith("norm_min_"))


def frac_within_square(sandwich: pd.DataFrame, col: str = "gates_min") -> tuple[float | None, int]:
    """(fraction of points with col <= C̄², number of points with both): the paper's 'within a power of 2'. col:
    gates_min (Ḡ) or gates_minnorm_<ν> (G*_ν)."""
    both = sandwich.dropna(subset=["cbar", col]) if len(sandwich) and col in sandwich else sandwich.iloc[0:0]
    if not len(both):
        return None, 0
    return float(np.mean(both[col] <= both["cbar"] ** 2)), int(len(both))


def _rho(eps: np.ndarray, r: np.ndarray) -> list:
    """[ρ̂, lo, hi] of R* ≈ c ε^-ρ; None entries where it cannot be fitted (fewer than 2 rungs, zero norms) and an
    interval only on MIN_CI_POINTS rungs or more (fit_ladder's rule)."""
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


def gates_exponent(cbar: np.ndarray, gates: np.ndarray) -> dict:
    """The slope of log G*_ν on log C̄ over a function's rungs with its interval (loglog_slope, a bootstrap over
    rungs): the empirical exponent of 'within a power of 2', which should stay <= 2 (issue 21 B). On 3 or fewer
    points the interval is null and the note says it is not meaningful."""
    keep = np.isfinite(cbar) & np.isfinite(gates) & (cbar > 0) & (gates > 0)
    n = int(keep.sum())
    if n < 2 or len(np.unique(cbar[keep])) < 2:
        return {"slope": None, "lo": None, "hi": None, "n": n, "note": f"{n} point(s) with C̄ > 0 and G* > 0: no slope"}
    slope, lo, hi, _ = loglog_slope(cbar[keep], gates[keep])
    if n < MIN_CI_POINTS:
        return {"slope": float(slope), "lo": None, "hi": None, "n": n,
                "note": f"interval not meaningful on {n} points (needs {MIN_CI_POINTS})"}
    return {"slope": float(slope), "lo": float(lo), "hi": float(hi), "n": n, "note": ""}


def coverage(g: pd.DataFrame) -> dict:
    """Rungs of the function's circuit ladder (C̄ at the rung itself) that have a net within ε, over all of them."""
    lad = g[g["ladder_rung"].astype(bool)] if "ladder_rung" in g else g[g["cbar"].notna()]
    n_net = int((lad["n_nets"] > 0).sum())
    return {"rungs_with_net": n_net, "rungs": int(len(lad)),
            "fraction": n_net / len(lad) if len(lad) else None,
            "rungs_with_net_any": int((g["n_nets"] > 0).sum())}


def resnet_phase(sandwich: pd.DataFrame, functions: pd.DataFrame) -> pd.DataFrame:
    """Per function with a sandwich: γ̂ and its interval (the circuits' fit), per norm ρ̂_ν of R*_ν with its
    interval, the slope of log R*_ν on log C̄ (sandwich_exponent) and of log G*_ν on log C̄ (gates_exponent), and
    the coverage."""
    rows = []
    fmeta = functions.set_index("fid") if "fid" in functions else pd.DataFrame()
    for fid, g in sandwich.groupby("fid"):
        g = g.sort_values("eps")
        e = g["eps"].to_numpy(float)
        cb = pd.to_numeric(g["cbar"], errors="coerce").to_numpy(float)
        row = {"fid": int(fid), "function": g["function"].iloc[0] if "function" in g else None}
        if fid in fmeta.index:
            m = fmeta.loc[fid]
            row.update(function_key=m.get("function_key"), gamma=m.get("gamma"),
                       gamma_lo=m.get("gamma_lo"), gamma_hi=m.get("gamma_hi"),
                       gamma_range=[m.get("eps_min"), m.get("eps_max")] if "eps_min" in m else None)
        row["rho"], row["sandwich_exponent"], row["gates_exponent"] = {}, {}, {}
        for n in norm_names(sandwich):
            r = pd.to_numeric(g[f"norm_min_{n}"], errors="coerce").to_numpy(float)
            row["rho"][n] = _rho(e, r)
            row["sandwich_exponent"][n] = _exponent(cb, r)
            gs = pd.to_numeric(g.get(f"gates_minnorm_{n}"), errors="coerce")
            row["gates_exponent"][n] = gates_exponent(cb, np.asarray(gs, float) if gs is not None else cb * np.nan)
        row["rungs_with_nets"] = int(g["gates_min"].notna().sum())
        row["coverage"] = coverage(g)
        rows.append(row)
    return pd.DataFrame(rows)


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _point(r: pd.Series, norms: list[str]) -> dict:
    cbar = _num(r["cbar"])
    gmn = {n: _num(r.get(f"gates_minnorm_{n}")) for n in norms}
    return {"function": r.get("function"), "eps": r["eps"], "cbar": cbar, "gates_min": _num(r["gates_min"]),
            "gates_minnorm": gmn, "gates_table_min": _num(r.get("gates_table_min")), "n_nets": r["n_nets"],
            "norms_min": {n: _num(r[f"norm_min_{n}"]) for n in norms},
            "ratio_minnorm_to_cbar": {n: (g / cbar if g is not None and cbar else None) for n, g in gmn.items()}}


def sandwich_contract(sandwich: pd.DataFrame, phase: pd.DataFrame) -> tuple[dict, list]:
    """The `sandwich` and `resnet_phase` entries of summary.json (issue 14 D, issue 21 B): per point Ḡ (gates_min)
    and G*_ν (gates_minnorm, per norm) beside it; the fraction within C̄² for Ḡ and per norm for G*_ν."""
    norms = norm_names(sandwich)
    points = [_point(r, norms) for _, r in sandwich.iterrows()]
    frac, n = frac_within_square(sandwich)
    per_norm = {nu: dict(zip(("fraction", "n"), frac_within_square(sandwich, f"gates_minnorm_{nu}")))
                for nu in norms}
    sand = {"points": points, "frac_within_square": frac, "n_points_with_both": n,
            "frac_within_square_minnorm": per_norm}
    ph = [{"function": r.get("function"), "gamma": r.get("gamma"), "gamma_lo": r.get("gamma_lo"),
           "gamma_hi": r.get("gamma_hi"), "rho": r["rho"], "sandwich_exponent": r["sandwich_exponent"],
           "gates_exponent": r["gates_exponent"], "rungs_with_nets": r["rungs_with_nets"],
           "coverage": r["coverage"]} for _, r in phase.iterrows()]
    return sand, ph

"""Aggregation of sweep records into tidy tables (DESIGN §2.3, §2.4; issue 6). Never imports ray, mlflow or boto3.

`summarize(records)` takes the records of a sweep (pyarrow Table or pandas DataFrame, the store's schema) and
returns a `Summary` of tidy pandas tables:

functions     one row per target function (family, canonical parameters, domain): C̄(f, ε) merged over every
              ok circuit_ladder rung and circuit_search record of that function (the smallest verified circuit at
              each ε, over methods, resolutions and records, DESIGN §2.3), then fitted with htmc.rates.fits.fit_ladder:
              γ̂ with its interval (gamma_lo, gamma_hi: the spread of the fit over fixed rungs, not sampling error;
              null with ≤ 3 fitted rungs, ci_note says why), ĉ, the polylog fit, ΔAIC = AIC(polylog) − AIC(power)
              and the preferred model ("inconclusive" when |ΔAIC| < 2), saturated points (rungs at the exactly
              rounded circuit, grid domain), and for each γ asked two HTMC norm estimates:
                htmc_norm_at_rungs_{γ}    max_j ε_j C̄_j^{1/γ}, at the rungs only;
                htmc_norm_over_range_{γ}  an upper estimate of ε C(f, ε)^{1/γ} over all of [eps_min, eps_max].
              When a function's C̄ points are exactly one ladder's own rungs, that ladder's stored fit (same
              estimator, same points, same seed, same FIT_VERSION) is used instead of refitting: fit_source says
              which ("stored" or "refit"); reuse_stored_fits=False refits everything.
points        one row per (function, ε): C̄, the method and record that achieved it, and whether the fit used it.
nets          one row per ok resnet_train record: its norms, errors and compiled gate count, joined with its
              function's C̄ at the net's achieved error (sup_error):
                cbar_at_error      min C̄_j over the rungs with ε_j <= error: a verified upper bound on C(f, error),
                                   since C is non-increasing in ε. Null when the net is finer than every rung.
                cbar_fit_at_error  the function's preferred fit evaluated at the error (the power law unless polylog
                                   is preferred); cbar_extrapolated says
                                   whether the error lies outside the ladder's ε range.
norm_ranking  per ResNet norm and circuit-size measure (compiled_gates, cbar_at_error): Spearman rank correlation
              over nets with a bootstrap interval (Fisher z for more than BOOT_MAX_N nets), and the log-log slope of
              size against norm with its interval (htmc.rates.fits.fit_power on (1/norm, size)), ranked.
convexity     one row per mixture target: number of parts m, the parts' family and theoretical γ, and γ̂.
phase         γ̂ over two parameters of a family (default holder_random over (s, d)), median over the rest.
counts        records per kind and status; `missing` lists what the tables could not contain, and why.
"""
from __future__ import annotations

import functools
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from scipy import stats

from htmc.rates.fits import fit_ladder, fit_power, FIT_VERSION, json_safe, read_norms

from . import records as R
from .missing import missing_notes

ANALYSIS_VERSION = "1"
DEFAULT_GAMMAS = (2, 3, 4)
BOOT_MAX_N = 5000          # above this many nets, the Spearman interval is Fisher z (Bonett & Wright 2000)
N_BOOT = 1000
SIZE_TARGETS = ("compiled_gates", "cbar_at_error")
PHASE_DEFAULT = ("holder_random", "s", "d")

# `optimal` is what points written before issue 12 call optimal_in_format (same meaning, no format stored)
_POINT_TYPE = pa.struct([("eps", pa.float64()), ("gates", pa.int64()), ("method", pa.string()),
                         ("optimal_in_format", pa.bool_()), ("optimal", pa.bool_()), ("max_error", pa.float64()),
                         ("bits_in", pa.int64()), ("bits_out", pa.int64()), ("exact_rounded", pa.bool_())])


@dataclass
class Summary:
    functions: pd.DataFrame
    points: pd.DataFrame
    nets: pd.DataFrame
    norm_ranking: pd.DataFrame
    convexity: pd.DataFrame
    phase: pd.DataFrame
    counts: dict
    missing: list = field(default_factory=list)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict = field(default_factory=dict)      # stage -> seconds (for benchmarks/analysis.py)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"functions": self.functions, "points": self.points, "nets": self.nets,
                "norm_ranking": self.norm_ranking, "convexity": self.convexity, "phase": self.phase}


# ----------------------------------------------------------------------------------------------------------------
# Points: C̄(f, ε) from ladders and searches
# ----------------------------------------------------------------------------------------------------------------

_POINT_COLS = ["fid", "eps", "gates", "method", "optimal_in_format", "max_error", "bits_in", "bits_out", "exact_rounded",
               "task_key", "source"]


def _explode_points(points_json: pa.ChunkedArray) -> pd.DataFrame:
    """points_json (a JSON list of search records per ladder) -> one row per rung, with `row` = the ladder's index.
    Parsed by Arrow's multithreaded JSON reader: one line per ladder, only the fields analysis reads."""
    if len(points_json) == 0:
        return pd.DataFrame({"row": pd.Series([], dtype=np.int64), **{f.name: [] for f in _POINT_TYPE}})
    texts = pc.fill_null(points_json.cast(pa.string()), "[]").to_pylist()
    lines = "\n".join(f'{{"row":{i},"p":{s if s.strip() else "[]"}}}' for i, s in enumerate(texts)).encode()
    longest = max((len(s) for s in texts), default=0)
    schema = pa.schema([("row", pa.int64()), ("p", pa.list_(_POINT_TYPE))])
    try:
        t = pajson.read_json(pa.BufferReader(lines),
                             read_options=pajson.ReadOptions(block_size=max(1 << 22, 4 * longest + 64)),
                             parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                               unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _explode_points_slow(texts)   # some ladder's points are not what the schema says: go row by row
    lists = t.column("p").combine_chunks()
    parents = pc.list_parent_indices(lists).to_numpy()
    flat = pc.list_flatten(lists)
    rows = t.column("row").to_numpy()[parents]
    return pa.Table.from_arrays([pa.array(rows)] + [flat.field(f.name) for f in _POINT_TYPE],
                                names=["row"] + [f.name for f in _POINT_TYPE]).to_pandas()


def _explode_points_slow(texts: list[str]) -> pd.DataFrame:
    rows = []
    for i, s in enumerate(texts):
        try:
            pts = json.loads(s) if s else []
        except ValueError:
            pts = []
        for p in pts if isinstance(pts, list) else []:
            if isinstance(p, dict):
                rows.append({"row": i, **{f.name: p.get(f.name) for f in _POINT_TYPE}})
    df = pd.DataFrame(rows, columns=["row"] + [f.name for f in _POINT_TYPE])
    for c in ("eps", "gates", "max_error", "bits_in", "bits_out"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def circuit_points(ladders: pa.Table, lad_fid: np.ndarray, searches: pa.Table, srch_fid: np.ndarray) -> pd.DataFrame:
    """All verified (fid, eps, gates) observations of ok ladder rungs (first) and ok searches."""
    frames = []
    if len(ladders):
        pts = _explode_points(R.column(ladders, "points_json", pa.string()))
        row = pts["row"].to_numpy()
        task = np.asarray(R.column(ladders, "task_key", pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        pts["fid"] = lad_fid[row]
        pts["task_key"] = task[row]
        pts["source"] = "circuit_ladder"
        pts["optimal_in_format"] = pts["optimal_in_format"].where(pts["optimal_in_format"].notna(), pts["optimal"])
        frames.append(pts)
    if len(searches):
        df = R.frame(searches, ["task_key", "eps", "gates", "method", "optimal_in_format", "max_error", "bits_in",
                                "bits_out", "exact_rounded"])
        df["fid"] = srch_fid
        df["source"] = "circuit_search"
        frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=np.int64 if c == "fid" else float) for c in _POINT_COLS})
    out = pd.concat([f[_POINT_COLS] for f in frames], ignore_index=True)
    out["eps"] = pd.to_numeric(out["eps"], errors="coerce").astype(float)
    out["gates"] = pd.to_numeric(out["gates"], errors="coerce").astype(float)
    return out


def cbar_table(obs: pd.DataFrame) -> pd.DataFrame:
    """C̄(f, ε): per (fid, eps), the observation with the fewest verified gates (ties: the first seen, so a
    ladder's own rung wins over an equal search). Rungs with no circuit or 0 gates (a constant or a wire) are
    left out, as htmc.rates.ladder leaves them out of its fits. n_obs counts the observations at that (fid, eps).
    exact_rounded: some observation with the least gates is the exactly rounded circuit, so C̄ there is the
    exact circuit's size (DESIGN §2.3 'Saturation'); a smaller circuit elsewhere means it is not."""
    e, g, f = obs["eps"].to_numpy(float), obs["gates"].to_numpy(float), obs["fid"].to_numpy(np.int64)
    good = np.flatnonzero(np.isfinite(e) & (e > 0) & np.isfinite(g) & (g > 0) & (f >= 0))
    order = good[np.lexsort((np.arange(len(good)), g[good], -e[good], f[good]))]
    fo, eo = f[order], e[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (fo[1:] != fo[:-1]) | (eo[1:] != eo[:-1])
    starts = np.flatnonzero(first)
    n_obs = np.diff(np.append(starts, len(order)))
    best = obs.iloc[order[first]].rename(columns={"gates": "cbar"}).reset_index(drop=True)
    best["n_obs"] = n_obs
    if len(order):
        best["exact_rounded"] = _exact_at_min(obs, order, starts)
    return best


def _flag(df: pd.DataFrame, col: str) -> np.ndarray:
    """A boolean column as a numpy array; absent or null (records from before the column existed): False."""
    if col not in df:
        return np.zeros(len(df), dtype=bool)
    return pd.array(df[col].to_numpy(object), dtype="boolean").fillna(False).to_numpy(bool)


def _exact_at_min(obs: pd.DataFrame, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per (fid, eps) group of `order` (sorted by gates within a group): any exact_rounded among the least."""
    flag = _flag(obs, "exact_rounded")[order]
    g = obs["gates"].to_numpy(float)[order]
    at_min = g == np.repeat(g[starts], np.diff(np.append(starts, len(order))))
    return np.logical_or.reduceat(flag & at_min, starts)


# ----------------------------------------------------------------------------------------------------------------
# Per-function fits
# ----------------------------------------------------------------------------------------------------------------

def _fit_one(eps: np.ndarray, cbar: np.ndarray, exact: np.ndarray, gammas) -> tuple[dict, str | None]:
    try:
        return fit_ladder(eps, cbar, gammas, exact_rounded=exact).to_json(), None
    except ValueError as e:
        return {}, str(e)


def _stored_fits(ladders: pa.Table, points: pd.DataFrame, cbar: pd.DataFrame, gammas) -> dict[int, dict]:
    """fid -> the fit stored in a ladder record, where refitting would repeat it exactly: the function's C̄
    points are all that one ladder's own usable rungs (no other record changed or added a point), and the stored
    fit has this FIT_VERSION and the HTMC norms for exactly `gammas`. htmc.rates.ladder fits those same points (and
    their exact_rounded flags) with the same estimator and seed, so the stored fit is the refit, without its cost
    (bootstrap: ms per function). Fits of an older FIT_VERSION (e.g. one `htmc_norm`, saturation guessed from
    plateaus) are refitted."""
    if len(cbar) == 0 or len(ladders) == 0:
        return {}
    src = cbar["source"].to_numpy(object)
    fid = cbar["fid"].to_numpy(np.int64)
    task = cbar["task_key"].to_numpy(object)
    df = pd.DataFrame({"fid": fid, "task": task, "lad": src == "circuit_ladder"})
    g = df.groupby("fid", sort=False)
    one = g["task"].nunique().eq(1) & g["lad"].all()
    n_pts = g.size()
    # usable rungs per ladder record (what htmc.rates.ladder fitted)
    pe, pg = points["eps"].to_numpy(float), points["gates"].to_numpy(float)
    usable = points[(points["source"] == "circuit_ladder") & np.isfinite(pe) & (pe > 0) & np.isfinite(pg) & (pg > 0)]
    per_task = usable.groupby("task_key").size()
    cand = one[one].index
    first_task = g["task"].first()
    want = {f"{float(x):g}" for x in gammas}
    keys = np.asarray(R.column(ladders, "task_key", pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    fit_json = R.column(ladders, "fit_json", pa.string())
    pos = {k: i for i, k in enumerate(keys)}
    out = {}
    for f in cand:
        tk = first_task[f]
        if per_task.get(tk) != n_pts[f] or tk not in pos:
            continue
        try:
            fit = json.loads(fit_json[pos[tk]].as_py() or "{}")
        except (TypeError, ValueError):
            continue
        if (fit.get("version") == FIT_VERSION and all(set(n) == want for n in read_norms(fit))
                and len(fit.get("kept") or []) == n_pts[f] and fit.get("gamma") is not None):
            out[int(f)] = fit
    return out


_FN_COLS = ["function_key", "function", "function_params", "domain", "label", "gamma_theory", "n_records",
            "n_failed", "n_points", "n_used", "n_saturated", "eps_min", "eps_max", "cbar_min", "cbar_max", "gamma",
            "gamma_lo", "gamma_hi", "ci_note", "c", "polylog_a", "polylog_b", "preferred_model", "delta_aic",
            "aic_power", "aic_polylog", "residual_power", "residual_polylog"]
_FN_TAIL = ["local_slopes", "fit_source", "fit_version", "fit_error"]
_FN_TEXT = {"function_key", "function", "function_params", "domain", "label", "ci_note", "preferred_model",
            "local_slopes", "fit_source", "fit_version", "fit_error"}
NORM_KINDS = ("at_rungs", "over_range")   # columns htmc_norm_{kind}_{γ}, see the module docstring


def _norm_cols(gammas) -> list[str]:
    return [f"htmc_norm_{k}_{g:g}" for k in NORM_KINDS for g in gammas]


def fit_functions(cbar: pd.DataFrame, meta: pd.DataFrame, catalogue: pd.DataFrame, gammas=DEFAULT_GAMMAS,
                  stored: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One fit per function over its merged C̄ points. meta: indexed by fid, with gamma_theory, n_ok, n_failed.
    Returns (functions, points: cbar with a `kept` column saying whether the rate fit used the point)."""
    gammas = tuple(float(g) for g in gammas)
    stored = stored or {}
    cbar = cbar.reset_index(drop=True)
    kept_all = np.zeros(len(cbar), dtype=bool)
    fid_all = cbar["fid"].to_numpy(np.int64)
    eps_all, cb_all = cbar["eps"].to_numpy(float), cbar["cbar"].to_numpy(float)
    exact_all = _flag(cbar, "exact_rounded")
    order = np.lexsort((-eps_all, fid_all))          # by function, coarse to fine
    bounds = np.searchsorted(fid_all[order], meta.index.to_numpy(np.int64), side="left"), \
        np.searchsorted(fid_all[order], meta.index.to_numpy(np.int64), side="right")
    rows = []
    cat = {c: catalogue[c].tolist() for c in R.CATALOGUE_COLUMNS}
    for i, (f, gth, n_ok, n_failed) in enumerate(zip(meta.index, meta["gamma_theory"], meta["n_ok"],
                                                    meta["n_failed"])):
        idx = order[bounds[0][i]:bounds[1][i]]
        eps, cb = eps_all[idx], cb_all[idx]
        row = {"function_key": cat["function_key"][f], "function": cat["function"][f],
               "function_params": cat["function_params"][f], "domain": cat["domain"][f], "label": cat["label"][f],
               "gamma_theory": gth, "n_records": int(n_ok),
               "n_failed": int(n_failed), "n_points": len(idx),
               "eps_min": float(eps.min()) if len(eps) else math.nan,
               "eps_max": float(eps.max()) if len(eps) else math.nan,
               "cbar_min": float(cb.min()) if len(cb) else math.nan,
               "cbar_max": float(cb.max()) if len(cb) else math.nan}
        if len(idx) == 0:
            fit, err, source = {}, "no verified circuits", None
        elif int(f) in stored:
            fit, err, source = stored[int(f)], None, "stored"
        else:
            (fit, err), source = _fit_one(eps, cb, exact_all[idx], gammas), "refit"
        if fit.get("kept") is not None:
            kept_all[idx] = np.asarray(fit["kept"], dtype=bool)
        ci = fit.get("gamma_ci") or [None, None]     # None: not meaningful with <= 3 fitted rungs (ci_note)
        poly = fit.get("polylog") or [None, None]
        row.update({
            "gamma": fit.get("gamma"), "gamma_lo": ci[0], "gamma_hi": ci[1], "ci_note": fit.get("ci_note"),
            "c": fit.get("c"), "polylog_a": poly[0], "polylog_b": poly[1],
            "preferred_model": fit.get("preferred_model"), "delta_aic": fit.get("delta_aic"),
            "aic_power": fit.get("aic_power"), "aic_polylog": fit.get("aic_polylog"),
            "residual_power": fit.get("residual_power"), "residual_polylog": fit.get("residual_polylog"),
            "n_used": fit.get("n_used", 0), "n_saturated": (len(idx) - fit["n_used"]) if fit else 0,
            "local_slopes": json.dumps(fit.get("local_slopes")) if fit else None,
            "fit_source": source if fit else None, "fit_version": fit.get("version") if fit else None,
            "fit_error": err})
        row.update(_norm_values(fit, gammas))
        rows.append(row)
    cols = _FN_COLS + _norm_cols(gammas) + _FN_TAIL
    functions = pd.DataFrame(rows, columns=cols)
    for col in cols:
        if col in ("n_records", "n_failed", "n_points", "n_used", "n_saturated"):
            functions[col] = pd.to_numeric(functions[col], errors="coerce").fillna(0).astype(np.int64)
        elif col not in _FN_TEXT:
            functions[col] = pd.to_numeric(functions[col], errors="coerce").astype(float)
    functions.insert(0, "fid", meta.index.to_numpy(np.int64))
    functions = functions.sort_values(["function", "function_key"], kind="stable").reset_index(drop=True)
    return functions, cbar.assign(kept=kept_all)


def _norm_values(fit: dict, gammas) -> dict:
    """htmc_norm_{at_rungs, over_range}_{γ} of one fit (an older fit's single htmc_norm is the at-rungs value)."""
    out = {}
    for kind, norms in zip(NORM_KINDS, read_norms(fit)):
        out.update({f"htmc_norm_{kind}_{g:g}": norms.get(f"{g:g}") for g in gammas})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Nets: C̄ at the achieved error, compiled gates
# ----------------------------------------------------------------------------------------------------------------

def _fit_eval(fit: tuple, err: np.ndarray) -> np.ndarray:
    """The preferred model of a function's fit (preferred, a, b, gamma, c) at eps = err: the power law unless
    polylog is preferred (so also when the choice is inconclusive or was not made)."""
    pm, a, b, g, c = fit
    with np.errstate(all="ignore"):
        if pm == "polylog" and pd.notna(a) and pd.notna(b):
            return a * np.log2(1.0 / err) ** b
        if pd.notna(g) and pd.notna(c):
            return c * (1.0 / err) ** g
    return np.full(len(err), np.nan)


def _groups(ids: np.ndarray) -> dict[int, np.ndarray]:
    """id -> row indices, for the non-negative ids (one sort)."""
    if len(ids) == 0:
        return {}
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    cut = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate(([0], cut))
    return {int(s[a]): chunk for a, chunk in zip(starts, np.split(order, cut)) if s[a] >= 0}


def _per_row(values: list, fid: np.ndarray, missing: str) -> pd.Categorical:
    """values[fid] for every row as a Categorical (cheap for a million rows), `missing` where fid < 0."""
    cats, inv = np.unique(np.asarray([str(v) for v in values] + [missing], dtype=object), return_inverse=True)
    codes = inv[np.where(fid >= 0, fid, len(values))]
    return pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object))


def join_nets(nets: pa.Table, net_fid: np.ndarray, catalogue: pd.DataFrame, functions: pd.DataFrame,
              points: pd.DataFrame) -> pd.DataFrame:
    """One row per ok net: its columns, norms, compiled outcomes, and its function's C̄ at the achieved error.

    Nets are joined to the box-domain ladder of their function (catalogue key with domain 'box')."""
    df = R.frame(nets, ["task_key", "group"] + R.NET_COLS, pattern="norm_")
    df = df[[c for c in df.columns if not c.endswith("_version")]]
    comp = R.extra_values(nets, R.COMPILED_COLS)
    for c in R.COMPILED_COLS:
        df[c] = comp[c].to_numpy()
    n = len(df)
    fid = np.asarray(net_fid, dtype=np.int64)
    df["fid"] = fid
    df["function_key"] = _per_row(catalogue["function_key"].tolist(), fid, "?")
    df["label"] = _per_row(catalogue["label"].tolist(), fid, "?")
    df["achieved_error"] = pd.to_numeric(df["sup_error"], errors="coerce").astype(float)
    cbar_step, cbar_fit = np.full(n, np.nan), np.full(n, np.nan)
    extrap = np.zeros(n, dtype=bool)
    has_fn = np.zeros(n, dtype=bool)
    fits = {}
    for f, pm, a, b, g, c in zip(functions["fid"], functions["preferred_model"], functions["polylog_a"],
                                 functions["polylog_b"], functions["gamma"], functions["c"]):
        fits[int(f)] = (pm, a, b, g, c)
    pts = _groups(points["fid"].to_numpy(np.int64)) if len(points) else {}
    p_eps = points["eps"].to_numpy(float) if len(points) else np.array([])
    p_cb = points["cbar"].to_numpy(float) if len(points) else np.array([])
    err_all = df["achieved_error"].to_numpy(float)
    for f, idx in _groups(fid).items():
        if f not in pts:
            continue
        has_fn[idx] = True
        eps, cb = p_eps[pts[f]], p_cb[pts[f]]
        o = np.argsort(eps)
        eps, cb = eps[o], np.minimum.accumulate(cb[o])  # best circuit verified at some eps_j <= e
        err = err_all[idx]
        j = np.searchsorted(eps, err, side="right") - 1
        ok = (j >= 0) & np.isfinite(err)
        vals = np.full(len(idx), np.nan)
        vals[ok] = cb[j[ok]]
        cbar_step[idx] = vals
        good = np.isfinite(err) & (err > 0)
        if f in fits:
            fitv = np.full(len(idx), np.nan)
            fitv[good] = _fit_eval(fits[f], err[good])
            cbar_fit[idx] = fitv
        extrap[idx] = good & ((err < eps.min()) | (err > eps.max()))
    df["cbar_at_error"] = cbar_step
    df["cbar_fit_at_error"] = cbar_fit
    df["cbar_extrapolated"] = extrap
    df["has_ladder"] = has_fn
    return df


# ----------------------------------------------------------------------------------------------------------------
# Which norm predicts circuit size
# ----------------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------------
# Convexity and phase tables
# ----------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _part_gamma(part_json: str) -> float | None:
    """The theory's gamma of a target given as JSON {"name": family, **params} (None if unknown or none)."""
    try:
        from htmc.targets import make_function
        part = json.loads(part_json)
        g = make_function(part["name"], **{k: v for k, v in part.items() if k != "name"}).gamma_theory
        return None if g is None else float(g)
    except Exception:  # noqa: BLE001  an unknown or plugin family: no theory value
        return None


def convexity_table(functions: pd.DataFrame) -> pd.DataFrame:
    cols = ["function_key", "label", "m", "part_family", "part_gamma_theory", "gamma", "gamma_lo", "gamma_hi",
            "preferred_model", "n_records", "n_points", "n_used"]
    mix = functions[functions["function"] == "mixture"] if len(functions) else functions
    rows = []
    for _, f in mix.iterrows():
        try:
            parts = json.loads(f["function_params"]).get("parts") or []
        except (TypeError, ValueError, AttributeError):
            parts = []
        names = sorted({p.get("name") for p in parts if isinstance(p, dict)})
        pg = [_part_gamma(json.dumps(p, sort_keys=True)) for p in parts if isinstance(p, dict)]
        pg = [g for g in pg if g is not None]
        rows.append({"function_key": f["function_key"], "label": f["label"], "m": len(parts),
                     "part_family": names[0] if len(names) == 1 else "+".join(names),
                     "part_gamma_theory": max(pg) if pg else f["gamma_theory"], "gamma": f["gamma"],
                     "gamma_lo": f["gamma_lo"], "gamma_hi": f["gamma_hi"], "preferred_model": f["preferred_model"],
                     "n_records": f["n_records"], "n_points": f["n_points"], "n_used": f["n_used"]})
    df = pd.DataFrame(rows, columns=cols)
    for c in ("m", "part_gamma_theory", "gamma", "gamma_lo", "gamma_hi", "n_records", "n_points", "n_used"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.sort_values(["part_gamma_theory", "m"], kind="stable").reset_index(drop=True)


def phase_table(functions: pd.DataFrame, family: str = PHASE_DEFAULT[0], x: str = PHASE_DEFAULT[1],
                y: str = PHASE_DEFAULT[2]) -> pd.DataFrame:
    """γ̂ per (x, y) cell of one family: median over the family's other parameters (seeds), with the cell's
    median interval ends, the theory's γ, and how many functions and failed records the cell has."""
    cols = ["family", "x_name", "y_name", "x", "y", "gamma", "gamma_lo", "gamma_hi", "gamma_theory", "n_functions",
            "n_fitted", "n_records", "n_failed"]
    fam = functions[functions["function"] == family] if len(functions) else functions
    if fam.empty:
        return pd.DataFrame({c: [] for c in cols})
    params = [json.loads(p) if isinstance(p, str) else {} for p in fam["function_params"]]
    xs = pd.to_numeric(pd.Series([p.get(x) for p in params], index=fam.index), errors="coerce")
    ys = pd.to_numeric(pd.Series([p.get(y) for p in params], index=fam.index), errors="coerce")
    f = fam.assign(_x=xs, _y=ys).dropna(subset=["_x", "_y"])
    rows = []
    for (xv, yv), g in f.groupby(["_x", "_y"], sort=True):
        fitted = g[g["gamma"].notna()]
        rows.append({"family": family, "x_name": x, "y_name": y, "x": float(xv), "y": float(yv),
                     "gamma": fitted["gamma"].median() if len(fitted) else math.nan,
                     "gamma_lo": fitted["gamma_lo"].median() if len(fitted) else math.nan,
                     "gamma_hi": fitted["gamma_hi"].median() if len(fitted) else math.nan,
                     "gamma_theory": g["gamma_theory"].median(), "n_functions": len(g), "n_fitted": len(fitted),
                     "n_records": int(g["n_records"].sum()), "n_failed": int(g["n_failed"].sum())})
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------------------------------------
# The whole summary
# ----------------------------------------------------------------------------------------------------------------

def _counts(t: pa.Table) -> dict:
    out = {"records": len(t), "by_kind": {}}
    if len(t) == 0:
        return out
    kinds = pc.fill_null(R.column(t, "kind", pa.string()), "?")
    status = pc.fill_null(R.column(t, "status", pa.string()), "?" if "status" in t.column_names else "ok")
    g = pa.table({"kind": kinds, "status": status}).group_by(["kind", "status"]).aggregate([([], "count_all")])
    for k, s, n in zip(*(g.column(c).to_pylist() for c in ("kind", "status", "count_all"))):
        out["by_kind"].setdefault(k, {})[s] = int(n)
    out["by_kind"] = {k: out["by_kind"][k] for k in sorted(out["by_kind"])}
    return out


def _function_meta(t: pa.Table, fid: np.ndarray, circ: np.ndarray, ok: np.ndarray) -> pd.DataFrame:
    """fid -> gamma_theory, n_ok, n_failed over the circuit records (ladders and searches) of each function."""
    sel = np.flatnonzero(circ & (fid >= 0))
    f = fid[sel]
    gth = R.column(t, "gamma_theory", pa.float64()).to_numpy(zero_copy_only=False)[sel] \
        if "gamma_theory" in t.column_names else np.full(len(sel), np.nan)
    df = pd.DataFrame({"fid": f, "ok": ok[sel], "gamma_theory": gth})
    g = df.groupby("fid", sort=True)
    meta = pd.DataFrame({"gamma_theory": g["gamma_theory"].max(), "n_ok": g["ok"].sum().astype(int)})
    meta["n_failed"] = g.size() - meta["n_ok"]
    return meta


def _theory_from_registry(meta: pd.DataFrame, catalogue: pd.DataFrame) -> None:
    """Failed records, and searches written before records carried gamma_theory (issue 13), have none: only for
    those does analysis ask the function registry."""
    for f in meta.index[meta["gamma_theory"].isna()]:
        c = catalogue.iloc[f]
        try:
            params = json.loads(c["function_params"])
        except (TypeError, ValueError):
            continue
        meta.at[f, "gamma_theory"] = _part_gamma(json.dumps({"name": c["function"], **params}, sort_keys=True))


def summarize(records, *, gammas=DEFAULT_GAMMAS, phase=PHASE_DEFAULT, reuse_stored_fits: bool = True) -> Summary:
    """Tidy tables from a sweep's records; never raises on empty or partial input (see Summary.missing).

    reuse_stored_fits: take a ladder record's own fit when refitting would give the same numbers (see
    _stored_fits); False refits every function."""
    tm: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        tm[name] = tm.get(name, 0.0) + now - clock[0]
        clock[0] = now

    t = R.as_table(records)
    counts = _counts(t)
    lap("load")
    fid, catalogue = R.function_ids(t)
    lap("function_ids")
    ok = R.ok_mask(t)
    is_lad, is_srch, is_net = (R.kind_mask(t, k) for k in ("circuit_ladder", "circuit_search", "resnet_train"))
    ladders = R.select(t, is_lad & ok, ["task_key", "points_json", "fit_json"])
    searches = R.select(t, is_srch & ok, ["task_key", "eps", "gates", "method", "optimal_in_format", "max_error",
                                          "bits_in", "bits_out", "exact_rounded"])
    nets = R.select(t, is_net & ok, ["task_key", "group", "extra_json"] + R.NET_COLS + R.COMPILED_COLS,
                    prefixes=("norm_",))
    lad_fid, srch_fid, net_fid = fid[is_lad & ok], fid[is_srch & ok], fid[is_net & ok]
    lap("split")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        meta = _function_meta(t, fid, is_lad | is_srch, ok)
        _theory_from_registry(meta, catalogue)
        obs = circuit_points(ladders, lad_fid, searches, srch_fid)
        cbar = cbar_table(obs)
        lap("points")
        stored = _stored_fits(ladders, obs, cbar, gammas) if reuse_stored_fits else {}
        functions, points = fit_functions(cbar, meta, catalogue, gammas, stored)
        lap("fits")
        net_df = join_nets(nets, net_fid, catalogue, functions, points) if len(nets) else pd.DataFrame()
        lap("nets")
        ranking = rank_norms(net_df)
        lap("norm_ranking")
        convex = convexity_table(functions)
        ph = phase_table(functions, *phase)
    points = points.assign(function_key=_per_row(catalogue["function_key"].tolist(),
                                                  points["fid"].to_numpy(np.int64), "?")) if len(points) else points
    lap("tables")

    failed = _failed_table(t, ok, fid, catalogue)
    missing = missing_notes(counts, n_records=len(t), n_circuits=len(ladders) + len(searches), functions=functions,
                            n_nets=len(nets), nets=net_df, phase=phase, phase_table=ph, convexity=convex)
    lap("missing")
    return Summary(functions=functions, points=points, nets=net_df, norm_ranking=ranking, convexity=convex,
                   phase=ph, counts=counts, missing=missing, failed=failed, timings=tm)


def _failed_table(t: pa.Table, ok: np.ndarray, fid: np.ndarray, catalogue: pd.DataFrame) -> pd.DataFrame:
    cols = ["task_key", "kind", "group", "function", "error"]
    bad = np.flatnonzero(~ok)
    if len(bad) == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    df = R.frame(R.select(t, ~ok, ["task_key", "kind", "group", "error"]), ["task_key", "kind", "group", "error"])
    labels = catalogue["label"].tolist()
    df["function"] = [labels[f] if f >= 0 else None for f in fid[bad]]
    df["error"] = [s.strip().splitlines()[0][:300] if isinstance(s, str) and s.strip() else "(no error text)"
                   for s in df["error"]]
    return df[cols]


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------

def _pandas_leaf(v):
    if v is pd.NA or v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _json_safe(v):
    return json_safe(v, _pandas_leaf)


def table_records(df: pd.DataFrame) -> list[dict]:
    return [_json_safe(r) for r in df.astype(object).where(df.notna(), None).to_dict(orient="records")]


def write_summary(summary: Summary, out_dir, *, title: str = "") -> dict[str, Path]:
    """summary.parquet (the functions table) and summary.json (functions, norm_ranking, convexity, phase,
    counts, missing), plus nets.parquet, points.parquet, norm_ranking.parquet. Returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df, fname in (("summary_parquet", summary.functions, "summary.parquet"),
                            ("nets_parquet", summary.nets, "nets.parquet"),
                            ("points_parquet", summary.points, "points.parquet"),
                            ("norm_ranking_parquet", summary.norm_ranking, "norm_ranking.parquet")):
        p = out / fname
        df.reset_index(drop=True).to_parquet(p, index=False)
        paths[name] = p
    doc = {"analysis_version": ANALYSIS_VERSION, "fit_version": FIT_VERSION, "title": title,
           "counts": summary.counts, "missing": list(summary.missing),
           "tables": {"functions": table_records(summary.functions),
                      "norm_ranking": table_records(summary.norm_ranking),
                      "convexity": table_records(summary.convexity), "phase": table_records(summary.phase)}}
    p = out / "summary.json"
    p.write_text(json.dumps(_json_safe(doc), indent=1, ensure_ascii=False))
    paths["summary_json"] = p
    return paths

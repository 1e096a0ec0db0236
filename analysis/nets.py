"""Trained nets joined with their target's C̄: the verified C̄ at each net's achieved error and the fitted curve
there, next to the net's norms and compiled-circuit outcomes (DESIGN §2.4). No ray/mlflow/boto3."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from . import records as R


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
    df["function_key"] = R.per_row(catalogue["function_key"].tolist(), fid, "?")
    df["label"] = R.per_row(catalogue["label"].tolist(), fid, "?")
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

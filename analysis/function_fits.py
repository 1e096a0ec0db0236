"""One rate fit per target function over its merged C̄ points (htmc.rates.fits.fit_ladder), or the fit a ladder
record stored when refitting would repeat it exactly. No ray/mlflow/boto3."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa

from htmc.rates.fits import fit_ladder, FIT_VERSION, read_norms

from . import records as R

DEFAULT_GAMMAS = (2, 3, 4)


def _fit_one(eps: np.ndarray, cbar: np.ndarray, exact: np.ndarray, gammas) -> tuple[dict, str | None]:
    try:
        return fit_ladder(eps, cbar, gammas, exact_rounded=exact).to_json(), None
    except ValueError as e:
        return {}, str(e)


def stored_fits(ladders: pa.Table, points: pd.DataFrame, cbar: pd.DataFrame, gammas) -> dict[int, dict]:
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
NORM_KINDS = ("at_rungs", "over_range")   # columns htmc_norm_{kind}_{γ}, see analysis.aggregate


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
    exact_all = R.bool_column(cbar, "exact_rounded")
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
        row.update(_fit_values(fit, len(idx), source, err))
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


def _fit_values(fit: dict, n_points: int, source: str | None, err: str | None) -> dict:
    """The functions table's fit columns of one function's fit ({} when there is none: err says why)."""
    ci = fit.get("gamma_ci") or [None, None]     # None: not meaningful with <= 3 fitted rungs (ci_note)
    poly = fit.get("polylog") or [None, None]
    return {
        "gamma": fit.get("gamma"), "gamma_lo": ci[0], "gamma_hi": ci[1], "ci_note": fit.get("ci_note"),
        "c": fit.get("c"), "polylog_a": poly[0], "polylog_b": poly[1],
        "preferred_model": fit.get("preferred_model"), "delta_aic": fit.get("delta_aic"),
        "aic_power": fit.get("aic_power"), "aic_polylog": fit.get("aic_polylog"),
        "residual_power": fit.get("residual_power"), "residual_polylog": fit.get("residual_polylog"),
        "n_used": fit.get("n_used", 0), "n_saturated": (n_points - fit["n_used"]) if fit else 0,
        "local_slopes": json.dumps(fit.get("local_slopes")) if fit else None,
        "fit_source": source if fit else None, "fit_version": fit.get("version") if fit else None,
        "fit_error": err}


def _norm_values(fit: dict, gammas) -> dict:
    """htmc_norm_{at_rungs, over_range}_{γ} of one fit (an older fit's single htmc_norm is the at-rungs value)."""
    out = {}
    for kind, norms in zip(NORM_KINDS, read_norms(fit)):
        out.update({f"htmc_norm_{kind}_{g:g}": norms.get(f"{g:g}") for g in gammas})
    return out

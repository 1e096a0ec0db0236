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

Each table has its own module: analysis.cbar (points), analysis.function_fits (functions), analysis.nets,
analysis.norm_ranking and analysis.family_tables (convexity, phase); analysis.missing writes the `missing` notes.
This module runs them in order (summarize) and writes the result (write_summary).
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from htmc.rates.fits import FIT_VERSION, json_safe

from . import records as R
from .cbar import cbar_table, circuit_points
from .family_tables import PHASE_DEFAULT, convexity_table, phase_table, theory_gamma
from .function_fits import DEFAULT_GAMMAS, fit_functions, stored_fits
from .missing import missing_notes
from .nets import join_nets
from .norm_ranking import rank_norms
from . import convexity as CX
from . import sandwich as S

ANALYSIS_VERSION = "1"


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
    compiled: pd.DataFrame = field(default_factory=pd.DataFrame)       # analysis.sandwich.compiled_points
    sandwich: pd.DataFrame = field(default_factory=pd.DataFrame)       # per (function, rung): C̄, Ḡ, R̄_ν
    resnet_phase: pd.DataFrame = field(default_factory=pd.DataFrame)   # per function: γ̂, ρ̂_ν, exponents
    convexity_slopes: dict = field(default_factory=dict)               # analysis.convexity's K̂ slopes
    walsh_ladders: object = None                                       # their walsh_mixture ladder records


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
        meta.at[f, "gamma_theory"] = theory_gamma(json.dumps({"name": c["function"], **params}, sort_keys=True))


def summarize(records, *, gammas=DEFAULT_GAMMAS, phase=PHASE_DEFAULT, reuse_stored_fits: bool = True) -> Summary:
    """Tidy tables from a sweep's records; never raises on empty or partial input (see Summary.missing).

    reuse_stored_fits: take a ladder record's own fit when refitting would give the same numbers (see
    analysis.function_fits.stored_fits); False refits every function."""
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
    is_lad, is_srch, is_net, is_comp, is_fit = (R.kind_mask(t, k) for k in (
        "circuit_ladder", "circuit_search", "resnet_train", "resnet_compile", "resnet_fit"))
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
        stored = stored_fits(ladders, obs, cbar, gammas) if reuse_stored_fits else {}
        functions, points = fit_functions(cbar, meta, catalogue, gammas, stored)
        lap("fits")
        exp = _experiments(t, (is_comp & ok, is_fit & ok), is_lad & ok, fid, points, functions, catalogue)
        lap("experiments")
        net_df = join_nets(nets, net_fid, catalogue, functions, points) if len(nets) else pd.DataFrame()
        net_df = S.fill_compiled(net_df, exp["compiled"])
        lap("nets")
        ranking = rank_norms(net_df)
        lap("norm_ranking")
        convex = convexity_table(functions)
        ph = phase_table(functions, *phase)
    points = points.assign(function_key=R.per_row(catalogue["function_key"].tolist(),
                                                  points["fid"].to_numpy(np.int64), "?")) if len(points) else points
    lap("tables")

    failed = _failed_table(t, ok, fid, catalogue)
    missing = missing_notes(counts, n_records=len(t), n_circuits=len(ladders) + len(searches), functions=functions,
                            n_nets=len(nets), nets=net_df, phase=phase, phase_table=ph, convexity=convex,
                            resnet_phase=exp["resnet_phase"])
    lap("missing")
    return Summary(functions=functions, points=points, nets=net_df, norm_ranking=ranking, convexity=convex,
                   phase=ph, counts=counts, missing=missing, failed=failed, timings=tm, **exp)


def _experiments(t: pa.Table, comp: tuple[np.ndarray, np.ndarray], lad: np.ndarray, fid: np.ndarray,
                 points: pd.DataFrame, functions: pd.DataFrame, catalogue: pd.DataFrame) -> dict:
    """The Summary fields of the sandwich and the convexity experiments (DESIGN §2.6); comp: the masks of the ok
    resnet_compile and resnet_fit records."""
    compiled, sand, rphase = _sandwich(t, comp, fid, points, functions, catalogue)
    walsh = _walsh_rows(t, lad)
    return {"compiled": compiled, "sandwich": sand, "resnet_phase": rphase, "walsh_ladders": walsh,
            "convexity_slopes": CX.convexity_slopes(walsh) if len(walsh) else {}}


FIT_COLS = ["task_key", "eps", "gates", "verified", "max_error", "width", "seed", "fit_seconds", "k"]


def _sandwich(t: pa.Table, masks: tuple[np.ndarray, np.ndarray], fid: np.ndarray, points: pd.DataFrame,
              functions: pd.DataFrame, catalogue: pd.DataFrame):
    """(compiled points, sandwich table, resnet phase table) of the ok resnet_compile and resnet_fit records
    (analysis.sandwich)."""
    comp_m, fit_m = masks
    if not (comp_m.any() or fit_m.any()):
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    cols = ["task_key", "train_key", "points_json", "width", "lam", "seed"]
    comp = R.frame(R.select(t, comp_m, cols, prefixes=("norm_",)), cols, pattern="norm_")
    fits = R.frame(R.select(t, fit_m, FIT_COLS, prefixes=("norm_",)), FIT_COLS, pattern="norm_")
    cpts = S.with_cbar_ratio(S.compiled_points(comp, fid[comp_m], fits, fid[fit_m]), points)
    sand = S.sandwich_table(cpts, points)
    labels = catalogue["label"].tolist()
    sand.insert(1, "function", [labels[f] for f in sand["fid"]])
    return cpts, sand, S.resnet_phase(sand, functions)


def _walsh_rows(t: pa.Table, mask: np.ndarray) -> pa.Table:
    """The ok walsh_mixture ladder records, the input of analysis.convexity (experiment 3)."""
    rows = R.select(t, mask, ["kind", "status", "function", "params_json", "points_json"])
    if not len(rows) or "function" not in rows.column_names:
        return rows.slice(0, 0)
    return rows.filter(pc.fill_null(pc.equal(rows.column("function"), CX.FAMILY), False))


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


def contract(summary: Summary) -> dict:
    """The keys of summary.json that bars and users read (issue 14 D, issue 21): sandwich, resnet_phase,
    convexity, coverage (per function: rungs of its circuit ladder with a net within ε, over its rungs)."""
    if len(summary.sandwich):
        sand, phase = S.sandwich_contract(summary.sandwich, summary.resnet_phase)
    else:
        sand, phase = {"points": [], "frac_within_square": None, "n_points_with_both": 0,
                       "frac_within_square_minnorm": {}}, []
    conv = summary.convexity_slopes or {"slopes": []}
    cov = {r["function"]: r["coverage"] for r in phase}
    return {"sandwich": sand, "resnet_phase": phase, "convexity": conv, "coverage": cov}


def write_summary(summary: Summary, out_dir, *, title: str = "") -> dict[str, Path]:
    """summary.parquet (the functions table) and summary.json (functions, norm_ranking, convexity, phase,
    counts, missing), plus nets.parquet, points.parquet, norm_ranking.parquet. Returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df, fname in (("summary_parquet", summary.functions, "summary.parquet"),
                            ("nets_parquet", summary.nets, "nets.parquet"),
                            ("points_parquet", summary.points, "points.parquet"),
                            ("norm_ranking_parquet", summary.norm_ranking, "norm_ranking.parquet"),
                            ("compiled_parquet", summary.compiled, "compiled.parquet"),
                            ("sandwich_parquet", summary.sandwich, "sandwich.parquet")):
        p = out / fname
        df.reset_index(drop=True).to_parquet(p, index=False)
        paths[name] = p
    doc = {"analysis_version": ANALYSIS_VERSION, "fit_version": FIT_VERSION, "title": title,
           "counts": summary.counts, "missing": list(summary.missing),
           "tables": {"functions": table_records(summary.functions),
                      "norm_ranking": table_records(summary.norm_ranking),
                      "convexity": table_records(summary.convexity), "phase": table_records(summary.phase),
                      "sandwich": table_records(summary.sandwich)}}
    doc.update(contract(summary))
    p = out / "summary.json"
    p.write_text(json.dumps(_json_safe(doc), indent=1, ensure_ascii=False))
    paths["summary_json"] = p
    return paths

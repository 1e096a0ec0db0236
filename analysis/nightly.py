"""A night's summary and the regression report against the previous night (issue 7). No ray/mlflow/boto3.

A night's summary is a small JSON document: per function the fitted γ̂ with its interval, per (task key, method,
ε) the gate count, per task key its status and wall time, and the night's costs. Values of the keys re-run
tonight as replicates replace the stored ones, so that a replicate that got worse shows up as a regression.

    cur = night_summary(records, summary.functions, sweep="demo", date="2026-11-27", replicates=rep_records)
    regressions = compare_nights(prev, cur)            # [] when nothing regressed
"""
from __future__ import annotations

import html
import json
import math

import pandas as pd

NIGHT_VERSION = "1"
# What compare_nights flags (issue 7), in report order.
KINDS = {"gamma_moved": "γ̂ moved outside the previous night's interval",
         "gates_worse": "more gates for the same task key, method and ε",
         "new_failure": "a task that was not failed before failed",
         "slower": "a task became much slower"}


def _frame(records) -> pd.DataFrame:
    if records is None:
        return pd.DataFrame()
    return records.to_pandas() if hasattr(records, "to_pandas") else pd.DataFrame(records)


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _gates(df: pd.DataFrame) -> dict[str, int]:
    """'task_key|method|eps' -> gates, from ok circuit_search records and the points of ok ladders."""
    out: dict[str, int] = {}
    if df.empty or "status" not in df.columns:
        return out
    ok = df[df["status"] == "ok"]
    kinds = ok["kind"] if "kind" in ok.columns else pd.Series("", index=ok.index)
    for _, r in ok[kinds == "circuit_search"].iterrows():
        if _num(r.get("gates")) is not None:
            out[f"{r['task_key']}|{r.get('method')}|{float(r['eps']):g}"] = int(r["gates"])
    for _, r in ok[kinds == "circuit_ladder"].iterrows():
        for p in json.loads(r.get("points_json") or "[]"):
            if p.get("gates") is not None and p.get("verified", True):
                out[f"{r['task_key']}|{p.get('method')}|{float(p['eps']):g}"] = int(p["gates"])
    return out


def _per_key(df: pd.DataFrame, column: str) -> dict:
    if df.empty or column not in df.columns:
        return {}
    vals = df[column].tolist()
    if column == "wall_s":
        vals = [_num(v) for v in vals]
    return dict(zip(df["task_key"].tolist(), vals))


def night_summary(records, functions: pd.DataFrame | None, *, sweep: str, date: str, replicates=None,
                  costs: dict | None = None, meta: dict | None = None) -> dict:
    """The night's JSON-ready summary. `records`: the sweep's records (ok and failed); `functions`: the
    analysis summary's per-function table; `replicates`: tonight's replicate records (same keys)."""
    df, rep = _frame(records), _frame(replicates)
    fns = {}
    if functions is not None and len(functions):
        for _, r in functions.iterrows():
            fns[str(r["function_key"])] = {"label": str(r.get("label", r["function_key"])),
                                           "gamma": _num(r.get("gamma")), "gamma_lo": _num(r.get("gamma_lo")),
                                           "gamma_hi": _num(r.get("gamma_hi"))}
    gates, status, wall = _gates(df), _per_key(df, "status"), _per_key(df, "wall_s")
    gates.update(_gates(rep))
    status.update(_per_key(rep, "status"))
    wall.update(_per_key(rep, "wall_s"))
    return {"version": NIGHT_VERSION, "sweep": sweep, "date": date, "functions": fns, "gates": gates,
            "status": status, "wall_s": wall, "replicated": sorted(_per_key(rep, "status")),
            "costs": costs or {}, "meta": meta or {}}


def compare_nights(prev: dict | None, cur: dict, *, slower_factor: float = 3.0,
                   slower_min_s: float = 1.0) -> list[dict]:
    """Regressions of `cur` against `prev` (issue 7). Each: {kind, key, what, before, after, message}."""
    if not prev:
        return []
    out = []

    def flag(kind, key, what, before, after, message):
        out.append({"kind": kind, "key": key, "what": what, "before": before, "after": after, "message": message})

    for fk, f in sorted(cur.get("functions", {}).items()):
        p = prev.get("functions", {}).get(fk)
        g = f.get("gamma")
        if not p or g is None or p.get("gamma_lo") is None or p.get("gamma_hi") is None:
            continue
        if not p["gamma_lo"] <= g <= p["gamma_hi"]:
            flag("gamma_moved", fk, f.get("label", fk), [p["gamma_lo"], p["gamma_hi"]], g,
                 f"γ̂ of {f.get('label', fk)} is {g:.3f}, outside last night's interval "
                 f"[{p['gamma_lo']:.3f}, {p['gamma_hi']:.3f}]")
    for k, n in sorted(cur.get("gates", {}).items()):
        before = prev.get("gates", {}).get(k)
        if before is not None and n > before:
            key, method, eps = k.split("|")
            flag("gates_worse", key, f"{method} at ε={eps}", before, n,
                 f"task {key}: {method} at ε={eps} needs {n} gates, last night {before}")
    for key, st in sorted(cur.get("status", {}).items()):
        before = prev.get("status", {}).get(key)
        if st == "failed" and before != "failed":
            flag("new_failure", key, "status", before, st,
                 f"task {key} failed (last night: {before or 'no record'})")
    for key, w in sorted(cur.get("wall_s", {}).items()):
        before = prev.get("wall_s", {}).get(key)
        if w is not None and before and w > slower_factor * before and w - before > slower_min_s:
            flag("slower", key, "wall_s", before, w,
                 f"task {key} took {w:.2f} s, {w / before:.1f}x last night's {before:.2f} s")
    order = list(KINDS)
    return sorted(out, key=lambda r: (order.index(r["kind"]), r["key"]))


def regression_html(regressions: list[dict], prev_date: str | None, date: str) -> str:
    """The report.html section of a night: what was compared and every regression."""
    e = html.escape
    if prev_date is None:
        return f"<p>Night {e(date)}: no earlier night's summary in the store, so nothing to compare against.</p>"
    head = (f"<p>Night {e(date)} against {e(prev_date)}: flags "
            + "; ".join(e(v) for v in KINDS.values()) + ".</p>")
    if not regressions:
        return head + "<p>No regressions.</p>"
    rows = "".join(f"<tr><td class='l'>{e(r['kind'])}</td><td class='l'>{e(r['key'])}</td>"
                   f"<td class='l'>{e(r['message'])}</td></tr>" for r in regressions)
    return (head + f"<div class='missing'><b>{len(regressions)} regression(s)</b></div>"
            f"<table><tr><th class='l'>kind</th><th class='l'>key</th><th class='l'>what</th></tr>{rows}</table>")

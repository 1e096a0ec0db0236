"""The sweep report: tidy summary tables, the five plots and a static report.html (issue 6). No ray/mlflow/boto3.

    from analysis.report import build_report
    res = build_report(records, "out/", title="demo")   # records: pyarrow Table or pandas DataFrame
    res.paths["report"]        # out/report.html; res.paths also names every PNG and summary file
    res.missing                # what the sweep could not show, and why ([] when nothing is missing)

build_report never raises on empty, partial or odd input: whatever cannot be computed or drawn is listed in
`missing` and in the report, next to the plot it affects. cluster/analyze.py (the path of `htmc analyze`, the
nightly run and the demo) loads the records through cluster/'s store, calls build_report, and logs `res.paths` as
artifacts of the sweep's MLflow parent run.
"""
from __future__ import annotations

import html
import math
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from htmc.rates.fits import FIT_VERSION

from . import aggregate as A
from . import net_plots as NP
from . import plots as P
from . import sandwich_plots as SP
from . import convexity_plots as CP
from .costs import cost_totals, costs_html
from .family_tables import PHASE_DEFAULT
from .figures import PlotResult
from .function_fits import DEFAULT_GAMMAS
from .missing import rate_notes

PLOT_FILES = {"ladders": "ladders.png", "phase": "phase.png", "sandwich_minnorm": "sandwich_minnorm.png",
              "sandwich": "sandwich.png",
              "resnet_phase": "resnet_phase.png", "norms_vs_cbar": "norms_vs_cbar.png",
              "norm_ranking": "norm_ranking.png", "pareto": "pareto.png",
              "convexity_slopes": "convexity_slopes.png", "convexity_cbar": "convexity_cbar.png",
              "convexity": "convexity.png"}
PLOT_TITLES = {"ladders": "1. Circuit size against 1/ε per function",
               "phase": "2. Phase diagram of γ̂ over a family",
               "sandwich_minnorm": "3. The sandwich: the min-norm net's own circuit G*_ν against C̄ (experiment 1)",
               "sandwich": "3b. For comparison: Ḡ, the best over all nets, against C̄",
               "resnet_phase": "4. HTMC-vs-ResNet-norm phase diagram: ρ̂_ν against γ̂ (experiment 2)",
               "norms_vs_cbar": "5. Smallest norm R*_ν against C̄ along ε",
               "norm_ranking": "6. Circuit size against ResNet norms, per net",
               "pareto": "7. ResNet norm against achieved error (Pareto frontier over λ)",
               "convexity_slopes": "8. Convexity with a threshold: slope of log K̂ against log m, per γ (experiment 3)",
               "convexity_cbar": "9. Walsh mixtures: C̄ against min(m, ε^-2)",
               "convexity": "10. Rate of mixtures against the number of parts"}


@dataclass
class ReportResult:
    paths: dict[str, Path]                 # "report", "summary_json", "summary_parquet", ..., and one per plot drawn
    summary: A.Summary
    missing: list[str]
    plots: dict[str, PlotResult] = field(default_factory=dict)
    seconds: float = 0.0
    mlflow_run_id: str | None = None       # set by cluster/analyze.py once it logged the files

    @property
    def report(self) -> Path:
        return self.paths["report"]


def _empty_summary(msg: str) -> A.Summary:
    e = pd.DataFrame()
    return A.Summary(functions=pd.DataFrame(columns=["function_key", "function", "n_points", "gamma"]), points=e,
                     nets=e, norm_ranking=pd.DataFrame(columns=["size", "norm"]), convexity=pd.DataFrame(),
                     phase=pd.DataFrame(), counts={"records": 0, "by_kind": {}}, missing=[msg])


def summarize_records(records, *, gammas=DEFAULT_GAMMAS, phase=PHASE_DEFAULT) -> A.Summary:
    """analysis.aggregate.summarize; when it fails, an empty summary that says why (a report is still written)."""
    try:
        return A.summarize(records, gammas=gammas, phase=phase)
    except Exception as e:  # noqa: BLE001  the report must still say what happened
        traceback.print_exc()
        return _empty_summary(f"the summary could not be computed: {type(e).__name__}: {e}")


def build_report(records, out_dir, title: str = "htmc sweep", *, gammas=DEFAULT_GAMMAS,
                 phase=PHASE_DEFAULT, pareto_norm: str | None = None, prices: dict | None = None,
                 sections=(), summary: A.Summary | None = None) -> ReportResult:
    """Summary tables (Parquet + JSON), the five PNG plots and report.html in out_dir. Never raises on the
    records' content: failures of one part are reported as missing and the rest is still written.

    prices: {"cpu_hour": $, "gpu_hour": $} for the cost section (a spec's `costs`); sections: extra report
    sections shown first, [(id, title, html)] (the nightly report's regressions); summary: summarize_records of
    the records when the caller computed it already (the nightly run compares it with the previous night)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if summary is None:
        summary = summarize_records(records, gammas=gammas, phase=phase)
    missing = list(summary.missing)
    paths: dict[str, Path] = {}
    try:
        paths.update(A.write_summary(summary, out, title=title))
    except Exception as e:  # noqa: BLE001
        missing.append(f"the summary tables could not be written: {type(e).__name__}: {e}")

    jobs = {
        "ladders": lambda p: P.plot_ladders(summary.functions, summary.points, p),
        "phase": lambda p: P.plot_phase(summary.phase, p),
        "sandwich_minnorm": lambda p: SP.plot_minnorm_points(summary.sandwich, summary.resnet_phase, p),
        "sandwich": lambda p: SP.plot_sandwich_points(summary.sandwich, p),
        "resnet_phase": lambda p: SP.plot_resnet_phase(summary.resnet_phase, p),
        "norms_vs_cbar": lambda p: SP.plot_norms_vs_cbar(summary.sandwich, p),
        "norm_ranking": lambda p: NP.plot_sandwich(summary.nets, summary.norm_ranking, p),
        "convexity_slopes": lambda p: CP.plot_convexity_slopes(summary.convexity_slopes or {}, p),
        "convexity_cbar": lambda p: CP.plot_sizes_vs_budget(summary.walsh_ladders, p) if summary.walsh_ladders
        is not None and len(summary.walsh_ladders) else PlotResult("convexity_cbar", None, 0, 0, "",
                                                                    "no walsh_mixture ladders: nothing to draw"),
        "pareto": lambda p: NP.plot_pareto(summary.nets, p, norm=pareto_norm),
        "convexity": lambda p: P.plot_convexity(summary.convexity, p),
    }
    plots: dict[str, PlotResult] = {}
    for name, job in jobs.items():
        try:
            res = job(out / PLOT_FILES[name])
        except Exception as e:  # noqa: BLE001  one broken plot must not cost the others
            traceback.print_exc()
            res = PlotResult(name, None, 0, 0, "", f"drawing failed: {type(e).__name__}: {e}")
        plots[name] = res
        if res.path is not None:
            paths[name] = res.path
        else:
            missing.append(f"plot {PLOT_FILES[name]} ('{PLOT_TITLES[name].split('. ', 1)[1]}') not drawn: {res.note}")
    _note_missing(paths.get("summary_json"), missing)
    extra = list(sections or [])
    try:
        extra.append(("costs", "Costs", costs_html(cost_totals(records, **(prices or {})))))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        missing.append(f"a report section could not be computed: {type(e).__name__}: {e}")
    report = out / "report.html"
    report.write_text(render_html(title, summary, plots, missing, paths, out, extra), encoding="utf-8")
    paths["report"] = report
    return ReportResult(paths=paths, summary=summary, missing=missing, plots=plots,
                        seconds=time.perf_counter() - t0)


def _sandwich_section(summary: A.Summary) -> str:
    """Per (function, rung): C̄, G*_ν and G*_ν/C̄ per norm, Ḡ (best over all nets), the table route, nets within ε
    and R*_ν; then per function and norm ρ̂, the slope of log G* on log C̄ with its interval, and the coverage."""
    sand = summary.sandwich.assign(ratio=summary.sandwich["gates_min"] / summary.sandwich["cbar"])
    norms = [c[len("norm_min_"):] for c in sand.columns if c.startswith("norm_min_")]
    for n in norms:
        sand[f"ratio_{n}"] = sand.get(f"gates_minnorm_{n}") / sand["cbar"]
    cols = ["function", "eps", "cbar"] + [c for n in norms for c in (f"gates_minnorm_{n}", f"ratio_{n}")] + \
        ["gates_min", "ratio", "gates_table_min", "n_nets"] + [f"norm_min_{n}" for n in norms]
    heads = ["function", "ε", "C̄"] + [h for n in norms for h in (f"G* {n}", f"G* {n} / C̄")] + \
        ["Ḡ (best over all nets)", "Ḡ / C̄", "table route (C̄ candidate)", "nets within ε"] + \
        [f"R* {n}" for n in norms]
    html_parts = ["<h3>Per function and rung</h3><p>G*_ν: the gates of the min-ν net's own circuit; Ḡ: the fewest "
                  "gates over all nets, for comparison; the table route (ABC from a net's output table) is a "
                  "circuit-search candidate, not a net's circuit.</p>", _table(sand, cols, heads)]
    ph = summary.resnet_phase
    if len(ph):
        rows = pd.DataFrame([_phase_row(r, nu, v) for _, r in ph.iterrows() for nu, v in r["rho"].items()])
        html_parts += ["<h3>Per function and norm: ρ̂ (R*_ν ∝ ε^-ρ), the slope of log G*_ν on log C̄, coverage"
                       "</h3><p>Intervals: the spread of the fit, none with ≤ 3 points (not meaningful). Coverage: "
                       "rungs of the function's circuit ladder with a net within ε, over its rungs.</p>",
                       _table(rows, ["function", "gamma", "gamma_range", "norm", "rho", "rho_ci", "g_slope", "g_ci",
                                     "exponent", "rungs", "coverage"],
                              ["function", "γ̂", "γ̂ fitted on ε in", "norm", "ρ̂", "ρ̂ interval",
                               "slope log G* / log C̄", "its interval", "slope log R* / log C̄", "rungs with nets",
                               "coverage"])]
    return "".join(html_parts)


def _ci(lo, hi, note: str = "not meaningful (≤ 3 points)") -> str:
    return note if lo is None or hi is None else f"[{lo:.3g}, {hi:.3g}]"


def _phase_row(r, nu: str, v: list) -> dict:
    ge = (r.get("gates_exponent") or {}).get(nu) or {}
    cov = r.get("coverage") or {}
    rng = r.get("gamma_range")
    return {"function": r["function"], "gamma": r.get("gamma"), "norm": nu, "rho": v[0],
            "gamma_range": f"[{rng[0]:.3g}, {rng[1]:.3g}]" if rng and None not in rng else "—",
            "rho_ci": _ci(v[1], v[2]) if v[0] is not None else "—", "g_slope": ge.get("slope"),
            "g_ci": _ci(ge.get("lo"), ge.get("hi")) if ge.get("slope") is not None else "—",
            "exponent": r["sandwich_exponent"].get(nu), "rungs": r["rungs_with_nets"],
            "coverage": f"{cov.get('rungs_with_net')}/{cov.get('rungs')}" if cov else "—"}


def _note_missing(summary_json: Path | None, missing: list[str]) -> None:
    """summary.json's `missing` as the report's: with the plots that could not be drawn, and why."""
    if summary_json is None:
        return
    import json
    doc = json.loads(summary_json.read_text())
    doc["missing"] = list(missing)
    summary_json.write_text(json.dumps(doc, indent=1, ensure_ascii=False))


# ----------------------------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0} th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right} th{background:#f3f3f3} td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #eee} .meta{color:#666;font-size:.9em} .missing{background:#fff4e5;
border-left:4px solid #f0a020;padding:.5em 1em} .none{color:#a05000;font-style:italic}
.count{color:#333;font-size:.9em;background:#f6f6f6;padding:.3em .6em;display:inline-block}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return _e(v)


def _table(df: pd.DataFrame, cols: list[str], headers: list[str] | None = None, max_rows: int = 100) -> str:
    cols = [c for c in cols if c in df.columns]
    if df.empty or not cols:
        return "<p class='none'>(empty)</p>"
    headers = headers or cols
    left = {c for c in cols if df[c].dtype == object}
    head = "".join(f"<th class='{'l' if c in left else ''}'>{_e(h)}</th>" for c, h in zip(cols, headers))
    body = []
    for _, r in df.head(max_rows).iterrows():
        body.append("<tr>" + "".join(f"<td class='{'l' if c in left else ''}'>{_cell(r[c])}</td>" for c in cols)
                    + "</tr>")
    more = f"<p class='meta'>showing {max_rows} of {len(df)} rows; all are in the Parquet files</p>" \
        if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


FITS_TEXT = (
    "One row per target function: C̄(f, ε) merged over every ok ladder rung and search, refit with "
    "htmc.rates.fits.fit_ladder (DESIGN §2.3). <b>Interval</b>: the ladder is fixed, not sampled, so the residuals are "
    "model misfit, not noise; the interval describes the spread of the fit (how well one power law describes "
    "these rungs), not sampling error, and with ≤3 fitted rungs it is not meaningful and shown as n/a. "
    "<b>ΔAIC</b> = AIC(polylog) − AIC(power): negative favours polylog; the choice is inconclusive when "
    "|ΔAIC| < 2, and absent when the polylog model cannot be fitted (some ε ≥ 1) or there are only 2 points. "
    "<b>Fitted</b> excludes only rungs whose circuit is the exactly rounded one (grid domain), after the first "
    "of their plateau. <b>HTMC norms</b>, both upper estimates (C̄ ≥ C): “at rungs” is max_j ε_j C̄_j^{1/γ}, "
    "the value at the rungs only; “over range” is max_j ε_j min_{i≥j+1} C̄_i^{1/γ}, which bounds ε C(f, ε)^{1/γ} "
    "for every ε in [ε min, ε max], between the rungs too.")


def _with_interval(df: pd.DataFrame) -> pd.DataFrame:
    """A text column gamma_interval: "[lo, hi]", "n/a (≤3 rungs)" for a fit without one, "—" without a fit."""
    if df.empty or "gamma" not in df:
        return df

    def one(g, lo, hi) -> str:
        if pd.isna(g):
            return "—"
        return "n/a (≤3 rungs)" if pd.isna(lo) or pd.isna(hi) else f"[{lo:.4g}, {hi:.4g}]"
    return df.assign(gamma_interval=[one(*r) for r in zip(df["gamma"], df["gamma_lo"], df["gamma_hi"])])


def _functions_section(functions: pd.DataFrame) -> str:
    norm_cols = [c for c in functions.columns if c.startswith(("htmc_norm_at_rungs_", "htmc_norm_over_range_"))]
    heads = [f"‖f‖ H^{c.rsplit('_', 1)[1]} {'at rungs' if '_at_rungs_' in c else 'over range'}" for c in norm_cols]
    table = _table(_with_interval(functions),
                   ["label", "domain", "n_records", "n_failed", "n_points", "n_used", "eps_min", "eps_max", "gamma",
                    "gamma_interval", "gamma_theory", "preferred_model", "delta_aic"] + norm_cols + ["fit_error"],
                   ["function", "domain", "records", "failed", "points", "fitted", "ε min", "ε max", "γ̂",
                    "interval (spread of fit)", "theory γ", "preferred", "ΔAIC"] + heads + ["fit error"])
    notes = rate_notes(functions)
    pre = ("<div class='missing'><p>Rates off the theory (more than 0.3 from it; issue 21 E):</p><ul>"
           + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></div>") if notes else ""
    return f"<h2 id='functions'>Per-function fits</h2><p>{FITS_TEXT}</p>{pre}{table}"


def render_html(title: str, summary: A.Summary, plots: dict, missing: list[str], paths: dict, out: Path,
                sections: list[tuple[str, str, str]] = ()) -> str:
    c = summary.counts
    kinds_rows = "".join(
        f"<tr><td class='l'>{_e(k)}</td><td>{sum(v.values())}</td><td>{v.get('ok', 0)}</td>"
        f"<td>{sum(n for s, n in v.items() if s != 'ok')}</td></tr>" for k, v in sorted(c.get("by_kind", {}).items()))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
             f"</head><body><h1>{_e(title)}</h1>",
             f"<p class='meta'>Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by analysis/ "
             f"(version {A.ANALYSIS_VERSION}, fit version {FIT_VERSION}) from {c.get('records', 0)} records.</p>",
             "<h2>Records</h2>",
             (f"<table><tr><th class='l'>kind</th><th>records</th><th>ok</th><th>not ok</th></tr>{kinds_rows}</table>"
              if kinds_rows else "<p class='none'>No records.</p>")]
    if missing:
        parts.append("<h2>What is missing</h2><div class='missing'><ul>"
                     + "".join(f"<li>{_e(m)}</li>" for m in missing) + "</ul></div>")
    else:
        parts.append("<p class='meta'>Nothing is missing: every plot and table below has data.</p>")
    for sid, stitle, body in sections:
        parts.append(f"<h2 id='{_e(sid)}'>{_e(stitle)}</h2>{body}")
    for name in PLOT_FILES:
        r = plots.get(name)
        parts.append(f"<h2 id='{name}'>{_e(PLOT_TITLES[name])}</h2>")
        if r is None:
            continue
        if r.text:
            parts.append(f"<p>{_e(r.text)}</p>")
        if r.path is not None:
            parts.append(f"<p class='count'>Built from {r.n_records} records; {r.n_points} data points drawn."
                         + (f" {_e(r.note)}." if r.note else "") + "</p>")
            parts.append(f"<p><a href='{_e(_rel(r.path, out))}'><img src='{_e(_rel(r.path, out))}' "
                         f"alt='{_e(PLOT_TITLES[name])}'></a></p>")
        else:
            parts.append(f"<p class='none'>Not drawn: {_e(r.note)}.</p>")
        if name == "sandwich_minnorm" and len(summary.sandwich):
            parts.append(_sandwich_section(summary))
        if name == "norm_ranking":
            parts.append("<h3>Which ResNet norm predicts circuit size</h3><p>Spearman rank correlation between each "
                         "norm and circuit size over the trained nets (95% interval: bootstrap over nets, or Fisher z "
                         "for very many nets), and the log-log slope of size against norm. Rank 1 predicts best."
                         "</p>")
            parts.append(_table(summary.norm_ranking, ["size", "rank", "norm", "n_nets", "spearman", "spearman_lo",
                                                       "spearman_hi", "ci_method", "slope", "slope_lo", "slope_hi"],
                                ["circuit size", "rank", "norm", "nets", "ρ", "ρ low", "ρ high", "interval", "slope",
                                 "slope low", "slope high"]))
        if name == "convexity" and not summary.convexity.empty:
            parts.append(_table(_with_interval(summary.convexity), ["label", "m", "part_gamma_theory", "gamma",
                                                                    "gamma_interval", "preferred_model", "n_used"],
                                ["mixture", "m", "parts' γ (theory)", "γ̂", "interval (spread of fit)", "preferred",
                                 "points"]))
    parts.append(_functions_section(summary.functions))
    if not summary.failed.empty:
        parts.append("<h2 id='failed'>Failed tasks</h2>")
        parts.append(_table(summary.failed, ["task_key", "kind", "group", "function", "error"], max_rows=50))
    files = [(k, v) for k, v in paths.items() if k not in PLOT_FILES and k != "report"]
    if files:
        parts.append("<h2>Files</h2><ul>" + "".join(
            f"<li><a href='{_e(_rel(v, out))}'>{_e(_rel(v, out))}</a></li>" for _, v in files) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)

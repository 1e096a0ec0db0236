"""Analyzing a sweep, the one path that `htmc analyze` / `python -m jobs.analyze`, the nightly run and `make demo`
share: load the sweep's records from its store, build the report (analysis/, which never touches Ray, MLflow or
S3), and log the report's files to the sweep's MLflow parent run."""
from __future__ import annotations

import math
import re
from pathlib import Path

from .spec.model import SweepSpec
from .spec.redact import redact_uri


def report_metrics(result) -> dict[str, float]:
    """What a report found, as metrics of the MLflow run it is logged to."""
    c = result.summary.counts
    f = result.summary.functions
    out = {"analysis_records": float(c.get("records", 0)), "analysis_missing": float(len(result.missing)),
           "analysis_functions": float(len(f)), "analysis_nets": float(len(result.summary.nets))}
    if len(f) and "gamma" in f:
        out["analysis_functions_fitted"] = float(f["gamma"].notna().sum())
    from analysis.aggregate import contract
    out.update(headline_metrics(contract(result.summary)))
    return out


def _metric_name(text: str) -> str:
    """MLflow metric names allow letters, digits and _-./ and spaces; a function label has parentheses and '='."""
    return re.sub(r"[^A-Za-z0-9_.\-/ ]+", "_", str(text)).strip("_")


def headline_metrics(doc: dict) -> dict[str, float]:
    """The experiments' headline numbers of summary.json (issue 14 D) as metrics of the sweep's parent run:
    the fraction of sandwich points within C̄² (Ḡ, and G*_ν per norm), the coverage and ρ̂ per function and norm,
    and the convexity slope per γ."""
    out = {}
    frac = doc["sandwich"].get("frac_within_square")
    if frac is not None:
        out["sandwich_frac_within_square"] = float(frac)
        out["sandwich_points"] = float(doc["sandwich"].get("n_points_with_both", 0))
    for norm, v in doc["sandwich"].get("frac_within_square_minnorm", {}).items():
        if v.get("fraction") is not None:      # G*_ν: the min-norm net's own circuit (issue 21 B)
            out[_metric_name(f"sandwich_minnorm_frac_within_square/{norm}")] = float(v["fraction"])
    for fn, cov in doc.get("coverage", {}).items():
        if cov.get("fraction") is not None:
            out[_metric_name(f"coverage/{fn}")] = float(cov["fraction"])
    for row in doc["resnet_phase"]:
        for norm, (rho, _lo, _hi) in row["rho"].items():
            if rho is not None and math.isfinite(rho):
                out[_metric_name(f"rho_{norm}/{row['function']}")] = float(rho)
    for sl in doc["convexity"].get("slopes", []):
        if sl.get("slope") is not None and math.isfinite(sl["slope"]):
            out[_metric_name(f"convexity_slope_gamma_{sl['gamma']:g}")] = float(sl["slope"])
    return out


def analyze_sweep(spec: SweepSpec, out_dir=None, *, records=None, summary=None, title: str | None = None,
                  sections=(), files: dict | None = None, log: bool = True, tracking_uri: str | None = None,
                  metrics: dict | None = None, tags: dict | None = None, run_id: str | None = None,
                  new_run: tuple[str, dict] | None = None):
    """The sweep's report in out_dir (default reports/<sweep>), logged to MLflow unless log is False.
    Returns analysis.report.ReportResult, with .mlflow_run_id set when it was logged.

    records: the sweep's records when the caller has them (the night), else they are read from the store;
    summary, sections: as build_report's; files: more files to log with the report (name -> path); metrics:
    logged on the run (default report_metrics); tags, run_id, new_run: as cluster.tracking.report.log_report's."""
    from analysis.report import build_report

    from .store.core import load_records
    from .tracking.report import log_report
    if records is None:
        if not spec.results.is_s3 and not Path(spec.results.uri).exists():
            raise FileNotFoundError(f"results location '{spec.results.uri}' does not exist: nothing has run there "
                                    f"(or a typo in --results / results.uri)")
        records = load_records(spec.results, spec.name)
    out_dir = Path(out_dir) if out_dir else Path("reports") / spec.name
    if title is None:   # a password inside a URI of the description stays out of the report
        title = f"htmc sweep '{spec.name}'" + (f" — {redact_uri(spec.description)}" if spec.description else "")
    result = build_report(records, out_dir, title=title, prices=vars(spec.costs), sections=sections,
                          summary=summary)
    if log:
        result.mlflow_run_id = log_report(
            spec, {**result.paths, **(files or {})}, metrics=report_metrics(result) if metrics is None else metrics,
            tracking_uri=tracking_uri, tags=tags, run_id=run_id, new_run=new_run)
    return result

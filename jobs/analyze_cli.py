"""`python -m jobs.analyze SPEC [--results URI] [--out DIR] [--tracking-uri URI]`: the sweep's report.

Thin: cluster/ loads the sweep's records from its store (local or S3) and logs the report's files as artifacts of
the sweep's MLflow parent run; analysis/ (which never touches Ray, MLflow or S3) turns the records into the summary
tables, the plots and report.html. The entry point of `ray job submit ... -- python -m jobs.analyze SPEC` and of
`htmc analyze SPEC`. Exit status 0 when the report was written (even if the sweep is empty or partial: the report
says what is missing), 2 on a user error (bad spec, unreachable store).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.errors import USER_ERRORS, user_error


def _load_records(spec):
    """The sweep's records as one pyarrow Table (every kind, ok and failed)."""
    from cluster.store.core import load_records
    return load_records(spec.results, spec.name)


def _log_report(spec, result, tracking_uri: str | None) -> str | None:
    """Log every file of the report as artifacts of the sweep's MLflow parent run; returns the run id or None."""
    from cluster.tracking.report import log_report
    return log_report(spec, result.paths, metrics=_report_metrics(result), tracking_uri=tracking_uri)


def _report_metrics(result) -> dict[str, float]:
    c = result.summary.counts
    f = result.summary.functions
    out = {"analysis_records": float(c.get("records", 0)), "analysis_missing": float(len(result.missing)),
           "analysis_functions": float(len(f)), "analysis_nets": float(len(result.summary.nets))}
    if len(f) and "gamma" in f:
        out["analysis_functions_fitted"] = float(f["gamma"].notna().sum())
    return out


def analyze(spec_path: str, results: str | None = None, out: str | None = None,
            tracking_uri: str | None = None, *, log: bool = True):
    """Load the sweep's records, build the report into `out` (default ./reports/<sweep>), log it to MLflow.
    Returns analysis.report.ReportResult (with .mlflow_run_id set when it was logged)."""
    from analysis.report import build_report
    from cluster.spec.parse import load_spec
    spec = load_spec(spec_path, results=results, tracking_uri=tracking_uri, validate_tasks=False)
    if not spec.results.is_s3 and not Path(spec.results.uri).exists():
        raise FileNotFoundError(f"results location '{spec.results.uri}' does not exist: nothing has run there "
                                f"(or a typo in --results / results.uri)")
    records = _load_records(spec)
    out_dir = Path(out) if out else Path("reports") / spec.name
    from cluster.spec.redact import redact_uri   # a password inside a URI of the description stays out of the report
    result = build_report(records, out_dir, title=f"htmc sweep '{spec.name}'"
                          + (f" — {redact_uri(spec.description)}" if spec.description else ""), prices=vars(spec.costs))
    result.mlflow_run_id = _log_report(spec, result, tracking_uri) if log else None
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs.analyze", description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="the sweep spec (YAML) whose records to analyse")
    ap.add_argument("--results", help="results location (path or s3://bucket/prefix); default: the spec's")
    ap.add_argument("--out", help="directory for report.html, the PNGs and the summary (default reports/<sweep>)")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI; default: the spec's")
    ap.add_argument("--no-mlflow", action="store_true", help="do not log the report to MLflow")
    args = ap.parse_args(argv)
    try:
        res = analyze(args.spec, args.results, args.out, args.tracking_uri, log=not args.no_mlflow)
    except USER_ERRORS as e:
        return user_error(e)
    print(f"report: {res.paths['report']}")
    if "phase" in res.paths:
        print(f"phase diagram: {res.paths['phase']}")
    for m in res.missing:
        print(f"missing: {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`htmc analyze SPEC [--results URI] [--out DIR] [--tracking-uri URI]`: the sweep's report (and `python -m
jobs.analyze`, jobs/analyze.py).

Thin: cluster/analyze.py loads the sweep's records from its store (local or S3) and logs the report's files as
artifacts of the sweep's MLflow parent run; analysis/ (which never touches Ray, MLflow or S3) turns the records into
the summary tables, the plots and report.html. Exit status 0 when the report was written (even if the sweep is empty
or partial: the report says what is missing), 2 on a user error (bad spec, unreachable store).
"""
from __future__ import annotations

import argparse
import json

from jobs.common import add_json_arg, add_plugin_arg, add_results_arg, add_tracking_arg

JSON_KEYS = ("With --json: report (the path of report.html), paths (every file written, by name), missing (what the "
             "report could not show, and why), mlflow_run_id.")


def analyze(spec_path: str, results: str | None = None, out: str | None = None,
            tracking_uri: str | None = None, *, log: bool = True):
    """The report of the sweep of spec_path into `out` (default ./reports/<sweep>), logged to MLflow unless log
    is False (cluster.analyze.analyze_sweep). Returns analysis.report.ReportResult."""
    from cluster.analyze import analyze_sweep
    from cluster.spec.parse import load_spec
    spec = load_spec(spec_path, results=results, tracking_uri=tracking_uri, validate_tasks=False)
    return analyze_sweep(spec, out, log=log, tracking_uri=tracking_uri)


def add_analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="the sweep spec (YAML) whose records to analyse")
    add_results_arg(p)
    p.add_argument("--out", metavar="DIR",
                   help="directory for report.html, the PNGs and the summary (default reports/<sweep>)")
    add_tracking_arg(p)
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report to MLflow")
    add_json_arg(p)
    add_plugin_arg(p)


def cmd_analyze(args) -> int:
    res = analyze(args.spec, args.results, args.out, args.tracking_uri, log=not args.no_mlflow)
    if args.json:
        print(json.dumps({"report": str(res.paths["report"]), "paths": {k: str(v) for k, v in res.paths.items()},
                          "missing": list(res.missing), "mlflow_run_id": res.mlflow_run_id}, sort_keys=True))
        return 0
    print(f"report: {res.paths['report']}")
    if "phase" in res.paths:
        print(f"phase diagram: {res.paths['phase']}")
    for m in res.missing:
        print(f"missing: {m}")
    return 0


def add_analyze_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("analyze", help="report of a sweep: fits, phase diagrams, sandwich plots, report.html",
                              description="Load the sweep's records from its store (local or S3), write the plots, "
                                          "the summary table and report.html, and log them to the sweep's MLflow "
                                          "parent run. " + JSON_KEYS)
    add_analyze_args(p)
    p.set_defaults(func=cmd_analyze)
    return p

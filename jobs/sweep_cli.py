"""`htmc sweep run|submit|status|sync-mlflow`: argparse wiring and handlers. Thin: everything is in cluster/.

jobs/cli.py's build_parser calls add_sweep_commands(sub). Handlers raise ValueError / KeyError /
FileNotFoundError for user errors (jobs/cli.py prints `htmc: error: ...` and exits 2); an interrupted run exits
130 after marking its MLflow parent run KILLED.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from jobs.common import PLUGIN_HELP, sigterm_as_interrupt, spec_from_args
from jobs.plan_cli import add_plan_command


def add_run_args(p: argparse.ArgumentParser, *, spec_optional: bool = False) -> None:
    p.add_argument("spec", nargs="?" if spec_optional else None, help="sweep spec YAML (e.g. sweeps/demo.yaml)")
    p.add_argument("--results", metavar="URI", help="override results.uri: a local path or s3://bucket/prefix")
    p.add_argument("--tracking-uri", metavar="URI", help="override tracking.uri (MLflow), e.g. sqlite:///mlflow.db")
    p.add_argument("--retry-failed", action="store_true", help="also run tasks whose record is `failed`")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join (default $RAY_ADDRESS; without one, a private local Ray starts)")
    p.add_argument("--num-cpus", type=float, help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-gpus", type=float, help="GPUs of the local Ray (default: detected)")
    p.add_argument("--dashboard", action="store_true", help="local Ray only: start its dashboard (on 127.0.0.1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit 1 when any task of this execution failed")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--plugin", action="append", metavar="FILE.py", help=PLUGIN_HELP)


def cmd_run(args) -> int:
    from cluster.service import run_sweep
    spec = spec_from_args(args)
    sigterm_as_interrupt()
    try:
        summary = run_sweep(spec, retry_failed=args.retry_failed, address=args.address,
                            progress=not args.no_progress, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                            dashboard=args.dashboard)
    except KeyboardInterrupt:
        print("htmc: interrupted", file=sys.stderr)
        return 130
    except ConnectionError as e:       # e.g. a wrong --address / $RAY_ADDRESS
        raise ValueError(f"cannot connect to Ray: {e}") from None
    if args.json:
        print(json.dumps(summary.to_json(), sort_keys=True))
    return 1 if args.strict and summary.failed else 0


def cmd_submit(args) -> int:
    from cluster.service import submit
    spec = spec_from_args(args)
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address or not address.startswith(("http://", "https://")):
        raise ValueError("give the Ray dashboard address: --address http://HEAD:8265 (through `ray dashboard "
                         "ray_config.yaml` port forwarding: http://127.0.0.1:8265)")
    try:
        out = submit(spec, args.spec, address=address, working_dir=args.working_dir, tag=args.tag,
                     retry_failed=args.retry_failed, forward_credentials=args.forward_credentials, wait=args.wait,
                     timeout_s=args.timeout_s, results=args.results, tracking_uri=args.tracking_uri,
                     plugins=args.plugin)
    except TimeoutError as e:
        print(f"htmc: {e} (the job keeps running; `ray job status` / `ray job stop`)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(out["submission_id"])
    if args.wait and out.get("status") not in ("SUCCEEDED", None) and out.get("submitted"):
        return 1
    return 0


def cmd_status(args) -> int:
    from cluster.service import sweep_status
    out = sweep_status(spec_from_args(args))
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    print(f"sweep {out['sweep']}  ({out['results']})")
    print(f"{'kind':<16} {'total':>7} {'ok':>7} {'failed':>7} {'missing':>8} {'other':>7}")
    for kind, r in sorted(out["kinds"].items()):
        print(f"{kind:<16} {r['total']:>7} {r['ok']:>7} {r['failed']:>7} {r['missing']:>8} {r['other']:>7}")
    if out.get("unusable_files"):
        print(f"{out['unusable_files']} unusable record files (see the warnings above): counted as missing; the next "
              f"run reruns those tasks and replaces the files")
    from analysis.costs import format_costs
    print()
    print(format_costs(out["costs"]))
    return 0


def cmd_sync(args) -> int:
    from cluster.service import sync_mlflow
    out = sync_mlflow(spec_from_args(args), children=args.children)
    if args.json:
        print(json.dumps(out, sort_keys=True))
    return 0


def add_sweep_commands(subparsers) -> argparse.ArgumentParser:
    """Add the `sweep` command group to the `htmc` parser's subparsers."""
    sweep = subparsers.add_parser("sweep", help="run sweeps on Ray with resume, a Parquet store and MLflow",
                                  description="Sweep specs (see sweeps/demo.yaml and cluster/spec/__init__.py) "
                                              "expand into tasks keyed by sha256(kind, version, params); only keys "
                                              "without an ok record run.")
    ssub = sweep.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = ssub.add_parser("run", help="run a sweep here (private local Ray, or --address / $RAY_ADDRESS)",
                        description="Validate the spec, skip keys that have an ok record, run the rest on Ray "
                                    "actors, write one Parquet record per task and track in MLflow. Ctrl-C stops "
                                    "cleanly; running again resumes.")
    add_run_args(p)
    p.set_defaults(func=cmd_run)

    p = ssub.add_parser("submit", help="submit the sweep to a Ray cluster as a job (`ray job submit`)",
                        description="Submits `python -m jobs.sweep SPEC` through Ray's JobSubmissionClient with the "
                                    "working dir uploaded and a deterministic submission_id "
                                    "htmc-<name>-<spec hash>[-<tag>].")
    p.add_argument("spec", help="sweep spec YAML")
    p.add_argument("--address", metavar="URL", help="Ray dashboard/job server, e.g. http://127.0.0.1:8265 "
                                                    "(default $RAY_API_SERVER_ADDRESS)")
    p.add_argument("--working-dir", default=".", help="directory uploaded as the job's working dir (default .)")
    p.add_argument("--tag", help="suffix for the submission id, e.g. a date for nightly runs")
    p.add_argument("--results", metavar="URI", help="override results.uri (absolute path or s3://)")
    p.add_argument("--tracking-uri", metavar="URI", help="override tracking.uri")
    p.add_argument("--retry-failed", action="store_true", help="also run tasks whose record is `failed`")
    p.add_argument("--forward-credentials", action="store_true",
                   help="pass AWS_* / MLFLOW_TRACKING_* secrets from this shell into the job's environment "
                        "(default: the cluster's own instance role and config)")
    p.add_argument("--wait", action="store_true", help="wait for the job to finish; exit 1 unless it succeeded")
    p.add_argument("--timeout-s", type=float, default=24 * 3600, help="with --wait: give up after this long")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plugin", action="append", metavar="FILE.py", help=PLUGIN_HELP)
    p.set_defaults(func=cmd_submit)

    p = ssub.add_parser("status", help="counts per kind and status (ok, failed, missing) from the store")
    p.add_argument("spec", help="sweep spec YAML")
    p.add_argument("--results", metavar="URI", help="override results.uri")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plugin", action="append", metavar="FILE.py", help=PLUGIN_HELP)
    p.set_defaults(func=cmd_status)

    p = ssub.add_parser("sync-mlflow", help="create the MLflow runs missing for records in the store",
                        description="Backfills one child run per record that MLflow does not have (matched by the "
                                    "task_key and status tags), e.g. after MLflow was down. Idempotent.")
    p.add_argument("spec", help="sweep spec YAML")
    p.add_argument("--results", metavar="URI", help="override results.uri")
    p.add_argument("--tracking-uri", metavar="URI", help="override tracking.uri")
    p.add_argument("--children", choices=["task"], help="backfill per-task runs even if the spec says group/off")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plugin", action="append", metavar="FILE.py", help=PLUGIN_HELP)
    p.set_defaults(func=cmd_sync)
    add_plan_command(ssub)
    return sweep

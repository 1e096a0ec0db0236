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

from jobs.common import (add_deprecated_arg, add_json_arg, add_plugin_arg, add_results_arg, add_tracking_arg,
                         JOB_SERVER_HELP, RAY_ADDRESS_HELP, sigterm_as_interrupt, spec_from_args)
from jobs.plan_cli import add_plan_command

SPEC_HELP = "the sweep spec (YAML), e.g. sweeps/demo.yaml"
RUN_JSON = ("With --json: sweep, total, already_ok, already_failed, scheduled, done, failed, untracked, "
            "parent_run_id, execution_id, seconds.")


def add_run_args(p: argparse.ArgumentParser, *, spec_optional: bool = False) -> None:
    p.add_argument("spec", metavar="SPEC", nargs="?" if spec_optional else None, help=SPEC_HELP)
    add_results_arg(p)
    add_tracking_arg(p)
    p.add_argument("--retry-failed", action="store_true", help="also run tasks whose record is `failed`")
    p.add_argument("--ray-address", metavar="ADDRESS", help=RAY_ADDRESS_HELP)
    add_deprecated_arg(p, "--address", "--ray-address", "ray_address")
    p.add_argument("--num-cpus", type=float, help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-gpus", type=float, help="GPUs of the local Ray (default: detected)")
    p.add_argument("--dashboard", action="store_true", help="local Ray only: start its dashboard (on 127.0.0.1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit 1 when any task of this execution failed")
    add_json_arg(p)
    add_plugin_arg(p)


def cmd_run(args) -> int:
    from cluster.service import run_sweep
    spec = spec_from_args(args)
    sigterm_as_interrupt()
    try:
        summary = run_sweep(spec, retry_failed=args.retry_failed, address=args.ray_address,
                            progress=not args.no_progress, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                            dashboard=args.dashboard)
    except KeyboardInterrupt:
        print("htmc: interrupted", file=sys.stderr)
        return 130
    except ConnectionError as e:       # e.g. a wrong --ray-address / $RAY_ADDRESS
        raise ValueError(f"cannot connect to Ray: {e}") from None
    if args.json:
        print(json.dumps(summary.to_json(), sort_keys=True))
    return 1 if args.strict and summary.failed else 0


def cmd_submit(args) -> int:
    from cluster.service import submit
    spec = spec_from_args(args)
    address = args.job_server or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address or not address.startswith(("http://", "https://")):
        raise ValueError("give the Ray job server: --job-server http://HEAD:8265 (through `ray dashboard "
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
    for add in (_add_run_command, _add_submit_command, _add_status_command, _add_sync_command, add_plan_command):
        add(ssub)
    return sweep


def _add_run_command(ssub) -> None:
    p = ssub.add_parser("run", help="run a sweep here (private local Ray, or --ray-address / $RAY_ADDRESS)",
                        description="Validate the spec, skip keys that have an ok record, run the rest on Ray "
                                    "actors, write one Parquet record per task and track in MLflow. Ctrl-C stops "
                                    "cleanly; running again resumes. " + RUN_JSON)
    add_run_args(p)
    p.set_defaults(func=cmd_run)


def _add_submit_command(ssub) -> None:
    p = ssub.add_parser("submit", help="submit the sweep to a Ray cluster as a job (`ray job submit`)",
                        description="Submits `python -m jobs.sweep SPEC` through Ray's JobSubmissionClient with the "
                                    "working dir uploaded and a deterministic submission_id "
                                    "htmc-<name>-<spec hash>[-<tag>]. Without --json it prints the submission id; "
                                    "with --json: submission_id, submitted (false when that id already ran or "
                                    "runs), status, and with --wait the job's final status.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--job-server", metavar="URL", help=JOB_SERVER_HELP)
    add_deprecated_arg(p, "--address", "--job-server", "job_server")
    p.add_argument("--working-dir", metavar="DIR", default=".",
                   help="directory uploaded as the job's working dir (default .)")
    p.add_argument("--tag", help="suffix for the submission id, e.g. a date for nightly runs")
    add_results_arg(p, help="override the spec's results.uri: an absolute path or s3://bucket/prefix (the job runs "
                            "in a copy of the working dir)")
    add_tracking_arg(p)
    p.add_argument("--retry-failed", action="store_true", help="also run tasks whose record is `failed`")
    p.add_argument("--forward-credentials", action="store_true",
                   help="pass AWS_* / MLFLOW_TRACKING_* secrets from this shell into the job's environment "
                        "(default: the cluster's own instance role and config)")
    p.add_argument("--wait", action="store_true", help="wait for the job to finish; exit 1 unless it succeeded")
    p.add_argument("--timeout-s", type=float, metavar="SECONDS", default=24 * 3600,
                   help="with --wait: give up after this many seconds (default 86400)")
    add_json_arg(p)
    add_plugin_arg(p)
    p.set_defaults(func=cmd_submit)


def _add_status_command(ssub) -> None:
    p = ssub.add_parser("status", help="counts per kind and status (ok, failed, missing) from the store",
                        description="Count the spec's tasks per kind by the status of their records: ok, failed, "
                                    "missing (no record), other (records the spec no longer produces), with the "
                                    "costs so far. Reads only. With --json: sweep, results, kinds {kind: {total, ok, "
                                    "failed, missing, other}}, costs, unusable_files.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    add_results_arg(p)
    add_json_arg(p)
    add_plugin_arg(p)
    p.set_defaults(func=cmd_status)


def _add_sync_command(ssub) -> None:
    p = ssub.add_parser("sync-mlflow", help="create the MLflow runs missing for records in the store",
                        description="Backfills one child run per record that MLflow does not have (matched by the "
                                    "task_key and status tags), e.g. after MLflow was down. Idempotent. With --json: "
                                    "sweep, records, already_tracked, added, parent_run_id, incomplete_replaced.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    add_results_arg(p)
    add_tracking_arg(p)
    p.add_argument("--children", choices=["task"], help="backfill per-task runs even if the spec says group/off")
    add_json_arg(p)
    add_plugin_arg(p)
    p.set_defaults(func=cmd_sync)

"""`htmc nightly SPEC [--job-server http://HEAD:8265] [--date YYYY-MM-DD]` (and `python -m jobs.nightly`, the
entry point of the night's Ray job, jobs/nightly.py).

Submits the night's sweep as the Ray job `nightly-<sweep>-<date>` (a second call for the same date is a no-op
that says so), or with --here runs the night in this process: the missing and failed keys, a sample of old keys
as fresh replicates, the analysis, and a regression report against the previous night. Everything is in
cluster/nightly.py; this is argparse wiring.

Exit status: 0 done (or nothing to do); 1 something regressed (the night ran; see its report), or with --wait
the job did not succeed; 2 a user error; 3 skipped (concurrency policy `forbid` or the starting deadline).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from jobs.common import (add_deprecated_arg, add_json_arg, add_plugin_arg, add_results_arg, add_tracking_arg,
                         JOB_SERVER_HELP, RAY_ADDRESS_HELP, sigterm_as_interrupt, spec_from_args)

DESCRIPTION = __doc__.split("\n\n")[1] + "\n\n" + textwrap.fill(
    "With --json, --here prints the night: sweep, date, state (done, already_done, skipped), message, regressions, "
    "previous, ran, failed, replicates, report, run_id, costs, exit_code; a submission prints submission_id, "
    "submitted, status, reason (why nothing was submitted).", 115)

EPILOG = """examples:
  htmc nightly sweeps/demo.yaml --here                            # tonight, here (local Ray, or $RAY_ADDRESS)
  htmc nightly sweeps/demo.yaml --job-server http://127.0.0.1:8265   # submit tonight's Ray job
  htmc nightly sweeps/demo.yaml --job-server http://127.0.0.1:8265 --date 2026-11-27 --policy replace
Settings (replicates, concurrency, schedule, starting_deadline_s, slower_factor) live in the spec's `nightly:`
section and prices in `costs:` (cluster/spec/__init__.py). Deployment examples: cluster/deploy/."""


def add_nightly_args(p: argparse.ArgumentParser, *, job_entry: bool = False) -> None:
    """The options of `htmc nightly`; job_entry: those of `python -m jobs.nightly`, the submitted job, whose spec
    may come in an environment variable instead (--spec-from-env, when the spec lies outside the working dir)."""
    p.add_argument("spec", metavar="SPEC", nargs="?" if job_entry else None,
                   help="the sweep spec (YAML), e.g. sweeps/demo.yaml")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="the night to run (default: today, UTC)")
    p.add_argument("--here", action="store_true",
                   help="run the night in this process instead of submitting it (what the Ray job runs)")
    p.add_argument("--job-server", metavar="URL", help=JOB_SERVER_HELP)
    p.add_argument("--ray-address", metavar="ADDRESS", help="with --here: " + RAY_ADDRESS_HELP)
    add_deprecated_arg(p, "--address", "--job-server (or, with --here, --ray-address)", "legacy_address")
    p.add_argument("--policy", choices=["forbid", "replace", "allow"],
                   help="when an earlier night's job still runs: skip tonight, stop it, or run both "
                        "(default: the spec's nightly.concurrency, else forbid)")
    add_results_arg(p, help="override the spec's results.uri: an absolute path or s3://bucket/prefix")
    add_tracking_arg(p)
    p.add_argument("--out", metavar="DIR", help="--here: report directory (default reports/<sweep>/nightly/<date>)")
    p.add_argument("--working-dir", metavar="DIR", default=".",
                   help="directory uploaded as the job's working dir (default .)")
    p.add_argument("--forward-credentials", action="store_true",
                   help="pass AWS_* / MLFLOW_TRACKING_* secrets from this shell into the job's environment")
    p.add_argument("--wait", action="store_true", help="wait for the submitted job; exit 1 unless it succeeded")
    p.add_argument("--timeout-s", type=float, metavar="SECONDS", default=24 * 3600,
                   help="with --wait: give up after this many seconds (default 86400)")
    if job_entry:
        p.add_argument("--spec-from-env", metavar="VAR",
                       help="read the spec's YAML from this environment variable (set by the submission when the "
                            "spec file lies outside the uploaded working dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_arg(p)
    add_plugin_arg(p)


def cmd_nightly(args) -> int:
    from cluster.nightly import parse_date, run_night, submit_night
    date = parse_date(args.date)
    spec = spec_from_args(args)
    legacy = args.legacy_address     # the deprecated --address: its meaning depended on --here
    if args.here:
        sigterm_as_interrupt()
        try:
            res = run_night(spec, date=date, address=args.ray_address or legacy, out=args.out,
                            progress=not args.no_progress)
        except KeyboardInterrupt:
            print("htmc: interrupted; run the same night again to resume it", file=sys.stderr)
            return 130
        if args.json:
            print(json.dumps(res.to_json(), sort_keys=True, default=str))
        return res.exit_code
    if args.ray_address:
        raise ValueError("--ray-address is the Ray cluster that --here joins; to submit the night give the job "
                         "server: --job-server http://HEAD:8265")
    address = args.job_server or legacy or os.environ.get("RAY_API_SERVER_ADDRESS")
    if not address or not address.startswith(("http://", "https://")):
        raise ValueError("give the Ray job server to submit the night to (--job-server http://HEAD:8265), or run "
                         "the night in this process with --here")
    try:
        out = submit_night(spec, args.spec or f"${getattr(args, 'spec_from_env', None)}", address=address, date=date,
                           policy=args.policy, working_dir=args.working_dir, results=args.results,
                           tracking_uri=args.tracking_uri, forward_credentials=args.forward_credentials,
                           wait=args.wait, timeout_s=args.timeout_s, plugins=args.plugin)
    except TimeoutError as e:
        print(f"htmc: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, sort_keys=True))
    if out["reason"] in ("forbid", "deadline"):
        return 3
    if args.wait and out["submitted"] and out.get("status") != "SUCCEEDED":
        return 1
    return 0


def add_nightly_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("nightly", help="the night's sweep as a Ray job: missing keys, replicates, analysis, "
                                              "regression report", description=DESCRIPTION,
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_nightly_args(p)
    p.set_defaults(func=cmd_nightly)
    return p

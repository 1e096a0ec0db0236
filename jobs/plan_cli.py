"""`htmc sweep plan SPEC`: the sweep before it runs (issue 22 C). Thin: cluster/planning.py does the work.

jobs/sweep_cli.py's add_sweep_commands registers it (add_plan_command)."""
from __future__ import annotations

import argparse
import json

from jobs.common import PLUGIN_HELP, spec_from_args

DESCRIPTION = (
    "Show what `htmc sweep run SPEC` would do, without running anything: per group and kind, the tasks in total, "
    "done (ok record), failed and to run, and for the tasks to run an estimate of CPU-hours, GPU-hours, dollars "
    "(the spec's costs: prices) and wall time, from the store's ok records of the same group and kind ('no "
    "estimate' where there are none). Reads the spec, the --plugin files and the results store (its records' "
    "status, group and timing columns, and its status index); writes nothing: no store, no MLflow, no Ray. With "
    "--json: sweep, spec_hash, results, groups, totals, prices, parallelism, unusable_files.")


def cmd_plan(args) -> int:
    from cluster.planning import format_plan, sweep_plan
    out = sweep_plan(spec_from_args(args))
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(format_plan(out))
    return 0


def add_plan_command(ssub) -> argparse.ArgumentParser:
    """Add `plan` to the `sweep` command group's subparsers."""
    p = ssub.add_parser("plan", help="what a sweep would run and cost, before it runs (reads only)",
                        description=DESCRIPTION)
    p.add_argument("spec", metavar="SPEC", help="sweep spec YAML (e.g. sweeps/demo.yaml)")
    p.add_argument("--results", metavar="URI", help="override results.uri: a local path or s3://bucket/prefix")
    p.add_argument("--plugin", action="append", metavar="FILE.py", help=PLUGIN_HELP)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.set_defaults(func=cmd_plan)
    return p

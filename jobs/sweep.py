"""`python -m jobs.sweep SPEC [--results URI] [--tracking-uri URI] [--retry-failed]`: the entry point of a sweep's
Ray job.

Use `htmc sweep run SPEC` to run a sweep (same options, same behaviour); this module exists because a Ray job needs
a `python -m` entry point: `htmc sweep submit` submits `python -m jobs.sweep SPEC` (Ray sets $RAY_ADDRESS, so the
job joins the cluster), and passes the spec in an environment variable (--spec-from-env) when the spec lies
outside the uploaded working dir. Exit status 0 on completion, 2 on a user error, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import sys

from jobs.cli import load_plugins
from jobs.errors import user_error, USER_ERRORS
from jobs.sweep_cli import add_run_args, cmd_run, RUN_JSON


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.sweep",
                                     description=" ".join(__doc__.split("\n\n")[1].split()) + " " + RUN_JSON)
    add_run_args(parser, spec_optional=True)
    parser.add_argument("--spec-from-env", metavar="VAR",
                        help="read the spec's YAML from this environment variable (used by `htmc sweep submit` "
                             "when the spec file lies outside the uploaded working dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_plugins(args)
        return cmd_run(args)
    except USER_ERRORS as e:
        return user_error(e)


if __name__ == "__main__":
    sys.exit(main())

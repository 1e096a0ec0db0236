"""`python -m jobs.sweep SPEC [--results URI] [--tracking-uri URI] [--retry-failed]`: run a sweep.

The entry point of `ray job submit --working-dir . -- python -m jobs.sweep SPEC` (Ray sets $RAY_ADDRESS, so the
job joins the cluster) and of local runs (no address: a private in-process Ray on 127.0.0.1). Same options and
behaviour as `htmc sweep run`; exit status 0 on completion, 2 on a user error, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import sys

from jobs.cli import load_plugins
from jobs.errors import user_error, USER_ERRORS
from jobs.sweep_cli import add_run_args, cmd_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.sweep", description=__doc__.splitlines()[0])
    add_run_args(parser, spec_optional=True)
    parser.add_argument("--spec-from-env", metavar="VAR",
                        help="read the spec's YAML from this environment variable (used by `htmc sweep submit` "
                             "when the spec file lies outside the uploaded working dir)")
    args = parser.parse_args(argv)
    try:
        load_plugins(args)
        return cmd_run(args)
    except USER_ERRORS as e:
        return user_error(e)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m jobs.nightly SPEC --here [--date YYYY-MM-DD] ...`: the entry point of the night's Ray job.

Use `htmc nightly` (jobs/nightly_cli.py), which has the same options; this module exists because a Ray job needs a
`python -m` entry point (`htmc nightly --job-server URL` submits `python -m jobs.nightly SPEC --here --date D`), and
it also takes the spec from an environment variable (--spec-from-env) when the spec lies outside the working dir.
"""
from __future__ import annotations

import argparse
import sys

from jobs.cli import load_plugins
from jobs.errors import user_error, USER_ERRORS
from jobs.nightly_cli import add_nightly_args, cmd_nightly, DESCRIPTION, EPILOG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.nightly", description=__doc__.split("\n\n")[1] + "\n\n"
                                     + DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_nightly_args(parser, job_entry=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_plugins(args)
        return cmd_nightly(args)
    except USER_ERRORS as e:
        return user_error(e)


if __name__ == "__main__":
    sys.exit(main())

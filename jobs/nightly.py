"""`python -m jobs.nightly SPEC [--here] [--date YYYY-MM-DD] ...`: the same as `htmc nightly` (jobs/nightly_cli.py),
as the entry point of the night's Ray job (`htmc nightly --address ...` submits `python -m jobs.nightly SPEC --here`).
"""
from __future__ import annotations

import argparse
import sys

from jobs.cli import load_plugins
from jobs.errors import user_error, USER_ERRORS
from jobs.nightly_cli import add_nightly_args, cmd_nightly, DESCRIPTION, EPILOG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.nightly", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_nightly_args(parser)
    args = parser.parse_args(argv)
    try:
        load_plugins(args)
        return cmd_nightly(args)
    except USER_ERRORS as e:
        return user_error(e)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m jobs.analyze SPEC [--results URI] [--out DIR] [--tracking-uri URI]`: the sweep's report.

The same as `htmc analyze` (jobs/analyze_cli.py), as the entry point of `ray job submit ... -- python -m jobs.analyze
SPEC`. Exit status 0 when the report was written, 2 on a user error (bad spec, unreachable store).
"""
from __future__ import annotations

import argparse
import sys

from jobs.analyze_cli import add_analyze_args, cmd_analyze
from jobs.cli import load_plugins
from jobs.errors import user_error, USER_ERRORS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs.analyze", description=__doc__.splitlines()[0])
    add_analyze_args(ap)
    args = ap.parse_args(argv)
    try:
        load_plugins(args)
        return cmd_analyze(args)
    except USER_ERRORS as e:
        return user_error(e)


if __name__ == "__main__":
    sys.exit(main())

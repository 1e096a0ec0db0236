"""`python -m jobs.analyze SPEC [--results URI] [--out DIR] [--tracking-uri URI]`: the entry point of an analysis
Ray job.

Use `htmc analyze SPEC` (jobs/analyze_cli.py; same options); this module exists because a Ray job needs a
`python -m` entry point (`ray job submit ... -- python -m jobs.analyze SPEC`). Exit status 0 when the report was
written, 2 on a user error (bad spec, unreachable store).
"""
from __future__ import annotations

import argparse
import sys

from jobs.analyze_cli import add_analyze_args, cmd_analyze, JSON_KEYS
from jobs.cli import load_plugins
from jobs.errors import user_error, USER_ERRORS


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m jobs.analyze",
                                 description=" ".join(__doc__.split("\n\n")[1].split()) + " " + JSON_KEYS)
    add_analyze_args(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_plugins(args)
        return cmd_analyze(args)
    except USER_ERRORS as e:
        return user_error(e)


if __name__ == "__main__":
    sys.exit(main())

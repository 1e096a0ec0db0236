"""`htmc store compact --results URI [--sweep NAME] [--json]`: merge a store's per-task records into its compacted
tables (cluster/store/compaction.py). Thin argparse wiring.

Exit status 0 when done (also when there was nothing to compact), 2 on a user error (unknown sweep, unreachable
store, a full disk or a denied write: one line says which, and that no record was lost).
"""
from __future__ import annotations

import argparse

from jobs.common import emit

DESCRIPTION = ("Merge the per-task record files of a sweep (or of every sweep) into large Parquet files per sweep "
               "and kind, made visible at once by a new manifest version; then remove the merged files. Safe to "
               "run while a sweep writes records, and to kill: nothing is lost or counted twice. Sweeps of 1,000 "
               "or more records compact at their end by themselves, and the nightly job compacts every night. "
               "With --json: results, and sweeps (one summary per sweep compacted).")


def cmd_store_compact(args) -> int:
    from cluster.store.compaction import compact
    from cluster.store.layout import StoreRefused
    try:
        out = compact(args.results, args.sweep, say=None if args.json else print)
    except StoreRefused as e:
        raise ValueError(str(e)) from None
    if args.json:
        emit(out, True)
    return 0


def add_store_commands(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("store", help="maintain a results store (compaction)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("compact", help="merge per-task records into compacted Parquet tables",
                       description=DESCRIPTION)
    c.add_argument("--results", metavar="URI", required=True,
                   help="results location (path or s3://bucket/prefix; S3 endpoint from $AWS_ENDPOINT_URL)")
    c.add_argument("--sweep", metavar="NAME", help="compact only this sweep (default: every sweep in the store)")
    c.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    c.set_defaults(func=cmd_store_compact)
    return p

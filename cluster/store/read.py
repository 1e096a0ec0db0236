"""The store's public readers: one Arrow table for a sweep or the whole store, and the list of live files.

Records of different kinds have different columns; pyarrow's dataset and pandas take the first file's schema and
drop the others' columns silently. read_table unifies them (a column a kind lacks reads as null) and adds the hive
columns `sweep` and `kind`, with every record exactly once, compacted or not (tables.py).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .core import open_store, store_config


def open_readonly(results):
    cfg = store_config(results)
    if not cfg.uri.startswith("s3://") and not Path(cfg.uri).expanduser().exists():
        raise FileNotFoundError(f"results location '{cfg.uri}' does not exist (nothing has run there, or a typo)")
    store = open_store(cfg)
    store.check(readonly=True)
    return store


def sweeps_of(store, sweep: str | None) -> list[str]:
    names = store.sweeps()
    if sweep is None:
        return names
    if sweep not in names:
        raise ValueError(f"sweep '{sweep}' has no records in {store.describe()}; sweeps there: "
                         f"{', '.join(names) or 'none'}")
    return [sweep]


def read_table(results, sweep: str | None = None, kind: str | None = None, *, columns=None) -> pa.Table:
    """Every record of one sweep (or of every sweep in the store), optionally of one kind and only some columns,
    as one pyarrow Table with all kinds' columns unified plus `sweep` and `kind`. `results`: a path,
    s3://bucket/prefix, a StoreConfig or a spec's ResultsSpec. Unknown sweep: ValueError naming the ones there."""
    store = open_readonly(results)
    tables = [store.load(s, kind, columns=columns) for s in sweeps_of(store, sweep)]
    tables = [t for t in tables if t.num_rows] or tables[:1]
    if not tables:
        return store.load("", kind, columns=columns)     # the empty table with the fixed columns
    return pa.concat_tables(tables, promote_options="permissive")


def live_files(results, sweep: str | None = None, kind: str | None = None) -> list[str]:
    """The Parquet files that hold the records right now, each record in exactly one of them: the compacted parts
    of the newest manifest and the per-task files of keys not compacted (paths, or s3:// URIs). Their paths carry
    the hive columns: DuckDB `read_parquet(files, hive_partitioning=true, union_by_name=true)`. A compaction
    running meanwhile may remove some of them; list again then."""
    store = open_readonly(results)
    out = []
    for s in sweeps_of(store, sweep):
        entries = store._entries(s, kind)
        usable = store.statuses(s, kind)          # unusable files (reported) are no one's data
        view = store.compacted(s)
        out += [store.uri_of(p.path) for p in view.parts if kind in (None, p.kind)]
        out += sorted(store.uri_of(rp) for rp, (_, key, _) in entries.items()
                      if key in usable and key not in view.keys)
    return out

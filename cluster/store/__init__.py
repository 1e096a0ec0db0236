"""The Parquet result store (DESIGN §4): `<results>/sweep=<name>/kind=<kind>/<task_key>.parquet`, on disk or S3,
then compacted tables (compaction.py).

Public API:
  read_table(results, sweep=None, kind=None, *, columns=None) -> pyarrow.Table
      a whole sweep (or the whole store) as one table: every column of every kind unified (nulls where a kind has
      no such column), plus the hive columns `sweep` and `kind`; each record exactly once, compacted or not.
  load_records(results, sweep, kind=None) -> pyarrow.Table      one sweep (the same rows as read_table).
  live_files(results, sweep=None, kind=None) -> list[str]
      the Parquet files that hold the store's records right now, each record in exactly one of them (paths, or
      s3:// URIs); hand them to DuckDB `read_parquet(files, hive_partitioning=true, union_by_name=true)`.
  compact(results, sweep=None) -> dict      merge per-task records into large Parquet files (htmc store compact).
`results` is a location string (path or s3://bucket/prefix), a StoreConfig or a spec's ResultsSpec.

Modules: schema (the record's columns), layout (paths, key pattern, Parquet bytes), core (StoreConfig, the Store
interface, open_store, load_records), index (the status index), manifest (the compacted tables' manifest),
compaction (compact), read (read_table, live_files), local (LocalStore), s3 (S3Store).
"""
from .core import StoreConfig, load_records, open_store
from .read import live_files, read_table
from .compaction import compact

__all__ = ["StoreConfig", "compact", "live_files", "load_records", "open_store", "read_table"]

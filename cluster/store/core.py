"""The Parquet result store (DESIGN §4): `<results>/sweep=<name>/kind=<kind>/<task_key>.parquet`, on disk or S3.

One file per task key, so a key can never have two records. Files hold no partition columns (schema.py).

Atomic writes. A record file either exists complete or does not exist:
  local  the file is written under `<results>/_tmp/` (ignored by dataset readers: '_' prefix), fsynced, then
         hard-linked into place (link fails if the name exists: create-once) or renamed over a `failed` record;
         a killed writer leaves at most a file in `_tmp/`, which is never part of the dataset and is cleaned later;
  S3     one PutObject of the whole file (S3 never shows a partial object), with `If-None-Match: *` so that an
         existing record is never silently replaced; a `failed` record may be replaced by a later attempt.
An `ok` record is never overwritten: a task that completes twice (its worker died after writing) keeps the first.
Replacing a `failed` (or unreadable) record is guarded too, so that a concurrent writer's `ok` record cannot be
clobbered between the look and the replace: locally by a lock file in `_tmp/`, on S3 by `If-Match` on the ETag
that was looked at.

Bad records. A record file that cannot be used (truncated, not Parquet, not one row, no task_key/status columns,
a task_key that is not its file name, a status other than ok/failed) is never returned as data: it is reported
(a warning naming the file, and `Store.corrupt`, which `verify()` and `htmc sweep status` count) and treated as
missing, so the task runs again and its new record replaces the bad file, locally and on S3.

The status index is in index.py; local files in local.py; S3 in s3.py (outages, retries, credentials).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import keyarray
from . import schema
from .index import StatusIndex
from .layout import (DEFAULT_RETRY_S, READ_THREADS, STATUSES, first_line, parquet_bytes, record_relpath,
                     warn)
from .manifest import load_manifest, newest_version
from .tables import CompactedView, read_part


@dataclass(frozen=True)
class StoreConfig:
    """Picklable description of a store; workers open their own Store from it."""
    uri: str
    endpoint_url: str | None = None
    region: str | None = None
    retry_s: float = DEFAULT_RETRY_S      # per-operation budget of retries against an unreachable store

    @classmethod
    def from_spec(cls, results) -> "StoreConfig":
        return cls(results.uri, results.endpoint_url, results.region,
                   float(getattr(results, "write_retry_s", DEFAULT_RETRY_S)))


def open_store(cfg: StoreConfig) -> "Store":
    if cfg.uri.startswith("s3://"):
        from .s3 import S3Store
        return S3Store(cfg)
    from .local import LocalStore
    return LocalStore(cfg)



class Store(StatusIndex):
    cfg: StoreConfig

    def __init__(self, cfg: StoreConfig):
        self.cfg = cfg
        self.corrupt: dict[str, str] = {}       # relpath -> why it cannot be used (seen by this Store object)
        self._views: dict[str, CompactedView] = {}
        self._corrupt_lock = threading.Lock()

    # --- writing
    def write_record(self, sweep: str, kind: str, record: dict, *, retry_s: float | None = None) -> bool:
        """Write one task's record atomically. Returns False if an ok record already existed (kept).
        Raises StoreUnavailable when the store did not answer within retry_s (default: the config's)."""
        return self.put_record(sweep, kind, record, retry_s=retry_s)[0]

    def put_record(self, sweep: str, kind: str, record: dict, *, retry_s: float | None = None) \
            -> tuple[bool, str | None]:
        """write_record, and the validator of the file written (for the status index; None if not known)."""
        table = schema.to_table(kind, [record])
        return self._put(record_relpath(sweep, kind, record["task_key"]), parquet_bytes(table),
                         self.cfg.retry_s if retry_s is None else retry_s)

    # --- bad records
    def _note_corrupt(self, relpath: str, reason: str) -> None:
        with self._corrupt_lock:
            new = relpath not in self.corrupt
            self.corrupt[relpath] = reason
        if new:
            warn(f"unusable record file {self._where(relpath)}: {reason}; treated as missing (the task runs "
                 f"again and its new record replaces the file)")

    def _where(self, relpath: str) -> str:
        return relpath

    def _parse(self, relpath: str, data: bytes, columns=None) -> pa.Table | None:
        """The record in `data` (only `columns` of it, those that exist), or None if the file is not a usable
        record; a file is only ever data after these checks."""
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
            names = pf.schema_arrow.names
            lacking = [c for c in ("task_key", "status") if c not in names]
            if lacking:
                self._note_corrupt(relpath, f"no '{lacking[0]}' column (not a record of this store)")
                return None
            want = None if columns is None else \
                [c for c in dict.fromkeys(["task_key", "status", *columns]) if c in names]
            t = pf.read(columns=want)
        except Exception as e:  # noqa: BLE001  whatever the parser says, the bytes are not a record
            self._note_corrupt(relpath, f"not readable as Parquet ({len(data)} bytes; {first_line(e)})")
            return None
        if t.num_rows != 1:
            self._note_corrupt(relpath, f"{t.num_rows} rows (a record has exactly one)")
            return None
        key, status = t.column("task_key")[0].as_py(), t.column("status")[0].as_py()
        stem = relpath.rsplit("/", 1)[-1][:-len(".parquet")]
        if key != stem:
            self._note_corrupt(relpath, f"holds task_key {str(key)[:40]!r}, not the key of its file name")
            return None
        if status not in STATUSES:
            self._note_corrupt(relpath, f"status {str(status)[:40]!r} is neither ok nor failed")
            return None
        if columns is not None:
            t = t.select([c for c in columns if c in t.column_names])
        return t

    def verify(self, sweep: str) -> dict[str, str]:
        """relpath -> reason for every unusable record file or compacted part of the sweep (reads every record's
        key and status)."""
        self.statuses(sweep, use_index=False)
        prefixes = (f"sweep={sweep}/", f"_tables/sweep={sweep}/")
        with self._corrupt_lock:
            return {p: r for p, r in self.corrupt.items() if p.startswith(prefixes)}

    # --- reading
    def compacted(self, sweep: str) -> CompactedView:
        """The sweep's compacted tables (tables.py): the newest manifest's usable parts and their keys. Kept while
        the newest manifest version stays the same (one listing to know), so that status and load, one after the
        other, check a million keys once."""
        cached = self._views.get(sweep)
        if cached is not None and cached.manifest.newest == newest_version(self, sweep):
            return cached
        self._views[sweep] = view = CompactedView(self, sweep)
        return view

    def statuses(self, sweep: str, kind: str | None = None, *, use_index: bool = True) \
            -> dict[str, tuple[str, str]]:
        """task_key -> (kind, status) for every usable record of the sweep, compacted (always ok) or not."""
        view = self.compacted(sweep)
        out = super().statuses(sweep, kind, use_index=use_index)
        for key, k in view.keys.items():
            if kind is None or k == kind:
                out[key] = (k, "ok")       # a compacted row wins over a per-task file of the same key
        return out

    def status_arrays(self, sweep: str, kind: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """statuses() as arrays, to count a million records with numpy (`htmc sweep status` and `plan`, issue 22
        B): kind -> (task keys as 64-bit integers, cluster/keyarray.py; True where the record is ok, False where
        failed). The same records as statuses(sweep, kind): each usable one once, a compacted row winning over a
        per-task file; like it, rewrites the status index only when asked for every kind."""
        view = self.compacted(sweep)
        loose = super().statuses(sweep, kind)
        parts = view.key_ints()
        big = np.concatenate([ints for _, ints in parts]) if parts else np.empty(0, np.uint64)
        kind_of = np.concatenate([np.full(len(ints), j) for j, (_, ints) in enumerate(parts)]) if parts else \
            np.empty(0, int)
        if keyarray.has_duplicates(big):      # a key in two parts: the later part's, as statuses()' dict update
            last = keyarray.first_occurrences(big[::-1])[::-1]
            big, kind_of = big[last], kind_of[last]
        names = [k for k, _ in parts]
        out = {}
        for k in dict.fromkeys(names):
            if kind in (None, k):
                at = np.isin(kind_of, [j for j, n in enumerate(names) if n == k])
                out[k] = (big[at], np.ones(int(at.sum()), bool))
        if loose:
            keys = keyarray.from_strings(list(loose))      # statuses() keeps only names of KEY_RE
            compacted = np.concatenate([ints for ints, _ in out.values()]) if out else np.empty(0, np.uint64)
            fresh = ~keyarray.isin(keys, compacted)
            kinds = np.array([k for k, _ in loose.values()], object)[fresh]
            oks = np.array([st == "ok" for _, st in loose.values()], bool)[fresh]
            for k in sorted(set(kinds)):
                at = kinds == k
                prev_keys, prev_ok = out.get(k, (np.empty(0, np.uint64), np.empty(0, bool)))
                out[k] = (np.concatenate([prev_keys, keys[fresh][at]]), np.concatenate([prev_ok, oks[at]]))
        return out

    def list_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        """kind -> task keys with a record (a complete per-task file or a compacted row)."""
        out = {k: set(v) for k, v in self._loose_keys(sweep, kind).items()}
        for key, k in self.compacted(sweep).keys.items():
            if kind is None or k == kind:
                out.setdefault(k, set()).add(key)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def _loose_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        """kind -> task keys with a per-task record file (complete files only)."""
        raise NotImplementedError

    def _entries(self, sweep: str, kind: str | None) -> dict[str, tuple[str, str, str | None]]:
        """relpath -> (kind, key, validator) of every record file of the sweep, from one listing."""
        raise NotImplementedError

    def _get_bytes(self, relpath: str, retry_s: float | None = None) -> bytes | None:
        raise NotImplementedError

    def _put_bytes(self, relpath: str, data: bytes) -> None:
        """Unconditional atomic write, for files outside the dataset ('_' prefixes: the status index, the nightly
        summaries of cluster/nightly.py)."""
        raise NotImplementedError

    def _list_dir(self, reldir: str, suffix: str = ".parquet") -> list[str]:
        """relpaths of the files directly in reldir (ending with '/') whose names end with suffix (one try)."""
        raise NotImplementedError

    def _delete(self, relpath: str) -> None:
        raise NotImplementedError

    def _put_once(self, relpath: str, data: bytes) -> bool:
        """Create-once write of a small file outside the dataset (a manifest version): False if it exists."""
        raise NotImplementedError

    def _write_part(self, relpath: str, table: pa.Table) -> int:
        """Write a compacted part atomically (never visible half-written); returns its size in bytes."""
        raise NotImplementedError

    def _part_location(self, relpath: str) -> tuple:
        """(pyarrow filesystem or None for the local disk, path) of a file, for pyarrow's readers."""
        raise NotImplementedError

    def uri_of(self, relpath: str) -> str:
        """A path or s3:// URI of the file that other tools (DuckDB, polars) can open."""
        return self._where(relpath)

    def _read_part(self, relpath: str, columns=None, filters=None) -> pa.Table:
        fs, path = self._part_location(relpath)
        return read_part(fs, path, columns, filters)

    def read_records(self, sweep: str, kind: str, keys) -> dict[str, dict]:
        """task_key -> record (as a dict) for those of `keys` that have a record, compacted or not."""
        keys = list(keys)
        out = {}
        # The manifest alone (one listing, one read), not the full CompactedView: a worker reading its upstream
        # record must not read every key of a million-row sweep. Rows are sorted by key: row groups are skipped.
        for p in load_manifest(self, sweep).parts:
            if p.kind != kind or len(out) == len(keys):
                continue
            try:
                t = self._read_part(p.path, None, filters=[("task_key", "in", [k for k in keys if k not in out])])
            except Exception:  # noqa: BLE001  a bad part is reported by the readers that check parts
                continue
            out.update({r["task_key"]: r for r in schema.conform(kind, t).to_pylist() if r.get("status") == "ok"})

        def one(key):
            t = self._read(record_relpath(sweep, kind, key))
            return key, (t.to_pylist()[0] if t is not None and t.num_rows else None)

        with ThreadPoolExecutor(READ_THREADS) as ex:
            out.update({k: r for k, r in ex.map(one, [k for k in keys if k not in out]) if r is not None})
        return out

    def load(self, sweep: str, kind: str | None = None, *, keys=None, columns=None) -> pa.Table:
        """The records of a sweep (optionally one kind, optionally some keys) as one table with `sweep` and `kind`
        columns, each record once: compacted rows, and per-task files of keys not compacted (tables.py). Files
        from other versions of a kind may have fewer or more columns; missing ones read as null."""
        for attempt in range(3):
            try:
                return self._load_once(sweep, kind, keys, columns)
            except FileNotFoundError:     # a part merged away by a compaction between the manifest and the read
                if attempt == 2:
                    raise

    def _load_once(self, sweep, kind, keys, columns) -> pa.Table:
        # Per-task files first, the manifest after: a compaction removes files only after its manifest is
        # visible, so a record whose file vanished between the listing and the read is in the manifest read next.
        want = None if columns is None else list(dict.fromkeys(["task_key", *columns]))
        loose: dict[str, list[pa.Table]] = {}
        for k, ks in self._loose_keys(sweep, kind).items():
            ks = [x for x in ks if keys is None or x in keys]
            with ThreadPoolExecutor(READ_THREADS) as ex:
                loose[k] = [t.replace_schema_metadata(None) for t in ex.map(
                    lambda x: self._read(record_relpath(sweep, k, x), columns=want), ks) if t is not None]
        view = self.compacted(sweep)
        tables = []
        for k in sorted(set(loose) | {k for k in view.kinds() if kind in (None, k)}):
            mine = loose.get(k, [])
            held = view.holds([t.column("task_key")[0].as_py() for t in mine])
            parts = [t for t, h in zip(mine, held) if not h]
            big = view.table(k, keys=None if keys is None else set(keys), columns=want)
            if big is not None:
                parts.insert(0, big)
            if not parts:
                continue
            t = schema.conform(k, pa.concat_tables(parts, promote_options="permissive"))
            if columns is not None:
                t = t.select([c for c in columns if c in t.column_names])
            t = t.append_column("sweep", pa.repeat(pa.scalar(sweep, pa.string()), t.num_rows))
            t = t.append_column("kind", pa.repeat(pa.scalar(k, pa.string()), t.num_rows))
            tables.append(t)
        if not tables:
            return pa.table({"task_key": pa.array([], pa.string()), "status": pa.array([], pa.string()),
                             "sweep": pa.array([], pa.string()), "kind": pa.array([], pa.string())})
        return pa.concat_tables(tables, promote_options="permissive")

    def sweeps(self) -> list[str]:
        raise NotImplementedError

    def check(self, create_bucket: bool = False, *, readonly: bool = False) -> None:
        """Raise ValueError with a clear message if the store cannot be reached (or, unless readonly, written)."""

    def describe(self) -> str:
        return self.cfg.uri

    def cleanup_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by killed writers; 0 where writes leave none (S3: one PUT each)."""
        return 0

    # backend
    def _put(self, relpath: str, data: bytes, retry_s: float) -> tuple[bool, str | None]:
        """Create-once write of a record: (written, validator of the file written)."""
        raise NotImplementedError

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        # Bytes first (retried on S3), then parse: an I/O or network error is not a bad record, a parse error is.
        data = self._get_bytes(relpath)
        return None if data is None else self._parse(relpath, data, columns)


def store_config(results) -> StoreConfig:
    """A StoreConfig from a location string (path or s3://bucket/prefix; the S3 endpoint from $AWS_ENDPOINT_URL_S3
    or $AWS_ENDPOINT_URL, as in specs), a StoreConfig, or a spec's ResultsSpec."""
    if isinstance(results, StoreConfig):
        return results
    if isinstance(results, str):
        endpoint = None
        if results.startswith("s3://"):
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        return StoreConfig(results, endpoint)
    return StoreConfig.from_spec(results)


def load_records(results, sweep: str, kind: str | None = None) -> pa.Table:
    """Every record of a sweep (optionally one kind) as one table with `sweep` and `kind` columns, each record
    once, compacted or not.

    `results` is a spec's ResultsSpec, a StoreConfig or a location string (path or s3://bucket/prefix)."""
    store = open_store(store_config(results))
    store.check(readonly=True)
    return store.load(sweep, kind)

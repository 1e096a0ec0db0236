"""The status index of a store, a cache of every record's status.

Deciding what to run needs every record's status, and parsing 20,000 Parquet footers takes 10-20 s
on two cores. So segments `<results>/_index/sweep=<name>/<id>.parquet` (ignored by dataset readers: '_' prefix)
cache (kind, key, status) per record file together with a validator of the file: (inode, size, mtime_ns) locally,
the ETag on S3. An entry is used only while the listed file still has that validator; any other file (new,
replaced, planted) is parsed and checked (Store._parse). The driver appends a small segment per 2,000 records written
(with the validators its workers report, so a finished sweep's index is complete; appending keeps its memory
flat), and statuses() compacts the segments into one. The index is only a cache: lost, stale, unreadable or
raced by two writers, it costs time, never correctness (statuses(use_index=False) and verify() read every file).
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import KEY_RE, READ_THREADS, STATUSES, parquet_bytes, record_relpath, status_of_table


class StatusIndex:
    """The status index part of Store (cluster.store.core): statuses() and the index segments."""

    def statuses(self, sweep: str, kind: str | None = None, *, use_index: bool = True) \
            -> dict[str, tuple[str, str]]:
        """task_key -> (kind, status) for every usable record of the sweep. A file is read (two columns) unless
        the status index holds it with the validator it has now; unusable files are reported and left out."""
        entries = self._entries(sweep, kind)
        index, segments = self._load_index(sweep) if use_index else ({}, [])
        out: dict[str, tuple[str, str]] = {}
        fresh: dict[tuple, tuple] = {}
        todo = []
        for rp, (k, key, v) in entries.items():
            hit = index.get((rp, v)) if v is not None else None
            if hit is not None:
                out[key] = (k, hit[2])
                fresh[(rp, v)] = hit
            else:
                todo.append((rp, k, key, v))

        def one(item):
            t = self._read(item[0], columns=["status"])
            return item, (status_of_table(t) if t is not None else None)

        with ThreadPoolExecutor(READ_THREADS) as ex:
            for (rp, k, key, v), st in ex.map(one, todo):
                if st is not None:
                    out[key] = (k, st)
                    if v is not None:
                        fresh[(rp, v)] = (k, key, st, v)
        if use_index and kind is None and (todo or len(segments) > 1 or len(fresh) != len(index)):
            if self._save_index(sweep, fresh.values()):
                self._drop_segments(segments)
        return out

    # --- the status index (a cache; see the module docstring)
    def _index_dir(self, sweep: str) -> str:
        return f"_index/sweep={sweep}/"

    def _load_index(self, sweep: str) -> tuple[dict[tuple, tuple], list[str]]:
        """({(relpath, validator): (kind, key, status, validator)}, segments read). Unreadable parts are skipped:
        the index is only a cache."""
        index: dict[tuple, tuple] = {}
        segments = []
        try:
            names = self._list_dir(self._index_dir(sweep))
        except Exception:  # noqa: BLE001
            return index, segments
        for rel in names:
            try:
                data = self._get_bytes(rel, retry_s=0.0)
                if data is None:
                    continue
                t = pq.read_table(pa.BufferReader(data))
                cols = [t.column(c).to_pylist() for c in ("kind", "task_key", "status", "validator")]
            except Exception:  # noqa: BLE001  a broken segment is dropped at the next compaction
                segments.append(rel)
                continue
            segments.append(rel)
            for k, key, st, v in zip(*cols):
                if st in STATUSES and isinstance(key, str) and KEY_RE.fullmatch(key) and isinstance(k, str) and v:
                    index[(record_relpath(sweep, k, key), v)] = (k, key, st, v)
        return index, segments

    def _save_index(self, sweep: str, rows) -> bool:
        """Write one new segment; False if it could not be written (e.g. a read-only user of the store)."""
        rows = list(rows)
        t = pa.table({c: pa.array([r[i] for r in rows], pa.string())
                      for i, c in enumerate(("kind", "task_key", "status", "validator"))})
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        try:
            self._put_bytes(self._index_dir(sweep) + name, parquet_bytes(t))
            return True
        except Exception:  # noqa: BLE001
            return False

    def _drop_segments(self, segments: list[str]) -> None:
        for rel in segments:
            try:
                self._delete(rel)
            except Exception:  # noqa: BLE001  another process compacted it first
                pass

    def merge_index(self, sweep: str, written: dict) -> None:
        """Append entries (anything -> (kind, key, status, validator)) of records this process saw written: one
        small segment, without reading the index (constant memory however large the sweep)."""
        if written:
            self._save_index(sweep, written.values())


"""Compaction: a sweep's per-task `ok` records merged into large Parquet parts per kind (manifest.py, tables.py).

Order of steps, each one safe to be killed after (issue 22's crash tests):
  1. list the per-task files and read them (a `failed` record stays a file: a later retry may replace it);
  2. write the new parts (zstd, key-sorted row groups) under new names; nothing names them yet, readers skip them;
  3. commit the next manifest version create-once: the new parts become visible at once, all or nothing;
  4. remove the per-task files now in parts, parts merged away, old manifests, and parts no manifest names.
Killed before 3: the old version stands, the records are still files, stray parts are removed by a later
compaction. Killed after 3: each merged record is in a part and maybe still in its file; readers take the part
(tables.py) and the next compaction removes the file. A driver writing records meanwhile loses nothing: a file that
was not listed in 1 is not removed in 4, and an `ok` file is never replaced, so what was read is what is removed.
A full disk (or S3 refusing a PUT) in 2 or 3 leaves the old version and every record file in place.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from . import schema
from .layout import READ_THREADS, StoreRefused, warn
from .manifest import Manifest, Part, commit_manifest, prune_manifests

BATCH_ROWS = 200_000           # per-task records written as one part at most (bounded memory)...
PART_BYTES = 256 << 20         # ...or this many bytes in memory (resnet_train records carry a net's text)
READ_GROUP = 2_000             # per-task files read, then combined into one table, at a time
MAX_PARTS_PER_KIND = 8         # more parts than this in a kind: they are merged into one
MERGE_MAX_ROWS = 2_000_000     # ...unless that kind already holds this many rows (then parts stay as they are)
ORPHAN_AGE_S = 3600.0          # a part no manifest names is removed once this old (a running compaction's is new)
AT_SWEEP_END = 1000            # run_sweep compacts when at least this many per-task ok records wait


class CompactionConflict(ValueError):
    """Another compaction of the same sweep committed first."""


def compact(results, sweep: str | None = None, *, say=None) -> dict:
    """Compact one sweep, or every sweep of the store. Returns {"results", "sweeps": [per-sweep summary]}."""
    from .read import open_readonly, sweeps_of
    store = open_readonly(results)
    return {"results": store.describe(), "sweeps": [compact_sweep(store, s, say=say) for s in sweeps_of(store, sweep)]}


@contextlib.contextmanager
def _local_lock(store, sweep: str):
    """One compaction per sweep at a time on a local store (on S3 the create-once manifest decides)."""
    root = getattr(store, "root", None)
    if root is None:
        yield
        return
    (root / "_tmp").mkdir(parents=True, exist_ok=True)
    with open(root / "_tmp" / f"compact-{sweep}.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionConflict(f"another compaction of sweep '{sweep}' is running in {store.describe()}; "
                                     f"nothing was changed") from None
        yield


def _part_relpath(sweep: str, kind: str) -> str:
    return f"sweep={sweep}/kind={kind}/part-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"


def _write(store, sweep: str, kind: str, tables: list[pa.Table], written: list[Part]) -> None:
    t = schema.conform(kind, pa.concat_tables([x.replace_schema_metadata(None) for x in tables],
                                              promote_options="permissive"))
    t = t.drop_columns([c for c in ("sweep", "kind") if c in t.column_names]).sort_by("task_key")
    t = t.replace_schema_metadata({"htmc.schema_version": schema.SCHEMA_VERSION})
    rel = _part_relpath(sweep, kind)
    written.append(Part(kind, rel, t.num_rows, 0))     # listed before the write: removed again if anything fails
    written[-1].bytes = store._write_part(rel, t)


def _merge_files(store, sweep: str, kind: str, rels: list[str], new_parts: list[Part], merged: list[str]) -> int:
    """Read the per-task files `rels` of kind a group at a time and write their ok records as parts of at most
    BATCH_ROWS rows or PART_BYTES bytes; appends to new_parts and merged. Returns the failed records left.
    Each group is combined into contiguous buffers at once: a one-row table read from a file costs ~50 KB of
    buffers, and 100,000 of them held until the part was written took the driver to 5.4 GB (issue 22 D run)."""
    pending, pending_files, failed = [], [], 0

    def flush():
        if pending:
            _write(store, sweep, kind, pending, new_parts)
            merged.extend(pending_files)
            pending.clear()
            pending_files.clear()

    for i in range(0, len(rels), READ_GROUP):
        group = rels[i:i + READ_GROUP]
        with ThreadPoolExecutor(_threads(store)) as ex:
            got = list(ex.map(store._read, group))
        ok = [(rp, t) for rp, t in zip(group, got) if t is not None and t.column("status")[0].as_py() == "ok"]
        failed += sum(1 for t in got if t is not None) - len(ok)
        if ok:
            pending.append(pa.concat_tables([t.replace_schema_metadata(None) for _, t in ok],
                                            promote_options="permissive").combine_chunks())
            pending_files.extend(rp for rp, _ in ok)
        if sum(t.num_rows for t in pending) >= BATCH_ROWS or sum(t.nbytes for t in pending) >= PART_BYTES:
            flush()
    flush()
    return failed


def compact_sweep(store, sweep: str, *, say=None) -> dict:
    """Compact one sweep of an open store; see the module docstring. Returns a summary dict."""
    t0 = time.monotonic()
    with _local_lock(store, sweep):
        view = store.compacted(sweep)
        old: Manifest = view.manifest
        entries = store._entries(sweep, None)
        dups = [rp for rp, (_, key, _) in entries.items() if key in view.keys]
        todo: dict[str, list[str]] = {}
        for rp, (k, key, _) in sorted(entries.items()):
            if key not in view.keys:
                todo.setdefault(k, []).append(rp)
        new_parts: list[Part] = []
        merged_files: list[str] = []       # per-task files whose records are in new_parts
        superseded: list[Part] = []        # old parts merged into new ones
        left_failed = 0
        try:
            for kind, rels in sorted(todo.items()):
                left_failed += _merge_files(store, sweep, kind, rels, new_parts, merged_files)
            for kind in sorted({p.kind for p in view.parts + new_parts}):
                mine = [p for p in view.parts + new_parts if p.kind == kind]
                if len(mine) > MAX_PARTS_PER_KIND and sum(p.rows for p in mine) <= MERGE_MAX_ROWS:
                    _write(store, sweep, kind, [store._read_part(p.path) for p in mine], new_parts)
                    superseded += [p for p in mine if p in view.parts]
                    new_parts[:] = [p for p in new_parts if p not in mine]
                    # the new parts merged here are not in any manifest: removed right away below
                    for p in mine:
                        if p not in view.parts:
                            _remove(store, p.path)
            if not new_parts and not view.bad and not superseded:
                _cleanup(store, sweep, view.manifest, dups)
                return _summary(store, sweep, old, 0, 0, len(dups), left_failed, t0, say)
            keep = [p for p in view.parts if p not in superseded]
            m = Manifest(sweep, old.next_version(), keep + new_parts)
            if not commit_manifest(store, m):
                raise CompactionConflict(f"another compaction of sweep '{sweep}' committed version {m.version} "
                                         f"first; nothing was lost (run it again to compact what is left)")
        except BaseException as e:
            for p in new_parts:            # nothing names them: remove them now rather than as orphans later
                _remove(store, p.path)
            if isinstance(e, StoreRefused):
                raise StoreRefused(f"compaction of sweep '{sweep}' stopped: {e}; no record was lost (the "
                                   f"compacted table is unchanged and every record file is still in place)") \
                    from None
            raise
        for p in view.bad:
            warn(f"compacted part {store.uri_of(p.path)} was unusable and is left out of manifest version "
                 f"{m.version}; its tasks have no record now and run again on the next run of the sweep")
        _cleanup(store, sweep, m, dups + merged_files + [p.path for p in superseded])
        return _summary(store, sweep, m, sum(p.rows for p in new_parts) - sum(p.rows for p in superseded),
                        len(merged_files), len(dups), left_failed, t0, say)


def _threads(store) -> int:
    """Reader threads: S3 waits on the network (many help); local reads are CPU-bound parses (GIL: few help;
    measured 5.3 s with 2 threads against 7.5 s with 16 for 1,500 files on 2 busy cores)."""
    return READ_THREADS if getattr(store, "root", None) is None else 4


def _remove(store, relpath: str) -> None:
    try:
        store._delete(relpath)
    except Exception as e:  # noqa: BLE001  a file left behind is a duplicate readers skip; the next run retries
        warn(f"could not remove {store.uri_of(relpath)} after compaction ({e}); readers skip it")


def _cleanup(store, sweep: str, m: Manifest, relpaths: list[str]) -> None:
    """After a commit: remove what the manifest made redundant, old manifests, and old orphan parts."""
    with ThreadPoolExecutor(READ_THREADS) as ex:
        list(ex.map(lambda rp: _remove(store, rp), relpaths))
    prune_manifests(store, sweep)
    live = {p.path for p in m.parts}
    now_ns = time.time_ns()
    for k in {rp.split("/")[1] for rp in relpaths} | {f"kind={p.kind}" for p in m.parts}:
        for rel in store._list_dir(f"sweep={sweep}/{k}/", ".parquet"):
            name = os.path.basename(rel)
            if not name.startswith("part-") or rel in live:
                continue
            stamp = name[len("part-"):len("part-") + 20]
            if stamp.isdigit() and (now_ns - int(stamp)) / 1e9 > ORPHAN_AGE_S:
                _remove(store, rel)


def _summary(store, sweep, m: Manifest, added_rows, merged_files, dups, left_failed, t0, say) -> dict:
    out = {"sweep": sweep, "version": m.version, "parts": len(m.parts), "rows": sum(p.rows for p in m.parts),
           "bytes": sum(p.bytes for p in m.parts), "added_rows": added_rows, "files_merged": merged_files,
           "duplicates_removed": dups, "failed_left_as_files": left_failed,
           "seconds": round(time.monotonic() - t0, 3)}
    if say is not None:
        say(f"compacted sweep '{sweep}' in {store.describe()} in {out['seconds']:.1f} s: {merged_files} record "
            f"files merged; the table "
            f"(version {m.version}) holds {out['rows']} records in {out['parts']} parts ({out['bytes']} bytes); "
            f"{left_failed} failed records stay as files")
    return out


def loose_ok_count(store, sweep: str) -> int:
    """Per-task ok records not yet compacted (from the status index: no file is parsed when it is current)."""
    view = store.compacted(sweep)
    st = store.statuses(sweep)
    return sum(1 for k, (_, s) in st.items() if s == "ok" and k not in view.keys)

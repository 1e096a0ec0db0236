"""A sweep's compacted tables as readers see them: the newest manifest's parts, checked, with their task keys.

Exactly once. Parts hold only `ok` records, and an `ok` record is never replaced, so a compacted row always wins:
a per-task file whose key is in a part (left by a compaction killed before it removed the files it merged, or
written again by a worker that finished twice) is a duplicate and is skipped by every reader; the next compaction
removes it. Per-task files of other keys (new records, `failed` ones) are read as before.

A part that cannot be used (missing, not Parquet, wrong row count, a record that is not `ok`, a key twice) is
reported like any bad record file (Store.corrupt: a warning, `verify()`, `htmc sweep status`) and its records read
as missing, so planning runs those tasks again and the next compaction drops the part from the manifest.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import keyarray
from .layout import first_line
from .manifest import Manifest, Part, load_manifest


class CompactedView:
    """The compacted side of one sweep at one manifest version (built by Store.compacted())."""

    def __init__(self, store, sweep: str):
        self.store, self.sweep = store, sweep
        self.manifest: Manifest = load_manifest(store, sweep)
        self.parts: list[Part] = []          # usable parts
        self.bad: list[Part] = []            # parts reported unusable
        self._ints: list[tuple[str, np.ndarray]] = []    # (kind, task keys as integers) per usable part
        for p in self.manifest.parts:
            ints = self._check(p)
            if ints is None:
                self.bad.append(p)
                continue
            self.parts.append(p)
            self._ints.append((p.kind, ints))

    @cached_property
    def keys(self) -> dict[str, str]:
        """task_key -> kind over the usable parts (made on first use: `htmc sweep status` counts key_ints())."""
        out: dict[str, str] = {}
        for kind, ints in self._ints:
            out.update(dict.fromkeys(keyarray.to_strings(ints), kind))
        return out

    @cached_property
    def _index(self) -> keyarray.KeyIndex:
        ints = [i for _, i in self._ints]
        return keyarray.KeyIndex(np.concatenate(ints) if ints else np.empty(0, np.uint64))

    def holds(self, keys: list[str]) -> np.ndarray:
        """Boolean mask: which of `keys` (key strings) have a compacted row; without making the key dict."""
        return self._index.contains(keyarray.from_strings(keys)) if keys else np.zeros(0, bool)

    def key_ints(self) -> list[tuple[str, np.ndarray]]:
        """(kind, its task keys as 64-bit integers, cluster/keyarray.py) per usable part, in manifest order."""
        return list(self._ints)

    def _check(self, p: Part) -> np.ndarray | None:
        try:
            t = self.store._read_part(p.path, ["task_key", "status"])
        except FileNotFoundError:
            self.store._note_corrupt(p.path, "compacted part named by the manifest is missing")
            return None
        except Exception as e:  # noqa: BLE001  whatever the parser says, the part is not usable
            self.store._note_corrupt(p.path, f"compacted part not readable as Parquet ({first_line(e)})")
            return None
        why, ints = None, None
        status = t.column("status") if "status" in t.column_names else None
        if t.num_rows != p.rows:
            why = f"{t.num_rows} rows, the manifest says {p.rows}"
        elif status is None or "task_key" not in t.column_names:
            why = "lacks the task_key or status column"
        elif t.num_rows and (status.null_count or not pc.all(pc.equal(status, "ok")).as_py()):
            why = "holds a record that is not ok"
        # a key of KEY_RE: 16 lowercase hex digits, checked by decoding them (keyarray; a regex took 0.1 s a million)
        elif (ints := keyarray.from_strings(t.column("task_key"))) is None:
            why = "holds a malformed task key"
        elif keyarray.has_duplicates(ints):
            why = "holds a task key twice"
        if why is not None:
            self.store._note_corrupt(p.path, f"compacted part {why}; its records read as missing and run again")
            return None
        return ints

    def kinds(self) -> list[str]:
        return sorted({p.kind for p in self.parts})

    def table(self, kind: str, *, keys=None, columns=None) -> pa.Table | None:
        """The compacted rows of kind (only `keys`, only `columns` when given), or None when there are none."""
        parts = []
        for p in self.parts:
            if p.kind != kind:
                continue
            want = None if columns is None else list(dict.fromkeys(["task_key", *columns]))
            filters = None if keys is None else [("task_key", "in", sorted(keys))]
            t = self.store._read_part(p.path, want, filters=filters)
            if columns is not None:
                t = t.select([c for c in columns if c in t.column_names])
            parts.append(t.replace_schema_metadata(None))
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="permissive")


def read_part(fs, path: str, columns=None, filters=None) -> pa.Table:
    """One part through pyarrow (fs None: the local disk); only the columns that exist in it are read."""
    pf = pq.ParquetFile(path, filesystem=fs) if fs is not None else pq.ParquetFile(path)
    names = pf.schema_arrow.names
    cols = None if columns is None else [c for c in columns if c in names]
    if filters is None:
        return pf.read(columns=cols)
    return pq.read_table(path, filesystem=fs, columns=cols, filters=filters)

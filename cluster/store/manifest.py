"""The manifest of a sweep's compacted tables: which large Parquet files ("parts") hold its compacted records.

Layout. `<results>/_tables/sweep=<name>/<version>.json` (10-digit version; '_' prefix: dataset readers skip it)
lists the sweep's live parts, each `sweep=<name>/kind=<kind>/part-<id>.parquet` beside the per-task record files.
A part holds `ok` records of one kind, sorted by task_key, without the hive columns (like every file of the store).

Atomic visibility. A version is written create-once (locally a hard link of a fsynced temporary file, on S3 one PUT
with If-None-Match: *), after every part it names is in place; readers take the highest version. So a compaction
killed at any point leaves either the old version or the new one visible, never a partial table; parts that no
version names are ignored by readers and removed by a later compaction. Two compactions racing for the same
version: one wins, the other removes its parts and says so. The format is ours rather than Delta Lake or Iceberg
(docs/ARCHITECTURE.md says why, with the measurements).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .layout import warn

FORMAT = "htmc-compacted/1"
KEEP_VERSIONS = 3         # older manifests are removed; a reader that listed one a moment ago still finds it


@dataclass
class Part:
    kind: str
    path: str              # relpath under the results root
    rows: int
    bytes: int = 0


@dataclass
class Manifest:
    sweep: str
    version: int = 0       # 0: nothing compacted yet (an old store, or a new one)
    parts: list[Part] = field(default_factory=list)
    created_at: float = 0.0
    newest: int = 0        # the highest version listed (> version when the newest one is unreadable)

    def next_version(self) -> int:
        return max(self.version, self.newest) + 1

    def to_bytes(self) -> bytes:
        return json.dumps({"format": FORMAT, "sweep": self.sweep, "version": self.version,
                           "created_at": self.created_at, "parts": [vars(p) for p in self.parts]},
                          indent=1).encode()

    def kinds(self) -> list[str]:
        return sorted({p.kind for p in self.parts})


def manifest_dir(sweep: str) -> str:
    return f"_tables/sweep={sweep}/"


def manifest_relpath(sweep: str, version: int) -> str:
    return f"{manifest_dir(sweep)}{version:010d}.json"


def _versions(store, sweep: str) -> list[int]:
    out = []
    for rel in store._list_dir(manifest_dir(sweep), ".json"):
        stem = rel.rsplit("/", 1)[-1][:-len(".json")]
        if stem.isdigit() and len(stem) == 10:
            out.append(int(stem))
    return sorted(out)


def _parse(sweep: str, data: bytes) -> Manifest:
    d = json.loads(data)
    if d.get("format") != FORMAT or d.get("sweep") != sweep:
        raise ValueError(f"format {d.get('format')!r} / sweep {d.get('sweep')!r}")
    parts = [Part(p["kind"], p["path"], int(p["rows"]), int(p.get("bytes", 0))) for p in d["parts"]]
    for p in parts:
        if not p.path.startswith(f"sweep={sweep}/kind={p.kind}/part-") or not p.path.endswith(".parquet"):
            raise ValueError(f"part path {p.path!r} is outside the sweep's partition")
    return Manifest(sweep, int(d["version"]), parts, float(d.get("created_at", 0.0)))


def load_manifest(store, sweep: str) -> Manifest:
    """The newest readable manifest of the sweep (version 0 and no parts when there is none). An unreadable newest
    manifest is reported and the one before it is used: the records it alone named read as missing and run again
    (their per-task files were removed after it was written), which is loud, not silent."""
    versions = _versions(store, sweep)
    for v in reversed(versions):
        rel = manifest_relpath(sweep, v)
        data = store._get_bytes(rel)
        if data is None:           # removed by a compaction between the listing and the read: take the next
            continue
        try:
            m = _parse(sweep, data)
        except Exception as e:  # noqa: BLE001  any parse failure: not a manifest we can trust
            store._note_corrupt(rel, f"compacted-table manifest not readable ({type(e).__name__}: {e}); "
                                     f"the records only it names read as missing and run again")
            continue
        if m.version != v:
            store._note_corrupt(rel, f"manifest says version {m.version}, its name {v}")
            continue
        m.newest = versions[-1]
        return m
    return Manifest(sweep, newest=versions[-1] if versions else 0)


def newest_version(store, sweep: str) -> int:
    """The highest manifest version listed (0: none); readers compare it before and after a read."""
    v = _versions(store, sweep)
    return v[-1] if v else 0


def commit_manifest(store, m: Manifest) -> bool:
    """Write version m.version create-once; False if another compaction wrote that version first."""
    m.created_at = time.time()
    return store._put_once(manifest_relpath(m.sweep, m.version), m.to_bytes())


def prune_manifests(store, sweep: str) -> None:
    """Remove manifests older than the last KEEP_VERSIONS (best effort)."""
    for v in _versions(store, sweep)[:-KEEP_VERSIONS]:
        try:
            store._delete(manifest_relpath(sweep, v))
        except Exception as e:  # noqa: BLE001  a leftover manifest costs a listing entry, nothing else
            warn(f"could not remove old manifest version {v} of sweep '{sweep}': {e}")

"""The store on a local disk: atomic create-once writes by hard link, replacement under a lock."""
from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .core import Store, StoreConfig
from .layout import KEY_RE, REPLACE_LOCK, refusing, status_of_table

PART_ROW_GROUP = 65536    # rows per row group of a compacted part: key-sorted, so a key lookup reads one group


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _local_validator(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


class LocalStore(Store):
    def __init__(self, cfg: StoreConfig):
        super().__init__(cfg)
        self.root = Path(cfg.uri).expanduser().resolve()

    def _where(self, relpath: str) -> str:
        return str(self.root / relpath)

    def check(self, create_bucket: bool = False, *, readonly: bool = False) -> None:
        if readonly:
            if self.root.exists() and not self.root.is_dir():
                raise ValueError(f"results location '{self.cfg.uri}' is not a directory")
            return
        try:
            (self.root / "_tmp").mkdir(parents=True, exist_ok=True)
            probe = self.root / "_tmp" / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ValueError(f"results location '{self.cfg.uri}' is not writable: {e}") from None

    def describe(self) -> str:
        return str(self.root)

    def cleanup_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by killed writers (never part of the dataset)."""
        n, now = 0, time.time()
        for p in (self.root / "_tmp").glob("*"):
            if p.name == REPLACE_LOCK:
                continue
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n

    def _put(self, relpath: str, data: bytes, retry_s: float = 0.0) -> tuple[bool, str | None]:
        with refusing(f"record {self.root / relpath}"):
            return self._put_local(relpath, data)

    def _put_local(self, relpath: str, data: bytes) -> tuple[bool, str | None]:
        final, tmp = self._tmp_for(relpath)
        tmpdir = tmp.parent
        try:
            _write_synced(tmp, data)
            # the file placed below is this very inode, so this is its validator for the status index
            validator = _local_validator(os.stat(tmp))
            try:
                os.link(tmp, final)          # create-once: fails if a record exists
                written = True
            except FileExistsError:
                # Look and replace under one lock: another writer's ok record must not land in between.
                with open(tmpdir / REPLACE_LOCK, "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    old = self._read(relpath, columns=["status"])
                    if old is not None and status_of_table(old) == "ok":
                        written = False          # never replace an ok record
                    else:
                        os.replace(tmp, final)   # replace a failed (or unusable) record atomically
                        written = True
            # No fsync of the directory: after a power loss the link may be gone, and the task simply runs again.
            return written, (validator if written else None)
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass

    def _entries(self, sweep: str, kind: str | None) -> dict[str, tuple[str, str, str | None]]:
        base = self.root / f"sweep={sweep}"
        out = {}
        if not base.is_dir():
            return out
        for d in sorted(base.glob("kind=*")):
            k = d.name[len("kind="):]
            if kind is not None and k != kind:
                continue
            with os.scandir(d) as it:
                for e in it:
                    stem = e.name[:-len(".parquet")] if e.name.endswith(".parquet") else ""
                    if KEY_RE.fullmatch(stem):
                        try:
                            v = _local_validator(e.stat())
                        except FileNotFoundError:
                            continue
                        out[f"sweep={sweep}/kind={k}/{e.name}"] = (k, stem, v)
        return out

    def _get_bytes(self, relpath: str, retry_s: float | None = None) -> bytes | None:
        try:
            return (self.root / relpath).read_bytes()
        except FileNotFoundError:
            return None

    def _tmp_for(self, relpath: str) -> tuple[Path, Path]:
        """(final path, a fresh temporary path in _tmp/ for it), with both directories made."""
        final = self.root / relpath
        final.parent.mkdir(parents=True, exist_ok=True)
        (self.root / "_tmp").mkdir(parents=True, exist_ok=True)
        return final, self.root / "_tmp" / f"{final.stem}-{uuid.uuid4().hex}{final.suffix}"

    def _put_bytes(self, relpath: str, data: bytes) -> None:
        final, tmp = self._tmp_for(relpath)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)    # a full disk must not leave a partial file behind (issue 22)

    def _put_once(self, relpath: str, data: bytes) -> bool:
        final, tmp = self._tmp_for(relpath)
        try:
            _write_synced(tmp, data)
            try:
                os.link(tmp, final)        # create-once
            except FileExistsError:
                return False
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _write_part(self, relpath: str, table: pa.Table) -> int:
        with refusing(f"compacted part {self.root / relpath}"):
            return self._write_part_local(relpath, table)

    def _write_part_local(self, relpath: str, table: pa.Table) -> int:
        final, tmp = self._tmp_for(relpath)
        try:
            with open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd", row_group_size=PART_ROW_GROUP)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)         # whole or not at all; the name is new (part-<time>-<id>)
            return final.stat().st_size
        finally:
            tmp.unlink(missing_ok=True)

    def _part_location(self, relpath: str) -> tuple:
        return None, str(self.root / relpath)

    def _list_dir(self, reldir: str, suffix: str = ".parquet") -> list[str]:
        d = self.root / reldir
        if not d.is_dir():
            return []
        return [f"{reldir}{e.name}" for e in os.scandir(d) if e.is_file() and e.name.endswith(suffix)]

    def _delete(self, relpath: str) -> None:
        (self.root / relpath).unlink(missing_ok=True)

    def _loose_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, key, _ in self._entries(sweep, kind).values():
            out.setdefault(k, []).append(key)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def sweeps(self) -> list[str]:
        return sorted(d.name[len("sweep="):] for d in self.root.glob("sweep=*") if d.is_dir())

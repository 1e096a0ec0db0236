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

Status index. Deciding what to run needs every record's status, and parsing 20,000 Parquet footers takes 10-20 s
on two cores. So segments `<results>/_index/sweep=<name>/<id>.parquet` (ignored by dataset readers: '_' prefix)
cache (kind, key, status) per record file together with a validator of the file: (inode, size, mtime_ns) locally,
the ETag on S3. An entry is used only while the listed file still has that validator; any other file (new,
replaced, planted) is parsed and checked as above. The driver appends a small segment per 2,000 records written
(with the validators its workers report, so a finished sweep's index is complete; appending keeps its memory
flat), and statuses() compacts the segments into one. The index is only a cache: lost, stale, unreadable or
raced by two writers, it costs time, never correctness (statuses(use_index=False) and verify() read every file).

Outages. S3 requests (reads, listings, writes) that fail for a transient reason (connection refused or reset,
timeouts, 5xx, throttling) are retried with exponential backoff and jitter for up to `results.write_retry_s`
seconds per operation (default 60); then StoreUnavailable names the endpoint, the operation and the time spent.
The clients' own retries are off, so that this budget is the only one. What a worker does then is in
cluster/worker.py and cluster/dispatch.py (the task is retried later, then reported failed).

S3 goes through pyarrow's S3FileSystem for listing and reading, always with an explicit `endpoint_override`
when one is configured (pyarrow ignores AWS_ENDPOINT_URL), and through boto3 where pyarrow has no API:
bucket checks and creation, and conditional puts. Credentials come from the environment (or the instance role);
they are passed to both clients explicitly and never logged.
"""
from __future__ import annotations

import atexit
import fcntl
import os
import random
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import schema

KEY_RE = re.compile(r"[0-9a-f]{16}")
READ_THREADS = 16
DEFAULT_RETRY_S = 60.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 5.0
STATUSES = ("ok", "failed")
REPLACE_LOCK = "replace.lock"


class StoreUnavailable(OSError):
    """The store did not answer within the retry budget (results.write_retry_s). The message names the store, its
    endpoint, the operation and the time spent."""


def _warn(msg: str) -> None:
    print(f"htmc: warning: {msg}", file=sys.stderr, flush=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"


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
    return S3Store(cfg) if cfg.uri.startswith("s3://") else LocalStore(cfg)


def _record_relpath(sweep: str, kind: str, key: str) -> str:
    if not KEY_RE.fullmatch(key):
        raise ValueError(f"bad task key {key!r}")
    return f"sweep={sweep}/kind={kind}/{key}.parquet"


def _to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _status_of_table(t: pa.Table) -> str | None:
    return t.column("status")[0].as_py() if "status" in t.column_names and t.num_rows else None


class Store:
    cfg: StoreConfig

    def __init__(self, cfg: StoreConfig):
        self.cfg = cfg
        self.corrupt: dict[str, str] = {}       # relpath -> why it cannot be used (seen by this Store object)
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
        return self._put(_record_relpath(sweep, kind, record["task_key"]), _to_bytes(table),
                         self.cfg.retry_s if retry_s is None else retry_s)

    # --- bad records
    def _note_corrupt(self, relpath: str, reason: str) -> None:
        with self._corrupt_lock:
            new = relpath not in self.corrupt
            self.corrupt[relpath] = reason
        if new:
            _warn(f"unusable record file {self._where(relpath)}: {reason}; treated as missing (the task runs "
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
            self._note_corrupt(relpath, f"not readable as Parquet ({len(data)} bytes; {_first_line(e)})")
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
        """relpath -> reason for every unusable record file of the sweep (reads every record's key and status)."""
        self.statuses(sweep, use_index=False)
        prefix = f"sweep={sweep}/"
        with self._corrupt_lock:
            return {p: r for p, r in self.corrupt.items() if p.startswith(prefix)}

    # --- reading
    def list_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        """kind -> task keys with a record file (complete files only)."""
        raise NotImplementedError

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
            return item, (_status_of_table(t) if t is not None else None)

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
                    index[(_record_relpath(sweep, k, key), v)] = (k, key, st, v)
        return index, segments

    def _save_index(self, sweep: str, rows) -> bool:
        """Write one new segment; False if it could not be written (e.g. a read-only user of the store)."""
        rows = list(rows)
        t = pa.table({c: pa.array([r[i] for r in rows], pa.string())
                      for i, c in enumerate(("kind", "task_key", "status", "validator"))})
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
        try:
            self._put_bytes(self._index_dir(sweep) + name, _to_bytes(t))
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

    def read_records(self, sweep: str, kind: str, keys) -> dict[str, dict]:
        """task_key -> record (as a dict) for those of `keys` that have a record."""
        def one(key):
            t = self._read(_record_relpath(sweep, kind, key))
            return key, (t.to_pylist()[0] if t is not None and t.num_rows else None)

        with ThreadPoolExecutor(READ_THREADS) as ex:
            return {k: r for k, r in ex.map(one, list(keys)) if r is not None}

    def load(self, sweep: str, kind: str | None = None, *, keys=None, columns=None) -> pa.Table:
        """The records of a sweep (optionally one kind, optionally some keys) as one table with `sweep` and `kind`
        columns. Files from other versions of a kind may have fewer or more columns; missing ones read as null."""
        tables = []
        for k, ks in sorted(self.list_keys(sweep, kind).items()):
            if keys is not None:
                ks = [x for x in ks if x in keys]
            with ThreadPoolExecutor(READ_THREADS) as ex:
                parts = [t for t in ex.map(lambda x: self._read(_record_relpath(sweep, k, x), columns=columns),
                                           sorted(ks))
                         if t is not None]
            if not parts:
                continue
            t = pa.concat_tables([p.replace_schema_metadata(None) for p in parts], promote_options="permissive")
            t = schema.conform(k, t)
            t = t.append_column("sweep", pa.array([sweep] * t.num_rows, pa.string()))
            t = t.append_column("kind", pa.array([k] * t.num_rows, pa.string()))
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

    # backend
    def _put(self, relpath: str, data: bytes, retry_s: float) -> tuple[bool, str | None]:
        """Create-once write of a record: (written, validator of the file written)."""
        raise NotImplementedError

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------- local
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
        final = self.root / relpath
        final.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = self.root / "_tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        tmp = tmpdir / f"{final.stem}-{uuid.uuid4().hex}.parquet"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
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
                    if old is not None and _status_of_table(old) == "ok":
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

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        # Bytes first, then parse: an I/O error is not a bad record, a parse error is.
        data = self._get_bytes(relpath)
        return None if data is None else self._parse(relpath, data, columns)

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

    def _put_bytes(self, relpath: str, data: bytes) -> None:
        final = self.root / relpath
        final.parent.mkdir(parents=True, exist_ok=True)
        (self.root / "_tmp").mkdir(parents=True, exist_ok=True)
        tmp = self.root / "_tmp" / f"{final.stem}-{uuid.uuid4().hex}.parquet"
        tmp.write_bytes(data)
        os.replace(tmp, final)

    def _list_dir(self, reldir: str, suffix: str = ".parquet") -> list[str]:
        d = self.root / reldir
        if not d.is_dir():
            return []
        return [f"{reldir}{e.name}" for e in os.scandir(d) if e.is_file() and e.name.endswith(suffix)]

    def _delete(self, relpath: str) -> None:
        (self.root / relpath).unlink(missing_ok=True)

    def list_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, key, _ in self._entries(sweep, kind).values():
            out.setdefault(k, []).append(key)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def sweeps(self) -> list[str]:
        return sorted(d.name[len("sweep="):] for d in self.root.glob("sweep=*") if d.is_dir())


# ---------------------------------------------------------------------------------------------------- S3
_finalizer_registered = threading.Lock()
_FINALIZE = []


def _register_s3_finalizer():
    with _finalizer_registered:
        if not _FINALIZE:
            import pyarrow.fs as pafs

            def _fin():
                try:
                    pafs.finalize_s3()
                except Exception:  # noqa: BLE001  at interpreter exit, nothing to report to
                    pass
            atexit.register(_fin)
            _FINALIZE.append(_fin)


def _credentials() -> dict:
    """Credentials from the environment, for explicit hand-over to both clients (never logged)."""
    c = {}
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        c = {"access_key": os.environ["AWS_ACCESS_KEY_ID"], "secret_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
        if os.environ.get("AWS_SESSION_TOKEN"):
            c["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return c


_PRECONDITION = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_PERMANENT_S3 = ("AccessDenied", "ACCESS_DENIED", "NoSuchBucket", "NO_SUCH_BUCKET", "InvalidAccessKeyId",
                 "SignatureDoesNotMatch", "InvalidBucketName", "AuthorizationHeaderMalformed")


def _transient(e: BaseException) -> bool:
    """Worth retrying: the endpoint is down, slow or overloaded (not: denied, missing, malformed)."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError
    if isinstance(e, ClientError):
        err = e.response.get("Error", {}) or {}
        http = int((e.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode") or 0)
        return http >= 500 or http == 429 or str(err.get("Code", "")) in (
            "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable")
    if isinstance(e, (HTTPClientError, BotoConnectionError)):
        return True
    if isinstance(e, BotoCoreError) or isinstance(e, FileNotFoundError):
        return False
    if isinstance(e, OSError):       # pyarrow's S3 errors: OSError with the AWS error text
        return not any(m in str(e) for m in _PERMANENT_S3)
    return False


class S3Store(Store):
    def __init__(self, cfg: StoreConfig):
        super().__init__(cfg)
        m = re.fullmatch(r"s3://([^/]+)/?(.*)", cfg.uri)
        if not m:
            raise ValueError(f"not an s3://bucket/prefix URI: {cfg.uri!r}")
        self.bucket, self.prefix = m.group(1), m.group(2).strip("/")
        self.region = cfg.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
            or "us-east-1"
        self._fs = None
        self._s3 = None
        self._lock = threading.Lock()

    # clients, created lazily (workers pickle only the config)
    @property
    def fs(self):
        with self._lock:
            if self._fs is None:
                import pyarrow.fs as pafs
                _register_s3_finalizer()
                # retries are ours (_call): one budget, results.write_retry_s, for every request
                kw = dict(region=self.region, connect_timeout=5, request_timeout=60,
                          retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
                if self.cfg.endpoint_url:
                    kw["endpoint_override"] = self.cfg.endpoint_url
                    kw["scheme"] = "https" if self.cfg.endpoint_url.startswith("https") else "http"
                kw.update(_credentials())
                self._fs = pafs.S3FileSystem(**kw)
            return self._fs

    @property
    def s3(self):
        with self._lock:
            if self._s3 is None:
                import boto3
                from botocore.config import Config
                c = _credentials()
                self._s3 = boto3.client(
                    "s3", endpoint_url=self.cfg.endpoint_url, region_name=self.region,
                    aws_access_key_id=c.get("access_key"), aws_secret_access_key=c.get("secret_key"),
                    aws_session_token=c.get("session_token"),
                    config=Config(connect_timeout=5, read_timeout=60,
                                  retries={"total_max_attempts": 1, "mode": "standard"}))
            return self._s3

    def _key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def describe(self) -> str:
        return self.cfg.uri + (f" (endpoint {self.cfg.endpoint_url})" if self.cfg.endpoint_url
                               else f" (AWS S3, {self.region})")

    def _where(self, relpath: str) -> str:
        return f"s3://{self.bucket}/{self._key(relpath)}"

    def _call(self, what: str, fn, retry_s: float | None = None, *, deadline: float | None = None):
        """fn(), retried with exponential backoff and jitter while it fails transiently, for up to retry_s."""
        t0 = time.monotonic()
        if deadline is None:
            deadline = t0 + (self.cfg.retry_s if retry_s is None else retry_s)
        tries, delay = 0, BACKOFF_FIRST_S
        while True:
            tries += 1
            try:
                return fn()
            except Exception as e:  # noqa: BLE001  classified just below
                if not _transient(e):
                    raise
                now = time.monotonic()
                if now >= deadline:
                    raise StoreUnavailable(
                        f"S3 results store {self.describe()} is unavailable: {what} still failing after "
                        f"{now - t0:.1f} s and {tries} tries (results.write_retry_s = {self.cfg.retry_s:g}); "
                        f"last error: {_first_line(e)}") from None
                # jitter keeps many workers from hammering a recovering endpoint in step
                time.sleep(min(delay * random.uniform(0.5, 1.0), deadline - now))
                delay = min(delay * 2, BACKOFF_MAX_S)

    def check(self, create_bucket: bool = False, *, readonly: bool = False) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
        where = self.describe()
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except EndpointConnectionError as e:
            raise ValueError(f"S3 endpoint for results '{where}' is unreachable: {e}") from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                if not create_bucket or readonly:
                    raise ValueError(f"bucket '{self.bucket}' of results '{where}' does not exist; create it "
                                     f"(aws s3 mb s3://{self.bucket}) or set results.create_bucket: true") from None
                kw = {"Bucket": self.bucket}
                if self.region != "us-east-1":
                    kw["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                self.s3.create_bucket(**kw)
            elif code in ("403", "AccessDenied", "Forbidden"):
                raise ValueError(f"access to bucket '{self.bucket}' of results '{where}' is denied; check the AWS "
                                 f"credentials in the environment") from None
            else:
                raise ValueError(f"S3 results '{where}' cannot be used: {e}") from None
        except BotoCoreError as e:
            raise ValueError(f"S3 results '{where}' cannot be used: {e}") from None

    def _put(self, relpath: str, data: bytes, retry_s: float | None = None) -> tuple[bool, str | None]:
        from botocore.exceptions import ClientError
        key = self._key(relpath)
        deadline = time.monotonic() + (self.cfg.retry_s if retry_s is None else retry_s)

        def put(**cond):
            try:
                return self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **cond).get("ETag") or ""
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in _PRECONDITION + ("NoSuchKey", "404"):
                    return None
                raise

        def get():
            try:
                r = self.s3.get_object(Bucket=self.bucket, Key=key)
                return r["ETag"], r["Body"].read()
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404"):
                    return None
                raise

        # One PUT of the whole object: S3 never shows part of it. If-None-Match: create-once.
        etag = self._call(f"PUT {key}", lambda: put(IfNoneMatch="*"), deadline=deadline)
        if etag is not None:
            return True, etag or None
        for _ in range(8):
            got = self._call(f"GET {key}", get, deadline=deadline)
            if got is None:             # deleted since: create it
                etag = self._call(f"PUT {key}", lambda: put(IfNoneMatch="*"), deadline=deadline)
                if etag is not None:
                    return True, etag or None
                continue
            old_etag, old = got
            if old == data:             # our own earlier PUT whose answer was lost (a retried request)
                return True, old_etag
            t = self._parse(relpath, old, ["status"])
            if t is not None and _status_of_table(t) == "ok":
                return False, None      # never replace an ok record
            # Replace a failed (or unusable) record, but only the very object looked at: If-Match on its ETag.
            etag = self._call(f"PUT {key}", lambda: put(IfMatch=old_etag), deadline=deadline)
            if etag is not None:
                return True, etag or None
        raise StoreUnavailable(f"record s3://{self.bucket}/{key} kept changing while it was being replaced")

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        # Bytes first (retried), then parse: a network error is not a bad record, a parse error is.
        data = self._get_bytes(relpath)
        return None if data is None else self._parse(relpath, data, columns)

    def _get_bytes(self, relpath: str, retry_s: float | None = None) -> bytes | None:
        path = f"{self.bucket}/{self._key(relpath)}"

        def fetch():
            try:
                with self.fs.open_input_file(path) as f:
                    return f.read()
            except FileNotFoundError:
                return None
            except OSError as e:
                if "NoSuchKey" in str(e) or "does not exist" in str(e):
                    return None
                raise
        return self._call(f"GET {path}", fetch, retry_s)

    def _put_bytes(self, relpath: str, data: bytes) -> None:
        key = self._key(relpath)
        self._call(f"PUT {key}", lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=data), 0.0)

    def _list_dir(self, reldir: str, suffix: str = ".parquet") -> list[str]:
        prefix, cut = self._key(reldir), len(self._key(""))

        def listing():
            return [o["Key"][cut:] for page in self.s3.get_paginator("list_objects_v2").paginate(
                        Bucket=self.bucket, Prefix=prefix, Delimiter="/")
                    for o in page.get("Contents", []) or [] if o["Key"].endswith(suffix)]
        return self._call(f"LIST s3://{self.bucket}/{prefix}", listing, 0.0)

    def _delete(self, relpath: str) -> None:
        key = self._key(relpath)
        self._call(f"DELETE {key}", lambda: self.s3.delete_object(Bucket=self.bucket, Key=key), 0.0)

    def _entries(self, sweep: str, kind: str | None) -> dict[str, tuple[str, str, str | None]]:
        # boto3, not pyarrow, lists here: the ETag (the validator of the status index) is only in S3's listing
        base = f"sweep={sweep}/" + (f"kind={kind}/" if kind else "")
        prefix = self._key(base)
        cut = len(self._key(""))

        def listing():
            out = {}
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents", []) or []:
                    rel = o["Key"][cut:]
                    parts = rel.split("/")
                    if len(parts) != 3 or not parts[1].startswith("kind=") or not parts[2].endswith(".parquet"):
                        continue
                    stem = parts[2][:-len(".parquet")]
                    if KEY_RE.fullmatch(stem):
                        out[rel] = (parts[1][len("kind="):], stem, o.get("ETag") or None)
            return out
        return self._call(f"LIST s3://{self.bucket}/{prefix}", listing)

    def _ls(self, relpath: str, recursive: bool = False):
        import pyarrow.fs as pafs
        path = "/".join(x for x in (self.bucket, self.prefix, relpath) if x)
        sel = pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
        return self._call(f"LIST {path}", lambda: self.fs.get_file_info(sel))

    def list_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        import pyarrow.fs as pafs
        out: dict[str, list[str]] = {}
        base = f"sweep={sweep}" + (f"/kind={kind}" if kind else "")
        for info in self._ls(base, recursive=True):
            if info.type != pafs.FileType.File:
                continue
            parts = info.path.split("/")
            if len(parts) < 2 or not parts[-2].startswith("kind="):
                continue
            stem = parts[-1][:-len(".parquet")] if parts[-1].endswith(".parquet") else ""
            if KEY_RE.fullmatch(stem):
                out.setdefault(parts[-2][len("kind="):], []).append(stem)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def sweeps(self) -> list[str]:
        import pyarrow.fs as pafs
        return sorted(i.base_name[len("sweep="):] for i in self._ls("") if i.type == pafs.FileType.Directory
                      and i.base_name.startswith("sweep="))


def load_records(results, sweep: str, kind: str | None = None) -> pa.Table:
    """Every record of a sweep (optionally one kind) as one table with `sweep` and `kind` columns.

    `results` is a spec's ResultsSpec, a StoreConfig or a location string (path or s3://bucket/prefix)."""
    if isinstance(results, str):
        cfg = StoreConfig(results)
    elif isinstance(results, StoreConfig):
        cfg = results
    else:
        cfg = StoreConfig.from_spec(results)
    store = open_store(cfg)
    store.check(readonly=True)
    return store.load(sweep, kind)

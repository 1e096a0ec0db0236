"""The Parquet result store (DESIGN §4): `<results>/sweep=<name>/kind=<kind>/<task_key>.parquet`, on disk or S3.

One file per task key, so a key can never have two records. Files hold no partition columns (schema.py).

Atomic writes. A record file either exists complete or does not exist:
  local  the file is written under `<results>/_tmp/` (ignored by dataset readers: '_' prefix), fsynced, then
         hard-linked into place (link fails if the name exists: create-once) or renamed over a `failed` record;
         a killed writer leaves at most a file in `_tmp/`, which is never part of the dataset and is cleaned later;
  S3     one PutObject of the whole file (S3 never shows a partial object), with `If-None-Match: *` so that an
         existing record is never silently replaced; a `failed` record may be replaced by a later attempt.
An `ok` record is never overwritten: a task that completes twice (its worker died after writing) keeps the first.

S3 goes through pyarrow's S3FileSystem for listing and reading, always with an explicit `endpoint_override`
when one is configured (pyarrow ignores AWS_ENDPOINT_URL), and through boto3 where pyarrow has no API:
bucket checks and creation, and conditional puts. Credentials come from the environment (or the instance role);
they are passed to both clients explicitly and never logged.
"""
from __future__ import annotations

import atexit
import io
import os
import re
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


@dataclass(frozen=True)
class StoreConfig:
    """Picklable description of a store; workers open their own Store from it."""
    uri: str
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_spec(cls, results) -> "StoreConfig":
        return cls(results.uri, results.endpoint_url, results.region)


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

    # --- writing
    def write_record(self, sweep: str, kind: str, record: dict) -> bool:
        """Write one task's record atomically. Returns False if an ok record already existed (kept)."""
        table = schema.to_table(kind, [record])
        return self._put(_record_relpath(sweep, kind, record["task_key"]), _to_bytes(table))

    # --- reading
    def list_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        """kind -> task keys with a record file (complete files only)."""
        raise NotImplementedError

    def statuses(self, sweep: str, kind: str | None = None) -> dict[str, tuple[str, str]]:
        """task_key -> (kind, status) for every record of the sweep (reads only two columns per file)."""
        out = {}
        jobs = [(k, key) for k, keys in self.list_keys(sweep, kind).items() for key in keys]

        def one(item):
            k, key = item
            t = self._read(_record_relpath(sweep, k, key), columns=["status"])
            return key, (k, _status_of_table(t) if t is not None else None)

        with ThreadPoolExecutor(READ_THREADS) as ex:
            for key, val in ex.map(one, jobs):
                if val[1] is not None:
                    out[key] = val
        return out

    def read_records(self, sweep: str, kind: str, keys) -> dict[str, dict]:
        """task_key -> record (as a dict) for those of `keys` that have a record."""
        def one(key):
            t = self._read(_record_relpath(sweep, kind, key))
            return key, (t.to_pylist()[0] if t is not None and t.num_rows else None)

        with ThreadPoolExecutor(READ_THREADS) as ex:
            return {k: r for k, r in ex.map(one, list(keys)) if r is not None}

    def load(self, sweep: str, kind: str | None = None, *, keys=None) -> pa.Table:
        """The records of a sweep (optionally one kind, optionally some keys) as one table with `sweep` and `kind`
        columns. Files from other versions of a kind may have fewer or more columns; missing ones read as null."""
        tables = []
        for k, ks in sorted(self.list_keys(sweep, kind).items()):
            if keys is not None:
                ks = [x for x in ks if x in keys]
            with ThreadPoolExecutor(READ_THREADS) as ex:
                parts = [t for t in ex.map(lambda x: self._read(_record_relpath(sweep, k, x)), sorted(ks))
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
    def _put(self, relpath: str, data: bytes) -> bool:
        raise NotImplementedError

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------- local
class LocalStore(Store):
    def __init__(self, cfg: StoreConfig):
        self.cfg = cfg
        self.root = Path(cfg.uri).expanduser().resolve()

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
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n

    def _put(self, relpath: str, data: bytes) -> bool:
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
            try:
                os.link(tmp, final)          # create-once: fails if a record exists
                written = True
            except FileExistsError:
                old = self._read(relpath, columns=["status"])
                if old is not None and _status_of_table(old) == "ok":
                    written = False          # never replace an ok record
                else:
                    os.replace(tmp, final)   # replace a failed (or unreadable) record atomically
                    written = True
            # No fsync of the directory: after a power loss the link may be gone, and the task simply runs again.
            return written
        finally:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        try:
            return pq.read_table(self.root / relpath, columns=columns)
        except FileNotFoundError:
            return None

    def list_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
        base = self.root / f"sweep={sweep}"
        out: dict[str, list[str]] = {}
        if not base.is_dir():
            return out
        for d in sorted(base.glob("kind=*")):
            k = d.name[len("kind="):]
            if kind is not None and k != kind:
                continue
            keys = [p.stem for p in d.glob("*.parquet") if KEY_RE.fullmatch(p.stem)]
            if keys:
                out[k] = sorted(keys)
        return out

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


class S3Store(Store):
    def __init__(self, cfg: StoreConfig):
        self.cfg = cfg
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
                kw = dict(region=self.region, connect_timeout=5, request_timeout=60)
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
                    config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}))
            return self._s3

    def _key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def describe(self) -> str:
        return self.cfg.uri + (f" (endpoint {self.cfg.endpoint_url})" if self.cfg.endpoint_url else "")

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

    def _put(self, relpath: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError
        key = self._key(relpath)
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise
        old = self._read(relpath, columns=["status"])
        if old is not None and _status_of_table(old) == "ok":
            return False
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)  # replace a failed record (one PUT)
        return True

    def _read(self, relpath: str, columns=None) -> pa.Table | None:
        try:
            with self.fs.open_input_file(f"{self.bucket}/{self._key(relpath)}") as f:
                return pq.read_table(io.BytesIO(f.read()), columns=columns)
        except FileNotFoundError:
            return None
        except OSError as e:
            if "NoSuchKey" in str(e) or "does not exist" in str(e):
                return None
            raise

    def _ls(self, relpath: str, recursive: bool = False):
        import pyarrow.fs as pafs
        path = "/".join(x for x in (self.bucket, self.prefix, relpath) if x)
        sel = pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
        return self.fs.get_file_info(sel)

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

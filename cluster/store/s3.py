"""The store on S3 (or an S3-compatible endpoint).

Outages. S3 requests (reads, listings, writes) that fail for a transient reason (connection refused or reset,
timeouts, 5xx, throttling) are retried with exponential backoff and jitter for up to `results.write_retry_s`
seconds per operation (default 60); then StoreUnavailable names the endpoint, the operation and the time spent.
The clients' own retries are off, so that this budget is the only one. What a worker does then is in
cluster/dispatch/worker.py and cluster/dispatch/pool.py (the task is retried later, then reported failed).

S3 goes through pyarrow's S3FileSystem for listing and reading, always with an explicit `endpoint_override`
when one is configured (pyarrow ignores AWS_ENDPOINT_URL), and through boto3 where pyarrow has no API:
bucket checks and creation, and conditional puts. Credentials come from the environment (or the instance role);
they are passed to both clients explicitly and never logged.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import threading
import time

from .core import Store, StoreConfig
from .layout import (BACKOFF_FIRST_S, BACKOFF_MAX_S, KEY_RE, StoreRefused, StoreUnavailable, first_line,
                     status_of_table)

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
_QUOTA_S3 = ("QuotaExceeded", "EntityTooLarge", "ServiceQuotaExceeded", "InsufficientStorage")
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
                        f"last error: {first_line(e)}") from None
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
        with self._refusing(relpath):
            return self._put_record(relpath, data, retry_s)

    @contextlib.contextmanager
    def _refusing(self, relpath: str):
        """Turn a write S3 refused for good into StoreRefused (layout.refusing's S3 twin); others pass unchanged."""
        try:
            yield
        except Exception as e:  # noqa: BLE001  only the permanent refusals are translated
            refused = self._refused(e, relpath)
            if refused is not None:
                raise refused from None
            raise

    def _refused(self, e: BaseException, relpath: str) -> StoreRefused | None:
        """StoreRefused for a write S3 refused for good (denied, no bucket, quota), else None."""
        from botocore.exceptions import ClientError
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            msg = str(e.response.get("Error", {}).get("Message", "")) or code
        elif isinstance(e, OSError) and not isinstance(e, StoreUnavailable):
            code, msg = next((c for c in _PERMANENT_S3 if c in str(e)), ""), first_line(e)
        else:
            return None
        if code in _PERMANENT_S3 + _QUOTA_S3:
            return StoreRefused(f"writing {self._where(relpath)} failed: S3 said {code} ({msg[:200]})")
        return None

    def _put_record(self, relpath: str, data: bytes, retry_s: float | None = None) -> tuple[bool, str | None]:
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
            if t is not None and status_of_table(t) == "ok":
                return False, None      # never replace an ok record
            # Replace a failed (or unusable) record, but only the very object looked at: If-Match on its ETag.
            etag = self._call(f"PUT {key}", lambda: put(IfMatch=old_etag), deadline=deadline)
            if etag is not None:
                return True, etag or None
        raise StoreUnavailable(f"record s3://{self.bucket}/{key} kept changing while it was being replaced")

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

    def _put_once(self, relpath: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError
        key = self._key(relpath)

        def put():
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in _PRECONDITION:
                    return False
                raise
        with self._refusing(relpath):
            return self._call(f"PUT {key}", put)

    def _write_part(self, relpath: str, table) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from .local import PART_ROW_GROUP
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", row_group_size=PART_ROW_GROUP)
        data = sink.getvalue().to_pybytes()
        key = self._key(relpath)
        with self._refusing(relpath):      # one PUT: S3 never shows part of an object
            self._call(f"PUT {key}", lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=data))
        return len(data)

    def _part_location(self, relpath: str) -> tuple:
        return self.fs, f"{self.bucket}/{self._key(relpath)}"

    def _read_part(self, relpath: str, columns=None, filters=None):
        from .tables import read_part

        def read():
            try:
                return read_part(self.fs, f"{self.bucket}/{self._key(relpath)}", columns, filters)
            except OSError as e:
                if "NoSuchKey" in str(e) or "does not exist" in str(e) or "Path does not exist" in str(e):
                    raise FileNotFoundError(self._where(relpath)) from None
                raise
        return self._call(f"GET {self._where(relpath)}", read)

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

    def _loose_keys(self, sweep: str, kind: str | None = None) -> dict[str, list[str]]:
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


"""The dataset's layout: record paths, the key pattern, statuses, one-record Parquet bytes, the outage error."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq

KEY_RE = re.compile(r"[0-9a-f]{16}")
READ_THREADS = 16
DEFAULT_RETRY_S = 60.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 5.0
STATUSES = ("ok", "failed")
REPLACE_LOCK = "replace.lock"


class StoreUnavailable(OSError):
    """The store did not answer within the retry budget (results.write_retry_s). The message names the store, its
    endpoint, the operation and the time spent."""


class StoreRefused(OSError):
    """The store refused a write for a reason that waiting will not fix: a full disk or quota, a read-only or
    forbidden location, a missing bucket. The sweep stops (cluster.service) instead of retrying; the records
    already written stay, and a rerun resumes from them. The message says what failed and where."""


# errno values of a local write that retrying cannot fix (full disk, quota, read-only, permission)
REFUSED_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


@contextlib.contextmanager
def refusing(where: str):
    """Turn a local OSError that retrying cannot fix into StoreRefused naming `where`; others pass unchanged."""
    try:
        yield
    except OSError as e:
        if getattr(e, "errno", None) in REFUSED_ERRNOS:
            raise StoreRefused(f"writing {where} failed: [Errno {e.errno}] {os.strerror(e.errno)}") from None
        raise


def warn(msg: str) -> None:
    print(f"htmc: warning: {msg}", file=sys.stderr, flush=True)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"



def record_relpath(sweep: str, kind: str, key: str) -> str:
    if not KEY_RE.fullmatch(key):
        raise ValueError(f"bad task key {key!r}")
    return f"sweep={sweep}/kind={kind}/{key}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def status_of_table(t: pa.Table) -> str | None:
    return t.column("status")[0].as_py() if "status" in t.column_names and t.num_rows else None


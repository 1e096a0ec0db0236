"""MLflow's request limits and the entities of a task run: flattened params, a record's metrics, batches."""
from __future__ import annotations

import json
import math
import os
from datetime import datetime
from typing import Iterable

from cluster.spec.redact import SECRET_RE
from cluster.store import schema

MAX_PARAMS, MAX_TAGS, MAX_METRICS, MAX_ENTITIES = 100, 100, 1000, 1000
MAX_BATCH_BYTES = 900_000
MAX_PARAM_VAL, MAX_TAG_VAL = 6000, 8000


def mlflow_env_defaults() -> None:
    # Fail fast against a dead server instead of MLflow's default ~2 minutes of retries per request.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow prints "View run at <URI>" on stdout: it breaks --json output and would show a URI's password. Every
    # MlflowClient of the project is made after this (Tracker._connect), so the entry points need not set it.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def epoch_ms(ts) -> int | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return int(ts.timestamp() * 1000)
    return int(ts)


def flatten_params(params: dict, prefix: str = "") -> dict[str, str]:
    """{'function_params': {'freq': 1}, 'methods': ['abc']} -> {'function_params.freq': '1', 'methods': '["abc"]'}"""
    out = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten_params(v, name + "."))
        else:
            out[name] = v if isinstance(v, str) else json.dumps(v)
        if SECRET_RE.search(name):
            out[name] = "***"
    return {k: (v if len(v) <= MAX_PARAM_VAL else v[:MAX_PARAM_VAL - 3] + "...") for k, v in out.items()}


def record_metrics(record: dict) -> dict[str, float]:
    kind = record.get("kind")
    names = list(schema.COMMON_METRICS) + list(schema.metric_columns(kind))
    names += [k for k in record if k.startswith("norm_") and not k.endswith("_version")]
    out = {}
    for n in names:
        v = record.get(n)
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[n] = float(v)
    return out


def batches(metrics: list, params: list, tags: list) -> Iterable[tuple[list, list, list]]:
    """Split entities into log_batch requests within MLflow's limits."""
    m, p, t = list(metrics), list(params), list(tags)
    while m or p or t:
        bp, bt, bm, size = [], [], [], 0
        while p and len(bp) < MAX_PARAMS and size < MAX_BATCH_BYTES:
            size += len(p[0].key) + len(p[0].value) + 16
            bp.append(p.pop(0))
        while t and len(bt) < MAX_TAGS and size < MAX_BATCH_BYTES:
            size += len(t[0].key) + len(t[0].value) + 16
            bt.append(t.pop(0))
        while m and len(bm) < min(MAX_METRICS, MAX_ENTITIES - len(bp) - len(bt)) and size < MAX_BATCH_BYTES:
            size += len(m[0].key) + 48
            bm.append(m.pop(0))
        yield bm, bp, bt


"""Canonical JSON and the task key (DESIGN §4)."""
from __future__ import annotations

import hashlib
import json
import math


def _normalize(obj):
    """Integral floats -> int, recursively, so that 1 and 1.0 key the same work."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"non-finite number {obj!r} in task parameters")
        return int(obj) if obj.is_integer() and abs(obj) < 2 ** 53 else obj
    if isinstance(obj, dict):
        return {str(k): _normalize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize(v) for v in obj]
    return obj


def canonical_json(obj) -> str:
    return json.dumps(_normalize(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def task_key(kind: str, kind_version: str, params: dict) -> str:
    """DESIGN §4: sha256 of the canonical JSON of {kind, kind_version, params}, cut to 16 hex digits."""
    blob = canonical_json({"kind": kind, "kind_version": str(kind_version), "params": params})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]



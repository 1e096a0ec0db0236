"""The result record (DESIGN §4): the one definition of every column of the Parquet store.

A record is one row per task. Files hold the common columns and the columns of their kind; `sweep` and `kind` are
hive partition columns and live only in the path (`sweep=<name>/kind=<kind>/<task_key>.parquet`), never inside a
file, because a column in both places clashes on read.

Schema growth. A kind may add columns in a later version. Writers always write every column declared here for the
kind (nulls where the record has no value); a value the record has but this module does not declare is kept, as
JSON, in `extra_json`, so nothing a task returns is lost and no undeclared column ever appears. Readers concatenate
files with permissive type promotion (a column missing from an older file reads as null) and then cast every
declared column to its declared type.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = "1"

TS = pa.timestamp("us", tz="UTC")
STR, F64, I64, BOOL = pa.string(), pa.float64(), pa.int64(), pa.bool_()

# Partition columns: in the path only.
PARTITION_COLUMNS: list[tuple[str, pa.DataType]] = [("sweep", STR), ("kind", STR)]

# Common columns, in file order. Written by cluster.worker for every task, ok or failed.
COMMON_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("task_key", STR),          # sha256(canonical {kind, kind_version, params})[:16]; also the file name
    ("kind_version", STR),
    ("params_json", STR),       # canonical JSON of the validated params (the key's input)
    ("group", STR),             # the spec's task group that produced the task (first one, if several did)
    ("status", STR),            # ok | failed
    ("error", STR),             # why it failed (exception type, message, traceback tail); null when ok
    ("attempt", I64),           # 1 for the first try; +1 per resubmission after a worker died
    ("started_at", TS),
    ("finished_at", TS),
    ("wall_s", F64),            # this task's wall time (for a batched kind: the batch's wall time / batch size)
    ("num_cpus", F64),          # resources the task's actor asked for
    ("num_gpus", F64),
    ("cpu_seconds", F64),       # num_cpus * wall_s, for cost accounting
    ("gpu_seconds", F64),       # num_gpus * wall_s
    ("batch_size", I64),        # tasks that shared one computation (1 unless batched)
    ("device", STR),            # cpu | cuda:N (name)
    ("worker", STR),            # host:pid of the actor
    ("node", STR),              # Ray node id
    ("execution_id", STR),      # one id per `htmc sweep run` execution (the MLflow parent run's tag)
    ("spec_hash", STR),
    ("git_sha", STR),
    ("htmc_version", STR),
    ("python_version", STR),
    ("numpy_version", STR),
    ("torch_version", STR),
    ("pyarrow_version", STR),
    ("ray_version", STR),
    ("schema_version", STR),
    ("extra_json", STR),        # record values this module does not declare (see module docstring)
]

# optimal_in_format: a minimum within the format (k, bits_out, shift, offset) stored beside it (issue 12). Files
# written before it hold `optimal`, with the same meaning but no format; readers rename it (legacy_columns).
_CIRCUIT_POINT = [("function", STR), ("function_version", STR), ("eps", F64), ("method", STR),
                  ("method_version", STR), ("gates", I64), ("aig_nodes", I64), ("max_error", F64),
                  ("k", I64), ("bits_in", I64), ("bits_out", I64), ("shift", I64), ("offset", F64),
                  ("optimal_in_format", BOOL), ("exact_rounded", BOOL), ("verified", BOOL),
                  ("search_seconds", F64)]

KIND_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "circuit_search": _CIRCUIT_POINT + [("attempts_json", STR)],
    "circuit_ladder": [("function", STR), ("function_version", STR), ("eps0", F64), ("steps", I64),
                       ("gamma", F64), ("gamma_lo", F64), ("gamma_hi", F64), ("c", F64),
                       ("preferred_model", STR), ("gamma_theory", F64), ("fit_json", STR), ("points_json", STR),
                       ("fit_error", STR)],
    "resnet_train": [("function", STR), ("function_version", STR), ("width", I64), ("depth", I64),
                     ("rank", I64), ("lam", F64), ("reg", STR), ("steps", I64), ("lr", F64), ("seed", I64),
                     ("n_train", I64), ("d", I64), ("dtype", STR), ("grid_points", I64), ("train_version", STR),
                     ("sup_error", F64), ("rms_error", F64), ("train_mse", F64), ("nnz", I64), ("n_params", I64),
                     ("seconds", F64), ("batch_seconds", F64), ("compiled_gates", I64)],
    # Test and benchmark kind (cluster.noop).
    "noop": [("x", F64), ("value", F64), ("slept_s", F64)],
}

# Column families whose members are not known in advance (one per registered norm).
PATTERN_COLUMNS: list[tuple[re.Pattern, pa.DataType]] = [
    (re.compile(r"norm_[a-z0-9_]+_version"), STR),
    (re.compile(r"norm_[a-z0-9_]+"), F64),
]

# Metric-like columns: numeric columns that are outcomes (logged as MLflow metrics), by kind.
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "circuit_search": ("gates", "aig_nodes", "max_error", "bits_in", "bits_out", "search_seconds"),
    "circuit_ladder": ("gamma", "gamma_lo", "gamma_hi", "c"),
    "resnet_train": ("sup_error", "rms_error", "train_mse", "nnz", "n_params", "compiled_gates"),
    "noop": ("value", "slept_s"),
}
COMMON_METRICS = ("wall_s", "cpu_seconds", "gpu_seconds", "attempt")


def declared_type(kind: str, column: str) -> pa.DataType | None:
    """The declared type of a column of kind's records, or None when the column is not declared."""
    for name, typ in COMMON_COLUMNS + PARTITION_COLUMNS + KIND_COLUMNS.get(kind, []):
        if name == column:
            return typ
    for pat, typ in PATTERN_COLUMNS:
        if pat.fullmatch(column):
            return typ
    return None


def file_schema_fields(kind: str) -> list[tuple[str, pa.DataType]]:
    """Columns every file of this kind holds, in order (no partition columns)."""
    seen = {n for n, _ in COMMON_COLUMNS}
    return COMMON_COLUMNS + [(n, t) for n, t in KIND_COLUMNS.get(kind, []) if n not in seen]


def _coerce(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value) and not pa.types.is_floating(typ):
        return None
    if pa.types.is_string(typ):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if pa.types.is_floating(typ):
        return float(value)
    if pa.types.is_integer(typ):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(f"non-integral value {value!r}")
        return int(value)
    if pa.types.is_boolean(typ):
        return bool(value)
    if pa.types.is_timestamp(typ):
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        return value
    return value


def to_table(kind: str, records: Iterable[dict]) -> pa.Table:
    """Records of one kind -> a typed table for one file. Partition columns are dropped; unknown values -> extra_json."""
    records = list(records)
    fields = file_schema_fields(kind)
    declared = {n for n, _ in fields}
    pattern_cols: dict[str, pa.DataType] = {}
    rows: list[dict] = []
    for rec in records:
        row, extra = {}, {}
        for k, v in rec.items():
            if k in ("sweep", "kind"):
                continue
            if k in declared:
                row[k] = v
                continue
            typ = next((t for p, t in PATTERN_COLUMNS if p.fullmatch(k)), None)
            if typ is not None:
                pattern_cols[k] = typ
                row[k] = v
            else:
                extra[k] = v
        if extra:
            prev = json.loads(row["extra_json"]) if row.get("extra_json") else {}
            row["extra_json"] = json.dumps({**prev, **extra}, sort_keys=True, default=str)
        rows.append(row)
    all_fields = fields + sorted(pattern_cols.items())
    arrays = []
    for name, typ in all_fields:
        vals = []
        for row in rows:
            try:
                vals.append(_coerce(row.get(name), typ))
            except (TypeError, ValueError) as e:
                raise TypeError(f"{kind} record column '{name}': {e}") from None
        arrays.append(pa.array(vals, type=typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(n, t) for n, t in all_fields],
                                                          metadata={"htmc.schema_version": SCHEMA_VERSION}))


# Columns renamed since files were first written, per kind: old name -> declared name (same meaning).
LEGACY_COLUMNS: dict[str, dict[str, str]] = {"circuit_search": {"optimal": "optimal_in_format"}}


def conform(kind: str, table: pa.Table) -> pa.Table:
    """Cast declared columns of a table read back from the store to their declared types (nulls promote), and
    give columns of older files their current names."""
    for old, new in LEGACY_COLUMNS.get(kind, {}).items():
        if old not in table.column_names:
            continue
        if new in table.column_names:  # old and new files concatenated: one column, old values where new is null
            merged = pc.coalesce(table.column(new), table.column(old).cast(table.column(new).type))
            table = table.set_column(table.column_names.index(new), new, merged).drop_columns([old])
        else:
            table = table.rename_columns([new if n == old else n for n in table.column_names])
    cols = []
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        typ = declared_type(kind, name)
        if typ is not None and col.type != typ:
            try:
                col = col.cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # an older version stored another type; keep what is there rather than fail the read
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)

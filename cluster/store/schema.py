"""The Parquet schema of the result records: derived from htmc.records, the one definition of every column.

A record is one row per task. Files hold the common columns and the columns of their kind; `sweep` and `kind` are
hive partition columns and live only in the path (`sweep=<name>/kind=<kind>/<task_key>.parquet`), never inside a
file, because a column in both places clashes on read.

Schema growth. A kind may add columns in a later version. Writers always write every column declared for the
kind (nulls where the record has no value); a value the record has but its class does not declare is kept, as
JSON, in `extra_json`, so nothing a task returns is lost and no undeclared column ever appears. Readers concatenate
files with permissive type promotion (a column missing from an older file reads as null) and then cast every
declared column to its declared type.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from htmc import records

SCHEMA_VERSION = records.SCHEMA_VERSION
TS = records.TS

# Partition columns: in the path only.
PARTITION_COLUMNS: list[tuple[str, pa.DataType]] = [("sweep", pa.string()), ("kind", pa.string())]
# Common columns, in file order. Written by cluster.dispatch.worker for every task, ok or failed.
COMMON_COLUMNS: list[tuple[str, pa.DataType]] = records.columns(records.CommonColumns)
# Column families whose members are not known in advance (one per registered norm).
PATTERN_COLUMNS = records.NORM_COLUMNS
COMMON_METRICS = records.COMMON_METRICS


def kind_columns(kind: str) -> list[tuple[str, pa.DataType]]:
    """The declared columns of kind's records (its htmc.records.Record class)."""
    return records.kind_columns(kind)


def metric_columns(kind: str) -> tuple[str, ...]:
    """Numeric columns that are outcomes (logged as MLflow metrics)."""
    return records.kind_metrics(kind)


def declared_type(kind: str, column: str) -> pa.DataType | None:
    """The declared type of a column of kind's records, or None when the column is not declared."""
    for name, typ in COMMON_COLUMNS + PARTITION_COLUMNS + kind_columns(kind):
        if name == column:
            return typ
    for pat, typ in PATTERN_COLUMNS:
        if pat.fullmatch(column):
            return typ
    return None


def file_schema_fields(kind: str) -> list[tuple[str, pa.DataType]]:
    """Columns every file of this kind holds, in order (no partition columns)."""
    seen = {n for n, _ in COMMON_COLUMNS}
    return COMMON_COLUMNS + [(n, t) for n, t in kind_columns(kind) if n not in seen]


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

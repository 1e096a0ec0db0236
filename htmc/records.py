"""The result record (DESIGN §4), defined once for htmc/, cluster/ and analysis/.

- One typed class per task kind holds that kind's columns; a kind's `run` returns an instance. The Arrow type of
  every column is derived from the field's annotation, so cluster/'s Parquet schema and analysis's column lists
  are read off these classes, never written again.
- `CommonColumns` are the columns the worker adds to every record, ok or failed.
- `canonical_json` and `task_key`: the same work always has the same key.

Fields marked `metric=True` are outcomes (logged as MLflow metrics). ResNet norms are a column family known only at
run time (one per registered norm): `norm_<name>` and `norm_<name>_version`, matched by NORM_COLUMNS.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from htmc.registry import Registry

SCHEMA_VERSION = "1"
TS = pa.timestamp("us", tz="UTC")
_ARROW = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_(), datetime: TS}


def metric(default=None):
    """A field that is an outcome of the task (an MLflow metric), not a setting."""
    return field(default=default, metadata={"metric": True})


# ----------------------------------------------------------------------------------------------------------------
# Canonical JSON and the task key
# ----------------------------------------------------------------------------------------------------------------

def _normalize(obj):
    """Integral floats -> int, recursively, so that 1 and 1.0 key (and name) the same work."""
    t = type(obj)       # exact-type fast paths first: planning normalizes millions of values (issue 22 A)
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        if obj - obj != 0.0:       # inf or nan (cheaper than math.isfinite's call)
            raise ValueError(f"non-finite number {obj!r} in task parameters")
        return int(obj) if obj.is_integer() and -2 ** 53 < obj < 2 ** 53 else obj
    if t is dict:
        return {(k if type(k) is str else str(k)): _normalize(v) for k, v in obj.items()}
    if t is list:
        return [_normalize(v) for v in obj]
    return _normalize_any(obj)


def _normalize_any(obj):
    """_normalize for subclasses (numpy floats, OrderedDict, tuples ...): the general isinstance rules."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"non-finite number {obj!r} in task parameters")
        return int(obj) if obj.is_integer() and abs(obj) < 2 ** 53 else obj
    if isinstance(obj, dict):
        return {str(k): _normalize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize(v) for v in obj]
    return obj


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(obj) -> str:
    """json.dumps(obj normalized, sort_keys, no spaces, UTF-8, no NaN): one encoder built once, since json.dumps
    builds a new one per call when given options (issue 22 A: planning encodes millions of params)."""
    return _CANONICAL.encode(_normalize(obj))


def task_key(kind: str, kind_version: str, params: dict) -> str:
    """DESIGN §4: sha256 of the canonical JSON of {kind, kind_version, params}, cut to 16 hex digits."""
    return task_key_of_json(kind, kind_version, canonical_json(params))


def task_key_of_json(kind: str, kind_version: str, params_json: str) -> str:
    """task_key from the params' canonical JSON (a record's params_json): the keys sort as kind < kind_version <
    params, so the canonical JSON of the whole is these three members in this order."""
    head = f'{{"kind":{canonical_json(kind)},"kind_version":{canonical_json(str(kind_version))},"params":'
    return hashlib.sha256(f"{head}{params_json}}}".encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------
# Columns from annotations
# ----------------------------------------------------------------------------------------------------------------

def _arrow_type(annotation) -> pa.DataType:
    """str | None -> string, and so on: the Arrow type of a field annotation (None only marks nullability)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else [annotation]
    if len(args) != 1 or args[0] not in _ARROW:
        raise TypeError(f"record fields must be str, float, int, bool or datetime (optionally | None), "
                        f"got {annotation!r}")
    return _ARROW[args[0]]


@functools.cache  # record classes do not change; the store derives a schema on every write
def columns(cls) -> list[tuple[str, pa.DataType]]:
    """(name, Arrow type) of every field of a record class, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(cls) if f.name != "extra"]


def metric_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("metric"))


# ----------------------------------------------------------------------------------------------------------------
# The records
# ----------------------------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class CommonColumns:
    """Written by the worker for every task, ok or failed, in this order (DESIGN §4)."""
    task_key: str               # sha256(canonical {kind, kind_version, params})[:16]; also the file name
    kind_version: str
    params_json: str            # canonical JSON of the validated params (the key's input)
    group: str | None = None    # the spec's task group that produced the task (first one, if several did)
    status: str                 # ok | failed
    error: str | None = None    # why it failed (exception type, message, traceback tail); null when ok
    attempt: int = metric(1)    # 1 for the first try; +1 per resubmission after a worker died
    started_at: datetime | None = None
    finished_at: datetime | None = None
    wall_s: float | None = metric()     # this task's wall time (batched: the batch's wall time / batch size)
    num_cpus: float | None = None       # resources the task's actor asked for
    num_gpus: float | None = None
    cpu_seconds: float | None = metric()  # num_cpus * wall_s, for cost accounting
    gpu_seconds: float | None = metric()  # num_gpus * wall_s
    batch_size: int | None = None       # tasks that shared one computation (1 unless batched)
    device: str | None = None           # cpu | cuda:N (name)
    worker: str | None = None           # host:pid of the actor
    node: str | None = None             # Ray node id
    execution_id: str | None = None     # one id per `htmc sweep run` execution (the MLflow parent run's tag)
    spec_hash: str | None = None
    git_sha: str | None = None
    htmc_version: str | None = None
    python_version: str | None = None
    numpy_version: str | None = None
    torch_version: str | None = None
    pyarrow_version: str | None = None
    ray_version: str | None = None
    schema_version: str | None = None
    extra_json: str | None = None       # record values no class declares (cluster.store.schema keeps them here)


RECORDS: Registry[type] = Registry("record type")


class Record:
    """Base of the per-kind records: `class SearchRecord(Record, kind="circuit_search")` registers the class as
    that kind's record, wherever it is defined (a test kind's record registers where its module is imported, in
    the driver and in every worker alike). `extra` holds values a kind returns beyond its declared columns
    (kept, as JSON, in extra_json; a net's norm_<name> family among them); it is flattened into the row."""

    def __init_subclass__(cls, kind: str | None = None, version: str = "1", **kw):
        super().__init_subclass__(**kw)
        if kind is not None:
            RECORDS.register(kind, version, cls, replace=True)

    def to_row(self) -> dict:
        row = {name: getattr(self, name) for name, _ in columns(type(self))}
        row.update(getattr(self, "extra", None) or {})
        return row

    @classmethod
    def from_columns(cls, values: dict) -> "Record":
        """The declared fields from values; the rest go to `extra` (a class without `extra` takes none)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        rest = {k: v for k, v in values.items() if k not in names}
        if rest and "extra" not in {f.name for f in dataclasses.fields(cls)}:
            raise TypeError(f"{cls.__name__} has no column(s) {sorted(rest)}")
        return cls(**{k: v for k, v in values.items() if k in names}, **({"extra": rest} if rest else {}))


@dataclass(kw_only=True)
class SearchRecord(Record, kind="circuit_search"):
    """circuit_search: C̄(f, ε) at one ε. The format (k, bits_out, shift, offset) stands beside optimal_in_format
    because an exact minimum holds within that format only (DESIGN §2.3)."""
    function: str
    function_version: str
    gamma_theory: float | None = None
    eps: float
    method: str | None = None
    method_version: str | None = None
    gates: int | None = metric()
    aig_nodes: int | None = metric()
    max_error: float | None = metric()
    k: int | None = None
    bits_in: int | None = metric()
    bits_out: int | None = metric()
    shift: int | None = None
    offset: float | None = None
    optimal_in_format: bool = False
    exact_rounded: bool = False
    verified: bool = False
    search_seconds: float | None = metric()
    attempts_json: str | None = None


@dataclass(kw_only=True)
class LadderRecord(Record, kind="circuit_ladder"):
    """circuit_ladder: C̄ at every rung (points_json, one SearchRecord row each) and the rate fit (fit_json)."""
    function: str
    function_version: str
    eps0: float
    steps: int
    gamma: float | None = metric()
    gamma_lo: float | None = metric()
    gamma_hi: float | None = metric()
    c: float | None = metric()
    preferred_model: str | None = None
    gamma_theory: float | None = None
    fit_json: str | None = None
    points_json: str | None = None
    fit_error: str | None = None


@dataclass(kw_only=True)
class TrainRecord(Record, kind="resnet_train"):
    """resnet_train: one trained net, every registered norm (the norm_<name> family, carried in `extra`) and, once
    compiled, its verified gate count."""
    function: str
    function_version: str
    gamma_theory: float | None = None
    width: int
    depth: int
    rank: int
    lam: float
    reg: str
    steps: int
    lr: float
    seed: int
    n_train: int
    d: int
    dtype: str | None = None
    grid_points: int | None = None
    train_version: str | None = None
    sup_error: float | None = metric()
    rms_error: float | None = metric()
    train_mse: float | None = metric()
    nnz: int | None = metric()
    n_params: int | None = metric()
    seconds: float | None = None
    batch_seconds: float | None = None
    compiled_gates: int | None = metric()
    net_text: str | None = None                 # the trained net (htmc.resnets.numpy_net.net_to_text): what
                                                # resnet_compile compiles; large, so not sent back to the driver
    extra: dict = field(default_factory=dict)   # status, error, device, batch_size, norm_* (see to_row)


@dataclass(kw_only=True)
class CompileRecord(Record, kind="resnet_compile"):
    """resnet_compile: one trained net (train_key, its resnet_train record) compiled at every rung of a ladder;
    points_json holds one entry per ε (gates, AIG nodes, bits, verified error, or the reason it did not compile).
    The net's norms are copied from its training record (norm_* in `extra`) so that R̄_ν needs no join."""
    function: str
    function_version: str
    gamma_theory: float | None = None
    train_key: str
    width: int | None = None
    depth: int | None = None
    rank: int | None = None
    lam: float | None = None
    reg: str | None = None
    seed: int | None = None
    sup_error: float | None = None
    nnz: int | None = None
    eps0: float
    steps: int
    compile_version: str | None = None
    rungs_compiled: int | None = metric()
    gates_min: int | None = metric()
    compile_seconds: float | None = metric()
    points_json: str | None = None
    extra: dict = field(default_factory=dict)   # norm_* of the net (see TrainRecord)


@dataclass(kw_only=True)
class FitRecord(Record, kind="resnet_fit"):
    """resnet_fit: one rung's minimum-norm fit (htmc.resnets.fit, issue 21 A) and its own circuit. met means a net
    meeting eps on the cells was found AND its circuit verified within eps; reason says why not otherwise.
    float_error is max_c max(y_c - lo_c, hi_c - y_c) of the float net at the k it was fitted at. Every registered
    norm is carried as norm_<name> (+ norm_<name>_version) in `extra`, like TrainRecord."""
    function: str
    function_version: str
    gamma_theory: float | None = None
    d: int
    eps0: float
    rung: int
    eps: float
    k: int | None = None
    norm: str                                   # the objective the fit minimized
    fit_version: str
    seed: int
    width: int | None = None
    depth: int | None = None
    rank: int | None = None
    met: bool = False
    reason: str | None = None
    lam: float | None = None                    # the fit is an LP, not a λ path: null
    steps: int | None = metric()                # simplex iterations
    fit_seconds: float | None = metric()
    float_error: float | None = metric()
    nnz: int | None = metric()
    n_params: int | None = metric()
    net_text: str | None = None
    gates: int | None = metric()                # B2 gates of the net's OWN circuit
    aig_nodes: int | None = metric()
    max_error: float | None = metric()          # the circuit's verified error
    verified: bool = False
    w_bits: int | None = None
    a_bits: int | None = None
    compile_seconds: float | None = metric()
    extra: dict = field(default_factory=dict)   # norm_*, units, margin, compile_version


NORM_COLUMNS: list[tuple[re.Pattern, pa.DataType]] = [
    (re.compile(r"norm_[a-z0-9_]+_version"), pa.string()),
    (re.compile(r"norm_[a-z0-9_]+"), pa.float64()),
]

def kind_columns(kind: str) -> list[tuple[str, pa.DataType]]:
    """The declared per-kind columns; [] for a kind with no registered record type."""
    return columns(RECORDS.get(kind)) if kind in RECORDS else []


def kind_metrics(kind: str) -> tuple[str, ...]:
    return metric_names(RECORDS.get(kind)) if kind in RECORDS else ()


COMMON_METRICS = metric_names(CommonColumns)


def to_row(out: Any) -> dict:
    """A kind's result as flat columns: a Record's to_row(); a dict is taken as it is (a failed task's {})."""
    if isinstance(out, Record):
        return out.to_row()
    if isinstance(out, dict):
        return dict(out)
    raise TypeError(f"a task kind must return a htmc.records.Record, got {type(out).__name__}")

"""Sweep specs: a YAML file, a typed schema, expansion into tasks and their keys (DESIGN §4).

A spec looks like this (sweeps/demo.yaml is a complete one):

    name: demo                        # letters, digits, '.', '_', '-'; names the store partition and MLflow experiment
    results:                          # where records go
      uri: ./results                  # a local path, or s3://bucket/prefix
      endpoint_url: http://127.0.0.1:9000   # S3 only; default $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL
      region: us-east-1               # S3 only
      create_bucket: false            # S3 only: create the bucket if it is missing
      write_retry_s: 60               # S3 only: retry an unreachable store this long per request (backoff +
                                      # jitter); then the task is retried later, and finally reported failed
    tracking:
      uri: sqlite:///mlflow.db        # default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
      experiment: htmc-demo           # default htmc-<name>
      children: task                  # task (a child run per task) | group (one per task group) | off
      artifact_location: null         # for a new experiment only
    resources:                        # per kind; fractional allowed; default num_cpus 1, num_gpus 0
      resnet_train: {num_cpus: 1, num_gpus: 0.25}
    dispatch:
      max_attempts: 3                 # tries per task when its worker dies (a task that raises is not retried)
      batch_size: {resnet_train: 64}  # tasks per actor call; batched kinds train them as one computation
      max_actors: {circuit_ladder: 4} # cap on actors per kind (default: as many as the cluster fits)
      in_flight_per_actor: 2          # calls queued per actor; the driver never submits more
      actor_start_timeout_s: 300      # fail if no actor of a kind starts (e.g. no GPU node) within this time
    costs:                            # price table for cost accounting (issue 7); optional
      cpu_hour: 0.048                 # dollars per CPU-hour (records store cpu_seconds = num_cpus x wall time)
      gpu_hour: 2.50                  # dollars per GPU-hour (gpu_seconds = num_gpus x wall time)
    nightly:                          # `htmc nightly` (jobs/nightly.py, cluster/nightly.py); optional
      replicates: 4                   # ok keys re-run each night as fresh replicates (sample fixed by the date)
      concurrency: forbid             # forbid | replace | allow: when an earlier night's job is still running
      schedule: "02:00"               # UTC time of day the night is scheduled for
      starting_deadline_s: 21600      # a night that cannot start within this long after its schedule is skipped
      slower_factor: 3.0              # flag a task whose wall time grew by more than this factor ...
      slower_min_s: 1.0               # ... and by more than this many seconds (timing noise floor)
    groups:
      - kind: circuit_ladder
        name: ladders                 # optional; default <kind>-<index>
        params: {methods: [abc], steps: 3}          # fixed values: lists here are values, not alternatives
        grid:                                       # lists are alternatives; the Cartesian product is taken
          function: [sin, exp]
          eps0: [0.1, 0.05]
          function_params: {freq: [1, 2]}           # a mapping expands inside (nested product)
          methods: [[abc], [abc, table]]            # a list-valued parameter's alternatives: a list of lists

Expansion: every list in `grid` gives alternatives and every mapping is expanded recursively; a list of mappings
gives alternatives that are each expanded. `params` are merged in unchanged. Each resulting parameter set is
validated by its task kind (htmc.tasks), which fills the defaults; the canonical result is the task's params.

Task key: sha256 of the canonical JSON of {kind, kind_version, params}, cut to 16 hex digits. Canonical JSON has
sorted keys, no spaces, and integral floats written as integers (eps0: 1 and eps0: 1.0 are the same work). So the
same spec always gives the same keys, and adding a grid value adds only new keys.

Everything is checked before anything runs: unknown keys (with their location and line), kinds, functions and
their parameters, methods, norms, numbers. A spec with an error raises SpecError (a ValueError) naming it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from htmc.registry import did_you_mean

SPEC_VERSION = "1"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CHILDREN_MODES = ("task", "group", "off")
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc",
                    "uc")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_BATCH = {"resnet_train": 64}
MAX_YAML_NODES = 1_000_000     # values in a spec, aliases expanded
MAX_TASKS = 1_000_000          # parameter sets of a spec, before deduplication
SECRET_RE = re.compile(r"(secret|password|passwd|token|credential|access_key|private_key|api_key)", re.I)


class SpecError(ValueError):
    """A spec that cannot run. The message names the file, the key's location and its line when known."""


# ------------------------------------------------------------------------------------------------ YAML loading
class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML 1.2 scalars where PyYAML's 1.1 rules surprise: 1e-3 is a float (1.1: a string),
    and only true/false are booleans (1.1: `off`, `no`, `on`, `yes` too, so `children: off` became False).
    Duplicate keys are refused (PyYAML silently keeps the last)."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str, source: str) -> tuple[Any, Any]:
    """(data, node): the document and its node tree (for line numbers in messages)."""
    try:
        loader = _Loader(text)        # its reader already refuses control characters
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: not valid YAML: {e}") from None
    try:
        node = loader.get_single_node()
        size = _expanded_size(node, {}) if node is not None else 0
        if size > MAX_YAML_NODES:   # a "billion laughs" of aliases, or simply far too big
            raise SpecError(f"{source}: the YAML has {size:.3g} values once its aliases (*name) are expanded; "
                            f"at most {MAX_YAML_NODES} are allowed")
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: not valid YAML: {e}") from None
    except RecursionError:
        raise SpecError(f"{source}: the YAML is nested too deeply") from None
    except _RecursiveAlias as e:
        raise SpecError(f"{source}: line {e.args[0]}: an alias (*name) refers to a value that contains it; "
                        f"recursive values are not allowed") from None
    finally:
        loader.dispose()
    return data, node


def _expanded_size(node, memo: dict) -> int:
    """Number of nodes with aliases expanded (memoized on the shared alias nodes, so linear in the text)."""
    key = id(node)
    if key in memo and memo[key] is None:
        raise _RecursiveAlias(node.start_mark.line + 1)
    if key not in memo:
        memo[key] = None   # in progress: meeting it again below means an alias refers to its own parent
        if isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_size(n, memo) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
        else:
            memo[key] = 1
    return memo[key]


class _RecursiveAlias(Exception):
    pass


def _line_of(node, path: tuple) -> int | None:
    """1-based line of the key (or item) at path in a composed YAML node tree, or of its deepest known parent."""
    line = None
    for part in path:
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    line, nxt = k.start_mark.line + 1, v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _loc(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


# ------------------------------------------------------------------------------------------------ typed schema
@dataclass(frozen=True)
class ResultsSpec:
    uri: str = "./results"
    endpoint_url: str | None = None
    region: str | None = None
    create_bucket: bool = False
    write_retry_s: float = 60.0

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


@dataclass(frozen=True)
class TrackingSpec:
    uri: str = DEFAULT_TRACKING_URI
    experiment: str | None = None
    children: str = "task"
    artifact_location: str | None = None


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class DispatchSpec:
    max_attempts: int = 3
    batch_size: dict = field(default_factory=dict)      # kind -> tasks per actor call
    max_actors: dict = field(default_factory=dict)      # kind -> cap
    in_flight_per_actor: int = 2
    actor_start_timeout_s: float = 300.0

    def batch_for(self, kind: str) -> int:
        return int(self.batch_size.get(kind, DEFAULT_BATCH.get(kind, 1)))


@dataclass(frozen=True)
class CostSpec:
    """Dollars per resource-hour; None: that resource is not priced (costs show as resource-hours only)."""
    cpu_hour: float | None = None
    gpu_hour: float | None = None


CONCURRENCY_POLICIES = ("forbid", "replace", "allow")   # the names of Kubernetes CronJob's concurrencyPolicy


@dataclass(frozen=True)
class NightlySpec:
    replicates: int = 0
    concurrency: str = "forbid"
    schedule: str = "02:00"
    starting_deadline_s: float | None = None       # None: no deadline (as Kubernetes' startingDeadlineSeconds)
    slower_factor: float = 3.0
    slower_min_s: float = 1.0

    @property
    def schedule_minutes(self) -> int:
        h, m = self.schedule.split(":")
        return int(h) * 60 + int(m)


def _schedule(v):
    if not isinstance(v, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", v):
        raise ValueError(f"must be a UTC time of day HH:MM (quote it in YAML: \"02:00\"), got {v!r}")
    return v


def _policy(v):
    if v not in CONCURRENCY_POLICIES:
        raise ValueError(f"unknown concurrency policy {v!r}: {did_you_mean(str(v), list(CONCURRENCY_POLICIES))}")
    return v


@dataclass(frozen=True)
class GroupSpec:
    kind: str
    name: str
    params: dict
    grid: dict


@dataclass(frozen=True)
class Task:
    key: str
    kind: str
    kind_version: str
    params: dict              # canonical (validated, defaults filled)
    group: str

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    groups: tuple
    results: ResultsSpec
    tracking: TrackingSpec
    resources: dict           # kind -> Resources (every kind used has one)
    dispatch: DispatchSpec
    description: str
    source: str               # file path or "<string>"
    text: str                 # the YAML as given (logged as the parent run's artifact, after redaction)
    raw: dict                 # the validated mapping, overrides applied (what the spec hash covers)
    costs: CostSpec = field(default_factory=CostSpec)
    nightly: NightlySpec = field(default_factory=NightlySpec)

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.raw).encode()).hexdigest()[:16]

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or f"htmc-{self.name}"

    def resources_for(self, kind: str) -> Resources:
        return self.resources.get(kind, Resources())

    def kinds(self) -> list[str]:
        return sorted({g.kind for g in self.groups})


# Allowed keys per section: name -> (checker, default). A checker returns the clean value or raises ValueError.
def _str(v, what="a string"):
    if not isinstance(v, str) or not v:
        raise ValueError(f"must be {what}, got {v!r}")
    return v


def _opt_str(v):
    return None if v is None else _str(v)


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {v!r}")
    return v


def _number(v, *, lo=0.0, strict=False, integer=False, what="a number"):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"must be {what}, got {v!r}")
    if integer and float(v) != int(v):
        raise ValueError(f"must be an integer, got {v!r}")
    if (v <= lo) if strict else (v < lo):
        raise ValueError(f"must be {'>' if strict else '>='} {lo:g}, got {v!r}")
    return int(v) if integer else float(v)


def _mapping(v, loc):
    if not isinstance(v, dict):
        raise SpecError(f"{_loc(loc)}: must be a mapping, got {type(v).__name__} {v!r}")
    return v


SECTIONS = {
    "results": {"uri": _str, "endpoint_url": _opt_str, "region": _opt_str, "create_bucket": _bool,
                "write_retry_s": lambda v: _number(v, lo=0)},
    "tracking": {"uri": _str, "experiment": _opt_str, "children": None, "artifact_location": _opt_str},
    "dispatch": {"max_attempts": lambda v: _number(v, lo=1, integer=True, what="an integer >= 1"),
                 "batch_size": None, "max_actors": None,
                 "in_flight_per_actor": lambda v: _number(v, lo=1, integer=True, what="an integer >= 1"),
                 "actor_start_timeout_s": lambda v: _number(v, lo=0, strict=True)},
    "costs": {"cpu_hour": lambda v: _number(v, lo=0), "gpu_hour": lambda v: _number(v, lo=0)},
    "nightly": {"replicates": lambda v: _number(v, lo=0, integer=True, what="an integer >= 0"),
                "concurrency": _policy, "schedule": _schedule,
                "starting_deadline_s": lambda v: None if v is None else _number(v, lo=0, strict=True),
                "slower_factor": lambda v: _number(v, lo=1, strict=True, what="a factor > 1"),
                "slower_min_s": lambda v: _number(v, lo=0)},
}
TOP_KEYS = ("name", "description", "results", "tracking", "resources", "dispatch", "costs", "nightly", "groups")
GROUP_KEYS = ("kind", "name", "params", "grid")


class _Checker:
    """Raises SpecError with the source, the dotted location and the line of the offending key."""

    def __init__(self, source: str, node):
        self.source, self.node = source, node

    def fail(self, path: tuple, msg: str):
        line = _line_of(self.node, path)
        where = f"{self.source}: {_loc(path)}" + (f" (line {line})" if line else "")
        raise SpecError(f"{where}: {msg}")

    def keys(self, mapping: dict, allowed, path: tuple, what: str):
        for k in mapping:
            if k not in allowed:
                extra = ""
                if isinstance(k, str) and SECRET_RE.search(k):
                    extra = ("; secrets do not belong in a spec: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                             "(or an instance role) in the environment")
                self.fail(path + (k,), f"unknown key '{k}' in {what}: {did_you_mean(str(k), list(allowed))}{extra}")

    def mapping(self, v, path: tuple) -> dict:
        if not isinstance(v, dict):
            shown = repr(v) if len(repr(v)) <= 200 else repr(v)[:197] + "..."
            self.fail(path, f"must be a mapping, got {type(v).__name__} {shown}")
        return v

    def value(self, checker, v, path):
        try:
            return checker(v)
        except ValueError as e:
            self.fail(path, str(e))


def _kind_registry():
    from htmc.tasks import TASK_KINDS
    from . import noop  # noqa: F401  registers the test/benchmark kind
    return TASK_KINDS


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def parse_spec(text: str, source: str = "<string>", *, results: str | None = None,
               tracking_uri: str | None = None, validate_tasks: bool = True) -> SweepSpec:
    """Parse and validate a spec; `results` and `tracking_uri` override the file's values."""
    data, node = _load_yaml(text, source)
    ck = _Checker(source, node)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a mapping with 'name' and 'groups', got {type(data).__name__}")
    ck.keys(data, TOP_KEYS, (), "the spec")
    for req in ("name", "groups"):
        if req not in data:
            raise SpecError(f"{source}: missing required key '{req}'")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        ck.fail(("name",), f"must be 1-64 letters, digits, '.', '_' or '-' (it names paths and MLflow "
                           f"experiments), got {name!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        ck.fail(("description",), "must be text")

    # --- results
    res = dict(ck.mapping(data.get("results") or {}, ("results",)))
    ck.keys(res, SECTIONS["results"], ("results",), "results")
    for k, chk in SECTIONS["results"].items():
        if k in res:
            res[k] = ck.value(chk, res[k], ("results", k))
    if results is not None:
        res["uri"] = results
    res.setdefault("uri", "./results")
    if res["uri"].startswith("s3://"):
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", res["uri"]):
            ck.fail(("results", "uri"), f"not a valid s3://bucket/prefix URI: {res['uri']!r}")
        res.setdefault("endpoint_url", _env_endpoint())
        if res.get("endpoint_url") and not re.match(r"https?://", res["endpoint_url"]):
            ck.fail(("results", "endpoint_url"), f"must start with http:// or https://, got {res['endpoint_url']!r}")
    elif "://" in res["uri"]:
        ck.fail(("results", "uri"), f"must be a local path or s3://bucket/prefix, got {res['uri']!r}")
    results_spec = ResultsSpec(**res)

    # --- tracking
    trk = dict(ck.mapping(data.get("tracking") or {}, ("tracking",)))
    ck.keys(trk, SECTIONS["tracking"], ("tracking",), "tracking")
    for k, chk in SECTIONS["tracking"].items():
        if k in trk and chk is not None:
            trk[k] = ck.value(chk, trk[k], ("tracking", k))
    if "children" in trk and trk["children"] not in CHILDREN_MODES:
        ck.fail(("tracking", "children"), f"must be one of task, group, off; got {trk['children']!r}")
    if tracking_uri is not None:
        trk["uri"] = tracking_uri
    trk.setdefault("uri", os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", trk["uri"])
    if scheme and scheme.group(1).split("+")[0].lower() not in TRACKING_SCHEMES:
        ck.fail(("tracking", "uri"), f"unknown MLflow tracking URI scheme '{scheme.group(1)}://': "
                                     f"{did_you_mean(scheme.group(1), list(TRACKING_SCHEMES))}")
    if trk.get("experiment") is not None and not trk["experiment"].strip():
        ck.fail(("tracking", "experiment"), "must not be blank")
    tracking_spec = TrackingSpec(**trk)

    # --- groups (kinds first: resources and dispatch refer to them)
    kinds = _kind_registry()
    groups_raw = data["groups"]
    if not isinstance(groups_raw, list) or not groups_raw:
        ck.fail(("groups",), "must be a non-empty list of task groups")
    groups, names = [], set()
    for i, g in enumerate(groups_raw):
        path = ("groups", i)
        if not isinstance(g, dict):
            ck.fail(path, f"a task group must be a mapping with 'kind' and 'grid', got {g!r}")
        ck.keys(g, GROUP_KEYS, path, "a task group")
        if "kind" not in g:
            ck.fail(path, "missing required key 'kind'")
        if not isinstance(g["kind"], str) or g["kind"] not in kinds:
            ck.fail(path + ("kind",), f"unknown task kind '{g['kind']}': "
                                      f"{did_you_mean(str(g['kind']), [n for n in kinds.names() if n != 'noop'])}")
        kind = kinds.get(g["kind"])
        gname = g.get("name") or f"{g['kind']}-{i}"
        if not isinstance(gname, str) or not NAME_RE.fullmatch(gname):
            ck.fail(path + ("name",), f"must be 1-64 letters, digits, '.', '_' or '-', got {gname!r}")
        if gname in names:
            ck.fail(path + ("name",), f"duplicate group name '{gname}'")
        names.add(gname)
        params = ck.mapping(g.get("params") or {}, path + ("params",))
        grid = ck.mapping(g.get("grid") or {}, path + ("grid",))
        for sec, m in (("params", params), ("grid", grid)):
            for k in m:
                if k not in kind.defaults:
                    ck.fail(path + (sec, k), f"unknown parameter '{k}' for task kind '{g['kind']}': "
                                             f"{did_you_mean(str(k), list(kind.defaults))}")
        both = sorted(set(params) & set(grid))
        if both:
            ck.fail(path + ("grid", both[0]), f"'{both[0]}' is in both params and grid of this group; keep one")
        for k, v in grid.items():
            if isinstance(v, list) and not v:
                ck.fail(path + ("grid", k), "an empty list of alternatives gives no tasks; remove the key or give "
                                            "values (a list-valued parameter's alternatives are a list of lists)")
        n_sets = _count_mapping(grid, {})
        if n_sets == 0:
            ck.fail(path + ("grid",), "expands to no tasks: an empty list of alternatives inside it (a list-valued "
                                      "parameter's alternatives are a list of lists)")
        n_total = n_sets + sum(_count_mapping(x.grid, {}) for x in groups)
        if n_total > MAX_TASKS:
            ck.fail(path + ("grid",), f"expands to {n_total:.3g} parameter sets (with the groups before it); "
                                      f"at most {MAX_TASKS} are allowed: split the sweep")
        groups.append(GroupSpec(g["kind"], gname, params, grid))
    used = sorted({g.kind for g in groups})

    # --- resources
    res_raw = ck.mapping(data.get("resources") or {}, ("resources",))
    resources = {}
    for k, v in res_raw.items():
        if k not in kinds:
            ck.fail(("resources", k), f"unknown task kind '{k}': {did_you_mean(str(k), kinds.names())}")
        v = ck.mapping(v or {}, ("resources", k))
        ck.keys(v, ("num_cpus", "num_gpus"), ("resources", k), f"resources of {k}")
        r = {}
        for rk in ("num_cpus", "num_gpus"):
            if rk in v:
                r[rk] = ck.value(lambda x: _number(x, lo=0), v[rk], ("resources", k, rk))
        resources[k] = Resources(**r)
    for k in used:
        resources.setdefault(k, Resources())
    for k, r in resources.items():
        if r.num_cpus == 0 and r.num_gpus == 0:
            ck.fail(("resources", k), "num_cpus and num_gpus are both 0; an actor needs some resource")

    # --- dispatch
    dsp = dict(ck.mapping(data.get("dispatch") or {}, ("dispatch",)))
    ck.keys(dsp, SECTIONS["dispatch"], ("dispatch",), "dispatch")
    for k, chk in SECTIONS["dispatch"].items():
        if k in dsp and chk is not None:
            dsp[k] = ck.value(chk, dsp[k], ("dispatch", k))
    for k in ("batch_size", "max_actors"):
        if k in dsp:
            v = dsp[k]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = {kd: v for kd in used}
            v = dict(ck.mapping(v, ("dispatch", k)))
            for kd, n in v.items():
                if kd not in kinds:
                    ck.fail(("dispatch", k, kd), f"unknown task kind '{kd}': {did_you_mean(str(kd), kinds.names())}")
                v[kd] = ck.value(lambda x: _number(x, lo=1, integer=True, what="an integer >= 1"), n,
                                 ("dispatch", k, kd))
            dsp[k] = v
    dispatch = DispatchSpec(**dsp)

    # --- costs and nightly: flat sections of optional settings; in the spec hash only when given, so that adding
    # them did not change the hash (and the Ray submission ids) of existing specs
    optional = {}
    for sec in ("costs", "nightly"):
        m = dict(ck.mapping(data.get(sec) or {}, (sec,)))
        ck.keys(m, SECTIONS[sec], (sec,), sec)
        optional[sec] = {k: ck.value(SECTIONS[sec][k], v, (sec, k)) for k, v in m.items()}
    costs, nightly = CostSpec(**optional["costs"]), NightlySpec(**optional["nightly"])

    raw = {"spec_version": SPEC_VERSION, "name": name,
           "results": {k: v for k, v in vars(results_spec).items() if k != "write_retry_s"},   # changes no result
           "tracking": {k: v for k, v in vars(tracking_spec).items()},
           "resources": {k: vars(v) for k, v in sorted(resources.items())},
           "dispatch": {k: v for k, v in vars(dispatch).items()},
           "groups": [vars(g) for g in groups]}
    raw.update({sec: vars(obj) for sec, obj in (("costs", costs), ("nightly", nightly)) if sec in data})
    spec = SweepSpec(name=name, groups=tuple(groups), results=results_spec, tracking=tracking_spec,
                     resources=resources, dispatch=dispatch, description=description, source=source, text=text,
                     raw=raw, costs=costs, nightly=nightly)
    if validate_tasks:
        object.__setattr__(spec, "_tasks", expand(spec, _checker=ck))   # cached: validation is not free
    return spec


def load_spec(path: str | os.PathLike, **overrides) -> SweepSpec:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sweep spec '{path}' does not exist")
    return parse_spec(p.read_text(), str(path), **overrides)


# ------------------------------------------------------------------------------------------------ expansion
def _alternatives(value) -> list:
    """Grid value -> its alternatives. Lists are alternatives; mappings expand to the product of their values."""
    if isinstance(value, list):
        out = []
        for alt in value:
            out.extend(_expand_mapping(alt) if isinstance(alt, dict) else [alt])
        return out
    if isinstance(value, dict):
        return _expand_mapping(value)
    return [value]


def _expand_mapping(m: dict) -> list[dict]:
    keys = list(m)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_alternatives(m[k]) for k in keys))]


def _count_alternatives(value, memo: dict) -> int:
    if isinstance(value, list):
        return sum(_count_mapping(alt, memo) if isinstance(alt, dict) else 1 for alt in value)
    return _count_mapping(value, memo) if isinstance(value, dict) else 1


def _count_mapping(m: dict, memo: dict) -> int:
    """len(_expand_mapping(m)) without building it (memoized: YAML aliases share objects)."""
    if id(m) not in memo:
        n = 1
        for v in m.values():
            n *= _count_alternatives(v, memo)
        memo[id(m)] = n
    return memo[id(m)]


def group_param_sets(group: GroupSpec) -> list[dict]:
    """The raw parameter sets of a group (grid expanded, params merged), before validation."""
    return [{**group.params, **combo} for combo in _expand_mapping(group.grid)]


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


def _validate_params(kind_name: str, kind, params: dict) -> dict:
    """kind.validate, except that a CUDA device is not required on the machine that validates (a CPU head node
    validates GPU sweeps). The worker's own run still checks that CUDA exists where the task runs."""
    dev = params.get("device")
    if kind_name == "resnet_train" and isinstance(dev, str) and dev.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            p = kind.validate({**params, "device": "cpu"})
            p["device"] = dev
            return p
    return kind.validate(params)


def expand(spec: SweepSpec, *, _checker: _Checker | None = None) -> list[Task]:
    """All tasks of the spec, in spec order, validated, deduplicated by key (first group wins)."""
    cached = getattr(spec, "_tasks", None)
    if cached is not None:
        return list(cached)
    kinds = _kind_registry()
    ck = _checker or _Checker(spec.source, None)
    tasks: dict[str, Task] = {}
    for gi, g in enumerate(spec.groups):
        kind = kinds.get(g.kind)
        version = kinds.version(g.kind)
        for raw in group_param_sets(g):
            try:
                params = _validate_params(g.kind, kind, raw)
                key = task_key(g.kind, version, params)
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
                try:
                    shown = canonical_json(raw)
                except (ValueError, TypeError):   # NaN / inf / odd types: the message must still be written
                    shown = repr(raw)
                shown = shown if len(shown) < 300 else shown[:297] + "..."
                ck.fail(("groups", gi), f"task kind '{g.kind}' rejects parameters {shown}: {msg}")
            if g.kind == "resnet_train" and str(params.get("device", "cpu")).startswith("cuda") \
                    and spec.resources_for(g.kind).num_gpus == 0:
                ck.fail(("groups", gi), f"device '{params['device']}' needs resources.{g.kind}.num_gpus > 0")
            if key not in tasks:
                tasks[key] = Task(key, g.kind, version, params, g.name)
    return list(tasks.values())


def redact(obj):
    """A copy with values under secret-looking keys replaced, and credentials stripped from URIs."""
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and SECRET_RE.search(k) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_uri(obj)
    return obj


def redact_uri(text: str) -> str:
    """postgresql://user:pw@host/db -> postgresql://user:***@host/db (any scheme with a password)."""
    return re.sub(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*):[^@/\s]*@", r"\g<pre>:***@", text)

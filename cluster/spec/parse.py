"""parse_spec and load_spec: a spec's text -> a validated SweepSpec (every check before anything runs)."""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

from htmc.registry import did_you_mean
from htmc.tasks import TASK_KINDS

from .checker import Checker
from .grid import count_mapping, expand
from .loader import load_yaml
from .model import (CHILDREN_MODES, CONCURRENCY_POLICIES, DEFAULT_TRACKING_URI, NAME_RE, SPEC_VERSION,
                    TRACKING_SCHEMES, CostSpec, DispatchSpec, GroupSpec, NightlySpec, Plan, Resources, ResultsSpec,
                    SpecError, SweepSpec, TrackingSpec)

MAX_TASKS = 1_000_000          # parameter sets of a spec, before deduplication


# Checkers of values: each returns the clean value or raises ValueError (which names the value).
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


def _schedule(v):
    if not isinstance(v, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", v):
        raise ValueError(f"must be a UTC time of day HH:MM (quote it in YAML: \"02:00\"), got {v!r}")
    return v


def _policy(v):
    if v not in CONCURRENCY_POLICIES:
        raise ValueError(f"unknown concurrency policy {v!r}: {did_you_mean(str(v), list(CONCURRENCY_POLICIES))}")
    return v


def _children(v):
    if v not in CHILDREN_MODES:
        raise ValueError(f"must be one of task, group, off; got {v!r}")
    return v


def _count(v):
    return _number(v, lo=1, integer=True, what="an integer >= 1")


# The flat sections: key -> checker (None: checked where the section is built). In the order they are checked.
SECTIONS = {
    "results": {"uri": _str, "endpoint_url": _opt_str, "region": _opt_str, "create_bucket": _bool,
                "write_retry_s": lambda v: _number(v, lo=0)},
    "tracking": {"uri": _str, "experiment": _opt_str, "children": _children, "artifact_location": _opt_str},
    "dispatch": {"max_attempts": _count, "batch_size": None, "max_actors": None, "in_flight_per_actor": _count,
                 "actor_start_timeout_s": lambda v: _number(v, lo=0, strict=True)},
    "costs": {"cpu_hour": lambda v: _number(v, lo=0), "gpu_hour": lambda v: _number(v, lo=0)},
    "nightly": {"replicates": lambda v: _number(v, lo=0, integer=True, what="an integer >= 0"),
                "concurrency": _policy, "schedule": _schedule,
                "starting_deadline_s": lambda v: None if v is None else _number(v, lo=0, strict=True),
                "slower_factor": lambda v: _number(v, lo=1, strict=True, what="a factor > 1"),
                "slower_min_s": lambda v: _number(v, lo=0)},
}
TOP_KEYS = ("name", "description", "results", "tracking", "resources", "dispatch", "costs", "nightly", "groups")
GROUP_KEYS = ("kind", "name", "params", "grid", "for_each")


def parse_spec(text: str, source: str = "<string>", *, results: str | None = None,
               tracking_uri: str | None = None, validate_tasks: bool = True) -> SweepSpec:
    """Parse and validate a spec; `results` and `tracking_uri` override the file's values."""
    data, node = load_yaml(text, source)
    ck = Checker(source, node)
    name, description = _top(ck, data, source)
    results_spec = _results(ck, _flat(ck, data, "results"), results)
    tracking_spec = _tracking(ck, _flat(ck, data, "tracking"), tracking_uri)
    groups = _groups(ck, data["groups"])           # before resources and dispatch, which refer to their kinds
    used = sorted({g.kind for g in groups})
    resources = _resources(ck, data.get("resources"), used)
    dispatch = _dispatch(ck, _flat(ck, data, "dispatch"), used)
    costs, nightly = CostSpec(**_flat(ck, data, "costs")), NightlySpec(**_flat(ck, data, "nightly"))
    raw = {"spec_version": SPEC_VERSION, "name": name,
           "results": {k: v for k, v in vars(results_spec).items() if k != "write_retry_s"},   # changes no result
           "tracking": dict(vars(tracking_spec)),
           "resources": {k: vars(v) for k, v in sorted(resources.items())},
           "dispatch": dict(vars(dispatch)),
           "groups": [vars(g) for g in groups]}
    # costs and nightly are in the spec hash only when given, so that adding them did not change the hash (and the
    # Ray submission ids) of existing specs
    raw.update({sec: vars(obj) for sec, obj in (("costs", costs), ("nightly", nightly)) if sec in data})
    spec = SweepSpec(name=name, groups=tuple(groups), results=results_spec, tracking=tracking_spec,
                     resources=resources, dispatch=dispatch, description=description, source=source, text=text,
                     raw=raw, costs=costs, nightly=nightly)
    if validate_tasks:
        spec = dataclasses.replace(spec, plan=Plan(spec.groups, expand(spec, checker=ck)))
    return spec


def load_spec(path: str | os.PathLike, **overrides) -> SweepSpec:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sweep spec '{path}' does not exist")
    return parse_spec(p.read_text(), str(path), **overrides)


# ------------------------------------------------------------------------------------------------ the sections
def _top(ck: Checker, data, source: str) -> tuple[str, str]:
    """The top level: a mapping with known keys, `name` and `groups`; returns (name, description)."""
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
    return name, description


def _flat(ck: Checker, data: dict, sec: str) -> dict:
    """A flat section (SECTIONS): a mapping of known keys, each value cleaned by its checker."""
    m = dict(ck.mapping(data.get(sec) or {}, (sec,)))
    ck.keys(m, SECTIONS[sec], (sec,), sec)
    for k, checker in SECTIONS[sec].items():
        if k in m and checker is not None:
            m[k] = ck.value(checker, m[k], (sec, k))
    return m


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _results(ck: Checker, res: dict, override: str | None) -> ResultsSpec:
    if override is not None:
        res["uri"] = override
    res.setdefault("uri", "./results")
    if res["uri"].startswith("s3://"):
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", res["uri"]):
            ck.fail(("results", "uri"), f"not a valid s3://bucket/prefix URI: {res['uri']!r}")
        res.setdefault("endpoint_url", _env_endpoint())
        if res.get("endpoint_url") and not re.match(r"https?://", res["endpoint_url"]):
            ck.fail(("results", "endpoint_url"), f"must start with http:// or https://, got {res['endpoint_url']!r}")
    elif "://" in res["uri"]:
        ck.fail(("results", "uri"), f"must be a local path or s3://bucket/prefix, got {res['uri']!r}")
    return ResultsSpec(**res)


def _tracking(ck: Checker, trk: dict, override: str | None) -> TrackingSpec:
    if override is not None:
        trk["uri"] = override
    trk.setdefault("uri", os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", trk["uri"])
    if scheme and scheme.group(1).split("+")[0].lower() not in TRACKING_SCHEMES:
        ck.fail(("tracking", "uri"), f"unknown MLflow tracking URI scheme '{scheme.group(1)}://': "
                                     f"{did_you_mean(scheme.group(1), list(TRACKING_SCHEMES))}")
    if trk.get("experiment") is not None and not trk["experiment"].strip():
        ck.fail(("tracking", "experiment"), "must not be blank")
    return TrackingSpec(**trk)


def _groups(ck: Checker, groups_raw) -> list[GroupSpec]:
    if not isinstance(groups_raw, list) or not groups_raw:
        ck.fail(("groups",), "must be a non-empty list of task groups")
    groups: list[GroupSpec] = []
    for i, g in enumerate(groups_raw):
        groups.append(_group(ck, g, ("groups", i), groups))
    return groups


def _group(ck: Checker, g, path: tuple, before: list[GroupSpec]) -> GroupSpec:
    """One task group; `before`: the groups before it (names are unique, the task count is bounded)."""
    if not isinstance(g, dict):
        ck.fail(path, f"a task group must be a mapping with 'kind' and 'grid', got {g!r}")
    ck.keys(g, GROUP_KEYS, path, "a task group")
    if "kind" not in g:
        ck.fail(path, "missing required key 'kind'")
    kind = TASK_KINDS.get(_kind_name(ck, g["kind"], path + ("kind",)))
    gname = g.get("name") or f"{g['kind']}-{path[-1]}"
    if not isinstance(gname, str) or not NAME_RE.fullmatch(gname):
        ck.fail(path + ("name",), f"must be 1-64 letters, digits, '.', '_' or '-', got {gname!r}")
    if gname in {x.name for x in before}:
        ck.fail(path + ("name",), f"duplicate group name '{gname}'")
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
    n_sets = count_mapping(grid, {})
    if n_sets == 0:
        ck.fail(path + ("grid",), "expands to no tasks: an empty list of alternatives inside it (a list-valued "
                                  "parameter's alternatives are a list of lists)")
    for_each = _for_each(ck, g, path, kind, before)
    if for_each is not None:
        n_sets *= count_mapping(next(x for x in before if x.name == for_each).grid, {})
    n_total = n_sets + sum(count_mapping(x.grid, {}) for x in before)
    if n_total > MAX_TASKS:
        ck.fail(path + ("grid",), f"expands to {n_total:.3g} parameter sets (with the groups before it); "
                                  f"at most {MAX_TASKS} are allowed: split the sweep")
    return GroupSpec(g["kind"], gname, params, grid, for_each)


def _for_each(ck: Checker, g: dict, path: tuple, kind, before: list[GroupSpec]) -> str | None:
    """The group named by for_each: earlier in the spec, of the kind this group's kind consumes."""
    name, param = g.get("for_each"), kind.upstream_param
    if name is None:
        if kind.upstream is not None and not any(param in (g.get(sec) or {}) for sec in ("params", "grid")):
            ck.fail(path, f"task kind '{g['kind']}' consumes the tasks of another group: add for_each: <the name "
                          f"of a {kind.upstream_kind} group before it>")
        return None
    if kind.upstream is None:
        ck.fail(path + ("for_each",), f"task kind '{g['kind']}' takes no for_each (it consumes no other task)")
    earlier = [x.name for x in before]
    if name not in earlier:
        ck.fail(path + ("for_each",), f"no group named '{name}' before this one: "
                                      f"{did_you_mean(str(name), earlier)}")
    up = next(x for x in before if x.name == name)
    if up.kind != kind.upstream_kind:
        ck.fail(path + ("for_each",), f"group '{name}' is of kind '{up.kind}', but '{g['kind']}' consumes "
                                      f"'{kind.upstream_kind}' tasks")
    for sec in ("params", "grid"):
        if param in (g.get(sec) or {}):
            ck.fail(path + (sec, param), f"for_each sets '{param}' from the named group; remove it here")
    return name


def _kind_name(ck: Checker, name, path: tuple) -> str:
    """A registered task kind's name, or a SpecError at path that suggests one."""
    if not isinstance(name, str) or name not in TASK_KINDS:
        ck.fail(path, f"unknown task kind '{name}': {did_you_mean(str(name), TASK_KINDS.names())}")
    return name


def _per_kind(ck: Checker, m, path: tuple, clean) -> dict:
    """A mapping kind -> value (resources, dispatch.batch_size, dispatch.max_actors): known kinds, clean values."""
    return {_kind_name(ck, k, path + (k,)): clean(v, path + (k,))
            for k, v in dict(ck.mapping(m, path)).items()}


def _resources(ck: Checker, res_raw, used: list[str]) -> dict:
    def clean(v, path):
        v = ck.mapping(v or {}, path)
        ck.keys(v, ("num_cpus", "num_gpus"), path, f"resources of {path[-1]}")
        given = {rk: ck.value(lambda x: _number(x, lo=0), v[rk], path + (rk,)) for rk in ("num_cpus", "num_gpus")
                 if rk in v}
        return Resources(**{**TASK_KINDS.get(path[-1]).default_resources, **given})

    resources = _per_kind(ck, res_raw or {}, ("resources",), clean)
    for k in used:
        resources.setdefault(k, Resources(**TASK_KINDS.get(k).default_resources))
    for k, r in resources.items():
        if r.num_cpus == 0 and r.num_gpus == 0:
            ck.fail(("resources", k), "num_cpus and num_gpus are both 0; an actor needs some resource")
    return resources


def _dispatch(ck: Checker, dsp: dict, used: list[str]) -> DispatchSpec:
    for k in ("batch_size", "max_actors"):       # a number for every kind used, or one per kind
        if k in dsp:
            v = dsp[k]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = {kd: v for kd in used}
            dsp[k] = _per_kind(ck, v, ("dispatch", k), lambda n, path: ck.value(_count, n, path))
    return DispatchSpec(**dsp)

"""parse_spec and load_spec: a spec's text -> a validated SweepSpec (every check before anything runs)."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

from htmc.registry import did_you_mean

from .checker import Checker
from .grid import count_mapping, expand, kind_registry
from .loader import load_yaml
from .model import (CHILDREN_MODES, CONCURRENCY_POLICIES, DEFAULT_TRACKING_URI, NAME_RE, SPEC_VERSION,
                    TRACKING_SCHEMES, CostSpec, DispatchSpec, GroupSpec, NightlySpec, Resources, ResultsSpec,
                    SpecError, SweepSpec, TrackingSpec)

MAX_TASKS = 1_000_000          # parameter sets of a spec, before deduplication


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


def _schedule(v):
    if not isinstance(v, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", v):
        raise ValueError(f"must be a UTC time of day HH:MM (quote it in YAML: \"02:00\"), got {v!r}")
    return v


def _policy(v):
    if v not in CONCURRENCY_POLICIES:
        raise ValueError(f"unknown concurrency policy {v!r}: {did_you_mean(str(v), list(CONCURRENCY_POLICIES))}")
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


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def parse_spec(text: str, source: str = "<string>", *, results: str | None = None,
               tracking_uri: str | None = None, validate_tasks: bool = True) -> SweepSpec:
    """Parse and validate a spec; `results` and `tracking_uri` override the file's values."""
    data, node = load_yaml(text, source)
    ck = Checker(source, node)
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
    kinds = kind_registry()
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
        n_sets = count_mapping(grid, {})
        if n_sets == 0:
            ck.fail(path + ("grid",), "expands to no tasks: an empty list of alternatives inside it (a list-valued "
                                      "parameter's alternatives are a list of lists)")
        n_total = n_sets + sum(count_mapping(x.grid, {}) for x in groups)
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
        resources[k] = Resources(**{**kinds.get(k).default_resources, **r})
    for k in used:
        resources.setdefault(k, Resources(**kinds.get(k).default_resources))
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

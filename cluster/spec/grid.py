"""Grid expansion: a group's grid -> parameter sets -> validated tasks with their keys (no Ray)."""
from __future__ import annotations

import itertools

from .checker import Checker
from .keys import canonical_json, task_key
from .model import GroupSpec, SweepSpec, Task


def kind_registry():
    from htmc.tasks import TASK_KINDS
    from cluster import noop  # noqa: F401  registers the test/benchmark kind
    return TASK_KINDS


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
        return sum(count_mapping(alt, memo) if isinstance(alt, dict) else 1 for alt in value)
    return count_mapping(value, memo) if isinstance(value, dict) else 1


def count_mapping(m: dict, memo: dict) -> int:
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


def expand(spec: SweepSpec, *, _checker: Checker | None = None) -> list[Task]:
    """All tasks of the spec, in spec order, validated, deduplicated by key (first group wins)."""
    cached = getattr(spec, "_tasks", None)
    if cached is not None:
        return list(cached)
    kinds = kind_registry()
    ck = _checker or Checker(spec.source, None)
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

"""Grid expansion: a group's grid -> parameter sets -> validated tasks with their keys (no Ray)."""
from __future__ import annotations

import itertools

from htmc.tasks import TASK_KINDS

from .checker import Checker
from htmc.records import canonical_json, task_key
from .model import GroupSpec, SweepSpec, Task


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


def group_param_sets(group: GroupSpec, upstream: list[Task] | None = None) -> list[dict]:
    """The raw parameter sets of a group (grid expanded, params merged), before validation. A for_each group gets
    one set per task of the named group, that task's params under the kind's upstream_param."""
    sets = [{**group.params, **combo} for combo in _expand_mapping(group.grid)]
    if group.for_each is None:
        return sets
    param = TASK_KINDS.get(group.kind).upstream_param
    return [{**raw, param: t.params} for t in upstream or [] for raw in sets]


def expand(spec: SweepSpec, *, checker: Checker | None = None) -> list[Task]:
    """All tasks of the spec, in spec order, validated, deduplicated by key (first group wins): its plan when
    parse_spec made one for these groups."""
    if spec.plan is not None and spec.plan.groups is spec.groups:
        return list(spec.plan.tasks)
    ck = checker or Checker(spec.source, None)
    tasks: dict[str, Task] = {}
    by_group: dict[str, list[Task]] = {}
    for gi, g in enumerate(spec.groups):
        kind = TASK_KINDS.get(g.kind)
        version = TASK_KINDS.version(g.kind)
        validate = kind.driver_validate or kind.validate
        by_group[g.name] = []
        for raw in group_param_sets(g, by_group.get(g.for_each)):
            try:
                params = validate(raw)
                key = task_key(g.kind, version, params)
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
                try:
                    shown = canonical_json(raw)
                except (ValueError, TypeError):   # NaN / inf / odd types: the message must still be written
                    shown = repr(raw)
                shown = shown if len(shown) < 300 else shown[:297] + "..."
                ck.fail(("groups", gi), f"task kind '{g.kind}' rejects parameters {shown}: {msg}")
            if kind.driver_check is not None:
                ck.value(lambda p: kind.driver_check(p, spec.resources_for(g.kind)), params, ("groups", gi))
            if key not in tasks:
                tasks[key] = Task(key, g.kind, version, params, g.name)
            by_group[g.name].append(tasks[key])
    return list(tasks.values())

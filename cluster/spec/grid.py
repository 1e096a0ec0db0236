"""Grid expansion: a group's grid -> parameter sets -> validated tasks with their keys (no Ray).

A million tasks are planned in seconds (issue 22 A; measured in benchmarks/plan.py), with keys byte-identical to
htmc.records.task_key (tests/test_key_stability.py):
- an axis of the grid over a parameter its kind declares separable (htmc.tasks.TaskKind.separable: an ε, a seed)
  is validated once per value; the other axes once per combination of their values, not once per task;
- a task's key hashes a template, the canonical JSON of {kind, kind_version, params} of its combination of the
  other axes with the separable values cut out, filled with each value's canonical JSON (made once per value);
  a grid block keeps its keys as 64-bit integers (cluster/keyarray.py) and makes their strings when asked: the
  status of a million tasks is counted with numpy (issue 22 B), not a dict of a million strings;
- tasks stay (group block, position) until read: TaskList makes each Task when it is asked for.
A sample of every such group is validated the slow way, task by task, and must agree (a kind that declares a
parameter separable that is not is a bug, stopped here, not a wrong key in the store).
"""
from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Sequence
from operator import itemgetter

import numpy as np

from htmc.records import canonical_json, task_key, task_key_of_json
from htmc.tasks import TASK_KINDS

from .. import keyarray
from .checker import Checker
from .model import GroupSpec, SweepSpec, Task

SAMPLE = 16     # tasks per separable group validated one by one as a check of the kind's declaration


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


# ------------------------------------------------------------------------------------------------ the task list
class _ListBlock:
    """A group's tasks as Task objects (groups without a separable axis, for_each groups)."""

    def __init__(self, group: str, kind: str, tasks: list[Task]):
        self.group, self.kind, self._tasks = group, kind, tasks
        self.keys = [t.key for t in tasks]

    def __len__(self) -> int:
        return len(self.keys)

    def task(self, i: int) -> Task:
        return self._tasks[i]

    def key_ints(self) -> np.ndarray:
        return keyarray.from_strings(self.keys)


class _GridBlock:
    """A group's tasks as a grid: validated params per combination of the dependent axes, canonical values per
    separable axis, and the keys. Task i is made when asked for (position i of the product, duplicates left out)."""

    def __init__(self, group: str, kind: str, version: str, names: list, radices: list, dep: list, sep: list,
                 dep_params: dict, values: dict):
        self.group, self.kind, self.version = group, kind, version
        self.names, self.radices, self.dep, self.sep = names, radices, dep, sep
        self.dep_params, self.values = dep_params, values
        self.ints = np.empty(0, np.uint64)      # the keys (cluster/keyarray.py), duplicates left out
        self._keys: list[str] | None = None
        self.flat: list[int] | None = None      # product positions of the kept tasks, when duplicates were dropped

    def __len__(self) -> int:
        return len(self.ints)

    @property
    def keys(self) -> list[str]:
        """The key strings, made on first use (~0.1 s a million)."""
        if self._keys is None:
            self._keys = keyarray.to_strings(self.ints)
        return self._keys

    def key_ints(self) -> np.ndarray:
        return self.ints

    def index_of(self, flat: int) -> list[int]:
        idx = [0] * len(self.radices)
        for i in range(len(self.radices) - 1, -1, -1):
            flat, idx[i] = divmod(flat, self.radices[i])
        return idx

    def params_at(self, idx: list[int]) -> dict:
        p = dict(self.dep_params[tuple(idx[i] for i in self.dep)])
        for i in self.sep:
            p[self.names[i]] = self.values[i][idx[i]]
        return p

    def task(self, i: int) -> Task:
        flat = self.flat[i] if self.flat is not None else i
        key = self._keys[i] if self._keys is not None else f"{int(self.ints[i]):016x}"
        return Task(key, self.kind, self.version, self.params_at(self.index_of(flat)), self.group)


class TaskList(Sequence):
    """The tasks of a spec in spec order, deduplicated by key (first group wins): a read-only sequence of Task.
    keys() and key_kinds() read no params; indexing and iteration make each Task when asked."""

    def __init__(self, blocks: list):
        self._blocks = [b for b in blocks if len(b)]
        self._starts = list(itertools.accumulate((len(b) for b in self._blocks), initial=0))

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("task index out of range")
        b = bisect.bisect_right(self._starts, i) - 1
        return self._blocks[b].task(i - self._starts[b])

    def __iter__(self):
        for b in self._blocks:
            for i in range(len(b)):
                yield b.task(i)

    def keys(self):
        """Every task key, in order (no Task made)."""
        for b in self._blocks:
            yield from b.keys

    def key_kinds(self):
        """(key, kind, group) of every task, in order (no Task made)."""
        for b in self._blocks:
            for k in b.keys:
                yield k, b.kind, b.group

    def key_ints(self):
        """(group, kind, its keys as 64-bit integers, cluster/keyarray.py) per group, in spec order (a group whose
        tasks all came earlier is left out): for counting a million keys with numpy (no key string made for a grid
        group)."""
        return [(b.group, b.kind, b.key_ints()) for b in self._blocks]

    def __repr__(self) -> str:
        return f"TaskList({len(self)} tasks)"


# ------------------------------------------------------------------------------------------------ expansion
class _Group:
    """One group's validation: the kind's (driver) validate and driver_check, errors as SpecErrors at the group."""

    def __init__(self, spec: SweepSpec, g: GroupSpec, gi: int, ck: Checker):
        self.spec, self.g, self.gi, self.ck = spec, g, gi, ck
        self.kind = TASK_KINDS.get(g.kind)
        self.version = TASK_KINDS.version(g.kind)
        self.validate = self.kind.driver_validate or self.kind.validate

    def params(self, raw: dict, *, json=False):
        """The validated params of a raw set (with json: and their canonical JSON, which fails on NaN/inf)."""
        g, kind = self.g, self.kind
        try:
            params = self.validate(raw)
            text = canonical_json(params) if json else None
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            try:
                shown = canonical_json(raw)
            except (ValueError, TypeError):   # NaN / inf / odd types: the message must still be written
                shown = repr(raw)
            shown = shown if len(shown) < 300 else shown[:297] + "..."
            self.ck.fail(("groups", self.gi), f"task kind '{g.kind}' rejects parameters {shown}: {msg}")
        if kind.driver_check is not None:
            self.ck.value(lambda p: kind.driver_check(p, self.spec.resources_for(g.kind)), params,
                          ("groups", self.gi))
        return (params, text) if json else params

    def key(self, params: dict) -> str:
        return task_key(self.g.kind, self.version, params)


class _Seen:
    """The keys of the groups expanded so far (first group wins): a list group's Tasks by key, a grid group's block
    by its sorted key integers (a million keys in a numpy array rather than a dict of strings)."""

    def __init__(self):
        self.tasks: dict[str, Task] = {}
        self.grids: list[tuple[np.ndarray, _GridBlock]] = []

    def holder(self, key: str):
        """The Task or the grid block that has `key`, or None when no group had it."""
        t = self.tasks.get(key)
        if t is not None or not self.grids:
            return t
        u = np.uint64(int(key, 16))
        for s, block in self.grids:
            i = int(np.searchsorted(s, u))
            if i < len(s) and s[i] == u:
                return block
        return None

    def unseen(self, ints: np.ndarray) -> np.ndarray:
        """Mask of the keys that no earlier group had."""
        mask = np.ones(len(ints), bool)
        for s, _ in self.grids:
            mask &= ~keyarray.isin(ints, s)
        if self.tasks:
            mask &= ~keyarray.isin(ints, keyarray.from_strings(list(self.tasks)))
        return mask

    def add_grid(self, block: _GridBlock) -> None:
        self.grids.append((np.sort(block.ints), block))


def _list_block(v: _Group, raws: list[dict], seen: _Seen, everyone: list | None) -> _ListBlock:
    """Validate and key each raw set; `everyone` (when given) gets the group's task for every set, duplicates
    included (a later for_each group consumes them all, as the first group's task)."""
    kept = []
    for raw in raws:
        params, text = v.params(raw, json=True)
        key = task_key_of_json(v.g.kind, v.version, text)
        holder = seen.holder(key)
        if holder is None:
            seen.tasks[key] = holder = Task(key, v.g.kind, v.version, params, v.g.name)
            kept.append(holder)
        if everyone is not None:
            everyone.append(holder if isinstance(holder, Task) else key)
    return _ListBlock(v.g.name, v.g.kind, kept)


def _separable_axes(v: _Group, names: list, alts: list) -> list[int]:
    """Positions of the grid axes over separable parameters (with more than one value), in the canonical JSON's
    key order (sorted), which is the order of their slots in a key template."""
    return sorted((i for i, n in enumerate(names) if n in v.kind.separable and len(alts[i]) > 1),
                  key=lambda i: names[i])


def _undeclared(v: _Group, name: str, why: str) -> RuntimeError:
    return RuntimeError(f"task kind '{v.g.kind}' declares parameter '{name}' separable (htmc.tasks.TaskKind."
                        f"separable), but it is not: {why}. Remove it from the kind's `separable`.")


def _grid_block(v: _Group, seen: _Seen, everyone: list | None) -> _GridBlock:
    g = v.g
    names = list(g.grid)
    alts = [_alternatives(g.grid[n]) for n in names]
    sep = _separable_axes(v, names, alts)
    dep = [i for i in range(len(names)) if i not in sep]

    def raw_at(idx):
        return {**g.params, **{n: alts[i][idx[i]] for i, n in enumerate(names)}}

    base_idx = [0] * len(names)
    base, _ = v.params(raw_at(base_idx), json=True)
    values, frags = {}, {}
    for i in sep:                  # each separable value validated once, with every other axis at its first value
        name = names[i]
        rest = {k: x for k, x in base.items() if k != name}
        values[i], frags[i] = [], []
        for vi in range(len(alts[i])):
            p = base if vi == 0 else v.params(raw_at(base_idx[:i] + [vi] + base_idx[i + 1:]), json=True)[0]
            if name not in p or (vi and {k: x for k, x in p.items() if k != name} != rest):
                raise _undeclared(v, name, f"its value {alts[i][vi]!r} changes the other parameters")
            values[i].append(p[name])
            frags[i].append(canonical_json(p[name]))
    block = _GridBlock(g.name, g.kind, v.version, names, [len(a) for a in alts], dep, sep, {}, values)
    pieces = _templates(v, block, alts, raw_at, base)
    _fill_keys(block, pieces, frags, seen, everyone)
    _check_sample(v, block, raw_at, pieces, frags)
    return block


def _templates(v: _Group, block: _GridBlock, alts: list, raw_at, base: dict) -> dict:
    """Per combination of the dependent axes: its validated params (into block.dep_params) and its key's canonical
    JSON cut where the separable values go: len(block.sep) + 1 pieces, the values between them in block.sep order."""
    markers = {i: f"\x00htmc-separable-{i}\x00" for i in block.sep}
    quoted = {i: canonical_json(m) for i, m in markers.items()}
    pieces = {}
    for d in itertools.product(*(range(len(alts[i])) for i in block.dep)):
        idx = [0] * len(alts)
        for j, i in enumerate(block.dep):
            idx[i] = d[j]
        p = base if not any(d) else v.params(raw_at(idx), json=True)[0]
        block.dep_params[d] = p
        q = dict(p)
        for i in block.sep:
            q[block.names[i]] = markers[i]
        text = canonical_json({"kind": v.g.kind, "kind_version": str(v.version), "params": q})
        cut = []
        for i in block.sep:
            head, found, rest = text.partition(quoted[i])
            if not found or text.count(quoted[i]) != 1 or any(quoted[j] in head for j in block.sep):
                raise _undeclared(v, block.names[i], "its validated value is not one plain parameter")
            cut.append(head)
            text = rest
        pieces[d] = (*cut, text)
    return pieces


def _fill_keys(block: _GridBlock, pieces: dict, frags: dict, seen: _Seen, everyone: list | None) -> None:
    """Every task's key, in product order. The hot loop is one sha256 of bytes joined from three parts a task
    (~0.5 µs): it runs over the largest separable axis, whatever its place in the grid, with the rest of the key
    joined once per combination of the other axes; the keys are then put back in product order with numpy."""
    inner = max(block.sep, key=lambda i: block.radices[i])
    slot = block.sep.index(inner)
    values = {i: [f.encode() for f in frags[i]] for i in block.sep}
    cuts = {d: [p.encode() for p in ps] for d, ps in pieces.items()}
    outer = [i for i in range(len(block.radices)) if i != inner]
    sha, chunks = hashlib.sha256, []
    for combo in itertools.product(*(range(block.radices[i]) for i in outer)):
        at = dict(zip(outer, combo))
        ps = cuts[tuple(at[i] for i in block.dep)]
        parts = [x for j, i in enumerate(block.sep) for x in (ps[j], values[i][at[i]] if i != inner else b"")]
        pre, suf = b"".join(parts[:2 * slot + 1]), b"".join([*parts[2 * slot + 2:], ps[-1]])
        chunks.append(b"".join([sha(pre + x + suf).digest() for x in values[inner]]))
    shape = [block.radices[i] for i in outer] + [block.radices[inner]]
    ints = keyarray.from_digests(b"".join(chunks), int(np.prod(shape, dtype=np.int64)))
    ints = np.moveaxis(ints.reshape(shape), -1, inner).reshape(-1)       # back in product order
    if everyone is not None:
        everyone.extend(keyarray.to_strings(ints))
    keep = seen.unseen(ints)
    if keyarray.has_duplicates(ints):
        keep &= keyarray.first_occurrences(ints)
    if not keep.all():
        block.flat = np.flatnonzero(keep).tolist()
        ints = ints[keep]
    block.ints = np.ascontiguousarray(ints)
    seen.add_grid(block)


def _check_sample(v: _Group, block: _GridBlock, raw_at, pieces: dict, frags: dict) -> None:
    """Validate SAMPLE tasks one by one; their params and keys must be those the grid path made."""
    n = 1
    for r in block.radices:
        n *= r
    for flat in sorted({0, n - 1, *range(0, n, max(1, n // SAMPLE))}):
        idx = block.index_of(flat)
        p = v.params(raw_at(idx))
        ps = pieces[tuple(idx[i] for i in block.dep)]
        text = "".join(x for j, i in enumerate(block.sep) for x in (ps[j], frags[i][idx[i]])) + ps[-1]
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        if p != block.params_at(idx) or v.key(p) != key:
            names = "' or '".join(block.names[i] for i in block.sep)
            raise _undeclared(v, names, f"task {raw_at(idx)!r} validates to other params than its grid's")
        i = flat if block.flat is None else bisect.bisect_left(block.flat, flat)
        kept = block.flat is None or (i < len(block.flat) and block.flat[i] == flat)
        if kept and block.task(i).key != key:      # the fast fill itself is wrong: a bug here, never a wrong key
            raise RuntimeError(f"grid key fill of group '{block.group}' gave task {flat} the key "
                               f"{block.task(i).key}, not {key} (cluster/spec/grid.py _fill_keys)")


def expand(spec: SweepSpec, *, checker: Checker | None = None) -> TaskList:
    """All tasks of the spec, in spec order, validated, deduplicated by key (first group wins): its plan when
    parse_spec made one for these groups."""
    if spec.plan is not None and spec.plan.groups is spec.groups:
        return spec.plan.tasks
    ck = checker or Checker(spec.source, None)
    consumed = {g.for_each for g in spec.groups if g.for_each is not None}
    seen = _Seen()
    blocks, every = [], {}          # every: group -> its tasks' keys or Tasks, duplicates included (for for_each)
    for gi, g in enumerate(spec.groups):
        v = _Group(spec, g, gi, ck)
        everyone = [] if g.name in consumed else None
        alts_n = [len(_alternatives(x)) for x in g.grid.values()]
        if g.for_each is None and any(n > 1 and k in v.kind.separable for k, n in zip(g.grid, alts_n)):
            blocks.append(_grid_block(v, seen, everyone))
        else:
            upstream = _resolve(every.get(g.for_each), seen) if g.for_each is not None else None
            blocks.append(_list_block(v, group_param_sets(g, upstream), seen, everyone))
        if everyone is not None:
            every[g.name] = everyone
    return TaskList(blocks)


def _resolve(items: list | None, seen: _Seen) -> list[Task]:
    """A consumed group's tasks (Tasks, or keys of tasks a grid block holds) as Task objects, in order."""
    out, where = [], {}
    for x in items or []:
        if isinstance(x, Task):
            out.append(x)
            continue
        holder = seen.holder(x)
        if isinstance(holder, Task):
            out.append(holder)
            continue
        if id(holder) not in where:
            where[id(holder)] = {k: i for i, k in enumerate(holder.keys)}
        out.append(holder.task(where[id(holder)][x]))
    return out

"""The grid path's keys (cluster/spec/grid.py, issue 22 B's fast fill) against the slow path: every raw parameter set
validated and keyed one by one, first group wins. Grids with the largest separable axis first, last and between
dependent axes, duplicates inside a group and across groups; and the key integers of cluster/keyarray.py."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cluster import keyarray
from cluster.spec.grid import group_param_sets
from cluster.spec.parse import parse_spec
from htmc.records import task_key
from htmc.tasks import TASK_KINDS

SPECS = {
    "largest separable axis last, a dependent axis between":
        "groups: [{kind: noop, grid: {sleep_s: [0, 0.5, 1], fail: [false, true], x: [1, 2, 3, 4]}}]",
    "largest separable axis first":
        "groups: [{kind: noop, grid: {x: [1, 2, 3, 4, 5], touch: [null, /tmp/a], sleep_s: [0, 1]}}]",
    "duplicates in a group and across groups": """groups:
  - {kind: noop, name: a, grid: {fail: [false, true]}}
  - {kind: noop, name: b, grid: {x: [0, 1, 1.0, 2, 2, 0.0], fail: [true, false]}}
  - {kind: noop, name: c, grid: {x: [2, 3, 9], sleep_s: [0, 0.25]}}""",
}


def _slow(spec) -> list[tuple[str, str, dict]]:
    """(key, group, params) of every task, each raw set validated and keyed on its own, first group wins."""
    out, seen = [], set()
    for g in spec.groups:
        kind = TASK_KINDS.get(g.kind)
        for raw in group_param_sets(g):
            p = kind.validate(raw)
            key = task_key(g.kind, TASK_KINDS.version(g.kind), p)
            if key not in seen:
                seen.add(key)
                out.append((key, g.name, p))
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_grid_keys_equal_the_slow_path(name):
    spec = parse_spec("name: grid-keys\n" + SPECS[name])
    tasks = spec.plan.tasks
    want = _slow(spec)
    assert [(t.key, t.group, t.params) for t in tasks] == want
    assert list(tasks.keys()) == [k for k, _, _ in want]
    ints = np.concatenate([k for _, _, k in tasks.key_ints()])
    assert ints.dtype == np.uint64 and ints.tolist() == [int(k, 16) for k, _, _ in want]
    if name.startswith("duplicates"):
        # b: x in {0, 1, 2} x fail, less x = 0 (both in a); c: 3 x 2, less x = 2 at sleep_s 0 (in b)
        assert [len(k) for _, _, k in tasks.key_ints()] == [2, 4, 5]


def test_key_integers_round_trip_and_reject_what_is_not_a_key():
    rng = np.random.default_rng(7)
    ints = rng.integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 1000, dtype=np.uint64)
    strings = keyarray.to_strings(ints)
    assert strings == [f"{int(u):016x}" for u in ints]
    assert keyarray.from_strings(strings).tolist() == ints.tolist()
    sliced = pa.array(["x", *strings])[1:]                   # an array with an offset into its buffers
    assert keyarray.from_strings(sliced).tolist() == ints.tolist()
    for bad in (["0123456789ABCDEF"], ["0123456789abcde"], ["0123456789abcdef0"], [None], ["0123456789abcdeg"]):
        assert keyarray.from_strings(pa.array(["0123456789abcdef", *bad])) is None, bad


def test_lookup_and_isin_agree_with_python():
    rng = np.random.default_rng(3)
    table = np.unique(rng.integers(0, 5000, 2000, dtype=np.uint64))
    rng.shuffle(table)
    probe = rng.integers(0, 5000, 3000, dtype=np.uint64)
    where = {int(u): i for i, u in enumerate(table)}
    assert keyarray.KeyIndex(table).find(probe).tolist() == [where.get(int(u), -1) for u in probe]
    assert keyarray.isin(probe, table).tolist() == [int(u) in where for u in probe]
    assert keyarray.KeyIndex(table[:0]).find(probe).tolist() == [-1] * len(probe)
    dup = np.array([5, 3, 5, 1, 3, 5], np.uint64)
    assert keyarray.has_duplicates(dup) and not keyarray.has_duplicates(table)
    assert keyarray.first_occurrences(dup).tolist() == [True, True, False, True, False, False]

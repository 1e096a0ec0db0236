"""Versions in task keys and in C̄ (DESIGN §4, issue 12): bumping one family's version reschedules exactly that
family's keys, and analysis keeps the two versions' records apart."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from analysis.aggregate import summarize
from cluster.service import plan
from cluster.spec.parse import parse_spec
from cluster.store.core import open_store, StoreConfig
from htmc.targets import FUNCTIONS, register_function
from htmc.synthesis.problem import METHODS

SPEC = """
name: versions
results: {{uri: {results}}}
groups:
  - kind: circuit_ladder
    params: {{eps0: 0.2, steps: 3, methods: [abc]}}
    grid:
      function: [sin, holder_random]
  - kind: circuit_search
    params: {{function: holder_random, methods: [table]}}
    grid:
      eps: [0.1, 0.05]
  - kind: resnet_train
    params: {{steps: 5}}
    grid:
      function: [sin, holder_random]
"""


@pytest.fixture
def bump_holder():
    """A function that re-registers holder_random under a new version (same code); restored afterwards."""
    entry = FUNCTIONS.entry("holder_random")
    yield lambda version: register_function("holder_random", version=version, replace=True)(entry.obj)
    register_function("holder_random", version=entry.version, replace=True)(entry.obj)


def _ok(task) -> dict:
    now = datetime.now(timezone.utc)
    return {"task_key": task.key, "kind_version": task.kind_version, "params_json": task.params_json,
            "status": "ok", "attempt": 1, "started_at": now, "finished_at": now, "wall_s": 0.0}


def test_versions_are_in_the_validated_params():
    spec = parse_spec(SPEC.format(results="/nonexistent"))
    for t in spec_tasks(spec):
        fv = t.params["function_version"]
        assert fv == FUNCTIONS.version(t.params["function"])
        if t.kind != "resnet_train":
            assert t.params["method_versions"] == {m: METHODS.version(m) for m in t.params["methods"]}


def spec_tasks(spec):
    from cluster.spec.grid import expand
    return expand(spec)


def test_a_version_given_in_the_spec_must_match():
    bad = SPEC.replace("params: {{eps0: 0.2,", "params: {{function_version: '0', eps0: 0.2,")
    with pytest.raises(ValueError, match=r"function_version '0' does not match .*'sin'"):
        parse_spec(bad.format(results="/nonexistent"))


def test_bumping_a_family_reschedules_exactly_its_keys(tmp_path, bump_holder):
    results = tmp_path / "results"
    spec = parse_spec(SPEC.format(results=results))
    tasks, todo, _ = plan(spec)
    assert len(todo) == len(tasks) == 6
    store = open_store(StoreConfig(str(results)))
    for t in tasks:
        store.write_record(spec.name, t.kind, _ok(t))
    assert plan(parse_spec(SPEC.format(results=results)))[1] == []          # all done: nothing to run

    bump_holder(FUNCTIONS.version("holder_random") + ".1")
    _, todo, _ = plan(parse_spec(SPEC.format(results=results)))
    holder = [t for t in tasks if t.params["function"] == "holder_random"]
    assert len(todo) == len(holder) == 4                                   # 1 ladder, 2 searches, 1 net
    assert all(t.params["function"] == "holder_random" for t in todo)
    assert {t.key for t in todo}.isdisjoint({t.key for t in tasks})


def _ladder(version: str, gates: list[int]) -> dict:
    params = {"function": "holder_random", "function_params": {"d": 1, "s": 0.5, "seed": 0, "levels": 20},
              "function_version": version, "domain": "box", "eps0": 0.2, "steps": 3}
    points = [{"eps": 0.2 * 2 ** -j, "gates": g, "method": "abc", "max_error": 0.1 * 2 ** -j, "bits_in": 4 + j,
               "bits_out": 3, "optimal_in_format": False, "verified": True} for j, g in enumerate(gates)]
    return {"task_key": f"k{version}", "sweep": "s", "kind": "circuit_ladder", "status": "ok",
            "params_json": json.dumps(params, sort_keys=True), "function": "holder_random",
            "function_version": version, "points_json": json.dumps(points), "fit_json": "{}"}


def test_the_report_keeps_two_versions_apart():
    s = summarize([_ladder("1", [10, 40, 160]), _ladder("2", [12, 30, 70])], reuse_stored_fits=False)
    fns = s.functions.set_index("function_key")
    assert len(fns) == 2
    keys = sorted(fns.index)
    assert keys[0].startswith("holder_random@1|") and keys[1].startswith("holder_random@2|")
    assert sorted(fns["label"]) == ["holder_random(d=1, s=0.5, seed=0) v1", "holder_random(d=1, s=0.5, seed=0) v2"]
    # each version's C̄ comes from its own records only: the v1 sizes quadruple per rung (gamma 2)
    assert fns.loc[keys[0], "gamma"] == pytest.approx(2.0)
    assert fns.loc[keys[1], "gamma"] < 1.5

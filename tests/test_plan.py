"""`htmc sweep plan` (issue 22 C) and the planning path behind it (issue 22 A): counts before and after part of a
sweep has records, estimates only from records of the same group and kind, the fixed JSON keys, nothing written,
bad input; the lazy task list and the check of a kind's separable declaration."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cluster.planning import sweep_plan
from cluster.spec.grid import TaskList
from cluster.spec.parse import parse_spec
from cluster.store.core import StoreConfig, open_store
from htmc.records import task_key
from htmc.registry import Entry
from htmc.tasks import TASK_KINDS, TaskKind
from jobs.cli import main

SPEC = """
name: plan-test
results: {{uri: {results}}}
resources: {{noop: {{num_cpus: 2}}}}
costs: {{cpu_hour: 0.5}}
groups:
  - kind: noop
    name: fast
    grid: {{x: [1, 2, 3, 4, 5, 6], sleep_s: [0, 0.5]}}
  - kind: noop
    name: slow
    grid: {{x: [10, 11, 12]}}
"""
TOP_KEYS = {"sweep", "spec_hash", "results", "groups", "totals", "prices", "parallelism", "unusable_files"}
TOTAL_KEYS = {"total", "done", "failed", "to_run", "task_hours", "cpu_hours", "gpu_hours", "usd", "wall_hours",
              "unestimated_tasks"}
GROUP_KEYS = {"group", "kind", "total", "done", "failed", "to_run", "estimate", "seconds_per_task", "task_hours",
              "cpu_hours", "gpu_hours", "usd"}
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _files(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _record(t, status: str, start_s: float, wall_s: float) -> dict:
    return {"task_key": t.key, "kind_version": t.kind_version, "params_json": t.params_json, "group": t.group,
            "status": status, "error": None if status == "ok" else "boom", "attempt": 1,
            "started_at": T0 + timedelta(seconds=start_s), "finished_at": T0 + timedelta(seconds=start_s + wall_s),
            "wall_s": wall_s, "num_cpus": 2.0, "num_gpus": 0.0, "cpu_seconds": 2 * wall_s, "gpu_seconds": 0.0,
            "batch_size": 1, "execution_id": "e1", "x": t.params["x"], "value": 2 * t.params["x"]}


def test_plan_before_and_after_records(tmp_path):
    results = tmp_path / "results"
    spec = parse_spec(SPEC.format(results=results))
    before = sweep_plan(spec)
    assert set(before) == TOP_KEYS and set(before["totals"]) == TOTAL_KEYS
    assert all(set(g) == GROUP_KEYS for g in before["groups"])
    assert [(g["group"], g["total"], g["to_run"], g["estimate"]) for g in before["groups"]] == \
        [("fast", 12, 12, False), ("slow", 3, 3, False)]
    assert before["totals"] == {"total": 15, "done": 0, "failed": 0, "to_run": 15, "task_hours": None,
                                "cpu_hours": None, "gpu_hours": None, "usd": None, "wall_hours": None,
                                "unestimated_tasks": 15}
    assert not results.exists()                 # planning writes nothing, not even the store's directory

    # 4 ok records of group `fast` (2 s each, two at a time: 8 task-seconds in 4 s) and 1 failed one
    store = open_store(StoreConfig(str(results)))
    fast = [t for t in spec.plan.tasks if t.group == "fast"]
    for i, t in enumerate(fast[:4]):
        assert store.write_record(spec.name, "noop", _record(t, "ok", start_s=2 * (i // 2), wall_s=2.0))
    assert store.write_record(spec.name, "noop", _record(fast[4], "failed", start_s=0, wall_s=30.0))
    files = _files(results)
    after = sweep_plan(spec)
    assert _files(results) == files             # still writes nothing (the status index is read, not rewritten)
    g_fast, g_slow = after["groups"]
    assert (g_fast["done"], g_fast["failed"], g_fast["to_run"]) == (4, 1, 7)
    assert g_fast["seconds_per_task"] == pytest.approx(2.0)          # ok records only: the failed 30 s is out
    assert g_fast["task_hours"] == pytest.approx(7 * 2.0 / 3600)
    assert g_fast["cpu_hours"] == pytest.approx(2 * 7 * 2.0 / 3600)   # num_cpus 2 from the spec's resources
    assert g_fast["gpu_hours"] == 0.0
    assert g_fast["usd"] == pytest.approx(0.5 * 2 * 7 * 2.0 / 3600)
    assert g_slow["estimate"] is False and g_slow["cpu_hours"] is None   # no record of its group: no estimate
    t = after["totals"]
    assert (t["total"], t["done"], t["failed"], t["to_run"], t["unestimated_tasks"]) == (15, 4, 1, 10, 3)
    assert after["parallelism"] == pytest.approx(2.0)
    assert t["wall_hours"] == pytest.approx(7 * 2.0 / 3600 / 2.0)
    assert t["usd"] == pytest.approx(g_fast["usd"])


def test_cli_plan_json_and_text(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(results=tmp_path / "results"))
    assert main(["sweep", "plan", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["to_run"] == 15 and out["sweep"] == "plan-test"
    other = tmp_path / "other"
    assert main(["sweep", "plan", str(path), "--results", str(other)]) == 0
    text = capsys.readouterr().out
    assert f"({other})" in text and "no estimate" in text and "cpu_hour $0.5" in text
    assert not other.exists()


@pytest.mark.parametrize("case", ["unknown field", "missing file", "unknown kind"])
def test_cli_plan_bad_input(tmp_path, capsys, case):
    path = tmp_path / "spec.yaml"
    text = SPEC.format(results=tmp_path / "results")
    if case == "unknown field":
        path.write_text(text.replace("costs:", "costz:"))
    elif case == "unknown kind":
        path.write_text(text.replace("kind: noop\n    name: slow", "kind: noops\n    name: slow"))
    assert main(["sweep", "plan", str(path if case != "missing file" else tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("htmc: error:")
    assert {"unknown field": "unknown key 'costz'", "missing file": "does not exist",
            "unknown kind": "did you mean 'noop'"}[case] in err


def test_task_list_is_a_lazy_sequence():
    spec = parse_spec(SPEC.format(results="/tmp/never-written"))
    tasks = spec.plan.tasks
    assert isinstance(tasks, TaskList) and len(tasks) == 15
    assert [t.key for t in tasks] == list(tasks.keys()) == [t.key for t in tasks[:]]
    assert tasks[-1].params["x"] == 12.0 and tasks[3].params == {**tasks[3].params, "x": 2.0, "sleep_s": 0.5}
    assert all(task_key(t.kind, t.kind_version, t.params) == t.key for t in tasks)
    assert [k for k, _, g in tasks.key_kinds() if g == "slow"] == [t.key for t in tasks[12:]]


def _bad_validate(p: dict) -> dict:
    p = {"x": 0.0, "y": 0.0, **p}
    return {**p, "y": p["x"] + p["y"]}        # y's validated value depends on x: x is not separable


def test_a_wrong_separable_declaration_is_caught(monkeypatch):
    monkeypatch.setitem(TASK_KINDS._entries, "bad_sep", Entry("bad_sep", "1", TaskKind(
        "bad_sep", "1", {"x": 0.0, "y": 0.0}, _bad_validate, lambda p: None, separable=("x",))))
    with pytest.raises(RuntimeError, match="declares parameter 'x' separable"):
        parse_spec("name: s\ngroups: [{kind: bad_sep, grid: {x: [1, 2, 3], y: [0, 1]}}]")

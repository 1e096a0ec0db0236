"""`htmc sweep status`'s counting with key integers (issue 22 B, cluster/keyarray.py): the same counts as the dict
of Store.statuses(), over compacted rows, per-task files (ok and failed), a per-task file of a compacted key and
records the spec no longer makes; the same costs; `htmc sweep plan`'s counts and its estimates summed by Arrow; and
a compacted part whose contents break the store's rules is reported and read as missing, never counted. No Ray:
records are written through the store's API."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from analysis.costs import cost_totals
from cluster.planning import sweep_plan
from cluster.service import sweep_status
from cluster.spec.parse import parse_spec
from cluster.store.compaction import compact_sweep
from cluster.store.core import StoreConfig, open_store

SPEC = "name: counts\nresults: {{uri: {root}}}\ngroups:\n  - kind: noop\n    grid: {{x: {xs}, sleep_s: [0, 1]}}\n"


def _rec(key: str, status: str, x: float = 0.0, *, group: str = "g", start_s: float = 0.0, wall_s: float = 2.0,
         execution_id: str | None = None) -> dict:
    at = datetime(2026, 12, 7, 3, tzinfo=timezone.utc) + timedelta(seconds=start_s)
    return {"task_key": key, "kind_version": "1", "params_json": json.dumps({"x": x}), "group": group,
            "status": status, "error": None if status == "ok" else "boom", "attempt": 1, "started_at": at,
            "finished_at": at + timedelta(seconds=0 if math.isnan(wall_s) else wall_s), "wall_s": wall_s,
            "num_cpus": 1.0, "num_gpus": 0.0, "cpu_seconds": 2.0, "gpu_seconds": 0.0, "batch_size": 1,
            "execution_id": execution_id, "x": x, "value": 2 * x}


def _dict_counts(spec, store) -> dict:
    """The counts as sweep_status made them before issue 22 B: a dict lookup a key."""
    existing = store.statuses(spec.name)
    keys = set(spec.plan.tasks.keys())
    rows: dict = {}
    for key, kind, _ in spec.plan.tasks.key_kinds():
        row = rows.setdefault(kind, {"ok": 0, "failed": 0, "missing": 0, "other": 0, "total": 0})
        row["total"] += 1
        st = existing.get(key, (None, None))[1]
        row[st if st in ("ok", "failed") else "missing"] += 1
    for key, (kind, st) in existing.items():
        if key not in keys:
            rows.setdefault(kind, {"ok": 0, "failed": 0, "missing": 0, "other": 0, "total": 0})["other"] += 1
    return rows


def test_counts_and_costs_equal_the_dict_path(tmp_path):
    root = tmp_path / "results"
    spec = parse_spec(SPEC.format(root=root, xs=list(range(20))))
    keys = list(spec.plan.tasks.keys())            # 40 tasks
    store = open_store(StoreConfig(str(root)))
    for i in range(12):
        store.write_record("counts", "noop", _rec(keys[i], "ok", i))
    for i in range(12, 18):
        store.write_record("counts", "noop", _rec(keys[i], "failed", i))
    for i in range(5):                             # records the spec does not make (an older grid)
        store.write_record("counts", "noop", _rec(f"{i:016x}", "ok"))
    store.write_record("counts", "resnet_train", {**_rec("00000000000000ff", "ok"), "x": None, "value": None})
    assert compact_sweep(store, "counts")["rows"] == 18
    for i in (18, 19):                             # after the compaction: per-task files again
        store.write_record("counts", "noop", _rec(keys[i], "ok", i))
    store.write_record("counts", "noop", _rec(keys[20], "failed", 20))
    store.write_record("counts", "noop", _rec(keys[0], "failed", 0))    # a compacted key: the compacted row wins

    fresh = open_store(StoreConfig(str(root)))
    out = sweep_status(spec)
    assert out["kinds"] == _dict_counts(spec, fresh)
    assert out["kinds"] == {"noop": {"ok": 14, "failed": 7, "missing": 19, "other": 5, "total": 40},
                            "resnet_train": {"ok": 0, "failed": 0, "missing": 0, "other": 1, "total": 0}}
    every = fresh.load("counts", columns=["task_key", "status", "finished_at", "cpu_seconds", "gpu_seconds"])
    assert out["costs"] == cost_totals(every) and out["costs"]["total"]["records"] == 27
    assert out["unusable_files"] == 0


def test_plan_counts_and_estimates(tmp_path):
    """sweep_plan's done / failed / to run by key integers, and its time a task and parallelism summed by Arrow:
    ok records with a finite wall_s only, parallelism from the execution with the most records."""
    root = tmp_path / "results"
    spec = parse_spec(SPEC.format(root=root, xs=list(range(20))) + "costs: {cpu_hour: 1.0}\n")
    tasks = list(spec.plan.tasks)
    store = open_store(StoreConfig(str(root)))

    def put(i, status="ok", **kw):
        store.write_record("counts", "noop", _rec(tasks[i].key, status, i, group=tasks[i].group, **kw))
    for i in range(4):                  # e1: four 2 s tasks, two at a time, in 4 s
        put(i, start_s=2 * (i // 2), execution_id="e1")
    put(4, wall_s=float("nan"), execution_id="e1")       # no time: out of the estimate
    put(5, wall_s=4.0)                                   # no execution: in the mean, not in the parallelism
    put(6, "failed", wall_s=30.0, execution_id="e1")     # failed: out
    compact_sweep(store, "counts")
    put(7, start_s=100.0, execution_id="e2")             # a per-task file after the compaction
    plan = sweep_plan(spec)
    (g,) = plan["groups"]
    assert (g["total"], g["done"], g["failed"], g["to_run"]) == (40, 7, 1, 32)
    assert g["seconds_per_task"] == pytest.approx((4 * 2.0 + 4.0 + 2.0) / 6)
    assert plan["parallelism"] == pytest.approx(2.0)
    assert g["cpu_hours"] == pytest.approx(32 * 14 / 6 / 3600) and g["usd"] == pytest.approx(g["cpu_hours"])


def _rewrite_part(part, change) -> None:
    t = pq.read_table(part)
    pq.write_table(change(t), part)


def _set(t: pa.Table, name: str, values) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, pa.array(values, t.schema.field(name).type))


BAD_PARTS = {
    "holds a record that is not ok": lambda t: _set(t, "status", ["failed"] + t.column("status").to_pylist()[1:]),
    "holds a malformed task key":
        lambda t: _set(t, "task_key", [t.column("task_key")[0].as_py().upper()] + t.column("task_key").to_pylist()[1:]),
    "holds a task key twice":
        lambda t: _set(t, "task_key", [t.column("task_key")[1].as_py()] + t.column("task_key").to_pylist()[1:]),
    "rows, the manifest says": lambda t: t.slice(1),
}


@pytest.mark.parametrize("why", sorted(BAD_PARTS))
def test_a_part_that_breaks_the_rules_is_reported_and_read_as_missing(tmp_path, why):
    root = tmp_path / "results"
    spec = parse_spec(SPEC.format(root=root, xs=[1, 2, 3]))
    store = open_store(StoreConfig(str(root)))
    for i, k in enumerate(spec.plan.tasks.keys()):
        store.write_record("counts", "noop", _rec(k, "ok", i))
    compact_sweep(store, "counts")
    part = next((root / "sweep=counts" / "kind=noop").glob("part-*.parquet"))
    _rewrite_part(part, BAD_PARTS[why])
    fresh = open_store(StoreConfig(str(root)))
    assert fresh.statuses("counts") == {} and fresh.status_arrays("counts") == {}
    assert why in next(iter(fresh.verify("counts").values()))
    out = sweep_status(spec)
    assert out["kinds"]["noop"] == {"ok": 0, "failed": 0, "missing": 6, "other": 0, "total": 6}
    assert out["unusable_files"] == 1
    assert pc.sum(pq.read_table(part).column("cpu_seconds")).as_py() > 0     # the file is left for compaction

"""Task keys never change (issue 22 A): stored sweeps resume only if today's planning gives the keys the planning
code of commit 800e957 gave. tests/data/keys_v1.json.gz holds that code's keys for ~8,800 tasks of every task
kind (small grids of each, and the shipped sweeps/ as they were then), written by tests/data/make_keys_v1.py."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from cluster.spec.parse import parse_spec
from cluster.spec.grid import expand
from htmc.records import task_key
from htmc.tasks import TASK_KINDS

FIXTURE = json.loads(gzip.open(Path(__file__).parent / "data" / "keys_v1.json.gz", "rt", encoding="utf-8").read())
SPECS = {e["name"]: e for e in FIXTURE["specs"]}


def _normalize(obj):
    if isinstance(obj, float):
        return int(obj) if obj.is_integer() and abs(obj) < 2 ** 53 else obj
    if isinstance(obj, dict):
        return {str(k): _normalize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize(v) for v in obj]
    return obj


def _key_as_in_800e957(kind, kind_version, params) -> str:
    blob = json.dumps(_normalize({"kind": kind, "kind_version": str(kind_version), "params": params}),
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


KIND_VERSIONS_AT_800E957 = {"circuit_search": "1", "circuit_ladder": "1", "resnet_train": "1", "resnet_compile": "1",
                            "noop": "1"}
KINDS_AT_800E957 = set(KIND_VERSIONS_AT_800E957)
# A deliberate version bump changes a kind's keys by design (a new meaning schedules new work): resnet_compile 2
# (issue 21, gates from the net's own netlist). Its params must still plan byte for byte as before.
def _bumped() -> set[str]:   # read at test time: conftest registers noop after this module is imported
    return {k for k, v in KIND_VERSIONS_AT_800E957.items() if TASK_KINDS.version(k) != v}


def test_only_the_named_kinds_were_bumped():
    assert _bumped() == {"resnet_compile"}


def test_fixture_covers_every_kind():
    """Every kind of 800e957 (a kind added later has no old keys to keep; noop is registered by conftest)."""
    kinds = {g["kind"] for e in SPECS.values() for g in parse_spec(e["text"], validate_tasks=False).raw["groups"]}
    assert kinds == KINDS_AT_800E957 and kinds <= set(TASK_KINDS.names())
    assert FIXTURE["base_commit"].startswith("800e957")
    assert sum(e["n"] for e in SPECS.values()) > 8000


@pytest.mark.parametrize("name", sorted(SPECS))
def test_keys_and_params_as_committed(name):
    e = SPECS[name]
    tasks = parse_spec(e["text"], f"<{name}>").plan.tasks
    assert [task_key(t.kind, KIND_VERSIONS_AT_800E957[t.kind], t.params) for t in tasks] == e["keys"]
    bumped = _bumped()
    assert [t.key for t in tasks if t.kind not in bumped] == [
        k for t, k in zip(tasks, e["keys"]) if t.kind not in bumped]
    assert all(t.key != k for t, k in zip(tasks, e["keys"]) if t.kind in bumped)
    assert [t.group for t in tasks] == e["groups"]
    joined = "\n".join(t.params_json for t in tasks).encode()
    assert hashlib.sha256(joined).hexdigest() == e["params_sha256"]
    # each key is still sha256 of the canonical {kind, kind_version, params}, as 800e957 wrote it out
    for t in tasks[:: max(1, len(tasks) // 50)]:
        assert _key_as_in_800e957(t.kind, t.kind_version, t.params) == t.key == task_key(t.kind, t.kind_version,
                                                                                            t.params)


def test_lazy_expansion_gives_the_same_tasks():
    e = SPECS["ladder"]
    spec = parse_spec(e["text"], validate_tasks=False)
    assert [t.key for t in expand(spec)] == e["keys"]

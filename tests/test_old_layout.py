"""Stores written before issues 12 and 13 stay readable (tests/fixtures/old_layout_store: 3 records written by
commit f1d76b7 running SPEC's groups through its own Ray workers and store)."""
from __future__ import annotations

import shutil
from pathlib import Path

from analysis.aggregate import summarize
from cluster.service import plan
from cluster.spec.parse import parse_spec
from cluster.store.core import StoreConfig, open_store

OLD = Path(__file__).parent / "fixtures" / "old_layout_store"
SPEC = """
name: oldlayout
results: {{uri: {results}}}
groups:
  - kind: circuit_search
    params: {{function: parity, function_params: {{d: 1, bits: 2}}, eps: 0.25, methods: [exact], bits: 2}}
  - kind: circuit_ladder
    params: {{function: sin, eps0: 0.2, steps: 2, methods: [table], thorough: false, budget_s: 20}}
  - kind: resnet_train
    params: {{function: sin, steps: 20, width: 8, depth: 1, rank: 4}}
"""


def _copy(tmp_path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(OLD, dst)
    return dst


def test_old_records_load_with_current_column_names(tmp_path):
    t = open_store(StoreConfig(str(_copy(tmp_path)))).load("oldlayout")
    assert t.num_rows == 3 and sorted(t.column("kind").to_pylist()) == ["circuit_ladder", "circuit_search",
                                                                          "resnet_train"]
    search = next(r for r in t.to_pylist() if r["kind"] == "circuit_search")
    assert "optimal" not in t.column_names                      # renamed on read (cluster.store.schema)
    assert search["optimal_in_format"] is True and search["gates"] == 1 and search["max_error"] <= 0.25


def test_old_records_summarize_under_their_own_versions(tmp_path):
    s = summarize(open_store(StoreConfig(str(_copy(tmp_path)))).load("oldlayout"), reuse_stored_fits=False)
    keys = set(s.functions["function_key"])
    assert any(k.startswith("sin@1|") for k in keys) and any(k.startswith("parity@1|") for k in keys)
    assert len(s.nets) == 1 and s.nets["function_key"].iloc[0].startswith("sin@1|")


def test_old_keys_are_rescheduled_because_versions_are_now_in_the_key(tmp_path):
    tasks, todo, existing = plan(parse_spec(SPEC.format(results=_copy(tmp_path))))
    assert len(existing) == 3 and len(todo) == len(tasks) == 3
    assert {t.key for t in tasks}.isdisjoint(existing)


def test_old_records_compact_and_read_back_the_same(tmp_path):
    """An old store compacts like a new one (issue 22): the same rows, under the current column names, before and
    after; the legacy `optimal` column is renamed in the part."""
    from cluster.store import compact, read_table
    root = _copy(tmp_path)
    before = read_table(str(root), "oldlayout").sort_by("task_key").to_pylist()
    out = compact(str(root), "oldlayout")["sweeps"][0]
    assert (out["rows"], out["parts"], out["files_merged"]) == (3, 3, 3)
    assert not list(root.rglob("sweep=oldlayout/kind=*/[0-9a-f]*.parquet"))     # the old files are merged
    after = read_table(str(root), "oldlayout").sort_by("task_key").to_pylist()
    assert after == before and "optimal" not in after[0]

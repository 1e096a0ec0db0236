"""The documented ways to read a results store whole (docs/DATA.md; issue 23): pandas, polars and DuckDB each see
every record once with every kind's columns, and none of them reads the status index under `_index/`.

The store is real: one task of each of the five kinds, run by htmc.tasks, wrapped in the common columns by the
worker's build_record and written through the store API; four of them are then compacted into parts (issue 22)
and the compile record, written after, stays a per-task file, and the status index is written. pyarrow's dataset and `pd.read_parquet`
on the root take the first file's schema and drop the other kinds' columns; these recipes must not.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from cluster.dispatch.worker import build_record
from cluster.provenance import versions
from cluster.store import StoreConfig, compact, live_files, open_store, read_table
from htmc.records import canonical_json, task_key
from htmc.tasks import TASK_KINDS

SWEEP = "readers"
TRAIN = {"function": "sin", "width": 4, "depth": 1, "rank": 2, "steps": 200, "n_train": 64, "lam": 1e-5,
         "lr": 0.01}
TASKS = [("circuit_ladder", {"function": "sin", "eps0": 0.2, "steps": 3, "methods": ["table"], "thorough": False}),
         ("circuit_search", {"function": "sin", "eps": 0.05, "methods": ["table"], "thorough": False}),
         ("resnet_train", TRAIN),
         ("resnet_compile", {"train": TRAIN, "eps0": 0.8, "steps": 2, "budget_s": 5, "max_inputs": 8}),
         ("resnet_fit", {"function": "sin", "eps0": 0.2, "rung": 0, "budget_s": 5, "compile_budget_s": 5,
                         "max_inputs": 8})]
KINDS = Counter(k for k, _ in TASKS)


def _record(kind_name: str, raw: dict, upstream: dict | None) -> dict:
    kind = TASK_KINDS.get(kind_name)
    params = kind.validate(raw)
    version = TASK_KINDS.version(kind_name)
    task = {"key": task_key(kind_name, version, params), "params": params, "params_json": canonical_json(params),
            "group": kind_name, "kind_version": version}
    t0, s0 = datetime.now(timezone.utc), time.perf_counter()
    out = kind.run(params, upstream) if kind.upstream else kind.run(params)
    ctx = {"sweep": SWEEP, "execution_id": "readers-1", "spec_hash": "0" * 16, "git_sha": "test",
           "num_cpus": 1.0, "num_gpus": 0.0}
    return build_record(task, out, "ok", None, t0, datetime.now(timezone.utc), time.perf_counter() - s0, 1,
                        ctx=ctx, worker="test:0", node="", versions=versions())


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    """(root, expected): a store holding one record of each kind, four compacted and one a per-task file, and
    per task key the record as its own file holds it (read before compaction, with that file's own schema)."""
    root = tmp_path_factory.mktemp("readers") / "results"
    store = open_store(StoreConfig(str(root)))
    expected, rows = {}, {}
    for kind_name, raw in TASKS:
        rec = _record(kind_name, raw, rows.get("resnet_train"))
        assert rec["status"] == "ok", rec.get("error")
        rows[kind_name] = rec
        if kind_name == "resnet_compile":      # written after the compaction: stays a per-task file
            continue
        store.write_record(SWEEP, kind_name, rec)
    for kind_name, rec in rows.items():
        if kind_name != "resnet_compile":
            expected[rec["task_key"]] = _own_file(root, kind_name, rec["task_key"])
    compact(str(root), SWEEP)
    store.write_record(SWEEP, "resnet_compile", rows["resnet_compile"])
    key = rows["resnet_compile"]["task_key"]
    expected[key] = _own_file(root, "resnet_compile", key)
    assert set(store.statuses(SWEEP)) == set(expected)          # writes the status index
    assert list((root / "_index").rglob("*.parquet")), "the status index should exist: the recipes must skip it"
    assert list(root.rglob("part-*.parquet")), "four records should be in compacted parts"
    return root, expected


def _own_file(root, kind: str, key: str) -> dict:
    row = pq.read_table(root / f"sweep={SWEEP}" / f"kind={kind}" / f"{key}.parquet").to_pylist()[0]
    return {**row, "sweep": SWEEP, "kind": kind}


def _columns(expected: dict) -> set[str]:
    return set().union(*(r.keys() for r in expected.values()))


def _check(rows: list[dict], columns, expected: dict) -> None:
    """Every record once, every kind's columns, and each record's own values (nulls only where its kind has
    no such column)."""
    assert set(columns) >= _columns(expected), sorted(_columns(expected) - set(columns))
    assert len(rows) == len(expected) == len(TASKS)
    assert Counter(r["kind"] for r in rows) == KINDS
    by_key = {r["task_key"]: r for r in rows}
    assert set(by_key) == set(expected)
    for key, want in expected.items():
        got = by_key[key]
        for col, v in want.items():
            g = got[col]
            if isinstance(v, datetime):
                g, v = _utc(g), _utc(v)
            assert _same(g, v), (want["kind"], col, g, v)
        for col in set(columns) - set(want):
            assert _same(got[col], None), (want["kind"], col, got[col])


def _utc(t):
    import pandas as pd
    return pd.Timestamp(t).tz_convert("UTC") if pd.Timestamp(t).tzinfo else pd.Timestamp(t).tz_localize("UTC")


def _same(a, b) -> bool:
    import math
    none = lambda x: x is None or (isinstance(x, float) and math.isnan(x)) or str(x) in ("NaT", "<NA>")  # noqa: E731
    if none(a) or none(b):
        return none(a) and none(b)
    return a == b


def test_the_store_spans_every_kind_with_different_columns(store_root):
    _, expected = store_root
    # a new task kind belongs here too (noop is the tests' plugin kind, tests/noop_kind.py)
    assert set(KINDS) == {e.name for e in TASK_KINDS} - {"noop"}
    cols = {r["kind"]: set(r) for r in expected.values()}
    # the reason the naive readers fail: no kind's file has every column
    assert all(c < _columns(expected) for c in cols.values())
    assert "lam" in cols["resnet_train"] and "lam" not in cols["circuit_ladder"]
    assert "points_json" in cols["circuit_ladder"] and "norm_l1" in cols["resnet_train"]


def test_pandas_reads_every_column_through_read_table(store_root):
    root, expected = store_root
    df = read_table(str(root), SWEEP).to_pandas()
    _check(df.to_dict(orient="records"), df.columns, expected)
    only = read_table(str(root), SWEEP, kind="resnet_train").to_pandas()
    assert len(only) == 1 and only["lam"].iloc[0] == TRAIN["lam"]


def test_polars_reads_every_column_through_read_table(store_root):
    pl = pytest.importorskip("polars")
    root, expected = store_root
    df = pl.from_arrow(read_table(str(root), SWEEP))
    _check(df.to_dicts(), df.columns, expected)


def test_duckdb_reads_every_column_from_the_live_files_and_the_arrow_table(store_root):
    duckdb = pytest.importorskip("duckdb")
    root, expected = store_root
    files = live_files(str(root), SWEEP)
    # one compacted part per kind compacted, and the record written after the compaction as its own file
    assert sorted(f.rsplit("/", 1)[1].startswith("part-") for f in files) == [False, True, True, True, True]
    assert not any("_index" in f for f in files)
    con = duckdb.connect()
    rel = con.sql("SELECT * FROM read_parquet($files, hive_partitioning = true, union_by_name = true)",
                  params={"files": files})
    _check([dict(zip(rel.columns, r)) for r in rel.fetchall()], rel.columns, expected)
    # the same over the unified Arrow table (DuckDB scans a Python variable by its name)
    records = read_table(str(root), SWEEP)  # noqa: F841
    rel = con.sql("SELECT kind, count(*) AS n, count(lam) AS with_lam FROM records GROUP BY kind ORDER BY kind")
    assert rel.fetchall() == [("circuit_ladder", 1, 0), ("circuit_search", 1, 0), ("resnet_compile", 1, 1),
                              ("resnet_fit", 1, 0), ("resnet_train", 1, 1)]


def test_duckdb_glob_of_the_record_paths_skips_the_status_index(store_root):
    duckdb = pytest.importorskip("duckdb")
    root, expected = store_root
    rel = duckdb.connect().sql(
        f"SELECT * FROM read_parquet('{root}/sweep=*/kind=*/*.parquet', hive_partitioning = true, "
        f"union_by_name = true)")
    _check([dict(zip(rel.columns, r)) for r in rel.fetchall()], rel.columns, expected)


def test_compile_record_carries_its_nets_norms(store_root):
    _, expected = store_root
    comp = next(r for r in expected.values() if r["kind"] == "resnet_compile")
    train = next(r for r in expected.values() if r["kind"] == "resnet_train")
    assert comp["train_key"] == train["task_key"]
    assert json.loads(comp["points_json"])[0]["eps"] == 0.8

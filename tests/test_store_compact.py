"""Compacted tables (cluster/store/compaction.py, issue 22): per-task records merged into key-sorted Parquet parts per
sweep and kind, locally and on S3 (moto). Every reader sees each record exactly once before, during and after a
compaction; DuckDB and polars read the live files with the hive columns; a bad part is reported, never silently
dropped; a full disk leaves the old table and every record file in place. No Ray here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from cluster.store import compact, live_files, load_records, read_table
from cluster.store.compaction import compact_sweep
from cluster.store.core import StoreConfig, open_store
from cluster.store.layout import StoreRefused
from cluster.store.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent


def key(i: int) -> str:
    return f"{i:016x}"


def rec(i: int, status: str = "ok", **extra) -> dict:
    now = datetime(2026, 12, 7, tzinfo=timezone.utc)
    return {"task_key": key(i), "kind_version": "1", "params_json": json.dumps({"x": i}), "group": "g",
            "status": status, "error": None if status == "ok" else "boom", "attempt": 1, "started_at": now,
            "finished_at": now, "wall_s": 0.5, "num_cpus": 1.0, "num_gpus": 0.0, "cpu_seconds": 0.5,
            "gpu_seconds": 0.0, "batch_size": 1, **extra}


def fill(store, sweep: str, n_noop: int, n_train: int, *, failed_every: int | None = 7, start: int = 0) -> None:
    """n_noop noop records (every failed_every-th failed) and n_train resnet_train records (other columns)."""
    for i in range(start, start + n_noop):
        store.write_record(sweep, "noop", rec(i, "failed" if failed_every and i % failed_every == 0 else "ok", x=i, value=2.0 * i))
    for i in range(start + 10_000, start + 10_000 + n_train):
        store.write_record(sweep, "resnet_train", rec(i, sup_error=i / 1e5, norm_l1=1.5))


def rows_by_key(t: pa.Table) -> dict[str, dict]:
    rows = t.to_pylist()
    keys = [r["task_key"] for r in rows]
    assert len(keys) == len(set(keys)), "a record read twice"
    return {r["task_key"]: r for r in rows}


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "results")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return StoreConfig(f"s3://{bucket}/p", endpoint_url=endpoint, region="us-east-1")


def test_compaction_keeps_every_record_once_and_readers_agree(where):
    store = open_store(StoreConfig(where) if isinstance(where, str) else where)
    fill(store, "sw", 40, 12)
    before = rows_by_key(read_table(where, "sw"))
    assert len(before) == 52
    out = compact(where, "sw")["sweeps"][0]
    # 40 noop of which 6 failed (0, 7, ..., 35) stay as files; the 34 ok + 12 resnet_train go into two parts
    assert (out["version"], out["parts"], out["rows"], out["files_merged"], out["failed_left_as_files"]) == \
        (1, 2, 46, 46, 6)
    fresh = open_store(StoreConfig(where) if isinstance(where, str) else where)
    assert sorted(k for _, k, _ in fresh._entries("sw", None).values()) == \
        sorted(key(i) for i in range(0, 40, 7))                          # only the failed records are files now
    after = rows_by_key(read_table(where, "sw"))
    assert after.keys() == before.keys()
    for k, r in before.items():                                          # same values, same types
        assert after[k] == r, k
    assert rows_by_key(load_records(where, "sw")).keys() == before.keys()
    assert fresh.statuses("sw") == open_store(fresh.cfg).statuses("sw") and len(fresh.statuses("sw")) == 52
    assert fresh.list_keys("sw") == {"noop": sorted(key(i) for i in range(40)),
                                     "resnet_train": sorted(key(i) for i in range(10_000, 10_012))}
    got = fresh.read_records("sw", "resnet_train", [key(10_003), key(99)])
    assert list(got) == [key(10_003)] and got[key(10_003)]["sup_error"] == pytest.approx(0.10003)
    # the unified table: both kinds' columns, nulls where a kind has none, and the hive columns
    t = read_table(where, "sw")
    assert {"value", "sup_error", "norm_l1", "sweep", "kind"} <= set(t.column_names)
    assert after[key(1)]["sup_error"] is None and after[key(10_000)]["value"] is None
    assert read_table(where, "sw", "noop").num_rows == 40
    assert read_table(where, "sw", columns=["task_key", "cpu_seconds"]).column_names == \
        ["task_key", "cpu_seconds", "sweep", "kind"]
    # a second compaction has nothing to do
    again = compact(where, "sw")["sweeps"][0]
    assert (again["version"], again["added_rows"], again["files_merged"]) == (1, 0, 0)


def test_duplicates_and_new_records_after_a_compaction(tmp_path):
    root = tmp_path / "results"
    store = open_store(StoreConfig(str(root)))
    fill(store, "sw", 20, 0, failed_every=None)
    data = (root / "sweep=sw/kind=noop" / f"{key(3)}.parquet").read_bytes()
    compact(str(root), "sw")
    # a worker that finished twice writes key 3 again (as a compaction killed before its clean-up leaves it), a
    # failed attempt of key 3 comes late, and new records arrive: each key is read once, the compacted row wins
    (root / "sweep=sw/kind=noop" / f"{key(3)}.parquet").write_bytes(data)
    store.write_record("sw", "noop", rec(3, "failed", x=3))      # create-once keeps the file above (ok)
    fill(store, "sw", 5, 0, start=20, failed_every=None)
    t = rows_by_key(read_table(str(root), "sw"))
    assert sorted(t) == [key(i) for i in range(25)] and t[key(3)]["status"] == "ok"
    assert len(live_files(str(root), "sw")) == 1 + 5                 # the part and the five new files
    out = compact(str(root), "sw")["sweeps"][0]
    assert (out["version"], out["rows"], out["files_merged"], out["duplicates_removed"]) == (2, 25, 5, 1)
    assert not list((root / "sweep=sw/kind=noop").glob("0*.parquet"))
    assert sorted(rows_by_key(read_table(str(root), "sw"))) == [key(i) for i in range(25)]


def test_many_parts_are_merged(tmp_path, monkeypatch):
    import cluster.store.compaction as C
    monkeypatch.setattr(C, "MAX_PARTS_PER_KIND", 2)
    root = str(tmp_path / "r")
    store = open_store(StoreConfig(root))
    for round_ in range(3):
        fill(store, "sw", 4, 0, start=4 * round_, failed_every=None)
        compact(root, "sw")
    m = load_manifest(store, "sw")
    assert (m.version, len(m.parts), m.parts[0].rows) == (3, 1, 12)
    assert len(list((tmp_path / "r/sweep=sw/kind=noop").glob("part-*.parquet"))) == 1   # merged parts removed
    assert sorted(rows_by_key(read_table(root, "sw"))) == [key(i) for i in range(12)]


def test_duckdb_reads_the_live_files_and_polars_the_table_with_hive_columns(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    root = str(tmp_path / "results")
    store = open_store(StoreConfig(root))
    fill(store, "sw", 14, 3)
    compact(root, "sw")
    fill(store, "sw", 3, 0, start=100)                 # not compacted yet
    files = live_files(root, "sw")
    con = duckdb.connect()
    got = con.execute("SELECT task_key, sweep, kind, value, sup_error FROM read_parquet(?, hive_partitioning=true, "
                      "union_by_name=true) ORDER BY task_key", [files]).fetchall()
    ref = read_table(root, "sw").sort_by("task_key")
    assert [g[0] for g in got] == ref.column("task_key").to_pylist() and len(got) == 20
    assert {(g[1], g[2]) for g in got} == {("sw", "noop"), ("sw", "resnet_train")}
    assert sum(1 for g in got if g[4] is not None) == 3 and sum(1 for g in got if g[3] is not None) == 17
    df = pl.from_arrow(read_table(root, "sw"))
    assert df.height == 20 and {"sweep", "kind", "value", "sup_error"} <= set(df.columns)


def test_bad_part_is_reported_and_its_records_run_again(tmp_path, capfd):
    root = tmp_path / "results"
    store = open_store(StoreConfig(str(root)))
    fill(store, "sw", 10, 0, failed_every=None)
    compact(str(root), "sw")
    part = next((root / "sweep=sw/kind=noop").glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:200])                # truncated
    fresh = open_store(StoreConfig(str(root)))
    assert fresh.statuses("sw") == {}                        # its records read as missing: the tasks run again
    bad = fresh.verify("sw")
    assert list(bad) == [f"sweep=sw/kind=noop/{part.name}"] and "not readable as Parquet" in bad[next(iter(bad))]
    assert "unusable record file" in capfd.readouterr().err and read_table(str(root), "sw").num_rows == 0
    fill(store, "sw", 10, 0, failed_every=None)              # what the rerun writes
    out = compact(str(root), "sw")["sweeps"][0]
    assert (out["version"], out["parts"], out["rows"]) == (2, 1, 10)
    assert "was unusable and is left out of manifest version 2" in capfd.readouterr().err
    assert open_store(StoreConfig(str(root))).verify("sw") == {}
    assert sorted(rows_by_key(read_table(str(root), "sw"))) == [key(i) for i in range(10)]


def test_compaction_on_a_full_disk_changes_nothing(small_disk):
    root = small_disk / "results"
    store = open_store(StoreConfig(str(root)))
    fill(store, "sw", 30, 0, failed_every=None)            # about half the disk (a record file is ~10 KB)
    before = rows_by_key(read_table(str(root), "sw"))
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)           # leave no room for the part
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    os.close(fd)
    with pytest.raises(StoreRefused, match=r"compaction of sweep 'sw' stopped: writing compacted part .* "
                                           r"No space left on device.*no record was lost"):
        compact_sweep(store, "sw")
    assert load_manifest(store, "sw").version == 0
    assert not list(root.rglob("part-*")) and not [p for p in (root / "_tmp").iterdir() if p.suffix != ".lock"]
    assert rows_by_key(read_table(str(root), "sw")) == before
    filler.unlink()
    assert compact(str(root), "sw")["sweeps"][0]["rows"] == 30
    assert rows_by_key(read_table(str(root), "sw")) == before


def test_store_compact_cli(tmp_path):
    root = tmp_path / "results"
    fill(open_store(StoreConfig(str(root))), "sw", 8, 0, failed_every=None)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "jobs.cli", "store", "compact", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    r = run("--results", str(root), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"] == str(root) and out["sweeps"][0]["rows"] == 8 and out["sweeps"][0]["version"] == 1
    r = run("--results", str(root), "--sweep", "nope")
    assert r.returncode == 2 and r.stderr.strip() == \
        f"htmc: error: sweep 'nope' has no records in {root}; sweeps there: sw"
    r = run("--results", str(tmp_path / "missing"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_demo_compacts_then_reads_back_and_a_second_run_merges_nothing(tmp_path):
    """`make demo` compacts its sweep and reads it back (issue 22 Done-when); run twice, nothing new is merged."""
    from jobs.demo import _compact
    results = tmp_path / "results"
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: sw\nresults: {{uri: {results}}}\ngroups:\n  - kind: noop\n    grid: {{x: [1]}}\n")
    fill(open_store(StoreConfig(str(results))), "sw", 10, 3)
    first = _compact(str(spec))
    assert "11 ok records in 2 compacted parts (version 1; 11 merged by this run), 2 failed left as files; " \
           "13 records read back" in first
    assert "version 1; 0 merged by this run" in _compact(str(spec))

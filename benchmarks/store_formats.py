"""Table formats for the compacted store, measured side by side (issue 22 B; the choice is in docs/ARCHITECTURE.md).

    .venv/bin/python benchmarks/store_formats.py --records 100000 --commits 10

The same synthetic records (benchmarks/store.py: a third each of circuit_search, circuit_ladder, resnet_train,
every column; one table per sweep, so all kinds' columns unified, partitioned by kind) arrive in --commits equal
batches, as from that many end-of-sweep compactions, then the table is compacted and read back whole:
  ours     key-sorted Parquet parts + a create-once JSON manifest (cluster/store/compaction.py), merge of parts;
  delta    deltalake (delta-rs) write_deltalake(mode="append", partition_by=["kind"]), optimize.compact();
  iceberg  pyiceberg with its SQL catalog on sqlite, table.append() per batch (pyiceberg has no data-file rewrite,
           so no compaction step).
Also: what DuckDB sees reading the table's directory as plain Parquet (`read_parquet('**/*.parquet',
hive_partitioning=true, union_by_name=true)`), since DuckDB's delta and iceberg extensions must be downloaded and
this machine cannot reach extensions.duckdb.org.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def batches(n: int, commits: int) -> list[pa.Table]:
    from store import KINDS, synthetic
    per = n // commits // len(KINDS)
    out = []
    for c in range(commits):
        parts = [synthetic(k, j * 10**8 + c * per, per).append_column("kind", pa.array([k] * per))
                 for j, k in enumerate(KINDS)]
        out.append(pa.concat_tables(parts, promote_options="permissive"))
    return out   # every batch has the same kinds, so the same unified columns


def duckdb_rows(d: Path) -> int:
    import duckdb
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{d}/**/*.parquet', "
                                    f"hive_partitioning=true, union_by_name=true)").fetchone()[0]


def files(d: Path) -> tuple[int, int]:
    fs = list(d.rglob("*.parquet"))
    return len(fs), sum(f.stat().st_size for f in fs)


def ours(d: Path, data: list[pa.Table]) -> dict:
    import cluster.store.compaction as C
    from cluster.store import read_table
    from cluster.store.core import StoreConfig, open_store
    from cluster.store.manifest import Manifest, commit_manifest, load_manifest
    store = open_store(StoreConfig(str(d)))
    t = time.perf_counter()
    for b in data:
        m = load_manifest(store, "s")
        parts = list(m.parts)
        for k in sorted(set(b.column("kind").to_pylist())):
            sub = b.filter(pa.compute.equal(b.column("kind"), k)).drop_columns(["kind"])
            C._write(store, "s", k, [sub], parts)
        assert commit_manifest(store, Manifest("s", m.version + 1, parts))
    w = time.perf_counter() - t
    t = time.perf_counter()
    C.MAX_PARTS_PER_KIND = 1
    C.compact_sweep(store, "s")
    c = time.perf_counter() - t
    t = time.perf_counter()
    n = read_table(str(d), "s").num_rows
    r = time.perf_counter() - t
    return {"write_s": w, "compact_s": c, "read_s": r, "rows": n, "files_bytes": files(d), "duckdb_glob_rows":
            duckdb_rows(d)}


def delta(d: Path, data: list[pa.Table]) -> dict:
    from deltalake import DeltaTable, write_deltalake
    t = time.perf_counter()
    for b in data:
        write_deltalake(str(d), b, mode="append", partition_by=["kind"], schema_mode="merge")
    w = time.perf_counter() - t
    t = time.perf_counter()
    DeltaTable(str(d)).optimize.compact()
    c = time.perf_counter() - t
    t = time.perf_counter()
    n = DeltaTable(str(d)).to_pyarrow_table().num_rows
    r = time.perf_counter() - t
    return {"write_s": w, "compact_s": c, "read_s": r, "rows": n, "files_bytes": files(d),
            "duckdb_glob_rows": duckdb_rows(d)}


def iceberg(d: Path, data: list[pa.Table]) -> dict:
    from pyiceberg.catalog.sql import SqlCatalog
    d.mkdir(parents=True)
    cat = SqlCatalog("b", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}")
    cat.create_namespace("ns")
    t = time.perf_counter()
    tab = cat.create_table("ns.s", schema=data[0].schema)
    for b in data:
        tab.append(b)
    w = time.perf_counter() - t
    t = time.perf_counter()
    n = cat.load_table("ns.s").scan().to_arrow().num_rows
    r = time.perf_counter() - t
    return {"write_s": w, "compact_s": None, "read_s": r, "rows": n, "files_bytes": files(d),
            "duckdb_glob_rows": duckdb_rows(d)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--commits", type=int, default=10)
    args = ap.parse_args()
    from htmc.registry import load_plugin
    load_plugin(str(ROOT / "tests" / "noop_kind.py"))
    data = batches(args.records, args.commits)
    work = Path(tempfile.mkdtemp(prefix="htmc-formats-"))
    print(f"{sum(b.num_rows for b in data)} records, {data[0].num_columns} columns, {args.commits} commits; "
          f"load {os.getloadavg()[0]:.1f}")
    try:
        for name, fn in (("ours", ours), ("delta", delta), ("iceberg", iceberg)):
            try:
                print(name, fn(work / name, data), flush=True)
            except Exception as e:  # noqa: BLE001  a candidate that fails is a result too
                print(name, "FAILED:", type(e).__name__, str(e)[:300], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

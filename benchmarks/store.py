"""Store benchmark (issue 22 B): one file per record (today's reading) against the compacted tables, side by side.

    .venv/bin/python benchmarks/store.py                      # 1,000,000 records local, 100,000 on S3 (moto)
    .venv/bin/python benchmarks/store.py --records 100000 --s3-records 10000 --loose 5000     # a quick look

Records are synthetic but real: every column of their kind's schema (cluster/store/schema.py), realistic values
(params JSON, versions, timestamps, floats), a third each of circuit_search, circuit_ladder and resnet_train (the
net_text column of resnet_train is left null: a trained net's text would dominate every size).
  loose      --loose record files written one per task (as workers write them), then read back by the
             one-file-per-record path (Store.load on a store with no compacted table, i.e. today's code path), and
             compacted by compact_sweep (throughput and disk use before/after, du with block sizes).
  compacted  --records rows written straight as compacted parts (the compaction's writer and manifest, no per-task
             files: writing a million files would take ~an hour), then: read_table of everything (analysis), the
             status path of `htmc sweep status` (statuses + the cost columns + cost_totals), one read_records.
  s3         --s3-records rows as compacted parts on moto's server; read_table; and --s3-loose per-task files read
             the old way, for the per-file cost on S3.
Timings are wall seconds on this machine, whatever else runs on it: give the load when quoting them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = ("circuit_search", "circuit_ladder", "resnet_train")


def synthetic(kind: str, start: int, n: int, seed: int = 0, keys: list[str] | None = None) -> pa.Table:
    """n records of kind with keys start..start+n-1 (or `keys`), every declared column filled (file schema, no hive
    columns)."""
    from cluster.store import schema
    rng = np.random.default_rng(seed + start)
    idx = np.arange(start, start + n)
    t0 = datetime(2026, 12, 7, tzinfo=timezone.utc).timestamp()
    cols = {}
    for name, typ in schema.file_schema_fields(kind):
        if name == "task_key":
            cols[name] = pa.array(keys if keys is not None else [f"{i:016x}" for i in idx], typ)
        elif name == "status":
            cols[name] = pa.array(["ok"] * n, typ)
        elif name == "params_json":
            cols[name] = pa.array([json.dumps({"function": "sin", "eps": 0.1 / (1 + i % 97), "seed": int(i % 1000),
                                               "function_params": {"freq": int(i % 7)}}) for i in idx], typ)
        elif name in ("error", "net_text", "fit_error", "extra_json"):
            cols[name] = pa.nulls(n, typ)
        elif name.endswith("_json"):
            cols[name] = pa.array([f'[{{"eps": {0.1 / (1 + i % 13):.5f}, "gates": {int(i % 500)}}}]' for i in idx],
                                  typ)
        elif pa.types.is_timestamp(typ):
            cols[name] = pa.array((t0 + idx * 0.01) * 1e6, pa.int64()).cast(pa.timestamp("us")).cast(typ)
        elif pa.types.is_floating(typ):
            cols[name] = pa.array(rng.random(n), typ)
        elif pa.types.is_integer(typ):
            cols[name] = pa.array(rng.integers(0, 5000, n), typ)
        elif pa.types.is_boolean(typ):
            cols[name] = pa.array(rng.random(n) < 0.5, typ)
        elif name.endswith("_version") or name in ("kind_version", "schema_version"):
            cols[name] = pa.array(["1"] * n, typ)
        else:       # group, device, worker, node, execution_id, spec_hash, git_sha, function, method, ...
            vals = [f"{name}-{j}" for j in range(8)]
            cols[name] = pa.array([vals[i % 8] for i in idx], typ)
    return pa.table(cols)


def du(path: Path) -> int:
    """Bytes on disk (blocks), as `du -s --block-size=1`."""
    return int(subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def write_loose(store, sweep: str, n: int) -> float:
    """n per-task record files through the store's own create-once write (as workers write them); seconds."""
    t = time.perf_counter()
    per = n // len(KINDS)
    for j, kind in enumerate(KINDS):
        tab = synthetic(kind, j * 10**8, per)
        for rec in tab.to_pylist():
            store.write_record(sweep, kind, rec)
    return time.perf_counter() - t


def write_compacted(store, sweep: str, n: int, chunk: int = 200_000, keys: dict | None = None) -> float:
    """n records written straight as compacted parts + one manifest version (the compaction's own writer): a third
    of each kind with keys of their own, or `keys` (kind -> its records' keys; n is then ignored)."""
    from cluster.store.compaction import _write
    from cluster.store.manifest import Manifest, commit_manifest
    t = time.perf_counter()
    parts = []
    per = n // len(KINDS)
    for j, kind in enumerate(KINDS if keys is None else list(keys)):
        ks = None if keys is None else keys[kind]
        for s in range(0, per if ks is None else len(ks), chunk):
            m = min(chunk, (per if ks is None else len(ks)) - s)
            _write(store, sweep, kind, [synthetic(kind, j * 10**8 + s, m, keys=None if ks is None else ks[s:s + m])],
                   parts)
    assert commit_manifest(store, Manifest(sweep, 1, parts))
    return time.perf_counter() - t


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def status_path(store, sweep: str) -> tuple[float, int]:
    """What `htmc sweep status` asks of the store (cluster/service.py sweep_status): every key's status as key
    integers, then the cost columns summed."""
    from analysis.costs import cost_totals
    t = time.perf_counter()
    st = store.status_arrays(sweep)
    cost_totals(store.load(sweep, columns=["finished_at", "cpu_seconds", "gpu_seconds"]))
    return time.perf_counter() - t, sum(len(keys) for keys, _ in st.values())


def bench_local(work: Path, args) -> dict:
    from cluster.store import read_table
    from cluster.store.compaction import compact_sweep
    from cluster.store.core import StoreConfig, open_store
    out = {}
    # --- today: one file per record
    root = work / "loose"
    store = open_store(StoreConfig(str(root)))
    out["loose_write_s"] = write_loose(store, "b", args.loose)
    n = args.loose // len(KINDS) * len(KINDS)
    out["loose_records"], out["loose_bytes"] = n, du(root / "sweep=b")
    out["loose_read_s"], t = timed(lambda: open_store(StoreConfig(str(root))).load("b"))
    assert t.num_rows == n
    out["loose_status_s"], _ = status_path(open_store(StoreConfig(str(root))), "b")
    out["compact_s"], summ = timed(lambda: compact_sweep(open_store(StoreConfig(str(root))), "b"))
    assert summ["rows"] == n
    out["compacted_same_bytes"] = du(root / "sweep=b")
    out["after_compaction_read_s"], t = timed(lambda: read_table(str(root), "b"))
    assert t.num_rows == n
    # --- compacted, at full size
    root = work / "big"
    store = open_store(StoreConfig(str(root)))
    out["big_write_s"] = write_compacted(store, "big", args.records)
    n = args.records // len(KINDS) * len(KINDS)
    out["big_records"], out["big_bytes"] = n, du(root / "sweep=big")
    out["big_read_s"], t = timed(lambda: read_table(str(root), "big"))
    assert t.num_rows == n and len(set(t.column("kind").to_pylist())) == len(KINDS)
    out["big_columns"] = t.num_columns
    del t
    out["big_status_s"], k = status_path(open_store(StoreConfig(str(root))), "big")
    assert k == n
    out["big_read_one_s"], r = timed(lambda: open_store(StoreConfig(str(root))).read_records(
        "big", "resnet_train", [f"{2 * 10**8 + n // len(KINDS) // 2:016x}"]))
    assert len(r) == 1
    return out


def rss_peak_during(fn) -> tuple[float, float, object]:
    """(seconds, peak RSS growth in MiB over the call, fn's result): RSS sampled every 0.2 s."""
    import threading

    def rss():
        return int(next(x for x in Path("/proc/self/status").read_text().splitlines()
                        if x.startswith("VmRSS:")).split()[1]) / 1024
    base, peak, stop = rss(), [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            stop.wait(0.2)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t = time.perf_counter()
    try:
        out = fn()
    finally:
        stop.set()
        th.join()
    return time.perf_counter() - t, max(peak[0], rss()) - base, out


def bench_compaction(work: Path, n: int) -> dict:
    """n noop-sized per-task files (written directly: the fast synthetic writer), then one compaction: its time and
    its peak memory (the 100,000-task cluster run of scale.py compacts this many at its end)."""
    from cluster.store import schema
    from cluster.store.compaction import compact_sweep
    from cluster.store.core import StoreConfig, open_store
    from cluster.store.layout import parquet_bytes
    root = work / "compact"
    d = root / "sweep=c" / "kind=circuit_search"
    d.mkdir(parents=True)
    for s in range(0, n, 20_000):
        for rec in synthetic("circuit_search", s, min(20_000, n - s)).to_pylist():
            (d / f"{rec['task_key']}.parquet").write_bytes(parquet_bytes(schema.to_table("circuit_search", [rec])))
    secs, grew, out = rss_peak_during(lambda: compact_sweep(open_store(StoreConfig(str(root))), "c"))
    assert out["rows"] == n
    return {"compact_files": n, "compact_files_s": secs, "compact_rss_growth_mib": grew}


def bench_s3(work: Path, args) -> dict:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    import logging

    import boto3
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)      # one access-log line per request otherwise

    from cluster.store import read_table
    from cluster.store.core import StoreConfig, open_store
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        cfg = StoreConfig("s3://bench/r", endpoint, "us-east-1")
        out = {}
        out["s3_write_s"] = write_compacted(open_store(cfg), "big", args.s3_records, chunk=50_000)
        out["s3_records"] = args.s3_records // len(KINDS) * len(KINDS)
        out["s3_read_s"], t = timed(lambda: read_table(cfg, "big"))
        assert t.num_rows == out["s3_records"]
        store = open_store(cfg)
        write_loose(store, "loose", args.s3_loose)
        out["s3_loose_records"] = args.s3_loose // len(KINDS) * len(KINDS)
        out["s3_loose_read_s"], t = timed(lambda: open_store(cfg).load("loose"))
        assert t.num_rows == out["s3_loose_records"]
        return out
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="compacted records on local disk")
    ap.add_argument("--loose", type=int, default=20_000, help="per-task files for today's reading and compaction")
    ap.add_argument("--s3-records", type=int, default=100_000, help="compacted records on S3 (moto)")
    ap.add_argument("--s3-loose", type=int, default=2_000, help="per-task files on S3 read the old way")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--compact-only", type=int, metavar="N",
                    help="only: compact N per-task files, with time and peak memory")
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    from cluster.store.layout import READ_THREADS
    from htmc.registry import load_plugin
    load_plugin(str(ROOT / "tests" / "noop_kind.py"))
    work = Path(args.dir or tempfile.mkdtemp(prefix="htmc-store-bench-"))
    try:
        if args.compact_only:
            print(bench_compaction(work, args.compact_only), f"load {os.getloadavg()[0]:.1f}")
            return 0
        res = {"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", "read_threads": READ_THREADS,
               **bench_local(work, args)}
        if not args.no_s3:
            res.update(bench_s3(work, args))
        res["load_after"] = f"{os.getloadavg()[0]:.1f}"
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    for k, v in res.items():
        print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")
    lb, cb = res["loose_bytes"] / res["loose_records"], res["big_bytes"] / res["big_records"]
    print(f"per record: one file {lb:.0f} B on disk, compacted {cb:.0f} B: {lb / cb:.1f}x less; "
          f"the same {res['loose_records']} records after compaction: {res['loose_bytes'] / res['compacted_same_bytes']:.1f}x less")
    per_file = res["loose_read_s"] / res["loose_records"]
    print(f"read: one file per record {per_file * 1e3:.2f} ms a record -> {per_file * res['big_records']:.0f} s for "
          f"{res['big_records']} (extrapolated); compacted {res['big_read_s']:.1f} s (measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

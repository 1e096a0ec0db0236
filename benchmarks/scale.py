"""Scale benchmark: one large sweep of trivial tasks on a private local Ray, with the driver's memory over time,
then a resume of the finished sweep.

    .venv/bin/python benchmarks/scale.py                       # 20,000 noop tasks (about 5 min on 2 busy cores)
    .venv/bin/python benchmarks/scale.py --tasks 2000          # a quick look
    .venv/bin/python benchmarks/scale.py --tasks 100000 --nodes 4 --kill-node-at 0.5 --children off --batch 8
                                                               # issue 22 D: a simulated cluster, ~30 min

What is measured:
  sweep    wall time of run_sweep (plan, Ray start, dispatch, MLflow tracking with `children: group` on sqlite),
           one Parquet record per task in a local store.
  driver   this process's RSS (/proc/self/status), sampled every 0.5 s with the number of finished tasks; reported
           when 0 %, 25 %, 50 %, 75 % and 100 % of the tasks had finished, and the peak (VmHWM). "Flat" means the
           RSS after the first quarter does not grow with the number of finished tasks.
  resume   the same spec again on the finished store: run_sweep in this process (plan: expand 20,000 tasks,
           list the store, read every record's key and status; finds nothing to do), and `python -m jobs.sweep`
           in a fresh process (adds interpreter start and imports).
  cluster  with --nodes N: a ray.cluster_utils.Cluster of N nodes on 127.0.0.1 (the head and N-1 worker nodes,
           --cpus-per-node each) instead of the in-process Ray; with --kill-node-at F, one worker node is removed
           (SIGKILL of its raylet and workers) once a fraction F of the tasks has finished. The sweep's own
           end-of-sweep compaction then runs (timed from the driver's say() lines), and the records are checked:
           every key exactly once, in the compacted table, no per-task ok file left.
The store, MLflow database and Ray's files go to a temporary directory, removed at the end (--keep to keep it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOOP_PLUGIN = str(ROOT / "tests" / "noop_kind.py")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spec_text(name: str, n: int, workdir: Path, batch: int, children: str) -> str:
    # x = 0 .. n-1 as a grid: n distinct task keys, each record's value is 2·x
    return f"""
name: {name}
results: {{uri: "{workdir / 'results'}"}}
tracking: {{uri: "sqlite:///{workdir / 'mlflow.db'}", children: {children},
           artifact_location: "{workdir / 'artifacts'}"}}
dispatch: {{batch_size: {{noop: {batch}}}}}
groups:
  - kind: noop
    grid: {{x: [{", ".join(str(i) for i in range(n))}]}}
"""


def start_cluster(nodes: int, cpus: float):
    """A ray.cluster_utils.Cluster on 127.0.0.1: the head and nodes-1 worker nodes; this process joins it."""
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    return cluster


def kill_later(cluster, holder: dict, when: float, out: dict, t_start: float) -> None:
    """Remove one worker node (SIGKILL, no grace) once `when` tasks have finished."""
    while True:
        d = holder.get("d")
        if d is not None and d.counts.finished >= when:
            break
        time.sleep(0.2)
    node = list(cluster.worker_nodes)[-1]
    out.update(at_s=time.perf_counter() - t_start, finished=holder["d"].counts.finished)
    cluster.remove_node(node, allow_graceful=False)


def check_exactly_once(store, n: int, said: list) -> str:
    """Every key once in read_table, all ok, no per-task ok file left after the sweep's own compaction; returns
    what the compaction said (with its time), or '' when it did not run."""
    from cluster.store import read_table
    t = read_table(store.cfg, "scale", columns=["task_key", "status"])
    keys = t.column("task_key").to_pylist()
    assert len(keys) == n == len(set(keys)), (len(keys), len(set(keys)))
    assert set(t.column("status").to_pylist()) == {"ok"}
    lines = [(ts, m) for ts, m in said if m.startswith("compacted sweep")]
    if not lines:
        return ""
    assert store._entries("scale", None) == {}, "per-task files left after compaction"
    return lines[-1][1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1, help="dispatch.batch_size for noop (tasks per actor call)")
    ap.add_argument("--children", default="group", choices=("group", "off", "task"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--nodes", type=int, default=0, help="simulate a cluster of this many nodes (0: in-process Ray)")
    ap.add_argument("--cpus-per-node", type=float, default=1.0)
    ap.add_argument("--kill-node-at", type=float, help="remove one worker node when this fraction is done")
    args = ap.parse_args()

    from cluster.dispatch.raysetup import init_ray
    from cluster.service import run_sweep
    from cluster.spec.parse import parse_spec
    from cluster.store.core import StoreConfig, open_store
    from htmc.registry import load_plugin
    load_plugin(NOOP_PLUGIN)                  # the trivial task kind of the tests

    workdir = Path(tempfile.mkdtemp(prefix="htmc-scale-"))
    spec_path = workdir / "scale.yaml"
    spec_path.write_text(spec_text("scale", args.tasks, workdir, args.batch, args.children))
    samples: list[tuple[float, int, float, int]] = []   # (seconds, finished tasks, RSS MiB, MLflow queue)
    holder: dict = {}
    stop = threading.Event()
    t_start = time.perf_counter()

    def sample():
        while not stop.is_set():
            d = holder.get("d")
            tracker = getattr(d.on_result, "__self__", None) if d else None      # Tracker.log_result
            backlog = tracker._q.qsize() if tracker is not None else 0
            samples.append((time.perf_counter() - t_start, d.counts.finished if d else 0, rss_mib(), backlog))
            stop.wait(0.5)

    rss_before = rss_mib()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    said: list[tuple[float, str]] = []
    cluster, killed = None, {}
    try:
        spec = parse_spec(spec_path.read_text(), str(spec_path))
        if args.nodes:
            cluster = start_cluster(args.nodes, args.cpus_per_node)
            if args.kill_node_at is not None:
                threading.Thread(target=kill_later, args=(cluster, holder, args.tasks * args.kill_node_at, killed,
                                                          t_start), daemon=True).start()
        else:
            init_ray(num_cpus=os.cpu_count())
        t0 = time.perf_counter()
        s = run_sweep(spec, progress=False, say=lambda m: said.append((time.perf_counter(), m)),
                      on_dispatcher=lambda d: holder.setdefault("d", d))
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        th.join()
    assert (s.scheduled, s.done, s.failed) == (args.tasks, args.tasks, 0), s
    store = open_store(StoreConfig.from_spec(spec.results))
    n_files = sum(len(v) for v in store.list_keys("scale").values())
    assert n_files == args.tasks, n_files
    compacted = check_exactly_once(store, args.tasks, said)

    # resume: in this process, then a fresh one (the cold cost a user sees)
    t0 = time.perf_counter()
    again = run_sweep(parse_spec(spec_path.read_text(), str(spec_path)), progress=False, say=lambda m: None)
    resume = time.perf_counter() - t0
    assert (again.already_ok, again.scheduled) == (args.tasks, 0), again
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "jobs.sweep", str(spec_path), "--no-progress", "--plugin",
                          NOOP_PLUGIN], cwd=str(ROOT),
                         env=env, capture_output=True, text=True, timeout=600)
    resume_cli = time.perf_counter() - t0
    assert out.returncode == 0 and "0 to run" in out.stderr, out.stderr[-2000:]

    import ray
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()

    # RSS when 0/25/50/75/100 % of the tasks had finished (first sample at or after that point)
    marks = {}
    for q in (0, 25, 50, 75, 100):
        need = args.tasks * q / 100
        row = next((x for x in samples if x[1] >= need and (q > 0 or x[1] > 0)), samples[-1])
        marks[q] = row
    peak = rss_mib("VmHWM")
    after_q1 = [r for _, f, r, _ in samples if f >= args.tasks / 4]
    growth = (max(after_q1) - marks[25][2]) if after_q1 else float("nan")
    today = dt.date.today().isoformat()
    print(f"\nscale benchmark, {today}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f} at the end")
    print(f"noop tasks, sleep 0, dispatch.batch_size {args.batch}, tracking.children {args.children}, local store\n")
    print("| tasks | sweep wall (s) | tasks/s | driver RSS at 0 / 25 / 50 / 75 / 100 % done (MiB) | "
          "growth after 25 % (MiB) | driver peak RSS (MiB) | resume in process (s) | resume CLI (s) |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    print(f"| {args.tasks} | {wall:.1f} | {args.tasks / wall:.1f} | "
          + " / ".join(f"{marks[q][2]:.0f}" for q in (0, 25, 50, 75, 100))
          + f" | {growth:+.0f} | {peak:.0f} | {resume:.2f} | {resume_cli:.2f} |")
    print(f"\nRSS before anything: {rss_before:.0f} MiB; samples: {len(samples)}; "
          f"times at 25/50/75/100 %: " + ", ".join(f"{marks[q][0]:.0f} s" for q in (25, 50, 75, 100))
          + "; MLflow logging queue at 25/50/75/100 %: " + " / ".join(str(marks[q][3]) for q in (25, 50, 75, 100))
          + f" (max {max(x[3] for x in samples)})")
    deciles = [next((x for x in samples if x[1] >= args.tasks * q / 10), samples[-1]) for q in range(1, 11)]
    print("driver RSS (MiB) at 10, 20, ... 100 % done: " + " ".join(f"{x[2]:.0f}" for x in deciles))
    if args.nodes:
        print(f"cluster: {args.nodes} nodes x {args.cpus_per_node:g} CPUs; worker node removed at "
              f"{killed.get('at_s', float('nan')):.0f} s with {killed.get('finished', 0)} tasks finished; "
              f"tasks retried by the dispatcher: {holder['d'].counts.retried}")
    if compacted:
        print("end-of-sweep compaction: " + compacted)
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

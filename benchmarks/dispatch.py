"""Dispatch benchmark: our sweep service against Ray Tune, side by side on the same local Ray and MLflow.

    .venv/bin/python benchmarks/dispatch.py                 # full run (~30 min on 2 cores), appends RESULTS.md
    .venv/bin/python benchmarks/dispatch.py --tasks 200 --nets 32 --no-write     # a quick look

Two workloads, each run by both systems with MLflow tracking on the same sqlite database:
  trivial   N tasks that return at once (the `noop` kind): tasks per second, end to end (from the call that
            starts the sweep until every result is stored and tracked).
  training  M small resnet_train nets of one shape: models trained per minute. Ours trains them in batches
            (one batched torch computation per actor call); Tune runs one trial per net.

Ours is measured with `tracking.children: group` (one MLflow child run per task group, per-task outcomes as
metric steps; records per task in Parquet) and with `children: task` (one MLflow run per task, like Tune's
MLflowLoggerCallback). Tune: a `Tuner` grid over the same parameters with MLflowLoggerCallback, reuse_actors=True,
1 CPU per trial, its default loggers and a local storage path.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOOP_PLUGIN = str(ROOT / "tests" / "noop_kind.py")      # the trivial task kind of the tests, a plugin file
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


SECTION_INTRO = """Our dispatcher against Ray Tune, side by side in one run on the same local Ray and one MLflow sqlite
database. *trivial*: N tasks of the `noop` kind that return at once; tasks per second. *training*: M small
`resnet_train` nets of one shape; models trained per minute (ours trains a batch of nets per actor call as one
batched torch computation; Tune runs one trial per net). Ours is run twice: `tracking.children: group` (one MLflow
child run per task group with per-task outcomes as metric steps; every task still has its Parquet record), and
`children: task` (one MLflow run per task, as Tune's MLflowLoggerCallback logs one per trial). Tune: a `Tuner`
grid with MLflowLoggerCallback, reuse_actors=True, 1 CPU per trial, its default loggers, local storage."""


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, no GPU, load avg {os.getloadavg()[0]:.1f} at start"


def ours(name: str, groups_yaml: str, workdir: Path, uri: str, children: str, batch: dict) -> dict:
    from cluster.service import run_sweep
    from cluster.spec.parse import parse_spec
    text = f"""
name: {name}
results: {{uri: "{workdir / 'results'}"}}
tracking: {{uri: "{uri}", children: {children}, artifact_location: "{workdir / 'artifacts'}"}}
dispatch: {{batch_size: {json.dumps(batch)}}}
groups:
{groups_yaml}
"""
    spec = parse_spec(text, f"<bench {name}>")
    t0 = time.perf_counter()
    s = run_sweep(spec, progress=False, say=lambda m: None)
    wall = time.perf_counter() - t0
    assert s.done == s.scheduled and s.failed == 0 and s.untracked == 0, s
    return {"n": s.done, "wall_s": wall}


def tune_run(name: str, trainable, space: dict, n: int, workdir: Path, uri: str) -> dict:
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    t0 = time.perf_counter()
    tuner = tune.Tuner(trainable, param_space=space,
                       tune_config=tune.TuneConfig(reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(workdir / "tune"), name=name, verbose=0,
                                                 callbacks=[MLflowLoggerCallback(tracking_uri=uri,
                                                                                 experiment_name=name)]))
    res = tuner.fit()
    wall = time.perf_counter() - t0
    assert len(res) == n and not res.errors, res.errors
    return {"n": len(res), "wall_s": wall}


def tune_trivial(config):
    return {"value": 2.0 * config["x"]}


def tune_train(config):
    from htmc.tasks import TASK_KINDS
    kind = TASK_KINDS.get("resnet_train")
    rec = kind.run(kind.validate(dict(config))).to_row()
    return {k: float(v) for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and v is not None}


def count_runs(uri: str, experiment: str) -> int:
    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=uri)
    e = c.get_experiment_by_name(experiment)
    return 0 if e is None else len(c.search_runs([e.experiment_id], max_results=50000))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--nets", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50, help="training steps per net")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--skip", default="", help="comma list of runs to skip: ours_task,tune_trivial,tune_train")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch benchmarks/RESULTS.md")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    import ray

    from cluster.dispatch.raysetup import init_ray
    work = Path(tempfile.mkdtemp(prefix="htmc-bench-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    info = machine()
    from mlflow import MlflowClient
    MlflowClient(tracking_uri=uri).search_experiments()   # create the database before any timing
    init_ray(None, num_cpus=os.cpu_count())
    print(f"machine: {info}; Ray {ray.__version__}; work dir {work}", flush=True)
    tag = dt.datetime.now().strftime("%H%M%S")
    rows = []

    def record(label, system, result, unit):
        rate = result["n"] / result["wall_s"] * (60 if unit == "models/min" else 1)
        rows.append({"workload": label, "system": system, "n": result["n"], "wall_s": result["wall_s"],
                     "rate": rate, "unit": unit})
        print(f"{label:<10} {system:<38} n={result['n']:<5} wall={result['wall_s']:8.1f} s  "
              f"{rate:9.2f} {unit}", flush=True)

    # --- trivial tasks
    xs = json.dumps(list(range(args.tasks)))
    from htmc.registry import load_plugin
    load_plugin(NOOP_PLUGIN)
    trivial = f"  - kind: noop\n    grid: {{x: {xs}}}\n"
    record("trivial", "ours (children: group, chunks of 100)",
           ours(f"bench-trivial-group-{tag}", trivial, work / "a", uri, "group", {"noop": 100}), "tasks/s")
    if "ours_task" not in skip:
        r = ours(f"bench-trivial-task-{tag}", trivial, work / "b", uri, "task", {"noop": 100})
        assert count_runs(uri, f"htmc-bench-trivial-task-{tag}") == args.tasks + 1
        record("trivial", "ours (children: task, chunks of 100)", r, "tasks/s")
    if "tune_trivial" not in skip:
        from ray import tune
        r = tune_run(f"tune-trivial-{tag}", tune_trivial, {"x": tune.grid_search(list(range(args.tasks)))},
                     args.tasks, work, uri)
        record("trivial", "Ray Tune (Tuner grid + MLflowLoggerCallback)", r, "tasks/s")

    # --- small ResNets
    params = {"steps": args.steps, "width": args.width, "rank": 8, "n_train": 256, "lam": 1e-3}
    seeds = list(range(args.nets))
    train = (f"  - kind: resnet_train\n    params: {json.dumps(params)}\n    grid: {{seed: {json.dumps(seeds)}}}\n")
    half = max(1, (args.nets + 1) // 2)
    record("training", f"ours (children: group, batches of {half})",
           ours(f"bench-train-group-{tag}", train, work / "c", uri, "group", {"resnet_train": half}), "models/min")
    if "ours_task" not in skip:
        record("training", f"ours (children: task, batches of {half})",
               ours(f"bench-train-task-{tag}", train, work / "d", uri, "task", {"resnet_train": half}),
               "models/min")
    if "tune_train" not in skip:
        from ray import tune
        r = tune_run(f"tune-train-{tag}", tune_train, {**params, "seed": tune.grid_search(seeds)}, args.nets, work,
                     uri)
        record("training", "Ray Tune (one trial per net + MLflowLoggerCallback)", r, "models/min")

    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    def ratio(workload, ours_label_start):
        o = [r for r in rows if r["workload"] == workload and r["system"].startswith(ours_label_start)]
        t = [r for r in rows if r["workload"] == workload and r["system"].startswith("Ray Tune")]
        return (o[0]["rate"] / t[0]["rate"]) if o and t else None

    date = dt.date.today().isoformat()
    lines = [f"Measured {date} on {info}; Ray {ray.__version__}, one in-process Ray "
             f"(`num_cpus={os.cpu_count()}`) shared by both systems, MLflow {__import__('mlflow').__version__} on "
             f"one sqlite file. Command: `.venv/bin/python benchmarks/dispatch.py --tasks {args.tasks} --nets "
             f"{args.nets} --steps {args.steps} --width {args.width}`. Wall time is end to end: from the call that "
             f"starts the sweep until every result is stored and tracked.", "",
             "| workload | system | tasks | wall (s) | rate |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['system']} | {r['n']} | {r['wall_s']:.1f} | "
                     f"{r['rate']:.2f} {r['unit']} |")
    lines.append("")
    for workload, target in (("trivial", 5), ("training", 10)):
        for label in ("ours (children: group", "ours (children: task"):
            x = ratio(workload, label)
            if x is not None:
                lines.append(f"- {workload}, {label.split('(')[1]}: **{x:.1f}×** Tune's rate (target ≥ {target}×)")
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        path = ROOT / "benchmarks" / "RESULTS.md"
        old = path.read_text() if path.exists() else "# Benchmark results\n"
        section = "## Dispatch (`benchmarks/dispatch.py`)\n\n" + SECTION_INTRO + "\n\n" + text + "\n"
        if "## Dispatch" in old:
            head, _, rest = old.partition("## Dispatch")
            nxt = rest.find("\n## ")
            old = head + section + ("\n" + rest[nxt + 1:] if nxt >= 0 else "")
            path.write_text(old if old.endswith("\n") else old + "\n")
        else:
            path.write_text(old.rstrip("\n") + "\n\n" + section)
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

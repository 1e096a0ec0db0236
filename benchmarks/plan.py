"""Planning benchmark (issue 22 A, C): a spec of 10^4, 10^5, 10^6 tasks expanded, validated and keyed, by the code
before issue 22 (commit 800e957) and by this checkout, side by side in one run; and `htmc sweep plan` / `status`.

    .venv/bin/python benchmarks/plan.py                     # old at 10^4 and 10^5, new at all sizes; writes RESULTS.md
    .venv/bin/python benchmarks/plan.py --sizes '' --old-sizes 1000000 --cli-sizes '' --old-cli-sizes '' --no-write
                                                            # old code at 10^6 only (minutes)
    .venv/bin/python benchmarks/plan.py --status 1000000 --no-write
                                                            # `htmc sweep status` at 10^6 records only

--status N (issue 22 B's "status on 10^6 records in <= 5 s"): `htmc sweep status --json` (and `plan` with
--actions status,plan) of the N-task circuit_ladder spec against two stores of N compacted records, the code of
--status-old (default 35c3138, before the key integers) against this checkout's, alternating old/new --repeat
times in fresh processes (median, min-max): "other keys" (benchmarks/store.py's writer: a third each of three
kinds, none of them the spec's: every task missing, every record other), and "spec keys" (90% of the spec's tasks
as compacted ok rows, 1,000 more (at most N/20) as failed per-task files, the rest missing). The two codes' JSON
outputs must be equal.

Today's code is a git worktree of commit 800e957 at --old-dir (made with `git worktree add --detach` when it is
missing; remove it with `git worktree remove /tmp/plan-old`). Every measurement is a fresh subprocess: wall time of
load_spec (YAML, checks, expansion, validation, keys) until every key is in a list, and the process's peak RSS
from os.wait4's rusage. Grids whose axes multiply to N: circuit_ladder over walsh_mixture seeds (N/1000 values,
each a different target) x 1,000 values of eps0, and the test kind noop over N/1000 sleep_s x 1,000 x. Old and new
keys are compared (sha256 of all keys in order) at every size both ran.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_COMMIT = "800e957"
KINDS = ("circuit_ladder", "noop")

CHILD = r"""
import hashlib, json, sys, time
root, spec_path, materialize = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
sys.path.insert(0, root)
from htmc.registry import load_plugin
load_plugin(root + "/tests/noop_kind.py")
from cluster.spec.parse import load_spec
t0 = time.perf_counter()
tasks = load_spec(spec_path).plan.tasks
keys = list(tasks.keys()) if hasattr(tasks, "key_kinds") else [t.key for t in tasks]
out = {"plan_s": time.perf_counter() - t0, "n": len(keys),
       "digest": hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]}
if materialize:          # every Task made (what a dispatcher of all tasks reads)
    t1 = time.perf_counter()
    made = sum(1 for _ in tasks)
    out["tasks_s"] = time.perf_counter() - t1
    assert made == len(keys)
print(json.dumps(out))
"""


def spec_text(kind: str, n: int) -> str:
    outer = list(range(n // 1000))
    inner = [round(0.5 - i * 0.0004, 7) for i in range(1000)]
    if kind == "circuit_ladder":
        return (f"name: plan-bench\ngroups:\n  - kind: circuit_ladder\n    params: {{function: walsh_mixture, "
                f"steps: 4, methods: [mc, table], thorough: false}}\n    grid:\n"
                f"      function_params: {{m: [4], seed: {outer}}}\n      eps0: {inner}\n")
    return (f"name: plan-bench\ngroups:\n  - kind: noop\n    grid:\n      sleep_s: {[s * 0.001 for s in outer]}\n"
            f"      x: {inner}\n")


def run_child(argv: list[str], cwd: Path, timeout: float, env: dict | None = None) \
        -> tuple[dict | None, float, float, float]:
    """(the child's last stdout line as JSON, or None; wall s; peak RSS MB and CPU s (user + system) from
    os.wait4) of one fresh process. CPU s is the figure that other jobs on the cores disturb least."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)       # this child's own rusage (ru_maxrss in KiB on Linux)
        killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall, rss, cpu = time.perf_counter() - t0, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime
        if p.returncode != 0:
            err.seek(0)
            print(err.read()[-2000:], file=sys.stderr)
            return None, wall, rss, cpu
    line = out.strip().splitlines()[-1] if out.strip() else "{}"
    return json.loads(line), wall, rss, cpu


def old_tree(path: Path, commit: str = BASE_COMMIT) -> Path:
    if not (path / "cluster" / "spec" / "grid.py").exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True)
    return path


def measure(code: str, root: Path, kind: str, n: int, tmp: Path, timeout: float) -> dict:
    spec = tmp / f"{kind}-{n}.yaml"
    spec.write_text(spec_text(kind, n))
    res, wall, rss, cpu = run_child([sys.executable, "-c", CHILD, str(root), str(spec), "0"], root, timeout)
    out = {"code": code, "kind": kind, "n": n, "wall_s": wall, "cpu_s": cpu, "rss_mb": rss, **(res or {"plan_s": None})}
    if code == "new":     # a second process: the Task-making pass after the plan, timed on its own
        res2, *_ = run_child([sys.executable, "-c", CHILD, str(root), str(spec), "1"], root, timeout)
        out["tasks_s"] = (res2 or {}).get("tasks_s")
    return out


def measure_cli(code: str, root: Path, action: str, kind: str, n: int, tmp: Path, timeout: float) -> dict:
    """`htmc sweep ACTION SPEC --json` against an empty store, in a fresh process of that code's tree."""
    spec = tmp / f"{kind}-{n}.yaml"
    spec.write_text(spec_text(kind, n))
    (tmp / "empty-store").mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "jobs.cli", "sweep", action, str(spec), "--results", str(tmp / "empty-store"),
            "--plugin", str(root / "tests" / "noop_kind.py"), "--json"]
    res, wall, rss, cpu = run_child(argv, root, timeout)
    if res is None:
        total = None
    else:
        total = res["totals"]["total"] if action == "plan" else sum(r["total"] for r in res["kinds"].values())
    return {"code": code, "action": action, "kind": kind, "n": n, "wall_s": wall, "cpu_s": cpu, "rss_mb": rss,
            "tasks": total}


def status_stores(tmp: Path, n: int) -> dict[str, Path]:
    """The two stores of --status (see the module docstring); the spec is tmp/circuit_ladder-N.yaml."""
    from store import write_compacted            # benchmarks/store.py
    from cluster.spec.parse import load_spec
    from cluster.store.core import StoreConfig, open_store
    spec = tmp / f"circuit_ladder-{n}.yaml"
    spec.write_text(spec_text("circuit_ladder", n))
    keys = list(load_spec(str(spec)).plan.tasks.keys())
    other, mine = tmp / "status-other", tmp / "status-spec"
    write_compacted(open_store(StoreConfig(str(other))), "plan-bench", n)
    store = open_store(StoreConfig(str(mine)))
    write_compacted(store, "plan-bench", 0, keys={"circuit_ladder": [k for i, k in enumerate(keys) if i % 10]})
    from store import synthetic
    gone = [keys[i] for i in range(0, len(keys), 10)][:min(1000, len(keys) // 20)]      # some of the missing
    failed = synthetic("circuit_ladder", 0, len(gone), keys=gone)
    for rec in failed.to_pylist():
        store.write_record("plan-bench", "circuit_ladder", {**rec, "status": "failed", "error": "synthetic"})
    return {"other keys": other, "spec keys": mine}


def measure_status(old: Path, n: int, tmp: Path, repeat: int, timeout: float, actions=("status",)) -> list[dict]:
    """`htmc sweep ACTION SPEC --results STORE --json`, old and new in turn, each in a fresh process whose working
    directory is outside both trees (PYTHONPATH picks the tree)."""
    import statistics
    spec = tmp / f"circuit_ladder-{n}.yaml"
    out = []
    for (label, store), action in itertools.product(status_stores(tmp, n).items(), actions):
        runs: dict[str, list] = {"old": [], "new": []}
        outputs = {}
        for r in range(repeat + 1):                       # run 0: warm-up (page cache, the status index)
            for code, root in (("old", old), ("new", ROOT)):
                env = {**os.environ, "PYTHONPATH": str(root)}
                argv = [sys.executable, "-m", "jobs.cli", "sweep", action, str(spec), "--results", str(store),
                        "--json"]
                load = os.getloadavg()[0]
                res, wall, rss, cpu = run_child(argv, tmp, timeout, env=env)
                outputs[code] = res
                if r:
                    runs[code].append((wall, cpu, rss, load))
        for code in ("old", "new"):
            w = [x[0] for x in runs[code]]
            res = outputs[code] or {}
            counts = res.get("kinds") or {g["kind"]: {"ok": g["done"], "failed": g["failed"], "missing": g["to_run"],
                                                      "other": None} for g in res.get("groups", [])}
            out.append({"store": label, "action": action, "code": code, "n": n, "wall_median": statistics.median(w),
                        "wall_min": min(w),
                        "wall_max": max(w), "cpu_median": statistics.median(x[1] for x in runs[code]),
                        "rss_mb": max(x[2] for x in runs[code]), "load": [x[3] for x in runs[code]],
                        "kinds": counts, "same": outputs["old"] == outputs["new"]})
            print(json.dumps(out[-1]), flush=True)
    return out


def status_table(rows: list[dict], old_commit: str) -> str:
    out = [f"| htmc sweep | store ({rows[0]['n']:,} records) | code | wall s: median (min-max) | CPU s (median) | "
           f"peak RSS MB | load average at the runs' starts | counts (ok / failed / missing / other) | JSON equal |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = r["kinds"] or {}
        counts = "; ".join(f"{kind}: {v['ok']:,} / {v['failed']:,} / {v['missing']:,} / "
                           f"{'—' if v['other'] is None else format(v['other'], ',')}" for kind, v in sorted(k.items()))
        out.append(f"| {r['action']} | {r['store']} | {'old (' + old_commit + ')' if r['code'] == 'old' else 'new'} | "
                   f"**{r['wall_median']:.2f}** ({r['wall_min']:.2f}-{r['wall_max']:.2f}) | {r['cpu_median']:.2f} | "
                   f"{r['rss_mb']:.0f} | {', '.join(f'{x:.1f}' for x in r['load'])} | {counts} | "
                   f"{'yes' if r['same'] else '**NO**'} |")
    return "\n".join(out)


def table(rows: list[dict], cli: list[dict]) -> str:
    by = {(r["code"], r["kind"], r["n"]): r for r in rows}
    out = ["| kind | tasks | old: plan s | old: process s (CPU s) | old: peak RSS MB | new: plan s | "
           "new: process s (CPU s) | new: peak RSS MB | speed-up (plan) | keys equal | new: make every Task s |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, fmt=".2f"):
        return "—" if v is None or v != v else format(v, fmt)
    for kind in KINDS:
        for n in sorted({r["n"] for r in rows if r["kind"] == kind}):
            o, w = by.get(("old", kind, n), {}), by.get(("new", kind, n), {})
            speed = (o["plan_s"] / w["plan_s"]) if o.get("plan_s") and w.get("plan_s") else None
            same = ("yes" if o["digest"] == w["digest"] else "**NO**") if o.get("digest") and w.get("digest") \
                else "—"
            out.append(f"| {kind} | {n:,} | {f(o.get('plan_s'))} | {f(o.get('wall_s'))} ({f(o.get('cpu_s'))}) | "
                       f"{f(o.get('rss_mb'), '.0f')} | {f(w.get('plan_s'))} | {f(w.get('wall_s'))} "
                       f"({f(w.get('cpu_s'))}) | {f(w.get('rss_mb'), '.0f')} | "
                       f"{f(speed, '.0f') + '×' if speed else '—'} | {same} | {f(w.get('tasks_s'))} |")
    out += ["", "| command (empty store) | code | kind | tasks | process s (CPU s) | peak RSS MB |",
            "|---|---|---|---|---|---|"]
    for c in cli:
        out.append(f"| htmc sweep {c['action']} --json | {c['code']} | {c['kind']} | "
                   f"{format(c['tasks'], ',') if c['tasks'] else '—'} | {f(c['wall_s'])} ({f(c['cpu_s'])}) | "
                   f"{f(c['rss_mb'], '.0f')} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="task counts for this checkout's code")
    ap.add_argument("--old-sizes", default="10000,100000", help="task counts for the code of 800e957")
    ap.add_argument("--cli-sizes", default="10000,100000,1000000",
                    help="task counts for this checkout's `htmc sweep plan` and `status`")
    ap.add_argument("--old-cli-sizes", default="10000,100000", help="task counts for the old `htmc sweep status`")
    ap.add_argument("--old-dir", default="/tmp/plan-old", help="where the worktree of 800e957 is (or is made)")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="per measurement")
    ap.add_argument("--no-write", action="store_true", help="print the table only; do not append to RESULTS.md")
    ap.add_argument("--status", type=int, default=0, metavar="N",
                    help="only time `htmc sweep status` at N records, old against new (see the module docstring)")
    ap.add_argument("--status-old", default="35c3138", metavar="COMMIT", help="the old code of --status")
    ap.add_argument("--status-old-dir", default="/tmp/status-old", help="where its worktree is (or is made)")
    ap.add_argument("--repeat", type=int, default=3, help="--status: timed runs of each code (after a warm-up)")
    ap.add_argument("--actions", default="status", help="--status: the commands timed, of status,plan")
    args = ap.parse_args()
    if args.status:
        return main_status(args)
    old = old_tree(Path(args.old_dir))
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    old_sizes = [int(float(s)) for s in args.old_sizes.split(",") if s]
    rows, cli = [], []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as d:
        tmp = Path(d)
        for kind in KINDS:
            for n in sorted(set(sizes) | set(old_sizes)):
                for code, root, todo in (("old", old, old_sizes), ("new", ROOT, sizes)):
                    if n in todo:
                        rows.append(measure(code, root, kind, n, tmp, args.timeout_s))
                        print(json.dumps(rows[-1]), flush=True)
        cli_sizes = [int(float(s)) for s in args.cli_sizes.split(",") if s]
        old_cli = [int(float(s)) for s in args.old_cli_sizes.split(",") if s]
        for kind in KINDS:
            for n in sorted(set(cli_sizes) | set(old_cli)):
                runs = [("old", old, "status")] if n in old_cli else []
                runs += [("new", ROOT, "status"), ("new", ROOT, "plan")] if n in cli_sizes else []
                for code, root, action in runs:
                    cli.append(measure_cli(code, root, action, kind, n, tmp, args.timeout_s))
                    print(json.dumps(cli[-1]), flush=True)
    load1 = os.getloadavg()
    head = (f"{dt.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end "
            f"(other jobs shared the cores). old = commit {BASE_COMMIT}, new = this checkout. plan s: load_spec "
            f"until every key is in a list (wall); process s: the whole subprocess, imports included (wall, and "
            f"in parentheses its user + system CPU s); peak RSS and CPU from wait4; make every Task s: iterating "
            f"the new TaskList once (what a dispatcher of every task reads), in a separate process. Sizes not run "
            f"show —.")
    text = "\n\n".join(["## Planning a sweep (`benchmarks/plan.py`)", head, table(rows, cli)])
    print(text)
    if not args.no_write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write("\n" + text + "\n")


def main_status(args) -> None:
    old = old_tree(Path(args.status_old_dir), args.status_old)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="status-bench-") as d:
        rows = measure_status(old, args.status, Path(d), args.repeat, args.timeout_s,
                              [a for a in args.actions.split(",") if a])
    head = (f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; `htmc sweep status SPEC --results STORE --json` in fresh processes, "
            f"old and new in turn, {args.repeat} timed runs each after a warm-up; wall and CPU (user + system) from "
            f"wait4.")
    text = "\n\n".join([f"### `htmc sweep {args.actions.replace(',', '` / `')}` at {args.status:,} records (`benchmarks/plan.py --status`)", head,
                         status_table(rows, args.status_old)])
    print(text)
    if not args.no_write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    main()

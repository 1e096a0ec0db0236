"""The sweep service's operations, called by jobs/ (thin entry points): run, status, sync-mlflow, submit.

run_sweep: validate the spec (everything, before anything starts), check the store, find the keys with no `ok`
record (and `failed` ones with retry_failed), open the MLflow parent run, start or join Ray, dispatch, close the
parent run (FINISHED, KILLED on Ctrl-C/SIGTERM, FAILED if the sweep itself broke).
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from .dispatch.submission import TERMINAL, build_submission, open_jobs, submit_job
from .provenance import git_sha, versions
from .spec.grid import TaskList, expand
from .spec.model import SweepSpec, Task
from .spec.redact import redact_uri
from .store.compaction import AT_SWEEP_END
from .store.core import StoreConfig, open_store
from .store.layout import StoreRefused


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class RunSummary:
    sweep: str
    total: int
    already_ok: int
    already_failed: int
    scheduled: int
    done: int = 0
    failed: int = 0
    untracked: int = 0
    parent_run_id: str | None = None
    execution_id: str = ""
    seconds: float = 0.0
    keys: list = field(default_factory=list)

    def to_json(self) -> dict:
        d = dict(vars(self))
        d.pop("keys")
        return d


def plan(spec: SweepSpec, *, retry_failed: bool = False, keys=None) -> tuple[list[Task], list[Task], dict]:
    """(all tasks, tasks to run, existing statuses key -> (kind, status)). Checks the store first.
    `keys`: only these of the spec's task keys (the nightly replicates)."""
    tasks = expand(spec)
    if keys is not None:
        keys = set(keys)
        tasks = [tasks[i] for i, k in enumerate(tasks.keys()) if k in keys]
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(create_bucket=spec.results.create_bucket)
    existing = store.statuses(spec.name)
    skip = ("ok",) if retry_failed else ("ok", "failed")
    # keys first, Tasks (params) made only for the tasks to run (issue 22 A: a million-task plan in seconds)
    todo = [tasks[i] for i, k in enumerate(_keys(tasks)) if existing.get(k, (None, None))[1] not in skip]
    return tasks, todo, existing


def _keys(tasks):
    """The keys of a TaskList (without making its Tasks) or of a list of Tasks."""
    return tasks.keys() if isinstance(tasks, TaskList) else (t.key for t in tasks)


def run_sweep(spec: SweepSpec, *, retry_failed: bool = False, address: str | None = None, progress: bool = True,
              num_cpus: float | None = None, num_gpus: float | None = None, dashboard: bool = False,
              say: Callable[[str], None] = _say, on_dispatcher=None, keys=None,
              tags: dict | None = None) -> RunSummary:
    """`keys`: run only these of the spec's tasks; `tags`: extra tags of the MLflow parent run."""
    from .dispatch.raysetup import init_ray, probe_address
    from .tracking.runs import new_execution_id
    from .tracking.tracker import Tracker
    t_start = time.monotonic()
    if address or os.environ.get("RAY_ADDRESS"):
        probe_address(address or os.environ["RAY_ADDRESS"])   # a dead address fails before the store is touched
    tasks, todo, existing = plan(spec, retry_failed=retry_failed, keys=keys)
    n_ok = sum(1 for k in _keys(tasks) if existing.get(k, (0, None))[1] == "ok")
    n_failed = sum(1 for k in _keys(tasks) if existing.get(k, (0, None))[1] == "failed")
    summary = RunSummary(spec.name, len(tasks), n_ok, n_failed, len(todo), execution_id=new_execution_id(),
                         keys=[t.key for t in todo])
    store = open_store(StoreConfig.from_spec(spec.results))
    say(f"sweep '{spec.name}': {len(tasks)} tasks; {n_ok} ok and {n_failed} failed already; "
        f"{len(todo)} to run{' (retrying failed)' if retry_failed else ''}. Results: {store.describe()}")
    if not todo:
        return summary
    store.cleanup_tmp()
    local = init_ray(address, num_cpus=num_cpus, num_gpus=num_gpus, dashboard=dashboard)  # before MLflow
    tracker = Tracker(spec)
    summary.parent_run_id = _start_parent(tracker, spec, summary, retry_failed, tags)
    if summary.parent_run_id:
        say(f"MLflow: experiment '{spec.experiment}', parent run {summary.parent_run_id} at "
            f"{redact_uri(spec.tracking.uri)}")
    try:
        _dispatch(spec, todo, tracker, summary, local=local, progress=progress, on_dispatcher=on_dispatcher,
                  say=say)
    except StoreRefused as e:
        raise SweepStopped(_refused_line(spec, store, e)) from None
    summary.seconds = time.monotonic() - t_start
    say(f"sweep '{spec.name}': {summary.done} ok, {summary.failed} failed in {summary.seconds:.1f} s"
        + (f"; {summary.untracked} results not in MLflow (run `htmc sweep sync-mlflow {spec.source}`)"
           if summary.untracked else ""))
    compact_best_effort(store, spec.name, say, at_least=AT_SWEEP_END)
    return summary


class SweepStopped(ValueError):
    """The store refused a write for good (full disk, quota, permission): the sweep stopped, records are safe."""


def _refused_line(spec: SweepSpec, store, e: StoreRefused) -> str:
    """One line (issue 22): what failed, how many records are safe, and that a rerun resumes."""
    try:
        safe = sum(1 for _, st in store.statuses(spec.name).values() if st == "ok")
        safe_text = f"{safe} ok records of sweep '{spec.name}' are safe in {store.describe()}"
    except Exception:  # noqa: BLE001  the store may refuse reads too; the line must still come out
        safe_text = f"the records already written to {store.describe()} are safe"
    return (f"sweep '{spec.name}' stopped: the results store refused a write ({e}); {safe_text}; free space or "
            f"fix the permission, then run the same command again: it resumes where this run stopped")


def compact_best_effort(store, sweep: str, say, *, at_least: int = 0) -> None:
    """Merge the sweep's per-task records into its compacted table (cluster/store/compaction.py), when at least
    `at_least` ok records wait (0: always; run_sweep's end and the nightly job). Best effort: the sweep's records
    are complete already; a failed compaction is said and retried next time."""
    from .store.compaction import compact_sweep, loose_ok_count
    try:
        if not at_least or loose_ok_count(store, sweep) >= at_least:
            compact_sweep(store, sweep, say=say)
    except Exception as e:  # noqa: BLE001
        say(f"htmc: warning: compaction of sweep '{sweep}' did not run ({e}); the records are complete as "
            f"files; `htmc store compact --results {store.cfg.uri} --sweep {sweep}` retries it")


def _start_parent(tracker, spec: SweepSpec, summary: RunSummary, retry_failed: bool, tags: dict | None):
    """The execution's MLflow parent run (its id, or None when MLflow is not usable)."""
    sha, eid = git_sha(), summary.execution_id
    return tracker.start(
        run_name=f"{spec.name}-{eid[:15]}",
        tags={"htmc.execution_id": eid, "htmc.git_sha": sha, "mlflow.source.git.commit":
              (sha or "").replace("-dirty", "") or None, "htmc.results": redact_uri(spec.results.uri),
              **(tags or {})},
        params={"spec_hash": spec.spec_hash, "git_sha": sha, "n_tasks": summary.total,
                "n_scheduled": summary.scheduled, "n_ok_before": summary.already_ok,
                "n_failed_before": summary.already_failed, "retry_failed": retry_failed,
                "results": redact_uri(spec.results.uri), "children": spec.tracking.children,
                "kinds": ",".join(spec.kinds()), "max_attempts": spec.dispatch.max_attempts,
                "execution_id": eid, **versions()})


def _dispatch(spec: SweepSpec, todo: list[Task], tracker, summary: RunSummary, *, local: bool, progress: bool,
              on_dispatcher, say: Callable[[str], None]) -> None:
    """Run the tasks on Ray and close the parent run: FINISHED, KILLED on Ctrl-C/SIGTERM, FAILED otherwise."""
    from .dispatch.pool import Dispatcher
    context = {"sweep": spec.name, "execution_id": summary.execution_id, "spec_hash": spec.spec_hash,
               "git_sha": git_sha()}
    bar, d = None, None
    status = "FAILED"
    try:
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), desc=spec.name, unit="task", file=sys.stderr, dynamic_ncols=True,
                       mininterval=0.5, smoothing=0.1, disable=None)   # None: only on a terminal
        d = Dispatcher(spec, StoreConfig.from_spec(spec.results), context, local=local,
                       on_result=tracker.log_result, on_progress=lambda c: tracker.log_progress(c.as_metrics()),
                       bar=bar)
        if on_dispatcher is not None:
            on_dispatcher(d)
        counts = d.run(todo)
        summary.done, summary.failed = counts.done, counts.failed
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if bar is not None:
            bar.close()
        tracker.finish(status, d.counts.as_metrics() if d is not None else None)
        summary.untracked = tracker.untracked
        if status == "KILLED":
            say(f"sweep '{spec.name}' interrupted: records written so far are complete; run it again to resume.")


# ---------------------------------------------------------------------------------------------------- status
def sweep_status(spec: SweepSpec) -> dict:
    """Counts per kind and status: ok, failed, missing (in the spec, no record), other (records of the sweep that
    the spec no longer produces: removed grid values or older kind versions)."""
    tasks = expand(spec)
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(readonly=True)
    rows = status_counts(tasks.key_ints(), store.status_arrays(spec.name))
    from analysis.costs import cost_totals
    # cost_totals groups by sweep, kind and night: task_key and status are not read (at 10^6 records their strings
    # cost 0.9 s here, issue 22 B)
    costs = cost_totals(store.load(spec.name, columns=["finished_at", "cpu_seconds", "gpu_seconds"]),
                        **vars(spec.costs))
    # unusable record files (truncated, not Parquet, wrong key...) met while reading: counted as missing above
    return {"sweep": spec.name, "results": store.describe(), "kinds": rows, "costs": costs,
            "unusable_files": len(store.corrupt)}


def status_counts(groups, existing: dict) -> dict[str, dict]:
    """kind -> {ok, failed, missing, other, total}: the spec's keys (TaskList.key_ints(): (group, kind, keys)) against
    the store's (Store.status_arrays()), as 64-bit integers (cluster/keyarray.py, issue 22 B)."""
    from .keyarray import count_by_group
    per_group, others = count_by_group(groups, existing)
    rows: dict[str, dict] = {}

    def row(kind: str) -> dict:
        return rows.setdefault(kind, {"ok": 0, "failed": 0, "missing": 0, "other": 0, "total": 0})
    for _, kind, total, ok, failed in per_group:
        r = row(kind)
        r["total"] += total
        r["missing"] += total - ok - failed
        r["ok"] += ok
        r["failed"] += failed
    for kind, n in others.items():
        if n:
            row(kind)["other"] += n
    return rows


# ---------------------------------------------------------------------------------------------------- sync
def sync_mlflow(spec: SweepSpec, *, children: str | None = None, say: Callable[[str], None] = _say) -> dict:
    """Create the MLflow child runs that are missing for records in the store (matched by task_key and status
    tags), under one new parent run tagged htmc.sync. Running it twice adds nothing the second time."""
    from .tracking.runs import log_task_run, new_execution_id, tracked_tasks
    from .tracking.tracker import Tracker
    mode = children or spec.tracking.children
    if mode != "task":
        raise ValueError(f"sync-mlflow backfills one run per task, but tracking.children is '{mode}' for sweep "
                         f"'{spec.name}'; pass --children task to backfill per-task runs anyway")
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(readonly=True)
    tracker = Tracker(spec, children="task", warn=lambda m: None)
    try:
        tracker._connect()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"MLflow at {redact_uri(spec.tracking.uri)} is not reachable: {e}") from None
    client = tracker.client
    incomplete: list = []
    have = tracked_tasks(client, tracker.experiment_id, incomplete=incomplete)
    table = store.load(spec.name)
    drop = [c for c in ("attempts_json", "points_json", "fit_json", "extra_json") if c in table.column_names]
    records = table.drop_columns(drop).to_pylist() if table.num_rows else []
    missing = [r for r in records if (r["task_key"], r.get("status")) not in have]
    out = {"sweep": spec.name, "records": len(records), "already_tracked": len(records) - len(missing),
           "added": 0, "parent_run_id": None, "incomplete_replaced": 0}
    if not missing:
        say(f"sync-mlflow '{spec.name}': all {len(records)} records already have runs; nothing to add")
        return out
    execution_id = new_execution_id()
    parent = client.create_run(tracker.experiment_id, run_name=f"{spec.name}-sync-{execution_id[:15]}", tags={
        "htmc.role": "parent", "htmc.sync": "true", "htmc.sweep": spec.name, "htmc.spec_hash": spec.spec_hash,
        "htmc.execution_id": execution_id})
    pid = parent.info.run_id
    out["parent_run_id"] = pid
    try:
        # A run cut off mid-logging is replaced by a complete one (deleted: restorable, out of every search), so
        # that each task ends with exactly one complete run.
        want = {(r["task_key"], r.get("status")) for r in missing}
        for rid, key, st in incomplete:
            if (key, st) in want:
                client.delete_run(rid)
                out["incomplete_replaced"] += 1
        for r in missing:
            log_task_run(client, tracker.experiment_id, pid, spec.name, r)
            out["added"] += 1
    except BaseException:
        client.set_terminated(pid, "FAILED")
        raise
    client.set_terminated(pid, "FINISHED")
    say(f"sync-mlflow '{spec.name}': added {out['added']} runs under parent {pid}; "
        f"{out['already_tracked']} were already tracked")
    return out


# ---------------------------------------------------------------------------------------------------- submit
def submission_base(spec: SweepSpec, tag: str | None = None) -> str:
    base = f"htmc-{spec.name}-{spec.spec_hash}"
    if tag:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tag):
            raise ValueError(f"--tag must be 1-64 letters, digits, '.', '_' or '-', got {tag!r}")
        base += f"-{tag}"
    return base


def submit(spec: SweepSpec, spec_path: str, *, address: str, working_dir: str = ".", tag: str | None = None,
           retry_failed: bool = False, forward_credentials: bool = False, wait: bool = False,
           timeout_s: float = 3600.0, results: str | None = None, tracking_uri: str | None = None,
           plugins=(), say: Callable[[str], None] = _say) -> dict:
    """Submit the sweep as a Ray job with a deterministic submission_id: htmc-<name>-<spec hash>[-<tag>], with
    -r2, -r3, ... when an earlier job of that id failed or was stopped. A running or succeeded job of the same
    id is not submitted again. Returns {"submission_id", "status", "submitted"} (and "logs_tail" after a wait)."""
    entrypoint, runtime_env = build_submission(spec, spec_path, working_dir=working_dir, retry_failed=retry_failed,
                                               forward_credentials=forward_credentials, results=results,
                                               tracking_uri=tracking_uri, plugins=plugins)
    base = submission_base(spec, tag)
    client, jobs = open_jobs(address, base)
    sid, n = base, 1
    while sid in jobs:
        st = jobs[sid]
        if st not in TERMINAL:
            say(f"job {sid} is already {st}; not submitting it again")
            return {"submission_id": sid, "status": st, "submitted": False}
        if st == "SUCCEEDED":
            say(f"job {sid} already succeeded for this spec; pass --tag (e.g. a date) to run it again")
            return {"submission_id": sid, "status": st, "submitted": False}
        n += 1
        sid = f"{base}-r{n}"
    return {"submission_id": sid, "submitted": True, **submit_job(
        client, sid, entrypoint, runtime_env, {"htmc.sweep": spec.name, "htmc.spec_hash": spec.spec_hash},
        announce=f"submitted job {sid}: {entrypoint}", wait=wait, timeout_s=timeout_s, say=say)}

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
from pathlib import Path
from typing import Callable

from .provenance import git_sha, versions
from .spec.grid import expand
from .spec.model import SweepSpec, Task
from .spec.redact import redact_uri
from .store.core import StoreConfig, open_store


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
        tasks = [t for t in tasks if t.key in keys]
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(create_bucket=spec.results.create_bucket)
    existing = store.statuses(spec.name)
    todo = []
    for t in tasks:
        st = existing.get(t.key, (None, None))[1]
        if st == "ok" or (st == "failed" and not retry_failed):
            continue
        todo.append(t)
    return tasks, todo, existing


def run_sweep(spec: SweepSpec, *, retry_failed: bool = False, address: str | None = None, progress: bool = True,
              num_cpus: float | None = None, num_gpus: float | None = None, dashboard: bool = False,
              say: Callable[[str], None] = _say, on_dispatcher=None, keys=None,
              tags: dict | None = None) -> RunSummary:
    """`keys`: run only these of the spec's tasks; `tags`: extra tags of the MLflow parent run."""
    from .tracking.runs import new_execution_id
    from .tracking.tracker import Tracker
    t_start = time.monotonic()
    if address or os.environ.get("RAY_ADDRESS"):
        from .dispatch.raysetup import probe_address
        probe_address(address or os.environ["RAY_ADDRESS"])   # a dead address fails before the store is touched
    tasks, todo, existing = plan(spec, retry_failed=retry_failed, keys=keys)
    n_ok = sum(1 for t in tasks if existing.get(t.key, (0, None))[1] == "ok")
    n_failed = sum(1 for t in tasks if existing.get(t.key, (0, None))[1] == "failed")
    execution_id = new_execution_id()
    summary = RunSummary(spec.name, len(tasks), n_ok, n_failed, len(todo), execution_id=execution_id,
                         keys=[t.key for t in todo])
    say(f"sweep '{spec.name}': {len(tasks)} tasks; {n_ok} ok and {n_failed} failed already; "
        f"{len(todo)} to run{' (retrying failed)' if retry_failed else ''}. Results: "
        f"{open_store(StoreConfig.from_spec(spec.results)).describe()}")
    if not todo:
        return summary

    store = open_store(StoreConfig.from_spec(spec.results))
    if hasattr(store, "cleanup_tmp"):
        store.cleanup_tmp()
    sha = git_sha()
    ver = versions()
    context = {"sweep": spec.name, "execution_id": execution_id, "spec_hash": spec.spec_hash, "git_sha": sha}
    from .dispatch.pool import Dispatcher
    from .dispatch.raysetup import init_ray
    local = init_ray(address, num_cpus=num_cpus, num_gpus=num_gpus, dashboard=dashboard)  # before MLflow
    tracker = Tracker(spec)
    parent = tracker.start(
        run_name=f"{spec.name}-{execution_id[:15]}",
        tags={"htmc.execution_id": execution_id, "htmc.git_sha": sha, "mlflow.source.git.commit":
              (sha or "").replace("-dirty", "") or None, "htmc.results": redact_uri(spec.results.uri),
              **(tags or {})},
        params={"spec_hash": spec.spec_hash, "git_sha": sha, "n_tasks": len(tasks), "n_scheduled": len(todo),
                "n_ok_before": n_ok, "n_failed_before": n_failed, "retry_failed": retry_failed,
                "results": redact_uri(spec.results.uri), "children": spec.tracking.children,
                "kinds": ",".join(spec.kinds()), "max_attempts": spec.dispatch.max_attempts,
                "execution_id": execution_id, **ver})
    summary.parent_run_id = parent
    if parent:
        say(f"MLflow: experiment '{spec.experiment}', parent run {parent} at {redact_uri(spec.tracking.uri)}")

    bar, d = None, None
    status = "FAILED"
    try:
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), desc=spec.name, unit="task", file=sys.stderr, dynamic_ncols=True,
                       mininterval=0.5, smoothing=0.1, disable=None)   # None: only on a terminal

        def on_progress(counts):
            tracker.log_progress(counts.as_metrics())

        d = Dispatcher(spec, StoreConfig.from_spec(spec.results), context, local=local,
                       on_result=tracker.log_result, on_progress=on_progress, bar=bar)
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
        summary.seconds = time.monotonic() - t_start
        if status == "KILLED":
            say(f"sweep '{spec.name}' interrupted: records written so far are complete; run it again to resume.")
    say(f"sweep '{spec.name}': {summary.done} ok, {summary.failed} failed in {summary.seconds:.1f} s"
        + (f"; {summary.untracked} results not in MLflow (run `htmc sweep sync-mlflow {spec.source}`)"
           if summary.untracked else ""))
    return summary


# ---------------------------------------------------------------------------------------------------- status
def sweep_status(spec: SweepSpec) -> dict:
    """Counts per kind and status: ok, failed, missing (in the spec, no record), other (records of the sweep that
    the spec no longer produces: removed grid values or older kind versions)."""
    tasks = expand(spec)
    store = open_store(StoreConfig.from_spec(spec.results))
    store.check(readonly=True)
    existing = store.statuses(spec.name)
    keys = {t.key for t in tasks}
    rows: dict[str, dict] = {}
    for t in tasks:
        row = rows.setdefault(t.kind, {"ok": 0, "failed": 0, "missing": 0, "other": 0, "total": 0})
        row["total"] += 1
        st = existing.get(t.key, (None, None))[1]
        row[st if st in ("ok", "failed") else "missing"] += 1
    for key, (kind, st) in existing.items():
        if key not in keys:
            rows.setdefault(kind, {"ok": 0, "failed": 0, "missing": 0, "other": 0, "total": 0})["other"] += 1
    from analysis.costs import cost_totals
    cost_columns = ["task_key", "status", "finished_at", "cpu_seconds", "gpu_seconds"]
    costs = cost_totals(store.load(spec.name, columns=cost_columns), **vars(spec.costs))
    # unusable record files (truncated, not Parquet, wrong key...) met while reading: counted as missing above
    return {"sweep": spec.name, "results": store.describe(), "kinds": rows, "costs": costs,
            "unusable_files": len(store.corrupt)}


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
FORWARDED_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_EC2_METADATA_DISABLED", "MLFLOW_S3_ENDPOINT_URL")
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_TOKEN",
              "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def submission_base(spec: SweepSpec, tag: str | None = None) -> str:
    base = f"htmc-{spec.name}-{spec.spec_hash}"
    if tag:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tag):
            raise ValueError(f"--tag must be 1-64 letters, digits, '.', '_' or '-', got {tag!r}")
        base += f"-{tag}"
    return base


def build_submission(spec: SweepSpec, spec_path: str, *, working_dir: str = ".", retry_failed: bool = False,
                     forward_credentials: bool = False, results: str | None = None,
                     tracking_uri: str | None = None, module: str = "jobs.sweep",
                     extra_args: tuple = ()) -> tuple[str, dict]:
    """(entrypoint, runtime_env) for `ray job submit` of `python -m <module> SPEC ...` (jobs.sweep, or
    jobs.nightly). The spec travels inside the working dir when it is there, else as the env var
    HTMC_SWEEP_SPEC_YAML."""
    import shlex
    wd = Path(working_dir).resolve()
    if not wd.is_dir():
        raise FileNotFoundError(f"working dir '{working_dir}' does not exist")
    if not (spec.results.is_s3 or Path(spec.results.uri).is_absolute()):
        raise ValueError(f"results '{spec.results.uri}' is a relative path: in a Ray job it would land in the "
                         f"job's temporary copy of the working dir. Give an absolute path or s3://bucket/prefix "
                         f"(--results)")
    turi = spec.tracking.uri
    if turi.startswith("sqlite:///") and not turi.startswith("sqlite:////"):
        raise ValueError(f"tracking URI '{turi}' is a relative sqlite path: in a Ray job it would land in the "
                         f"job's temporary working dir. Use sqlite:////absolute/path.db or an MLflow server "
                         f"(--tracking-uri)")
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    if forward_credentials:
        env.update({k: os.environ[k] for k in SECRET_ENV if os.environ.get(k)})
    sha = git_sha()
    if sha:
        env["HTMC_GIT_SHA"] = sha
    p = Path(spec_path).resolve()
    args = ["python", "-m", module]
    if p.is_relative_to(wd):
        args.append(str(p.relative_to(wd)))
    else:
        env["HTMC_SWEEP_SPEC_YAML"] = spec.text
        args += ["--spec-from-env", "HTMC_SWEEP_SPEC_YAML"]
    if results:
        args += ["--results", results]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    if retry_failed:
        args.append("--retry-failed")
    args += [*extra_args, "--no-progress"]
    runtime_env = {"working_dir": str(wd), "env_vars": env,
                   "excludes": [".git", ".venv", "results", "mlruns", "mlartifacts", "*.db", ".pytest_cache",
                                ".hypothesis", "__pycache__", "*.egg-info"]}
    return " ".join(shlex.quote(a) for a in args), runtime_env


def submit(spec: SweepSpec, spec_path: str, *, address: str, working_dir: str = ".", tag: str | None = None,
           retry_failed: bool = False, forward_credentials: bool = False, wait: bool = False,
           timeout_s: float = 3600.0, results: str | None = None, tracking_uri: str | None = None,
           say: Callable[[str], None] = _say) -> dict:
    """Submit the sweep as a Ray job with a deterministic submission_id: htmc-<name>-<spec hash>[-<tag>], with
    -r2, -r3, ... when an earlier job of that id failed or was stopped. A running or succeeded job of the same
    id is not submitted again."""
    from ray.job_submission import JobSubmissionClient
    entrypoint, runtime_env = build_submission(spec, spec_path, working_dir=working_dir, retry_failed=retry_failed,
                                               forward_credentials=forward_credentials, results=results,
                                               tracking_uri=tracking_uri)
    try:
        client = JobSubmissionClient(address)
    except Exception as e:  # noqa: BLE001  unreachable or not a Ray dashboard
        raise ValueError(f"cannot reach the Ray job server at {address}: {e}") from None
    base = submission_base(spec, tag)
    jobs = {j.submission_id: j for j in client.list_jobs() if j.submission_id and
            (j.submission_id == base or j.submission_id.startswith(base + "-r"))}
    sid, n = base, 1
    while sid in jobs:
        st = job_status(jobs[sid])
        if st not in TERMINAL:
            say(f"job {sid} is already {st}; not submitting it again")
            return {"submission_id": sid, "status": st, "submitted": False}
        if st == "SUCCEEDED":
            say(f"job {sid} already succeeded for this spec; pass --tag (e.g. a date) to run it again")
            return {"submission_id": sid, "status": st, "submitted": False}
        n += 1
        sid = f"{base}-r{n}"
    client.submit_job(entrypoint=entrypoint, submission_id=sid, runtime_env=runtime_env,
                      metadata={"htmc.sweep": spec.name, "htmc.spec_hash": spec.spec_hash})
    say(f"submitted job {sid}: {entrypoint}")
    out = {"submission_id": sid, "status": "PENDING", "submitted": True}
    if wait:
        out["status"] = st = wait_for_job(client, sid, timeout_s)
        out["logs_tail"] = client.get_job_logs(sid)[-4000:]
        say(f"job {sid}: {st}")
    return out


def job_status(job) -> str:
    """A listed Ray job's status as text (JobDetails.status is an enum, or a string in some Ray versions)."""
    st = job.status
    return str(st.value if hasattr(st, "value") else st)


def wait_for_job(client, sid: str, timeout_s: float, poll_s: float = 1.0) -> str:
    """Poll a Ray job until it ends and return its final status; TimeoutError after timeout_s."""
    t0 = time.monotonic()
    while (st := str(client.get_job_status(sid).value)) not in TERMINAL:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"job {sid} still {st} after {timeout_s:g} s")
        time.sleep(poll_s)
    return st

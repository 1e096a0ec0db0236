"""MLflow tracking of sweeps (DESIGN §4): an experiment per sweep, a parent run per execution, child runs per task.

- Parent run: tags htmc.role=parent, sweep, spec hash, git sha, execution id; params: versions, counts, settings;
  the spec (credentials stripped from URIs) as the artifact `spec.yaml`; progress metrics (done, failed,
  running, pending, eta_s, tasks_per_s) as the sweep runs. Status FINISHED, FAILED (the sweep itself broke) or
  KILLED (Ctrl-C / SIGTERM).
- Children (`tracking.children`):
    task   one child run per task: tags mlflow.parentRunId, htmc.task_key, htmc.kind, htmc.status, htmc.group;
           params = the task's parameters (flattened); metrics = the record's numeric outcomes.
    group  one child run per task group and execution, each task's outcomes logged as metric steps: stays
           usable for sweeps of 10^4+ tasks, where a run per task makes the MLflow UI crawl.
    off    the parent only.
- Logging happens on a background thread so that the dispatcher never waits for MLflow; log_batch requests are
  chunked within MLflow's limits (100 params, 100 tags, 1000 metrics, 1000 entities, 1 MB).
- Tracking never decides whether a result exists; Parquet does. If MLflow is unreachable (at start or later),
  a warning says so, the sweep goes on, and `htmc sweep sync-mlflow` backfills the missing child runs later:
  runs are matched by their (htmc.task_key, htmc.status) tags, so syncing twice adds nothing.
- Secrets are never logged: no environment is logged, parameter names that look like secrets are masked, and
  passwords are cut from URIs.
"""
from __future__ import annotations

import json
import math
import os
import queue
import re
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from . import schema
from .spec import SECRET_RE, SweepSpec, redact_uri

MAX_PARAMS, MAX_TAGS, MAX_METRICS, MAX_ENTITIES = 100, 100, 1000, 1000
MAX_BATCH_BYTES = 900_000
MAX_PARAM_VAL, MAX_TAG_VAL = 6000, 8000


def _mlflow_env_defaults() -> None:
    # Fail fast against a dead server instead of MLflow's default ~2 minutes of retries per request.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow prints "View run at <URI>" on stdout: it breaks --json output and would show a URI's password. Every
    # MlflowClient of the project is made after this (Tracker._connect), so the entry points need not set it.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _ms(ts) -> int | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return int(ts.timestamp() * 1000)
    return int(ts)


def flatten_params(params: dict, prefix: str = "") -> dict[str, str]:
    """{'function_params': {'freq': 1}, 'methods': ['abc']} -> {'function_params.freq': '1', 'methods': '["abc"]'}"""
    out = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten_params(v, name + "."))
        else:
            out[name] = v if isinstance(v, str) else json.dumps(v)
        if SECRET_RE.search(name):
            out[name] = "***"
    return {k: (v if len(v) <= MAX_PARAM_VAL else v[:MAX_PARAM_VAL - 3] + "...") for k, v in out.items()}


def record_metrics(record: dict) -> dict[str, float]:
    kind = record.get("kind")
    names = list(schema.COMMON_METRICS) + list(schema.METRIC_COLUMNS.get(kind, ()))
    names += [k for k in record if k.startswith("norm_") and not k.endswith("_version")]
    out = {}
    for n in names:
        v = record.get(n)
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[n] = float(v)
    return out


def batches(metrics: list, params: list, tags: list) -> Iterable[tuple[list, list, list]]:
    """Split entities into log_batch requests within MLflow's limits."""
    m, p, t = list(metrics), list(params), list(tags)
    while m or p or t:
        bp, bt, bm, size = [], [], [], 0
        while p and len(bp) < MAX_PARAMS and size < MAX_BATCH_BYTES:
            size += len(p[0].key) + len(p[0].value) + 16
            bp.append(p.pop(0))
        while t and len(bt) < MAX_TAGS and size < MAX_BATCH_BYTES:
            size += len(t[0].key) + len(t[0].value) + 16
            bt.append(t.pop(0))
        while m and len(bm) < min(MAX_METRICS, MAX_ENTITIES - len(bp) - len(bt)) and size < MAX_BATCH_BYTES:
            size += len(m[0].key) + 48
            bm.append(m.pop(0))
        yield bm, bp, bt


class TrackingUnavailable(Exception):
    pass


def default_artifact_location(uri: str, spec: SweepSpec) -> str | None:
    """tracking.artifact_location, else for a sqlite database `<its directory>/mlartifacts/<experiment>` (beside
    the database, not MLflow's cwd-relative ./mlruns), else None (the server decides)."""
    if spec.tracking.artifact_location:
        return spec.tracking.artifact_location
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.is_absolute():
            db = Path.cwd() / db
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.experiment)
        return str(db.resolve().parent / "mlartifacts" / safe)
    return None


class Tracker:
    """One execution's MLflow logging. Every MLflow call happens on one background thread (a single writer:
    no sqlite lock contention); the first failure disables tracking for the execution with a warning."""

    def __init__(self, spec: SweepSpec, *, children: str | None = None, warn: Callable[[str], None] | None = None):
        self.spec = spec
        self.uri = spec.tracking.uri
        self.children = children or spec.tracking.children
        self.warn = warn or (lambda msg: print(f"htmc: warning: {msg}", file=sys.stderr))
        self.enabled = True
        self.client = None
        self.experiment_id = None
        self.parent_id = None
        self.untracked = 0
        self._q: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._group_runs: dict[str, str] = {}
        self._group_steps: dict[str, int] = {}
        self._group_buffers: dict[str, list] = {}
        self._progress_step = 0
        self._error: str | None = None
        self._end_status: str | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self, *, params: dict, tags: dict, run_name: str) -> str | None:
        """Create the experiment (if needed) and the parent run; returns its id, or None if MLflow is down."""
        try:
            self._connect()
            from mlflow.entities import Param, RunTag
            all_tags = {"htmc.role": "parent", "htmc.sweep": self.spec.name, "htmc.spec_hash": self.spec.spec_hash,
                        "htmc.children": self.children, "htmc.driver": _driver_id(),
                        **{k: str(v) for k, v in tags.items() if v is not None}}
            self._close_orphans()
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
            self.parent_id = run.info.run_id
            ps = [Param(k, v) for k, v in flatten_params({k: v for k, v in params.items() if v is not None}).items()]
            for bm, bp, bt in batches([], ps, []):
                self.client.log_batch(self.parent_id, metrics=bm, params=bp, tags=bt)
            self.client.log_text(self.parent_id, redact_uri(self.spec.text), "spec.yaml")
        except Exception as e:  # noqa: BLE001  any MLflow failure: warn, keep the results path going
            self._disable(e)
            return None
        self._thread = threading.Thread(target=self._loop, name="htmc-mlflow", daemon=True)
        self._thread.start()
        return self.parent_id

    def _close_orphans(self) -> None:
        """Mark KILLED the RUNNING parent runs of this sweep whose driver process on this host is gone (a driver
        killed with SIGKILL cannot close its own run). Runs of drivers on other hosts are left alone: whether
        they live cannot be told from here."""
        host = socket.gethostname()
        runs = self.client.search_runs(
            [self.experiment_id], max_results=200,
            filter_string=f"tags.`htmc.role` = 'parent' and tags.`htmc.sweep` = '{self.spec.name}' and "
                          f"attributes.status = 'RUNNING'")
        for r in runs:
            h, _, pid = r.data.tags.get("htmc.driver", "").rpartition(":")
            if h == host and pid.isdigit() and not _pid_alive(int(pid)):
                self.client.set_tag(r.info.run_id, "htmc.closed_by", "a later execution (driver gone)")
                self.client.set_terminated(r.info.run_id, "KILLED")

    def _connect(self) -> None:
        _mlflow_env_defaults()
        if self.uri.startswith(("http://", "https://")):
            import urllib.request
            try:
                # urllib cannot take user:password@ in a URL (MLflow's requests can); /health needs no auth
                bare = re.sub(r"^(https?://)[^/@]*@", r"\1", self.uri.rstrip("/"))
                urllib.request.urlopen(bare + "/health", timeout=5).read()
            except Exception as e:  # noqa: BLE001
                raise TrackingUnavailable(f"{type(e).__name__}: {e}") from None
        from mlflow import MlflowClient
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(self.spec.experiment)
        if exp is None:
            try:
                self.experiment_id = self.client.create_experiment(
                    self.spec.experiment, artifact_location=default_artifact_location(self.uri, self.spec),
                    tags={"htmc.sweep": self.spec.name})
            except Exception:  # noqa: BLE001  created concurrently by another driver
                exp = self.client.get_experiment_by_name(self.spec.experiment)
                if exp is None:
                    raise
                self.experiment_id = exp.experiment_id
        else:
            if exp.lifecycle_stage == "deleted":
                raise TrackingUnavailable(f"MLflow experiment '{self.spec.experiment}' is deleted; restore it "
                                          f"or set tracking.experiment to another name")
            self.experiment_id = exp.experiment_id

    def _disable(self, e: BaseException) -> None:
        if self.enabled:
            self.enabled = False
            self._error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.warn(f"MLflow at {redact_uri(self.uri)} is not usable ({self._error[:300]}); results still go to "
                      f"the Parquet store. Backfill the runs later with `htmc sweep sync-mlflow "
                      f"{self.spec.source}`.")

    def log_result(self, record: dict) -> None:
        if self.enabled and self.children != "off":
            self._q.put(("result", dict(record, kind=record.get("kind"))))
        elif self.children != "off":
            self.untracked += 1

    def log_progress(self, metrics: dict) -> None:
        if self.enabled:
            self._q.put(("progress", dict(metrics)))

    def finish(self, status: str = "FINISHED", metrics: dict | None = None, timeout_s: float | None = None) -> None:
        """Drain the queue (up to timeout_s; 15 s after an interrupt, 600 s otherwise), log final metrics and
        terminate the parent run with status."""
        if timeout_s is None:
            timeout_s = 15.0 if status == "KILLED" else 600.0
        self._end_status = status
        if self._thread is not None:
            self._q.put(("end", (status, metrics or {})))
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.warn(f"MLflow logging did not finish within {timeout_s:g} s; the rest can be backfilled "
                          f"with `htmc sweep sync-mlflow {self.spec.source}`")
                self.enabled = False
            self._thread = None

    # ------------------------------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        while True:
            op, payload = self._q.get()
            if op == "result" and self._end_status == "KILLED":
                self.untracked += 1      # interrupted: stop logging children, close the parent promptly
                continue
            if not self.enabled:
                if op == "result":
                    self.untracked += 1
                if op == "end":
                    return
                continue
            try:
                if op == "result":
                    self._log_child(payload)
                elif op == "progress":
                    self._log_progress(payload)
                elif op == "end":
                    status, metrics = payload
                    for rid in self._group_runs.values():
                        self._flush_group(rid)
                        self.client.set_terminated(rid, status)
                    if metrics:
                        self._log_progress(metrics)
                    self.client.set_terminated(self.parent_id, status)
                    return
            except Exception as e:  # noqa: BLE001
                if op == "result":
                    self.untracked += 1
                self._disable(e)
                if op == "end":
                    return

    def _log_progress(self, metrics: dict) -> None:
        from mlflow.entities import Metric
        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, self._progress_step) for k, v in metrics.items()
              if isinstance(v, (int, float)) and math.isfinite(v)]
        self._progress_step += 1
        for bm, bp, bt in batches(ms, [], []):
            self.client.log_batch(self.parent_id, metrics=bm, params=bp, tags=bt)

    def _log_child(self, record: dict) -> None:
        if self.children == "task":
            log_task_run(self.client, self.experiment_id, self.parent_id, self.spec.name, record)
        elif self.children == "group":
            self._log_group(record)

    def _log_group(self, record: dict) -> None:
        from mlflow.entities import Metric
        group = record.get("group") or record.get("kind") or "tasks"
        rid = self._group_runs.get(group)
        if rid is None:
            run = self.client.create_run(self.experiment_id, run_name=f"{group}", tags={
                "mlflow.parentRunId": self.parent_id, "htmc.role": "group", "htmc.group": group,
                "htmc.kind": str(record.get("kind")), "htmc.sweep": self.spec.name})
            rid = self._group_runs[group] = run.info.run_id
            self._group_steps[group] = 0
        step = self._group_steps[group]
        self._group_steps[group] = step + 1
        ts = _ms(record.get("finished_at")) or int(time.time() * 1000)
        ms = [Metric(k, v, ts, step) for k, v in record_metrics(record).items()]
        ms.append(Metric("ok", 1.0 if record.get("status") == "ok" else 0.0, ts, step))
        # Many small requests would be slow: metrics of a group are buffered and sent 1000 at a time.
        buf = self._group_buffers.setdefault(rid, [])
        buf.extend(ms)
        if len(buf) >= MAX_METRICS or self._q.empty():
            self._flush_group(rid)

    def _flush_group(self, rid: str) -> None:
        buf = self._group_buffers.get(rid) or []
        self._group_buffers[rid] = []
        for bm, bp, bt in batches(buf, [], []):
            self.client.log_batch(rid, metrics=bm, params=bp, tags=bt)


def log_task_run(client, experiment_id: str, parent_id: str, sweep: str, record: dict) -> str:
    """One child run for one task record (live tracking and sync-mlflow share this)."""
    from mlflow.entities import Metric, Param, RunTag
    key, kind, status = record["task_key"], record.get("kind"), record.get("status")
    tags = {"mlflow.parentRunId": parent_id, "htmc.role": "task", "htmc.task_key": key, "htmc.kind": str(kind),
            "htmc.status": str(status), "htmc.group": str(record.get("group")), "htmc.sweep": sweep,
            "htmc.execution_id": str(record.get("execution_id")), "htmc.kind_version": str(record.get("kind_version"))}
    run = client.create_run(experiment_id, start_time=_ms(record.get("started_at")), tags=tags,
                            run_name=f"{kind}-{key}")
    rid = run.info.run_id
    try:
        params = json.loads(record.get("params_json") or "{}")
    except ValueError:
        params = {}
    ps = [Param(k, v) for k, v in flatten_params(params).items()]
    ts = _ms(record.get("finished_at")) or int(time.time() * 1000)
    ms = [Metric(k, v, ts, 0) for k, v in record_metrics(record).items()]
    ts_tags = []
    if record.get("error"):
        err = str(record["error"])
        ts_tags.append(RunTag("htmc.error", err if len(err) <= MAX_TAG_VAL else err[:MAX_TAG_VAL - 3] + "..."))
    for extra in ("device", "worker", "git_sha", "spec_hash"):
        if record.get(extra):
            ts_tags.append(RunTag(f"htmc.{extra}", str(record[extra])[:MAX_TAG_VAL]))
    for bm, bp, bt in batches(ms, ps, ts_tags):
        client.log_batch(rid, metrics=bm, params=bp, tags=bt)
    client.set_terminated(rid, "FINISHED" if status == "ok" else "FAILED", end_time=_ms(record.get("finished_at")))
    return rid


def tracked_tasks(client, experiment_id: str, *, incomplete: list | None = None) -> set[tuple[str, str]]:
    """(task_key, status) of every task child run in the experiment (paginated search). With `incomplete` (a list),
    a run never terminated is not counted and (run_id, task_key, status) is appended to it instead: log_task_run
    terminates last, so such a run was cut off mid-logging (e.g. MLflow went down) and may lack params/metrics."""
    out, token = set(), None
    while True:
        page = client.search_runs([experiment_id], filter_string="tags.`htmc.role` = 'task'", max_results=5000,
                                  page_token=token)
        for r in page:
            k = r.data.tags.get("htmc.task_key")
            if k:
                st = r.data.tags.get("htmc.status", "")
                if incomplete is not None and r.info.status == "RUNNING":
                    incomplete.append((r.info.run_id, k, st))
                else:
                    out.add((k, st))
        token = page.token
        if not token:
            return out


def _driver_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


def new_execution_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def log_report(spec: SweepSpec, paths, *, metrics: dict | None = None, tracking_uri: str | None = None,
               warn: Callable[[str], None] | None = None, run_id: str | None = None, tags: dict | None = None,
               new_run: tuple[str, dict] | None = None) -> str | None:
    """Log a sweep's report as artifacts of its latest execution's parent run (under `report/`), with `metrics`
    and `tags`. `run_id`: that run instead; `new_run`: (name, tags) of a run to create for it (a night that ran
    no task has no parent run of its own).

    Without any parent run (e.g. the records came from elsewhere) a run tagged htmc.role=analysis is created.
    `paths`: files or directories (a dict's values, or any iterable). Returns the run id, or None with a warning
    when MLflow is not usable (the report files on disk are the result; tracking is optional)."""
    warn = warn or (lambda msg: print(f"htmc: warning: {msg}", file=sys.stderr))
    tr = Tracker(spec, warn=warn)
    if tracking_uri:
        tr.uri = tracking_uri
    items = list(paths.values()) if isinstance(paths, dict) else list(paths)
    try:
        tr._connect()
        c = tr.client
        parent = None
        if run_id is None and new_run is None:
            runs = c.search_runs([tr.experiment_id], max_results=20, order_by=["attributes.start_time DESC"],
                                 filter_string=f"tags.`htmc.role` = 'parent' and tags.`htmc.sweep` = '{spec.name}'")
            parent = next((r for r in runs if r.data.tags.get("htmc.sync") != "true"), runs[0] if runs else None)
        created = run_id is None and parent is None
        if run_id is not None:
            rid = run_id
        elif created:
            name, new_tags = new_run or (f"{spec.name}-analysis", {"htmc.role": "analysis"})
            rid = c.create_run(tr.experiment_id, run_name=name, tags={
                "htmc.sweep": spec.name, "htmc.spec_hash": spec.spec_hash, **new_tags}).info.run_id
        else:
            rid = parent.info.run_id
        for p in items:
            p = Path(p)
            if p.is_dir():
                c.log_artifacts(rid, str(p), artifact_path=f"report/{p.name}")
            elif p.is_file():
                c.log_artifact(rid, str(p), artifact_path="report")
        if metrics or tags:
            from mlflow.entities import Metric, RunTag
            ts = int(time.time() * 1000)
            ms = [Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()
                  if isinstance(v, (int, float)) and math.isfinite(v)]
            ts_ = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
            for bm, bp, bt in batches(ms, [], ts_):
                c.log_batch(rid, metrics=bm, params=bp, tags=bt)
        if created:
            c.set_terminated(rid, "FINISHED")
        return rid
    except Exception as e:  # noqa: BLE001  never fail the report because of MLflow
        warn(f"the report was not logged to MLflow at {redact_uri(tr.uri)}: {type(e).__name__}: "
             f"{str(e).splitlines()[0] if str(e) else ''}")
        return None

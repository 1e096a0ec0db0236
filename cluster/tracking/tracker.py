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

import math
import os
import queue
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from cluster.spec.model import SweepSpec
from cluster.spec.redact import redact_uri

from .entities import MAX_METRICS, batches, epoch_ms, flatten_params, mlflow_env_defaults, record_metrics
from .runs import log_task_run

# MLflow 3 opens an untagged experiment on its GenAI trace overview, not on the runs (STACK-NOTES; issue 14)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


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
            from mlflow.entities import Param
            all_tags = {"htmc.role": "parent", "htmc.sweep": self.spec.name, "htmc.spec_hash": self.spec.spec_hash,
                        "htmc.children": self.children, "htmc.driver": driver_id(),
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
        mlflow_env_defaults()
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
                    tags={"htmc.sweep": self.spec.name, **EXPERIMENT_TAGS})
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
            if any(exp.tags.get(k) != v for k, v in EXPERIMENT_TAGS.items()):  # experiments made before the tag
                for k, v in EXPERIMENT_TAGS.items():
                    self.client.set_experiment_tag(self.experiment_id, k, v)

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
        ts = epoch_ms(record.get("finished_at")) or int(time.time() * 1000)
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


def driver_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True



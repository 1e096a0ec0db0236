"""The code that runs inside a Ray actor: run tasks of one kind and write each record to the store itself.

TaskRunner is a plain class (tests use it without Ray); cluster.dispatch.pool wraps it with ray.remote. A task that
raises becomes a `failed` record holding the error text; nothing a task does stops the actor. Records are
written one by one as tasks finish, so a worker killed in the middle of a chunk loses only unfinished tasks.

A store that stays unreachable for `results.write_retry_s` (StoreUnavailable) does not fail the call: the task's
TaskOutcome carries the store_error and written=False, and the dispatcher retries the task later. The rest of that
call's records then get one try each, not a full retry budget each (a batch of 64 would otherwise wait 64 times).
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone

from cluster.provenance import versions
from htmc.records import to_row
from cluster.store import schema
from cluster.store.core import open_store, StoreConfig
from cluster.store.layout import StoreUnavailable

ERROR_MAX_CHARS = 8000


@dataclass
class TaskOutcome:
    """What a worker returns per task: the record as stored (without its large JSON columns, plus `kind`), and,
    outside it, whether the store took it, the file's validator for the status index, or why it did not."""
    record: dict
    written: bool = True
    validator: str | None = None
    store_error: str | None = None
# Large JSON columns stay in the store; the driver gets the rest (for tracking and progress).
NOT_RETURNED = ("attempts_json", "points_json", "fit_json", "extra_json", "net_text")


def error_text(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(tb[-12:])
    text = f"{type(exc).__name__}: {exc}\n{tail}"
    return text if len(text) <= ERROR_MAX_CHARS else text[:ERROR_MAX_CHARS - 20] + "\n...(truncated)"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TaskRunner:
    """Runs tasks of one kind: the htmc.tasks.TaskKind the driver validated the spec with, and its
    htmc.records.Record type (None: it has none), so that a kind from a plugin file runs without the worker
    loading the file. `context`: sweep, execution_id, spec_hash, git_sha, num_cpus, num_gpus."""

    def __init__(self, kind, record, store_cfg: StoreConfig, context: dict):
        from htmc.records import RECORDS
        if record is not None and kind.name not in RECORDS:
            RECORDS.register(kind.name, kind.version, record)     # a plugin's record type, sent by value
        self.kind_name = kind.name
        self.kind = kind
        self.store = open_store(store_cfg)
        self.ctx = dict(context)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.node = ""
        try:
            import ray
            if ray.is_initialized():
                self.node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001  outside Ray: no node id
            pass
        self.versions = versions()
        self._store_down = False     # within one call: the store gave up once, so the rest get one try each

    def ping(self) -> str:
        return self.worker

    # ------------------------------------------------------------------------------------------------------
    def run(self, tasks: list[dict]) -> list[TaskOutcome]:
        """tasks: dicts with key, params, group, kind_version, attempt. Returns one outcome per task, in order."""
        self._store_down = False
        if len(tasks) > 1 and self.kind.run_batch is not None:
            return self._run_batched(tasks)
        return [self._run_one(t) for t in tasks]

    def _run_one(self, task: dict) -> TaskOutcome:
        t0, s0 = _now(), time.perf_counter()
        try:
            out, status, error = self._call(task["params"]), "ok", None
        except Exception as e:  # noqa: BLE001  any task error becomes a failed record
            out, status, error = {}, "failed", error_text(e)
        wall = time.perf_counter() - s0
        return self._finish(task, out, status, error, t0, _now(), wall, 1)

    def _call(self, params: dict):
        """kind.run(params); a kind with an upstream task also gets that task's record from this sweep's store
        (None when it has none), read here on the worker so that large columns (a stored net) skip the driver."""
        if self.kind.upstream is None:
            return self.kind.run(params)
        up_kind, up_key = self.kind.upstream(params)
        return self.kind.run(params, self.store.read_records(self.ctx["sweep"], up_kind, [up_key]).get(up_key))

    def _run_batched(self, tasks: list[dict]) -> list[TaskOutcome]:
        t0, s0 = _now(), time.perf_counter()
        try:
            outs = self.kind.run_batch([t["params"] for t in tasks])
            if len(outs) != len(tasks):
                raise RuntimeError(f"run_batch returned {len(outs)} records for {len(tasks)} tasks")
        except Exception:  # noqa: BLE001  isolate the bad task: run each alone
            return [self._run_one(t) for t in tasks]
        wall = (time.perf_counter() - s0) / len(tasks)
        t1 = _now()
        return [self._finish(t, o, "ok", None, t0, t1, wall, len(tasks)) for t, o in zip(tasks, outs)]

    # ------------------------------------------------------------------------------------------------------
    def _finish(self, task, out, status, error, t0, t1, wall, batch_size) -> TaskOutcome:
        rec = self.make_record(task, out, status, error, t0, t1, wall, batch_size)
        outcome = TaskOutcome({})
        try:
            outcome.written, outcome.validator = self.store.put_record(
                self.ctx["sweep"], self.kind_name, rec, retry_s=0.0 if self._store_down else None)
        except StoreUnavailable as e:
            self._store_down = True
            outcome.written, outcome.store_error = False, str(e)
        rec["kind"] = self.kind_name
        outcome.record = {k: v for k, v in rec.items() if k not in NOT_RETURNED}
        return outcome

    def make_record(self, task, out, status, error, t0, t1, wall, batch_size) -> dict:
        return build_record(task, out, status, error, t0, t1, wall, batch_size, ctx=self.ctx, worker=self.worker,
                            node=self.node, versions=self.versions)


def build_record(task: dict, out: dict, status: str, error: str | None, t0, t1, wall: float, batch_size: int, *,
                 ctx: dict, worker: str, node: str, versions: dict) -> dict:
    """Common columns (cluster.store.schema) + the kind's columns. `out` is what the kind's run returned: its
    htmc.records.Record, or {} for a task that raised."""
    rec = to_row(out)
    kind_status, kind_error = rec.pop("status", None), rec.pop("error", None)
    if kind_status not in (None, "ok"):
        status, error = "failed", kind_error or error or f"task reported status {kind_status!r}"
    device = rec.pop("device", None) or "cpu"
    rec.pop("batch_size", None)
    ncpu, ngpu = float(ctx.get("num_cpus", 1.0)), float(ctx.get("num_gpus", 0.0))
    rec.update({
        "task_key": task["key"], "kind_version": task["kind_version"], "params_json": task["params_json"],
        "group": task.get("group"), "status": status, "error": error or None,
        "attempt": int(task.get("attempt", 1)), "started_at": t0, "finished_at": t1, "wall_s": wall,
        "num_cpus": ncpu, "num_gpus": ngpu, "cpu_seconds": ncpu * wall, "gpu_seconds": ngpu * wall,
        "batch_size": batch_size, "device": device, "worker": worker, "node": node,
        "execution_id": ctx.get("execution_id"), "spec_hash": ctx.get("spec_hash"),
        "git_sha": ctx.get("git_sha"), "schema_version": schema.SCHEMA_VERSION, **versions})
    return rec

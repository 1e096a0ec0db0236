"""Task child runs: one per record (live and in sync-mlflow), and the search for the tasks already tracked."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

from .entities import MAX_TAG_VAL, batches, epoch_ms, flatten_params, record_metrics


def log_task_run(client, experiment_id: str, parent_id: str, sweep: str, record: dict) -> str:
    """One child run for one task record (live tracking and sync-mlflow share this)."""
    from mlflow.entities import Metric, Param, RunTag
    key, kind, status = record["task_key"], record.get("kind"), record.get("status")
    tags = {"mlflow.parentRunId": parent_id, "htmc.role": "task", "htmc.task_key": key, "htmc.kind": str(kind),
            "htmc.status": str(status), "htmc.group": str(record.get("group")), "htmc.sweep": sweep,
            "htmc.execution_id": str(record.get("execution_id")), "htmc.kind_version": str(record.get("kind_version"))}
    run = client.create_run(experiment_id, start_time=epoch_ms(record.get("started_at")), tags=tags,
                            run_name=f"{kind}-{key}")
    rid = run.info.run_id
    try:
        params = json.loads(record.get("params_json") or "{}")
    except ValueError:
        params = {}
    ps = [Param(k, v) for k, v in flatten_params(params).items()]
    ts = epoch_ms(record.get("finished_at")) or int(time.time() * 1000)
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
    client.set_terminated(rid, "FINISHED" if status == "ok" else "FAILED", end_time=epoch_ms(record.get("finished_at")))
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



def new_execution_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


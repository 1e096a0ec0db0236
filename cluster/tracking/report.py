"""Logging a sweep's report (analysis/) to MLflow: artifacts, metrics and tags of the sweep's parent run."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Callable

from cluster.spec.model import SweepSpec
from cluster.spec.redact import redact_uri

from .entities import batches
from .tracker import Tracker


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
            if ms:      # the runs page shows them as columns through this view (cluster/tracking/links.py)
                from .links import VIEW_TAG, headline_view
                c.set_experiment_tag(tr.experiment_id, VIEW_TAG, headline_view(m.key for m in ms))
        if created:
            c.set_terminated(rid, "FINISHED")
        return rid
    except Exception as e:  # noqa: BLE001  never fail the report because of MLflow
        warn(f"the report was not logged to MLflow at {redact_uri(tr.uri)}: {type(e).__name__}: "
             f"{str(e).splitlines()[0] if str(e) else ''}")
        return None

"""The MLflow UI page of a sweep's runs (issue 22 E): http://HOST:PORT/#/experiments/<id>/runs.

A fresh browser opens an experiment on MLflow 3.17's GenAI "Overview", whatever the experiment's
mlflow.experimentKind tag says (the sidebar's GenAI/Model-training toggle lives in the browser's localStorage,
MLflow issue 24498); the runs page shows the parent run and its children. So `make demo`, `make ui` and the README
give this link, with the experiment id read from the tracking store, and with the view that shows the parent's
metrics (the report's headline numbers) as columns once `htmc analyze` has logged them."""
from __future__ import annotations

import json
from pathlib import Path

from cluster.spec.model import SweepSpec

UI = "http://127.0.0.1:5000"        # `make ui`'s address
# The runs table of MLflow 3.17 shows no metric column until the user picks some (its default columns: Source,
# Models, Dataset). A "shared view" is an experiment tag mlflow.sharedViewState.<key> holding the table's state as
# JSON, which the UI applies when the link carries ?viewStateShareKey=<key> (the UI's own "share" feature; checked in
# headless Chromium 150 against MLflow 3.17.2, 2026-12-07): log_report writes one that shows the parent's metrics.
VIEW_KEY = "htmc-headline"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
MAX_VIEW_CHARS = 19_000             # MLflow's limit on an experiment tag's value is 20,000 characters


def runs_page(ui: str, experiment_id: str, *, view: bool = False) -> str:
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs" + (f"?viewStateShareKey={VIEW_KEY}" if view else "")


def headline_view(metric_names) -> str:
    """The shared view's JSON: the Source column, then one column per metric (in the given order, as many as fit)."""
    cols = ["attributes.`Source`"]
    for name in metric_names:
        if len(json.dumps({"selectedColumns": cols + [f"metrics.`{name}`"]})) > MAX_VIEW_CHARS:
            break
        cols.append(f"metrics.`{name}`")
    return json.dumps({"selectedColumns": cols})


def _experiment(spec: SweepSpec, tracking_uri: str | None = None):
    """The spec's experiment in its tracking store; None when the store or the experiment does not exist yet (a
    sqlite file that does not exist is not created: nothing is written)."""
    uri = tracking_uri or spec.tracking.uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return None
    from mlflow import MlflowClient

    from .entities import mlflow_env_defaults
    mlflow_env_defaults()
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(spec.experiment)
    return exp if exp is not None and exp.lifecycle_stage != "deleted" else None


def sweep_runs_link(spec: SweepSpec, ui: str = UI, tracking_uri: str | None = None) -> str | None:
    """The runs page of the spec's experiment in the UI at `ui` (with the headline view once a report made one),
    or None when it has no experiment yet."""
    exp = _experiment(spec, tracking_uri)
    return runs_page(ui, exp.experiment_id, view=VIEW_TAG in exp.tags) if exp is not None else None

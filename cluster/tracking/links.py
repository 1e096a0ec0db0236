"""The MLflow UI page of a sweep's runs (issue 22 E): http://HOST:PORT/#/experiments/<id>/runs.

A fresh browser opens an experiment on MLflow 3.17's GenAI "Overview", whatever the experiment's
mlflow.experimentKind tag says (the sidebar's GenAI/Model-training toggle lives in the browser's localStorage,
MLflow issue 24498); the runs page shows the parent run, its children and the parent's headline metrics.
So `make demo`, `make ui` and the README give this link, with the experiment id read from the tracking store."""
from __future__ import annotations

from pathlib import Path

from cluster.spec.model import SweepSpec

UI = "http://127.0.0.1:5000"        # `make ui`'s address


def runs_page(ui: str, experiment_id: str) -> str:
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs"


def experiment_id(spec: SweepSpec, tracking_uri: str | None = None) -> str | None:
    """The id of the spec's experiment in its tracking store; None when the store or the experiment does not
    exist yet (a sqlite file that does not exist is not created: nothing is written)."""
    uri = tracking_uri or spec.tracking.uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return None
    from mlflow import MlflowClient

    from .entities import mlflow_env_defaults
    mlflow_env_defaults()
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(spec.experiment)
    return exp.experiment_id if exp is not None and exp.lifecycle_stage != "deleted" else None


def sweep_runs_link(spec: SweepSpec, ui: str = UI, tracking_uri: str | None = None) -> str | None:
    """The runs page of the spec's experiment in the UI at `ui`, or None when it has no experiment yet."""
    eid = experiment_id(spec, tracking_uri)
    return runs_page(ui, eid) if eid is not None else None

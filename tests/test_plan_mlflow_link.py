"""The MLflow link to a sweep's runs page (issue 22 E): the experiment id from the tracking store, nothing created
where there is no store, and the parent run (the first row of that page) carrying the report's headline metrics."""
from __future__ import annotations

import json

from mlflow import MlflowClient

from cluster.spec.parse import parse_spec
from cluster.tracking.links import headline_view, sweep_runs_link
from cluster.tracking.report import log_report
from jobs.mlflow_link import main

SPEC = "name: linked\ntracking: {{uri: '{uri}'}}\ngroups: [{{kind: noop, grid: {{x: [1]}}}}]\n"


def test_no_store_no_link_and_nothing_written(tmp_path, capsys):
    db = tmp_path / "none.db"
    spec = parse_spec(SPEC.format(uri=f"sqlite:///{db}"))
    assert sweep_runs_link(spec) is None and not db.exists()
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(uri=f"sqlite:///{db}"))
    assert main([str(path)]) == 0
    assert "no experiment 'htmc-linked'" in capsys.readouterr().out and not db.exists()


def test_runs_page_of_the_experiment_with_the_parents_headline_metrics(tmp_path, mlflow_db, capsys):
    from conftest import fresh_mlflow_db
    uri = fresh_mlflow_db(mlflow_db, tmp_path / "m.db")
    spec = parse_spec(SPEC.format(uri=uri))
    c = MlflowClient(tracking_uri=uri)
    c.create_experiment("some-other-experiment")           # so that the sweep's id is not the first one
    eid = c.create_experiment(spec.experiment)
    parent = c.create_run(eid, run_name="linked-1", tags={"htmc.role": "parent", "htmc.sweep": "linked"}).info.run_id
    assert sweep_runs_link(spec) == f"http://127.0.0.1:5000/#/experiments/{eid}/runs"    # no report yet: no view
    assert sweep_runs_link(spec, ui="http://h:8080/") == f"http://h:8080/#/experiments/{eid}/runs"
    headline = {"sandwich_frac_within_square": 0.75, "rho_block_path/sin": 1.5}
    assert log_report(spec, [], metrics=headline) == parent   # onto the parent run, not a new one
    (run,) = c.search_runs([eid], filter_string="tags.`htmc.role` = 'parent'")
    assert run.data.metrics == headline
    # the shared view that makes the runs table show them as columns (MLflow shows no metric column by default)
    view = json.loads(c.get_experiment(eid).tags["mlflow.sharedViewState.htmc-headline"])
    assert view == {"selectedColumns": ["attributes.`Source`", "metrics.`sandwich_frac_within_square`",
                                        "metrics.`rho_block_path/sin`"]}
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(uri=uri))
    assert main([str(path)]) == 0
    assert capsys.readouterr().out.strip() == \
        f"MLflow runs of sweep 'linked': http://127.0.0.1:5000/#/experiments/{eid}/runs?viewStateShareKey=htmc-headline"


def test_the_view_keeps_within_mlflows_tag_limit():
    view = json.loads(headline_view(f"metric_{i:04d}_" + "x" * 40 for i in range(2000)))
    cols = view["selectedColumns"]
    assert cols[:2] == ["attributes.`Source`", "metrics.`metric_0000_" + "x" * 40 + "`"]
    assert len(json.dumps(view)) <= 19_000 < len(json.dumps({"selectedColumns": cols + cols[-1:]}))
    assert len(cols) == 288           # as many as fit under MLflow's 20,000-character limit on a tag's value

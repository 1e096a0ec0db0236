"""MLflow request batching, parameter flattening and secret masking (no server needed)."""
from mlflow.entities import Metric, Param, RunTag

from cluster.spec.parse import parse_spec
from cluster.tracking.entities import batches, flatten_params, record_metrics
from cluster.tracking.tracker import default_artifact_location


def test_batches_respect_mlflow_limits():
    ms = [Metric(f"m{i}", float(i), 0, 0) for i in range(2500)]
    ps = [Param(f"p{i}", "v" * 50) for i in range(250)]
    ts = [RunTag(f"t{i}", "x") for i in range(150)]
    out = list(batches(ms, ps, ts))
    assert sum(len(b[0]) for b in out) == 2500 and sum(len(b[1]) for b in out) == 250
    assert sum(len(b[2]) for b in out) == 150
    for bm, bp, bt in out:
        assert len(bp) <= 100 and len(bt) <= 100 and len(bm) <= 1000 and len(bm) + len(bp) + len(bt) <= 1000
    big_p = [Param(f"p{i}", "v" * 6000) for i in range(100)]   # 0.6 MB of params + 0.8 MB of tags: within the
    big_t = [RunTag(f"t{i}", "v" * 8000) for i in range(100)]  # count limits, but over 1 MB: split by size
    out = list(batches([], big_p, big_t))
    assert len(out) >= 2 and sum(len(b[1]) + len(b[2]) for b in out) == 200
    assert all(sum(len(e.value) for e in b[1] + b[2]) < 1_000_000 for b in out)


def test_flatten_params_masks_secrets_and_truncates():
    flat = flatten_params({"function_params": {"freq": 2}, "methods": ["abc"], "aws_secret_access_key": "x",
                           "nested": {"api_token": "y"}, "long": "z" * 7000})
    assert flat["function_params.freq"] == "2" and flat["methods"] == '["abc"]'
    assert flat["aws_secret_access_key"] == "***" and flat["nested.api_token"] == "***"
    assert len(flat["long"]) == 6000


def test_record_metrics_are_finite_numbers_only():
    m = record_metrics({"kind": "resnet_train", "sup_error": 0.5, "nnz": 7, "rms_error": float("nan"),
                        "norm_l1": 3.0, "norm_l1_version": "1", "wall_s": 1.0, "optimal": True, "status": "ok"})
    assert m == {"sup_error": 0.5, "nnz": 7.0, "norm_l1": 3.0, "wall_s": 1.0}


def test_artifacts_default_beside_a_sqlite_database(tmp_path):
    s = parse_spec("name: a\ngroups:\n  - kind: noop\n", "x")
    assert default_artifact_location(f"sqlite:///{tmp_path}/m.db", s) == str(tmp_path / "mlartifacts" / "htmc-a")
    assert default_artifact_location("http://mlflow:5000", s) is None
    s2 = parse_spec("name: a\ntracking: {artifact_location: s3://b/art}\ngroups:\n  - kind: noop\n", "x")
    assert default_artifact_location("sqlite:///m.db", s2) == "s3://b/art"


def test_experiments_open_on_their_runs_in_the_mlflow_ui(mlflow_db):
    """MLflow 3 shows an experiment without mlflow.experimentKind on its GenAI trace overview (issue 14): new
    experiments get the tag, and an existing untagged one gets it on the next execution."""
    from mlflow import MlflowClient
    from cluster.tracking.tracker import Tracker
    client = MlflowClient(tracking_uri=mlflow_db["uri"])
    old_id = client.create_experiment("htmc-untagged")
    for name in ("kindtag", "untagged"):
        spec = parse_spec(f"name: {name}\ntracking: {{uri: '{mlflow_db['uri']}'}}\ngroups:\n  - kind: noop\n", "x")
        Tracker(spec).start(params={}, tags={}, run_name="t")
        exp = client.get_experiment_by_name(f"htmc-{name}")
        assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment_by_name("htmc-untagged").experiment_id == old_id

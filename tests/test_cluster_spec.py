"""Sweep specs: schema, expansion, task keys, validation before anything runs. No Ray here."""
import hashlib
import json
import textwrap

import pytest

from cluster.spec.grid import expand, group_param_sets
from htmc.records import canonical_json, task_key
from cluster.spec.model import SpecError
from cluster.spec.parse import load_spec, parse_spec
from cluster.spec.redact import redact, redact_uri


def spec(text: str, **kw):
    return parse_spec(textwrap.dedent(text), "test.yaml", **kw)


BASE = """
name: t
results: {uri: /tmp/htmc-results-unused}
groups:
  - kind: circuit_search
    params: {methods: [abc], thorough: false}
    grid: {function: [sin, exp], eps: [0.1, 0.05]}
"""


def test_task_key_is_sha256_of_canonical_json():
    params = {"b": 1.0, "a": [1, 2], "c": {"y": 0.5, "x": "s"}}
    blob = json.dumps({"kind": "k", "kind_version": "1", "params": {"a": [1, 2], "b": 1, "c": {"x": "s", "y": 0.5}}},
                      sort_keys=True, separators=(",", ":"))
    assert task_key("k", "1", params) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    # integral floats and ints are the same work; key order does not matter
    assert task_key("k", "1", {"eps": 1.0, "z": 2}) == task_key("k", "1", {"z": 2, "eps": 1})
    assert task_key("k", "1", {"eps": 0.1}) != task_key("k", "2", {"eps": 0.1})
    assert canonical_json({"x": 3.0}) == '{"x":3}'


def test_expansion_is_the_cartesian_product_with_nested_parameters():
    s = spec("""
        name: t
        groups:
          - kind: circuit_search
            params: {methods: [abc], thorough: false, eps: 0.1}
            grid:
              function: holder_random
              function_params: {d: 1, s: [0.5, 1.0], seed: [0, 1, 2]}
          - kind: circuit_search
            params: {eps: 0.1, thorough: false}
            grid:
              function: sin
              methods: [[abc], [abc, table]]
        """)
    sets = group_param_sets(s.groups[0])
    assert len(sets) == 6
    assert {(p["function_params"]["s"], p["function_params"]["seed"]) for p in sets} == \
        {(a, b) for a in (0.5, 1.0) for b in (0, 1, 2)}
    assert all(p["methods"] == ["abc"] for p in sets)          # params: lists are values, not alternatives
    assert [p["methods"] for p in group_param_sets(s.groups[1])] == [["abc"], ["abc", "table"]]
    tasks = expand(s)
    assert len(tasks) == 8 and len({t.key for t in tasks}) == 8
    assert {t.group for t in tasks} == {"circuit_search-0", "circuit_search-1"}
    # canonical params carry the kind's defaults
    assert tasks[0].params["domain"] == "box" and tasks[0].params["budget_s"] == 60.0


def test_list_of_mappings_gives_alternatives_each_expanded():
    s = spec("""
        name: t
        groups:
          - kind: circuit_search
            params: {eps: 0.1, methods: [abc]}
            grid:
              function: holder_random
              function_params: [{d: 1, s: [0.5, 1.0]}, {d: 2, s: 1.0}]
        """)
    got = sorted((t.params["function_params"]["d"], t.params["function_params"]["s"]) for t in expand(s))
    assert got == [(1, 0.5), (1, 1.0), (2, 1.0)]


def test_same_spec_same_keys_and_extension_adds_only_new_keys():
    a = [t.key for t in expand(spec(BASE))]
    assert a == [t.key for t in expand(spec(BASE))]
    assert len(a) == 4
    b = [t.key for t in expand(spec(BASE.replace("eps: [0.1, 0.05]", "eps: [0.1, 0.05, 0.025]")))]
    assert set(a) < set(b) and len(set(b) - set(a)) == 2
    # groups reordered or renamed: same work, same keys
    c = [t.key for t in expand(spec(BASE.replace("function: [sin, exp]", "function: [exp, sin]")))]
    assert set(c) == set(a)


def test_yaml_1_2_scalars_off_is_a_string_and_1e3_a_float():
    s = spec(BASE + "tracking: {children: off}\n")
    assert s.tracking.children == "off"


def test_yaml_floats_in_exponent_form_are_numbers():
    s = spec("""
        name: t
        groups:
          - kind: resnet_train
            grid: {lam: [1e-3, 1.0e-4], steps: 20}
        """)
    assert sorted(t.params["lam"] for t in expand(s)) == [1e-4, 1e-3]


@pytest.mark.parametrize("text,needles", [
    # a misspelled key: named, with its location and line, and a suggestion
    (BASE.replace("grid: {function", "gird: {function"), ["groups[0].gird", "line 7", "did you mean 'grid'"]),
    (BASE.replace("eps: [0.1", "epss: [0.1"), ["groups[0].grid.epss", "unknown parameter 'epss'",
                                               "did you mean 'eps'"]),
    (BASE.replace("results: {uri", "result: {uri"), ["result", "line 3", "did you mean 'results'"]),
    (BASE + "tracking: {childern: task}\n", ["tracking.childern", "did you mean 'children'"]),
    (BASE + "dispatch: {max_attempts: 0}\n", ["dispatch.max_attempts", "must be >= 1, got 0"]),
    # unknown function, negative eps, bad method, unknown kind, bad norm/reg
    (BASE.replace("[sin, exp]", "[sin, sine]"), ["groups[0]", "unknown target function 'sine'",
                                                   "did you mean 'sin'"]),
    (BASE.replace("eps: [0.1, 0.05]", "eps: [0.1, -0.05]"), ["groups[0]", "eps must be a number >= 0",
                                                             "-0.05"]),
    (BASE.replace("methods: [abc]", "methods: [abd]"), ["groups[0]", "abd"]),
    (BASE.replace("kind: circuit_search", "kind: circuit_serch"), ["groups[0].kind", "did you mean 'circuit_search'"]),
    ("name: t\ngroups:\n  - kind: resnet_train\n    grid: {reg: [l1, block_paht]}\n", ["block_paht",
                                                                                      "block_path"]),
    ("name: t\ngroups:\n  - kind: circuit_search\n    grid: {function: holder_random, eps: 0.1,\n"
     "      function_params: {s: [0.5], sede: [1]}}\n", ["sede", "holder_random"]),
    # structure
    ("name: bad name\ngroups: []\n", ["name", "letters, digits"]),
    ("name: t\ngroups: []\n", ["groups", "non-empty"]),
    (BASE.replace("name: t", "name: t\nname: u"), ["duplicate key 'name'"]),
    (BASE + "resources: {circuit_search: {num_cpus: -1}}\n", ["resources.circuit_search.num_cpus", ">= 0"]),
    (BASE + "resources: {circuit_search: {num_gpu: 1}}\n", ["resources.circuit_search.num_gpu",
                                                           "did you mean 'num_gpus'"]),
    (BASE.replace("{uri: /tmp/htmc-results-unused}", "{uri: /tmp/x, aws_secret_access_key: abc}"),
     ["results.aws_secret_access_key", "secrets do not belong in a spec"]),
    (BASE.replace("{uri: /tmp/htmc-results-unused}", "{uri: 'gs://bucket/x'}"), ["results.uri", "s3://"]),
    ("name: t\ngroups:\n  - kind: resnet_train\n    grid: {device: cuda}\n", ["num_gpus > 0"]),
    ("name: t\ngroups:\n  - kind: noop\n    grid: {x: []}\n", ["groups[0].grid.x", "empty list"]),
])
def test_bad_specs_fail_with_a_clear_message(text, needles):
    with pytest.raises(SpecError) as e:
        parse_spec(text, "bad.yaml")
    msg = str(e.value)
    assert msg.startswith("bad.yaml") or msg.startswith("bad.yaml:")
    for n in needles:
        assert n in msg, (n, msg)


def test_gpu_device_validates_on_a_machine_without_cuda():
    s = spec("""
        name: t
        resources: {resnet_train: {num_cpus: 1, num_gpus: 0.25}}
        groups:
          - kind: resnet_train
            grid: {device: cuda, seed: [0, 1]}
        """)
    tasks = expand(s)
    assert [t.params["device"] for t in tasks] == ["cuda", "cuda"]
    assert s.resources_for("resnet_train").num_gpus == 0.25


def test_overrides_and_defaults(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    s = spec(BASE, results="s3://bucket/prefix", tracking_uri="sqlite:///x.db")
    assert s.results.uri == "s3://bucket/prefix" and s.results.endpoint_url == "http://127.0.0.1:9"
    assert s.tracking.uri == "sqlite:///x.db" and s.tracking.children == "task"
    assert s.experiment == "htmc-t"
    assert s.dispatch.batch_for("resnet_train") == 64 and s.dispatch.batch_for("circuit_search") == 1
    assert spec(BASE).tracking.uri == "sqlite:///mlflow.db"
    assert s.spec_hash != spec(BASE).spec_hash and spec(BASE).spec_hash == spec(BASE).spec_hash


def test_redaction():
    assert redact_uri("postgresql://me:hunter2@db:5432/mlflow") == "postgresql://me:***@db:5432/mlflow"
    assert redact_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert redact({"aws_secret_access_key": "x", "n": {"token": "y", "ok": 1}}) == \
        {"aws_secret_access_key": "***", "n": {"token": "***", "ok": 1}}


def test_shipped_specs_validate(monkeypatch):
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    demo = load_spec(root / "sweeps" / "demo.yaml")
    kinds = {t.kind for t in expand(demo)}
    assert {"circuit_ladder", "resnet_train", "resnet_compile"} <= kinds
    assert demo.resources_for("resnet_compile").num_gpus == 0
    assert all(r.num_gpus == 0 for r in demo.resources.values())   # runs on a laptop without a GPU
    paper = load_spec(root / "sweeps" / "paper.yaml")
    ptasks = expand(paper)
    assert len(ptasks) > 1000 and paper.resources_for("resnet_train").num_gpus > 0
    nets = [t for t in ptasks if t.kind == "resnet_train"]
    assert sorted(t.params["train"]["seed"] for t in ptasks if t.kind == "resnet_compile") == \
        sorted(t.params["seed"] for t in nets)               # one compile task per trained net
    assert paper.resources_for("resnet_compile").num_gpus == 0
    assert paper.tracking.children == "group"


def test_submission_entrypoint_and_runtime_env(tmp_path, monkeypatch):
    from pathlib import Path

    from cluster.dispatch.submission import build_submission
    from cluster.service import submission_base
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-forwarded")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    demo = load_spec(root / "sweeps" / "demo.yaml", results="s3://bucket/p", tracking_uri="http://mlflow:5000")
    entry, env = build_submission(demo, str(root / "sweeps" / "demo.yaml"), working_dir=str(root),
                                  results="s3://bucket/p", tracking_uri="http://mlflow:5000")
    assert entry == ("python -m jobs.sweep sweeps/demo.yaml --results s3://bucket/p --tracking-uri "
                     "http://mlflow:5000 --no-progress")
    assert env["working_dir"] == str(root) and ".venv" in env["excludes"] and ".git" in env["excludes"]
    assert env["env_vars"]["AWS_REGION"] == "eu-west-1" and "AWS_SECRET_ACCESS_KEY" not in env["env_vars"]
    _, env2 = build_submission(demo, str(root / "sweeps" / "demo.yaml"), working_dir=str(root),
                               forward_credentials=True)
    assert env2["env_vars"]["AWS_SECRET_ACCESS_KEY"] == "not-forwarded"
    # a spec outside the working dir travels in the job's environment
    outside = tmp_path / "s.yaml"
    outside.write_text((root / "sweeps" / "demo.yaml").read_text())
    spec = load_spec(outside, results="/abs/results", tracking_uri="sqlite:////abs/m.db")
    entry, env = build_submission(spec, str(outside), working_dir=str(root))
    assert "--spec-from-env HTMC_SWEEP_SPEC_YAML" in entry and env["env_vars"]["HTMC_SWEEP_SPEC_YAML"] == spec.text
    assert submission_base(spec) == f"htmc-demo-{spec.spec_hash}"
    assert submission_base(spec, "2026-11-27") == f"htmc-demo-{spec.spec_hash}-2026-11-27"
    # relative locations would land in the job's temporary working dir
    with pytest.raises(ValueError, match="relative path"):
        build_submission(load_spec(root / "sweeps" / "demo.yaml"), str(root / "sweeps" / "demo.yaml"),
                         working_dir=str(root))
    with pytest.raises(ValueError, match="relative sqlite"):
        build_submission(load_spec(outside, results="/abs/r"), str(outside), working_dir=str(root))

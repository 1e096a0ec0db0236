"""The sweep service end to end on real local Ray, real MLflow (sqlite) and moto's S3 server on 127.0.0.1.

One Ray head for the whole session (conftest.ray_head); drivers are this test process, or subprocesses where a
driver must be killed. Task counts are small; every test asserts real counts and contents.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cluster.service import run_sweep, submission_base, sweep_status, sync_mlflow
from cluster.spec.grid import expand
from cluster.spec.parse import load_spec
from cluster.store.core import open_store, StoreConfig
from conftest import DRIVERS, NOOP_PLUGIN, driver_env

REPO = Path(__file__).resolve().parent.parent


def write_spec(tmp_path: Path, body: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def mlflow_runs(uri: str, experiment: str):
    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return c, None, []
    return c, exp, c.search_runs([exp.experiment_id], max_results=5000)


def quiet(msg):  # run_sweep's say=
    pass


# ----------------------------------------------------------------------------------------------------------- e2e
def test_end_to_end_on_s3_with_mlflow(ray_connected, s3_endpoint, s3_bucket, mlflow_db, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cr3t-never-logged")   # must not show up anywhere
    path = write_spec(tmp_path, f"""
        name: e2e
        results: {{uri: "s3://{s3_bucket}/sweeps", endpoint_url: "{s3_endpoint}", region: us-east-1}}
        tracking: {{uri: "{mlflow_db['uri']}", artifact_location: "{mlflow_db['artifacts']}/e2e", children: task}}
        resources:
          circuit_search: {{num_cpus: 1}}
          resnet_train: {{num_cpus: 1, num_gpus: 0.5}}
          noop: {{num_cpus: 0.5}}
        dispatch: {{batch_size: {{resnet_train: 4}}}}
        groups:
          - kind: circuit_search
            params: {{function: sin, eps: 0.1, methods: [abc], thorough: false}}
          - kind: resnet_train
            params: {{steps: 20, width: 8, rank: 8, n_train: 256}}
            grid: {{seed: [0, 1, 2, 3], lam: [0.0, 1.0e-3]}}
          - kind: noop
            grid: {{x: [1, 2, 3]}}
        """)
    spec = load_spec(path)
    keys = {t.key: t for t in expand(spec)}
    assert len(keys) == 12
    summary = run_sweep(spec, progress=False, say=quiet)
    assert (summary.scheduled, summary.done, summary.failed, summary.untracked) == (12, 12, 0, 0)

    store = open_store(StoreConfig.from_spec(spec.results))
    st = store.statuses("e2e")
    assert set(st) == set(keys) and {s for _, s in st.values()} == {"ok"}
    assert sum(len(v) for v in store.list_keys("e2e").values()) == 12          # one file per task, no more
    table = store.load("e2e")
    rows = {r["task_key"]: r for r in table.to_pylist()}
    for k, t in keys.items():
        r = rows[k]
        assert r["kind"] == t.kind and json.loads(r["params_json"]) == json.loads(t.params_json)
        assert r["execution_id"] == summary.execution_id and r["spec_hash"] == spec.spec_hash
        assert r["attempt"] == 1 and r["wall_s"] > 0 and r["finished_at"] >= r["started_at"]
        assert r["torch_version"] and r["pyarrow_version"] and r["python_version"]
    trains = [r for r in rows.values() if r["kind"] == "resnet_train"]
    assert {r["batch_size"] for r in trains} == {4}                           # 8 nets, 2 batched computations
    assert all(r["num_gpus"] == 0.5 and abs(r["gpu_seconds"] - 0.5 * r["wall_s"]) < 1e-9 for r in trains)
    assert all(r["sup_error"] is not None and r["norm_l1"] > 0 for r in trains)
    circ = next(r for r in rows.values() if r["kind"] == "circuit_search")
    assert circ["gates"] > 0 and circ["verified"] is True and circ["max_error"] <= 0.1
    assert sorted(r["value"] for r in rows.values() if r["kind"] == "noop") == [2.0, 4.0, 6.0]

    # MLflow: one parent for this execution, one child per task, matched by task_key
    client, exp, runs = mlflow_runs(mlflow_db["uri"], "htmc-e2e")
    parents = [r for r in runs if r.data.tags.get("htmc.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("htmc.role") == "task"]
    assert len(parents) == 1 and parents[0].info.run_id == summary.parent_run_id
    p = parents[0]
    assert p.info.status == "FINISHED" and p.data.tags["htmc.spec_hash"] == spec.spec_hash
    assert p.data.params["n_scheduled"] == "12" and "torch_version" in p.data.params
    assert p.data.metrics["done"] == 12 and p.data.metrics["failed"] == 0 and p.data.metrics["pending"] == 0
    assert "spec.yaml" in [a.path for a in client.list_artifacts(p.info.run_id)]
    assert len(children) == 12
    assert {c.data.tags["htmc.task_key"] for c in children} == set(keys)
    assert all(c.data.tags["mlflow.parentRunId"] == p.info.run_id for c in children)
    assert all(c.data.tags["htmc.status"] == "ok" and c.info.status == "FINISHED" for c in children)
    tr = next(c for c in children if c.data.tags["htmc.kind"] == "resnet_train")
    assert tr.data.params["width"] == "8" and "sup_error" in tr.data.metrics and "norm_l1" in tr.data.metrics
    everything = " ".join(json.dumps([r.data.params, r.data.tags]) for r in runs)
    assert "s3cr3t-never-logged" not in everything and os.environ["AWS_SECRET_ACCESS_KEY"] not in everything

    # a report's files attach to the execution's parent run (jobs/analyze.py uses this)
    from cluster.tracking.report import log_report
    (tmp_path / "report.html").write_text("<html></html>")
    rid = log_report(spec, {"report": tmp_path / "report.html"}, metrics={"analysis_records": 12})
    assert rid == p.info.run_id
    assert [a.path for a in client.list_artifacts(rid, "report")] == ["report/report.html"]
    assert client.get_run(rid).data.metrics["analysis_records"] == 12

    # status per kind, and a second run does nothing
    status = sweep_status(spec)["kinds"]
    assert status["resnet_train"] == {"ok": 8, "failed": 0, "missing": 0, "other": 0, "total": 8}
    again = run_sweep(spec, progress=False, say=quiet)
    assert (again.already_ok, again.scheduled, again.done) == (12, 0, 0)
    assert len(mlflow_runs(mlflow_db["uri"], "htmc-e2e")[2]) == 13


# ----------------------------------------------------------------------------------------------------------- extend
def test_extending_a_grid_runs_only_the_new_tasks(ray_connected, mlflow_db, tmp_path, capsys):
    body = f"""
        name: extend
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: off}}
        dispatch: {{batch_size: {{noop: 2}}}}
        groups:
          - kind: noop
            grid: {{x: XS}}
        """
    first = run_sweep(load_spec(write_spec(tmp_path, body.replace("XS", "[1, 2, 3]"))), progress=False, say=quiet)
    assert (first.scheduled, first.done) == (3, 3)
    spec2 = load_spec(write_spec(tmp_path, body.replace("XS", "[1, 2, 3, 4, 5]"), "spec2.yaml"))
    second = run_sweep(spec2, progress=False, say=quiet)
    assert (second.already_ok, second.scheduled, second.done) == (3, 2, 2)
    rows = open_store(StoreConfig.from_spec(spec2.results)).load("extend").to_pylist()
    assert len(rows) == 5
    by_exec = {}
    for r in rows:
        by_exec.setdefault(r["execution_id"], set()).add(json.loads(r["params_json"])["x"])
    assert by_exec == {first.execution_id: {1, 2, 3}, second.execution_id: {4, 5}}
    _, _, runs = mlflow_runs(mlflow_db["uri"], "htmc-extend")
    assert len(runs) == 2 and all(r.data.tags["htmc.role"] == "parent" for r in runs)   # children: off

    # `htmc sweep status` through the CLI wiring
    from jobs.sweep_cli import add_sweep_commands
    parser = argparse.ArgumentParser(prog="htmc")
    add_sweep_commands(parser.add_subparsers(dest="group"))
    args = parser.parse_args(["sweep", "status", str(tmp_path / "spec.yaml"), "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kinds"]["noop"] == {"ok": 3, "failed": 0, "missing": 0, "other": 2, "total": 3}
    args = parser.parse_args(["sweep", "status", str(tmp_path / "spec2.yaml")])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "noop" in table and " 5 " in table


def test_in_flight_work_is_bounded(ray_connected, mlflow_db, tmp_path):
    spec = load_spec(write_spec(tmp_path, f"""
        name: bounded
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: off}}
        dispatch: {{max_actors: {{noop: 2}}, in_flight_per_actor: 2}}
        groups:
          - kind: noop
            grid: {{x: {list(range(24))}, sleep_s: 0.05}}
        """))
    seen, holder, stop = [], {}, threading.Event()

    def sample():
        while not stop.is_set():
            d = holder.get("d")
            if d is not None:
                seen.append(len(d._ref_owner))
            time.sleep(0.002)
    th = threading.Thread(target=sample)
    th.start()
    try:
        s = run_sweep(spec, progress=False, say=quiet, on_dispatcher=lambda d: holder.setdefault("d", d))
    finally:
        stop.set()
        th.join()
    assert s.done == 24
    assert max(seen) == 4       # 2 actors x 2 calls, never the whole sweep


# ----------------------------------------------------------------------------------------------------------- faults
def test_actor_killed_mid_task_is_retried_and_recorded_once(ray_connected, mlflow_db, tmp_path):
    import ray
    marker = tmp_path / "started"
    spec = load_spec(write_spec(tmp_path, f"""
        name: actordeath
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: task}}
        dispatch: {{max_actors: {{noop: 1}}, max_attempts: 3, in_flight_per_actor: 1}}
        groups:
          - kind: noop
            name: slow
            params: {{x: 1, sleep_s: 4, touch: "{marker}"}}
          - kind: noop
            name: quick
            grid: {{x: [2, 3]}}
        """))
    holder = {}
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("s", run_sweep(
        spec, progress=False, say=quiet, on_dispatcher=lambda d: holder.setdefault("d", d))))
    t.start()
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline and t.is_alive(), "the slow task never started"
        time.sleep(0.05)
    names = holder["d"].actor_names()
    assert len(names) == 1
    ray.kill(ray.get_actor(names[0]), no_restart=False)       # mid-task: the task sleeps 4 s
    t.join(180)
    assert not t.is_alive()
    s = out["s"]
    assert (s.scheduled, s.done, s.failed) == (3, 3, 0)
    rows = open_store(StoreConfig.from_spec(spec.results)).load("actordeath").to_pylist()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    slow = next(r for r in rows if r["group"] == "slow")
    assert slow["attempt"] == 2 and slow["slept_s"] >= 4
    _, _, runs = mlflow_runs(mlflow_db["uri"], "htmc-actordeath")
    assert sorted(r.data.tags["htmc.task_key"] for r in runs if r.data.tags["htmc.role"] == "task") == \
        sorted(r["task_key"] for r in rows)                     # one child run per task, none twice


def test_failed_tasks_are_recorded_and_rerun_with_retry_failed(ray_connected, mlflow_db, tmp_path):
    flag = tmp_path / "flag"
    spec = load_spec(write_spec(tmp_path, f"""
        name: retry
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: task}}
        groups:
          - kind: noop
            params: {{fail_if_missing: "{flag}"}}
            grid: {{x: [1, 2]}}
          - kind: noop
            grid: {{x: [3]}}
        """))
    s1 = run_sweep(spec, progress=False, say=quiet)
    assert (s1.done, s1.failed) == (1, 2)
    store = open_store(StoreConfig.from_spec(spec.results))
    failed = [r for r in store.load("retry").to_pylist() if r["status"] == "failed"]
    assert len(failed) == 2 and all("FileNotFoundError: noop task needs" in r["error"] for r in failed)
    assert sweep_status(spec)["kinds"]["noop"] == {"ok": 1, "failed": 2, "missing": 0, "other": 0, "total": 3}
    flag.touch()
    assert run_sweep(spec, progress=False, say=quiet).scheduled == 0          # failed are not retried by default
    s3 = run_sweep(spec, retry_failed=True, progress=False, say=quiet)
    assert (s3.scheduled, s3.done, s3.failed) == (2, 2, 0)
    rows = store.load("retry").to_pylist()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    _, _, runs = mlflow_runs(mlflow_db["uri"], "htmc-retry")
    tasks = [r for r in runs if r.data.tags["htmc.role"] == "task"]
    assert sorted(r.data.tags["htmc.status"] for r in tasks) == ["failed", "failed", "ok", "ok", "ok"]


def test_mlflow_down_then_sync_backfills_once(ray_connected, mlflow_db, tmp_path, capsys):
    from conftest import free_port
    dead = f"http://user:pw-not-shown@127.0.0.1:{free_port()}"
    path = write_spec(tmp_path, f"""
        name: syncme
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{dead}", experiment: htmc-syncme, artifact_location: "{mlflow_db['artifacts']}/s"}}
        groups:
          - kind: noop
            grid: {{x: [1, 2, 3, 4]}}
        """)
    s = run_sweep(load_spec(path), progress=False, say=quiet)
    err = capsys.readouterr().err
    assert (s.done, s.parent_run_id, s.untracked) == (4, None, 4)
    assert "MLflow at http://user:***@127.0.0.1" in err and "sync-mlflow" in err and "pw-not-shown" not in err
    assert len(open_store(StoreConfig(str(tmp_path / "results"))).list_keys("syncme")["noop"]) == 4
    spec_up = load_spec(path, tracking_uri=mlflow_db["uri"])                  # MLflow is back
    first = sync_mlflow(spec_up, say=quiet)
    assert (first["records"], first["added"], first["already_tracked"]) == (4, 4, 0)
    second = sync_mlflow(spec_up, say=quiet)
    assert (second["added"], second["already_tracked"]) == (0, 4)
    _, _, runs = mlflow_runs(mlflow_db["uri"], "htmc-syncme")
    kids = [r for r in runs if r.data.tags["htmc.role"] == "task"]
    assert len(kids) == 4 and all(r.data.tags["mlflow.parentRunId"] == first["parent_run_id"] for r in kids)
    assert all(r.data.metrics["value"] == 2 * float(r.data.params["x"]) for r in kids)


# ----------------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("edit,needle", [
    (("grid: {x: [1, 2]}", "gird: {x: [1, 2]}"), "groups[0].gird (line 8): unknown key 'gird'"),
    (("kind: noop", "kind: circuit_search"), "unknown target function 'sine'"),
    (("kind: noop", "kind: circuit_search"), "eps must be a number >= 0"),
    (("results: {uri: RESULTS}", 'results: {uri: "s3://bucket/x", endpoint_url: "http://127.0.0.1:DEADPORT"}'),
     "unreachable"),
])
def test_bad_input_errors_before_anything_starts(ray_connected, mlflow_db, tmp_path, capsys, edit, needle):
    import ray

    from conftest import free_port
    from jobs.sweep import main
    body = f"""
        name: badinput
        results: {{uri: RESULTS}}
        tracking: {{uri: "{mlflow_db['uri']}"}}
        groups:
          - kind: noop
            name: g
            grid: {{x: [1, 2]}}
        """
    if edit[1] == "kind: circuit_search":    # a circuit group whose function or eps is wrong
        bad = "function: sine, eps: 0.1" if "sine" in needle else "function: sin, eps: -0.1"
        body = body.replace("grid: {x: [1, 2]}", f"grid: {{{bad}, methods: [[abc]]}}")
    body = body.replace(*edit).replace("RESULTS", str(tmp_path / "results")).replace("DEADPORT", str(free_port()))
    rc = main([str(write_spec(tmp_path, body)), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "htmc: error:" in err and needle in err and "Traceback" not in err
    assert not any("badinput" in n for n in ray.util.list_named_actors())
    assert not (tmp_path / "results").exists()
    assert mlflow_runs(mlflow_db["uri"], "htmc-badinput")[1] is None


# ----------------------------------------------------------------------------------------------------------- drivers
def _driver(spec: Path, env_extra: dict, log: Path, spare: int = 1) -> subprocess.Popen:
    """`python -m jobs.sweep SPEC --no-progress --plugin NOOP_PLUGIN` in its own session, SIGINT at its default,
    output in `log`: a warm driver of conftest.DRIVERS (its module imports done ahead, see WARM_DRIVER there)."""
    return DRIVERS.launch([str(spec), "--no-progress", "--plugin", NOOP_PLUGIN], driver_env(env_extra), log,
                          spare=spare)


# the first drivers of their kind in the session: warmed right after collection
DRIVERS.expect(__name__, "test_ctrl_c_stops_cleanly_and_marks_the_parent_killed", {}, head=True)
DRIVERS.expect(__name__, "test_sigkill_of_the_driver_then_resume_runs_only_what_is_missing",
               {"RAY_AUTH_MODE": "disabled"}, head=False)


def _wait_records(d: Path, n: int, proc: subprocess.Popen, timeout=180):
    deadline = time.monotonic() + timeout
    while len(list(d.glob("*.parquet"))) < n:
        assert proc.poll() is None, "driver exited early"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def test_ctrl_c_stops_cleanly_and_marks_the_parent_killed(ray_connected, mlflow_db, tmp_path):
    from conftest import kill_group
    path = write_spec(tmp_path, f"""
        name: interrupt
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}"}}
        groups:
          - kind: noop
            grid: {{x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], sleep_s: 1.0}}
        """)
    d = tmp_path / "results" / "sweep=interrupt" / "kind=noop"
    proc = _driver(path, {"RAY_ADDRESS": ray_connected["gcs"]}, tmp_path / "log")
    try:
        _wait_records(d, 2, proc)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    finally:
        kill_group(proc)
    log = (tmp_path / "log").read_text()
    assert rc == 130, log
    assert "interrupted" in log
    files = list(d.iterdir())
    assert 2 <= len(files) < 12
    assert all(f.suffix == ".parquet" and pq.read_table(f).column("status")[0].as_py() == "ok" for f in files)
    assert not list((tmp_path / "results" / "_tmp").iterdir())
    _, _, runs = mlflow_runs(mlflow_db["uri"], "htmc-interrupt")
    parent = [r for r in runs if r.data.tags["htmc.role"] == "parent"]
    assert len(parent) == 1 and parent[0].info.status == "KILLED"


def test_sigkill_of_the_driver_then_resume_runs_only_what_is_missing(ray_connected, mlflow_db, tmp_path):
    """The first driver runs its own in-process Ray (no RAY_ADDRESS) and is killed with SIGKILL; the resume runs
    here on the session's Ray."""
    from conftest import kill_group
    path = write_spec(tmp_path, f"""
        name: sigkill
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: off}}
        groups:
          - kind: noop
            grid: {{x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], sleep_s: 0.5}}
        """)
    d = tmp_path / "results" / "sweep=sigkill" / "kind=noop"
    proc = _driver(path, {"RAY_AUTH_MODE": "disabled"}, tmp_path / "log", spare=0)   # no later driver like it
    try:
        _wait_records(d, 3, proc, timeout=240)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        time.sleep(2.0)          # Ray's processes fate-share with the driver; give them a moment, then clean up
    finally:
        kill_group(proc)
    time.sleep(0.5)
    before = sorted(p.stem for p in d.glob("*.parquet"))
    assert 3 <= len(before) < 16, (tmp_path / "log").read_text()
    for f in d.iterdir():        # no partial record: every file in the dataset is complete
        assert f.suffix == ".parquet" and pq.read_table(f).num_rows == 1
    spec = load_spec(path)
    s = run_sweep(spec, progress=False, say=quiet)
    assert (s.already_ok, s.scheduled, s.done) == (len(before), 16 - len(before), 16 - len(before))
    assert not set(s.keys) & set(before)
    rows = open_store(StoreConfig.from_spec(spec.results)).load("sigkill").to_pylist()
    assert len(rows) == 16 and len({r["task_key"] for r in rows}) == 16
    assert sorted(json.loads(r["params_json"])["x"] for r in rows) == list(range(1, 17))
    assert sum(r["execution_id"] == s.execution_id for r in rows) == 16 - len(before)
    _, _, runs = mlflow_runs(mlflow_db["uri"], "htmc-sigkill")
    by_status = {r.info.status: r for r in runs}
    assert sorted(by_status) == ["FINISHED", "KILLED"]   # the resume closed the killed driver's parent run
    assert by_status["KILLED"].data.tags["htmc.closed_by"].startswith("a later execution")


def test_submit_to_a_ray_head_runs_to_success(ray_connected, mlflow_db, tmp_path, capsys):
    from jobs.sweep_cli import add_sweep_commands
    db = mlflow_db["uri"]          # sqlite:////abs/path: a job's working dir is a temporary copy
    path = write_spec(tmp_path, f"""
        name: submitted
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{db}"}}
        groups:
          - kind: noop
            grid: {{x: [1, 2, 3]}}
        """)
    parser = argparse.ArgumentParser(prog="htmc")
    add_sweep_commands(parser.add_subparsers(dest="group"))
    argv = ["sweep", "submit", str(path), "--job-server", ray_connected["dashboard"], "--working-dir", str(REPO),
            "--plugin", NOOP_PLUGIN, "--wait", "--timeout-s", "240", "--json"]
    args = parser.parse_args(argv)
    rc = args.func(args)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["status"] == "SUCCEEDED", out.get("logs_tail")
    assert out["submission_id"] == submission_base(load_spec(path))
    rows = open_store(StoreConfig(str(tmp_path / "results"))).load("submitted").to_pylist()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == {"submission_id": out["submission_id"], "status": "SUCCEEDED", "submitted": False}

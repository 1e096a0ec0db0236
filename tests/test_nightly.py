"""Nightly sweeps (issue 7): regression report, cost accounting, idempotent nights, the concurrency policy on a
real Ray job server, and the deployment examples in cluster/deploy/."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from analysis.costs import cost_table, cost_totals
from analysis.nightly import compare_nights
from cluster.nightly import deadline_passed, get_night, night_dates, put_night, replicate_sample, submit_night
from cluster.spec.model import SpecError
from cluster.spec.parse import load_spec, parse_spec
from cluster.store.core import open_store, StoreConfig
from conftest import NOOP_PLUGIN

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures"


def night(date: str) -> dict:
    return json.loads((FIX / "nightly" / f"{date}.json").read_text())


# ------------------------------------------------------------------------------------------- regression report
def test_planted_regressions_in_two_fixture_nights_are_flagged_and_nothing_else():
    """Night 2 moved sin's γ̂ (0.62 [0.55, 0.70] -> 0.81) and grew one gate count (89 -> 95); holder's γ̂ moved
    inside its interval, another gate count shrank and wall times grew by < 3x: none of those is a regression."""
    regs = compare_nights(night("2026-11-25"), night("2026-11-26"))
    assert [(r["kind"], r["key"]) for r in regs] == [("gamma_moved", "f-sin"),
                                                     ("gates_worse", "aaaaaaaaaaaaaaaa")]
    assert regs[0]["before"] == [0.55, 0.70] and regs[0]["after"] == 0.81
    assert (regs[1]["before"], regs[1]["after"]) == (89, 95) and "ε=0.05" in regs[1]["message"]
    assert compare_nights(night("2026-11-25"), night("2026-11-25")) == []
    assert compare_nights(None, night("2026-11-26")) == []


def test_new_failures_and_much_slower_tasks_are_flagged():
    prev = night("2026-11-25")
    cur = json.loads(json.dumps(prev))
    cur["status"]["bbbbbbbbbbbbbbbb"] = "failed"          # ok -> failed: new
    cur["status"]["dddddddddddddddd"] = "failed"          # no record before -> failed: new
    cur["wall_s"]["aaaaaaaaaaaaaaaa"] = 40.0              # 12 s -> 40 s: > 3x and > 1 s
    cur["wall_s"]["cccccccccccccccc"] = 1.4               # 0.5 s -> 1.4 s: < 1 s more, timing noise
    regs = compare_nights(prev, cur, slower_factor=3.0, slower_min_s=1.0)
    assert [(r["kind"], r["key"]) for r in regs] == [
        ("new_failure", "bbbbbbbbbbbbbbbb"), ("new_failure", "dddddddddddddddd"), ("slower", "aaaaaaaaaaaaaaaa")]
    assert compare_nights(prev, cur, slower_factor=4.0)[-1]["kind"] == "new_failure"


# ------------------------------------------------------------------------------------------------------- costs
def test_cost_totals_equal_the_sum_over_records():
    t = pq.read_table(FIX / "sweep_fixture.parquet")
    cpu_s, gpu_s = pc.sum(t["cpu_seconds"]).as_py(), pc.sum(t["gpu_seconds"]).as_py() or 0.0
    tot = cost_totals(t, cpu_hour=0.048, gpu_hour=2.5)
    assert tot["total"]["records"] == t.num_rows
    assert tot["total"]["cpu_hours"] == pytest.approx(cpu_s / 3600, rel=1e-12)
    assert tot["total"]["usd"] == pytest.approx(cpu_s / 3600 * 0.048 + gpu_s / 3600 * 2.5, rel=1e-12)
    kinds = t.column("kind").to_pylist()
    for kind, row in tot["per_kind"].items():
        mask = pc.equal(t["kind"], kind)
        assert row["records"] == kinds.count(kind)
        assert row["cpu_hours"] == pytest.approx(pc.sum(t.filter(mask)["cpu_seconds"]).as_py() / 3600, rel=1e-12)
    assert sum(r["usd"] for r in tot["per_night"].values()) == pytest.approx(tot["total"]["usd"], rel=1e-12)
    assert cost_totals(t)["total"]["usd"] is None            # unpriced: hours only, never a made-up price
    assert cost_table(t.slice(0, 0)).empty


# -------------------------------------------------------------------------------------------------------- spec
SPEC = """
name: nt
groups: [{kind: noop, grid: {x: [1, 2]}}]
"""


def test_nightly_and_costs_sections_are_typed():
    s = parse_spec(SPEC + "nightly: {replicates: 3, concurrency: replace, schedule: '03:30'}\n"
                   "costs: {cpu_hour: 0.05}\n")
    assert (s.nightly.replicates, s.nightly.concurrency, s.nightly.schedule_minutes) == (3, "replace", 210)
    assert (s.costs.cpu_hour, s.costs.gpu_hour) == (0.05, None)
    assert parse_spec(SPEC).spec_hash != s.spec_hash
    for bad, needle in [("nightly: {replicate: 3}", "did you mean 'replicates'"),
                        ("nightly: {concurrency: forbidd}", "did you mean 'forbid'"),
                        ("nightly: {schedule: '25:00'}", "HH:MM"),
                        ("nightly: {slower_factor: 0.5}", "must be > 1, got 0.5"),
                        ("costs: {cpu_hours: 1}", "did you mean 'cpu_hour'"),
                        ("costs: {gpu_hour: -1}", ">= 0")]:
        with pytest.raises(SpecError, match=re.escape(needle)):
            parse_spec(SPEC + bad + "\n")


def test_starting_deadline_counts_from_the_scheduled_time():
    s = parse_spec(SPEC + "nightly: {schedule: '02:00', starting_deadline_s: 3600}\n")
    at = lambda hm: datetime.fromisoformat(f"2026-11-27T{hm}:00+00:00")  # noqa: E731
    assert deadline_passed(s, "2026-11-27", at("02:59")) is None
    msg = deadline_passed(s, "2026-11-27", at("03:01"))
    assert "starting deadline" in msg and "2026-11-27 02:00" in msg
    assert deadline_passed(parse_spec(SPEC), "2026-11-27", at("23:59")) is None   # no deadline by default


def test_replicate_sample_is_fixed_by_the_date():
    s = parse_spec(SPEC + "nightly: {replicates: 3}\n")
    keys = [f"{i:016x}" for i in range(20)]
    a = replicate_sample(s, "2026-11-27", keys)
    assert len(a) == 3 and a == replicate_sample(s, "2026-11-27", reversed(keys))
    assert a != replicate_sample(s, "2026-11-28", keys) or a != replicate_sample(s, "2026-11-29", keys)
    assert len(replicate_sample(s, "2026-11-27", keys[:2])) == 2


def test_night_documents_roundtrip_on_s3(s3_endpoint, s3_bucket):
    store = open_store(StoreConfig(f"s3://{s3_bucket}/p", s3_endpoint, "us-east-1"))
    assert night_dates(store, "nt") == [] and get_night(store, "nt", "2026-11-26") is None
    put_night(store, "nt", "2026-11-26", night("2026-11-26"))
    put_night(store, "nt", "2026-11-25", night("2026-11-25"))
    assert night_dates(store, "nt") == ["2026-11-25", "2026-11-26"]
    assert get_night(store, "nt", "2026-11-26") == night("2026-11-26")
    assert store.sweeps() == []                      # night documents are not part of the Parquet dataset


# --------------------------------------------------------------------------------------- nights, end to end
def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def test_nights_run_missing_and_failed_keys_are_idempotent_and_flag_a_planted_regression(
        ray_connected, mlflow_db, tmp_path, capsys):
    from jobs.nightly import main as nightly_main
    gate = tmp_path / "gate"                      # the noop task fails until this file exists
    path = _write(tmp_path, f"""
        name: nightly-e2e
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", artifact_location: "{mlflow_db['artifacts']}/nightly-e2e",
                   children: off}}
        costs: {{cpu_hour: 0.05}}
        nightly: {{replicates: 1, slower_min_s: 600}}   # wall-time noise of real tasks under load is no
                                                        # regression here; test_new_failures_... tests slowness
        groups:
          - kind: circuit_ladder
            params: {{function: sin, methods: [table], eps0: 0.1, steps: 3}}
            grid: {{function_params: {{freq: [1, 2]}}}}
          - kind: noop
            grid: {{x: [7], fail_if_missing: "{gate}"}}
        """)
    argv = [str(path), "--here", "--no-progress", "--json", "--out"]
    store = open_store(StoreConfig(str(tmp_path / "results")))

    # night 1: everything is missing; the noop task fails (no previous night, so no regression)
    assert nightly_main(argv + [str(tmp_path / "n1"), "--date", "2026-11-25"]) == 0
    n1 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (n1["state"], n1["ran"], n1["failed"], n1["replicates"], n1["regressions"]) == ("done", 2, 1, 0, [])
    assert sorted(st for _, st in store.statuses("nightly-e2e").values()) == ["failed", "ok", "ok"]
    files = sorted(p.name for p in (tmp_path / "results").rglob("*.parquet"))

    # the same night again: a no-op that says so, nothing written
    assert nightly_main(argv + [str(tmp_path / "n1b"), "--date", "2026-11-25"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["state"] == "already_done" and "already ran" in again["message"]
    assert sorted(p.name for p in (tmp_path / "results").rglob("*.parquet")) == files

    # plant a regression: last night's γ̂ interval of sin(freq=1) lies above tonight's γ̂, and one of its gate
    # counts is smaller than what the store holds
    doc = get_night(store, "nightly-e2e", "2026-11-25")
    fk = next(k for k, f in doc["functions"].items() if "freq=1" in f["label"])
    g = doc["functions"][fk]["gamma"]
    doc["functions"][fk].update(gamma_lo=g + 0.5, gamma_hi=g + 0.6)
    gkey = sorted(doc["gates"])[0]
    doc["gates"][gkey] -= 5
    put_night(store, "nightly-e2e", "2026-11-25", doc)

    # night 2: the failed key is retried (now ok), one old key is replicated, the regressions give exit 1
    gate.write_text("")
    assert nightly_main(argv + [str(tmp_path / "n2"), "--date", "2026-11-26"]) == 1
    n2 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (n2["ran"], n2["failed"], n2["replicates"], n2["previous"]) == (1, 0, 1, "2026-11-25")
    assert [(r["kind"], r["key"]) for r in n2["regressions"]] == [("gamma_moved", fk),
                                                                  ("gates_worse", gkey.split("|")[0])]
    assert sorted(st for _, st in store.statuses("nightly-e2e").values()) == ["ok", "ok", "ok"]
    assert len(store.statuses("nightly-e2e.rep-2026-11-26")) == 1
    assert night_dates(store, "nightly-e2e") == ["2026-11-25", "2026-11-26"]
    html = (tmp_path / "n2" / "report.html").read_text()
    assert "2 regression(s)" in html and "outside last night" in html and "Costs" in html
    assert json.loads((tmp_path / "n2" / "regressions.json").read_text()) == n2["regressions"]

    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=mlflow_db["uri"])
    run = c.get_run(n2["run_id"])
    assert run.data.tags["htmc.regressions"] == "2" and run.data.tags["htmc.nightly"] == "2026-11-26"
    assert "outside last night" in run.data.tags["htmc.regression.0"]
    arts = {a.path for a in c.list_artifacts(n2["run_id"], "report")}
    assert {"report/report.html", "report/regressions.json", "report/night.json"} <= arts
    # the night's costs are the sum over its records
    recs = store.load("nightly-e2e")
    assert n2["costs"]["total"]["cpu_hours"] == pytest.approx(pc.sum(recs["cpu_seconds"]).as_py() / 3600)


# ------------------------------------------------------------------------------------- submission and policy
def _wait_status(client, sid: str, wanted, timeout=120.0) -> str:
    t0 = time.monotonic()
    while (st := str(client.get_job_status(sid).value)) not in wanted:
        assert time.monotonic() - t0 < timeout, f"job {sid} still {st}"
        time.sleep(0.5)
    return st


def test_submission_is_idempotent_and_the_concurrency_policy_applies(ray_connected, mlflow_db, tmp_path):
    from ray.job_submission import JobSubmissionClient
    path = _write(tmp_path, f"""
        name: nightly-policy
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: off}}
        groups:
          - kind: noop
            grid: {{x: [1], sleep_s: 120}}
        """)
    spec = load_spec(path)
    addr = ray_connected["dashboard"]
    client = JobSubmissionClient(addr)
    said: list[str] = []
    kw = dict(address=addr, working_dir=str(REPO), say=said.append, plugins=[NOOP_PLUGIN])
    first = submit_night(spec, str(path), date="2026-11-25", **kw)
    try:
        assert first == {"submission_id": "nightly-nightly-policy-2026-11-25", "submitted": True,
                         "status": "PENDING", "reason": None, "replaced": []}
        # the same night twice: the second call submits nothing and says so
        second = submit_night(spec, str(path), date="2026-11-25", **kw)
        assert (second["submitted"], second["reason"]) == (False, "exists") and "already submitted" in said[-1]

        # forbid while last night's job runs: nothing submitted, and the message says why
        _wait_status(client, first["submission_id"], ("RUNNING",))
        forbid = submit_night(spec, str(path), date="2026-11-26", policy="forbid", **kw)
        assert (forbid["submitted"], forbid["reason"]) == (False, "forbid")
        assert "nightly-nightly-policy-2026-11-25 of an earlier night is still RUNNING" in said[-1]
        assert "'forbid'" in said[-1]
        ids = {j.submission_id for j in client.list_jobs()}
        assert "nightly-nightly-policy-2026-11-26" not in ids

        # replace: the earlier night is stopped, tonight's is submitted
        rep = submit_night(spec, str(path), date="2026-11-26", policy="replace", **kw)
        assert rep["submitted"] and rep["replaced"] == ["nightly-nightly-policy-2026-11-25"]
        assert str(client.get_job_status(first["submission_id"]).value) == "STOPPED"
    finally:
        for sid in ("nightly-nightly-policy-2026-11-25", "nightly-nightly-policy-2026-11-26"):
            try:
                client.stop_job(sid)
                _wait_status(client, sid, ("SUCCEEDED", "FAILED", "STOPPED"), timeout=60)
            except Exception:  # noqa: BLE001  the job may not exist
                pass


def test_a_submitted_night_runs_to_success_in_its_ray_job(ray_connected, mlflow_db, tmp_path):
    from cluster.service import sweep_status
    path = _write(tmp_path, f"""
        name: nightly-job
        results: {{uri: "{tmp_path / 'results'}"}}
        tracking: {{uri: "{mlflow_db['uri']}", children: off}}
        costs: {{cpu_hour: 1.0}}
        groups:
          - kind: noop
            grid: {{x: [1, 2, 3]}}
        """)
    spec = load_spec(path)
    out = submit_night(spec, str(path), address=ray_connected["dashboard"], date="2026-11-27",
                       working_dir=str(REPO), wait=True, timeout_s=300, say=lambda m: None, plugins=[NOOP_PLUGIN])
    assert out["status"] == "SUCCEEDED", out.get("logs_tail")
    assert "night 2026-11-27 of 'nightly-job': 3 ok and 0 failed" in out["logs_tail"]
    store = open_store(StoreConfig.from_spec(spec.results))
    assert night_dates(store, "nightly-job") == ["2026-11-27"]
    st = sweep_status(spec)
    assert st["kinds"]["noop"]["ok"] == 3
    recs = store.load("nightly-job")
    assert st["costs"]["total"]["usd"] == pytest.approx(pc.sum(recs["cpu_seconds"]).as_py() / 3600 * 1.0)


def test_cli_exit_code_3_when_the_night_is_skipped(monkeypatch, capsys):
    """The CLI maps a skip (here: the starting deadline) to exit 3, so that cron mails it."""
    import jobs.nightly as jn
    monkeypatch.setattr("cluster.nightly.deadline_passed", lambda *a, **k: "too late")
    assert jn.main([str(REPO / "sweeps" / "demo.yaml"), "--job-server", "http://127.0.0.1:9", "--date",
                    "2026-11-20"]) == 3


# ------------------------------------------------------------------------------------------ deploy examples
DEPLOY = REPO / "cluster" / "deploy"


def _commands(text: str) -> list[list[str]]:
    """Every htmc / jobs.nightly command line in a deployment file, as argv for `htmc`."""
    out = []
    # prose comments are skipped; commented-out crontab entries ("# 0 2 * * * ...") are checked too
    text = "\n".join(ln for ln in text.splitlines() if not re.match(r"\s*#(?!\s*\d)", ln))
    for m in re.finditer(r"(\.venv/bin/htmc|\bhtmc|python -m jobs\.nightly)\s+([^|>\n&]+)", text):
        head, rest = m.group(1), m.group(2)
        argv = shlex.split(rest.replace("$D", "2026-11-27"))
        if head.endswith("jobs.nightly"):
            argv = ["nightly", *argv]
        if argv and argv[0] == "nightly":
            out.append(argv)
    return out


def test_deploy_examples_parse_and_run_commands_of_our_cli():
    from jobs.cli import build_parser
    files = sorted(p.name for p in DEPLOY.iterdir())
    assert files == ["crontab", "htmc-nightly.service", "htmc-nightly.timer", "k8s-cronjob.yaml",
                     "kuberay-raycronjob.yaml"]
    cron = yaml.safe_load((DEPLOY / "k8s-cronjob.yaml").read_text())
    assert (cron["kind"], cron["spec"]["concurrencyPolicy"]) == ("CronJob", "Forbid")
    assert cron["spec"]["startingDeadlineSeconds"] > 0
    args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    rcj = yaml.safe_load((DEPLOY / "kuberay-raycronjob.yaml").read_text())
    assert (rcj["apiVersion"], rcj["kind"]) == ("ray.io/v1", "RayCronJob") and rcj["spec"]["schedule"]
    yaml.safe_load(rcj["spec"]["jobTemplate"]["runtimeEnvYAML"])
    texts = {"crontab": (DEPLOY / "crontab").read_text(), "k8s": args,
             "kuberay": rcj["spec"]["jobTemplate"]["entrypoint"],
             "systemd": (DEPLOY / "htmc-nightly.service").read_text()}
    assert "OnCalendar=" in (DEPLOY / "htmc-nightly.timer").read_text()
    parser = build_parser()
    for name, text in texts.items():
        cmds = _commands(text)
        assert cmds, name
        for argv in cmds:
            ns = parser.parse_args(argv)                       # exits (SystemExit) on an unknown option
            assert ns.func.__name__ == "cmd_nightly" and Path(REPO / ns.spec).is_file(), (name, argv)
    # the K8s CronJob runs `ray job submit` with options that exist in this Ray
    ray_help = subprocess.run([str(Path(sys.executable).parent / "ray"), "job", "submit", "--help"],
                              capture_output=True, text=True, timeout=120).stdout
    for opt in re.findall(r"ray job submit ((?:--[\w-]+ \S+ )+)", " ".join(args.split())):
        for flag in re.findall(r"--[\w-]+", opt):
            assert flag in ray_help, flag
    assert "--submission-id" in args and "--submission-id" in ray_help


# -------------------------------------------------------------------------------------------------- bad input
DEMO = str(REPO / "sweeps" / "demo.yaml")


@pytest.mark.parametrize("argv,needle", [
    ([DEMO, "--here", "--date", "2026-02-30"], "--date must be a calendar date YYYY-MM-DD, got '2026-02-30'"),
    ([DEMO, "--here", "--date", "27.11.2026"], "--date must be a calendar date YYYY-MM-DD"),
    (["no/such/spec.yaml", "--here"], "sweep spec 'no/such/spec.yaml' does not exist"),
    ([DEMO], "give the Ray job server to submit the night to (--job-server http://HEAD:8265)"),
    ([DEMO, "--job-server", "127.0.0.1:8265"], "or run the night in this process with --here"),
    ([DEMO, "--ray-address", "127.0.0.1:6379"], "to submit the night give the job server: --job-server http://"),
    ([DEMO, "--policy", "forbidd"], "forbidd"),
])
def test_bad_nightly_input_is_one_clear_line_and_writes_nothing(argv, needle, tmp_path, monkeypatch, capsys):
    from jobs.cli import main
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    try:
        rc = main(["nightly", *argv])
    except SystemExit as e:          # argparse's own errors (an invalid --policy choice)
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_nightly_section_fails_before_anything_runs(tmp_path, capsys):
    from jobs.cli import main
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC + f"results: {{uri: '{tmp_path / 'results'}'}}\nnightly: {{concurrency: replaced}}\n")
    assert main(["nightly", str(p), "--here"]) == 2
    err = capsys.readouterr().err
    assert "nightly.concurrency" in err and "did you mean 'replace'" in err
    assert not (tmp_path / "results").exists()

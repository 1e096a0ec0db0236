"""Ray job submission (`ray job submit`): a job's entrypoint and runtime env, the one way jobs are submitted, and
waiting for a job's end. The operations that submit (a sweep, a night) are in cluster/service.py and
cluster/nightly.py; they decide the submission id and whether to submit at all."""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Callable

from cluster.provenance import git_sha
from cluster.spec.model import SweepSpec

FORWARDED_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_EC2_METADATA_DISABLED", "MLFLOW_S3_ENDPOINT_URL")
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_TOKEN",
              "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def build_submission(spec: SweepSpec, spec_path: str, *, working_dir: str = ".", retry_failed: bool = False,
                     forward_credentials: bool = False, results: str | None = None,
                     tracking_uri: str | None = None, module: str = "jobs.sweep",
                     extra_args: tuple = (), plugins=()) -> tuple[str, dict]:
    """(entrypoint, runtime_env) for `ray job submit` of `python -m <module> SPEC ...` (jobs.sweep, or
    jobs.nightly). The spec travels inside the working dir when it is there, else as the env var
    HTMC_SWEEP_SPEC_YAML. Plugin files must lie inside the working dir: the job loads them from its copy."""
    wd = Path(working_dir).resolve()
    if not wd.is_dir():
        raise FileNotFoundError(f"working dir '{working_dir}' does not exist")
    if not (spec.results.is_s3 or Path(spec.results.uri).is_absolute()):
        raise ValueError(f"results '{spec.results.uri}' is a relative path: in a Ray job it would land in the "
                         f"job's temporary copy of the working dir. Give an absolute path or s3://bucket/prefix "
                         f"(--results)")
    turi = spec.tracking.uri
    if turi.startswith("sqlite:///") and not turi.startswith("sqlite:////"):
        raise ValueError(f"tracking URI '{turi}' is a relative sqlite path: in a Ray job it would land in the "
                         f"job's temporary working dir. Use sqlite:////absolute/path.db or an MLflow server "
                         f"(--tracking-uri)")
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    if forward_credentials:
        env.update({k: os.environ[k] for k in SECRET_ENV if os.environ.get(k)})
    sha = git_sha()
    if sha:
        env["HTMC_GIT_SHA"] = sha
    p = Path(spec_path).resolve()
    args = ["python", "-m", module]
    if p.is_relative_to(wd):
        args.append(str(p.relative_to(wd)))
    else:
        env["HTMC_SWEEP_SPEC_YAML"] = spec.text
        args += ["--spec-from-env", "HTMC_SWEEP_SPEC_YAML"]
    if results:
        args += ["--results", results]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    if retry_failed:
        args.append("--retry-failed")
    for plugin in plugins or ():
        pp = Path(plugin).resolve()
        if not pp.is_relative_to(wd):
            raise ValueError(f"--plugin '{plugin}' lies outside the working dir '{wd}' that the job uploads; move "
                             f"it there")
        args += ["--plugin", str(pp.relative_to(wd))]
    args += [*extra_args, "--no-progress"]
    runtime_env = {"working_dir": str(wd), "env_vars": env,
                   "excludes": [".git", ".venv", "results", "mlruns", "mlartifacts", "*.db", ".pytest_cache",
                                ".hypothesis", "__pycache__", "*.egg-info"]}
    return " ".join(shlex.quote(a) for a in args), runtime_env


def job_status(job) -> str:
    """A listed Ray job's status as text (JobDetails.status is an enum, or a string in some Ray versions)."""
    st = job.status
    return str(st.value if hasattr(st, "value") else st)


def wait_for_job(client, sid: str, timeout_s: float, poll_s: float = 1.0) -> str:
    """Poll a Ray job until it ends and return its final status; TimeoutError after timeout_s."""
    t0 = time.monotonic()
    while (st := str(client.get_job_status(sid).value)) not in TERMINAL:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"job {sid} still {st} after {timeout_s:g} s")
        time.sleep(poll_s)
    return st


def open_jobs(address: str, prefix: str):
    """(client, {submission_id: status}) of the Ray job server at address, for its jobs whose id starts with
    prefix; ValueError when the server cannot be reached."""
    from ray.job_submission import JobSubmissionClient
    try:
        client = JobSubmissionClient(address)
        jobs = {j.submission_id: job_status(j) for j in client.list_jobs()
                if j.submission_id and j.submission_id.startswith(prefix)}
    except Exception as e:  # noqa: BLE001  unreachable or not a Ray dashboard
        raise ValueError(f"cannot reach the Ray job server at {address}: {e}") from None
    return client, jobs


def submit_job(client, sid: str, entrypoint: str, runtime_env: dict, metadata: dict, *, announce: str,
               wait: bool, timeout_s: float, say: Callable[[str], None]) -> dict:
    """Submit the job; with wait, wait for its end. Returns {"status"} (PENDING, or the final status) and, after
    a wait, "logs_tail". `announce` is said once the job is submitted."""
    client.submit_job(entrypoint=entrypoint, submission_id=sid, runtime_env=runtime_env, metadata=metadata)
    say(announce)
    out = {"status": "PENDING"}
    if wait:
        out["status"] = st = wait_for_job(client, sid, timeout_s)
        out["logs_tail"] = client.get_job_logs(sid)[-4000:]
        say(f"job {sid}: {st}")
    return out

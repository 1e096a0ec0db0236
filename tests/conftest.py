"""Shared fixtures. The cluster ones (Ray head, moto S3, MLflow sqlite) start only when a test asks for them.

Ray for tests: one `ray start --head --block` per session on 127.0.0.1 with free ports, a private temp dir,
2 CPUs and 1 fake GPU (scheduling works; torch sees no CUDA), the dashboard (job server) on 127.0.0.1 and
RAY_AUTH_MODE=disabled. It is stopped by signalling the process this fixture started (never `ray stop`, which
would stop every Ray on the machine). Never run these tests under pytest-xdist.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
# Imported here, on the main thread, before the background MLflow boot and moto's server thread import it too:
# two threads importing requests' circular modules at once can see a partially initialized `requests.adapters`
# ("cannot import name 'HTTPAdapter'"), which once failed the S3 fixtures here.
import requests.adapters  # noqa: F401

# Read by Ray at import time: keep every Ray in this process tree on 127.0.0.1 and make auth explicit.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parent.parent
# The test-only task kind `noop` is a plugin file: loaded here for every test (noop_kind below), and named with
# `--plugin NOOP_PLUGIN` where a test runs an entry point in another process (a subprocess driver, a Ray job).
NOOP_PLUGIN = str(REPO / "tests" / "noop_kind.py")
TEST_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    """Signal the process group of a child started with start_new_session=True (only what we started)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session", autouse=True)
def noop_kind():
    """Register the `noop` task kind (tests/noop_kind.py) in this process, as `--plugin` would."""
    from htmc.registry import load_plugin
    load_plugin(NOOP_PLUGIN)


@pytest.fixture(scope="session")
def aws_env():
    """Fake credentials for moto, in this process (and so in the Ray head and drivers started after it)."""
    old = {k: os.environ.get(k) for k in TEST_AWS_ENV}
    os.environ.update(TEST_AWS_ENV)
    yield dict(TEST_AWS_ENV)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def s3_endpoint(aws_env):
    """moto's S3 server on 127.0.0.1 (pyarrow's C++ S3 client cannot be mocked in process)."""
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket per test."""
    import uuid

    import boto3
    name = f"htmc-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


# ---------------------------------------------------------------------------------------------------------------
# The Ray head and the MLflow database take ~20 s and ~13 s to create here. When the collected tests need them,
# both start right after collection, in the background, so that they boot while the earlier tests run.
_BOOT: dict = {}


class _Head:
    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="htmcray-", dir="/tmp")  # short: Ray's socket paths are limited
        self.ports = {k: free_port() for k in (
            "port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port", "node-manager-port",
            "object-manager-port")}
        os.environ.update(TEST_AWS_ENV)  # the head's workers inherit the fake moto credentials
        self.env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled",
                        RAY_USAGE_STATS_ENABLED="0",
                        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        self.env.pop("RAY_ADDRESS", None)
        cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
               "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--num-cpus=2", "--num-gpus=1",
               f"--temp-dir={self.temp}", "--disable-usage-stats", *[f"--{k}={v}" for k, v in self.ports.items()]]
        self.log = open(Path(self.temp) / "head.log", "w")
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=str(REPO), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.dashboard = f"http://127.0.0.1:{self.ports['dashboard-port']}"
        self.gcs = f"127.0.0.1:{self.ports['port']}"

    def wait(self, timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.dashboard + "/api/version", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("ray head did not start:\n" + (Path(self.temp) / "head.log").read_text()[-3000:])
                time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # `ray start --block` stops its own processes on SIGTERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.proc)
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


def _create_mlflow_db(d: Path) -> str:
    uri = f"sqlite:///{d / 'mlflow.db'}"
    from mlflow import MlflowClient
    MlflowClient(tracking_uri=uri).search_experiments()  # creates the tables
    return uri


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    names = set()
    for item in items:
        names.update(getattr(item, "fixturenames", ()))
    if names & {"ray_head", "ray_connected"} and "head" not in _BOOT:
        _BOOT["head"] = _Head()
    if "mlflow_db" in names and "mlflow" not in _BOOT:
        import threading
        d = Path(tempfile.mkdtemp(prefix="htmc-mlflow-"))
        box = {"dir": d}

        def work():
            try:
                box["uri"] = _create_mlflow_db(d)
            except BaseException as e:  # noqa: BLE001  reported by the fixture
                box["error"] = e
        box["thread"] = threading.Thread(target=work, daemon=True)
        box["thread"].start()
        _BOOT["mlflow"] = box


def pytest_sessionfinish(session, exitstatus):
    head = _BOOT.pop("head", None)
    if head is not None:
        try:
            import ray
            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
        head.stop()
    box = _BOOT.pop("mlflow", None)
    if box is not None:
        box["thread"].join(60)
        shutil.rmtree(box["dir"], ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory):
    """One sqlite MLflow database for the session; tests use their own experiments."""
    box = _BOOT.get("mlflow")
    if box is None:
        d = tmp_path_factory.mktemp("mlflow")
        return {"uri": _create_mlflow_db(d), "artifacts": str(d / "artifacts")}
    box["thread"].join()
    if "error" in box:
        raise box["error"]
    return {"uri": box["uri"], "artifacts": str(box["dir"] / "artifacts")}


@pytest.fixture(scope="session")
def ray_head(aws_env):
    """A local Ray head with a job server, on 127.0.0.1 only. Yields its GCS and dashboard addresses."""
    head = _BOOT.get("head") or _BOOT.setdefault("head", _Head())
    head.wait()
    yield {"gcs": head.gcs, "dashboard": head.dashboard, "temp": head.temp, "env": head.env}


@pytest.fixture(scope="session")
def ray_connected(ray_head):
    """This test process as a driver of the session's Ray head."""
    import ray
    if not ray.is_initialized():
        ray.init(address=ray_head["gcs"], log_to_driver=False, logging_level="WARNING")
    yield ray_head

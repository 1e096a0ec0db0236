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


# ---------------------------------------------------------------------------------------------------------------
# Sweep drivers in subprocesses (`python -m jobs.sweep SPEC ...`, tests/test_cluster_sweep._driver). Python's
# imports of a driver (ray, mlflow, pyarrow, the cluster package) take ~3.5 s of CPU here, before the driver
# touches anything; the fault tests start 15 such drivers. A warm driver is that same process started ahead, with
# the same interpreter, environment, working dir, session and SIGINT disposition: it runs only those imports and
# then blocks on stdin until it is launched. At launch it writes what it printed so far into the log, points its
# stdout and stderr at the log, and runs jobs.sweep as __main__ with the argv it is given, exactly as
# `python -m jobs.sweep` would (runpy, the same exit status). So a kill "after launch" lands in the driver's own
# code (arguments, plugin, spec, planning, Ray, MLflow, actors, dispatch), never in the imports of modules, where
# nothing of the store, Ray or MLflow has been touched yet. A warm driver is used only when its environment
# equals the one the test asks for; otherwise one is started cold (the same script, launched at once).
WARM_DRIVER = r"""
import json, os, sys
import ray, ray._common.usage, mlflow, mlflow.tracking, mlflow.store.tracking.sqlalchemy_store, mlflow.store.db.utils
import alembic.command, alembic.script, alembic.runtime.migration, pyarrow.parquet, pyarrow.dataset, boto3
import jobs.cli, jobs.errors, jobs.sweep_cli, cluster.service, cluster.dispatch.pool, cluster.dispatch.raysetup
import cluster.tracking.tracker, cluster.store.core, cluster.store.local, cluster.store.s3, cluster.spec.parse
import htmc.tasks
line = sys.stdin.readline()
if not line:
    sys.exit(0)                      # never launched: the pool was closed
msg = json.loads(line)
os.environ.pop("PYTEST_CURRENT_TEST", None)
os.environ.update(msg["env"])        # the launching test's PYTEST_CURRENT_TEST (the rest is equal already)
sys.stdout.flush(); sys.stderr.flush()
with open(msg["pre"], "rb") as f:
    early = f.read()                 # whatever the imports printed, first in the log as in a cold start
fd = os.open(msg["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, early)
os.dup2(fd, 1); os.dup2(fd, 2); os.close(fd)
import runpy
sys.argv = ["-m", *msg["argv"]]      # run_module sets argv[0] to the module's file, as -m does
runpy.run_module("jobs.sweep", run_name="__main__", alter_sys=True)
"""


def driver_env(env_extra: dict, head_gcs: str | None = None) -> dict:
    """A sweep driver's environment: this process's, without RAY_ADDRESS, plus env_extra (RAY_ADDRESS=head_gcs
    where given)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(env_extra)
    if head_gcs:
        env["RAY_ADDRESS"] = head_gcs
    return env


class DriverPool:
    """Warm sweep drivers, keyed by their exact environment but LATE (see WARM_DRIVER). LATE: set per test by
    pytest, or read by MLflow only when it makes a request and set by every driver itself, to these same values,
    before its first one (cluster.tracking.entities.mlflow_env_defaults); the pytest process gets them with its
    first in-process sweep. They are passed at launch."""
    LATE = ("PYTEST_CURRENT_TEST", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
            "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")

    def __init__(self):
        self.idle: dict[tuple, list[tuple[subprocess.Popen, str]]] = {}
        self.dir = None
        self.expected: dict[tuple[str, str], tuple[dict, bool]] = {}

    def expect(self, module: str, test: str, env_extra: dict, head: bool) -> None:
        """A test of `module` will launch a driver with driver_env(env_extra, the session head's GCS if head):
        one is warmed right after collection when that test was collected."""
        self.expected[(module, test)] = (env_extra, head)

    def start(self, items, head_gcs: str | None) -> None:
        seen = set()
        for item in items:
            want = self.expected.get((item.module.__name__ if item.module else None, item.name))
            if want is None or (want[1] and not head_gcs):
                continue
            env = driver_env(want[0], head_gcs if want[1] else None)
            key = tuple(sorted((k, v) for k, v in env.items() if k not in self.LATE))
            if key not in seen:
                seen.add(key)
                self.idle.setdefault(key, []).append(self._spawn({k: v for k, v in env.items()
                                                                 if k not in self.LATE}))

    def _spawn(self, env: dict) -> tuple[subprocess.Popen, str]:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="htmc-drivers-")
        fd, pre = tempfile.mkstemp(prefix="pre-", suffix=".log", dir=self.dir)
        with os.fdopen(fd, "wb") as out:
            # SIGINT at its default, as for a command typed at a terminal: a suite started in the background by a
            # non-interactive shell inherits SIGINT ignored, and the driver would then never see the test's Ctrl-C
            proc = subprocess.Popen([sys.executable, "-c", WARM_DRIVER], cwd=str(REPO), env=env,
                                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        return proc, pre

    def launch(self, argv: list[str], env: dict, log: Path, spare: int = 1) -> subprocess.Popen:
        """A driver running `python -m jobs.sweep *argv` in `env`, writing to `log`; then `spare` warm ones for the
        next launch with the same environment."""
        import json
        late = {k: env[k] for k in self.LATE if k in env}     # set per test by pytest: passed at launch
        key = tuple(sorted((k, v) for k, v in env.items() if k not in self.LATE))
        idle = self.idle.setdefault(key, [])
        while idle and idle[0][0].poll() is not None:        # died while waiting (never launched): drop it
            idle.pop(0)
        proc, pre = idle.pop(0) if idle else self._spawn({k: v for k, v in env.items() if k not in self.LATE})
        msg = {"argv": [str(a) for a in argv], "log": str(log), "pre": pre, "env": late}
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.close()
        while len(idle) < spare:
            idle.append(self._spawn({k: v for k, v in env.items() if k not in self.LATE}))
        return proc

    def close(self):
        for idle in self.idle.values():
            for proc, _ in idle:
                kill_group(proc)
                proc.wait()
        self.idle.clear()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


DRIVERS = DriverPool()


# ---------------------------------------------------------------------------------------------------------------
# Background setup. Some tests spend most of their time in one CPU-bound call of the product (a rate ladder, an
# exact synthesis proof, a search), while most of the session waits on Ray, S3, MLflow and sleeping tasks with a
# core idle. A test module names such a call once, at import, with the test it belongs to:
#     BACKGROUND.job("test_holder_random_rate_matches_theory[d1-s1]", ladder_of, 1, 1.0, ...)
# and the test takes its value with `BACKGROUND.result(request)`. Right after collection, the jobs of the collected
# tests are handed, in test order, to one spawned worker process (the same interpreter and sys.path), which calls
# them one after the other; the value comes back pickled. The test then makes all of its assertions on that value
# in this process, as before (a ladder's circuits are re-verified here, for instance). A job whose test was not
# collected never runs; result() of a job that was not started (a test run outside pytest) calls it in place; an
# exception in the worker is raised by result(). The calls are the tests' own, with the same arguments.
class Background:
    def __init__(self):
        self.jobs: dict[tuple[str, str], tuple] = {}
        self.futures: dict[tuple[str, str], object] = {}
        self.pool = None

    def job(self, test: str, fn, *args, **kwargs) -> None:
        module = fn.__module__
        self.jobs[(module, test)] = (fn, args, kwargs)

    def start(self, items) -> None:
        wanted = [(item.module.__name__, item.name) for item in items
                  if item.module is not None and (item.module.__name__, item.name) in self.jobs]
        if not wanted:
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        for key in wanted:
            fn, args, kwargs = self.jobs[key]
            self.futures[key] = self.pool.submit(fn, *args, **kwargs)

    def result(self, request, *call):
        """The value of this test's job; `call` (fn, *args), if given, is what to call for a test with no job."""
        key = (request.node.module.__name__, request.node.name)
        if key in self.futures:
            return self.futures[key].result()
        fn, args, kwargs = self.jobs[key] if key in self.jobs or not call else (call[0], call[1:], {})
        return fn(*args, **kwargs)

    def close(self) -> None:
        if self.pool is not None:
            procs = list((self.pool._processes or {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:          # a job still running (an interrupted session): only our worker
                if proc.is_alive():
                    proc.kill()
            self.pool = None


BACKGROUND = Background()


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
    import sqlite3
    src, dst = sqlite3.connect(d / "mlflow.db"), sqlite3.connect(d / "empty.db")
    with dst:
        src.backup(dst)          # a pristine copy, before any test writes: see fresh_mlflow_db
    src.close()
    dst.close()
    return uri


def fresh_mlflow_db(mlflow_db: dict, dest: Path) -> str:
    """A new, empty MLflow sqlite database at `dest` (its sqlite:/// URI): a copy of the session database as it was
    created, with every table at the current schema revision. Creating the tables takes ~6 s here (alembic runs
    every migration); a `mlflow server` on a new file would do that at each boot."""
    shutil.copyfile(mlflow_db["empty"], dest)
    return f"sqlite:///{dest}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if not config.option.collectonly:
        BACKGROUND.start(items)
    names = set()
    for item in items:
        names.update(getattr(item, "fixturenames", ()))
    if names & {"ray_head", "ray_connected"} and "head" not in _BOOT:
        _BOOT["head"] = _Head()
    if not config.option.collectonly:
        DRIVERS.start(items, _BOOT["head"].gcs if "head" in _BOOT else None)
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
    BACKGROUND.close()
    DRIVERS.close()
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
        return {"uri": _create_mlflow_db(d), "artifacts": str(d / "artifacts"), "empty": str(d / "empty.db")}
    box["thread"].join()
    if "error" in box:
        raise box["error"]
    return {"uri": box["uri"], "artifacts": str(box["dir"] / "artifacts"), "empty": str(box["dir"] / "empty.db")}


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


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB tmpfs at tmp_path/small, for the full-disk tests of the store (issue 22). The test machines run as
    root; elsewhere the test is skipped, not faked. Unmounted at the end (a test may remount it larger)."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)

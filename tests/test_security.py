"""Security defaults (docs/SECURITY.md): loopback-only local Ray with token auth, the cluster config's dashboard on
the head's localhost, MLflow on 127.0.0.1, no secret in any output, safe parsing and explicit plugins only.

The Ray checks start the project's own local Ray (cluster.dispatch.raysetup.init_ray, no address) in a subprocess,
with a private HOME (its auth token) and RAY_TMPDIR, so that it never meets the session's Ray head of the other tests.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import NOOP_PLUGIN, free_port, kill_group

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _clean_env(home: Path, ray_tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "MLFLOW_TRACKING_URI")}
    env.update(HOME=str(home), RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(REPO), **extra)
    return env


@pytest.fixture
def ray_sandbox():
    """A private HOME and a short RAY_TMPDIR (Ray's socket paths are limited to ~100 characters)."""
    d = Path(tempfile.mkdtemp(prefix="htmcsec-", dir="/tmp"))
    (d / "home").mkdir()
    (d / "rt").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ Ray on loopback
RAY_PROBE = r'''
import json, os, sys, urllib.error, urllib.request
from cluster.dispatch.raysetup import init_ray
assert init_ray(num_cpus=1, dashboard=sys.argv[1] == "1")      # True: this process started a private Ray
import psutil, ray                                               # psutil ships with ray
me = psutil.Process()
procs = [me] + me.children(recursive=True)
socks = []
for p in procs:
    try:
        argv, conns = p.cmdline(), p.net_connections(kind="inet")
    except psutil.Error:
        continue
    for c in conns:
        if c.status == psutil.CONN_LISTEN or c.type == 2:        # listening TCP, or any bound UDP socket
            socks.append({"cmd": " ".join(argv)[:200], "ip": c.laddr.ip, "port": c.laddr.port, "udp": c.type == 2,
                          "dashboard": any(a.endswith("dashboard/dashboard.py") for a in argv)})
out = {"socks": socks, "auth_mode": os.environ.get("RAY_AUTH_MODE"),
       "dashboard_cmds": [" ".join(a) for a in (p.cmdline() for p in procs)
                          if any(x.endswith("dashboard/dashboard.py") for x in a)],
       "webui": ray._private.worker.global_worker.node.webui_url, "http": {}}
token = open(os.path.expanduser("~/.ray/auth_token")).read().strip()
def get(url, headers, data=None):
    try:
        req = urllib.request.Request(url, headers=headers, data=data, method="POST" if data else "GET")
        return urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return type(e).__name__
if out["webui"]:
    for name, headers in (("no_token", {}), ("token", {"Authorization": "Bearer " + token})):
        out["http"][name] = get("http://" + out["webui"] + "/api/jobs/", headers)
# whatever the dashboard process listens on (a metrics exporter when headless): try to submit a job there
auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
out["dashboard_jobs_api"] = [get(f"http://127.0.0.1:{s['port']}/api/jobs/", auth, json.dumps({"entrypoint": "true"}).encode())
                             for s in socks if s["dashboard"] and ("http://" + str(out["webui"])
                                                                   != f"http://127.0.0.1:{s['port']}")]
print("PROBE " + json.dumps(out))
ray.shutdown()
'''


class _Probe:
    """One RAY_PROBE subprocess in its own sandbox (HOME with its auth token, RAY_TMPDIR), started at once."""

    def __init__(self, dashboard: bool):
        self.sandbox = Path(tempfile.mkdtemp(prefix="htmcsec-", dir="/tmp"))
        (self.sandbox / "home").mkdir()
        (self.sandbox / "rt").mkdir()
        self.proc = subprocess.Popen([sys.executable, "-c", RAY_PROBE, "1" if dashboard else "0"], cwd=str(REPO),
                                     env=_clean_env(self.sandbox / "home", self.sandbox / "rt"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.out = None

    def result(self) -> dict:
        if self.out is None:
            try:
                stdout, stderr = self.proc.communicate(timeout=180)
            finally:
                kill_group(self.proc)
            line = next((ln for ln in stdout.splitlines() if ln.startswith("PROBE ")), None)
            assert self.proc.returncode == 0 and line, (self.proc.returncode, stdout[-2000:], stderr[-3000:])
            self.out = json.loads(line[len("PROBE "):])
        return self.out


@pytest.fixture(scope="module")
def local_ray_probes(request):
    """The two probes of a private local Ray (without and with its dashboard), started together the first time a
    test asks for them: each is its own process tree with its own HOME and RAY_TMPDIR and checks only its own
    sockets, so they run side by side (each spends ~10 s starting and stopping Ray) instead of one after the other.
    Only the probes whose tests were collected are started."""
    wanted = {item.name == "test_local_ray_dashboard_on_request_is_loopback_and_needs_the_token"
              for item in request.session.items
              if item.module is request.module and "local_ray_probes" in getattr(item, "fixturenames", ())}
    probes = {dashboard: _Probe(dashboard) for dashboard in sorted(wanted)}
    yield probes
    for p in probes.values():
        kill_group(p.proc)
        shutil.rmtree(p.sandbox, ignore_errors=True)


def test_local_ray_listens_on_loopback_only_and_has_no_dashboard_unless_asked(local_ray_probes):
    probe = local_ray_probes[False]
    out, ray_sandbox = probe.result(), probe.sandbox
    assert len(out["socks"]) >= 3                     # GCS, raylet, agents: the check saw Ray's sockets
    exposed = [s for s in out["socks"] if s["ip"] not in LOOPBACK]
    assert not exposed, exposed                       # nothing on 0.0.0.0, ::, or the machine's address
    assert out["auth_mode"] == "token"                # the project's default when the user set nothing
    assert (ray_sandbox / "home" / ".ray" / "auth_token").is_file()
    assert out["webui"] in (None, "")                 # no dashboard, so no job server
    assert 200 not in out["dashboard_jobs_api"], out["dashboard_jobs_api"]     # no job API, even with the token
    # Ray 2.60 still runs its dashboard process, headless: only usage stats, no HTTP frontend, no job module
    for cmd in out["dashboard_cmds"]:
        assert "--modules-to-load=UsageStatsHead" in cmd and "--disable-frontend" in cmd, cmd


def test_local_ray_dashboard_on_request_is_loopback_and_needs_the_token(local_ray_probes):
    out = local_ray_probes[True].result()
    assert not [s for s in out["socks"] if s["ip"] not in LOOPBACK], out["socks"]
    assert out["webui"].startswith("127.0.0.1:")
    dash = [s for s in out["socks"] if s["dashboard"]]
    assert dash and all(s["ip"] == "127.0.0.1" for s in dash)
    assert out["http"] == {"no_token": 401, "token": 200}     # the job API refuses a caller without the token


# ------------------------------------------------------------------------------------------------ configs
def test_ray_config_keeps_dashboard_on_localhost_with_token_auth():
    text = (REPO / "ray_config.yaml").read_text()
    cfg = yaml.safe_load(text)
    head = " ".join(cfg["head_start_ray_commands"])
    workers = " ".join(cfg["worker_start_ray_commands"])
    starts = [c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"] if "ray start" in c]
    assert starts and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in text and "--ray-client-server-port" not in head + workers
    assert cfg["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"       # one shared token
    assert "arbitrary code" in text and "docs/SECURITY.md" in text                    # the why, next to the what
    for secret in ("aws_access_key_id", "aws_secret_access_key", "AWS_SECRET", "password"):
        assert secret.lower() not in text.lower()


def test_local_mlflow_ui_binds_loopback():
    make = (REPO / "Makefile").read_text()
    ui = make[make.index("\nui:"):].split("\n\n")[0]
    assert "mlflow ui" in ui and "--host 127.0.0.1" in ui and "sqlite:///mlflow.db" in ui
    assert "0.0.0.0" not in make
    # the commands README and `make demo` print have no --host: MLflow's default, 127.0.0.1, applies
    from mlflow.cli import cli
    host = next(p for p in cli.commands["server"].params if p.name == "host")
    assert host.default == "127.0.0.1"


# ------------------------------------------------------------------------------------------------ no secret leaks
MARKERS = {
    "AWS_ACCESS_KEY_ID": "AKIAHTMCFAKE7Q2X9ZLM",
    "AWS_SECRET_ACCESS_KEY": "htmcFakeAwsSecret8f3kQzw1Yv9Lm2Np4Rs6Tu8Vx0",
    "AWS_SESSION_TOKEN": "htmcFakeAwsSessionToken0b7e5c1d9a",
    "MLFLOW_TRACKING_PASSWORD": "htmcFakeMlflowPassword4c2a",
    "MLFLOW_TRACKING_TOKEN": "htmcFakeMlflowToken91fe",
}
URI_PASSWORD = "htmcFakeUriPassword77d1"


def spawn_mlflow_server(backend_uri: str, artifacts: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in MARKERS}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_until_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> subprocess.Popen:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc)
            raise RuntimeError("mlflow server did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.3)


@pytest.fixture(scope="module", autouse=True)
def scan_server(request, tmp_path_factory):
    """The secret scan's MLflow server (on the session's sqlite database), spawned when this module starts, so
    that its ~10 s boot overlaps the Ray probes above instead of holding up the scan; the scan waits until it is
    healthy. Spawned only when the scan test was collected."""
    if not any(item.module is request.module and item.name == "test_no_secret_reaches_any_output"
               for item in request.session.items):
        yield None
        return
    mlflow_db = request.getfixturevalue("mlflow_db")
    d = tmp_path_factory.mktemp("scan-mlflow")
    box = {"port": free_port(), "artifacts": d / "mlartifacts", "log": d / "mlflow-server.log"}
    box["proc"] = spawn_mlflow_server(mlflow_db["uri"], box["artifacts"], box["port"], box["log"])
    yield box
    kill_group(box["proc"])


def _texts_of(path: Path) -> list[tuple[str, bytes]]:
    """The raw bytes of a file, plus its decoded content for Parquet (whose pages may be compressed)."""
    data = path.read_bytes()
    out = [(str(path), data)]
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq
        t = pq.read_table(path)
        meta = json.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                           for k, v in (t.schema.metadata or {}).items()})
        out.append((f"{path} (decoded)", (json.dumps(t.to_pylist(), default=str) + meta).encode()))
    return out


def _leaks(blobs: list[tuple[str, bytes]], secrets: list[str]) -> list[tuple[str, str]]:
    found = []
    for name, data in blobs:
        for s in secrets:
            if s.encode() in data:
                found.append((name, s))
    return found


def test_no_secret_reaches_any_output(s3_endpoint, s3_bucket, mlflow_db, tmp_path, ray_sandbox, scan_server):
    """Fake credentials in the environment and a password in the tracking URI: run a real sweep (private local
    Ray, moto S3, an MLflow server on the session's sqlite database), then status, analyze and a sync against a
    dead server. Search every output for the secrets: stdout and stderr, every object in the bucket (raw and
    decoded Parquet), the MLflow database file, every MLflow artifact, the report directory and Ray's logs."""
    import boto3
    port, dead = scan_server["port"], free_port()
    artifacts, report = scan_server["artifacts"], tmp_path / "report"
    server = scan_server["proc"]
    try:
        wait_until_healthy(server, port, scan_server["log"])
        # Client auth the documented way (MLFLOW_TRACKING_USERNAME / _PASSWORD); a database URI with a password
        # in the description, which ends up in the logged spec and the report's title
        tracking = f"http://127.0.0.1:{port}"
        spec = tmp_path / "secrets.yaml"
        spec.write_text(textwrap.dedent(f"""\
            name: secretscan
            description: "mirrors postgresql://mlflow:{URI_PASSWORD}@mlflow-db.internal:5432/mlflow"
            results: {{uri: "s3://{s3_bucket}/htmc", endpoint_url: "{s3_endpoint}", region: us-east-1}}
            tracking: {{uri: "{tracking}", children: task}}
            resources: {{noop: {{num_cpus: 0.5}}, circuit_search: {{num_cpus: 0.5}}}}
            groups:
              - kind: noop
                grid: {{x: [1, 2, 3]}}
              - kind: circuit_search
                params: {{function: sin, eps: 0.1, methods: [table], thorough: false}}
            """))
        env = _clean_env(ray_sandbox / "home", ray_sandbox / "rt", AWS_EC2_METADATA_DISABLED="true",
                         AWS_DEFAULT_REGION="us-east-1", MLFLOW_TRACKING_USERNAME="htmc", **MARKERS)
        outputs = []

        def start(*args):         # every command here takes the spec, and so the plugin of its noop kind
            return args, subprocess.Popen([sys.executable, "-m", "jobs.cli", *args, "--plugin", NOOP_PLUGIN],
                                          cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)

        def finish(started, rc=0):
            args, p = started
            try:
                stdout, stderr = p.communicate(timeout=300)
            except BaseException:
                p.kill()
                raise
            outputs.append((f"htmc {' '.join(args)}: stdout", stdout.encode()))
            outputs.append((f"htmc {' '.join(args)}: stderr", stderr.encode()))
            assert p.returncode == rc, (args, stdout[-2000:], stderr[-3000:])
            return stdout, stderr

        run = json.loads(finish(start("sweep", "run", str(spec), "--no-progress", "--json"))[0])
        assert (run["done"], run["failed"], run["untracked"]) == (4, 0, 0) and run["parent_run_id"]
        # the four commands after the run only read the records (and analyze logs its report to the parent run):
        # they run side by side, each its own process as before
        later = [start("sweep", "status", str(spec), "--json"), start("sweep", "status", str(spec)),
                 start("analyze", str(spec), "--out", str(report)),
                 start("sweep", "sync-mlflow", str(spec), "--tracking-uri",
                       f"http://htmc:{URI_PASSWORD}@127.0.0.1:{dead}")]
        try:
            status = json.loads(finish(later[0])[0])
            assert status["kinds"]["noop"]["ok"] == 3
            finish(later[1])
            finish(later[2])
            assert (report / "report.html").is_file()
            sync_err = finish(later[3], rc=2)[1]
            assert "htmc: error:" in sync_err and "htmc:***@127.0.0.1" in sync_err   # MLflow down: said, redacted
        finally:
            for _, p in later:
                if p.poll() is None:
                    p.kill()
    finally:
        kill_group(server, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            kill_group(server)

    blobs = list(outputs)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
            for o in page.get("Contents", [])]
    records = [k for k in keys if "/sweep=secretscan/kind=" in k and k.endswith(".parquet")]
    assert len(records) == 4, keys                   # plus the store's index objects: all of them are scanned
    downloads = tmp_path / "s3"
    for k in keys:
        dest = downloads / k
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(s3_bucket, k, str(dest))
    files = [p for d in (downloads, artifacts, report, ray_sandbox / "rt") for p in d.rglob("*") if p.is_file()]
    db = Path(mlflow_db["uri"][len("sqlite:///"):])
    files += [db] + [Path(str(db) + s) for s in ("-wal", "-journal") if Path(str(db) + s).exists()]
    for f in files:
        blobs += _texts_of(f)
    # the scan covered what it claims: records, the logged spec and report, the database, Ray's session logs
    names = " ".join(n for n, _ in blobs)
    assert "spec.yaml" in names and "report.html" in names and "(decoded)" in names and "session_" in names
    assert any(b"secretscan" in data for n, data in blobs if n == str(db))        # the runs are in that file
    assert any(b"mlflow:***@mlflow-db.internal" in data for n, data in blobs if "spec.yaml" in n)  # redacted form
    assert any(b"mlflow:***@mlflow-db.internal" in data for n, data in blobs if "report.html" in n)
    secrets = list(MARKERS.values()) + [URI_PASSWORD]
    token = (ray_sandbox / "home" / ".ray" / "auth_token")
    if token.is_file():
        secrets.append(token.read_text().strip())                                 # Ray's own token, too
    assert not _leaks(blobs, secrets)
    print(f"\nSECURITY secret-scan: {len(blobs)} outputs scanned ({len(files)} files, {len(outputs)} streams), "
          f"{len(secrets)} secrets, 0 found")


def test_the_scan_would_find_a_leak(tmp_path):
    """The search itself is not vacuous: a planted secret in raw bytes and inside compressed Parquet is found."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"error": ["boto said " + MARKERS["AWS_SECRET_ACCESS_KEY"] * 50]}), tmp_path / "r.parquet",
                   compression="zstd")
    (tmp_path / "log.txt").write_text(f"uri=http://u:{URI_PASSWORD}@h")
    blobs = _texts_of(tmp_path / "r.parquet") + _texts_of(tmp_path / "log.txt")
    found = {s for _, s in _leaks(blobs, [MARKERS["AWS_SECRET_ACCESS_KEY"], URI_PASSWORD])}
    assert found == {MARKERS["AWS_SECRET_ACCESS_KEY"], URI_PASSWORD}


# ------------------------------------------------------------------------------------------------ safe parsing
def test_spec_with_python_tags_is_refused_and_runs_nothing(tmp_path):
    from cluster.spec.model import SpecError
    from cluster.spec.parse import load_spec
    pwned = tmp_path / "pwned"
    for payload in (f"!!python/object/apply:os.system ['touch {pwned}']",
                    f"!!python/object/apply:subprocess.call [['touch', '{pwned}']]",
                    "!!python/name:os.system", "!!python/object/new:builtins.eval ['1']"):
        spec = tmp_path / "evil.yaml"
        spec.write_text(f"name: evil\ngroups:\n  - kind: noop\n    grid:\n      x: {payload}\n")
        with pytest.raises(SpecError, match=r"evil\.yaml: not valid YAML.*could not determine a constructor"):
            load_spec(spec)
    assert not pwned.exists()


FORBIDDEN = [
    (r"(?<![\w.])eval\(", "eval()"),
    (r"(?<![\w.])exec\(", "exec()"),
    (r"\bpickle\.loads?\(|cloudpickle\.loads?\(|\bdill\b|\bshelve\b|\bmarshal\.loads?\(", "unpickling"),
    (r"read_pickle|allow_pickle\s*=\s*True|load_model\(", "pickle-backed loaders"),
    (r"torch\.load\((?![^)]*weights_only\s*=\s*True)", "torch.load without weights_only=True"),
    (r"yaml\.(?:unsafe_load|full_load|load_all)\(|yaml\.load\((?![^)]*SafeLoader)", "unsafe YAML loading"),
    (r"Loader\s*=\s*yaml\.(?:Loader|UnsafeLoader|FullLoader)|yaml\.(?:UnsafeLoader|FullLoader)\b", "unsafe Loader"),
    (r"shell\s*=\s*True|os\.system\(|os\.popen\(", "shell execution"),
    (r"__import__\(|import_module\(", "dynamic imports"),
]


def _source_files():
    return [p for d in ("htmc", "cluster", "jobs", "analysis") for p in sorted((REPO / d).rglob("*.py"))]


@pytest.mark.parametrize("pattern,what", FORBIDDEN, ids=[w for _, w in FORBIDDEN])
def test_no_unsafe_loading_or_evaluation_in_the_source(pattern, what):
    files = _source_files()
    assert len(files) > 20
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(pattern, line.split("#")[0])]
    assert not hits, f"{what}:\n" + "\n".join(hits)


def test_the_source_scan_is_not_vacuous():
    bad = ["x = eval(s)", "pickle.load(f)", "yaml.load(text)", "torch.load(p)", "subprocess.run(c, shell=True)",
           "yaml.load(t, Loader=yaml.FullLoader)", "importlib.import_module(name)"]
    for line in bad:
        assert any(re.search(p, line) for p, _ in FORBIDDEN), line
    for ok in ("model.eval()", "yaml.load(t, Loader=yaml.SafeLoader)", "yaml.safe_load(t)",
               "torch.load(p, weights_only=True)"):
        assert not any(re.search(p, ok) for p, _ in FORBIDDEN), ok


def test_plugins_load_only_from_a_path_the_user_names(tmp_path, monkeypatch):
    """The only code-loading call is htmc.registry.load_plugin, reached only from the CLI's --plugin flags;
    a spec cannot name a plugin; a bad path is a clear error."""
    loaders = [f"{p.relative_to(REPO)}" for p in _source_files()
               if re.search(r"spec_from_file_location|exec_module|importlib\.util|import_module", p.read_text())]
    assert loaders == ["htmc/registry.py"], loaders
    callers = [f"{p.relative_to(REPO)}" for p in _source_files()
               if re.search(r"^\s*(?:\w+\s*=\s*)?load_plugin\(", p.read_text(), re.M)]
    assert callers == ["jobs/cli.py"], callers
    cli = (REPO / "jobs" / "cli.py").read_text()
    assert re.findall(r"for plugin in args\.plugin or \[\]:\s+(?:from htmc\.registry import load_plugin\s+)?"
                      r"load_plugin\(plugin\)", cli)
    from cluster.spec.model import SpecError
    from cluster.spec.parse import parse_spec
    with pytest.raises(SpecError, match="unknown key 'plugin'"):
        parse_spec("name: t\nplugin: evil.py\ngroups: [{kind: noop}]\n", "p.yaml")
    from htmc.registry import load_plugin
    with pytest.raises(FileNotFoundError, match=f"plugin file '{tmp_path / 'nope.py'}' does not exist"):
        load_plugin(tmp_path / "nope.py")
    with pytest.raises(ValueError, match="is a directory"):
        load_plugin(tmp_path)
    # the current directory is never searched: a plugins.py next to the user is not imported by itself
    (tmp_path / "plugins.py").write_text("raise SystemExit('imported without being named')\n")
    monkeypatch.chdir(tmp_path)
    p = subprocess.run([sys.executable, "-m", "jobs.cli", "functions", "list", "--json"], cwd=str(tmp_path),
                       env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "imported without being named" not in p.stderr + p.stdout

"""Bad input to every `htmc` command: one line `htmc: error: ...` on stderr that names the bad value (and the valid
choices, with a "did you mean" where a name was mistyped), exit status 2, no traceback, nothing on stdout, and
nothing written: no results, no MLflow database, no output file, no report.

Each case runs the real command line in a subprocess (as a user would), from an empty working directory that holds
only the files the case needs; after the command the directory must be exactly as it was.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import NOOP_PLUGIN, free_port

REPO = Path(__file__).resolve().parent.parent

SPEC = """\
name: badcli
results: {{uri: "{results}"}}
tracking: {{uri: "sqlite:///{db}"}}
groups:
  - kind: {kind}
    grid: {grid}
"""


def write_spec(d: Path, kind="noop", grid="{x: [1, 2]}", name="spec.yaml", results=None) -> Path:
    p = d / name
    p.write_text(SPEC.format(results=results or d / "results", db=d / "mlflow.db", kind=kind, grid=grid))
    return p


def run_htmc(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=120)


def snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def assert_clear_error(p: subprocess.CompletedProcess, needles: list[str]) -> None:
    err = p.stderr
    assert p.returncode == 2, (p.returncode, err, p.stdout)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("htmc: error: "), err
    for n in needles:
        assert n in err, (n, err)
    assert p.stdout == "", p.stdout


# (argv, needles). {tmp}: the case's directory; {missing}: a path in it that does not exist; {spec}: a valid noop
# spec whose results and MLflow database would go into {tmp}; {noop}: the noop kind's plugin file, named where a
# case gets as far as reading the spec's groups.
CASES = [
    # --- top level and command names
    (["circut", "exact"], ["invalid choice 'circut'", "did you mean 'circuit'", "valid choices:"]),
    (["functions", "lst"], ["invalid choice 'lst'", "did you mean 'list'"]),
    (["sweep", "rn", "{spec}"], ["invalid choice 'rn'", "did you mean 'run'", "sync-mlflow"]),
    (["circuit", "synt"], ["did you mean 'synth'"]),
    # --- circuit exact | synth: malformed hex truth tables, out-of-range numbers, paths
    (["circuit", "exact", "-t", "zz", "-n", "3"], ["'zz'", "non-hex"]),
    (["circuit", "exact", "-t", "abc", "-n", "4"], ["'abc'", "has 3 hex digits; 4 inputs need 4"]),
    (["circuit", "exact", "-t", "96", "-n", "40"], ["--inputs must be between", "40"]),
    (["circuit", "exact", "-t", "96", "-n", "-3"], ["--inputs must be between", "-3"]),
    (["circuit", "exact", "-t", "96", "-n", "three"], ["--inputs", "invalid int value: 'three'"]),
    (["circuit", "exact", "-n", "3"], ["required", "--truth-table"]),
    (["circuit", "exact", "-t", "96", "-n", "3", "--budget-s", "-1"], ["--budget-s must be > 0", "-1"]),
    (["circuit", "exact", "-t", "96", "-n", "3", "--budget-s", "nan"], ["--budget-s", "nan"]),
    (["circuit", "exact", "-t", "96", "-n", "3", "--save", "{missing}/x.blif"], ["{missing}", "does not exist"]),
    (["circuit", "exact", "-t", "96", "-n", "3", "--save", "{tmp}"], ["is a directory"]),
    (["circuit", "synth", "-t", "e8", "-n", "3", "--deepsyn-s", "-1"], ["--deepsyn-s must be >= 0", "-1"]),
    (["circuit", "synth", "-t", "e8", "-n", "3", "--save", "{missing}/m.blif"], ["does not exist"]),
    # --- circuit search: names, eps (< 0, = 0 on box, NaN, inf), parameters, methods, plugins
    (["circuit", "search", "holder_randm", "--eps", "0.1"], ["'holder_randm'", "did you mean 'holder_random'"]),
    (["circuit", "search", "sin", "--param", "frq=2", "--eps", "0.1"], ["'frq'", "did you mean 'freq'"]),
    (["circuit", "search", "sin", "--param", "freq=-1", "--eps", "0.1"], ["freq", "-1"]),
    (["circuit", "search", "sin", "--param", "freq", "--eps", "0.1"], ["--param 'freq'", "key=value"]),
    (["circuit", "search", "sin", "--param", "freq=[1", "--eps", "0.1"], ["--param 'freq=[1'", "not a YAML"]),
    (["circuit", "search", "sin", "--param", "freq=!!python/object/apply:os.system ['touch {tmp}/pwned']",
      "--eps", "0.1"], ["could not determine a constructor"]),
    (["circuit", "search", "sin", "--eps", "0.1", "--methods", "acb"], ["'acb'", "did you mean 'abc'"]),
    (["circuit", "search", "sin", "--eps", "0.1", "--methods", ","], ["--methods is empty"]),
    (["circuit", "search", "sin", "--eps", "-0.1"], ["eps must be >= 0", "-0.1"]),
    (["circuit", "search", "sin", "--eps", "0"], ["eps must be > 0 on the box domain", "--domain grid"]),
    (["circuit", "search", "sin", "--eps", "nan"], ["--eps", "nan"]),
    (["circuit", "search", "sin", "--eps", "inf"], ["--eps", "inf"]),
    (["circuit", "search", "sin", "--eps", "abc"], ["--eps", "invalid float value: 'abc'"]),
    (["circuit", "search", "sin", "--eps", "0.1", "--domain", "boxx"], ["'boxx'", "did you mean 'box'"]),
    (["circuit", "search", "sin", "--eps", "0.1", "--bits", "0"], ["--bits must be >= 1", "0"]),
    (["circuit", "search", "product", "--eps", "0.1", "--bits", "9"], ["--bits 9", "18 input bits", "16"]),
    (["circuit", "search", "sin", "--eps", "0.1", "--budget-s", "-5"], ["--budget-s", "-5"]),
    (["circuit", "search", "cube", "--plugin", "{missing}/p.py", "--eps", "0.1"], ["{missing}/p.py",
                                                                                    "does not exist"]),
    (["circuit", "search", "cube", "--plugin", "{tmp}", "--eps", "0.1"], ["is a directory"]),
    # --- circuit ladder
    (["circuit", "ladder", "sin", "--eps0", "0.1", "--steps", "1"], ["--steps >= 2", "1"]),
    (["circuit", "ladder", "sin", "--eps0", "0.1", "--steps", "1000"], ["at most 40", "1000"]),
    (["circuit", "ladder", "sin", "--eps0", "0.1", "--steps", "30"],
     ["last rung", "more than 24 input bits", "use fewer steps or a larger eps0"]),
    (["circuit", "ladder", "holder_random", "--param", "d=2", "--param", "s=0.75", "--eps0", "0.4", "--steps", "6",
      "--methods", "table,abc"], ["more than 16 input bits", "use --methods table,abc,decomp,lupanov"]),
    (["circuit", "ladder", "sin", "--eps0", "-0.1", "--steps", "3"], ["--eps0 must be > 0", "-0.1"]),
    (["circuit", "ladder", "sin", "--eps0", "0", "--steps", "3"], ["--eps0 must be > 0", "0"]),
    (["circuit", "ladder", "sin", "--eps0", "nan", "--steps", "3"], ["--eps0", "nan"]),
    (["circuit", "ladder", "sin", "--eps0", "0.1", "--steps", "3", "--plot", "{missing}/l.png"],
     ["--plot", "does not exist"]),
    # --- functions
    (["functions", "list", "--plugin", "{missing}/f.py"], ["{missing}/f.py", "does not exist"]),
    # --- resnet train
    (["resnet", "train", "sine", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0"],
     ["'sine'", "did you mean 'sin'"]),
    (["resnet", "train", "sin", "--width", "0", "--depth", "1", "--rank", "2", "--lam", "0"], ["width must be > 0"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "-1"], ["lam", "-1"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--save-params",
      "/nonexistent/d/p.json"], ["--save-params", "/nonexistent/d", "does not exist"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "nan"], ["lam", "nan"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--reg", "l2"],
     ["'l2'", "did you mean 'l1'", "block_path"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--dtype", "float16"],
     ["'float16'", "float32"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--device", "tpu"],
     ["'tpu'", "cpu"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--steps", "0"],
     ["steps must be > 0"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--compile-eps", "-1"],
     ["--compile-eps", "-1"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--compile-eps", "0.1",
      "--compile-budget-s", "-1"], ["--compile-budget-s", "-1"]),
    (["resnet", "train", "sin", "--width", "4", "--depth", "1", "--rank", "2", "--lam", "0", "--compile-eps", "0.1",
      "--save", "{missing}/n.blif"], ["--save", "does not exist"]),
    (["resnet", "train", "sin", "--width", "100000", "--depth", "100000", "--rank", "100000", "--lam", "0"],
     ["parameters per net", "at most"]),
    # --- sweep run
    (["sweep", "run", "{missing}.yaml"], ["{missing}.yaml", "does not exist"]),
    (["sweep", "run", "{spec}", "--num-cpus", "-1"], ["--num-cpus must be > 0", "-1"]),
    (["sweep", "run", "{spec}", "--num-cpus", "0"], ["--num-cpus must be > 0"]),
    (["sweep", "run", "{spec}", "--num-gpus", "nan"], ["--num-gpus", "nan"]),
    (["sweep", "run", "{spec}", "--results", "gs://bucket/x"], ["results.uri", "'gs://bucket/x'", "s3://"]),
    (["sweep", "run", "{spec}", "--results", "s3://Bad_Bucket/x"], ["not a valid s3://bucket/prefix"]),
    (["sweep", "run", "{spec}", "--tracking-uri", "sqlte:///x.db"], ["'sqlte://'", "did you mean 'sqlite'"]),
    (["sweep", "run", "{spec}", "--ray-address", "127.0.0.1:{port}"], ["cannot connect to Ray", "127.0.0.1:{port}"]),
    # --- sweep submit | status | sync-mlflow
    (["sweep", "submit", "{spec}", "--plugin", "{noop}"], ["--job-server http://"]),
    (["sweep", "submit", "{missing}.yaml", "--job-server", "http://127.0.0.1:{port}"], ["does not exist"]),
    (["sweep", "submit", "{spec}", "--job-server", "http://127.0.0.1:{port}", "--working-dir", "{missing}"],
     ["--working-dir", "{missing}"]),
    (["sweep", "submit", "{spec}", "--job-server", "http://127.0.0.1:{port}", "--timeout-s", "-1"],
     ["--timeout-s", "-1"]),
    (["sweep", "status", "{missing}.yaml"], ["does not exist"]),
    (["sweep", "status", "{spec}", "--results", "{missing}"], ["--results '{missing}' does not exist"]),
    (["sweep", "sync-mlflow", "{spec}", "--children", "group"], ["invalid choice 'group'", "valid choices: task"]),
    (["sweep", "sync-mlflow", "{spec}", "--results", "{missing}"], ["does not exist"]),
    # --- analyze
    (["analyze", "{missing}.yaml"], ["does not exist"]),
    (["analyze", "{spec}", "--results", "{missing}"], ["'{missing}' does not exist"]),
    (["analyze", "{spec}", "--no-mlflow", "--plugin", "{noop}"], ["results location", "does not exist"]),
]


def _fill(s: str, tmp: Path, spec: Path, port: int) -> str:
    return s.format(tmp=tmp, missing=tmp / "missing", spec=spec, port=port, noop=NOOP_PLUGIN)


class _Ran:
    """One command run for a case: its directory, the directory's listing before and after, the process."""

    def __init__(self, tmp: Path, spec: Path, argv: list[str]):
        self.tmp, self.spec, self.argv = tmp, spec, argv
        self.before = snapshot(tmp)
        self.port = self.args = self.p = self.after = None

    def run(self) -> "_Ran":
        self.port = free_port()           # a free port (a dead address) right before the command, as before
        self.args = [_fill(a, self.tmp, self.spec, self.port) for a in self.argv]
        self.p = run_htmc(self.args, self.tmp)
        self.after = snapshot(self.tmp)
        return self


@pytest.fixture(scope="module")
def ran(request, tmp_path_factory) -> dict:
    """Every collected case of this module, each the same real command line in its own subprocess and its own
    directory as before, run two at a time (this machine has 2 cores; one command is ~0.4-3 s of imports, ~90 of
    them) when the first case asks for them. Each case then checks its own process and directory."""
    from concurrent.futures import ThreadPoolExecutor
    todo = {}
    for item in request.session.items:
        if item.module is not request.module or "ran" not in getattr(item, "fixturenames", ()):
            continue
        params = item.callspec.params
        tmp = tmp_path_factory.mktemp("case")
        if "argv" in params:
            spec, argv = write_spec(tmp), params["argv"]
        else:
            spec = write_spec(tmp, **params["edit"])
            argv = ["sweep", "run", str(spec), "--no-progress", "--plugin", NOOP_PLUGIN]
        todo[item.nodeid] = _Ran(tmp, spec, argv)
    with ThreadPoolExecutor(2) as pool:
        return {k: pool.submit(r.run) for k, r in todo.items()}    # a case's error (a timeout) is its own


@pytest.mark.parametrize("argv,needles", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_cli_input_is_one_clear_line_and_writes_nothing(argv, needles, ran, request):
    r = ran[request.node.nodeid].result()
    assert r.args == [_fill(a, r.tmp, r.spec, r.port) for a in argv]
    assert_clear_error(r.p, [_fill(n, r.tmp, r.spec, r.port) for n in needles])
    assert r.after == r.before, r.after - r.before     # no results, db, report, file, pwned


# Bad specs: each fails with the file, the key's location and a suggestion, before Ray, the store or MLflow start.
BAD_SPECS = [
    ({"grid": "{x: [1, 2]}".replace("x", "xx")}, ["groups[0]", "'xx'", "did you mean 'x'"]),
    ({"kind": "circuit_serch"}, ["groups[0].kind", "'circuit_serch'", "did you mean 'circuit_search'"]),
    ({"kind": "circuit_search", "grid": "{function: sine, eps: 0.1}"}, ["'sine'", "did you mean 'sin'"]),
    ({"kind": "circuit_search", "grid": "{function: sin, eps: -0.1}"}, ["eps must be a number >= 0", "-0.1"]),
    ({"kind": "circuit_search", "grid": "{function: sin, eps: 0}"}, ["eps must be > 0 on the box domain"]),
    ({"kind": "circuit_search", "grid": "{function: sin, eps: .nan}"}, ["non-finite", "nan"]),
    ({"kind": "circuit_search", "grid": "{function: sin, eps: 0.1, methods: [[acb]]}"}, ["'acb'",
                                                                                       "did you mean 'abc'"]),
    ({"grid": "!!python/object/apply:os.system ['touch pwned']"}, ["not valid YAML",
                                                                   "could not determine a constructor"]),
]


@pytest.mark.parametrize("edit,needles", BAD_SPECS, ids=[str(e)[:50] for e, _ in BAD_SPECS])
def test_bad_spec_from_the_command_line(edit, needles, ran, request):
    r = ran[request.node.nodeid].result()
    assert r.args == ["sweep", "run", str(r.spec), "--no-progress", "--plugin", NOOP_PLUGIN]
    assert_clear_error(r.p, [str(r.spec)] + needles)
    assert r.after == r.before, r.after - r.before


def test_help_of_every_command_works():
    """The valid choices a message points to (`see htmc ... --help`) are there."""
    from concurrent.futures import ThreadPoolExecutor
    argvs = (["--help"], ["circuit", "exact", "--help"], ["circuit", "search", "--help"],
             ["circuit", "ladder", "--help"], ["resnet", "train", "--help"], ["sweep", "run", "--help"],
             ["sweep", "submit", "--help"], ["analyze", "--help"])
    with ThreadPoolExecutor(2) as pool:          # two at a time: independent processes
        runs = list(pool.map(lambda argv: run_htmc(argv, REPO), argvs))
    for argv, p in zip(argvs, runs):
        assert p.returncode == 0 and "usage: htmc" in p.stdout and not p.stderr, (argv, p.stderr)


def test_ladder_rejects_an_infeasible_last_rung_before_any_search():
    """Formerly the 30th rung failed only after ~10 minutes of searching the first 12."""
    import time

    from htmc.targets import make_function
    from htmc.rates.ladder import run_ladder
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="last rung"):
        run_ladder(make_function("sin"), 0.1, 30, methods=["abc"])
    assert time.monotonic() - t0 < 10


def test_ray_job_entry_point_with_a_dead_address_writes_nothing(tmp_path):
    """`python -m jobs.sweep` (what `ray job submit` runs) checks the Ray address before it touches the store."""
    spec = write_spec(tmp_path)
    port = free_port()
    before = snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "jobs.sweep", str(spec), "--ray-address", f"127.0.0.1:{port}",
                        "--plugin", NOOP_PLUGIN],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert_clear_error(p, ["cannot connect to Ray", f"127.0.0.1:{port}"])
    assert snapshot(tmp_path) == before, snapshot(tmp_path) - before

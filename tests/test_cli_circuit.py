"""`htmc circuit exact|synth`: the JSON contract and clear one-line errors."""
import json
import subprocess
import sys

import pytest

from conftest import BACKGROUND


def htmc(*args, env=None):
    import os
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, env=full_env)


def test_exact_json_contract():
    p = htmc("circuit", "exact", "--truth-table", "96", "--truth-table", "e8", "--inputs", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"gates", "aig_nodes", "optimal", "seconds"} <= set(out)
    assert out["gates"] == 5 and out["optimal"] is True


@pytest.mark.parametrize("args,needle", [
    (["--truth-table", "abc", "--inputs", "4"], "has 3 hex digits; 4 inputs need 4"),
    (["--truth-table", "zz", "--inputs", "3"], "non-hex"),
    (["--truth-table", "96", "--inputs", "40"], "--inputs must be between"),
])
def test_bad_hex_is_a_clear_error(args, needle):
    p = htmc("circuit", "exact", *args, "--json")
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr


def test_missing_abc_from_cli_is_a_clear_error():
    p = htmc("circuit", "synth", "-t", "e8", "-n", "3", env={"HTMC_ABC": "/nonexistent/abc"})
    assert p.returncode == 2 and "pip install pyosys" in p.stderr and "Traceback" not in p.stderr


def test_synth_saves_blif(tmp_path):
    out = tmp_path / "maj.blif"
    p = htmc("circuit", "synth", "-t", "e8", "-n", "3", "--save", str(out), "--json")
    assert p.returncode == 0, p.stderr
    from htmc.circuits.blif import read_blif
    from htmc.circuits.circuit import output_codes
    assert list(output_codes(read_blif(out.read_text()))) == [0, 0, 0, 1, 0, 1, 1, 1]


SEARCH_KEYS = {"function", "params", "eps", "gates", "aig_nodes", "max_error", "bits_in", "bits_out", "method",
               "verified", "seconds"}


def test_search_json_contract(tmp_path):
    out = tmp_path / "sin.blif"
    p = htmc("circuit", "search", "sin", "--param", "freq=1", "--eps", "0.05", "--methods", "abc,table",
             "--budget-s", "30", "--quick", "--save", str(out), "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert SEARCH_KEYS <= set(d) and d["verified"] and d["max_error"] <= 0.05
    assert d["params"] == {"freq": 1.0} and d["method"] in ("abc", "table")
    from htmc.circuits.blif import read_blif
    assert read_blif(out).size == d["gates"]


def ladder_command():
    """The command line of the ladder case (~15 s of ABC), run by conftest's background worker: its process and the
    directory that holds the plot."""
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="htmc-cli-ladder-"))
    return htmc("circuit", "ladder", "holder_random", "--param", "s=1", "--eps0", "0.25", "--steps", "3",
                "--methods", "abc", "--budget-s", "30", "--quick", "--plot", str(d / "ladder.png"), "--json"), d


BACKGROUND.job("test_ladder_json_contract_and_plot", ladder_command)


def test_ladder_json_contract_and_plot(request):
    import shutil
    p, d = BACKGROUND.result(request)
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    png = d / "ladder.png"
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert {"points", "gamma", "gamma_ci", "ci_note", "c", "polylog", "preferred_model", "delta_aic",
            "htmc_norm_at_rungs", "htmc_norm_over_range"} <= set(d)
    assert len(d["points"]) == 3 and all(SEARCH_KEYS <= set(pt) for pt in d["points"])
    assert all(pt["max_error"] <= pt["eps"] for pt in d["points"])
    assert d["gamma"] > 0 and set(d["htmc_norm_at_rungs"]) == set(d["htmc_norm_over_range"]) == {"2", "3", "4"}
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args,needle", [
    (["circuit", "search", "holder_randm", "--eps", "0.1"], "did you mean 'holder_random'"),
    (["circuit", "search", "sin", "--param", "frq=2", "--eps", "0.1"], "did you mean 'freq'"),
    (["circuit", "search", "sin", "--eps", "0.1", "--methods", "acb"], "did you mean 'abc'"),
    (["circuit", "search", "sin", "--eps", "-0.1"], "eps must be >= 0"),
    (["circuit", "search", "sin", "--eps", "0"], "box"),
    (["circuit", "search", "sin", "--eps", "0.1", "--param", "freq"], "key=value"),
    (["circuit", "ladder", "sin", "--eps0", "0.1", "--steps", "1"], "--steps >= 2"),
    (["circuit", "search", "cube", "--plugin", "/nonexistent/x.py", "--eps", "0.1"], "does not exist"),
])
def test_bad_search_input_is_a_clear_error(args, needle):
    p = htmc(*args)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr


PLUGIN = '''
import numpy as np
from htmc.targets import cell_bounds, register_function, Target

@register_function("cube", version="1")
class Cube(Target):
    """x^3 on [0,1]: monotone, so exact ranges."""
    d = 1
    gamma_theory = None

    def __init__(self, scale=1.0):
        self.params = {"scale": float(scale)}

    def _eval(self, x):
        return self.params["scale"] * x[:, 0] ** 3

    def _ranges(self, k):
        a, b = cell_bounds(self.d, k)
        return self._eval(a), self._eval(b)
'''


def test_plugin_function_from_the_command_line(tmp_path):
    plugin = tmp_path / "myfuncs.py"
    plugin.write_text(PLUGIN)
    p = htmc("circuit", "search", "cube", "--plugin", str(plugin), "--param", "scale=0.5", "--eps", "0.02",
             "--methods", "abc", "--quick", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["function"] == "cube" and d["verified"] and d["max_error"] <= 0.02
    p = htmc("functions", "list", "--plugin", str(plugin), "--json")
    assert "cube" in {r["name"] for r in json.loads(p.stdout)["functions"]}


def test_output_into_a_closed_pipe_is_no_traceback():
    """`htmc functions list | head -1`: the reader has gone before the output comes; exit 0, nothing on stderr."""
    import subprocess as sp
    p = sp.Popen([sys.executable, "-m", "jobs.cli", "functions", "list"], stdout=sp.PIPE, stderr=sp.PIPE)
    p.stdout.close()   # before the child has imported anything: its first write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(60) == 0 and "Traceback" not in err, err

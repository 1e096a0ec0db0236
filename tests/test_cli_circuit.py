"""`htmc circuit exact|synth`: the JSON contract and clear one-line errors."""
import json
import subprocess
import sys

import pytest


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
    from htmc.blif import read_blif
    from htmc.circuit import output_codes
    assert list(output_codes(read_blif(out.read_text()))) == [0, 0, 0, 1, 0, 1, 1, 1]

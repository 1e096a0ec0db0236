"""Exact B2 sizes (known minima) and ABC synthesis of random tables, all verified; ABC is never below exact."""
import numpy as np
import pytest

from conftest import BACKGROUND
from htmc.synthesis import abc_tool as abc_mod
from htmc.synthesis.boolean import boolean_abc, boolean_exact
from htmc.circuits.hextable import parse_hex, to_hex

XOR3, MAJ3 = "96", "e8"


@pytest.mark.parametrize("tables,n,gates", [
    ([XOR3], 3, 2),
    ([MAJ3], 3, 4),
    ([XOR3, MAJ3], 3, 5),  # full adder: sum and carry
    (["00"], 3, 0),        # a constant
    (["aa"], 3, 0),        # the wire x0
    (["cc"], 3, 0),        # the wire x1
    (["55"], 3, 1),        # NOT x0 needs one gate (B2 has no free output inverters)
    (["6996"], 4, 3),      # XOR of 4
])
def test_exact_sizes(tables, n, gates):
    res, circuit = boolean_exact([parse_hex(t, n) for t in tables])
    assert res.optimal and res.verified
    assert res.gates == gates


def test_hex_convention_matches_abc():
    bits = parse_hex("fee8", 4)  # at least 2 of 4 inputs
    assert [int(b) for b in bits] == [int(bin(i).count("1") >= 2) for i in range(16)]
    assert to_hex(bits) == "fee8"


def random_columns(n):
    rng = np.random.default_rng(n)
    return [rng.random(1 << n) < 0.5 for _ in range(2)]


def abc_of_random_columns(n):
    return boolean_abc(random_columns(n))


for _n in (8, 10, 12):    # ~2, ~3 and ~8 s of ABC, in conftest's background worker
    BACKGROUND.job(f"test_abc_synthesis_of_random_tables_is_verified[{_n}]", abc_of_random_columns, _n)


@pytest.mark.parametrize("n", [8, 10, 12])
def test_abc_synthesis_of_random_tables_is_verified(n, request):
    cols = random_columns(n)
    res, circuit = BACKGROUND.result(request)       # abc_of_random_columns(n)
    assert res.verified and res.gates > 0
    from htmc.circuits.circuit import output_codes
    u = output_codes(circuit)
    for j, col in enumerate(cols):
        np.testing.assert_array_equal((u >> j) & 1, col)


def test_abc_never_below_exact_on_tiny_functions():
    rng = np.random.default_rng(3)
    for _ in range(4):
        col = rng.random(16) < 0.5
        ex, _ = boolean_exact([col])
        ab, _ = boolean_abc([col], deepsyn_s=0)
        assert ex.optimal and ab.gates >= ex.gates


def test_missing_abc_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HTMC_ABC", "/nonexistent/abc")
    with pytest.raises(abc_mod.AbcNotFoundError, match="pip install pyosys"):
        abc_mod.abc_binary()
    monkeypatch.delenv("HTMC_ABC")
    monkeypatch.setitem(__import__("sys").modules, "pyosys", None)  # as if the wheel were not installed
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(abc_mod.AbcNotFoundError, match="apt-get install berkeley-abc"):
        abc_mod.abc_binary()

"""Issue 23: Boolean functions with more than 64 outputs synthesize and verify.

The circuits were right and the numeric verifier was wrong: it packed the m output bits into one int64 (wrapping
past 63) and decoded them as a float64 (rounding past 53). These tests check the bit-by-bit verifier against a
plain per-output check at 64, 65 and 200 outputs, on correct circuits and on circuits with one output wrong.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from htmc.circuits.builder import CircuitBuilder
from htmc.circuits.circuit import simulate, unpack_bits
from htmc.circuits.verify import (MAX_DECODED_BITS, VerificationError, bits_table, column_mismatch, verify,
                                  verify_columns)

N = 6


def _columns(m: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 2, 1 << N).astype(np.uint8) for _ in range(m)]


def _mux_circuit(columns):
    """One multiplexer tree per column (no ABC): a correct circuit of any width, quickly."""
    b = CircuitBuilder(N)
    return b.build([b.lut(b.inputs, [int(v) for v in col], 1)[0] for col in columns])


def _plain_mismatch(circuit, columns):
    """The reference: every output bit at every input code, compared one by one."""
    bits = unpack_bits(simulate(circuit), N)
    for j, col in enumerate(columns):
        for c in range(1 << N):
            if bool(bits[j, c]) != bool(col[c]):
                return j, c
    return None


@pytest.mark.parametrize("m", [64, 65, 200])
def test_bitwise_verifier_agrees_with_a_plain_per_output_check(m):
    cols = _columns(m, seed=m)
    good = _mux_circuit(cols)
    assert _plain_mismatch(good, cols) is None
    assert column_mismatch(good, cols) is None
    verify_columns(good, cols)
    # one output wrong: the first, the one past the int64 boundary (64) when there is one, and the last
    for j in sorted({0, min(64, m - 1), m - 1}):
        wrong = list(good.outputs)
        wrong[j] = good.outputs[(j + 1) % m]     # another column's driver: random columns differ somewhere
        bad = dataclasses.replace(good, outputs=wrong)
        want = _plain_mismatch(bad, cols)
        assert want is not None and want[0] == j
        assert column_mismatch(bad, cols) == want
        with pytest.raises(VerificationError, match=f"output {j} differs"):
            verify_columns(bad, cols)


def test_numeric_verifier_refuses_what_it_cannot_decode_exactly():
    cols = _columns(MAX_DECODED_BITS + 1, seed=1)
    with pytest.raises(ValueError, match="verify_columns"):
        bits_table(cols, N)
    table = bits_table(cols[:MAX_DECODED_BITS], N)
    circuit = _mux_circuit(cols)
    with pytest.raises(ValueError, match=f"{MAX_DECODED_BITS + 1} output bits"):
        verify(circuit, table)
    # up to 53 bits the numeric verifier stays exact: an error in the lowest bit shows as 1
    narrow = _mux_circuit(cols[:MAX_DECODED_BITS])
    assert verify(narrow, table).max_error == 0
    flipped = dataclasses.replace(narrow, outputs=[narrow.outputs[1]] + list(narrow.outputs[1:]))
    want = _plain_mismatch(flipped, cols[:MAX_DECODED_BITS])
    assert verify(flipped, table).max_error == 1.0 and want[0] == 0


def test_circuit_synth_cli_handles_65_outputs(capsys, tmp_path):
    """End to end through ABC's portfolio (which checks its candidates bit by bit) and the CLI."""
    from htmc.circuits.blif import read_blif
    from htmc.circuits.hextable import parse_hex
    from jobs.cli import main
    cols = _columns(65, seed=7)
    hexes = ["%016x" % int("".join(str(int(b)) for b in col[::-1]), 2) for col in cols]
    assert all(np.array_equal(parse_hex(h, N), col.astype(bool)) for h, col in zip(hexes, cols))
    out = tmp_path / "wide.blif"
    argv = ["circuit", "synth", "-n", str(N), "--json", "--save", str(out)]
    for h in hexes:
        argv += ["-t", h]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["verified"] is True and res["gates"] > 0 and res["note"] == ""
    circuit = read_blif(out.read_text())
    assert len(circuit.outputs) == 65 and _plain_mismatch(circuit, cols) is None

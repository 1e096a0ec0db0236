"""Circuit core: simulation against a naive evaluator, BLIF round trips, the verifier, malformed circuits."""
import numpy as np
import pytest

from htmc.circuits.blif import BlifError, read_blif, write_blif
from htmc.circuits.circuit import Circuit, CircuitError, Decoder, output_codes, random_circuit
from htmc.targets.table import IntervalTable
from htmc.circuits.verify import bits_table, require, VerificationError, verify


def naive_codes(c: Circuit) -> np.ndarray:
    """Row-by-row evaluation, independent of the bit-parallel simulator."""
    out = []
    for t in range(1 << c.n_inputs):
        v = [0, 1] + [(t >> i) & 1 for i in range(c.n_inputs)]
        for op, a, b in c.gates:
            v.append((op >> (v[a] + 2 * v[b])) & 1)
        out.append(sum(v[o] << j for j, o in enumerate(c.outputs)))
    return np.array(out)


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 9])
def test_simulation_matches_naive_evaluation(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        c = random_circuit(rng, n, 40, 3)
        np.testing.assert_array_equal(output_codes(c), naive_codes(c))


def test_simulation_chunks_agree():
    from htmc.circuits.circuit import simulate
    c = random_circuit(np.random.default_rng(1), 14, 300, 4)
    np.testing.assert_array_equal(simulate(c, chunk_words=7), simulate(c, chunk_words=4096))


def test_size_counts_only_live_gates():
    # x0 AND x1 feeds the output; the XOR gate is dead.
    c = Circuit(2, [(0b1000, 2, 3), (0b0110, 2, 3)], [4])
    assert c.size == 1 and c.pruned().size == 1 and len(c.pruned().gates) == 1


@pytest.mark.parametrize("seed", range(4))
def test_blif_round_trip_keeps_function(seed):
    rng = np.random.default_rng(seed)
    c = random_circuit(rng, 6, 60, 4)
    back = read_blif(write_blif(c))
    np.testing.assert_array_equal(output_codes(back), output_codes(c))
    assert back.size == c.size


def test_blif_inverters_are_absorbed():
    text = """.model t
.inputs a b
.outputs y z
.names a na
0 1
.names na b g
11 1
.names g y
0 1
.names b z
1 1
.end
"""
    c = read_blif(text)
    # y = NOT(NOT a AND b), z = b: one gate, the inverters cost nothing
    assert c.size == 1
    np.testing.assert_array_equal(output_codes(c), [1 | 0, 1 | 0, 0 | 2, 1 | 2])


def test_blif_cycle_is_a_clear_error():
    text = ".model t\n.inputs a\n.outputs y\n.names a q y\n11 1\n.names a y q\n11 1\n.end\n"
    with pytest.raises(CircuitError, match="cycle"):
        read_blif(text)


def test_blif_wide_node_and_latch_are_clear_errors():
    with pytest.raises(BlifError, match="3 inputs; map"):
        read_blif(".model t\n.inputs a b c\n.outputs y\n.names a b c y\n111 1\n.end\n")
    with pytest.raises(BlifError, match="latch"):
        read_blif(".model t\n.inputs a\n.outputs y\n.latch a y 0\n.end\n")


def test_circuit_out_of_order_and_cycle_errors():
    with pytest.raises(CircuitError, match="topological"):
        Circuit(2, [(0b1000, 2, 5), (0b1000, 2, 3)], [5])
    with pytest.raises(CircuitError, match="cycle through"):
        Circuit.from_unordered(2, {"g": (8, "a", "h"), "h": (8, "g", "b")}, ["g"], {"a": 2, "b": 3})


def test_verifier_catches_one_flipped_gate():
    rng = np.random.default_rng(7)
    c = random_circuit(rng, 8, 120, 5).pruned()
    table = bits_table([(output_codes(c) >> j) & 1 for j in range(5)], 8)
    assert require(c, table, 0.0).max_error == 0.0
    caught = 0
    for g in range(len(c.gates)):
        op, a, b = c.gates[g]
        bad = Circuit(c.n_inputs, c.gates[:g] + [(op ^ 0b1111, a, b)] + c.gates[g + 1:], c.outputs)
        if not np.array_equal(output_codes(bad), output_codes(c)):
            caught += 1
            with pytest.raises(VerificationError):
                require(bad, table, 0.0)
    assert caught > 0


def test_verifier_measures_error_against_cell_ranges():
    # one output bit, decoder y = 0.25 + u/2; f ranges [0, 0.5] on cell 0 and [0.5, 1] on cell 1
    c = Circuit(1, [], [2], Decoder(offset=0.25, shift=1))
    table = IntervalTable(1, 1, np.array([0.0, 0.5]), np.array([0.5, 1.0]))
    v = verify(c, table)
    assert v.max_error == pytest.approx(0.25) and v.within(0.25) and not v.within(0.2)

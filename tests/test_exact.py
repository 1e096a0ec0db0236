"""SAT exact synthesis (htmc.synthesis.sat_exact): known minima, brute force, relations, multi-output, budgets.

No timing asserts here; speed is measured by benchmarks/exact.py.
"""
import itertools

import numpy as np
import pytest

from conftest import BACKGROUND
from htmc.synthesis.boolean import boolean_exact
from htmc.circuits.circuit import CONST1, output_codes
from htmc.synthesis.sat_exact import exact_boolean, exact_synthesis
from htmc.circuits.hextable import parse_hex

ROWS = np.arange(16)
BITS = [(ROWS >> i) & 1 for i in range(4)]
LOW, HIGH = BITS[0] + 2 * BITS[1], BITS[2] + 2 * BITS[3]  # two 2-bit numbers on 4 inputs


def brute_force_costs(n: int = 3, max_gates: int = 4) -> np.ndarray:
    """Minimum B2 size of every n-input function, by breadth-first search over the sets of functions a chain of
    k gates computes (all 16 ops, no SAT, no normalization). Functions above max_gates stay -1."""
    full = (1 << (1 << n)) - 1
    inputs = [sum(1 << t for t in range(1 << n) if (t >> i) & 1) for i in range(n)]
    a, b = np.arange(full + 1)[:, None], np.arange(full + 1)[None, :]
    minterms = [~a & ~b, a & ~b, ~a & b, a & b]  # op bit m is the gate's value where a + 2b = m
    zero = np.zeros((full + 1, full + 1), dtype=np.int64)
    ops = np.stack([sum((minterms[m] for m in range(4) if (op >> m) & 1), zero) & full for op in range(16)])
    cost = np.full(full + 1, -1)
    cost[[0, full] + inputs] = 0
    chains = {()}  # the sets of gate functions of the chains of the current length
    for k in range(1, max_gates + 1):
        longer = set()
        for made in chains:
            signals = np.array(inputs + list(made))
            i, j = np.triu_indices(len(signals))
            new = np.unique(ops[:, signals[i], signals[j]])
            cost[new[cost[new] < 0]] = k
            if k < max_gates:
                longer.update(tuple(sorted(made + (int(f),))) for f in new if cost[f] != 0 and f not in made)
        chains = longer
    return cost


@pytest.fixture(scope="module")
def three_input_costs() -> np.ndarray:
    cost = brute_force_costs()
    assert (cost >= 0).all()  # every 3-input function has at most 4 gates
    return cost


def meets(circuit, allowed) -> bool:
    return all(int(u) in set(map(int, a)) for u, a in zip(output_codes(circuit), allowed))


def test_a_seven_gate_function_is_proved_optimal():
    # 166a: one of the 12 NPN classes of 4-input functions that need 7 gates (benchmarks/exact.py --npn)
    res, circuit = boolean_exact([parse_hex("166a", 4)], budget_s=120)
    assert res.gates == 7 and res.optimal and res.verified
    assert circuit.size == 7


@pytest.mark.parametrize("tables,n,gates", [
    (["6996"], 4, 3),            # XOR of 4: n-1 gates
    (["e8"], 3, 4),              # majority of 3 (Knuth 7.1.2)
    (["96", "e8"], 3, 5),        # full adder (Knuth 7.1.2)
    (["55"], 3, 1),              # NOT x0: complementing an input is never free
    (["aa", "55"], 3, 1),        # x0 and NOT x0
    (["e8", "17"], 3, 5),        # majority and its complement: one gate cannot give both polarities
    (["8", "7"], 2, 2),          # AND and NAND, likewise
    (["0", "f"], 2, 0),          # constants
    (["1"], 1, 1),               # NOT x0 with one input: the gate reads x0 twice
])
def test_known_minima(tables, n, gates):
    res, _ = boolean_exact([parse_hex(t, n) for t in tables])
    assert res.optimal and res.verified and res.gates == gates


def test_zero_inputs_is_a_constant():
    res = exact_synthesis(0, [np.array([1])], 1)
    assert res.gates == 0 and res.optimal and res.circuit.outputs == [CONST1]


def test_every_three_input_function_matches_brute_force(three_input_costs):
    for f in range(256):
        res, _ = boolean_exact([(f >> np.arange(8)) & 1 == 1])
        assert res.optimal and res.verified and res.gates == three_input_costs[f], f"function {f:02x}"


@pytest.mark.parametrize("seed", range(6))
def test_dont_care_relation_matches_brute_force(seed, three_input_costs):
    """Two allowed words on three rows (row 0 included, where the output polarity is decided): the minimum is the
    cheapest completion, from the brute-force table."""
    rng = np.random.default_rng(seed)
    f = int(rng.integers(256))
    free = [0] + [int(t) for t in rng.choice(np.arange(1, 8), size=2, replace=False)]
    allowed = [np.array([0, 1]) if t in free else np.array([(f >> t) & 1]) for t in range(8)]
    completions = [f & ~sum(1 << t for t in free) | sum(b << t for b, t in zip(bits, free))
                   for bits in itertools.product((0, 1), repeat=len(free))]
    res = exact_synthesis(3, allowed, 1)
    assert res.optimal and meets(res.circuit, allowed)
    assert res.gates == min(three_input_costs[c] for c in completions)


def test_error_tolerance_relation_lowers_the_minimum():
    """0 <= y - u <= 1 for the 2-bit count u of ones among 3 inputs is not a per-bit don't-care: where u = 1 it
    allows the words 01 and 10 but not 00 or 11. The minimum must be the cheapest function inside the relation,
    found here by solving each of the 128 exactly, and it is below the full adder's 5."""
    u = sum((np.arange(8) >> i) & 1 for i in range(3))
    allowed = [np.array([w for w in (c, c + 1) if w < 4]) for c in u]
    res = exact_synthesis(3, allowed, 2)
    assert res.optimal and meets(res.circuit, allowed)
    cheapest = min(exact_boolean([np.array(ws) & 1 == 1, np.array(ws) >> 1 == 1]).gates
                   for ws in itertools.product(*allowed))
    assert res.gates == cheapest < 5


MULTI_OUTPUT = [
    # Minima confirmed by ABC's `exact -C 0` with "=" (8421) complemented to 7bde: ABC has no free output inverter,
    # and complementing a gate output costs nothing here. 2-bit comparator (<, =, >): 7310 7bde 08ce gives 8.
    ([LOW < HIGH, LOW == HIGH, LOW > HIGH], 8),
    # the high 3 bits of the 2x2-bit product and "=": 6ac0 4c00 8000 7bde gives 9.
    ([((LOW * HIGH) >> j) & 1 == 1 for j in (1, 2, 3)] + [LOW == HIGH], 9),
]


def multi_output_result(columns):
    return boolean_exact(columns, budget_s=300)[0]


for i, (cols, _) in enumerate(MULTI_OUTPUT):    # the proofs (~3 and ~27 s) run in conftest's background worker
    BACKGROUND.job(f"test_multi_output_eight_and_nine_gates[columns{i}-{MULTI_OUTPUT[i][1]}]", multi_output_result,
                   cols)


@pytest.mark.parametrize("columns,gates", MULTI_OUTPUT)
def test_multi_output_eight_and_nine_gates(columns, gates, request):
    res = BACKGROUND.result(request)                # boolean_exact(columns, budget_s=300)[0]
    assert res.optimal and res.verified and res.gates == gates


def test_budget_runs_out_without_a_claim():
    res = exact_synthesis(4, [np.array([int(b)]) for b in parse_hex("166a", 4)], 1, budget_s=0.2)
    assert res.circuit is None and not res.optimal and res.lower_bound <= 7

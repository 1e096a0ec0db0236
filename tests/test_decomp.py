"""Past 16 input bits (issue 15): input orders, the decomp method (cofactors on the top bits), Lupanov's
construction, and the search's reach to 24 bits. Every circuit here is checked on all its input codes."""
import time

import numpy as np
import pytest

from conftest import BACKGROUND
from htmc.circuits.builder import CircuitBuilder
from htmc.circuits.circuit import output_codes
from htmc.circuits.permute import interleaved_order, permute_values, rename_inputs
from htmc.synthesis import relation
from htmc.synthesis.abc_method import abc_method
from htmc.synthesis.decomp_method import decomp_method, decompose
from htmc.synthesis.lupanov import best_split, lupanov_bits, lupanov_bound, lupanov_method
from htmc.synthesis.problem import Problem
from htmc.synthesis.search import _resolutions, max_inputs_for, search
from htmc.targets import IntervalTable, make_function


def _grid_problem(u: np.ndarray, d: int, k: int, budget_s: float = 60) -> Problem:
    table = IntervalTable.exact(u.astype(np.float64), d, k)
    return Problem(None, table, 0.0, relation.code_space(table, 0.0, 0), time.monotonic() + budget_s)


def test_interleaved_order_puts_every_coordinate_msb_on_top():
    # d=2, k=2: original inputs are x1 = (b0, b1), x0 = (b2, b3) (coordinate 0 is the high block)
    assert interleaved_order(2, 2) == [0, 2, 1, 3]
    assert interleaved_order(3, 1) == [0, 1, 2]
    assert interleaved_order(1, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="permutation of 0..3"):
        permute_values(np.arange(16), [0, 1, 1, 3])


def test_a_circuit_on_the_interleaved_code_maps_back():
    d, k = 2, 4
    rng = np.random.default_rng(3)
    u = rng.integers(0, 8, 1 << (d * k))
    p = interleaved_order(d, k)
    up = permute_values(u, p)
    assert not np.array_equal(up, u)
    b = CircuitBuilder(d * k)
    circuit = b.build(b.lut(b.inputs, up.tolist(), 3, order="msb"))
    assert np.array_equal(output_codes(circuit), up)
    back = rename_inputs(circuit, p)
    assert back.size == circuit.size and np.array_equal(output_codes(back), u)


def interleaved_abc_attempts():
    return abc_method(_grid_problem(np.random.default_rng(5).integers(0, 4, 1 << 6), 2, 3))


def lupanov_search_past_16_bits():
    return search(make_function("holder_random", d=2, s=1.0, seed=0), 0.025, methods=["lupanov"], budget_s=120,
                  thorough=False)


# the two ABC / Lupanov calls of ~8 and ~9 s, in conftest's background worker
BACKGROUND.job("test_abc_tries_the_interleaved_order_for_d2", interleaved_abc_attempts)
BACKGROUND.job("test_search_reaches_past_16_bits_only_with_wide_methods", lupanov_search_past_16_bits)


def test_abc_tries_the_interleaved_order_for_d2(request):
    attempts = BACKGROUND.result(request)           # interleaved_abc_attempts()
    strategies = {a.strategy for a in attempts if a.verified and a.max_error == 0.0}
    assert {"msb_dc", "msb_dc/interleaved", "trailing_zeros", "trailing_zeros/interleaved"} <= strategies


def _repeating_codes(n: int, ci: int, m: int, rng) -> tuple[np.ndarray, set]:
    """Codes over n inputs whose 2^(n-ci) cofactors are 3 distinct tables or their complements."""
    y = np.arange(1 << ci)
    bases = [(y * y >> (2 * ci - m)) & ((1 << m) - 1), (y >> (ci - m)) ^ (y & 1), (y * 3 >> (ci - m + 2)) & 3]
    pick = rng.integers(0, 3, 1 << (n - ci))
    flip = rng.integers(0, 2, 1 << (n - ci))
    full = (1 << m) - 1
    rows = [full - bases[i] if f else bases[i] for i, f in zip(pick, flip)]
    return np.concatenate(rows).astype(np.int64), set(pick.tolist())


def test_decomp_on_18_inputs_verifies_and_reuses_cofactors():
    n, ci, m = 18, 14, 4
    u, used = _repeating_codes(n, ci, m, np.random.default_rng(0))
    attempts = decomp_method(_grid_problem(u, 1, n))
    assert len(attempts) == 1 and attempts[0].verified and attempts[0].max_error == 0.0
    assert attempts[0].note.startswith(f"cofactors=16 unique={len(used)} ")  # 3 distinct, the rest reused
    assert np.array_equal(output_codes(attempts[0].circuit), u)


def test_decompose_counts_complements_as_reuse():
    u, used = _repeating_codes(12, 8, 3, np.random.default_rng(2))
    circuit, stats = decompose(u, 3, 12, cofactor_inputs=8)
    assert np.array_equal(output_codes(circuit), u)
    assert (stats.cofactors, stats.unique) == (16, len(used))


def test_decomp_against_plain_abc_where_both_run():
    # Measured 2026-12-01: 204 gates (10-input cofactors, 3 distinct) against 175 and, in a later run, 357 for
    # ABC on the whole table (its &deepsyn works to a time budget, so it varies). Splitting loses the sharing
    # across cofactors, so decomp need not beat abc below 16 inputs: the test bounds the gap, and checks that abc
    # cannot run where decomp does.
    n, ci, m = 14, 10, 4
    u, _ = _repeating_codes(n, ci, m, np.random.default_rng(1))
    best = lambda att: min(a.gates for a in att if a.verified)
    circuit, stats = decompose(u, m, n, cofactor_inputs=ci)
    assert np.array_equal(output_codes(circuit), u) and stats.unique == 3
    abc = best(abc_method(_grid_problem(u, 1, n)))
    assert circuit.size <= 1.3 * abc, (circuit.size, abc)
    assert abc_method(_grid_problem(np.concatenate([u] * 8), 1, n + 3)) == []


@pytest.mark.parametrize("n,m", [(10, 1), (12, 2)])
def test_lupanov_is_correct_and_within_its_bound_on_random_tables(n, m):
    u = np.random.default_rng(n).integers(0, 1 << m, 1 << n)
    b = CircuitBuilder(n)
    circuit = b.build(lupanov_bits(b, b.inputs, u, m, mix=False))
    assert np.array_equal(output_codes(circuit), u)
    r, s = best_split(n, m)
    assert circuit.size <= lupanov_bound(n, r, s, m) <= 5 * m * 2 ** n / n


def test_lupanov_bound_approaches_2_to_the_n_over_n():
    ratio = lambda n: lupanov_bound(n, *best_split(n)) / (2 ** n / n)
    assert ratio(24) < ratio(16) < ratio(10)
    assert ratio(24) < 2.5


def test_lupanov_method_verifies_in_both_orders():
    f = make_function("holder_random", d=2, s=1.0, seed=0)
    table = f.table(6, "box")
    space = relation.code_space(table, 0.1, relation.coarsest_shift(table, 0.1))
    attempts = lupanov_method(Problem(f, table, 0.1, space, time.monotonic() + 60))
    assert [a.strategy for a in attempts] == ["msb_dc", "msb_dc/interleaved"]
    assert all(a.verified and a.max_error <= 0.1 and a.gates > 0 for a in attempts)


def test_search_reaches_past_16_bits_only_with_wide_methods(request):
    f = make_function("holder_random", d=2, s=1.0, seed=0)
    assert max_inputs_for(["table", "abc"]) == 16 and max_inputs_for(["abc", "decomp"]) == 24
    with pytest.raises(ValueError, match="more than 16 input bits"):
        _resolutions(f, 0.0125, "box", None, max_inputs_for(["abc"]))
    assert _resolutions(f, 0.0125, "box", None, max_inputs_for(["lupanov"]))[0] == 9
    res = BACKGROUND.result(request)    # lupanov_search_past_16_bits(): quick mode, the finer k = 9
    assert res.best is not None and res.best.bits_in == 18 and res.best.max_error <= 0.025

"""'Within eps' means max_error <= eps with no tolerance (DESIGN §2.2; issue 12), and optimal is a minimum
within one format only."""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

from htmc.synthesis import code_strategies, relation
from htmc.circuits.circuit import Circuit, Decoder
from htmc.targets import make_function
from htmc.synthesis.problem import METHODS, Problem
from htmc.synthesis.search import search
from htmc.targets.table import IntervalTable, sub_up
from htmc.circuits.verify import require, VerificationError, verify

EPS = 2.0 ** -4
OVER = 5.7e-14  # what FLOAT_SLACK = 1e-12 let through (search(sin, 2^-4, ['table']) before issue 12)


def test_sub_up_is_the_exact_ceiling_of_a_difference():
    rng = np.random.default_rng(0)
    a = rng.uniform(-4, 4, 3000) * 2.0 ** rng.integers(-30, 3, 3000)
    b = a + rng.uniform(-1, 1, 3000) * 2.0 ** rng.integers(-60, 0, 3000)
    for x, y, up in zip(a, b, sub_up(a, b)):
        true = Fraction(x) - Fraction(y)
        assert Fraction(float(up)) >= true                          # an upper bound ...
        assert Fraction(float(np.nextafter(up, -np.inf))) < true    # ... and the smallest float that is one


def _constant_table(value: float) -> IntervalTable:
    return IntervalTable(1, 1, np.array([value, value]), np.array([value, value]))


def test_a_code_just_over_eps_is_rejected():
    """Code 0.5 is eps + 5.7e-14 from the cell's value: the old slack accepted it, exact comparison does not."""
    table = _constant_table(0.5 + EPS + OVER)
    assert (0.5 + EPS + OVER) - 0.5 > EPS                            # the code really is over eps
    space = relation.code_space(table, EPS, shift=1)                     # output step 1/2
    assert space is None or all(space.decoder.offset + u * 0.5 != 0.5
                                for u in range(int(space.uL[0]), int(space.uH[0]) + 1))
    c = Circuit(1, [], [0], Decoder(0.5, 0))                        # the constant 0.5
    v = verify(c, table)
    assert v.max_error > EPS and not v.within(EPS)
    with pytest.raises(VerificationError):
        require(c, table, EPS)


def test_a_code_at_exactly_eps_is_accepted():
    table = _constant_table(0.5 + EPS)
    space = relation.code_space(table, EPS, shift=1)
    assert space is not None
    c = Circuit(1, [], [0], Decoder(0.5, 0))
    assert verify(c, table).max_error == EPS and require(c, table, EPS).within(EPS)


def test_feasible_is_exact():
    lo, hi = np.array([0.0, 0.0]), np.array([2 * EPS, 2 * EPS])
    assert relation.feasible(IntervalTable(1, 1, lo, hi), EPS)
    assert not relation.feasible(IntervalTable(1, 1, lo, hi + OVER), EPS)


@pytest.mark.parametrize("name, eps", [("sin", 2.0 ** -4), ("exp", 2.0 ** -4), ("sqrt", 2.0 ** -3)])
def test_table_search_attempts_are_within_eps_exactly(name, eps):
    """The cases where the old slack returned verified attempts 5.7e-14 over eps."""
    r = search(make_function(name), eps, methods=["table"], budget_s=30)
    done = [a for a in r.attempts if a.verified]
    assert done and all(a.max_error <= eps for a in done)


def test_exact_synthesis_tries_one_more_output_bit():
    """Issue 12's counter-example: intervals L=[3,2,0,1], U=[4,2,1,2] need 2 gates at m=2 and 1 gate at m=3."""
    table = IntervalTable(1, 2, np.array([3.5, 2.0, 0.5, 1.5]), np.array([3.5, 2.0, 0.5, 1.5]))
    space = relation.code_space(table, 0.5, 0)
    assert space.uL.tolist() == [3, 2, 0, 1] and space.m == 2
    attempts = METHODS.get("exact")(Problem(None, table, 0.5, space, time.monotonic() + 120))
    by_m = {a.bits_out: a for a in attempts}
    assert by_m[2].gates == 2 and by_m[3].gates == 1
    assert all(a.optimal_in_format and a.max_error <= 0.5 for a in attempts)


def test_search_records_the_format_beside_optimal_in_format():
    from htmc.tasks import search_record
    target = make_function("parity", d=1, bits=2)
    r = search(target, 0.25, methods=["exact"], bits=2, budget_s=60)
    rec = search_record(target, 0.25, r).to_row()
    assert rec["gates"] == 1 and rec["optimal_in_format"] is True and "optimal" not in rec
    assert {rec["k"], rec["bits_in"]} == {2} and rec["bits_out"] == 1
    assert rec["shift"] is not None and rec["offset"] is not None


def test_exact_rounded_marks_grid_rungs_with_one_code_per_cell():
    target = make_function("product")
    fine = search(target, 0.0, domain="grid", methods=["table"], bits=2)
    assert fine.exact_rounded                    # eps = 0 on the grid: the exactly rounded table
    coarse = search(target, 0.2, domain="grid", methods=["table"], bits=2)
    assert not coarse.exact_rounded              # slack left: not the exact circuit
    box = search(target, 0.2, methods=["table"], bits=2)
    assert not box.exact_rounded                 # the box has no exact circuit (DESIGN §2.3)


def test_attempt_leaves_the_methods_circuit_alone():
    from htmc.synthesis.problem import make_attempt as _attempt
    table = _constant_table(0.25)
    space = relation.code_space(table, EPS, 2)
    c = Circuit(1, [], [0], Decoder(7.0, 0))
    a = _attempt(Problem(None, table, EPS, space, time.monotonic() + 10), "table", "round", c, 0.0)
    assert c.decoder == Decoder(7.0, 0) and a.circuit.decoder == space.decoder

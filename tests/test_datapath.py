"""The `datapath` method (issue 15, structured synthesis): fixed-point datapaths from a target's formula
(htmc.synthesis.expr), with a proven error bound (htmc.synthesis.fixedpoint) and the verifier's final word."""
from __future__ import annotations

import time

import numpy as np
import pytest

from htmc.circuits.verify import verify
from htmc.synthesis import expr
from htmc.synthesis.expr import relu, x
from htmc.synthesis.fixedpoint import Format, compile_expr
from htmc.synthesis.datapath_method import datapath_method
from htmc.synthesis.problem import Problem
from htmc.synthesis.search import search
from htmc.targets import Target, cell_bounds, make_function


def _best(target, eps, domain, bits=None):
    if domain == "grid":   # one resolution: the method itself (search's code space on 2^16 cells costs seconds)
        problem = Problem(target, target.table(bits, domain), eps, None, time.monotonic() + 60)
        attempts = datapath_method(problem)
        assert len(attempts) == 1 and attempts[0].verified, [a.note for a in attempts]
        best = attempts[0]
    else:
        r = search(target, eps, domain, methods=["datapath"], budget_s=60, bits=bits)
        assert r.best is not None, [a.note for a in r.attempts]
        best = r.best
    # the verifier's own word, recomputed here on the best circuit
    assert verify(best.circuit, target.table(best.k, domain)).max_error <= eps
    return best


def test_product_on_the_8_bit_grid_within_2_8_in_at_most_300_gates():
    # today's C-bar: 11,311 gates (ABC on the rounded table); Yosys' high byte of an 8x8 product: ~320
    b = _best(make_function("product"), 2.0 ** -8, "grid", bits=8)
    assert b.method == "datapath" and b.bits_in == 16
    assert b.gates <= 300 and b.max_error <= 2.0 ** -8


def test_box_product_at_2_5_four_times_below_the_table():
    b = _best(make_function("product"), 2.0 ** -5, "box")   # today: 740 gates
    assert b.gates <= 185 and b.max_error <= 2.0 ** -5


@pytest.mark.parametrize("domain, eps, bits, gates", [("grid", 2.0 ** -8, 8, 45), ("box", 2.0 ** -5, None, 31)])
def test_absdiff(domain, eps, bits, gates):
    b = _best(make_function("absdiff"), eps, domain, bits)
    assert b.gates <= gates and b.max_error <= eps   # measured 2026-12-01


def test_grid_absdiff_drops_the_plus_one_of_the_negation():
    """|X0 - X1| 2^-8 is exact on the grid; without the + 1 it errs by one step on half the cells, centred by
    the decoder to half a step = eps / 2, which the slack allows, and it is smaller."""
    tab = make_function("absdiff").table(8, "grid")
    with_one = compile_expr(abs(x(0) - x(1)), 2, 8, "grid", Format(-8, -8, None, True))
    without = compile_expr(abs(x(0) - x(1)), 2, 8, "grid", Format(-8, -8, None, False))
    assert with_one.bound == 0 and verify(with_one.circuit, tab).max_error == 0
    assert without.bound == 2.0 ** -9 and verify(without.circuit, tab).max_error == 2.0 ** -9
    assert without.circuit.size < with_one.circuit.size


@pytest.mark.parametrize("name, params, domain, k, fmt", [
    ("product", {}, "grid", 8, Format(-8, -8, 2)),
    ("product", {}, "box", 6, Format(-6, -6, 1)),
    ("absdiff", {}, "box", 6, Format(-5, -5, 0, False)),
    ("relu_ridges", {"m": 3}, "box", 5, Format(-8, -6, 1)),
    ("relu_ridges", {"m": 3}, "grid", 5, Format(-5, -5, 0)),
])
def test_the_proven_bound_holds(name, params, domain, k, fmt):
    """The interval bound is a proof: the verified error never exceeds it (up to the ranges' outward pads)."""
    t = make_function(name, **params)
    c = compile_expr(expr.formula_of(t), t.d, k, domain, fmt)
    err = verify(c.circuit, t.table(k, domain)).max_error
    assert 0 < err <= float(c.bound) * (1 + 1e-9)


class RampTimesY(Target):
    """A plugin target that declares its formula: relu(x0 - 1/4) x1 + x0 / 4, increasing in both coordinates,
    so its ranges are the values at the cell corners (exact: dyadic corners, a few exact float operations)."""
    d = 2
    name, version = "ramp_times_y", "1"

    def __init__(self):
        self.params = {}

    def _eval(self, xs):
        return np.maximum(xs[:, 0] - 0.25, 0.0) * xs[:, 1] + xs[:, 0] / 4

    def _ranges(self, k):
        a, b = cell_bounds(2, k)
        return self._eval(a), self._eval(b)

    def formula(self):
        return relu(x(0) - 0.25) * x(1) + x(0) / 4


def test_a_plugin_target_with_a_formula():
    t = RampTimesY()
    pts = np.random.default_rng(0).uniform(0, 1, (256, 2))
    assert np.array_equal(expr.evaluate(t.formula(), pts), t(pts))
    b = _best(t, 2.0 ** -5, "box")
    assert b.method == "datapath" and b.gates <= 200


def test_targets_without_a_formula_are_skipped():
    r = search(make_function("sin"), 2.0 ** -4, "box", methods=["datapath"], budget_s=10)
    assert r.best is None and {a.note for a in r.attempts} == {"not applicable: no formula"}   # issue 23: said so


@pytest.mark.parametrize("name, params", [("relu_ridges", {"m": 5}), ("compositional", {"d": 2, "inner_d": 1})])
def test_formulas_match_their_targets(name, params):
    t = make_function(name, **params)
    pts = np.random.default_rng(1).uniform(0, 1, (512, t.d))
    assert np.max(np.abs(expr.evaluate(expr.formula_of(t), pts) - t(pts))) <= 1e-14


def test_compositional_through_tables():
    """h(mean(g_0(x0), g_1(x1))): two tables of the inner functions' ranges, a sum, a table of h (measured: 229
    gates at k = 7; the coarsest k = 6 has too little slack for the rounded midpoints)."""
    b = _best(make_function("compositional", d=2, inner_d=1), 2.0 ** -2, "box", bits=7)
    assert b.method == "datapath" and b.max_error <= 2.0 ** -2 and b.gates <= 300


@pytest.mark.parametrize("make, match", [
    (lambda: expr.check(x(2) * x(0), 2), r"x\(2\) is out of range: the target has d=2 inputs x\(0\)..x\(1\)"),
    (lambda: x(0) * "half", r"cannot use 'half' \(str\) in an expression: valid operands are Expr"),
    (lambda: x(0) / 3, r"divides only by a positive power of two, got 3"),
    (lambda: x(0) + float("nan"), r"constant nan in an expression must be finite"),
    (lambda: x(-1), r"input index must be an integer >= 0, got -1"),
    (lambda: x(0) << 1.5, r"shift amount must be an integer in \[-64, 64\], got 1.5"),
    (lambda: expr.check(0.5, 2), r"a formula must be an htmc.synthesis.expr.Expr, got 0.5 \(float\)"),
    (lambda: expr.check(expr.Expr("sqrt", (x(0),)), 1), r"unknown expression node sqrt: valid ops are input"),
])
def test_bad_expressions_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_target_with_a_bad_formula_fails_loudly():
    class Bad(RampTimesY):
        def formula(self):
            return x(0) * x(5)
    with pytest.raises(ValueError, match=r"x\(5\) is out of range"):
        search(Bad(), 2.0 ** -4, "box", methods=["datapath"], budget_s=10)


@pytest.mark.parametrize("tree, domain, k, fmt, builder_smaller", [
    (x(0) * x(1), "grid", 6, Format(-6, -6), True),
    (abs(x(0) - x(1)), "box", 5, Format(-5, -5, None, True), False),              # Yosys: 35, builder: 36
    (relu(x(0) - 0.25) * x(1) + x(0) / 4, "box", 5, Format(-7, -5), False),       # Yosys: 182, builder: 184
])
def test_the_yosys_route_computes_the_builder_datapath(tree, domain, k, fmt, builder_smaller):
    """Word-level Verilog through Yosys and ABC computes exactly the builder's untruncated datapath (same codes on
    every input, so the same decoder and proven bound); the builder's multiplier is no larger (measured)."""
    from htmc.circuits.circuit import output_codes
    from htmc.synthesis.datapath_verilog import yosys_circuit
    ref = compile_expr(tree, 2, k, domain, fmt)
    got = yosys_circuit(tree, 2, k, domain, fmt)
    assert got is not None and got.bound == ref.bound
    assert np.array_equal(output_codes(got.circuit), output_codes(ref.circuit))
    if builder_smaller:
        assert ref.circuit.size <= got.circuit.size


def test_the_yosys_route_skips_tables():
    from htmc.synthesis.datapath_verilog import yosys_circuit
    t = make_function("compositional", d=2, inner_d=1)
    assert yosys_circuit(expr.formula_of(t), 2, 4, "box", Format(-4, -4)) is None


def test_exact_grid_product_at_eps_0():
    """eps = 0 on the grid: the exact 4x4 product, formats from the input step down to its cube (measured: 64)."""
    b = _best(make_function("product"), 0.0, "grid", bits=4)
    assert b.max_error == 0.0 and b.bits_out == 8 and b.gates <= 64


_CONSTS = (0.25, -0.5, 0.375, 1.5, -0.8125)


def _random_tree(rng, depth):
    if depth == 0 or rng.random() < 0.25:
        return x(int(rng.integers(2))) if rng.random() < 0.8 else expr.const(float(rng.choice(_CONSTS)))
    op, a = rng.choice(["add", "sub", "mul", "abs", "relu", "neg", "shift", "cmul"]), _random_tree(rng, depth - 1)
    unary = {"abs": lambda: abs(a), "relu": lambda: relu(a), "neg": lambda: -a,
             "shift": lambda: a << int(rng.integers(-2, 3)), "cmul": lambda: a * float(rng.choice(_CONSTS))}
    if op in unary:
        return unary[op]()
    b = _random_tree(rng, depth - 1)
    return {"add": a + b, "sub": a - b, "mul": a * b}[op]


@pytest.mark.parametrize("domain", ["grid", "box"])
def test_the_proof_is_sound_on_random_trees(domain):
    """60 random trees of depth 3 (dyadic constants, so float evaluation is exact), 4 formats each: the verified
    error never exceeds the proven bound. On the box the reference range of each cell is sampled on a 17 x 17
    grid with its corners, a lower bound of the true range, so an error above the bound there is a real one."""
    from htmc.targets.table import IntervalTable, cell_index_grid
    rng, k = np.random.default_rng(7 if domain == "box" else 5), 3
    codes = cell_index_grid(2, k) / 8.0
    sub = np.linspace(0, 1, 17 if domain == "box" else 1)[:, None] / 8.0 * (domain == "box")
    pts = (codes[:, None, None, :] + np.stack(np.meshgrid(sub[:, 0], sub[:, 0], indexing="ij"), -1)[None])
    pts = pts.reshape(-1, 2)
    for _ in range(60):
        tree = _random_tree(rng, 3)
        v = expr.evaluate(tree, pts).reshape(len(codes), -1)
        table = IntervalTable(2, k, v.min(1), v.max(1), domain)
        for fmt in (Format(-3, -3), Format(-5, -4, 1), Format(-4, -2, 0, False, 1), Format(-8, -6, 2)):
            c = compile_expr(tree, 2, k, domain, fmt)
            assert verify(c.circuit, table).max_error <= float(c.bound) * (1 + 1e-12), (tree, fmt)

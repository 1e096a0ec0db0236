"""Gate-level arithmetic (htmc.circuits.builder) checked exhaustively against Python integers, its gate counts, ABC
post-optimization, and the `arith` piecewise-polynomial search (htmc.synthesis.piecewise) under the verifier."""
import itertools

import numpy as np
import pytest

from htmc.synthesis.abc_tool import optimize_with_abc, run_script, synthesize
from htmc.circuits.builder import (bits_value, CircuitBuilder, digits_binary, digits_csd, FALSE, signed_width, TRUE)
from htmc.circuits.circuit import output_codes
from htmc.synthesis.piecewise import _kept_product, arith_circuit, search
from htmc.targets.table import IntervalTable
from htmc.circuits.verify import verify


def simulate(n_inputs, make):
    """Build make(builder, inputs) -> output literals; return (circuit, codes over all 2^n inputs)."""
    b = CircuitBuilder(n_inputs)
    bits = make(b, b.inputs)
    c = b.build(bits)
    return c, output_codes(c), bits


def operands(widths, signed):
    """Python integer values of consecutive input fields of the given widths, for every input code."""
    codes = np.arange(1 << sum(widths), dtype=np.int64)
    out, pos = [], 0
    for w in widths:
        v = (codes >> pos) & ((1 << w) - 1)
        out.append(v - ((v >> (w - 1) & 1) << w) if signed else v)
        pos += w
    return out


# --- literals, folding, hashing ----------------------------------------------------------------------------------

def test_folding_and_hashing_cost_nothing():
    b = CircuitBuilder(2)
    x, y = b.inputs
    assert b.and_(x, x) == x and b.and_(x, x ^ 1) == FALSE and b.xor(x, x ^ 1) == TRUE
    assert b.and_(x, TRUE) == x and b.or_(x, TRUE) == TRUE and b.xor(y, TRUE) == y ^ 1
    g = b.and_(x, y)
    assert b.and_(y, x) == g and b.gate(0b0111, x, y) == g ^ 1  # NAND shares the AND node
    assert b.or_(x ^ 1, y ^ 1) == g ^ 1                           # De Morgan: same node
    assert len(b.gates) == 1


def test_mux_special_cases_use_fewest_gates():
    b = CircuitBuilder(3)
    s, a, c = b.inputs
    assert b.cost(lambda: [b.mux(s, a, c)]) == 3
    assert b.cost(lambda: [b.mux(s, a, a ^ 1)]) == 1     # s XOR a
    assert b.cost(lambda: [b.mux(s, FALSE, c)]) == 1     # s AND c
    assert b.cost(lambda: [b.mux(s, a, TRUE)]) == 1      # s OR a
    assert b.cost(lambda: [b.mux(s, s, c)]) == 1         # s ? c : 0
    assert b.mux(s, a, a) == a and b.mux(TRUE, a, c) == c
    _, u, _ = simulate(3, lambda b, x: [b.mux(x[0], x[1], x[2])])
    sel, a0, a1 = operands([1, 1, 1], False)
    np.testing.assert_array_equal(u, np.where(sel == 1, a1, a0))


def test_complemented_outputs_cost_a_gate_only_when_needed():
    c, u, _ = simulate(1, lambda b, x: [x[0] ^ 1])  # NOT of an input needs one gate
    assert c.size == 1 and list(u) == [1, 0]
    c, u, _ = simulate(2, lambda b, x: [b.and_(x[0], x[1]) ^ 1])  # NAND: the AND absorbs the inversion
    assert c.size == 1 and list(u) == [1, 1, 1, 0]
    c, u, _ = simulate(2, lambda b, x: [b.and_(x[0], x[1]), b.and_(x[0], x[1]) ^ 1])  # both polarities
    assert c.size == 2 and list(u) == [2, 2, 2, 1]
    c, u, _ = simulate(1, lambda b, x: [TRUE, FALSE])
    assert c.size == 0 and list(u) == [1, 1]


# --- adders and multipliers, exhaustively ------------------------------------------------------------------------

@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("wa,wb", [(4, 4), (3, 5), (5, 2)])
def test_add_sub_neg_exhaustive(signed, wa, wb):
    a, b = operands([wa, wb], signed)
    for op, want, out_signed in [("add", a + b, signed), ("sub", a - b, True)]:
        c, u, bits = simulate(wa + wb, lambda bl, x: getattr(bl, op)(x[:wa], x[wa:], signed))
        assert len(bits) == max(wa, wb) + 1
        np.testing.assert_array_equal(bits_value(u, bits, out_signed), want, err_msg=op)
    c, u, bits = simulate(wa, lambda bl, x: bl.neg(x, signed))
    np.testing.assert_array_equal(bits_value(u, bits, True), -operands([wa], signed)[0])


@pytest.mark.parametrize("sa,sb", [(False, False), (True, True), (False, True), (True, False)])
@pytest.mark.parametrize("wa,wb", [(4, 4), (3, 5)])
def test_mul_exhaustive(sa, sb, wa, wb):
    a = operands([wa, wb], sa)[0]
    b = operands([wa, wb], sb)[1]
    c, u, bits = simulate(wa + wb, lambda bl, x: bl.mul(x[:wa], x[wa:], sa, sb))
    assert len(bits) == wa + wb
    np.testing.assert_array_equal(bits_value(u, bits, sa or sb), a * b)


CONSTANTS = [15, 0b111011, -7, 23, -45, 3, 1, 0, -1, 31, 6]


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("w", [4, 6])
def test_const_mul_exhaustive_and_csd_not_larger(signed, w):
    a, = operands([w], signed)
    for k in CONSTANTS:
        sizes = {}
        for method in ("binary", "csd", "auto"):
            c, u, bits = simulate(w, lambda bl, x: bl.const_mul(x, k, signed, method))
            np.testing.assert_array_equal(bits_value(u, bits, signed or k < 0), a * k, err_msg=f"{k} {method}")
            lo, hi = int((a * k).min()), int((a * k).max())
            assert len(bits) == (signed_width(lo, hi) if signed or k < 0 else max(1, hi.bit_length()))
            sizes[method] = c.size
        assert sizes["auto"] <= min(sizes["binary"], sizes["csd"])
        if k in (15, 31, 0b111011):  # CSD-favourable: 16-1, 32-1, 64-4-1
            assert sizes["csd"] < sizes["binary"], (k, sizes)


def test_csd_digits():
    for c in range(-300, 300):
        d = digits_csd(c)
        assert sum(s << k for k, s in d) == c
        ks = [k for k, _ in d]
        assert all(j - i >= 2 for i, j in zip(ks, ks[1:]))  # no adjacent non-zeros
        assert len(d) <= len(digits_binary(c))
    assert len(digits_csd(15)) == 2 and len(digits_binary(15)) == 4


def test_ripple_adder_gate_count():
    for w in (2, 4, 8):
        c, _, _ = simulate(2 * w, lambda bl, x: bl.add(x[:w], x[w:]))
        assert c.size <= 5 * w and c.size == 5 * w - 3  # a half adder, then w-1 full adders of 5 gates
        c, _, _ = simulate(2 * w, lambda bl, x: bl.add(x[:w], x[w:], signed=True))
        assert c.size <= 5 * w


def test_multiplier_gate_count_is_quadratic():
    sizes = {n: simulate(2 * n, lambda bl, x: bl.mul(x[:n], x[n:]))[0].size for n in (4, 6, 8)}
    assert all(s <= 6 * n * n for n, s in sizes.items()), sizes


# --- fixed point helpers, relu, lut ----------------------------------------------------------------------------------

@pytest.mark.parametrize("signed", [False, True])
def test_shift_truncate_round_resize(signed):
    w = 6
    a, = operands([w], signed)
    for drop in (1, 2, 3):
        _, u, bits = simulate(w, lambda bl, x: bl.truncate(x, drop, signed))
        np.testing.assert_array_equal(bits_value(u, bits, signed), a >> drop)
        _, u, bits = simulate(w, lambda bl, x: bl.round(x, drop, signed))
        np.testing.assert_array_equal(bits_value(u, bits, signed), (a + (1 << (drop - 1))) >> drop)
    _, u, bits = simulate(w, lambda bl, x: bl.shift(x, 2, signed))
    np.testing.assert_array_equal(bits_value(u, bits, signed), a * 4)
    _, u, bits = simulate(w, lambda bl, x: bl.resize(x, w + 3, signed))
    np.testing.assert_array_equal(bits_value(u, bits, signed), a)


def test_relu_exhaustive():
    a, = operands([5], True)
    c, u, bits = simulate(5, lambda bl, x: bl.relu(x))
    np.testing.assert_array_equal(bits_value(u, bits, False), np.maximum(a, 0))
    assert c.size == 4 and len(bits) == 4


@pytest.mark.parametrize("order", ["msb", "lsb", "auto"])
def test_lut_exhaustive_and_shared(order):
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(-20, 20, size=32)]
    c, u, bits = simulate(5, lambda bl, x: bl.lut(x, values, 6, order))
    np.testing.assert_array_equal(bits_value(u, bits, True), values)
    # a table whose two halves are equal ignores the top index bit: a lut of the half
    half = values[:16] * 2
    c2, u2, bits2 = simulate(5, lambda bl, x: bl.lut(x, half, 6, order))
    c3, _, _ = simulate(4, lambda bl, x: bl.lut(x, values[:16], 6, order))
    np.testing.assert_array_equal(bits_value(u2, bits2, True), half)
    assert c2.size == c3.size
    # a complemented column reuses the nodes of the original (an output inverter is at most one gate)
    low = [v & 63 for v in values[:16]]
    both = [v | (63 - v) << 6 for v in low]
    c4, u4, bits4 = simulate(4, lambda bl, x: bl.lut(x, both, 12, order))
    c5, _, _ = simulate(4, lambda bl, x: bl.lut(x, low, 6, order))
    np.testing.assert_array_equal(u4, both)
    assert c4.size <= c5.size + 6


def test_bit_heap_truncated_product_matches_emulation():
    """The truncated multiplier of BitHeap.add_product and piecewise's integer emulation agree bit for bit."""
    for wa, wz, signed, cut, shift in itertools.product([3, 4], [2, 3], [False, True], [0, 2, 4, 6], [0, 1]):
        def make(bl, x):
            h = bl.heap()
            h.add_product(x[:wa], x[wa:], signed, False, shift=shift, cut=cut)
            return h.result(wa + wz + shift + 1)
        _, u, bits = simulate(wa + wz, make)
        a, z = operands([wa, wz], False)
        if signed:
            a = a - ((a >> (wa - 1) & 1) << wa)
        np.testing.assert_array_equal(bits_value(u, bits, True), _kept_product(a, wa, signed, z, cut, shift))


# --- structure against truth tables; ABC post-optimization -------------------------------------------------------

def test_structured_product_beats_abc_on_its_truth_table():
    c, u, _ = simulate(8, lambda bl, x: bl.mul(x[:4], x[4:]))
    x, y = operands([4, 4], False)
    np.testing.assert_array_equal(u, x * y)
    opt = optimize_with_abc(c)
    np.testing.assert_array_equal(output_codes(opt), x * y)
    cols = [((x * y) >> j & 1).astype(bool) for j in range(8)]
    table, today = synthesize(cols), run_script(cols)
    np.testing.assert_array_equal(output_codes(table.circuit), x * y)
    # measured: builder 64 gates; from the truth table today's ABC flow 212 (with &deepsyn 1 s), the portfolio
    # 106 (its Reed-Muller tree: a product is an XOR of ANDs)
    assert 2 * min(c.size, opt.size) <= today.gates and min(c.size, opt.size) < table.gates, \
        (c.size, opt.size, today.gates, table.gates)


def test_optimize_with_abc_keeps_function_and_decoder():
    def make(bl, x):
        p = bl.const_mul(x[:5], -45, signed=True)
        return bl.add(p, bl.lut(x[5:], [3, 9, 1, 7], 4), signed=True)
    b = CircuitBuilder(7)
    from htmc.circuits.circuit import Decoder
    c = b.build(make(b, b.inputs), Decoder(0.25, 3))
    opt = optimize_with_abc(c)
    np.testing.assert_array_equal(output_codes(opt), output_codes(c))
    assert opt.size <= c.size and opt.decoder == c.decoder


# --- the arith search method ---------------------------------------------------------------------------------------

def _wave(x):
    return 0.5 + 0.5 * np.sin(2 * np.pi * np.asarray(x).reshape(-1))


def wave_box_table(k):
    """Exact ranges of 0.5 + 0.5 sin(2 pi x) per cell: monotone between the crest at 1/4 and the trough at 3/4."""
    a = np.arange(1 << k) / 2.0 ** k
    b = a + 2.0 ** -k
    fa, fb = _wave(a), _wave(b)
    lo, hi = np.minimum(fa, fb), np.maximum(fa, fb)
    hi = np.where((a <= 0.25) & (0.25 <= b), 1.0, hi)
    lo = np.where((a <= 0.75) & (0.75 <= b), 0.0, lo)
    pad = 1e-15  # outward rounding for libm
    # dense sampling cross-checks the ranges (a Lipschitz margin pi 2^-k/64 covers the sampling gaps)
    xs = (np.arange(1 << k)[:, None] + np.linspace(0, 1, 65)[None]) / 2.0 ** k
    vals = _wave(xs.reshape(-1)).reshape(xs.shape)
    margin = np.pi * 2.0 ** -k / 64
    assert np.all(vals.min(axis=1) >= lo - margin) and np.all(vals.max(axis=1) <= hi + margin)
    return IntervalTable(1, k, lo - pad, hi + pad, "box")


@pytest.mark.parametrize("domain", ["grid", "box"])
def test_arith_circuit_sin_meets_eps(domain):
    k, eps = 10, 2.0 ** -7
    table = (IntervalTable.exact(_wave(np.arange(1 << k) / 2.0 ** k), 1, k) if domain == "grid"
             else wave_box_table(k))
    c, info = search(_wave, table, eps, budget_s=20)
    assert c is not None, info
    v = verify(c, table)
    assert v.max_error <= eps
    assert info["degree"] >= 1 and info["gates"] == c.size
    # far below a plain table over the 10 input bits (about 900 gates for these formats)
    assert c.size < 600, info


def test_arith_circuit_returns_none_when_eps_is_infeasible():
    table = wave_box_table(6)
    assert arith_circuit(_wave, table, 2.0 ** -12, budget_s=5) is None  # cells oscillate more than 2 eps


def test_arith_circuit_rejects_2d_tables():
    table = IntervalTable.exact(np.zeros(16), 2, 2)
    with pytest.raises(ValueError, match="1-d"):
        arith_circuit(None, table, 0.1)

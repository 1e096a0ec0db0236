"""The convexity test with a threshold (DESIGN §2.6, issue 14 part C): walsh_mixture, the `mc` method and
analysis.convexity."""
from __future__ import annotations

import json
import time
from fractions import Fraction

import numpy as np
import pytest

from conftest import BACKGROUND
from analysis.convexity import convexity_slopes, khat_table, theory_slope, walsh_ladders
from htmc.circuits.builder import CircuitBuilder
from htmc.circuits.circuit import Decoder, evaluate
from htmc.circuits.verify import verify
from htmc.records import canonical_json
from htmc.synthesis import mc_method as MC
from htmc.synthesis import relation
from htmc.synthesis.problem import METHODS, Problem
from htmc.synthesis.search import OWN_FORMAT, search
from htmc.targets import make_function


def _reference(t) -> list[Fraction]:
    """f at every n-bit code, from the parts' subsets alone (bit j of S is code bit n - j: bit 1 is the MSB)."""
    n, m = t.params["n"], t.params["m"]
    out = []
    for c in range(1 << n):
        total = sum(int(s) * (-1) ** sum((c >> (n - j)) & 1 for j in subset) for s, subset in zip(t.signs, t.subsets))
        out.append(Fraction(total, m))
    return out


@pytest.mark.parametrize("m,n", [(8, 6), (3, 6), (1, 4)])
def test_ranges_are_exact_against_brute_force(m, n):
    t = make_function("walsh_mixture", m=m, n=n, seed=5)
    ref = _reference(t)
    for k in (0, 2, n, n + 2):
        lo, hi = t.ranges(k)
        for c in range(1 << k):
            cell = ref[c << (n - k): (c + 1) << (n - k)] if k <= n else [ref[c >> (k - n)]]
            a, b = min(cell), max(cell)
            if m & (m - 1) == 0:   # a power of 2: the quotients are exact floats, the ranges exact
                assert (Fraction(lo[c]), Fraction(hi[c])) == (a, b), (k, c)
            else:                  # correctly rounded and widened by one ulp: encloses, within 2 ulps
                assert Fraction(lo[c]) <= a and b <= Fraction(hi[c]), (k, c)
                assert float(a) - lo[c] <= 2 * np.spacing(abs(float(a))) + 1e-300
                assert hi[c] - float(b) <= 2 * np.spacing(abs(float(b))) + 1e-300
    x = (np.arange(1 << n) + 0.5) / (1 << n)
    assert np.array_equal(t(x), np.array([float(v) for v in ref]))


def test_bit_one_is_the_most_significant():
    for seed in range(4):   # n = 1: the only subset is {1}, so f = sign * (+1 below 1/2, -1 above)
        t = make_function("walsh_mixture", m=1, n=1, seed=seed)
        s = int(t.signs[0])
        assert t.subsets == [(1,)] and t.masks == [1]
        assert list(t(np.array([0.0, 0.49, 0.5, 1.0]))) == [s, s, -s, -s]


def test_parts_are_exposed_and_distinct():
    t = make_function("walsh_mixture", m=64, n=8, seed=2)
    assert len(set(t.subsets)) == 64 and all(1 <= len(s) <= 8 for s in t.subsets)
    assert set(np.unique(t.signs)) <= {-1, 1} and np.allclose(t.weights, 1 / 64)
    assert t.part_gates() == [len(s) - 1 for s in t.subsets]
    assert t.gamma_theory is None and t.version == "1"


@pytest.mark.parametrize("params,bad", [({"m": 16, "n": 4}, "m must be in [1, 15], got 16"),
                                        ({"n": 0}, "n must be in [1, 20], got 0"),
                                        ({"m": 2.5}, "m must be an integer, got 2.5")])
def test_bad_parameters_name_the_value(params, bad):
    with pytest.raises(ValueError, match=bad.replace("[", r"\[").replace("]", r"\]")):
        make_function("walsh_mixture", **params)


# ----------------------------------------------------------------------------------------------------------------
# mc
# ----------------------------------------------------------------------------------------------------------------

def test_parity_part_is_an_xor_chain_of_size_minus_one():
    t = make_function("walsh_mixture", m=12, n=9, seed=1)
    codes = np.arange(1 << 9)
    for part, subset in zip(MC.mixture_parts(t), t.subsets):
        b = CircuitBuilder(9)
        term = MC.walsh_term(b, part, 9)
        c = b.build(list(term.bits), Decoder(float(term.offset), term.shift))
        assert c.size == len(subset) - 1
        want = part.sign * (-1.0) ** np.array([sum((x >> (9 - j)) & 1 for j in subset) for x in codes])
        assert np.array_equal(evaluate(c), want)


def _problem(t, eps, k, budget=120):
    tab = t.table(k)
    return Problem(t, tab, eps, relation.code_space(tab, eps, relation.coarsest_shift(tab, eps)),
                   time.monotonic() + budget)


def _check(attempts, t, eps, strategies=("exact_sum", "sampled")):
    """The routes named verified; each circuit re-verified here, on its own, against the target's table. A route
    that found nothing says so (a circuitless attempt), never a circuit over eps."""
    ok = [a for a in attempts if a.verified]
    assert {a.strategy for a in ok} >= set(strategies), [(a.strategy, a.note) for a in attempts]
    assert all(a.method == "mc" for a in attempts)
    assert all(a.circuit is None and a.note == "nothing verified" for a in attempts if not a.verified)
    for a in ok:
        assert a.max_error <= eps and verify(a.circuit, t.table(a.k)).max_error == a.max_error


def test_mc_one_part_is_exactly_the_parity():
    t = make_function("walsh_mixture", m=1, n=10, seed=3)
    r = search(t, 0.25, methods=["mc"], thorough=False)
    assert r.best.gates == len(t.subsets[0]) - 1 and r.best.max_error == 0.0


def test_mc_exact_sum_is_exact_for_a_power_of_two():
    t = make_function("walsh_mixture", m=8, n=8, seed=0)
    got = METHODS.get("mc")(_problem(t, 2.0 ** -6, 8))
    _check(got, t, 2.0 ** -6, ["exact_sum"])   # 8 samples cannot hit weights 1/8 to within 2^-6
    exact = next(a for a in got if a.strategy == "exact_sum")
    assert exact.max_error == 0.0 and "c_i/2^3" in exact.note


def test_mc_verifies_on_walsh_mixtures_and_samples_fewer_parts_than_m():
    t = make_function("walsh_mixture", m=5, n=8, seed=0)   # weights 1/5: not dyadic, quantized to c_i / 2^P
    _check(METHODS.get("mc")(_problem(t, 0.25, 8)), t, 0.25)
    t = make_function("walsh_mixture", m=400, n=10, seed=0)
    got = METHODS.get("mc")(_problem(t, 0.5, 10))
    _check(got, t, 0.5)
    sampled = next(a for a in got if a.strategy == "sampled")
    n_drawn = int(sampled.note.split("N=")[1].split()[0])
    assert n_drawn < 100      # Monte Carlo: about log(cells) / eps^2 draws, whatever m is (measured: 35)
    exact = next(a for a in got if a.strategy == "exact_sum")
    assert sampled.gates * 4 < exact.gates   # measured 261 against 2558


def test_mc_on_a_mixture_of_two_analytic_targets(monkeypatch):
    # the parts' own searches without ABC (its portfolio costs ~14 runs a part here; the ABC comparison is below)
    monkeypatch.setattr(MC, "PART_METHODS", ("table", "arith"))
    monkeypatch.setattr(MC, "_PART_CACHE", {})
    t = make_function("mixture", parts=[{"name": "sin"}, {"name": "exp"}])
    got = METHODS.get("mc")(_problem(t, 0.2, 4))
    _check(got, t, 0.2, ["exact_sum", "sampled", "multilevel"])


def mc_and_abc_at_m16():
    t = make_function("walsh_mixture", m=16, n=10, seed=0)
    return (search(t, 0.25, methods=["mc"], thorough=False).best,
            search(t, 0.25, methods=["abc"], thorough=False).best)


BACKGROUND.job("test_mc_is_far_below_the_abc_truth_table_at_m16", mc_and_abc_at_m16)   # ~5 s, background worker


def test_mc_is_far_below_the_abc_truth_table_at_m16(request):
    mc, abc = BACKGROUND.result(request)            # mc_and_abc_at_m16()
    assert mc.gates * 2 < abc.gates, (mc.gates, abc.gates)   # measured 110 against 412


def test_mc_is_registered_with_its_own_format_and_ignores_other_targets():
    assert METHODS.version("mc") == "1" and "mc" in OWN_FORMAT
    assert METHODS.get("mc")(_problem(make_function("sin"), 0.1, 6)) == []


# ----------------------------------------------------------------------------------------------------------------
# analysis.convexity
# ----------------------------------------------------------------------------------------------------------------

def _row(m, n, seed, eps, gates) -> dict:
    params = {"function": "walsh_mixture", "function_params": {"m": m, "n": n, "seed": seed}}
    points = [{"eps": float(e), "gates": float(g), "method": "synthetic"} for e, g in zip(eps, gates)]
    return {"kind": "circuit_ladder", "status": "ok", "params_json": canonical_json(params),
            "points_json": json.dumps(points)}


def test_convexity_slopes_recover_a_known_power():
    """One rung, C̄ = P m^s (P = the largest part's gates): K̂ = m^(s/gamma) exactly, up to a per-(m, seed) noise
    factor; the slope s/gamma is recovered within 0.05 and lies in its interval."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for m in (1, 2, 4, 8, 16, 32, 64):
            p = max(1, max(make_function("walsh_mixture", m=m, n=8, seed=seed).part_gates()))
            rows.append(_row(m, 8, seed, [0.5], [p * m ** 0.8 * np.exp(rng.normal(0, 0.05))]))
    res = convexity_slopes(rows)
    json.dumps(res)
    assert res["n_ladders"] == 21 and res["ms"] == [1, 2, 4, 8, 16, 32, 64] and res["seeds"] == [0, 1, 2]
    for s in res["slopes"]:
        assert abs(s["slope"] - 0.8 / s["gamma"]) < 0.05 and s["lo"] <= 0.8 / s["gamma"] <= s["hi"]
        assert s["theory"] == theory_slope(s["gamma"])


def test_convexity_slopes_of_the_theory_model():
    """C̄ = P min(m, eps^-2) on eps = 2^-1..2^-10 and m = 4^j: the slope is exactly max(0, 1/gamma - 1/2) at gamma
    = 1 (0.5: the peak of eps min(m, eps^-2) is m^1/2, at eps = m^-1/2) and at gamma >= 2 (0: at eps_max); the
    part norm is eps_max P^(1/gamma)."""
    eps = 2.0 ** -np.arange(1, 11)
    rows = []
    for m in (4, 16, 64, 256):   # m = 1 would peak at eps = 1, above the ladder
        p = max(1, max(make_function("walsh_mixture", m=m, n=10, seed=0).part_gates()))
        rows.append(_row(m, 10, 0, eps, p * np.minimum(m, eps ** -2.0)))
    res = {s["gamma"]: s for s in convexity_slopes(rows)["slopes"]}
    assert res[1.0]["slope"] == pytest.approx(0.5, abs=1e-9)
    assert res[2.0]["slope"] == pytest.approx(0.0, abs=1e-9)
    assert res[3.0]["slope"] == pytest.approx(0.0, abs=1e-9)
    k = khat_table(walsh_ladders(rows), [1.0])
    assert k.loc[k["m"] == 256, "khat"].item() == pytest.approx(2 ** -4 * 256 / 0.5)   # the peak at eps = m^-1/2


def test_convexity_ignores_other_rows_and_failed_ladders():
    other = {"kind": "circuit_ladder", "status": "ok", "params_json": canonical_json({"function": "sin"}),
             "points_json": "[]"}
    failed = {**_row(4, 8, 0, [0.5], [10]), "status": "failed"}
    res = convexity_slopes([other, failed])
    assert res["n_ladders"] == 0 and all(s["slope"] is None for s in res["slopes"])


def test_plots_draw_the_expected_axes_and_lines(tmp_path):
    import matplotlib.pyplot as plt
    from analysis.convexity_plots import (draw_convexity_slopes, draw_sizes_vs_budget, plot_convexity_slopes,
                                          plot_sizes_vs_budget)
    eps = 2.0 ** -np.arange(1, 7)
    rows = [_row(m, 8, s, eps, 3 * np.minimum(m, eps ** -2.0) * (1 + s)) for m in (1, 4, 16) for s in (0, 1)]
    res = convexity_slopes(rows)
    fig, ax = plt.subplots()
    assert draw_convexity_slopes(ax, res) == 5
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "theory max(0, 1/γ − 1/2)" in labels and "γ = 2 (HTMC threshold)" in labels and "zero" in labels
    theory = next(ln for ln in ax.get_lines() if ln.get_label().startswith("theory"))
    xs, ys = theory.get_data()
    assert ys[np.argmin(abs(xs - 1.0))] == pytest.approx(0.5, abs=0.01) and np.all(ys[xs >= 2.0] == 0)
    assert ax.get_xlabel().startswith("γ") and "log K̂" in ax.get_ylabel()
    plt.close(fig)
    fig, ax = plt.subplots()
    assert draw_sizes_vs_budget(ax, walsh_ladders(rows)) == 36
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_xlabel().startswith("min(m, ε^-2)")
    assert {ln.get_label() for ln in ax.get_lines()} >= {"m = 1", "m = 4", "m = 16"}
    plt.close(fig)
    a = plot_convexity_slopes(res, tmp_path / "slopes.png")
    b = plot_sizes_vs_budget(rows, tmp_path / "sizes.png")
    assert a.path.stat().st_size > 1000 and b.path.stat().st_size > 1000 and (a.n_points, b.n_points) == (5, 36)


def test_norms_use_the_monotone_envelope_of_the_ladder():
    """A coarse rung whose search missed what a finer rung found is bounded by the finer one (C is monotone)."""
    from analysis.convexity import envelope
    assert list(envelope(np.array([40.0, 22.0, 25.0, 22.0]))) == [22.0, 22.0, 22.0, 22.0]
    rows = [_row(4, 8, 0, [0.5, 0.25], [40, 22])]
    k = khat_table(walsh_ladders(rows), [1.0])
    p = max(1, max(make_function("walsh_mixture", m=4, n=8, seed=0).part_gates()))
    assert k["mix_norm"].item() == 0.5 * 22 and k["khat"].item() == pytest.approx(22 / p)

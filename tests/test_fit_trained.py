"""d = 2 at coarse rungs, fit_version 5 (htmc.resnets.fit_trained): MSE-trained nets polished on the cells replace
the pyramid LP's net when lower, and their own circuits verify within the rung."""
from __future__ import annotations

import numpy as np
import pytest

from htmc.circuits.verify import verify
from htmc.resnets import fit_trained
from htmc.resnets.fit import fit_and_compile, fit_rung
from htmc.resnets.fit_polish import Problem, polish
from htmc.resnets.numpy_net import forward_numpy
from htmc.targets import make_function

H2S075 = make_function("holder_random", d=2, s=0.75)


def test_trained_starts_halve_the_lp_norm_and_verify():
    """ε = 0.4, k = 4: the LP's net has block_path 12.30; the trained candidate 5.71 (benchmarks/RESULTS.md, D)."""
    lp = fit_rung(H2S075, 0.4, "block_path", budget_s=20, polish=False)
    r = fit_and_compile(H2S075, 0.4, "block_path", budget_s=30, compile_budget_s=30)
    assert r.met and any(n.startswith("trained starts: block_path") for n in r.fit.notes)
    assert r.fit.norms["block_path"] < 0.6 * lp.norms["block_path"]
    v = verify(r.circuit, H2S075.table(r.fit.k, "box"))
    assert v.max_error <= 0.4 and r.circuit.size == r.compiled["gates"]


def test_an_infeasible_start_yields_a_feasible_net_even_above_its_norm():
    """A constant net at 0.8 (norm 1: W_in alone) misses [0.9, 1.1] on every cell; the polish must return a
    feasible net, whatever its norm."""
    x = np.linspace(0.05, 0.95, 10)[:, None]
    zero = {"W_in": np.ones((1, 1)), "b_in": np.zeros(1), "A": np.zeros((1, 1, 1)), "B": np.zeros((1, 1, 1)),
            "c": np.zeros((1, 1)), "W_out": np.zeros((1, 1)), "b_out": np.full(1, 0.8)}
    out = polish([zero], [Problem(x, np.full(10, 0.9), np.full(10, 1.1))], "block_path", steps=1000)[0]
    assert out.improved and out.max_violation <= 0
    assert np.all(np.abs(forward_numpy(out.net, x) - 1.0) <= 0.1)


@pytest.mark.parametrize("d, k, eps_fit, ok", [(2, 5, 0.18, True), (2, 6, 0.18, False), (1, 4, 0.18, False),
                                                (2, 2, 0.72, False)])
def test_wanted_for_d2_up_to_k5_where_a_constant_does_not_meet_eps(d, k, eps_fit, ok):
    """At ε = 0.8 (ε_fit 0.72) one constant meets every cell of holder_random d=2 s=0.75 (checked below), so the
    candidate is not run there; at ε = 0.2 (ε_fit 0.18, k = 5) it is."""
    import time
    t = make_function("holder_random", d=d, s=0.75)
    res = type("R", (), {"net": {}, "k": k})()
    want = fit_trained.wanted(t, res, time.monotonic() + 60, eps_fit)
    tab = t.table(k, "box")
    assert want is ok and (k != 2 or float(tab.hi.max() - tab.lo.min()) / 2 <= eps_fit)

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


@pytest.mark.parametrize("d, k, ok", [(2, 5, True), (2, 6, False), (1, 4, False)])
def test_wanted_only_for_d2_up_to_k5(d, k, ok):
    class _T:
        pass
    t, res = _T(), type("R", (), {"net": {}, "k": k})()
    t.d = d
    import time
    assert fit_trained.wanted(t, res, time.monotonic() + 60) is ok

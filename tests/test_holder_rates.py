"""The rate the circuit search measures on holder_random matches theory (DESIGN §2.3, §2.5).

For holder_random(d, s) theory says C(f, eps) ~ eps^(-d/s). Each case runs a real eps ladder: every rung is the
smallest circuit that one method found under the interval relation (thorough=False: one resolution, the coarsest
output step), re-verified here against the target's rigorous ranges. d = 1 uses ABC (both slack code
strategies); d = 2 uses lupanov (issue 15: the BDD tree or Lupanov per output bit), which takes the 18-input rung
in seconds where ABC took over a minute on its 16-input one.
Nothing is mocked; the only choices are the ladder ranges.

How the ranges were chosen (seed 0, the family's default; holder_random version 2):
- every ABC rung must fit search.MAX_ABC_INPUTS = 16 input bits, and the three ladders must run in a few minutes
  on two cores: a 16-input ABC rung costs about a minute;
- rungs below ~50 gates are left out: there the size still grows faster than the asymptotic rate (the first
  halving of eps from ~50-100 gates has local slope 2.2-2.9 where d/s = 2);
- eps_j should fall between the resolution thresholds, so that the chosen k grows by about 1/s bit per halving.
  d = 1, s = 1: eps0 = 1/16, k = 8..12. d = 1, s = 1/2: eps0 = 1/4 (the ladder first measured for the issue,
  without its 16-input rung), k = 7, 9, 11, 14 (1/32 lies within 1% of the k = 12 threshold).
  d = 2, s = 1: eps0 = 1/4 would give k = 5, 6, 8, 8 (1/8 sits on a threshold), so eps0 = 3/16: k = 6, 7, 8, 9.
The fits use 5, 4 and 4 rungs. With 3 or fewer rungs the interval is not reported (DESIGN §2.3: a t-interval with
one degree of freedom could hardly fail to contain d/s); such a case checks gamma_hat only.
Seeds 1-3 (not run here, before issue 12) gave gamma_hat 0.98-1.08, 1.93-2.18 and (seed 1, d = 2, abc) 2.18.
Measured 2026-12-02 for d = 2 (seed 0, lupanov): sizes 620, 2163, 11195, 49353, gamma_hat 2.13; with abc on
k = 6, 7, 8 it was 2.1-2.2.
"""
import numpy as np
import pytest

from conftest import BACKGROUND
from htmc.targets import make_function
from htmc.rates.ladder import run_ladder
from htmc.circuits.verify import verify

TOLERANCE = 0.3  # |gamma_hat - d/s| allowed by the issue

CASES = [
    # d, s, eps0, steps, method: rungs at k = 8..12 (d=1, s=1), 7, 9, 11, 14 (d=1, s=1/2), 6..9 (d=2, s=1)
    pytest.param(1, 1.0, 1 / 16, 5, "abc", id="d1-s1"),
    pytest.param(1, 0.5, 1 / 4, 4, "abc", id="d1-s0.5"),
    pytest.param(2, 1.0, 3 / 16, 4, "lupanov", id="d2-s1"),
]


def ladder_of(d, s, eps0, steps, method):
    """The case's ladder. budget_s only bounds the search; it is generous so that a loaded machine cannot cut a
    rung short."""
    target = make_function("holder_random", d=d, s=s, seed=0)
    return run_ladder(target, eps0, steps, methods=[method], thorough=False, budget_s=600)


for case in CASES:      # each ladder (~15-45 s of ABC or Lupanov) is computed in conftest's background worker
    BACKGROUND.job(f"test_holder_random_rate_matches_theory[{case.id}]", ladder_of, *case.values)


@pytest.mark.parametrize("d,s,eps0,steps,method", CASES)
def test_holder_random_rate_matches_theory(d, s, eps0, steps, method, request):
    target = make_function("holder_random", d=d, s=s, seed=0)
    theory = d / s
    assert target.gamma_theory == pytest.approx(theory)
    ladder = BACKGROUND.result(request)             # ladder_of(d, s, eps0, steps, method)

    sizes = ladder.sizes()
    ks = [r.best.k if r.best else None for r in ladder.results]
    report = (f"holder_random(d={d}, s={s}) eps0={eps0} steps={steps}: k={ks} sizes={sizes.tolist()}")
    assert np.all(np.isfinite(sizes)) and np.all(sizes > 0), f"a rung found no circuit; {report}"
    for eps, r in zip(ladder.eps, ladder.results):  # independent re-verification of every rung's circuit
        v = verify(r.best.circuit, target.table(r.best.k))
        assert v.within(eps), f"rung eps={eps}: verified error {v.max_error} > eps; {report}"
    assert all(b > a for a, b in zip(ks, ks[1:])), f"the resolution must grow along the ladder; {report}"

    fit = ladder.fit
    assert fit is not None, f"no fit ({ladder.fit_error}); {report}"
    assert fit.n_used == steps, f"rungs were excluded as saturated: kept={fit.kept}; {report}"
    report += f" gamma_hat={fit.gamma:.3f} CI={fit.gamma_ci} ({fit.ci_note}) slopes={np.round(fit.local_slopes, 2)}"
    assert abs(fit.gamma - theory) <= TOLERANCE, f"gamma_hat is not within {TOLERANCE} of {theory}; {report}"
    if steps <= 3:
        assert fit.gamma_ci is None and fit.ci_note == f"not meaningful with {steps} fitted rungs", report
        return
    # With 4+ rungs the interval is reported, but on a fixed ladder it is the spread of the fit, not a confidence
    # interval for the true rate (DESIGN §2.3): whether it contains d/s is not a test of the theory. The rate
    # check is the tolerance above.
    lo, hi = fit.gamma_ci
    assert lo <= fit.gamma <= hi and fit.ci_note.startswith("spread of the fit"), report


def test_ladder_max_inputs_is_checked_and_stays_out_of_old_keys():
    from htmc.records import task_key
    from htmc.tasks import TASK_KINDS
    kind = TASK_KINDS.get("circuit_ladder")
    base = {"function": "holder_random", "function_params": {"d": 2, "s": 1.0, "seed": 0, "levels": 10},
            "eps0": 0.4, "steps": 3, "methods": ["lupanov"], "thorough": False, "budget_s": 30}
    p = kind.validate(base)
    # the key this ladder had before max_inputs existed (computed at commit 11015a8, when lupanov was version 1;
    # a method's version is part of the key by design): unset, max_inputs must not move it
    assert "max_inputs" not in p and p["method_versions"] == {"lupanov": "2"}
    assert task_key("circuit_ladder", "1", {**p, "method_versions": {"lupanov": "1"}}) == "c80fac3071d179e1"
    assert kind.validate({**base, "max_inputs": 20})["max_inputs"] == 20
    for bad in (30, 0, 2.5, True, "20"):
        with pytest.raises(ValueError, match=r"max_inputs must be an integer in 1\.\.24 \(the most input bits "
                                             r"methods \['lupanov'\] take\), got " + repr(bad).replace(".", r"\.")):
            kind.validate({**base, "max_inputs": bad})
    with pytest.raises(ValueError, match=r"max_inputs must be an integer in 1\.\.16 .*got 20"):
        kind.validate({**base, "methods": ["table"], "max_inputs": 20})


def test_ladder_whose_last_rung_needs_more_than_max_inputs_fails_before_searching():
    f = make_function("holder_random", d=2, s=1.0, seed=0, levels=10)
    with pytest.raises(ValueError, match=r"last rung \(eps=0\.1, step 2\) cannot be searched: eps=0\.1 needs "
                                         r"more than 10 input bits"):
        run_ladder(f, 0.4, 3, methods=["lupanov"], max_inputs=10)

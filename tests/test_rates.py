"""Ladder fits of DESIGN §2.3: power law with bootstrap CI, polylog, AIC choice, saturation, HTMC norm."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from htmc.rates import (exclude_saturated, fit_ladder, fit_polylog, fit_power, htmc_norm, local_slopes)

LADDER = 2.0 ** -np.arange(1, 17)  # eps_j = eps_0 2^-j, eps_0 = 1


def _noisy(c: np.ndarray, sigma: float = 0.05, seed: int = 0) -> np.ndarray:
    """Multiplicative noise (sigma in log2 units), as heuristic searches give."""
    return c * 2.0 ** (np.random.default_rng(seed).normal(0.0, sigma, len(c)))


def test_power_recovers_gamma_with_ci():
    """C = 3 eps^-2 with noise: gamma within 0.05 on every draw, and the 95% CI covers 2 on most draws
    (a calibration check over 40 noise seeds rather than one lucky seed)."""
    covered = 0
    for seed in range(40):
        fit = fit_power(LADDER, _noisy(3.0 * LADDER ** -2.0, seed=seed), n_boot=400, seed=seed)
        assert abs(fit.gamma - 2.0) < 0.05
        assert fit.gamma_ci[1] - fit.gamma_ci[0] < 0.1  # 16 points, 5% noise: a tight interval
        assert fit.c == pytest.approx(3.0, rel=0.15)
        assert 0 < fit.residual < 0.1
        covered += fit.gamma_ci[0] <= 2.0 <= fit.gamma_ci[1]
    assert covered >= 34, f"95% CI covered the true gamma in only {covered}/40 draws"


def test_power_exact_data():
    fit = fit_power(LADDER[:5], 7.0 * LADDER[:5] ** -3.0)
    assert fit.gamma == pytest.approx(3.0, abs=1e-9) and fit.c == pytest.approx(7.0, rel=1e-9)
    assert fit.gamma_ci[0] == pytest.approx(3.0, abs=1e-6) and fit.gamma_ci[1] == pytest.approx(3.0, abs=1e-6)


def test_power_ci_with_few_points():
    two = fit_power([0.5, 0.25], [10, 40])
    assert two.gamma == pytest.approx(2.0) and two.gamma_ci == (-math.inf, math.inf)  # a line through 2 points
    three = fit_power([0.5, 0.25, 0.125], [10, 44, 150])
    lo, hi = three.gamma_ci
    assert lo < three.gamma < hi and math.isfinite(lo) and hi - lo > 0.5  # t-interval, 1 dof: wide


def test_polylog_preferred_for_polylog_data():
    sizes = 5.0 * np.log2(1.0 / LADDER) ** 3
    poly = fit_polylog(LADDER, sizes)
    assert poly.a == pytest.approx(5.0, rel=1e-9) and poly.b == pytest.approx(3.0, abs=1e-9)
    fit = fit_ladder(LADDER, sizes, n_boot=200)
    assert fit.preferred_model == "polylog"
    assert fit.polylog[1] == pytest.approx(3.0, abs=1e-9)


def test_power_preferred_for_power_data():
    fit = fit_ladder(LADDER, _noisy(3.0 * LADDER ** -2.5, seed=3), n_boot=200)
    assert fit.preferred_model == "power"
    assert fit.gamma == pytest.approx(2.5, abs=0.05)
    assert fit.aic_power < fit.aic_polylog


def test_local_slopes():
    eps = np.array([0.125, 0.5, 0.25])  # unsorted on purpose: slopes come out coarse to fine
    sizes = np.array([64.0, 4.0, 16.0])
    np.testing.assert_allclose(local_slopes(eps, sizes), [2.0, 2.0])
    np.testing.assert_allclose(local_slopes([0.5, 0.25, 0.125], [4, 8, 64]), [1.0, 3.0])


def test_exclude_saturated_plateau_and_exact_size():
    eps = 2.0 ** -np.arange(1, 9)
    sizes = np.array([2, 4, 8, 16, 32, 50, 50, 50], dtype=float)
    keep = exclude_saturated(eps, sizes)
    assert keep.tolist() == [True] * 5 + [False] * 3
    keep = exclude_saturated(eps, sizes, exact_size=32)
    assert keep.tolist() == [True] * 4 + [False] * 4
    keep = exclude_saturated(eps, sizes, min_eps=2.0 ** -4)
    assert keep.tolist() == [True] * 4 + [False] * 4
    # a plateau in the middle is not saturation; a single equal point at the fine end is not a run
    mid = np.array([2, 4, 4, 4, 8, 16, 32, 64], dtype=float)
    assert exclude_saturated(eps, mid).all()
    # input order is preserved
    perm = np.array([7, 0, 5, 2, 6, 1, 4, 3])
    assert exclude_saturated(eps[perm], sizes[perm]).tolist() == (np.arange(8)[perm] < 5).tolist()


def test_saturated_tail_excluded_from_the_fit():
    eps = 2.0 ** -np.arange(1, 13)
    sizes = np.minimum(3.0 * eps ** -2.0, 3.0 * 2.0 ** 18)  # saturates at eps = 2^-9 and below
    fit = fit_ladder(eps, sizes, n_boot=200)
    assert fit.kept == [True] * 8 + [False] * 4
    assert fit.gamma == pytest.approx(2.0, abs=1e-9)
    assert fit.local_slopes == pytest.approx([2.0] * 7)
    naive = fit_ladder(eps, sizes, exclude=False, n_boot=200)
    assert naive.gamma < 1.8  # what including the tail would have done


def test_htmc_norm_hand_computed():
    eps = [0.5, 0.25, 0.125]
    sizes = [16, 256, 1024]
    # gamma=2: 0.5*4=2, 0.25*16=4, 0.125*32=4 -> 4;  gamma=4: 0.5*2=1, 0.25*4=1, 0.125*5.657=0.707 -> 1
    norm = htmc_norm(eps, sizes, [2, 4])
    assert norm == {2.0: pytest.approx(4.0), 4.0: pytest.approx(1.0)}
    fit = fit_ladder(eps, sizes, gammas=(2, 4), n_boot=100)
    out = fit.to_json()
    assert out["htmc_norm"] == {"2": pytest.approx(4.0), "4": pytest.approx(1.0)}
    assert "upper estimate" in out["htmc_norm_kind"] and out["eps_range"] == [0.125, 0.5]


def test_fit_ladder_json():
    fit = fit_ladder(LADDER[:3], [4.0, 16.0, 64.0], n_boot=100)
    out = json.loads(json.dumps(fit.to_json(), allow_nan=False))
    for key in ("gamma", "gamma_ci", "c", "polylog", "preferred_model", "local_slopes", "htmc_norm", "kept"):
        assert key in out
    assert len(out["gamma_ci"]) == 2 and len(out["polylog"]) == 2
    assert out["gamma"] == pytest.approx(2.0) and fit["gamma"] == out["gamma"]
    two = fit_ladder([0.5, 0.25], [4.0, 16.0]).to_json()
    assert two["gamma_ci"] == [None, None] and two["preferred_model"] is None  # JSON has no inf


@pytest.mark.parametrize("eps,sizes,match", [
    ([0.5], [3], "at least 2"),
    ([0.5, 0.5], [3, 4], "at least 2 distinct"),
    ([0.5, 0.25], [3], "same length"),
    ([0.5, -0.25], [3, 4], "eps must be finite and > 0"),
    ([0.5, 0.25], [3, 0], "sizes must be finite and > 0"),
    ([0.5, np.nan], [3, 4], "eps must be finite"),
    ([[0.5, 0.25]], [[3, 4]], "1-d"),
])
def test_bad_input_raises(eps, sizes, match):
    for fn in (fit_power, fit_polylog, fit_ladder, local_slopes):
        with pytest.raises(ValueError, match=match):
            fn(eps, sizes)


def test_more_bad_input():
    with pytest.raises(ValueError, match="eps < 1"):
        fit_polylog([2.0, 0.5], [3, 4])
    with pytest.raises(ValueError, match="gamma must be > 0"):
        htmc_norm([0.5], [3], [0])
    with pytest.raises(ValueError, match="fewer than 2 usable"):
        fit_ladder([0.5, 0.25, 0.125], [8, 8, 8])  # everything is one plateau: all saturated
    assert fit_ladder([0.5, 0.25, 0.125], [8, 8, 8], exclude=False).gamma == pytest.approx(0.0)

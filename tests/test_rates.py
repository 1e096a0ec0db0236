"""Ladder fits of DESIGN §2.3: power law with its interval, polylog, ΔAIC choice, saturation, HTMC norms."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from htmc.rates.fits import (exclude_saturated, fit_ladder, fit_polylog, fit_power, FIT_VERSION, htmc_norm_at_rungs, htmc_norm_over_range, local_slopes, read_norms)

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


def test_exclude_saturated_needs_exact_rounded():
    """DESIGN §2.3: only rungs at the exactly rounded circuit saturate; a plateau's first point is kept."""
    eps = 2.0 ** -np.arange(1, 9)
    sizes = np.array([2, 4, 8, 16, 32, 50, 50, 50], dtype=float)
    assert exclude_saturated(eps, sizes).all()          # box: no exact circuit, the plateau is data
    exact = np.array([False] * 5 + [True] * 3)
    assert exclude_saturated(eps, sizes, exact).tolist() == [True] * 6 + [False] * 2
    keep = exclude_saturated(eps, sizes, exact_size=32)
    assert keep.tolist() == [True] * 4 + [False] * 4
    keep = exclude_saturated(eps, sizes, min_eps=2.0 ** -4)
    assert keep.tolist() == [True] * 4 + [False] * 4
    # a plateau in the middle is kept on the box; at the exact circuit only its first point is
    mid = np.array([2, 4, 4, 4, 8, 16, 32, 64], dtype=float)
    assert exclude_saturated(eps, mid).all()
    assert exclude_saturated(eps, mid, [True] * 8).tolist() == [True, True, False, False] + [True] * 4
    # input order is preserved
    perm = np.array([7, 0, 5, 2, 6, 1, 4, 3])
    assert exclude_saturated(eps[perm], sizes[perm], exact[perm]).tolist() == (np.arange(8)[perm] < 6).tolist()
    with pytest.raises(ValueError, match="one flag per point"):
        exclude_saturated(eps, sizes, [True])


def test_grid_exact_rounded_drops_only_the_plateau_tail():
    eps = 2.0 ** -np.arange(1, 6)
    exact = [False, False, True, True, True]
    sizes = [4.0, 8.0, 12.0, 12.0, 12.0]
    assert exclude_saturated(eps, sizes, exact).tolist() == [True, True, True, False, False]
    fit = fit_ladder(eps, sizes, exact_rounded=exact, n_boot=100)
    assert fit.kept == [True, True, True, False, False] and fit.n_used == 3
    # an exact rung with a new size (a finer output format) starts a new plateau: kept
    assert exclude_saturated(eps, [4, 8, 12, 20, 20], exact).tolist() == [True] * 4 + [False]
    # an exact rung equal to a coarser inexact one: the plateau began at the inexact rung
    assert exclude_saturated(eps, [4, 8, 8, 8, 20], exact).tolist() == [True, True, False, False, True]


def test_box_plateau_is_data():
    """Parity on the box: the size does not grow, so gamma ~ 0, and no rung is dropped (the old rule dropped
    every fine-end plateau and left no fit at all)."""
    two = fit_ladder([0.5, 0.25], [8.0, 8.0])
    assert two.kept == [True, True] and two.gamma == pytest.approx(0.0)
    fit = fit_ladder(2.0 ** -np.arange(1, 6), [3, 8, 8, 8, 8], n_boot=100)
    assert fit.kept == [True] * 5 and fit.n_used == 5


def test_saturated_tail_excluded_from_the_fit():
    eps = 2.0 ** -np.arange(1, 13)
    sizes = np.minimum(3.0 * eps ** -2.0, 3.0 * 2.0 ** 18)  # the exact circuit from eps = 2^-9 on
    exact = eps <= 2.0 ** -9
    fit = fit_ladder(eps, sizes, exact_rounded=exact, n_boot=200)
    assert fit.kept == [True] * 9 + [False] * 3             # the plateau's first point (2^-9) is kept
    assert fit.gamma == pytest.approx(2.0, abs=1e-9)
    assert fit.local_slopes == pytest.approx([2.0] * 8)
    naive = fit_ladder(eps, sizes, exclude=False, n_boot=200)
    assert naive.gamma < 1.8  # what including the tail would have done
    assert fit_ladder(eps, sizes, n_boot=200).kept == [True] * 12   # without exact_rounded nothing saturates


def test_htmc_norm_hand_computed():
    eps = [0.5, 0.25, 0.125]
    sizes = [16, 256, 1024]
    # gamma=2: 0.5*4=2, 0.25*16=4, 0.125*32=4 -> 4;  gamma=4: 0.5*2=1, 0.25*4=1, 0.125*5.657=0.707 -> 1
    norm = htmc_norm_at_rungs(eps, sizes, [2, 4])
    assert norm == {2.0: pytest.approx(4.0), 4.0: pytest.approx(1.0)}
    # over the range: eps_j C̄_{j+1}^(1/gamma), and the finest rung itself.
    # gamma=2: 0.5*sqrt(256)=8, 0.25*sqrt(1024)=8, 0.125*32=4 -> 8;  gamma=4: 0.5*4=2, 0.25*5.657=1.41, 0.71 -> 2
    over = htmc_norm_over_range(eps, sizes, [2, 4])
    assert over == {2.0: pytest.approx(8.0), 4.0: pytest.approx(2.0)}
    fit = fit_ladder(eps, sizes, gammas=(2, 4), n_boot=100)
    out = fit.to_json()
    assert out["htmc_norm_at_rungs"] == {"2": pytest.approx(4.0), "4": pytest.approx(1.0)}
    assert out["htmc_norm_over_range"] == {"2": pytest.approx(8.0), "4": pytest.approx(2.0)}
    assert "htmc_norm" not in out   # the unlabelled name is gone: each estimate says what it covers
    assert "rungs only" in out["htmc_norm_at_rungs_kind"] and "range" in out["htmc_norm_over_range_kind"]
    assert out["eps_range"] == [0.125, 0.5] and out["version"] == FIT_VERSION != "1"


def test_htmc_norm_over_range_uses_the_finer_minimum():
    """C is non-increasing, so between eps_1 and eps_0, C <= min(C̄_1, C̄_2): a finer rung's smaller C̄ counts."""
    eps = [0.5, 0.25, 0.125]
    sizes = [16, 300, 256]                    # a heuristic found less at 0.125 than at 0.25
    # gamma=2: 0.5*sqrt(256)=8, 0.25*sqrt(256)=4, 0.125*sqrt(256)=2 -> 8 (not 0.5*sqrt(300)=8.66)
    assert htmc_norm_over_range(eps, sizes, [2]) == {2.0: pytest.approx(8.0)}
    assert htmc_norm_over_range([0.5], [16], [2]) == {2.0: pytest.approx(2.0)}   # one rung: its own value
    assert htmc_norm_over_range([0.5, 0.5, 0.25], [16, 9, 64], [2]) == {2.0: pytest.approx(4.0)}  # repeated eps


def test_read_norms_of_old_and_new_fits():
    assert read_norms({"htmc_norm": {"2": 4.0}, "version": "1"}) == ({"2": 4.0}, {})
    new = fit_ladder([0.5, 0.25, 0.125], [16, 256, 1024], gammas=(2,), n_boot=10).to_json()
    assert read_norms(new) == ({"2": pytest.approx(4.0)}, {"2": pytest.approx(8.0)})
    assert read_norms({}) == ({}, {})


def test_model_choice_delta_aic():
    eps = 2.0 ** -np.arange(1, 6)
    fit = fit_ladder(eps, [4, 9, 16, 26, 42], n_boot=100)
    assert fit.delta_aic == pytest.approx(fit.aic_polylog - fit.aic_power)
    assert abs(fit.delta_aic) < 2 and fit.preferred_model == "inconclusive"   # the old rule said "polylog"
    poly = fit_ladder(eps, 5.0 * np.log2(1 / eps) ** 2, n_boot=100)
    assert poly.delta_aic < -2 and poly.preferred_model == "polylog"
    # eps >= 1: the polylog model cannot be fitted, so no choice was made (the old rule said "power")
    no_poly = fit_ladder([2.0, 1.0, 0.5, 0.25], [1, 2, 4, 8], n_boot=100)
    assert no_poly.polylog is None and no_poly.preferred_model is None and no_poly.delta_aic is None


def test_interval_not_meaningful_with_3_rungs():
    eps = 2.0 ** -np.arange(1, 5)
    sizes = [10.0, 44.0, 150.0, 610.0]
    three = fit_ladder(eps[:3], sizes[:3], n_boot=100)
    assert three.gamma_ci is None and three.ci_note == "not meaningful with 3 fitted rungs"
    four = fit_ladder(eps, sizes, n_boot=100)
    lo, hi = four.gamma_ci
    assert lo < four.gamma < hi and "misfit" in four.ci_note
    # saturated rungs do not count: 5 rungs, 2 dropped -> 3 fitted
    five = fit_ladder(2.0 ** -np.arange(1, 6), [4, 8, 12, 12, 12], exact_rounded=[0, 0, 1, 1, 1], n_boot=100)
    assert five.gamma_ci is None and five.to_json()["gamma_ci"] is None


def test_fit_ladder_json():
    fit = fit_ladder(LADDER[:3], [4.0, 16.0, 64.0], n_boot=100)
    out = json.loads(json.dumps(fit.to_json(), allow_nan=False))
    for key in ("gamma", "gamma_ci", "ci_note", "c", "polylog", "preferred_model", "delta_aic", "local_slopes",
                "htmc_norm_at_rungs", "htmc_norm_over_range", "kept"):
        assert key in out
    assert out["gamma_ci"] is None and len(out["polylog"]) == 2        # 3 rungs: no interval
    assert out["gamma"] == pytest.approx(2.0) and fit["gamma"] == out["gamma"]
    two = fit_ladder([0.5, 0.25], [4.0, 16.0]).to_json()
    assert two["gamma_ci"] is None and two["preferred_model"] is None
    four = fit_ladder(LADDER[:4], [4.0, 16.0, 64.0, 256.0], n_boot=100).to_json()
    assert four["gamma_ci"] == [pytest.approx(2.0), pytest.approx(2.0)]


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
    for norm in (htmc_norm_at_rungs, htmc_norm_over_range):
        with pytest.raises(ValueError, match="gamma must be > 0"):
            norm([0.5], [3], [0])
    with pytest.raises(ValueError, match="fewer than 2 usable"):
        fit_ladder([0.5, 0.25, 0.125], [8, 8, 8], exact_rounded=[True] * 3)  # one exact plateau: 1 point left
    assert fit_ladder([0.5, 0.25, 0.125], [8, 8, 8], exact_rounded=[True] * 3, exclude=False).gamma == \
        pytest.approx(0.0)


def test_run_ladder_passes_exact_rounded(monkeypatch):
    """run_ladder hands each rung's SearchResult.exact_rounded to the fit (absent: False, as on the box)."""
    from types import SimpleNamespace

    import htmc.rates.ladder as L
    rungs = {0.5: (4, False), 0.25: (8, False), 0.125: (12, True), 0.0625: (12, True), 0.03125: (12, True)}

    def fake_search(target, eps, domain, *args, **kwargs):
        gates, exact = rungs[eps]
        res = SimpleNamespace(best=SimpleNamespace(gates=gates))
        if domain == "grid":
            res.exact_rounded = exact
        return res
    monkeypatch.setattr(L, "search", fake_search)
    grid = L.run_ladder(None, 0.5, 5, domain="grid")
    assert grid.fit.kept == [True, True, True, False, False]
    monkeypatch.setattr(L, "check_ladder", lambda *a, **k: None)
    box = L.run_ladder(None, 0.5, 5, domain="box")
    assert box.fit.kept == [True] * 5 and box.fit.n_used == 5

"""Fitting to a rung (issue 21 A): the LP fit meets the verifier's constraints, is no worse than a known feasible
net, its norm falls weakly as eps grows, its own circuit verifies within the rung, and the resnet_fit kind and
`htmc resnet fit` keep their contracts and name bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from htmc.circuits.verify import verify
from htmc.records import FitRecord, columns, task_key
from htmc.resnets.fit import fit_and_compile, MARGIN, net_from_units, net_norms
from htmc.resnets.fit_lp import lp_knots, unit_costs
from htmc.resnets.numpy_net import forward_numpy, net_from_text
from htmc.resnets.to_circuit import cell_points, float_error
from htmc.targets import make_function
from htmc.tasks import TASK_KINDS
from jobs.cli import main

SIN = make_function("sin")
FIXED_COLUMNS = ("function", "function_version", "gamma_theory", "d", "eps0", "rung", "eps", "k", "norm",
                 "fit_version", "seed", "width", "depth", "rank", "met", "reason", "lam", "steps", "fit_seconds",
                 "float_error", "nnz", "n_params", "net_text", "gates", "aig_nodes", "max_error", "verified",
                 "w_bits", "a_bits", "compile_seconds")


def _weights(pieces: int) -> np.ndarray:
    tau = np.arange(pieces) / pieces
    return unit_costs(np.ones((pieces, 1)), 0.5 - tau)


def _lp_value(u) -> float:
    return float((np.abs(u.a) * unit_costs(u.B, u.c)).sum())


@pytest.fixture(scope="module")
def rung():
    """sin at eps = 0.1 fitted and compiled (a coarse rung: ~2 s)."""
    return fit_and_compile(SIN, 0.1, "block_path", budget_s=20, compile_budget_s=20)


def test_fitted_net_circuit_verifies_within_its_rung(rung):
    assert rung.met and rung.reason is None
    table = SIN.table(rung.fit.k, "box")
    v = verify(rung.circuit, table)                              # the project's verifier, recomputed here
    assert v.max_error <= 0.1 and v.max_error == rung.compiled["max_error"]
    assert rung.circuit.size == rung.compiled["gates"] and rung.compiled["gates"] > 0
    # the float net meets the rung with the quantization margin left over
    assert float_error(rung.fit.net, table) <= 0.1 * (1 - MARGIN) + 1e-12
    assert rung.fit.norms["block_path"] == pytest.approx(net_norms(rung.fit.net)["block_path"])


def test_lp_is_no_worse_than_the_interpolant_and_meets_every_constraint():
    k, eps_fit, pieces = 7, 0.08, 64
    table = SIN.table(k, "box")
    x = cell_points(table)[:, 0]
    lo, hi = table.hi - eps_fit, table.lo + eps_fit
    u = lp_knots(x, lo, hi, pieces, _weights(pieces))
    y = forward_numpy(net_from_units(u, 1), cell_points(table))
    assert np.all(y >= lo - 1e-9) and np.all(y <= hi + 1e-9)
    # a known feasible net with kinks on the same grid: the interpolant of sin at the knots
    tau = np.arange(pieces + 1) / pieces
    z = SIN(tau[:, None])
    yi = np.interp(x, tau, z)
    assert np.all(yi >= lo) and np.all(yi <= hi)                  # it is feasible, so the LP may not beat it
    s = np.diff(z) * pieces
    kinks = np.r_[s[0], np.diff(s)]
    assert _lp_value(u) <= float((np.abs(kinks) * _weights(pieces)).sum()) + 1e-9
    assert np.count_nonzero(np.abs(u.a) > 1e-9) < pieces          # the vertex solution drops kinks


def test_least_norm_falls_weakly_as_eps_grows():
    table = SIN.table(8, "box")
    x = cell_points(table)[:, 0]
    values = [_lp_value(lp_knots(x, table.hi - e, table.lo + e, 128, _weights(128)))
              for e in (0.0125, 0.025, 0.05, 0.1, 0.2)]
    assert all(b <= a + 1e-9 for a, b in zip(values, values[1:]))
    assert values[-1] < values[0]


def test_kind_key_and_record():
    kind = TASK_KINDS.get("resnet_fit")
    p = kind.validate({"function": "sin", "eps0": 0.2, "rung": 1})
    assert p["fit_version"] == "5" and set(p["norm_versions"]) >= {"block_path", "l1"}
    assert task_key("resnet_fit", kind.version, p) == task_key(
        "resnet_fit", kind.version, kind.validate({"function": "sin", "eps0": 0.2, "rung": 1, "budget_s": 30}))
    assert task_key("resnet_fit", kind.version, p) != task_key(
        "resnet_fit", kind.version, kind.validate({"function": "sin", "eps0": 0.2, "rung": 1, "norm": "l1"}))
    with pytest.raises(ValueError, match="fit_version"):
        kind.validate({"function": "sin", "eps0": 0.2, "rung": 1, "fit_version": "0"})
    assert [c for c in FIXED_COLUMNS if c not in dict(columns(FitRecord))] == []
    row = kind.run(p).to_row()
    assert row["met"] and row["verified"] and row["eps"] == 0.1 and row["max_error"] <= 0.1
    assert row["norm"] == "block_path" and row["lam"] is None and row["steps"] > 0
    net = net_from_text(row["net_text"])
    assert row["norm_block_path"] == pytest.approx(net_norms(net)["block_path"])
    assert {"norm_l1", "norm_weighted_path", "norm_lipschitz_l1", "norm_l1_version"} <= set(row)
    assert row["float_error"] == float_error(net, SIN.table(row["k"], "box"))
    # units: live units over every block (the polish may add a second block, fit_version 3); rank: the widest block
    assert row["rank"] == net["A"].shape[2] and row["units"] == int((np.abs(net["A"]).sum(1) > 0).sum())


def test_cli_json_shape(capsys):
    assert main(["resnet", "fit", "sin", "--eps0", "0.2", "--steps", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"function", "norm", "rungs", "coverage"} and out["function"] == "sin"
    assert [r["eps"] for r in out["rungs"]] == [0.2, 0.1] and out["coverage"] == 1.0
    for r in out["rungs"]:
        assert set(r) >= {"eps", "verified", "max_error", "gates", "norms", "seconds"}
        assert r["verified"] and r["max_error"] <= r["eps"] and r["gates"] > 0
        assert set(r["norms"]) >= {"block_path", "l1", "weighted_path", "lipschitz_l1"}


@pytest.mark.parametrize("argv, words", [
    (["--norm", "blok_path"], "did you mean 'block_path'"),
    (["--steps", "30"], "below what the resolution cap allows"),
    (["--budget-s", "0"], "--budget-s must be > 0"),
    (["--max-units", "0"], "--max-units must be an integer >= 1, got 0"),
])
def test_cli_bad_input_is_named(capsys, argv, words):
    try:
        code = main(["resnet", "fit", "sin", "--eps0", "0.2", "--steps", "2", *argv])
    except SystemExit as e:          # argparse's own errors (a bad choice) exit with status 2
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err


@pytest.mark.parametrize("params, words", [
    ({"norm": "blok_path"}, "did you mean 'block_path'"),
    ({"norm": "weighted_path"}, "cannot minimize"),
    ({"rung": 40}, "finest reachable eps"),
    ({"budget_s": 0}, "budget_s must be a number > 0"),
])
def test_kind_bad_input_is_named(params, words):
    with pytest.raises(ValueError, match=words):
        TASK_KINDS.get("resnet_fit").validate({"function": "sin", "eps0": 0.2, "rung": 1, **params})


class _Linear:
    """f(x) = 0.3 + 0.5 x on [0, 1] (exact cell ranges): a stand-in target for the skip path's linear term."""
    d, name = 1, "linear"

    def table(self, k, domain="box"):
        from htmc.targets.table import IntervalTable
        edges = np.arange((1 << k) + 1) / (1 << k)
        return IntervalTable(d=1, k=k, lo=0.3 + 0.5 * edges[:-1], hi=0.3 + 0.5 * edges[1:], domain=domain)


def test_a_linear_target_travels_the_skip_path_alone():
    from htmc.resnets.fit import fit_rung
    r = fit_rung(_Linear(), 0.05, "block_path", budget_s=20)
    net = r.net
    assert r.units == 1 and not net["A"].any() and not net["B"].any()     # no ReLU unit does any work
    beta = net["W_in"][0, 0]
    slope = net["W_out"] @ net["W_in"][:, 0]                                  # what the skip path carries
    table = _Linear().table(r.k)
    x = cell_points(table)
    assert np.allclose(forward_numpy(net, x), 0.3 + 0.5 * x[:, 0], atol=0.05)
    assert 0.5 - 2 * 0.05 <= slope[0] <= 0.5 + 1e-9                            # the least slope within eps
    # its norm is the skip path's cost alone, ‖W_in‖_1 + ‖W_out‖_1 = β + |slope|/β (or β + α when shared) ...
    assert r.norms["block_path"] == pytest.approx(np.abs(net["W_in"]).sum() + np.abs(net["W_out"]).sum())
    assert r.norms["block_path"] == pytest.approx(beta + abs(slope[0]) / beta)
    # ... at the input scale that makes it least (β = √slope gives 2√slope), and the registry agrees with it
    assert r.norms["block_path"] == pytest.approx(2 * np.sqrt(abs(slope[0])), rel=1e-6)
    assert r.norms == pytest.approx(net_norms(net))


def test_skip_path_lp_norm_is_what_the_registry_computes():
    """The LP's objective with a skip slope (free or shared) is the emitted net's block_path, term by term."""
    from htmc.resnets.fit import _scaled
    table = make_function("exp").table(6, "box")
    x = cell_points(table)[:, 0]
    lo, hi = table.hi - 0.05, table.lo + 0.05
    for beta in (1.0, 2.0):
        w = _weights(32) * 0 + unit_costs(np.ones((32, 1)), 0.5 - np.arange(32) / 32, beta)
        for u in (lp_knots(x, lo, hi, 32, w, slope_weight=0.7 / beta), lp_knots(x, lo, hi, 32, w, slope=0.6)):
            net = _scaled(u, 1, beta, "block_path")
            assert float_error(net, table) <= 0.05 + 1e-9
            W = float((np.abs(u.a) * w).sum())
            if u.shared:
                alpha = abs(u.slope) / beta
                want = beta + alpha + W / alpha
            else:
                alpha = net["W_out"][0, 1]
                want = beta + abs(u.slope) / beta + alpha + W / alpha
            assert net_norms(net)["block_path"] == pytest.approx(want, rel=1e-9)


def test_a_unit_on_its_own_coordinate_is_the_same_function_at_the_stated_cost():
    from htmc.resnets.fit import _own_coordinates
    from htmc.resnets.fit_lp import Units
    tau = np.array([0.0, 0.125, 0.875])
    u = Units(B=np.ones((3, 1)), c=0.5 - tau, a=np.array([0.5, 0.01, -4.0]), b_out=0.1, iterations=0, solves=0,
              slope=0.3)
    beta, alpha = 0.5, 1.0
    w = unit_costs(u.B, u.c, beta)                   # 2.5, 2.375, 2.375
    own = _own_coordinates(u, w, alpha)
    # only the large far kink moves: 2√(4/1) = 4 < 4·2.375; the small ones stay (2√0.01 = 0.2 > 0.01·2.375)
    assert own[0] == 0 and own[1] == 0 and own[2] == pytest.approx(2.0)
    x = np.linspace(0, 1, 257)[:, None]
    want = 0.3 * x[:, 0] + np.maximum(x - tau, 0) @ u.a + 0.1
    for o in (None, own):
        net = net_from_units(u, 1, beta=beta, alpha=alpha, own=o)
        assert np.allclose(forward_numpy(net, x), want, atol=1e-12)
    assert net["W_in"].shape == (3, 1)
    cost = beta + 0.3 / beta + alpha + (0.5 * w[0] + 0.01 * w[1]) / alpha + 2 * np.sqrt(4.0 / alpha)
    assert net_norms(net)["block_path"] == pytest.approx(cost, rel=1e-12)


def test_cli_objectives_and_defaults_are_the_fits():
    """jobs/fit_cli.py writes the objectives and defaults out (no scipy or task-registry import to build the
    parser); they must be the fit's and the resnet_fit kind's, and so must fit_rung's and fit_and_compile's."""
    import inspect
    from htmc.resnets.fit import fit_and_compile, fit_rung, OBJECTIVES
    from htmc.tasks import FIT_DEFAULTS
    from jobs import fit_cli
    from jobs.cli import build_parser
    assert fit_cli.OBJECTIVES == OBJECTIVES
    args = build_parser().parse_args(["resnet", "fit", "sin", "--eps0", "0.2", "--steps", "1"])
    for name in ("norm", "seed", "budget_s", "compile_budget_s", "max_inputs", "max_units"):
        assert getattr(args, name) == FIT_DEFAULTS[name], name
    for fn in (fit_rung, fit_and_compile):
        for name, par in inspect.signature(fn).parameters.items():
            if name in FIT_DEFAULTS and par.default is not inspect.Parameter.empty:
                assert par.default == FIT_DEFAULTS[name], (fn.__name__, name)

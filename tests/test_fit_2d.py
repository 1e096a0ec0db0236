"""d = 2 fits (issue 21 C): the two-block pyramid net's own circuit verifies within its rung, the closed form the fit
uses to pick the hat height s, output scale α and input scale β is the registry's norm exactly, and the net chosen
keeps its bits at the compiler's most bits."""
from __future__ import annotations

import numpy as np
import pytest

from htmc.circuits.verify import verify
from htmc.resnets.fit import MARGIN, fit_and_compile, net_norms
from htmc.resnets.fit_pyramid import build_net, fit_pyramids, norm_model, quantizable, scale_options
from htmc.resnets.to_circuit import DEFAULT_BITS, cell_points, emulate, float_error
from htmc.targets import make_function

H2 = make_function("holder_random", d=2, s=1.0)


@pytest.fixture(scope="module")
def rung():
    """holder_random d=2 s=1 at eps = 0.4 (k = 4, 256 cells: ~1 s)."""
    return fit_and_compile(H2, 0.4, "block_path", budget_s=20, compile_budget_s=20)


@pytest.fixture(scope="module")
def lp():
    """The pyramid LP at k = 5 (1,024 cells), levels <= 5, eps_fit 0.18: (table, a, b_out, units)."""
    table = H2.table(5, "box")
    a, b_out, units, _, _ = fit_pyramids(cell_points(table), table.hi - 0.18, table.lo + 0.18, 5, 1e18)
    return table, a, b_out, units


def test_fitted_2d_net_circuit_verifies_within_its_rung(rung):
    assert rung.met and rung.reason is None and rung.fit.k == 4
    table = H2.table(rung.fit.k, "box")
    v = verify(rung.circuit, table)
    assert v.max_error <= 0.4 and v.max_error == rung.compiled["max_error"]
    assert rung.circuit.size == rung.compiled["gates"] > 0
    assert float_error(rung.fit.net, table) <= 0.4 * (1 - MARGIN) + 1e-12
    assert rung.fit.norms == pytest.approx(net_norms(rung.fit.net))
    # fit_version 5: the trained candidate (fit_trained) may replace the two-block pyramid net (hats, then
    # pyramids and ridges), which then leads the alternates
    trained = any(n.startswith("trained starts: block_path") for n in rung.fit.notes)
    pyr = rung.fit.alternates[0] if trained else rung.fit.net
    assert pyr["A"].shape[0] == 2


def test_finest_level_lp_meets_every_cell(lp):
    table, a, b_out, units = lp
    y = build_net(a, b_out, units, 0.25, 3.0, beta=4.0)
    f = emulate(y, table, 20, 20).values              # the same function at any scales, near-exactly
    assert np.all(f >= table.hi - 0.18 - 1e-4) and np.all(f <= table.lo + 0.18 + 1e-4)
    assert np.count_nonzero(a) < len(a) // 4          # a vertex: most units are exactly 0


@pytest.mark.parametrize("norm", ["block_path", "l1"])
def test_norm_model_is_the_registrys_norm(lp, norm):
    _, a, b_out, units = lp
    for beta in (1.0, 8.0):
        K, H, Q, R = norm_model(a, b_out, units, norm, beta)
        for s, al in ((2.0 ** -7, 40.0), (0.3, 1.7)):
            got = net_norms(build_net(a, b_out, units, s, al, beta=beta))[norm]
            assert K + al + s * H + (Q / s + R) / al == pytest.approx(got, rel=1e-9)
    v, s, al, beta = scale_options(a, b_out, units, norm)[0]
    assert net_norms(build_net(a, b_out, units, s, al, beta=beta))[norm] == pytest.approx(v, rel=1e-9)


def test_quantizable_net_keeps_its_bits_and_is_no_cheaper_than_the_least_norm(lp):
    table, a, b_out, units = lp
    net, alts = quantizable(a, b_out, units, "block_path", table, 0.2)
    # some w_bits at the most a_bits emulates within eps: what compile_search needs
    top = max(DEFAULT_BITS)
    assert min(emulate(net, table, w, top).max_error for w in DEFAULT_BITS) <= 0.2
    least = scale_options(a, b_out, units, "block_path")[0][0]
    assert net_norms(net)["block_path"] >= least - 1e-9
    assert all(net_norms(n)["block_path"] >= net_norms(net)["block_path"] for n in alts)


def test_bit_staircase_finds_the_pareto_pairs_a_full_scan_finds(lp):
    """The staircase starts at the smallest w_bits that passes at the most a_bits (bit_search._first_w): its
    Pareto-minimal passing pairs are those of emulating every (w_bits, a_bits)."""
    import time
    from htmc.resnets.bit_search import _Search, _pareto_min, _staircase
    table, a, b_out, units = lp
    net = build_net(a, b_out, units, 2.0 ** -6, 20.0, beta=4.0)
    bits = list(range(2, 17))
    full = {(w, q): emulate(net, table, w, q).max_error for w in bits for q in bits}
    want = _pareto_min([p for p, e in full.items() if e <= 0.2])
    s = _Search(net, table, 0.2, 1e9, False, "fused", time.monotonic())
    ems, errors = _staircase(s, bits)
    assert want and sorted(_pareto_min(list(ems))) == sorted(want)
    assert len(errors) < len(full) // 4                     # far fewer emulations than the scan


def test_resolution_is_eps_aware_where_the_lp_would_not_solve():
    """d = 2 at eps_fit 0.045 (ε = 0.05): k = 8 has ROOM's room, but its 2^16-cell LP runs out of time; k = 7 has
    ROOM_D2's (half-oscillation 0.040 <= 0.9 * 0.045) and is chosen instead. At 0.09 (ε = 0.1) k = 7 itself."""
    from htmc.resnets.fit import ROOM, ROOM_D2, _resolutions
    half = {k: float((H2.table(k, "box").hi - H2.table(k, "box").lo).max()) / 2 for k in (6, 7, 8)}
    assert half[8] <= ROOM * 0.045 < half[7] <= ROOM_D2 * 0.045
    assert _resolutions(H2, 0.045, 16) == [7]
    assert _resolutions(H2, 0.09, 16) == [7] and half[6] > ROOM * 0.09

"""Target function registry (DESIGN §2.2, §2.5): a contract every family must pass, plus family-specific checks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from htmc.targets import cell_bounds, FUNCTIONS, make_function, Target
from htmc.registry import load_plugin, UnknownNameError
from htmc.targets.table import cell_index_grid, IntervalTable

FAMILIES = FUNCTIONS.names()
TOL = 1e-12


def _ks(d: int) -> list[int]:
    """Resolutions with at most 2^12 cells, so the contract stays fast for every d."""
    return list(range(0, min(4, 12 // d) + 1))


def _samples_per_cell(t: Target, k: int, rng, n_random: int = 6) -> np.ndarray:
    """Points of every cell, shape (S, cells, d): corners and uniform interior points.

    Continuous targets: all 2^d corners of the closed cell. Discontinuous ones (parity) own only the half-open
    cell [c/2^k, (c+1)/2^k)^d, so they get the lower corner and interior points.
    """
    a, b = cell_bounds(t.d, k)
    pts = []
    if t.continuous:
        for corner in range(1 << t.d):
            mask = np.array([(corner >> j) & 1 for j in range(t.d)], dtype=bool)
            pts.append(np.where(mask, b, a))
    else:
        pts.append(a)
    u = rng.random((n_random,) + a.shape)
    pts.extend(a + u * (b - a))
    return np.stack(pts)


@pytest.fixture(scope="module")
def targets():
    return {name: make_function(name) for name in FAMILIES}


def test_registry_has_the_design_families():
    expected = {"sin", "exp", "sqrt", "sigmoid", "product", "absdiff", "holder_random", "compositional",
                "relu_ridges", "parity", "mixture", "resnet_teacher"}
    assert expected <= set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
def test_contract_metadata(targets, name):
    t = targets[name]
    assert t.name == name
    assert isinstance(t.version, str) and t.version.startswith(FUNCTIONS.version(name))
    assert isinstance(t.d, int) and t.d >= 1
    assert t.domain_default in ("box", "grid")
    assert t.gamma_theory is None or t.gamma_theory >= 0
    assert len(t.doc) > 40 and "Why" in t.doc
    json.dumps(t.params)  # canonical params are JSON-able


@pytest.mark.parametrize("name", FAMILIES)
def test_contract_ranges_contain_samples(targets, name):
    t, rng = targets[name], np.random.default_rng(1)
    for k in _ks(t.d):
        lo, hi = t.ranges(k)
        assert lo.shape == hi.shape == (1 << (t.d * k),)
        assert np.all(lo <= hi)
        pts = _samples_per_cell(t, k, rng)
        v = t(pts.reshape(-1, t.d)).reshape(pts.shape[:2])
        below, above = v < lo - TOL, v > hi + TOL
        assert not below.any(), f"{name} k={k}: f below lo by {np.max(lo - v)}"
        assert not above.any(), f"{name} k={k}: f above hi by {np.max(v - hi)}"


@pytest.mark.parametrize("name", FAMILIES)
def test_contract_ranges_nest(targets, name):
    t = targets[name]
    ks = _ks(t.d)
    for k in ks[:-1]:
        plo, phi = t.ranges(k)
        clo, chi = t.ranges(k + 1)
        codes = cell_index_grid(t.d, k + 1) >> 1  # the parent cell's code, per coordinate
        parent = sum(codes[:, j] << (k * (t.d - 1 - j)) for j in range(t.d))
        assert np.all(clo >= plo[parent] - TOL), f"{name}: child lo below parent lo at k={k + 1}"
        assert np.all(chi <= phi[parent] + TOL), f"{name}: child hi above parent hi at k={k + 1}"


@pytest.mark.parametrize("name", FAMILIES)
def test_contract_deterministic_and_params_round_trip(targets, name):
    t = targets[name]
    x = np.random.default_rng(2).random((257, t.d))
    again = make_function(name, **json.loads(json.dumps(t.params)))  # canonical params rebuild the same target
    assert np.array_equal(t(x), again(x))
    k = _ks(t.d)[-1]
    assert all(np.array_equal(a, b) for a, b in zip(t.ranges(k), again.ranges(k)))
    assert again.params == t.params


@pytest.mark.parametrize("name", FAMILIES)
def test_contract_tables(targets, name):
    t = targets[name]
    k = _ks(t.d)[-1]
    box = t.table(k)
    assert isinstance(box, IntervalTable) and box.domain == t.domain_default
    grid = t.table(k, "grid")
    assert grid.domain == "grid" and np.array_equal(grid.lo, grid.hi)
    assert np.array_equal(grid.lo, t(cell_index_grid(t.d, k) / 2.0 ** k))
    lo, hi = t.ranges(k)  # the grid value at a cell's lower corner lies in the cell's range
    assert np.all((grid.lo >= lo - TOL) & (grid.lo <= hi + TOL))


def test_outputs_are_scaled(targets):
    for name, t in targets.items():
        v = t(np.random.default_rng(3).random((2000, t.d)))
        assert np.all(np.abs(v) <= 1 + 1e-9), name


def test_seed_changes_holder_random():
    x = np.random.default_rng(0).random((100, 1))
    assert not np.array_equal(make_function("holder_random", seed=0)(x), make_function("holder_random", seed=1)(x))


# --- exactness where promised ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw,k", [("product", {}, 3), ("absdiff", {}, 3),
                                       ("holder_random", {"d": 2, "s": 0.5, "levels": 6}, 3),
                                       ("holder_random", {"d": 1, "s": 0.7, "levels": 6}, 4),
                                       ("holder_random", {"d": 1, "s": 0.7, "levels": 6}, 8)])
def test_exact_ranges_are_attained(name, kw, k):
    """Piecewise (multi)linear targets: lo and hi are the min and max of f over the finest breakpoints in the
    closed cell (its corners when k >= the finest level), so the ranges are exact, not just enclosures."""
    t = make_function(name, **kw)
    lo, hi = t.ranges(k)
    step = 1 << max(0, t.params.get("levels", k) - k)  # finest grid intervals per cell side
    offs = np.indices((step + 1,) * t.d).reshape(t.d, -1).T / (step * 2.0 ** k)
    a, _ = cell_bounds(t.d, k)
    pts = a[None] + offs[:, None, :]
    v = t(pts.reshape(-1, t.d)).reshape(pts.shape[:2])
    np.testing.assert_allclose(v.min(axis=0), lo, rtol=0, atol=1e-15)
    np.testing.assert_allclose(v.max(axis=0), hi, rtol=0, atol=1e-15)


def test_sin_ranges_hit_the_crests():
    t = make_function("sin", freq=3)
    lo, hi = t.ranges(3)
    # crests at x = (1/4 + n)/3 = 1/12, 5/12, 3/4 (3/4 is the boundary of cells 5 and 6; cells are closed);
    # troughs at (3/4 + n)/3 = 1/4 (boundary of cells 1, 2), 7/12, 11/12
    assert np.flatnonzero(hi >= 1.0).tolist() == [0, 3, 5, 6]
    assert np.flatnonzero(lo <= -1.0).tolist() == [1, 2, 4, 7]
    assert hi.max() < 1 + 1e-12 and lo.min() > -1 - 1e-12


def test_parity_values():
    t = make_function("parity", d=2, bits=1)
    x = np.array([[0.1, 0.1], [0.6, 0.1], [0.1, 0.6], [0.6, 0.6], [1.0, 0.0]])
    assert t(x).tolist() == [0, 1, 1, 0, 1]
    lo, hi = t.ranges(0)
    assert (lo[0], hi[0]) == (0.0, 1.0)
    lo, hi = t.ranges(1)
    assert lo.tolist() == hi.tolist() == [0, 1, 1, 0]


def test_compositional_depends_on_blocks_only():
    t = make_function("compositional", d=4, inner_d=2)
    assert t.gamma_theory == pytest.approx(2.0)
    x = np.random.default_rng(0).random((50, 4))
    y = x.copy()
    y[:, [0, 1]] = x[::-1, [0, 1]]  # swap block 0 between rows: the mean of inner values changes
    assert not np.allclose(t(x), t(y))


def test_mixture_is_convex_combination():
    parts = [{"name": "sin", "freq": 2}, {"name": "exp"}]
    t = make_function("mixture", parts=parts, weights=[0.25, 0.75])
    x = np.random.default_rng(0).random((64, 1))
    expect = 0.25 * make_function("sin", freq=2)(x) + 0.75 * make_function("exp")(x)
    np.testing.assert_allclose(t(x), expect, rtol=0, atol=1e-15)
    assert "+sin@" in t.version and "+exp@" in t.version
    with pytest.raises(ValueError, match="sum to 1"):
        make_function("mixture", parts=parts, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="same d"):
        make_function("mixture", parts=[{"name": "sin"}, {"name": "product"}])


@pytest.mark.parametrize("name,kw,gamma", [
    ("sin", {}, None), ("exp", {}, None), ("sqrt", {}, None), ("sigmoid", {}, None), ("product", {}, None),
    ("absdiff", {}, None), ("resnet_teacher", {}, None),
    ("relu_ridges", {}, None), ("relu_ridges", {"m": 4096, "d": 8}, None),  # fixed m: m polylog(1/eps)
    ("parity", {}, 0.0), ("holder_random", {"d": 2, "s": 0.5}, 4.0), ("compositional", {"d": 4, "inner_d": 2}, 2.0),
])
def test_gamma_theory(name, kw, gamma):
    assert make_function(name, **kw).gamma_theory == gamma


@pytest.mark.parametrize("parts,gamma", [
    ([{"name": "sin"}, {"name": "holder_random", "s": 0.4}], 2.5),  # the largest power law among the parts
    ([{"name": "holder_random", "s": 0.5}, {"name": "holder_random", "s": 0.25, "seed": 1}], 4.0),
    ([{"name": "sin"}, {"name": "exp"}], None),                      # all polylog
    ([{"name": "parity", "d": 1}, {"name": "sin"}], None),           # polylog beats constant size
    ([{"name": "parity", "d": 1}, {"name": "parity", "d": 1, "bits": 2}], 0.0),
    ([{"name": "relu_ridges", "d": 1}, {"name": "sin"}], None),      # no Barron 2.0 inherited from fixed ridges
])
def test_mixture_inherits_its_rate_from_the_parts(parts, gamma):
    assert make_function("mixture", parts=parts).gamma_theory == gamma


def test_resnet_teacher_weights_match_evaluation():
    t = make_function("resnet_teacher", width=6, depth=2, rank=3, seed=4)
    w = t.weights
    x = np.random.default_rng(0).random((20, 2))
    h = x @ w["W_in"].T + w["b_in"]
    for A, B, c in zip(w["A"], w["B"], w["c"]):
        h = h + np.maximum(h @ B.T + c, 0) @ A.T  # DESIGN §2.4: h_{l+1} = h_l + A_l relu(B_l h_l + c_l)
    np.testing.assert_allclose(t(x), (h @ w["W_out"].T)[:, 0] + w["b_out"][0], atol=1e-12)
    lo, hi = t.ranges(10 // t.d)  # output scaled so that the rigorous ranges at this k span exactly [-1,1]
    assert lo.min() == pytest.approx(-1, abs=1e-9) and hi.max() == pytest.approx(1, abs=1e-9)


# --- holder_random: the rate DESIGN §2.5 claims ---------------------------------------------------------------

@pytest.mark.parametrize("d,s,ks", [(1, 0.5, range(4, 15)), (1, 0.75, range(4, 15)), (2, 0.5, range(2, 8))])
def test_holder_max_oscillation_scales_like_2_to_minus_ks(d, s, ks):
    """The worst cell's oscillation falls like 2^(-k s): the sup-norm accuracy at k bits is ~2^(-k s)."""
    t = make_function("holder_random", d=d, s=s, seed=5)
    osc = [np.max(t.ranges(k)[1] - t.ranges(k)[0]) for k in ks]
    slope = np.polyfit(list(ks), np.log2(osc), 1)[0]
    assert abs(slope + s) < 0.2, f"slope {slope:.3f}, expected {-s}"


def test_holder_s1_typical_oscillation():
    """s = 1 is the Zygmund class: the typical (median) cell oscillates like 2^-k up to a slowly growing
    factor; the worst cell gains a factor ~k (documented in the family's docstring)."""
    t = make_function("holder_random", d=1, s=1.0, seed=5)
    ks = list(range(4, 15))
    med = [np.median(t.ranges(k)[1] - t.ranges(k)[0]) for k in ks]
    worst = [np.max(t.ranges(k)[1] - t.ranges(k)[0]) for k in ks]
    assert abs(np.polyfit(ks, np.log2(med), 1)[0] + 1.0) < 0.15
    assert np.polyfit(ks, np.log2(worst), 1)[0] < -0.75


def test_holder_fast_at_ladder_sizes():
    import time
    for d, k in ((1, 12), (2, 7)):
        t0 = time.perf_counter()
        make_function("holder_random", d=d, seed=9).ranges(k)
        assert time.perf_counter() - t0 < 2.0


# --- errors ---------------------------------------------------------------------------------------------------

def test_misspelled_param_suggests():
    with pytest.raises(ValueError) as exc:
        make_function("sin", frq=2)
    msg = str(exc.value)
    assert "'frq'" in msg and "did you mean 'freq'" in msg and "valid choices: freq" in msg


def test_unknown_family_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'holder_random'"):
        make_function("holder_randm")


@pytest.mark.parametrize("name,kw,bad", [("holder_random", {"d": -1}, "-1"), ("holder_random", {"s": 0}, "0"),
                                         ("holder_random", {"s": 1.5}, "1.5"), ("sin", {"freq": -2}, "-2"),
                                         ("relu_ridges", {"m": 0}, "0"), ("compositional", {"d": 3}, "d=3"),
                                         ("parity", {"d": 2.5}, "2.5")])
def test_bad_values_name_the_value(name, kw, bad):
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        make_function(name, **kw)


def test_inputs_outside_the_cube_rejected():
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        make_function("sqrt")(np.array([[-0.5]]))
    with pytest.raises(ValueError, match="shape"):
        make_function("product")(np.zeros((3, 3)))


# --- plugins ----------------------------------------------------------------------------------------------------

PLUGIN = '''
import numpy as np
from htmc.targets import register_function, Target

@register_function("{name}", version="7")
class Cube(Target):
    """x^3 on [0,1]. Why: a plugin test; ranges come from the Lipschitz bound."""
    d = 1
    lipschitz = 3.0

    def __init__(self, scale=1.0):
        self.params = {{"scale": float(scale)}}

    def _eval(self, x):
        return self.params["scale"] * x[:, 0] ** 3
'''


def test_plugin_registers_family(tmp_path):
    name = f"cube_{tmp_path.name.replace('-', '_')}"
    path = tmp_path / "my_targets.py"
    path.write_text(PLUGIN.format(name=name))
    load_plugin(path)
    assert name in FUNCTIONS and FUNCTIONS.version(name) == "7"
    t = make_function(name, scale=1.0)
    assert (t.name, t.version) == (name, "7")
    assert t(np.array([[0.5]]))[0] == 0.125
    lo, hi = t.ranges(4)  # the default Lipschitz ranges are rigorous
    a, b = cell_bounds(1, 4)
    assert np.all(lo <= a[:, 0] ** 3) and np.all(hi >= b[:, 0] ** 3)
    with pytest.raises(ValueError, match="did you mean 'scale'"):
        make_function(name, scal=2.0)

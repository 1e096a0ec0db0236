"""Experiment 1 and 2 of DESIGN §2.6 (issue 14 A, B): resnet_compile (a trained net compiled at every rung, in a
sweep), the sandwich table (C̄, Ḡ, R̄_ν per function and rung), ρ̂ fits and the three plots."""
from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from analysis.sandwich import compiled_points, fill_compiled, frac_within_square, resnet_phase, sandwich_table, with_cbar_ratio
from analysis import sandwich_plots as SP
from cluster.service import run_sweep
from cluster.spec.checker import SpecError
from cluster.spec.parse import load_spec
from cluster.store.core import open_store, StoreConfig
from htmc.records import task_key
from htmc.resnets.compile_ladder import compile_ladder
from htmc.resnets.numpy_net import net_from_text, net_to_text
from htmc.resnets.bit_search import _pareto_min
from htmc.resnets.to_circuit import DEFAULT_BITS, emulate
from htmc.targets import make_function
from htmc.tasks import TASK_KINDS

from test_compile import teacher_net


@pytest.fixture(scope="module")
def teacher():
    t = make_function("resnet_teacher", d=1, width=6, depth=2, rank=2, seed=1)
    return teacher_net(t), t


# --------------------------------------------------------------------------------------------- compile_ladder
def test_net_text_round_trips_bit_exactly_and_damage_is_named(teacher):
    net, _ = teacher
    back = net_from_text(net_to_text(net))
    assert all(np.array_equal(np.asarray(net[k], float), back[k]) for k in net)
    with pytest.raises(ValueError, match="damaged"):
        net_from_text("bm90IGEgbmV0")


def test_compile_ladder_points_are_verified_and_bits_are_pareto_minimal(teacher):
    net, target = teacher
    pts = compile_ladder(net, target, [0.1, 0.05, 0.025, 0.0125], budget_s=20, max_inputs=10)
    assert [p["eps"] for p in pts] == [0.1, 0.05, 0.025, 0.0125]
    for p in pts:
        assert p["verified"] and p["gates"] > 0 and p["max_error"] <= p["eps"]
    # the bisection found a Pareto-minimal pair: no pair with fewer bits of one kind and no more of the other
    # emulates within eps at the chosen resolution (checked exhaustively here)
    p = pts[1]
    table = target.table(p["k"], "box")
    passing = [(w, a) for w in DEFAULT_BITS for a in DEFAULT_BITS
               if emulate(net, table, w, a).max_error <= p["eps"]]
    assert (p["w_bits"], p["a_bits"]) in _pareto_min(passing)
    # finer eps never needs fewer gates on this smooth teacher's ladder by more than the search's noise
    assert pts[-1]["gates"] >= pts[0]["gates"]


def test_a_rung_below_the_float_nets_floor_says_why(teacher):
    net, _ = teacher
    sin = make_function("sin")     # the teacher is not sin: its float error on sin is large at every k
    pts = compile_ladder(net, sin, [0.05], max_inputs=10)
    assert not pts[0]["verified"] and pts[0]["gates"] is None
    assert "no quantization can meet eps" in pts[0]["reason"] and pts[0]["k"] == 10


def test_compile_ladder_rejects_bad_eps(teacher):
    net, target = teacher
    with pytest.raises(ValueError, match="finite numbers > 0"):
        compile_ladder(net, target, [0.1, -1.0])


# ------------------------------------------------------------------------------------------- the task kind
TRAIN = {"function": "sin", "width": 4, "depth": 1, "rank": 2, "steps": 50, "n_train": 64, "lam": 1e-4}


def test_compile_kind_validates_and_names_its_upstream():
    kind = TASK_KINDS.get("resnet_compile")
    p = kind.driver_validate({"train": TRAIN, "eps0": 0.2, "steps": 3})
    up_kind, up_key = kind.upstream(p)
    train_p = TASK_KINDS.get("resnet_train").validate(TRAIN)
    assert (up_kind, up_key) == ("resnet_train", task_key("resnet_train", "1", train_p))
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        kind.driver_validate({"train": TRAIN, "eps0": 0.2, "steps": 1})
    with pytest.raises(ValueError, match="needs 'train'"):
        kind.driver_validate({"eps0": 0.2, "steps": 3})
    with pytest.raises(ValueError, match="did you mean 'width'"):
        kind.driver_validate({"train": {**TRAIN, "widht": 3}, "eps0": 0.2, "steps": 3})
    with pytest.raises(ValueError, match="budget_s must be a number > 0, got -1"):
        kind.driver_validate({"train": TRAIN, "eps0": 0.2, "steps": 3, "budget_s": -1})
    with pytest.raises(ValueError, match=r"max_inputs must be an integer in 1..20 .*got 30"):
        kind.driver_validate({"train": TRAIN, "eps0": 0.2, "steps": 3, "max_inputs": 30})
    with pytest.raises(ValueError, match="eps0 must be a finite number > 0, got inf"):
        kind.driver_validate({"train": TRAIN, "eps0": float("inf"), "steps": 3})


def test_compile_without_a_trained_net_is_a_failed_record_that_says_why():
    kind = TASK_KINDS.get("resnet_compile")
    p = kind.validate({"train": TRAIN, "eps0": 0.2, "steps": 3})
    row = kind.run(p, None).to_row()
    assert row["status"] == "failed" and "not trained" in row["error"]
    row = kind.run(p, {"status": "failed", "error": "RuntimeError: NaN loss\ntraceback"}).to_row()
    assert row["status"] == "failed" and row["error"] == "training failed, nothing to compile: RuntimeError: NaN loss"


SPEC = """
    name: {name}
    results: {{uri: "{results}"}}
    tracking: {{uri: "{uri}", children: off}}
    groups:
      - kind: resnet_train
        name: nets
        params: {{function: sin, width: 8, depth: 2, rank: 4, steps: 400, n_train: 256, lr: 0.01}}
        grid: {{lam: [1.0e-4, 1.0e-1]}}
      - kind: resnet_compile
        name: compiled
        for_each: {for_each}
        params: {{eps0: 0.4, steps: 3, budget_s: 10}}
    """


def _spec(tmp_path, name="sandwich", for_each="nets", file="s.yaml"):
    p = tmp_path / file
    p.write_text(textwrap.dedent(SPEC.format(name=name, results=tmp_path / "results", uri="sqlite:///" +
                                             str(tmp_path / "m.db"), for_each=for_each)))
    return p


@pytest.mark.parametrize("for_each, needle", [("netz", "did you mean 'nets'"), ("compiled", "no group named")])
def test_for_each_must_name_an_earlier_group(tmp_path, for_each, needle):
    with pytest.raises(SpecError, match=needle):
        load_spec(_spec(tmp_path, for_each=for_each))


def test_for_each_is_required_and_only_for_kinds_that_consume_a_task(tmp_path):
    text = _spec(tmp_path).read_text()
    bad = tmp_path / "b.yaml"
    bad.write_text(text.replace("    for_each: nets\n", ""))
    with pytest.raises(SpecError, match="add for_each"):
        load_spec(bad)
    bad.write_text(text.replace("  - kind: resnet_compile\n    name: compiled\n",
                                "  - kind: resnet_train\n    name: more\n").replace("params: {eps0: 0.4, steps: 3, "
                                                                                   "budget_s: 10}", "params: {}"))
    with pytest.raises(SpecError, match="takes no for_each"):
        load_spec(bad)


def test_sweep_trains_then_compiles_every_net_and_resumes(ray_connected, tmp_path):
    spec = load_spec(_spec(tmp_path))
    first = run_sweep(spec, progress=False, say=lambda m: None)
    assert (first.scheduled, first.done, first.failed) == (4, 4, 0)
    rows = open_store(StoreConfig.from_spec(spec.results)).load("sandwich").to_pylist()
    nets = {r["task_key"]: r for r in rows if r["kind"] == "resnet_train"}
    comps = [r for r in rows if r["kind"] == "resnet_compile"]
    assert len(nets) == 2 and len(comps) == 2
    for c in comps:
        net = nets[c["train_key"]]
        assert c["norm_block_path"] == net["norm_block_path"] and c["lam"] == net["lam"]
        pts = json.loads(c["points_json"])
        assert [p["eps"] for p in pts] == [0.4, 0.2, 0.1]
        for p in pts:   # each rung either verified within eps or says why not
            assert (p["verified"] and p["max_error"] <= p["eps"]) or (not p["verified"] and p["reason"])
        assert c["rungs_compiled"] == sum(p["verified"] for p in pts)
    heavy = next(c for c in comps if c["lam"] == 0.1)       # λ = 0.1 prunes the net to a constant
    assert heavy["rungs_compiled"] == 0 and heavy["gates_min"] is None
    again = run_sweep(spec, progress=False, say=lambda m: None)
    assert (again.already_ok, again.scheduled) == (4, 0)


# ------------------------------------------------------------------------------------------------- analysis
def _compiles() -> pd.DataFrame:
    """Two nets of one function: net a compiles at 0.2 (100 gates) and 0.1 (400), net b (larger norm) at 0.1
    (300) and 0.05 (900); C̄ at the rungs is 20, 40, 80."""
    def pts(spec):
        return json.dumps([{"eps": e, "gates": g, "verified": g is not None, "max_error": e / 2 if g else None}
                           for e, g in spec])
    return pd.DataFrame([
        {"train_key": "a", "points_json": pts([(0.2, 100), (0.1, 400), (0.05, None)]), "width": 8, "lam": 1e-3,
         "seed": 0, "norm_l1": 2.0, "norm_block_path": 3.0},
        {"train_key": "b", "points_json": pts([(0.2, None), (0.1, 300), (0.05, 900)]), "width": 16, "lam": 1e-5,
         "seed": 0, "norm_l1": 8.0, "norm_block_path": 1.5}])


def _cbar() -> pd.DataFrame:
    return pd.DataFrame({"fid": [0, 0, 0], "eps": [0.2, 0.1, 0.05], "cbar": [20.0, 40.0, 80.0]})


def test_sandwich_table_counts_a_net_at_eps_through_circuits_within_eps():
    sand = sandwich_table(compiled_points(_compiles(), np.array([0, 0])), _cbar()).set_index("eps")
    # b's circuits within 0.1 and 0.05 are within 0.2 too: both nets count at 0.2
    assert sand.loc[0.2, ["cbar", "gates_min", "n_nets"]].tolist() == [20.0, 100.0, 2]
    assert sand.loc[0.2, "norm_min_l1"] == 2.0 and sand.loc[0.2, "norm_min_block_path"] == 1.5
    # at 0.1 both nets count: Ḡ = 300 (b), R̄_l1 = 2 (a), R̄_block_path = 1.5 (b): the minima are per quantity
    assert sand.loc[0.1, ["gates_min", "norm_min_l1", "norm_min_block_path", "n_nets"]].tolist() == [300, 2, 1.5, 2]
    # at 0.05 only b: a net's circuit at 0.1 is not within 0.05
    assert sand.loc[0.05, ["gates_min", "norm_min_l1", "n_nets"]].tolist() == [900, 8.0, 1]
    frac, n = frac_within_square(sand.reset_index())
    assert (frac, n) == (1.0, 3)     # 100 <= 400, 300 <= 1600, 900 <= 6400
    nets = fill_compiled(pd.DataFrame({"task_key": ["a", "b", "c"]}), compiled_points(_compiles(), np.array([0, 0])))
    assert nets["compiled_gates"].tolist()[:2] == [400.0, 900.0] and nets["compiled_eps"].tolist()[:2] == [0.1, 0.05]
    assert nets["compiled_gates"].isna().tolist() == [False, False, True]     # finest verified rung per net
    cp = with_cbar_ratio(compiled_points(_compiles(), np.array([0, 0])), _cbar())
    assert cp["ratio_to_cbar"].tolist()[:2] == [5.0, 10.0] and cp["ratio_to_cbar"].isna().sum() == 2


def test_rho_fit_recovers_a_known_exponent():
    eps = 0.4 * 2.0 ** -np.arange(5)
    sand = pd.DataFrame({"fid": 0, "function": "f", "eps": eps, "cbar": 10 * eps ** -1.5, "gates_min": 5.0,
                         "n_nets": 1, "norm_min_l1": 3 * eps ** -0.75})
    funcs = pd.DataFrame({"fid": [0], "label": ["f"], "function_key": ["f|{}|box"], "gamma": [1.5],
                          "gamma_lo": [1.4], "gamma_hi": [1.6]})
    ph = resnet_phase(sand, funcs).iloc[0]
    rho, lo, hi = ph["rho"]["l1"]
    assert math.isclose(rho, 0.75, abs_tol=1e-9) and lo <= rho <= hi
    assert math.isclose(ph["sandwich_exponent"]["l1"], 0.5, abs_tol=1e-9)   # R̄ ∝ C̄^(0.75/1.5)
    assert ph["gamma"] == 1.5 and ph["rungs_with_nets"] == 5


def test_the_three_plots_draw_what_they_say(tmp_path, monkeypatch):
    figs = []
    real = SP.save_png
    monkeypatch.setattr(SP, "save_png", lambda fig, path: (figs.append(fig), real(fig, path))[1])
    sand = sandwich_table(compiled_points(_compiles(), np.array([0, 0])), _cbar())
    sand.insert(1, "function", "f")
    r = SP.plot_sandwich_points(sand, tmp_path / "s.png")
    assert r.n_points == 3 and "100% of 3 points" in r.text and r.path.exists()
    ax = figs[-1].axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log") and "C̄" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["f", "Ḡ = C̄", "Ḡ = C̄²"]
    assert list(ax.lines[0].get_ydata()) == [100.0, 300.0, 900.0]
    funcs = pd.DataFrame({"fid": [0], "label": ["f"], "function_key": ["k"], "gamma": [1.0], "gamma_lo": [0.8],
                          "gamma_hi": [1.2]})
    r = SP.plot_resnet_phase(resnet_phase(sand, funcs), tmp_path / "p.png")
    assert r.n_points == 2                               # one point per norm panel (block_path, l1)
    axes = figs[-1].axes
    assert [a.get_title() for a in axes] == ["block_path", "l1"] and all(a.get_xlabel().startswith("γ̂") for a in axes)
    assert any(np.allclose(l.get_xdata(), 2.0) for l in axes[0].lines)     # the γ = 2 line
    r = SP.plot_norms_vs_cbar(sand, tmp_path / "n.png")
    assert r.n_points == 6                               # 3 rungs x 2 norms
    assert list(figs[-1].axes[1].lines[0].get_ydata()) == [2.0, 2.0, 8.0]   # R̄_l1 along ε, coarse to fine
    empty = SP.plot_sandwich_points(sand.assign(gates_min=None), tmp_path / "e.png")
    assert empty.path is None and "no rung has both" in empty.note

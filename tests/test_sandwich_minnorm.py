"""The sandwich on the min-norm net's own circuit (issue 21 B): R*_ν, G*_ν (the gates of the argmin-norm net, not
the smallest circuit), Ḡ beside it, the coverage, the fraction within C̄² and the slope of log G* on log C̄, on
hand-computed synthetic records (no training)."""
import json
import math

import numpy as np
import pandas as pd

from analysis.sandwich import (compiled_points, frac_within_square, gates_exponent, resnet_phase, sandwich_contract,
                               sandwich_table)


def _fits() -> pd.DataFrame:
    """resnet_fit rows (one net per rung, flat): f1 has the smallest l1 at 0.2 but a larger circuit than f2."""
    rows = [("f1", 0.2, 1.0, 150), ("f2", 0.2, 2.0, 12), ("f3", 0.1, 1.5, 100), ("f4", 0.05, 3.0, 400),
            ("f5", 0.025, 6.0, 1600), ("f6", 0.0125, 7.0, None)]
    return pd.DataFrame([{"task_key": k, "eps": e, "norm_l1": n, "gates": g, "verified": g is not None,
                          "max_error": e / 2 if g else None, "width": 8, "seed": 0, "fit_seconds": 1.0}
                         for k, e, n, g in rows])


def _compiles() -> pd.DataFrame:
    """One λ-path net (resnet_compile): the smallest l1 of all, its own circuit verified at 0.1 only (900 gates)."""
    pts = [{"eps": 0.2, "gates": None, "verified": False}, {"eps": 0.1, "gates": 900, "verified": True,
                                                            "max_error": 0.08, "gates_table": 60}]
    return pd.DataFrame([{"train_key": "a", "points_json": json.dumps(pts), "width": 16, "lam": 1e-4, "seed": 1,
                          "norm_l1": 0.5}])


def _cbar() -> pd.DataFrame:
    return pd.DataFrame({"fid": 0, "eps": [0.2, 0.1, 0.05, 0.025, 0.0125], "cbar": [10.0, 20.0, 40.0, 80.0, 160.0]})


def _table() -> pd.DataFrame:
    cpts = compiled_points(_compiles(), np.array([0]), _fits(), np.zeros(6, dtype=int))
    sand = sandwich_table(cpts, _cbar())
    sand.insert(1, "function", "f")
    return sand


def test_g_star_is_the_gates_of_the_argmin_norm_net_not_the_smallest_circuit():
    s = _table().set_index("eps")
    assert list(s.index) == [0.2, 0.1, 0.05, 0.025, 0.0125]
    # at 0.2 and 0.1 the λ-path net a (l1 0.5, circuit at 0.1: 900 gates) has the smallest norm: G* = 900, while
    # the fewest gates within 0.2 are f2's 12 (Ḡ)
    assert s["norm_min_l1"].tolist()[:4] == [0.5, 0.5, 3.0, 6.0]
    assert s["gates_minnorm_l1"].tolist()[:4] == [900.0, 900.0, 400.0, 1600.0]
    assert s["gates_min"].tolist()[:4] == [12.0, 100.0, 400.0, 1600.0]
    assert s.loc[0.1, "gates_table_min"] == 60.0 and s.loc[0.2, "n_nets"] == 6   # f1..f5 and a; f6 never verified
    assert s.loc[0.0125, ["gates_min", "gates_minnorm_l1", "norm_min_l1"]].isna().all()
    # without the λ-path net, f1 (l1 1.0, 150 gates) is the argmin at 0.2, not f2 (12 gates)
    alone = sandwich_table(compiled_points(pd.DataFrame(), np.zeros(0, int), _fits(), np.zeros(6, int)), _cbar())
    assert alone.set_index("eps").loc[0.2, ["norm_min_l1", "gates_minnorm_l1", "gates_min"]].tolist() == \
        [1.0, 150.0, 12.0]


def test_fraction_coverage_and_ratio_in_the_contract():
    sand = _table()
    assert frac_within_square(sand) == (1.0, 4)                      # Ḡ: 12, 100, 400, 1600 vs 100 .. 6400
    assert frac_within_square(sand, "gates_minnorm_l1") == (0.5, 4)  # G*: 900 > 100, 900 > 400, then within
    funcs = pd.DataFrame({"fid": [0], "gamma": [1.0], "gamma_lo": [0.9], "gamma_hi": [1.1], "eps_min": [0.0125],
                          "eps_max": [0.2]})
    ph = resnet_phase(sand, funcs)
    assert ph.iloc[0]["coverage"] == {"rungs_with_net": 4, "rungs": 5, "fraction": 0.8, "rungs_with_net_any": 4}
    doc, phase = sandwich_contract(sand, ph)
    assert doc["frac_within_square_minnorm"] == {"l1": {"fraction": 0.5, "n": 4}} and doc["frac_within_square"] == 1
    p = {q["eps"]: q for q in doc["points"]}
    assert p[0.05]["gates_minnorm"] == {"l1": 400.0} and p[0.05]["gates_min"] == 400.0
    assert p[0.05]["ratio_minnorm_to_cbar"] == {"l1": 10.0} and p[0.2]["ratio_minnorm_to_cbar"] == {"l1": 90.0}
    assert phase[0]["coverage"]["fraction"] == 0.8 and phase[0]["gates_exponent"]["l1"]["n"] == 4


def test_the_slope_of_g_star_on_cbar_and_its_interval():
    cbar = np.array([16.0, 64.0, 256.0, 1024.0, 4096.0])
    five = gates_exponent(cbar, 2 * cbar ** 1.5)
    assert math.isclose(five["slope"], 1.5, abs_tol=1e-9) and five["lo"] <= 1.5 <= five["hi"] and five["n"] == 5
    noisy = gates_exponent(cbar, 2 * cbar ** 1.5 * np.array([1.0, 1.3, 0.8, 1.1, 0.9]))
    assert noisy["lo"] < noisy["slope"] < noisy["hi"] and abs(noisy["slope"] - 1.5) < 0.15
    three = gates_exponent(cbar[:3], 2 * cbar[:3] ** 1.5)
    assert math.isclose(three["slope"], 1.5, abs_tol=1e-9) and three["lo"] is None
    assert "not meaningful on 3 points" in three["note"]
    assert gates_exponent(cbar[:1], cbar[:1])["slope"] is None


def test_summary_json_adds_coverage_and_gates_minnorm_from_resnet_fit_records():
    """analysis.aggregate reads resnet_fit records (flat, one rung each) beside the store's ladders: summary.json's
    contract gains coverage per function and gates_minnorm per point, beside gates_min."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from analysis.aggregate import contract, summarize
    t = pq.read_table(Path(__file__).parent / "fixtures" / "sweep_fixture.parquet").to_pandas()
    version = t[(t.kind == "circuit_ladder") & (t.function == "sin")].iloc[0]["function_version"]
    rows = [{"kind": "resnet_fit", "status": "ok", "task_key": f"fit{j}{s}", "function": "sin",
             "function_version": version, "eps": e, "gates": None if g is None else g * gm, "verified": g is not None,
             "params_json": json.dumps({"function": "sin", "function_params": {"freq": 1}, "rung": j, "seed": s},
                                       separators=(",", ":"), sort_keys=True),
             "max_error": e / 2, "norm_l1": n * nm, "seed": s, "width": 8}
            for j, (e, g, n) in enumerate([(0.1, 40, 2.0), (0.05, 90, 3.1), (0.025, 300, 4.9), (0.0125, None, 9.0)])
            for s, (gm, nm) in enumerate([(1, 1), (0.6, 1.3)])]
    doc = contract(summarize(pd.concat([t, pd.DataFrame(rows)], ignore_index=True)))
    # the sin ladder's rungs are 0.1 .. 0.0125 (its C̄ at 0.003 is a search's, not a rung); nets verify down to 0.025
    assert doc["coverage"] == {"sin(freq=1)": {"rungs_with_net": 3, "rungs": 4, "fraction": 0.75,
                                               "rungs_with_net_any": 3}}
    p = {q["eps"]: q for q in doc["sandwich"]["points"]}
    # at 0.1 the min-l1 net is seed 0's (norm 2.0, 40 gates); seed 1's circuit is smaller (24 gates): that is Ḡ
    assert (p[0.1]["gates_minnorm"], p[0.1]["gates_min"], p[0.1]["norms_min"]) == ({"l1": 40.0}, 24.0, {"l1": 2.0})
    assert p[0.1]["ratio_minnorm_to_cbar"]["l1"] == 40.0 / p[0.1]["cbar"]
    assert doc["sandwich"]["frac_within_square_minnorm"] == {"l1": {"fraction": 1.0, "n": 3}}


def test_the_demo_closing_lines_say_what_each_number_is():
    """jobs/demo.py's headline lines: G* and Ḡ each on a line of its own label (issue 23: no two lines with one
    label), coverage and ρ̂ per function; and the parent run's metrics carry G*'s fraction and the coverage."""
    from cluster.analyze import headline_metrics
    from jobs.demo import figure_lines, headline_lines

    class Summary:   # what analysis.aggregate.contract reads
        sandwich = _table()
        resnet_phase = resnet_phase(sandwich, pd.DataFrame({"fid": [0], "gamma": [1.0], "gamma_lo": [0.9],
                                                            "gamma_hi": [1.1]}))
        convexity_slopes = {}
    lines = headline_lines(Summary)
    labels = [ln.split(":")[0] for ln in lines if not ln.startswith("  ")]
    assert len(labels) == len(set(labels))
    assert lines[0].startswith("G* <= C̄²:") and "l1 50% of 4 (function, ε) points" in lines[0] and "min-ν" in lines[0]
    assert lines[1].startswith("Ḡ <= C̄²:") and "100% of 4" in lines[1] and "best circuit over all nets" in lines[1]
    assert lines[3].startswith("  f: coverage 4/5 rungs, γ̂ 1.00, ρ̂(l1) ") and "slope log G*/log C̄ " in lines[3]
    from analysis.aggregate import contract
    m = headline_metrics(contract(Summary))
    assert m["sandwich_minnorm_frac_within_square/l1"] == 0.5 and m["coverage/f"] == 0.8
    assert figure_lines({"sandwich_minnorm": "/x/s.png"}) == [
        "G* figure:      /x/s.png  (the min-norm net's own circuit G*_ν against C̄)"]


def test_a_rate_off_the_theory_names_its_range_as_pre_asymptotic():
    from analysis.missing import rate_notes
    f = pd.DataFrame({"label": ["h(d=2, s=0.5)", "h(d=1, s=1)"], "gamma": [3.45, 1.14], "gamma_theory": [4.0, 1.0],
                      "eps_min": [0.1, 0.00625], "eps_max": [0.4, 0.2], "n_used": [3, 6]})
    assert rate_notes(f) == ["h(d=2, s=0.5): γ̂ 3.45 is -0.55 off the theory's 4.00, fitted on ε in [0.1, 0.4] "
                             "(3 rungs): a pre-asymptotic range; a longer ladder from a finer ε is needed for the rate"]


def test_points_compiled_before_version_3_are_not_a_nets_own_circuit():
    pts = [{"eps": 0.1, "gates": 50, "verified": True, "compile_version": "2"},
           {"eps": 0.05, "gates": 700, "gates_table": 90, "verified": True, "compile_version": "3"}]
    comp = pd.DataFrame([{"train_key": "a", "points_json": json.dumps(pts), "norm_l1": 1.0}])
    cp = compiled_points(comp, np.array([0])).set_index("eps")
    assert math.isnan(cp.loc[0.1, "gates"]) and cp.loc[0.1, "gates_table"] == 50 and not cp.loc[0.1, "verified"]
    assert cp.loc[0.05, ["gates", "gates_table"]].tolist() == [700, 90] and cp.loc[0.05, "verified"]

"""analysis/: summary tables, the five plots and report.html from a tiny real sweep (tests/fixtures), golden values,
empty and partial sweeps, and the dependency rule (no ray, mlflow or boto3 in analysis/).

The fixture (tests/fixtures/sweep_fixture.parquet, 27 records) was produced by really running the task kinds
(tests/fixtures/make_fixture.py). The golden values (tests/fixtures/golden.json) were computed from it once;
regenerate them with `python tests/test_analysis.py --write-golden` after a deliberate change, and review the diff.

Tolerances. Counts, categories and the preferred model must match exactly. The fitted numbers (γ̂, its interval,
ĉ, the polylog fit, the HTMC norms, Spearman's ρ and its bootstrap interval, slopes) are deterministic given
htmc.rates.fits' FIT_VERSION and the seeded bootstraps, so they must match to a relative 1e-6 (absolute 1e-9 near 0).
"""
from __future__ import annotations

import html.parser
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "sweep_fixture.parquet"
GOLDEN = REPO / "tests" / "fixtures" / "golden.json"
PLOTS = ("ladders", "phase", "norm_ranking", "pareto", "convexity")   # the fixture has no compiled ladders
RTOL, ATOL = 1e-6, 1e-9

sys.path.insert(0, str(REPO))

from analysis import aggregate as A  # noqa: E402
from analysis import plots as P  # noqa: E402
from analysis import records as R  # noqa: E402
from analysis.cbar import cbar_table  # noqa: E402
from analysis.family_tables import phase_table  # noqa: E402
from analysis.function_fits import DEFAULT_GAMMAS, _norm_cols, _norm_values, fit_functions  # noqa: E402
from analysis.report import build_report  # noqa: E402


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pq.read_table(FIXTURE)


@pytest.fixture(scope="module")
def summary(table):
    return A.summarize(table)


@pytest.fixture(scope="module")
def report(table, tmp_path_factory):
    return build_report(table, tmp_path_factory.mktemp("report"), title="fixture sweep")


# ---------------------------------------------------------------------------------------------------------------
# Golden values
# ---------------------------------------------------------------------------------------------------------------

def golden_values(summary: A.Summary, plots: dict) -> dict:
    f = summary.functions
    fn = {}
    for _, r in f.iterrows():
        fn[r["label"]] = {k: (None if pd.isna(r[k]) else (r[k] if isinstance(r[k], str) else float(r[k])))
                          for k in ("n_records", "n_failed", "n_points", "n_used", "gamma", "gamma_lo", "gamma_hi",
                                    "ci_note", "c", "polylog_a", "polylog_b", "preferred_model", "delta_aic",
                                    "gamma_theory", *_norm_cols(DEFAULT_GAMMAS))}
    rank = {f"{r['size']}/{r['norm']}": {"rank": int(r["rank"]), "n_nets": int(r["n_nets"]),
                                         "spearman": r["spearman"], "spearman_lo": r["spearman_lo"],
                                         "spearman_hi": r["spearman_hi"], "slope": r["slope"]}
            for _, r in summary.norm_ranking.iterrows()}
    nets = {r["task_key"]: {"cbar_at_error": None if pd.isna(r["cbar_at_error"]) else float(r["cbar_at_error"]),
                            "compiled_gates": None if pd.isna(r["compiled_gates"]) else float(r["compiled_gates"])}
            for _, r in summary.nets.iterrows()}
    conv = {f"{r['part_gamma_theory']:g}/m={int(r['m'])}": r["gamma"] for _, r in summary.convexity.iterrows()}
    phase = {f"s={r['x']:g},d={r['y']:g}": (None if pd.isna(r["gamma"]) else r["gamma"])
             for _, r in summary.phase.iterrows()}
    return {"counts": summary.counts, "n_missing": len(summary.missing), "functions": fn, "norm_ranking": rank,
            "nets": nets, "convexity": conv, "phase": phase,
            "plots": {k: {"n_points": v.n_points, "n_records": v.n_records} for k, v in plots.items()}}


def _close(a, b, where: str):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))} differ"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, f"{where}: {a!r} != {b!r}"
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL), f"{where}: {a!r} != golden {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != golden {b!r}"


def test_summary_matches_golden(summary, report):
    golden = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(golden_values(summary, report.plots), default=float))
    _close(got, golden, "golden")


# ---------------------------------------------------------------------------------------------------------------
# The summary against the records themselves
# ---------------------------------------------------------------------------------------------------------------

def _raw(table):
    """Plain-Python view of the fixture, independent of analysis/'s code paths."""
    df = table.to_pandas()
    ok = df[df["status"] == "ok"]
    pts = {}   # (function key) -> {eps: min gates}
    for _, r in ok[ok["kind"].isin(["circuit_ladder", "circuit_search"])].iterrows():
        p = json.loads(r["params_json"])
        key = (p["function"], json.dumps(p["function_params"], sort_keys=True))
        obs = (json.loads(r["points_json"]) if r["kind"] == "circuit_ladder"
               else [{"eps": r["eps"], "gates": r["gates"]}])
        for o in obs:
            if o["gates"] and o["gates"] > 0:
                d = pts.setdefault(key, {})
                d[o["eps"]] = min(d.get(o["eps"], math.inf), o["gates"])
    return df, ok, pts


def test_counts_and_cbar_merge(table, summary):
    df, ok, pts = _raw(table)
    assert summary.counts["records"] == len(df) == 27
    assert summary.counts["by_kind"] == {"circuit_ladder": {"failed": 2, "ok": 12}, "circuit_search": {"ok": 1},
                                         "resnet_train": {"ok": 12}}
    assert len(summary.points) == sum(len(v) for v in pts.values())
    sin = summary.functions[summary.functions["function"] == "sin"].iloc[0]
    assert sin["n_records"] == 2 and sin["n_points"] == 5           # the search below the ladder is merged in
    sin_pts = summary.points[summary.points["function_key"].astype(str) == sin["function_key"]]
    assert sorted(sin_pts["cbar"]) == sorted(next(v for k, v in pts.items() if k[0] == "sin").values())
    failed = summary.functions[summary.functions["n_failed"] > 0]
    assert list(failed["label"]) == ["holder_random(d=2, s=0.5, seed=0)"] and failed["gamma"].isna().all()
    assert len(summary.failed) == 2 and summary.failed["error"].str.contains("more than 16 input bits").all()


def _with_current_fits(table: pa.Table) -> pa.Table:
    """The fixture as htmc.rates.ladder would store it today: each ok ladder's fit_json refitted from its own usable
    rungs (the fixture's fits are FIT_VERSION 1)."""
    from htmc.rates.fits import fit_ladder
    fits = []
    for kind, status, pj, fj in zip(*(table[c].to_pylist() for c in ("kind", "status", "points_json", "fit_json"))):
        if kind == "circuit_ladder" and status == "ok":
            pts = [q for q in json.loads(pj) if q["gates"] and q["gates"] > 0]
            fj = json.dumps(fit_ladder([q["eps"] for q in pts], [q["gates"] for q in pts], DEFAULT_GAMMAS,
                                       exact_rounded=[bool(q.get("exact_rounded")) for q in pts]).to_json())
        fits.append(fj)
    return table.set_column(table.column_names.index("fit_json"), "fit_json", pa.array(fits, pa.string()))


def test_refit_equals_stored_fit_and_ladder_records(table, summary):
    """Stored fits of an older FIT_VERSION are refitted. A function with one ladder whose fit is current reuses
    it; refitting with htmc.rates.fits gives the same numbers, and they equal the gamma column of that ladder record."""
    assert (summary.functions["fit_source"].dropna() == "refit").all()      # the fixture's fits are version 1
    fresh = _with_current_fits(table)
    refit = A.summarize(fresh, reuse_stored_fits=False).functions.set_index("function_key")
    f = A.summarize(fresh).functions.set_index("function_key")
    assert (f["fit_source"].dropna() == "stored").sum() == 11 and (f["fit_source"] == "refit").sum() == 1
    for col in ("gamma", "gamma_lo", "gamma_hi", "c", "polylog_b", "delta_aic", "htmc_norm_at_rungs_3",
                "htmc_norm_over_range_3"):
        np.testing.assert_allclose(f[col].to_numpy(float), refit.loc[f.index, col].to_numpy(float), rtol=1e-12)
    np.testing.assert_allclose(f["gamma"].to_numpy(float),
                               summary.functions.set_index("function_key").loc[f.index, "gamma"].to_numpy(float),
                               rtol=1e-12)
    lad = table.filter(pc.and_(pc.equal(table["kind"], "circuit_ladder"), pc.equal(table["status"], "ok")))
    fid, cat = R.function_ids(lad)
    for key, g in zip(cat["function_key"].to_numpy()[fid], lad["gamma"].to_pylist()):
        if f.loc[key, "fit_source"] == "stored":
            assert f.loc[key, "gamma"] == pytest.approx(g, rel=1e-12)


def test_nets_joined_with_cbar_and_compiled_gates(table, summary):
    df, ok, pts = _raw(table)
    nets = summary.nets.set_index("task_key")
    assert len(nets) == 12 and nets["compiled_gates"].notna().all()     # compiled_gates column
    assert nets["compiled_max_error"].notna().all()                       # from extra_json (undeclared column)
    for _, r in ok[ok["kind"] == "resnet_train"].iterrows():
        p = json.loads(r["params_json"])
        ladder = pts[(p["function"], json.dumps(p["function_params"], sort_keys=True))]
        below = [g for e, g in ladder.items() if e <= r["sup_error"]]
        expect = min(below) if below else None
        got = nets.loc[r["task_key"], "cbar_at_error"]
        assert (expect is None and pd.isna(got)) or got == expect


def test_norm_ranking_table(summary):
    nr = summary.norm_ranking
    assert set(nr["size"]) == {"compiled_gates", "cbar_at_error"}
    assert set(nr["norm"]) == {"l1", "block_path", "weighted_path", "lipschitz_l1"}
    for _, g in nr.groupby("size"):
        assert sorted(g["rank"]) == [1, 2, 3, 4]
        assert (g["spearman_lo"] <= g["spearman"] + 1e-12).all() and (g["spearman"] <= g["spearman_hi"] + 1e-12).all()
    assert (nr["ci_method"] == "bootstrap").all()


# ---------------------------------------------------------------------------------------------------------------
# Plots and report
# ---------------------------------------------------------------------------------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_every_plot_exists_with_sensible_size(report):
    for name in PLOTS:
        p = report.paths[name]
        assert p.is_file() and p.suffix == ".png"
        w, h = _png_size(p)
        assert 600 <= w <= 4000 and 400 <= h <= 3000, (name, w, h)
        assert 15_000 <= p.stat().st_size <= 3_000_000, (name, p.stat().st_size)


def test_plotted_counts_match_records(table, report):
    df, ok, pts = _raw(table)
    pl = report.plots
    circ = ok[ok["kind"].isin(["circuit_ladder", "circuit_search"])]
    assert (pl["ladders"].n_points, pl["ladders"].n_records) == (sum(len(v) for v in pts.values()), len(circ))
    holder = [json.loads(p) for p in circ["params_json"] if json.loads(p)["function"] == "holder_random"]
    cells = {(p["function_params"]["s"], p["function_params"]["d"]) for p in holder}
    assert (pl["phase"].n_points, pl["phase"].n_records) == (len(cells), len(holder))
    nets = ok[ok["kind"] == "resnet_train"]
    norms = ["norm_block_path", "norm_l1", "norm_lipschitz_l1", "norm_weighted_path"]
    n_comp = int((nets["compiled_gates"] > 0).sum())
    has_cbar = sum(1 for _, r in nets.iterrows() if any(
        e <= r["sup_error"] for e in pts[(r["function"], json.dumps(json.loads(r["params_json"])["function_params"],
                                                                    sort_keys=True))]))
    assert pl["norm_ranking"].n_points == len(norms) * (n_comp + has_cbar)
    assert pl["norm_ranking"].n_records == len(nets)
    assert (pl["pareto"].n_points, pl["pareto"].n_records) == (len(nets), len(nets))
    mixtures = circ[[json.loads(p)["function"] == "mixture" for p in circ["params_json"]]]
    assert (pl["convexity"].n_points, pl["convexity"].n_records) == (len(mixtures), len(mixtures))


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.hrefs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src"))
        if tag == "a":
            self.hrefs.append(a.get("href"))


def test_report_links_every_plot_and_says_how_many_records(report):
    text = report.paths["report"].read_text(encoding="utf-8")
    links = _Links()
    links.feed(text)
    out = report.paths["report"].parent
    for name in PLOTS:
        src = report.paths[name].name
        assert src in links.imgs and (out / src).is_file()
        r = report.plots[name]
        assert f"Built from {r.n_records} records; {r.n_points} data points drawn" in text
    for f in ("summary.parquet", "summary.json", "nets.parquet"):
        assert f in links.hrefs
    assert "What is missing" in text and "Failed tasks" in text and "more than 16 input bits" in text


def test_report_says_what_each_fit_number_is(report):
    """Issue 12: the report names both norm estimates, the sign of ΔAIC, what the interval is, and shows the
    interval of a fit with <= 3 rungs as n/a."""
    text = report.paths["report"].read_text(encoding="utf-8")
    assert "‖f‖ H^2 at rungs" in text and "‖f‖ H^2 over range" in text
    assert "ΔAIC</b> = AIC(polylog) − AIC(power)" in text and "inconclusive when |ΔAIC| &lt; 2" in text
    assert "not sampling error" in text and "n/a (≤3 rungs)" in text
    assert "'>inconclusive</td>" in text       # two mixtures of the fixture have |ΔAIC| < 2


def test_summary_files(report, summary):
    out = report.paths["report"].parent
    t = pq.read_table(out / "summary.parquet")
    assert t.num_rows == len(summary.functions) and {"gamma", "gamma_lo", "gamma_hi", "ci_note", "preferred_model",
                                                    "delta_aic", "htmc_norm_at_rungs_2",
                                                    "htmc_norm_over_range_2"} <= set(t.column_names)
    doc = json.loads((out / "summary.json").read_text())
    assert len(doc["tables"]["functions"]) == len(summary.functions)
    assert doc["counts"]["records"] == 27 and doc["missing"] == report.missing
    assert pq.read_table(out / "nets.parquet").num_rows == 12


def _toy(domain: str, sizes, exact=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    eps = 0.2 * 2.0 ** -np.arange(len(sizes))
    points = pd.DataFrame({"fid": 0, "eps": eps, "cbar": np.asarray(sizes, float), "source": "circuit_ladder",
                           "task_key": "0" * 16})
    if exact is not None:
        points["exact_rounded"] = exact
    meta = pd.DataFrame({"gamma_theory": [2.0], "n_ok": [1], "n_failed": [0]}, index=pd.Index([0]))
    known = {"function": "toy", "function_params": "{}", "domain": domain, "function_key": f"toy|{{}}|{domain}",
             "label": "toy"}
    cat = pd.DataFrame({c: [known.get(c, "")] for c in R.CATALOGUE_COLUMNS})
    return points, meta, cat


def test_saturated_points_are_marked(tmp_path):
    # grid: the last three rungs are the exactly rounded circuit; the plateau's first point is kept
    points, meta, cat = _toy("grid", [10, 40, 160, 640, 640, 640], [False, False, False, True, True, True])
    functions, pts = fit_functions(points, meta, cat)
    assert functions["n_saturated"].iloc[0] == 2 and list(pts["kept"]) == [True] * 4 + [False] * 2
    assert functions["gamma"].iloc[0] == pytest.approx(2.0)
    r = P.plot_ladders(functions, pts.assign(function_key="toy|{}|grid"), tmp_path / "l.png")
    assert r.n_points == 6 and r.path.is_file()


def test_box_plateau_is_fitted_and_thin_intervals_are_null(tmp_path):
    """Box: no exact circuit, so a plateau is data. With <= 3 fitted rungs the interval is null and every
    downstream table and plot says so instead of crashing."""
    points, meta, cat = _toy("box", [10, 40, 160, 640, 640, 640])
    functions, pts = fit_functions(points, meta, cat)
    assert functions["n_saturated"].iloc[0] == 0 and pts["kept"].all()
    assert functions["gamma_lo"].notna().all() and "misfit" in functions["ci_note"].iloc[0]
    points, meta, cat = _toy("box", [10, 40, 160])
    functions, pts = fit_functions(points, meta, cat)
    f = functions.iloc[0]
    assert pd.isna(f["gamma_lo"]) and pd.isna(f["gamma_hi"]) and f["ci_note"] == "not meaningful with 3 fitted rungs"
    # norms: ε_j C̄_{j+1}^{1/2}: 0.2*sqrt(40)=1.265, 0.1*sqrt(160)=1.265, 0.05*sqrt(160)=0.632
    assert f["htmc_norm_over_range_2"] == pytest.approx(0.2 * 40 ** 0.5)
    assert f["htmc_norm_at_rungs_2"] == pytest.approx(max(0.2 * 10 ** 0.5, 0.1 * 40 ** 0.5, 0.05 * 160 ** 0.5))
    r = P.plot_ladders(functions, pts.assign(function_key="toy|{}|box"), tmp_path / "l.png")
    assert r.path.is_file()
    fake = functions.assign(function="holder_random", function_params=json.dumps({"s": 1, "d": 1}))
    ph = phase_table(fake)
    assert ph["gamma"].notna().all() and ph["gamma_lo"].isna().all()
    assert (ph["rungs_min"].tolist(), ph["rungs_max"].tolist()) == ([3], [3])   # the 3 fitted rungs, per cell
    assert P._phase_label(ph.iloc[0]).endswith("theory 2.00\nfitted 1 of 1\n3 rungs"), P._phase_label(ph.iloc[0])
    assert P.plot_phase(ph, tmp_path / "p.png").path.is_file()
    assert P._fmt_gamma_ci(None, None) == P._fmt_gamma_ci(math.nan, math.nan) == "n/a (≤3 rungs)"
    assert P._fmt_gamma_ci(-math.inf, math.inf) == "[unbounded]" and P._fmt_gamma_ci(1.0, 2.0) == "[1.00, 2.00]"


def test_cbar_exact_rounded_merge():
    """C̄ at (f, ε) is exact only where an observation with the least gates is the exactly rounded circuit."""
    obs = pd.DataFrame({"fid": [0, 0, 0, 0, 0], "eps": [0.1, 0.1, 0.05, 0.05, 0.02], "gates": [9, 7, 12, 12, 20],
                        "exact_rounded": [True, None, None, True, None], "source": "circuit_ladder",
                        "task_key": "k"})
    cb = cbar_table(obs).set_index("eps")
    assert cb.loc[0.1, "cbar"] == 7 and not cb.loc[0.1, "exact_rounded"]    # a smaller inexact circuit wins
    assert cb.loc[0.05, "exact_rounded"] and not cb.loc[0.02, "exact_rounded"]


def test_exact_rounded_from_points_json_reaches_the_refit():
    """summarize reads each rung's exact_rounded from points_json (absent in older records: False)."""
    sizes, exact = [4, 8, 12, 12, 12], [False, False, True, True, True]
    pts = [{"eps": 0.5 * 2.0 ** -j, "gates": g, "exact_rounded": x} for j, (g, x) in enumerate(zip(sizes, exact))]
    rows = [{"task_key": f"{i:016x}", "kind": "circuit_ladder", "status": "ok", "function": "toy", "fit_json": "{}",
             "params_json": json.dumps({"domain": dom, "function": "toy", "function_params": {}}),
             "points_json": json.dumps([{k: v for k, v in q.items() if dom == "grid" or k != "exact_rounded"}
                                        for q in pts])}
            for i, dom in enumerate(("grid", "box"))]
    s = A.summarize(pa.Table.from_pylist(rows))
    domain = s.points["fid"].map(s.functions.set_index("fid")["domain"])
    kept = {d: list(g.sort_values("eps", ascending=False)["kept"]) for d, g in s.points.groupby(domain)}
    assert kept == {"grid": [True, True, True, False, False], "box": [True] * 5}
    f = s.functions.set_index("domain")
    assert f.loc["grid", "n_saturated"] == 2 and f.loc["box", "n_saturated"] == 0


def test_old_stored_fit_json_is_read_and_refitted(table):
    """A ladder record whose fit_json has the old single `htmc_norm` (version 1) still summarizes: it is refit,
    and its norms are read as the at-rungs values where they are used."""
    from htmc.rates.fits import read_norms
    s = A.summarize(table)
    f = s.functions[s.functions["n_points"] > 0]
    assert f["htmc_norm_at_rungs_2"].notna().all() and f["htmc_norm_over_range_2"].notna().all()
    old = json.loads(table.filter(pc.equal(table["kind"], "circuit_ladder"))["fit_json"][0].as_py())
    assert "htmc_norm" in old and old["version"] == "1"
    at, over = read_norms(old)
    assert at == old["htmc_norm"] and over == {}
    assert _norm_values(old, (2,)) == {"htmc_norm_at_rungs_2": old["htmc_norm"]["2"],
                                       "htmc_norm_over_range_2": None}


# ---------------------------------------------------------------------------------------------------------------
# Empty, partial and odd input
# ---------------------------------------------------------------------------------------------------------------

def test_empty_sweep_reports_what_is_missing(tmp_path):
    for records in (None, pa.table({"task_key": pa.array([], pa.string()), "status": pa.array([], pa.string()),
                                    "sweep": pa.array([], pa.string()), "kind": pa.array([], pa.string())}),
                    pd.DataFrame()):
        res = build_report(records, tmp_path / "empty", title="empty")
        text = res.paths["report"].read_text(encoding="utf-8")
        assert "no records at all" in text and "Not drawn" in text
        assert not any(name in res.paths for name in PLOTS)
        assert any("no records" in m for m in res.missing)


def test_partial_sweep_nets_only_and_failures(table, tmp_path):
    part = table.filter(pc.or_(pc.equal(table["kind"], "resnet_train"), pc.equal(table["status"], "failed")))
    part = part.drop_columns(["compiled_gates"])                  # and no compiled counts (extra_json has them)
    res = build_report(part, tmp_path / "partial", title="partial")
    assert {"norm_ranking", "pareto"} <= set(res.paths) and "ladders" not in res.paths
    text = " ".join(res.missing)
    assert "no ok circuit_ladder or circuit_search records" in text
    assert "2 of 2 circuit_ladder records did not finish ok" in text
    assert "no C̄ ladder" in text                                  # nets whose functions have no ladder
    assert res.summary.nets["compiled_gates"].isna().all() and "compiled gate count" in text
    assert "Not drawn" in res.paths["report"].read_text(encoding="utf-8")


def test_dataframe_input_and_missing_columns(table, summary):
    s = A.summarize(table.to_pandas())
    pd.testing.assert_frame_equal(s.functions, summary.functions)
    # A table missing most columns: no crash, fits absent, and the missing list says so.
    bare = table.select(["task_key", "kind", "status", "params_json"])
    s = A.summarize(bare)
    assert s.functions["gamma"].isna().all() and s.missing


def test_function_ids_canonical_and_fallback():
    rows = [{"kind": "circuit_search", "status": "ok", "function": "holder_random",
             "params_json": '{"domain":"box","function":"holder_random","function_params":{"d":1,"s":1.0,"seed":0}}'},
            {"kind": "circuit_search", "status": "ok", "function": "holder_random",
             "params_json": '{"domain":"box","function":"holder_random","function_params":{"seed":0,"s":1,"d":1}}'},
            {"kind": "resnet_train", "status": "ok", "function": "holder_random",
             "params_json": '{"function":"holder_random","function_params":{"d":1,"s":1,"seed":0},"lam":0}'},
            {"kind": "circuit_ladder", "status": "failed", "function": None,
             "params_json": '{"domain":"grid","function":"mixture","function_params":{"parts":[{"name":"a",'
                            '"q":{"deep":{"deeper":{"x":1}}}}]}}'}]
    fid, cat = R.function_ids(pa.Table.from_pylist(rows))
    assert fid[0] == fid[1] == fid[2] and fid[3] != fid[0]         # 1.0 == 1, key order, nets on the box
    assert cat.iloc[fid[3]]["domain"] == "grid" and "deeper" in cat.iloc[fid[3]]["function_params"]


def test_synthetic_scale_smoke():
    from analysis.synthetic import synthetic_records
    t = synthetic_records(20_000, n_functions=60, search_functions=10, net_functions=20)
    s = A.summarize(t)
    assert len(s.functions) == 60 and (s.functions["fit_source"] == "stored").sum() >= 45
    assert len(s.nets) > 15_000 and s.norm_ranking["spearman"].notna().all()
    assert set(s.convexity["m"]) <= {1, 2, 4, 8} and len(s.phase) == 10 and s.phase["gamma"].notna().all()


# ---------------------------------------------------------------------------------------------------------------
# The dependency rule and the jobs entry point
# ---------------------------------------------------------------------------------------------------------------

def test_analysis_never_imports_ray_mlflow_boto3():
    for f in (REPO / "analysis").glob("*.py"):
        src = f.read_text()
        for mod in ("ray", "mlflow", "boto3", "botocore", "cluster"):
            assert f"import {mod}" not in src and f"from {mod}" not in src, f"{f.name} imports {mod}"
    code = ("import sys, pyarrow.parquet as pq; import analysis.report, analysis.synthetic; "
            "from analysis.aggregate import summarize; "
            f"summarize(pq.read_table('{FIXTURE}')); "
            "bad = [m for m in ('ray', 'mlflow', 'boto3', 'cluster') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def _spec(tmp_path: Path, results: Path, tracking: str) -> Path:
    spec = tmp_path / "fixture.yaml"
    spec.write_text(f"name: fixture\nresults: {{uri: '{results}'}}\ntracking: {{uri: '{tracking}'}}\n"
                    "groups:\n  - kind: circuit_ladder\n    params: {function: sin, eps0: 0.1, steps: 2}\n")
    return spec


def test_jobs_analyze_from_a_store(table, tmp_path):
    from cluster.store.core import StoreConfig, open_store
    from jobs.analyze_cli import analyze
    store = open_store(StoreConfig(str(tmp_path / "results")))
    part = table.filter(pc.equal(table["group"], "convexity"))
    for rec in part.to_pylist():
        store.write_record("fixture", rec["kind"], rec)
    res = analyze(str(_spec(tmp_path, tmp_path / "results", f"sqlite:///{tmp_path / 'm.db'}")),
                  out=str(tmp_path / "out"), log=False)
    assert res.paths["report"].is_file() and "convexity" in res.paths
    assert res.summary.counts["records"] == part.num_rows == 6


def test_jobs_analyze_logs_artifacts_to_mlflow(table, tmp_path, mlflow_db):
    from mlflow import MlflowClient

    from cluster.store.core import StoreConfig, open_store
    from jobs.analyze_cli import analyze
    store = open_store(StoreConfig(str(tmp_path / "results")))
    for rec in table.filter(pc.equal(table["group"], "convexity")).to_pylist():
        store.write_record("fixture", rec["kind"], rec)
    res = analyze(str(_spec(tmp_path, tmp_path / "results", mlflow_db["uri"])), out=str(tmp_path / "out"),
                  tracking_uri=mlflow_db["uri"])
    assert res.mlflow_run_id
    client = MlflowClient(tracking_uri=mlflow_db["uri"])

    def names(path=None):
        out = []
        for a in client.list_artifacts(res.mlflow_run_id, path):
            out += names(a.path) if a.is_dir else [Path(a.path).name]
        return out
    logged = set(names())
    assert {p.name for p in res.paths.values()} <= logged


if __name__ == "__main__":
    if "--write-golden" in sys.argv:
        import tempfile
        t = pq.read_table(FIXTURE)
        rep = build_report(t, tempfile.mkdtemp(), title="fixture sweep")
        GOLDEN.write_text(json.dumps(golden_values(rep.summary, rep.plots), indent=1, sort_keys=True,
                                     default=float) + "\n")
        print(f"wrote {GOLDEN}")

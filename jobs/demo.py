"""`make demo`: the demo sweep on the embedded defaults, then its analysis.

Local Ray (in process, 127.0.0.1), MLflow on sqlite:///mlflow.db, results in ./results, the report in
./reports/demo. A second run finds every task done and only redraws the report.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_SPEC = "sweeps/demo.yaml"
# the report's plots that show the three experiments (docs/DEFINITIONS.md), as the demo names them: what each figure is
FIGURES = {"sandwich_minnorm": "G* figure", "sandwich": "Ḡ figure", "resnet_phase": "ρ̂ figure",
           "norms_vs_cbar": "R* figure", "convexity_slopes": "convexity", "convexity_cbar": "walsh C̄",
           "phase": "γ̂ phase", "ladders": "ladders"}
FIGURE_SAYS = {"sandwich_minnorm": "the min-norm net's own circuit G*_ν against C̄",
               "sandwich": "Ḡ, the best circuit over all nets, against C̄, for comparison",
               "resnet_phase": "ρ̂_ν of R*_ν against γ̂ (phase diagram)", "norms_vs_cbar": "R*_ν against C̄",
               "convexity_slopes": "slope of log K̂ on log m per γ", "convexity_cbar": "walsh mixtures' C̄",
               "phase": "γ̂ over holder_random's (d, s)", "ladders": "C̄ against 1/ε per function"}
NORM = "block_path"      # the headline norm (the demo's nets are regularized with it)


def _ci(lo, hi) -> str:
    return f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else " (no interval: ≤ 3 points)"


def _sandwich_lines(doc: dict) -> list[str]:
    """G*_ν (the min-norm net's own circuit) first, Ḡ (best over all nets) second, each labelled as what it is."""
    per = [f"{nu} {v['fraction']:.0%} of {v['n']}"
           for nu, v in doc["sandwich"].get("frac_within_square_minnorm", {}).items() if v.get("fraction") is not None]
    out = [f"G* <= C̄²:       {', '.join(per)} (function, ε) points (G*_ν: the min-ν net's own circuit, per norm ν)"]\
        if per else []
    frac, n = doc["sandwich"]["frac_within_square"], doc["sandwich"]["n_points_with_both"]
    out.append(f"Ḡ <= C̄²:        {frac:.0%} of {n} points (Ḡ: the best circuit over all nets, for comparison)"
               if frac is not None else "Ḡ, G*:         no rung has both C̄ and a net's own circuit within ε")
    return out


def _function_lines(doc: dict) -> list[str]:
    out = []
    for r in doc["resnet_phase"]:
        cov = r.get("coverage") or {}
        nu = NORM if NORM in r["rho"] or not r["rho"] else sorted(r["rho"])[0]
        rho = r["rho"].get(nu, [None] * 3)
        ge = (r.get("gates_exponent") or {}).get(nu) or {}
        g = f"{r['gamma']:.2f}" if r.get("gamma") is not None else "n/a"
        parts = [f"coverage {cov.get('rungs_with_net', 0)}/{cov.get('rungs', 0)} rungs", f"γ̂ {g}"]
        if rho[0] is not None:
            parts.append(f"ρ̂({nu}) {rho[0]:.2f}{_ci(rho[1], rho[2])}")
        if ge.get("slope") is not None:
            parts.append(f"slope log G*/log C̄ {ge['slope']:.2f}{_ci(ge.get('lo'), ge.get('hi'))}")
        out.append(f"  {r['function']}: " + ", ".join(parts))
    return (["per function (nets' coverage of the circuit ladder, γ̂, ρ̂ and the G* slope):"] + out) if out else []


def headline_lines(summary) -> list[str]:
    """The experiments' headline numbers (summary.json's contract keys) as a few lines for the terminal, each
    labelled with what it measures (issue 21 B, issue 23)."""
    from analysis.aggregate import contract
    doc = contract(summary)
    out = _sandwich_lines(doc) + _function_lines(doc)
    for sl in doc["convexity"].get("slopes", []):
        if sl.get("slope") is not None:
            lo, hi = sl.get("lo"), sl.get("hi")
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            out.append(f"convexity:      γ = {sl['gamma']:g}: slope {sl['slope']:.2f}{ci}, theory {sl['theory']:.2f}")
    return out


def figure_lines(paths: dict) -> list[str]:
    """One line per figure drawn: its label, what it shows, its path (a figure not drawn is under 'missing')."""
    return [f"{FIGURES[name] + ':':<15} {Path(paths[name]).resolve()}  ({FIGURE_SAYS[name]})"
            for name in FIGURES if name in paths]


def _runs_link(spec_path: str) -> str:
    """The MLflow runs page of the demo's experiment (issue 22 E: the experiment's default page is not the runs)."""
    from cluster.spec.parse import load_spec
    from cluster.tracking.links import UI, sweep_runs_link
    return sweep_runs_link(load_spec(spec_path, validate_tasks=False)) or f"{UI} (no experiment recorded)"


def _compact(spec_path: str) -> str:
    """Merge the sweep's per-task records into compacted tables and read them back (issue 22 B): the analysis
    then reads a few Parquet parts instead of one file per task; a second demo finds nothing new to merge."""
    from cluster.spec.parse import load_spec
    from cluster.store import compact, read_table
    spec = load_spec(spec_path, validate_tasks=False)
    c = compact(spec.results, spec.name)["sweeps"][0]
    rows = read_table(spec.results, sweep=spec.name).num_rows
    return (f"store:          {c['rows']} ok records in {c['parts']} compacted parts (version {c['version']}; {c['added_rows']} merged by this run), "
            f"{c['failed_left_as_files']} failed left as files; {rows} records read back")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=DEMO_SPEC, help=f"sweep spec (default {DEMO_SPEC})")
    args = ap.parse_args(argv)
    from jobs.analyze_cli import analyze
    from jobs.sweep import main as sweep_main

    t0 = time.perf_counter()
    print(f"== 1/2  sweep {args.spec} (local Ray, results in ./results, MLflow in sqlite:///mlflow.db)")
    rc = sweep_main([args.spec])
    if rc != 0:
        print(f"htmc: the sweep exited with status {rc}", file=sys.stderr)
        return rc
    print(_compact(args.spec))
    print("== 2/2  analysis")
    report = analyze(args.spec)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    print(f"report:         {report.report.resolve()}")
    print(f"summary:        {Path(report.paths['summary_json']).resolve()}" if "summary_json" in report.paths else "")
    for line in figure_lines(report.paths) + headline_lines(report.summary):
        print(line)
    from analysis.missing import rate_notes
    notes = rate_notes(report.summary.functions)
    if notes:
        print("γ̂ off the theory's rate by more than 0.3 (the range each was fitted on):")
        for note in notes:
            print(f"  - {note}")
    if report.missing:
        print("missing (what the report could not show, and why):")
        for m in report.missing:
            print(f"  - {m}")
    print(f"MLflow UI:      make ui, then the sweep's runs: {_runs_link(args.spec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
# the report's plots that show the three experiments (DESIGN §2.6), as the demo names them
FIGURES = {"sandwich": "sandwich", "resnet_phase": "ResNet phase", "norms_vs_cbar": "norms vs C̄",
           "convexity_slopes": "convexity", "convexity_cbar": "walsh C̄", "phase": "γ̂ phase", "ladders": "ladders"}


def headline_lines(summary) -> list[str]:
    """The experiments' headline numbers (summary.json's contract keys) as a few lines for the terminal."""
    from analysis.aggregate import contract
    doc = contract(summary)
    frac, n = doc["sandwich"]["frac_within_square"], doc["sandwich"]["n_points_with_both"]
    out = [f"sandwich:       {frac:.0%} of {n} (function, ε) points have Ḡ <= C̄²" if frac is not None
           else "sandwich:       no rung has both C̄ and a compiled net"]
    for r in doc["resnet_phase"]:
        rho = r["rho"].get("block_path", [None] * 3)
        if rho[0] is not None:
            g = f"{r['gamma']:.2f}" if r.get("gamma") is not None else "n/a"
            out.append(f"ρ̂(block_path):  {r['function']}: {rho[0]:.2f} (γ̂ {g})")
    for sl in doc["convexity"].get("slopes", []):
        if sl.get("slope") is not None:
            lo, hi = sl.get("lo"), sl.get("hi")
            ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            out.append(f"convexity:      γ = {sl['gamma']:g}: slope {sl['slope']:.2f}{ci}, theory {sl['theory']:.2f}")
    return out


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
    print("== 2/2  analysis")
    report = analyze(args.spec)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    print(f"report:         {report.report.resolve()}")
    print(f"summary:        {Path(report.paths['summary_json']).resolve()}" if "summary_json" in report.paths else "")
    for name, path in report.paths.items():
        if name in FIGURES:
            print(f"{FIGURES[name] + ':':<15} {Path(path).resolve()}")
    for line in headline_lines(report.summary):
        print(line)
    if report.missing:
        print("missing:        " + "; ".join(report.missing))
    print("MLflow UI:      .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  (then http://127.0.0.1:5000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

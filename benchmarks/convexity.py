"""The convexity test with a threshold at laptop scale (DESIGN §2.6, issue 14 part C).

Ladders of walsh_mixture(m, n, seed) through htmc.rates.ladder.run_ladder directly (not the sweep service), then
analysis.convexity.convexity_slopes: the slope of log K̂ against log m per γ, with its interval, against the
theory max(0, 1/γ − 1/2) (0.5 at γ = 1, 0 at γ ≥ 2). Prints the C̄ ladders, the K̂ table and the slopes.

    python benchmarks/convexity.py                      # the ~60 s demo: m in 1,4,16,64, n = 8, 2 seeds
    python benchmarks/convexity.py --ms 1 2 4 8 16 32 64 128 --n 10 --seeds 3 --steps 8 --methods mc abc
    python benchmarks/convexity.py --plots out/         # also convexity_slopes.png, convexity_sizes.png
"""
import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

# the repository first: this folder's analysis.py would otherwise shadow the analysis package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.convexity import convexity_slopes  # noqa: E402
from htmc.rates.ladder import run_ladder  # noqa: E402
from htmc.records import canonical_json  # noqa: E402
from htmc.targets import make_function  # noqa: E402
from htmc.tasks import search_record  # noqa: E402


def ladder_row(target, eps0: float, steps: int, methods: list[str], lad) -> dict:
    """The circuit_ladder record's columns that analysis.convexity reads, as htmc.tasks._run_ladder makes them."""
    points = [search_record(target, e, r).to_row() for e, r in zip(lad.eps, lad.results)]
    for p in points:
        p.pop("attempts_json")
    params = {"function": target.name, "function_params": target.params, "eps0": eps0, "steps": steps,
              "methods": methods}
    return {"kind": "circuit_ladder", "status": "ok", "function": target.name, "params_json": canonical_json(params),
            "points_json": json.dumps(points)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--n", type=int, default=8, help="input bits of the Walsh functions")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--eps0", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=6, help="rungs eps0 2^-j, j < steps")
    ap.add_argument("--methods", nargs="+", default=["mc", "table"])
    ap.add_argument("--budget-s", type=float, default=30, help="search budget per rung (s)")
    ap.add_argument("--plots", default=None, help="directory for the two convexity plots")
    args = ap.parse_args()
    print(f"# {date.today()} {platform.machine()} {os.cpu_count()} cores; walsh_mixture n={args.n}, m in {args.ms}, "
          f"{args.seeds} seeds, eps0={args.eps0:g}, {args.steps} rungs, methods {args.methods}, quick searches")
    rows, t0 = [], time.perf_counter()
    print("| m | seed | C̄ per rung (coarse to fine) | winning methods | s |")
    print("|---|---|---|---|---|")
    for m in args.ms:
        for seed in range(args.seeds):
            target = make_function("walsh_mixture", m=m, n=args.n, seed=seed)
            t1 = time.perf_counter()
            lad = run_ladder(target, args.eps0, args.steps, methods=args.methods, budget_s=args.budget_s,
                             thorough=False)
            rows.append(ladder_row(target, args.eps0, args.steps, args.methods, lad))
            sizes = ", ".join("-" if r.best is None else str(r.best.gates) for r in lad.results)
            meths = ",".join(sorted({r.best.method + (f"/{r.best.strategy}" if r.best.method == "mc" else "")
                                     for r in lad.results if r.best}))
            print(f"| {m} | {seed} | {sizes} | {meths} | {time.perf_counter() - t1:.1f} |")
    searched = time.perf_counter() - t0
    res = convexity_slopes(rows)
    print(f"\nsearch: {searched:.1f} s wall for {len(rows)} ladders\n")
    print("| γ | slope of log K̂ vs log m | 95% interval | theory max(0, 1/γ − 1/2) |")
    print("|---|---|---|---|")
    for s in res["slopes"]:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"
        print(f"| {s['gamma']:g} | {fmt(s['slope'])} | [{fmt(s['lo'])}, {fmt(s['hi'])}] | {s['theory']:.3f} |")
    if args.plots:
        from analysis.convexity_plots import plot_convexity_slopes, plot_sizes_vs_budget
        for pr in (plot_convexity_slopes(res, os.path.join(args.plots, "convexity_slopes.png")),
                   plot_sizes_vs_budget(rows, os.path.join(args.plots, "convexity_sizes.png"))):
            print(f"plot {pr.name}: {pr.path} ({pr.n_points} points) {pr.note}")


if __name__ == "__main__":
    main()

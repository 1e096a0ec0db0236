"""holder_random ladders past 16 input bits (issue 15): C̄(f, eps_j) for eps_j = eps0 2^-j in d = 2 and 3, with the
methods that take up to 24 input bits, and the fitted rate against theory's d/s (DESIGN §2.3, §2.5).

    .venv/bin/python benchmarks/holder_ladders.py                 # the table of benchmarks/RESULTS.md
    .venv/bin/python benchmarks/holder_ladders.py --only 2,1.0 --seeds 0

Prints one row per ladder: d, s, seed, rungs fitted, gamma-hat, its interval, d/s, seconds, and the sizes.
Quick-mode search (one resolution, one output step), so each rung is one synthesis per method and order.
"""
from __future__ import annotations

import argparse
import sys
import time

from htmc.rates.ladder import run_ladder
from htmc.targets import make_function

# (d, s, eps0, steps, levels, max_inputs): levels = the series' finest level J, which bounds the resolutions where
# the rate is d/s (k < J, htmc.targets.holder); steps end where the last rung still fits 24 input bits. Quick
# mode searches the finer of the two feasible resolutions; max_inputs (None: 24) keeps it off 2^22-2^24 tables,
# whose build and verification take tens of minutes on the shared 2-core box.
CONFIGS = [(2, 1.0, 0.4, 6, 10, 20), (2, 0.75, 0.4, 5, 10, 20), (2, 0.5, 0.4, 4, 12, 20),
           (3, 1.0, 0.4, 4, 8, 21)]
METHODS = ["lupanov"]


def ladder_row(d: int, s: float, seed: int, eps0: float, steps: int, levels: int, max_inputs: int | None,
               budget_s: float) -> dict:
    f = make_function("holder_random", d=d, s=s, seed=seed, levels=levels)
    t0 = time.monotonic()
    lad = run_ladder(f, eps0, steps, methods=METHODS, budget_s=budget_s, thorough=False, max_inputs=max_inputs,
                     progress=lambda j, r: print(f"# d={d} s={s} seed={seed} rung {j}: "
                                                 f"{r.best and (r.best.bits_in, r.best.gates)} {r.seconds:.0f} s",
                                                 file=sys.stderr, flush=True))
    fit = lad.fit
    return {"d": d, "s": s, "seed": seed, "fitted": 0 if fit is None else fit.n_used, "gamma": fit and fit.gamma,
            "ci": fit and fit.gamma_ci, "theory": d / s, "seconds": time.monotonic() - t0,
            "sizes": [None if x != x else int(x) for x in lad.sizes()], "bits": [r.best.bits_in if r.best else None for r in lad.results]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", default=None, help="d,s: one configuration")
    ap.add_argument("--budget", type=float, default=120.0, help="search budget per rung, seconds")
    args = ap.parse_args(argv)
    configs = [c for c in CONFIGS if args.only is None or (c[0], c[1]) == tuple(map(float, args.only.split(",")))]
    print("| d | s | seed | rungs fitted | gamma-hat | interval | d/s | seconds | gates per rung | input bits |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d, s, eps0, steps, levels, max_inputs in configs:
        for seed in map(int, args.seeds.split(",")):
            r = ladder_row(d, s, seed, eps0, steps, levels, max_inputs, args.budget)
            ci = "n/a" if not r["ci"] else f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
            g = "n/a" if r["gamma"] is None else f"{r['gamma']:.2f}"
            print(f"| {d} | {s} | {seed} | {r['fitted']} | {g} | {ci} | {r['theory']:.2f} | {r['seconds']:.0f} | "
                  f"{r['sizes']} | {r['bits']} |", flush=True)


if __name__ == "__main__":
    main()

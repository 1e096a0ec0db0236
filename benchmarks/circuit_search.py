"""Circuit search against its baselines, side by side in one run (issue: circuit search benchmark).

For a fixed set of functions and eps, report:
  table      the multiplexer-tree baseline (best code strategy),
  abc_round  ABC on the plainly rounded table (same script, no slack),
  best       our search portfolio (table, abc with slack, arith, exact), abc_round excluded,
and the time of each. Target: best at least 20% below abc_round at the median, never above it.

    python benchmarks/circuit_search.py [--budget-s 120] [--quick]
"""
import argparse
import os
import platform
import statistics
import time
from datetime import date

from htmc.targets import make_function
from htmc.synthesis.search import DEFAULT_METHODS, search

CASES = [  # (function, params, eps): 1-D analytic, 1-D and 2-D Hölder, 2-D arithmetic
    ("sin", {}, 2 ** -7),
    ("sigmoid", {}, 2 ** -7),
    ("exp", {}, 2 ** -8),
    ("holder_random", {"d": 1, "s": 0.5, "seed": 0}, 2 ** -4),
    ("holder_random", {"d": 1, "s": 1.0, "seed": 0}, 2 ** -6),
    ("holder_random", {"d": 2, "s": 1.0, "seed": 0}, 2 ** -3),
    ("product", {}, 2 ** -5),
    ("absdiff", {}, 2 ** -5),
]


def run(methods, target, eps, budget, thorough):
    t0 = time.perf_counter()
    r = search(target, eps, methods=methods, budget_s=budget, thorough=thorough)
    return r.best, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=120, help="time budget per search (s)")
    ap.add_argument("--quick", action="store_true", help="one resolution and output step per search")
    args = ap.parse_args()
    print(f"# {date.today()} {platform.machine()} {os.cpu_count()} cores; budget {args.budget_s:.0f} s/search; "
          f"{'quick' if args.quick else 'thorough'}")
    head = f"| {'function':<28} | {'eps':>8} | {'table':>6} | {'s':>5} | {'abc_round':>9} | {'s':>5} | " \
           f"{'best':>6} | {'method':<6} | {'s':>5} | {'best/abc_round':>14} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    ratios = []
    for name, params, eps in CASES:
        target = make_function(name, **params)
        tb, tt = run(["table"], target, eps, args.budget_s, not args.quick)
        rb, rt = run(["abc_round"], target, eps, args.budget_s, not args.quick)
        bb, bt = run(list(DEFAULT_METHODS), target, eps, args.budget_s, not args.quick)
        ratio = bb.gates / rb.gates if (bb and rb and rb.gates) else float("nan")
        ratios.append(ratio)
        label = name + ("(" + ",".join(f"{k}={v}" for k, v in params.items()) + ")" if params else "")
        print(f"| {label:<28} | {eps:>8.3g} | {tb.gates if tb else '-':>6} | {tt:>5.1f} | "
              f"{rb.gates if rb else '-':>9} | {rt:>5.1f} | {bb.gates if bb else '-':>6} | "
              f"{bb.method if bb else '-':<6} | {bt:>5.1f} | {ratio:>14.3f} |", flush=True)
    print(f"\nmedian best/abc_round = {statistics.median(ratios):.3f}; max = {max(ratios):.3f} "
          f"(target: median <= 0.80, max <= 1.00)")


if __name__ == "__main__":
    main()

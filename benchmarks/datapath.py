"""Structured synthesis (issue 15): the `datapath` method against today's portfolio, side by side.

For each target with a formula (htmc.synthesis.expr) and eps, report:
  today     C-bar from the default portfolio (table, abc, arith, exact) and its method,
  datapath  the datapath method's verified circuit and the route that made it (builder, builder+abc, yosys+abc),
  builder   the builder's smallest verified circuit (truncated formats included), before ABC,
  untrunc   the best format without truncation, from the builder and from Yosys+ABC (`*`: not within eps),
and the seconds of each. Gates are verified B2 gates.

    python benchmarks/datapath.py [--baseline-budget-s 300] [--no-baseline] [--only product]
"""
import argparse
import os
import platform
import time
from dataclasses import replace
from datetime import date

from htmc.circuits.verify import verify
from htmc.synthesis import datapath_verilog
from htmc.synthesis.datapath_method import synthesize
from htmc.synthesis.expr import formula_of
from htmc.synthesis.fixedpoint import compile_expr
from htmc.synthesis.problem import Problem
from htmc.synthesis.search import DEFAULT_METHODS, MAX_ABC_INPUTS, _resolutions, search
from htmc.targets import make_function

CASES = [  # (function, params, domain, eps, bits on the grid)
    ("product", {}, "grid", 2 ** -8, 8),
    ("product", {}, "box", 2 ** -5, None),
    ("product", {}, "box", 2 ** -7, None),
    ("absdiff", {}, "grid", 2 ** -8, 8),
    ("absdiff", {}, "box", 2 ** -5, None),
    ("absdiff", {}, "box", 2 ** -7, None),
    ("relu_ridges", {"m": 4}, "box", 2 ** -5, None),
    ("relu_ridges", {"m": 16}, "box", 2 ** -4, None),
    ("compositional", {"d": 2, "inner_d": 1}, "box", 2 ** -3, None),
]


def run_datapath(target, eps, domain, bits, budget_s):
    """The datapath method on every resolution the search would try; the best result and its resolution."""
    start, best = time.monotonic(), None
    for k in _resolutions(target, eps, domain, bits, MAX_ABC_INPUTS):
        problem = Problem(target, target.table(k, domain), eps, None, time.monotonic() + budget_s)
        res = synthesize(problem)
        if res is not None and res.best is not None and (best is None or res.best.circuit.size
                                                           < best[0].best.circuit.size):
            best = (res, k)
    return best, time.monotonic() - start


def untruncated(target, domain, k, eps, fmt):
    """Gates of the best format without truncation, from the builder and from Yosys+ABC, `*` if over eps."""
    tree, table, plain = formula_of(target), target.table(k, domain), replace(fmt, guard=None)
    out = []
    for c in (compile_expr(tree, target.d, k, domain, plain),
              datapath_verilog.yosys_circuit(tree, target.d, k, domain, plain)):
        if c is None:
            out.append("-")
        else:
            out.append(f"{c.circuit.size}{'' if verify(c.circuit, table).within(eps) else '*'}")
    return out


def label(name, params):
    return name + (f"({','.join(f'{k}={v}' for k, v in params.items())})" if params else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-budget-s", type=float, default=300)
    ap.add_argument("--budget-s", type=float, default=120, help="datapath budget per resolution")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--only", default=None, help="run only the cases of this target")
    args = ap.parse_args()
    print(f"# {date.today()} {platform.machine()} {os.cpu_count()} CPUs")
    print("| target | domain | eps | today | method | s | datapath | route | k | builder | untrunc builder "
          "| untrunc yosys | s | datapath/today |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, params, domain, eps, bits in CASES:
        if args.only and name != args.only:
            continue
        t = make_function(name, **params)
        base, bm, bs = "-", "-", 0.0
        if not args.no_baseline:
            r = search(t, eps, domain, methods=DEFAULT_METHODS, budget_s=args.baseline_budget_s, bits=bits)
            base, bm, bs = (r.best.gates, r.best.method, r.seconds) if r.best else ("-", "-", r.seconds)
        found, ds = run_datapath(t, eps, domain, bits, args.budget_s)
        if found is None:
            print(f"| {label(name, params)} | {domain} | {eps:.3g} | {base} | {bm} | {bs:.1f} | - | | | | | | "
                  f"{ds:.1f} | |", flush=True)
            continue
        res, k = found
        ub, uy = untruncated(t, domain, k, eps, res.best.fmt)
        g = res.best.circuit.size
        ratio = f"{g / base:.3f}" if isinstance(base, int) else "-"
        print(f"| {label(name, params)} | {domain} | {eps:.3g} | {base} | {bm} | {bs:.1f} | {g} | {res.how} | {k} "
              f"| {res.builder.circuit.size} | {ub} | {uy} | {ds:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()

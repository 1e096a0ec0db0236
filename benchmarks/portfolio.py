"""The ABC portfolio against today's single flow, side by side, at the same total budget (issue 15).

Per instance: today's flow as it was (`run_script`: BDD start, classic script, 1 s &deepsyn up to 12 inputs,
`&dch; &if -K 2`), taking T seconds; then, at the budget B = --budget-x * T, today's flow given B through its one
knob (&deepsyn -T B - T + 1, so both spend about B seconds) and the portfolio with budget_s=B. B is relative
because the portfolio always runs today's flow first (its floor is T) and because T varies 5x with the load.
The ratio is portfolio / today@B. Every circuit is checked against its table (htmc.circuits.verify, eps 0).

Instances: random multi-output tables (--set random), holder_random tables with the abc method's codes (msb_dc,
trailing_zeros; --set holder) and IWLS 2022 contest tables (--set iwls, benchmarks/data/iwls2022, with the
contest's best-known AIG sizes). The contest counts AND nodes, so its column compares with our AIG count.

    python benchmarks/portfolio.py [--set random,holder,iwls] [--budget-x 2] [--only NAME,...] [--json]
"""
import argparse
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np

from htmc.circuits.verify import bits_table, require
from htmc.synthesis import code_strategies, relation
from htmc.synthesis.abc_tool import DEEPSYN_MAX_INPUTS, run_script, synthesize
from htmc.targets import make_function

DATA = Path(__file__).parent / "data" / "iwls2022"
# Best AIG (AND nodes) over the seven teams, alanminko/iwls2022-ls-contest submissions/nodes.txt ("Best").
IWLS_BEST = {"ex02": 88, "ex04": 304, "ex05": 39, "ex08": 544, "ex31": 1351, "ex36": 1345, "ex92": 29, "ex94": 36}
HOLDER = [  # (d, s, seed, k, eps): box tables at k bits per axis, d*k inputs
    (1, 0.5, 1, 10, 0.1), (1, 0.5, 2, 11, 0.07), (1, 0.5, 1, 12, 0.05), (2, 0.75, 1, 5, 0.2), (2, 1.0, 1, 6, 0.1),
]
RANDOM = [(10, 4), (10, 8), (12, 4)]


def random_tables():
    for n, m in RANDOM:
        rng = np.random.default_rng(1000 * n + m)
        yield f"random n={n} m={m}", [rng.integers(0, 2, 1 << n).astype(bool) for _ in range(m)], None


def holder_tables():
    for d, s, seed, k, eps in HOLDER:
        target = make_function("holder_random", d=d, s=s, seed=seed)
        table = target.table(k, "box")
        space = relation.code_space(table, eps, relation.coarsest_shift(table, eps))
        for strategy in ("msb_dc", "trailing_zeros"):
            u = code_strategies.STRATEGIES.get(strategy)(space, table)
            yield (f"holder d={d} s={s} seed={seed} k={k} eps={eps} {strategy}",
                   code_strategies.columns(u, space.m), None)


def iwls_tables():
    for name in sorted(IWLS_BEST):
        lines = (DATA / f"{name}.truth").read_text().split()
        yield f"iwls2022 {name}", [np.array([ch == "1" for ch in line[::-1]]) for line in lines], IWLS_BEST[name]


SETS = {"random": random_tables, "holder": holder_tables, "iwls": iwls_tables}


def measure(name, cols, best, factor):
    n = len(cols[0]).bit_length() - 1
    check = bits_table(cols, n)
    today = run_script(cols)
    budget = factor * today.seconds
    same = today
    if n <= DEEPSYN_MAX_INPUTS and budget > today.seconds:
        same = run_script(cols, deepsyn_s=max(1.0, budget - today.seconds + 1))
    port = synthesize(cols, budget_s=budget)
    for r in (today, same, port):
        require(r.circuit, check, eps=0.0)
    return dict(instance=name, inputs=n, outputs=len(cols), budget_s=budget, today=today.gates,
                today_s=today.seconds, today_at_budget=same.gates, today_at_budget_s=same.seconds, portfolio=port.gates,
                portfolio_s=port.seconds, ratio=port.gates / same.gates, flow=port.flow,
                portfolio_aig=port.aig_nodes, today_aig=same.aig_nodes, best_aig=best)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="random,holder,iwls")
    ap.add_argument("--budget-x", type=float, default=2.0,
                    help="the budget B of both, as a multiple of today's flow's own time on the instance")
    ap.add_argument("--only", default="", help="comma-separated substrings of instance names")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sets = [s.strip() for s in args.set.split(",") if s.strip()]
    bad = [s for s in sets if s not in SETS]
    if bad:
        ap.error(f"unknown --set {bad[0]!r}; valid choices: {', '.join(SETS)}")
    only = [o for o in args.only.split(",") if o]
    print(f"# {date.today()} {platform.node()} {os.cpu_count()} cpus, budget B = {args.budget_x:g} x today's time")
    head = (f"{'instance':52s} {'in':>3s} {'out':>3s} {'today':>6s} {'@B':>6s} {'portf':>6s} {'ratio':>6s} "
            f"{'aig':>6s} {'best':>5s} {'s today':>7s} {'s @B':>6s} {'s port':>6s}  flow")
    print(head)
    rows = []
    for s in sets:
        for name, cols, best in SETS[s]():
            if only and not any(o in name for o in only):
                continue
            r = measure(name, cols, best, args.budget_x)
            rows.append(r)
            print(f"{r['instance']:52s} {r['inputs']:3d} {r['outputs']:3d} {r['today']:6d} "
                  f"{r['today_at_budget']:6d} {r['portfolio']:6d} {r['ratio']:6.3f} {r['portfolio_aig']:6d} "
                  f"{best if best else '-':>5} {r['today_s']:7.1f} {r['today_at_budget_s']:6.1f} "
                  f"{r['portfolio_s']:6.1f}  {r['flow']}", flush=True)
    for s in sets:
        got = [r["ratio"] for r in rows if r["instance"].startswith({"random": "random", "holder": "holder",
                                                                      "iwls": "iwls"}[s])]
        if got:
            print(f"# {s}: geometric mean ratio {float(np.exp(np.mean(np.log(got)))):.3f} over {len(got)}")
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main()

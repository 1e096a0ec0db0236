"""Exact synthesis of 4-input single-output functions, side by side with ABC's `twoexact -g` (issue 12).

Default run: a seeded sample of random 4-input functions plus a fixed list of 7-gate functions (the hardest
cost there is: Knuth, TAOCP 4A 7.1.2, 2,720 of the 65,536 functions need 7 gates and none needs more). For
each: our gates, optimality and time (htmc.synthesis.boolean.boolean_exact, so every circuit is verified), then ABC's
minimum and time on the same table. Costs must agree; a mismatch is flagged and fails the run.

`--npn` instead solves one function of each of the 222 NPN classes of 4-input functions (cost is invariant under
permuting and complementing inputs and complementing a gate output) and weighs the costs by class size, which
must reproduce Knuth's distribution of all 65,536 functions; `--members K` also times K random functions of each
7-gate class, since the solver's time varies inside a class.

    python benchmarks/exact.py [--sample 40] [--seed 12] [--budget-s 120] [--no-abc] [--json]
    python benchmarks/exact.py --npn [--members 10] [--json]
"""
import argparse
import functools
import itertools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from htmc.synthesis.abc_tool import abc_binary
from htmc.circuits.blif import read_blif
from htmc.synthesis.boolean import boolean_exact
from htmc.circuits.circuit import output_codes
from htmc.circuits.hextable import parse_hex, to_hex

N = 4
# The smallest truth table of each of the 12 NPN classes of 7-gate functions (found by `--npn`; ABC agrees).
SEVEN_GATE = ["0116", "0117", "066b", "0779", "166a", "1681", "168b", "168e", "1698", "169b", "16ac", "179a"]
# TAOCP 4A 7.1.2: how many 4-input functions have each cost. Knuth counts the 4 complemented inputs as cost 0;
# in B2 without free inverters they cost 1 gate, so 4 functions move from cost 0 to cost 1 here.
KNUTH_COUNTS = {0: 10, 1: 60, 2: 456, 3: 2474, 4: 10624, 5: 24184, 6: 25008, 7: 2720}
KNUTH_IN_B2 = {**KNUTH_COUNTS, 0: 6, 1: 64}


def npn_canonical() -> np.ndarray:
    """For every 4-input truth table, the smallest truth table of its NPN class."""
    rows = np.arange(1 << N)
    tables = np.arange(1 << (1 << N), dtype=np.int64)
    bits = (tables[:, None] >> rows) & 1
    weights = 1 << rows
    canon = tables.copy()
    for perm in itertools.permutations(range(N)):
        permuted = sum(((rows >> i) & 1) << p for i, p in enumerate(perm))
        for neg in range(1 << N):
            image = bits[:, permuted ^ neg] @ weights
            canon = np.minimum(canon, np.minimum(image, image ^ 0xFFFF))
    return canon


def table_hex(value: int) -> str:
    return format(value, f"0{(1 << N) // 4}x")


def ours(hex_table: str, budget_s: float) -> dict:
    cpu = time.process_time()
    res, _ = boolean_exact([parse_hex(hex_table, N)], budget_s=budget_s)
    return {"gates": res.gates, "optimal": res.optimal, "verified": res.verified, "seconds": res.seconds,
            "cpu_s": time.process_time() - cpu}


def on_support(bits: np.ndarray) -> tuple[int, np.ndarray]:
    """The function restricted to the inputs it depends on: `twoexact` assumes every input is used."""
    rows = np.arange(bits.size)
    support = [i for i in range(N) if np.any(bits != bits[rows ^ (1 << i)])]
    sub = np.arange(1 << len(support))
    full = sum(((sub >> s) & 1) << i for s, i in enumerate(support)) if support else np.zeros_like(sub)
    return len(support), bits[full]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def abc_twoexact(hex_table: str, budget_s: float) -> dict:
    """ABC's minimum: `twoexact -g` at N = m-1, m, ... gates on the m used inputs; its circuit is verified."""
    m, bits = on_support(parse_hex(hex_table, N))
    start, cpu = time.perf_counter(), children_cpu()

    def answer(gates: int | None) -> dict:
        return {"gates": gates, "seconds": time.perf_counter() - start, "cpu_s": children_cpu() - cpu}

    if m <= 1:  # twoexact asserts on 1 input: a constant or an input is free, a complemented input one gate
        return answer(int(m == 1 and bits[0]))
    with tempfile.TemporaryDirectory(prefix="htmc-twoexact-") as tmp:
        for gates in itertools.count(m - 1):  # a function of m inputs needs at least m-1 two-input gates
            left = budget_s - (time.perf_counter() - start)
            if left <= 0:
                return answer(None)
            cmd = f"twoexact -g -I {m} -N {gates} -T {max(1, int(left))} {to_hex(bits)}"
            proc = subprocess.run([abc_binary(), "-q", cmd], cwd=tmp, capture_output=True, text=True)
            found = re.search(r'dumped into file "([^"]+)"', proc.stdout)
            if found:
                circuit = read_blif(Path(tmp, found.group(1)).read_text())
                if not np.array_equal(output_codes(circuit), bits.astype(np.int64)):
                    raise AssertionError(f"ABC's {gates}-gate circuit for {hex_table} is wrong")
                return answer(circuit.size)
            # A time-out or a crash proves nothing. ABC prints no verdict at all when the CNF is refuted while
            # being built (seen at N = m-1), so only "timed out" or a failed run count as no answer.
            if proc.returncode != 0 or "timed out" in proc.stdout:
                return answer(None)
    raise AssertionError("unreachable")


def summarize(records: list[dict]) -> dict:
    """Per cost: count, median and max of our wall-clock and CPU seconds."""
    by_cost: dict[int, list[dict]] = {}
    for r in records:
        by_cost.setdefault(r["ours"]["gates"], []).append(r["ours"])
    return {g: {"n": len(rs), **{f"{stat.__name__}_{key}": stat(x[key] for x in rs) for stat in (median, max)
                                 for key in ("seconds", "cpu_s")}}
            for g, rs in sorted(by_cost.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))}


def median(values) -> float:
    return statistics.median(list(values))


def print_summary(summary: dict) -> None:
    print("\n| gates | functions | median s | max s | median CPU s | max CPU s |\n|---|---|---|---|---|---|")
    for g, s in summary.items():
        print(f"| {g} | {s['n']} | {s['median_seconds']:.2f} | {s['max_seconds']:.2f} | {s['median_cpu_s']:.2f} | "
              f"{s['max_cpu_s']:.2f} |")


def table_row(rec: dict) -> str:
    o, a = rec["ours"], rec.get("abc")
    theirs = f"{a['gates']} | {a['seconds']:.2f} | {a['cpu_s']:.2f} | {rec['ratio']:.1f}" if a else "- | - | - | -"
    return f"| {rec['function']} | {o['gates']} | {o['optimal']} | {o['seconds']:.2f} | {o['cpu_s']:.2f} | {theirs} |"


def run_sample(args) -> dict:
    rng = np.random.default_rng(args.seed)
    tables = [table_hex(int(v)) for v in rng.integers(0, 1 << (1 << N), size=args.sample)] + SEVEN_GATE
    records, mismatches = [], []
    args.log("| function | gates | optimal | s | CPU s | abc gates | abc s | abc CPU s | abc CPU / our CPU |\n"
             "|---|---|---|---|---|---|---|---|---|")
    for h in tables:
        rec = {"function": h, "ours": ours(h, args.budget_s)}
        if not args.no_abc:
            rec["abc"] = abc_twoexact(h, args.budget_s)
            rec["ratio"] = rec["abc"]["cpu_s"] / max(rec["ours"]["cpu_s"], 1e-3)
            if rec["abc"]["gates"] != rec["ours"]["gates"]:
                mismatches.append(h)
        records.append(rec)
        args.log(table_row(rec))
    out = {"records": records, "summary": summarize(records), "mismatches": mismatches}
    if not args.no_abc:
        out["abc_ratio"] = {label: ratio_stats([r["ratio"] for r in records if keep(r)]) for label, keep in
                            (("all", lambda r: True), ("7 gates", lambda r: r["ours"]["gates"] == 7))}
    return out


def ratio_stats(ratios: list[float]) -> dict:
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def solved(function: int, args) -> dict:
    rec = {"function": table_hex(function), "ours": ours(table_hex(function), args.budget_s)}
    args.log(f"{rec['function']}: {rec['ours']['gates']} gates, {rec['ours']['seconds']:.2f} s")
    return rec


def run_npn(args) -> dict:
    canon = npn_canonical()
    rng = np.random.default_rng(args.seed)
    records, members, counts = [], [], {}
    for rep in np.unique(canon):
        in_class = np.flatnonzero(canon == rep)
        rec = {**solved(int(rep), args), "class_size": len(in_class)}
        records.append(rec)
        gates = rec["ours"]["gates"]
        # Cost is an NPN invariant once the output is a gate (readers absorb complemented inputs, a gate output's
        # polarity is free), but x is free and NOT x one gate: classes of cost <= 1 are counted member by member.
        for g in ([ours(table_hex(int(f)), args.budget_s)["gates"] for f in in_class] if gates <= 1 else
                  [gates] * len(in_class)):
            counts[g] = counts.get(g, 0) + 1
        if gates == max(KNUTH_COUNTS):  # the hardest classes: time some other members too
            picked = rng.choice(in_class, size=min(args.members, len(in_class)), replace=False)
            members.extend(solved(int(f), args) for f in picked)
    counts = dict(sorted(counts.items()))
    return {"classes": len(records), "records": records, "summary": summarize(records), "counts": counts,
            "matches_knuth": counts == KNUTH_IN_B2, "members": members,
            "members_summary": summarize(members) if members else {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample", type=int, default=40, help="random functions besides the 7-gate list")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--budget-s", type=float, default=120, help="time budget per function and method (s)")
    ap.add_argument("--no-abc", action="store_true", help="skip ABC's twoexact")
    ap.add_argument("--npn", action="store_true", help="one function per NPN class, against Knuth's counts")
    ap.add_argument("--members", type=int, default=0, help="with --npn: also this many random members of each "
                    "7-gate class")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = ap.parse_args()
    # progress goes where it does not break the JSON
    args.log = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    machine = f"{date.today()} {platform.machine()} {os.cpu_count()} cores; budget {args.budget_s:.0f} s"
    if not args.json:
        print(f"# {machine}")
    out = {"machine": machine, **(run_npn(args) if args.npn else run_sample(args))}
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return
    print_summary(out["summary"])
    if out.get("members"):
        print(f"\n{len(out['members'])} random members of the 7-gate classes:")
        print_summary(out["members_summary"])
    if args.npn:
        print(f"\n{out['classes']} classes; cost counts {out['counts']}; Knuth's (B2) {KNUTH_IN_B2}: "
              f"{'match' if out['matches_knuth'] else 'MISMATCH'}")
    elif "abc_ratio" in out:
        for label, r in out["abc_ratio"].items():
            print(f"ABC CPU time / our CPU time, {label}: median {r['median']:.1f}, min {r['min']:.1f}, "
                  f"max {r['max']:.1f}")
        print(f"cost mismatches: {out['mismatches'] or 'none'}")
    if out.get("mismatches") or out.get("matches_knuth") is False:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

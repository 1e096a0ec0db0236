"""Fitted least-norm nets against the MSE λ path (issue 21 D): rungs reached, R*_ν and G*_ν per rung.

The λ path is the demo's (sweeps/demo.yaml, group `resnets`): w in {8, 16}, L2 r8, 8 λ log-spaced 1e-6..0.1,
seeds {0, 1}, 1000 Adam steps on the MSE at 512 points, reg block_path; 32 nets per function, trained as one
batch. Per rung, R*_ν is the least norm ν among the nets whose own circuit verifies within ε (nets are compiled
in increasing norm until one verifies: htmc.resnets.compile_ladder, what resnet_compile runs) and G*_ν that
net's gates. The fitted side runs htmc.resnets.fit.fit_and_compile per rung with the same training budget in
seconds: the λ path's training time for the function is the fit's pool for all its rungs, shared coarse to fine
with carry-over (pool_budget), or --fit-budget-s per rung.
    python benchmarks/fit.py [--functions sin,exp,h1s075,h1s1,h2s075,h2s1] [--norm block_path] [--json OUT]
    python benchmarks/fit.py --device cuda --seeds 8     # the λ path as one batch of 8 x 32 = 256 nets on a GPU
    python benchmarks/fit.py --batched 256 --device cuda --functions sin,exp,h1s075,h1s1   # the polish, batched
--batched B (issue 21 A "Batched"): every rung's LP net (fit_rung without its polish, --fit-budget-s each, on the
CPU) is copied to B fits in all (functions x rungs x seeds, each seed its own random second block), and the B fits
are polished in ONE batch on --device (htmc.resnets.fit_polish; float32 steps and a float64 check on CUDA); then
one copy per rung again, one call at a time, for the seconds per fit. The table gives R* before and after the
polish (the least norm over the rung's seeds), whether that net is feasible on every cell in float64, and the
seconds. Float-level figures: nothing is compiled in this mode.
"""
import argparse
import json
import math
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

FUNCTIONS = {   # name: (function, params, eps0, steps) — the demo's ladders (issue 21 C)
    "sin": ("sin", {}, 0.2, 7),
    "exp": ("exp", {}, 0.2, 7),
    "exp10": ("exp", {}, 0.2, 10),     # exp's λ path meets 6 of the 7 demo rungs: 3 more to show 3 finer ones
    "h1s075": ("holder_random", {"d": 1, "s": 0.75}, 0.4, 6),
    "h1s1": ("holder_random", {"d": 1, "s": 1.0}, 0.4, 6),
    "h2s075": ("holder_random", {"d": 2, "s": 0.75}, 0.4, 5),
    "h2s1": ("holder_random", {"d": 2, "s": 1.0}, 0.4, 5),
}
LAMS = [1.0e-6, 5.2e-6, 2.7e-5, 1.4e-4, 7.2e-4, 3.7e-3, 1.9e-2, 1.0e-1]


def lam_path(target, args):
    """The demo's λ path for one target in one batch; (nets, training seconds)."""
    from htmc.resnets.training import TrainConfig, train_batch
    cfgs = [TrainConfig(width=w, depth=2, rank=8, lam=lam, reg="block_path", steps=args.train_steps, n_train=512,
                        lr=0.01, seed=s, d=target.d, device=args.device)
            for w in args.widths for lam in LAMS for s in range(args.seeds)]
    by_width = {}
    for c in cfgs:                 # one batch per shape (width)
        by_width.setdefault(c.width, []).append(c)
    t0 = time.monotonic()
    nets = []
    for group in by_width.values():
        nets += [r for r in train_batch([target] * len(group), group) if r.status == "ok"]
        print(f"  λ path: one batch of {len(group)} nets (width {group[0].width}) on {args.device}", flush=True)
    return nets, time.monotonic() - t0


def lam_rung(nets, target, eps, norm, budget_s, compile=True):
    """(R*, G*, seconds) of the λ path at eps: nets in increasing norm, compiled until one verifies. Without
    compile (a device image without ABC): the least norm among nets whose sup error on the training grid is
    within eps, G* None: a float-level figure, labelled as such."""
    from htmc.resnets.compile_ladder import compile_ladder
    t0 = time.monotonic()
    if not compile:
        ok = [r.norms[norm] for r in nets if r.sup_error is not None and r.sup_error <= eps]
        return (min(ok) if ok else None), None, time.monotonic() - t0
    for r in sorted(nets, key=lambda r: r.norms[norm]):
        pt = compile_ladder(r.params, target, [eps], budget_s=budget_s)[0]
        if pt.get("verified"):
            return r.norms[norm], pt["gates"], time.monotonic() - t0
    return None, None, time.monotonic() - t0


POOL_FLOOR = 0.5   # pool_budget: share of the uniform split (pool / rungs) kept back for each later rung


def pool_budget(pool: float, used: float, left: int, rungs: int) -> float:
    """One rung's fit budget out of the function's pool (the λ path's training seconds, for all its `rungs`
    together), the rungs fitted coarse to fine: what is left of the pool, less POOL_FLOOR x pool / rungs for each
    of the `left` - 1 rungs after this one. The time a rung does not use carries over to the next; the coarse
    rungs, where the polish runs (cells x units <= POLISH_MAX_WORK) and needs ~1-1.5 s for its 1000 steps, may
    take more than pool / rungs, and the fine ones, where it does not run, keep the floor. At least 0.05 s:
    fit_rung stops its LPs at the first net found past its deadline, and the pool is charged what it used."""
    return max(pool - used - (left - 1) * POOL_FLOOR * pool / rungs, 0.05)


def fit_float(target, eps, norm, budget_s, **caps):
    """fit_rung alone, shaped like fit_and_compile's result (met = a float net within eps was found). caps:
    max_inputs, max_units."""
    from htmc.resnets.fit import fit_rung, RungResult
    f = fit_rung(target, eps, norm, budget_s=budget_s, **caps)
    return RungResult(f, f.net is not None, f.reason, {})


def batched(args) -> None:
    """--batched B: the module docstring's batched polish; a table per function and rung, and --json rows."""
    import numpy as np
    from htmc.rates.ladder import ladder_eps
    from htmc.resnets.fit import fit_rung, MARGIN
    from htmc.resnets.fit_polish import polish, Problem
    from htmc.targets import make_function
    rungs, t0 = [], time.monotonic()
    for key in args.functions.split(","):
        name, params, eps0, steps = FUNCTIONS[key]
        target = make_function(name, **params)
        for eps in ladder_eps(eps0, steps):
            f = fit_rung(target, eps, args.norm, budget_s=args.fit_budget_s or 5.0, polish=False)
            if f.net is None:
                print(f"{key} eps={eps:.5g}: no LP net ({f.reason})", flush=True)
                continue
            t, ef = target.table(f.k, "box"), eps * (1 - MARGIN)
            rungs.append((key, eps, f, Problem.of_cells(t, ef)))
    lp_s = time.monotonic() - t0
    seeds = -(-args.batched // len(rungs))
    starts = [r[2].net for r in rungs for _ in range(seeds)]
    probs = [r[3] for r in rungs for _ in range(seeds)]
    print(f"{len(rungs)} rungs' LP nets in {lp_s:.1f} s (CPU); {len(starts)} fits ({seeds} seeds per rung) polished "
          f"on {args.device} ({'one batch' if args.group == 'all' else 'one batch per rung'}), {args.polish_steps} steps, up to {max(len(p.x) for p in probs)} cells",
          flush=True)
    tb = time.monotonic()
    if args.group == "all":
        out = polish(starts, probs, args.norm, steps=args.polish_steps, device=args.device)
    else:       # one batch per rung: its seeds share one shape, so nothing is padded (the CPU's better choice)
        out = [p for i in range(len(rungs)) for p in polish(
            starts[i * seeds:(i + 1) * seeds], probs[i * seeds:(i + 1) * seeds], args.norm, steps=args.polish_steps,
            device=args.device)]
    batch_s = time.monotonic() - tb
    single = min(args.single, len(rungs)) if args.single is not None else len(rungs)
    ts = time.monotonic()
    for i in np.linspace(0, len(rungs) - 1, single).round().astype(int) if single else []:   # spread over sizes
        polish([rungs[i][2].net], [rungs[i][3]], args.norm, steps=args.polish_steps, device=args.device)
    single_s = (time.monotonic() - ts) / max(single, 1)
    print(f"batch ({'one' if args.group == 'all' else f'{len(rungs)}, one per rung'}): {batch_s:.1f} s for {len(starts)} fits = {batch_s / len(starts):.3f} s per fit; one at a time: "
          f"{single_s:.3f} s per fit ({single} calls); ratio {single_s / (batch_s / len(starts)):.1f}x", flush=True)
    print(f"{'function':>8} {'eps':>9} {'k':>2} {'cells':>5} | {'R* LP':>8} {'R* pol':>8} {'gain':>6} {'kept':>8} "
          f"{'max viol':>9} {'feasible':>8} {'blocks':>6} {'improved':>8}")
    rows = []
    for i, (key, eps, f, prob) in enumerate(rungs):
        mine = out[i * seeds:(i + 1) * seeds]
        best = min(mine, key=lambda p: p.norm)
        row = {"function": key, "eps": eps, "k": f.k, "cells": len(prob.x), "R_lp": best.start_norm,
               "R_polished": best.norm, "kept": "polished" if best.improved else "LP start",
               # a polished net must be inside every interval in float64; a kept LP start is within them up to the
               # LP's round-off (fit_rung accepts it within eps)
               "feasible": best.max_violation <= (0.0 if best.improved else eps - eps * (1 - MARGIN)),
               "max_violation": best.max_violation,
               "blocks": int(best.net["A"].shape[0]), "improved_seeds": sum(p.improved for p in mine), "seeds": seeds,
               "batch_s_per_fit": batch_s / len(starts), "single_s_per_fit": single_s, "device": args.device,
               "group": args.group}
        rows.append(row)
        print(f"{key:>8} {eps:>9.5g} {f.k:>2} {len(prob.x):>5} | {best.start_norm:>8.4g} {best.norm:>8.4g} "
              f"{1 - best.norm / best.start_norm:>6.1%} {row['kept']:>8} {best.max_violation:>9.2g} "
              f"{str(row['feasible']):>8} {row['blocks']:>6} "
              f"{row['improved_seeds']:>4}/{seeds}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated keys of FUNCTIONS")
    ap.add_argument("--norm", default="block_path", choices=("block_path", "l1"))
    ap.add_argument("--train-steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=2, help="seeds per (width, λ) on the λ path (2: 32 nets)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--widths", default="8,16", help="λ-path widths (one batch per width)")
    ap.add_argument("--no-compile", action="store_true",
                    help="float-level figures only (no ABC needed): R* of nets within eps on their grids, no G*")
    ap.add_argument("--fit-budget-s", type=float,
                    help="fit budget per rung (default: the λ path's training seconds for all the function's rungs "
                         "together, shared by pool_budget)")
    ap.add_argument("--compile-budget-s", type=float, default=30.0)
    ap.add_argument("--max-inputs", type=int,
                    help="the fit's cap on input bits d*k (default: the fit's, 16; 20 lets d = 2 reach k = 8 with "
                         "room 0.9, or k = 9, 10)")
    ap.add_argument("--max-units", type=int,
                    help="the fit's cap on units (default: the fit's, 4096; the d = 2 two-stage rungs take up to "
                         "12,000: 16384)")
    ap.add_argument("--skip-lam", action="store_true", help="only the fitted side")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    ap.add_argument("--batched", type=int, metavar="B",
                    help="B fits (functions x rungs x seeds) LP-started and polished in one batch on --device")
    ap.add_argument("--polish-steps", type=int, default=1000, help="--batched: gradient steps of the polish")
    ap.add_argument("--single", type=int, help="--batched: rungs polished one at a time for the baseline (all)")
    ap.add_argument("--group", choices=("all", "rung"), default="all",
                    help="--batched: all fits in one batch (padded to the largest rung), or one batch per rung")
    args = ap.parse_args()
    for name in ("batched", "polish_steps", "single"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.fit_budget_s is not None and not args.fit_budget_s > 0:
        ap.error(f"--fit-budget-s must be > 0, got {args.fit_budget_s}")
    if args.skip_lam and not args.fit_budget_s and not args.batched:
        ap.error("--skip-lam needs --fit-budget-s: the default fit budget is the λ path's training seconds")
    args.widths = [int(w) for w in args.widths.split(",")]
    import torch
    torch.set_num_threads(1)
    from htmc.rates.ladder import ladder_eps
    from htmc.resnets.fit import fit_and_compile
    from htmc.targets import make_function
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, device {args.device}; norm {args.norm}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            ap.error(f"--device {args.device}: torch.cuda.is_available() is False here; use --device cpu")
        print(f"GPU: {torch.cuda.get_device_name()}", flush=True)
    if args.batched:
        batched(args)
        return
    print(f"{'function':>8} {'eps':>9} | {'R* lam':>9} {'G* lam':>7} | {'R* fit':>9} {'G* fit':>7} {'units':>5} "
          f"{'k':>2} {'fit s':>6} {'comp s':>6}", flush=True)
    rows = []
    caps = {k: v for k, v in (("max_inputs", args.max_inputs), ("max_units", args.max_units)) if v is not None}
    for key in args.functions.split(","):
        name, params, eps0, steps = FUNCTIONS[key]
        target = make_function(name, **params)
        nets, train_s = ([], 0.0) if args.skip_lam else lam_path(target, args)
        pool = None if args.fit_budget_s else train_s
        print(f"{key}: λ path {len(nets)} nets trained in {train_s:.1f} s; fit budget " +
              (f"{args.fit_budget_s:.1f} s per rung" if pool is None else
               f"{pool:.1f} s for the {steps} rungs together (pool_budget)"), flush=True)
        used = 0.0
        for i, eps in enumerate(ladder_eps(eps0, steps)):
            R_l, G_l, lam_s = (lam_rung(nets, target, eps, args.norm, args.compile_budget_s, not args.no_compile)
                               if nets else (None,) * 3)
            fit_budget = args.fit_budget_s or pool_budget(pool, used, steps - i, steps)
            tf = time.monotonic()
            fr = (fit_float(target, eps, args.norm, fit_budget, **caps) if args.no_compile else
                  fit_and_compile(target, eps, args.norm, budget_s=fit_budget, compile_budget_s=args.compile_budget_s,
                                  **caps))
            # the pool is charged the rung's wall time less its last compile (a refit's first compile is charged)
            used += time.monotonic() - tf - (fr.compiled.get("compile_seconds") or 0.0)
            R_f = fr.fit.norms.get(args.norm) if fr.met else None
            row = {"function": key, "eps": eps, "R_lam": R_l, "G_lam": G_l, "lam_compile_s": lam_s, "R_fit": R_f,
                   "G_fit": fr.compiled.get("gates") if fr.met else None, "units": fr.fit.units, "k": fr.fit.k,
                   "fit_s": fr.fit.seconds, "fit_compile_s": fr.compiled.get("compile_seconds"),
                   "reason": fr.reason, "train_s": train_s, "fit_budget_s": fit_budget, "fit_pool_used_s": used,
                   "polish": next((n for n in fr.fit.notes if n.startswith("polish")), None)}
            rows.append(row)
            fmt = lambda v, f: "-" if v is None else format(v, f)
            print(f"{key:>8} {eps:>9.5g} | {fmt(R_l, '9.4g')} {fmt(G_l, '7d')} | {fmt(R_f, '9.4g')} "
                  f"{fmt(row['G_fit'], '7d')} {fr.fit.units:>5} {fmt(fr.fit.k, '2d')} {fr.fit.seconds:>6.1f} "
                  f"{fmt(row['fit_compile_s'], '6.1f')}" + ("" if fr.met else f"  not met: {str(fr.reason)[:90]}")
                  + (f"  [{row['polish']}]" if row["polish"] else ""), flush=True)
    for key in dict.fromkeys(r["function"] for r in rows):
        rs = [r for r in rows if r["function"] == key]
        lam_n = sum(r["R_lam"] is not None for r in rs)
        fit_n = sum(r["R_fit"] is not None for r in rs)
        both = [r for r in rs if r["R_lam"] is not None and r["R_fit"] is not None]
        le = sum(r["R_fit"] <= r["R_lam"] for r in both)
        print(f"{key}: rungs reached λ path {lam_n}/{len(rs)}, fitted {fit_n}/{len(rs)}; R*_fit <= R*_λ at {le} of "
              f"{len(both)} shared rungs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v)


if __name__ == "__main__":
    main()

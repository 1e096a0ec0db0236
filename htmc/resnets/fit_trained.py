"""d = 2 at coarse rungs: gradient-trained nets as the polish's starts (issue 21 D, fit_version 5).

Why: the pyramid LP's nets (axis-aligned hats on a dyadic grid, one block) are not the least norm at coarse d = 2
rungs. A λ path trained 20,000 steps was below them (holder_random d=2 s=1 at ε = 0.2: 16.71 against 37.38), and
the polish started from the LP's net finds nothing lower at k >= 5 (benchmarks/RESULTS.md, D, "d = 2 again").
Nets with free first layers and two blocks do better, and the polish's exact penalty pulls an infeasible start
into the cells' intervals: six MSE-trained nets (3000 steps) polished 2000 steps gave 14.32 there, and 5.71 for
s = 0.75 at ε = 0.4 (LP 12.30), in 7-22 s at k <= 5 (same section, "A lead that works").

Method: TRAIN_LAMS x TRAIN_SEEDS nets of the λ path's shape (htmc.resnets.training.train_batch, MSE + λ·norm at
512 random points), then all of them polished on the rung's cells (fit_polish.polish), feasible or not; the
least-norm net that the polish keeps and whose float error is within ε replaces the LP's net when its norm is
lower (the LP's net stays first among the alternates, fit_and_compile's fallbacks).
"""
from __future__ import annotations

import time

MAX_CELLS = 1 << 10       # k <= 5 for d = 2: at k = 6 (4096 cells) 2000 polish steps took over 60 s
MIN_LEFT_S = 8.0          # seconds of the rung's budget the candidate needs (3000 + 2000 steps: 7-22 s at k <= 5)
TRAIN_LAMS = (2.7e-5, 1.4e-4, 7.2e-4)
TRAIN_SEEDS = 2
TRAIN_STEPS = 3000
POLISH_STEPS = 2000


def wanted(target, res, deadline: float, eps_fit: float) -> bool:
    """d = 2, k <= 5, time left, and a rung that needs more than a constant: where one constant meets every
    cell, the trained nets shrink to it (block_path ~1e-4 at holder_random d=2, ε = 0.8) and log R* over the
    ladder spans decades that say nothing about the rate (docs/STATUS.md)."""
    if not (target.d == 2 and res.net is not None and (1 << (target.d * res.k)) <= MAX_CELLS
            and deadline - time.monotonic() >= MIN_LEFT_S):
        return False
    t = target.table(res.k, "box")
    return float(t.hi.max() - t.lo.min()) / 2 > eps_fit


def trained_best(target, res, eps: float, eps_fit: float, deadline: float, seed: int) -> None:
    """res (a FitResult with the LP's net) takes the trained candidate when it is feasible and of lower norm;
    res.notes says what happened."""
    from htmc.resnets.fit import float_error, live_units, net_norms
    from htmc.resnets.fit_polish import polish, Problem
    from htmc.resnets.training import TrainConfig, train_batch
    t0 = time.monotonic()
    cfgs = [TrainConfig(width=16, depth=2, rank=8, lam=lam, reg=res.norm, steps=TRAIN_STEPS, n_train=512, lr=0.01,
                        seed=seed + s, d=target.d) for lam in TRAIN_LAMS for s in range(TRAIN_SEEDS)]
    starts = [r.params for r in train_batch([target] * len(cfgs), cfgs) if r.status == "ok"]
    table = target.table(res.k, "box")
    prob = Problem.of_cells(table, eps_fit)
    left = deadline - time.monotonic()
    if not starts or left <= 0.5:
        res.notes.append(f"trained starts: none polished ({len(starts)} trained, {left:.1f} s left)")
        return
    out = polish(starts, [prob] * len(starts), res.norm, steps=POLISH_STEPS, budget_s=left, seed=seed)
    kept = [q for q in out if q.improved and q.max_violation <= 0]
    what = f"{len(starts)} nets, {time.monotonic() - t0:.1f} s"
    best = min(kept, key=lambda q: q.norm) if kept else None
    fe = float_error(best.net, table) if best is not None else None
    if best is None or fe > eps or best.norm >= res.norms[res.norm]:
        res.notes.append(f"trained starts: none below the LP's {res.norm} {res.norms[res.norm]:.4g} ({what})")
        return
    res.notes.append(f"trained starts: {res.norm} {res.norms[res.norm]:.4g} -> {best.norm:.4g} ({what})")
    res.alternates = [res.net, *res.alternates]
    res.net, res.norms, res.float_error, res.units = best.net, net_norms(best.net), fe, live_units(best.net)

"""Fitting to a rung (issue 21 A): for a target f, an accuracy ε and a norm ν, a ResNet that MEETS ε on the
verifier's constraints with as small a norm ν as the method finds, then its own circuit, compiled and verified.

On the box a compiled net is evaluated at each cell's midpoint, and cell c accepts outputs in [hi_c − ε, lo_c + ε]
(htmc.targets.table): at input resolution k, "meets ε" is 2^(d k) interval constraints. The fit leaves a share
MARGIN of ε to quantization (it fits to ε(1 − MARGIN)) and then:
1. picks k: the smallest k (d k <= max_inputs) whose cells' oscillation leaves the constraints room
   (max_c (hi_c − lo_c)/2 <= ROOM·ε(1 − MARGIN)), and the next finer one;
2. fixes a first layer and solves a linear program for the output weights (htmc.resnets.fit_lp): the least
   weighted ℓ1 of the output weights, which is the block_path norm's minimum over nets with that first layer;
   for d = 1 the kinks lie on a dyadic knot grid, from the coarsest feasible grid to KNOT_EXTRA finer ones;
   for d >= 2 ridge units on the axes and diagonals; d = 1: the LP again with a linear term s·x that travels
   the skip path, at its exact cost in the emitted net (net_from_units, _skip_variants);
3. for the `l1` objective, rebalances every unit (relu is positively homogeneous: scaling (b_i, c_i) by β and
   a_i by 1/β leaves f unchanged) and reweights the LP (majorizing the concave per-unit cost 2√(|a_i| ω_i));
4. keeps the net of least objective norm among the LP solutions whose float error on the cells is within ε;
   d = 1: polishes it by gradient steps on the same constraints (fit_polish); d = 2 at k <= 5: tries MSE-trained
   nets polished so (fit_trained); keeps a polished net when its norm is lower; and compiles it
   (htmc.resnets.bit_search.compile_search at the k it was fitted at): `met` needs that circuit to verify.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from htmc.registry import did_you_mean
from htmc.resnets.fit_lp import (Infeasible, lp_knots, lp_ridge, reweighted_costs, ridge_dictionary, unit_costs,
                                 Units)
from htmc.resnets import fit_trained
from htmc.resnets.to_circuit import cell_points, float_error, MAX_INPUTS

FIT_VERSION = "5"   # 2: d = 1 nets carry a linear term on the skip path (issue 21 D); 3: d = 1 LP nets are then
#                     polished by batched gradient steps, which may add a second block (htmc.resnets.fit_polish);
#                     3 also changes d = 2 (issue 21 C): the pyramid LP (fit_pyramid); 4: up to 24 bits
#                     (to_circuit.DEFAULT_BITS), d = 2 past k = 7 in two stages (fit_blocks); 5: d = 2 at
#                     k <= 5 also tries MSE-trained nets polished on the cells (fit_trained)
POLISH_SHARE = 0.25  # d = 1: share of a rung's budget kept for the polish (the LPs stop at the rest)
POLISH_SEEDS = 4     # copies of the LP's best net polished in one batch, each with its own random second block
POLISH_STEPS = 1000  # 1000 steps x 4 copies: ~1 CPU-s at k <= 8 (benchmarks/RESULTS.md, issue 21 D)
POLISH_MAX_S = 4.0   # ... and at most this many seconds, to keep `make demo` within 6 min
POLISH_MAX_WORK = 3e4   # ... and only where cells x units is at most this: 2.3 s at sin's k = 10 (1024 x 20), no
#                         gain at k = 11 (2048 x 28) in 4.2 s (benchmarks/RESULTS.md, issue 21 D)
OBJECTIVES = ("block_path", "l1")   # norms the LP minimizes; every registered norm is recorded
MARGIN = 0.1         # share of ε left to quantization: the float net is fitted to ε(1 − MARGIN)
ROOM = 0.75          # k is fine enough when the cells' half-oscillation is at most ROOM·ε(1 − MARGIN)
K_TRIES = 2          # resolutions tried per rung: the coarsest with room and the next finer
KNOT_EXTRA = 1       # d = 1: knot grids tried beyond the coarsest feasible one (the norm falls weakly with each)
L1_ROUNDS = 2        # reweighted LPs for the l1 objective
BETAS = (1.0, 2.0, 4.0, 8.0)   # input scales β tried: h_0 = β(x − 1/2) costs dβ and divides each ‖b_i‖_1 by β
PRUNE = 1e-9         # output weights below PRUNE·max|a| are set to exactly zero (LP round-off)


def check_objective(norm: str) -> str:
    from htmc.resnets.norms import NORMS
    if norm not in NORMS:
        raise ValueError(f"unknown norm '{norm}': {did_you_mean(norm, list(NORMS.names()))}")
    if norm not in OBJECTIVES:
        raise ValueError(f"norm '{norm}' is recorded but the fit cannot minimize it: valid objectives are "
                         f"{', '.join(OBJECTIVES)}")
    return norm


def finest_eps(target, max_inputs: int = MAX_INPUTS, margin: float = MARGIN) -> tuple[int, float]:
    """(k_max, the smallest ε the fit can aim at within d k <= max_inputs): below it no resolution gives the
    constraints room (module docstring, step 1)."""
    k = max(1, max_inputs // target.d)
    t = target.table(k, "box")
    return k, float((t.hi - t.lo).max()) / 2 / (ROOM * (1 - margin))


@dataclass
class FitResult:
    """One rung's fit: the net (None when no net was found), its norms, and why not when it was not."""
    eps: float
    norm: str
    net: dict | None = None
    k: int | None = None
    float_error: float | None = None
    units: int = 0
    steps: int = 0               # simplex iterations over every LP solved
    solves: int = 0
    seconds: float = 0.0
    norms: dict = field(default_factory=dict)
    reason: str | None = None
    notes: list = field(default_factory=list)
    alternates: list = field(default_factory=list)   # the same function at a larger norm, easier to quantize


ROOM_D2 = 0.9          # d = 2: a looser room, tried first where ROOM's resolution has more than LP_CELLS_D2 cells
LP_CELLS_D2 = 1 << 14  # the pyramid LP solves at 2^14 cells (k = 7: 1.7-16 s) and ran out of time at 2^16 (90 s)


def _resolutions(target, eps_fit: float, max_inputs: int) -> list[int]:
    k_max = max(1, max_inputs // target.d)
    tries = K_TRIES if target.d == 1 else 1      # d = 2: one LP at 4^k cells already takes most of a budget
    ks = []
    for k in range(1, k_max + 1):
        t = target.table(k, "box")
        if float((t.hi - t.lo).max()) / 2 <= ROOM * eps_fit:
            ks.append(k)
            if len(ks) == tries:
                break
    if target.d == 2 and ks and 1 << (2 * ks[0]) > LP_CELLS_D2:
        # ε-aware (issue 21 C): a coarser k with less room instead, where the LP still solves (holder_random d=2
        # s=1 at ε = 0.05: k = 7, 1,818 units in 16 s; k = 8's LPs ran out of time at 20, 60 and 90 s, and held
        # the fit's memory near 9 GB)
        for k in range(1, ks[0]):
            t = target.table(k, "box")
            if float((t.hi - t.lo).max()) / 2 <= ROOM_D2 * eps_fit:
                return [k]
    return ks


def net_from_units(u: Units, d: int, scale: np.ndarray | None = None, beta: float = 1.0, alpha: float = 1.0,
                   own: np.ndarray | None = None) -> dict:
    """The one-block net f = u.slope·x + Σ a_i relu(b_i·(x − 1/2) + c_i) + b_out of fit_lp's docstring, as a
    ResNet of width d + 1 with h_0 = (β(x − 1/2), 0). The slope travels the skip path (issue 21 D: the λ path's
    nets carry the trend there): W_out[0] = slope/β and the block writes coordinate d, read at W_out[d] = α; or,
    when u.shared, the block writes h_0's own coordinate and W_out = ±α e_0 with α = |slope|/β, so the units'
    output scale carries the slope too. block_path is then dβ + |slope|/β + α + Σ|a_i|ω_i/α (not shared) or
    dβ + α + Σ|a_i|ω_i/α (shared), ω_i = ‖b_i‖_1/β + |c_i|. Zero output weights are pruned; unit i is scaled by
    scale[i] (b, c times it, a over it: the same f). d = 1: a unit with own[i] > 0 reads a coordinate of its own,
    h_0 = own[i]·(x − τ_i) (block_path does not count b_in, so its kink costs no |c_i|): it costs
    own[i] + |a_i|/(α own[i]) instead of |a_i|ω_i/α (_own_coordinates)."""
    a = np.asarray(u.a, dtype=np.float64).copy()
    a[np.abs(a) <= PRUNE * max(np.abs(a).max(initial=0.0), abs(u.slope), 1e-300)] = 0.0
    keep = np.flatnonzero(a)
    if len(keep) == 0:
        keep = np.array([0])          # rank >= 1: one dead unit (all zeros costs nothing in any norm)
    slope = float(u.slope)
    shared = bool(u.shared) and slope != 0.0
    sign = 1.0
    if shared:
        alpha, sign = abs(slope) / beta, math.copysign(1.0, slope)
    sc = np.ones(len(a)) if scale is None else np.asarray(scale, dtype=np.float64)
    B = u.B[keep] * sc[keep, None] / beta
    c = u.c[keep] * sc[keep]
    av = a[keep] / sc[keep] / (sign * alpha)
    if not a.any():
        B, c, av = np.zeros_like(B), np.zeros_like(c), np.zeros_like(av)
    ob = np.zeros(len(keep)) if own is None else np.asarray(own, dtype=np.float64)[keep]
    ob[av == 0] = 0.0
    mine = np.flatnonzero(ob > 0)
    r, w = len(keep), d + 1 + len(mine)
    A = np.zeros((1, w, r))
    A[0, 0 if shared else d] = av
    Bn = np.zeros((1, r, w))
    Bn[0, :, :d] = B
    W_in = np.zeros((w, d))
    W_in[:d] = beta * np.eye(d)
    b_in = np.zeros(w)
    b_in[:d] = -beta / 2
    for j, i in enumerate(mine):     # relu(x − τ_i)·a_i = (a_i/own_i)·relu(own_i (x − τ_i)), τ_i = 1/2 − c_i/scale_i
        col = d + 1 + j
        tau = 0.5 - u.c[keep[i]]
        Bn[0, i] = 0.0
        Bn[0, i, col] = 1.0
        c[i] = 0.0
        A[0, 0 if shared else d, i] = a[keep[i]] / (sign * alpha) / ob[i]
        W_in[col, 0] = ob[i]
        b_in[col] = -ob[i] * tau
    W_out = np.zeros((1, w))
    if shared:
        W_out[0, 0] = sign * alpha
    else:
        W_out[0, d] = alpha if a.any() else 0.0
        W_out[0, 0] = slope / beta          # slope·x = (slope/β)·β(x − 1/2) + slope/2
    return {"W_in": W_in, "b_in": b_in, "A": A, "B": Bn, "c": c.reshape(1, r), "W_out": W_out,
            "b_out": np.array([u.b_out + slope / 2])}


def net_norms(net: dict) -> dict[str, float]:
    from htmc.resnets.model import from_numpy
    from htmc.resnets.norms import all_norms
    return {k: float(v[0]) for k, v in all_norms(from_numpy([net])).items()}


def _solve_units(target, table, eps_fit: float, weights, deadline: float, seed: int, pieces: int | None = None,
                 beta: float = 1.0) -> list[Units]:
    """LP solutions for this table: d = 1 on knot grids (coarsest feasible, then finer; only `pieces` pieces
    when given), d >= 2 ridge units. weights(B, c, β) -> per-unit LP weights."""
    x = cell_points(table)
    lo, hi = table.hi - eps_fit, table.lo + eps_fit
    if target.d == 1:
        out, level = [], None
        for lev in range(1, table.k + 1):
            if time.monotonic() > deadline or (pieces is not None and 1 << lev != pieces):
                if pieces is None:
                    break
                continue
            try:
                tau = np.arange(1 << lev) / (1 << lev)
                w = weights(np.ones((len(tau), 1)), 0.5 - tau, beta)
                out.append(lp_knots(x[:, 0], lo, hi, 1 << lev, w))
            except Infeasible:
                continue
            level = lev if level is None else level
            if lev - level >= KNOT_EXTRA:
                break
        return out
    B, c = ridge_dictionary(target.d, 1 << table.k)
    return [lp_ridge(x, lo, hi, B, c, weights(B, c, beta), deadline, seed=int(seed))]


def fit_rung(target, eps: float, norm: str = "block_path", *, budget_s: float = 30.0,
             max_inputs: int = MAX_INPUTS, max_units: int = 4096, margin: float = MARGIN, seed: int = 0,
             polish: bool = True) -> FitResult:
    """The least-norm net the method finds that meets eps on the cells with margin to spare (module docstring).
    polish=False: the LPs' net only, in the whole budget (benchmarks/fit.py --batched polishes many at once)."""
    check_objective(norm)
    t0 = time.monotonic()
    trained, polish = polish, polish and target.d == 1
    deadline = t0 + budget_s * (1 - (POLISH_SHARE if polish else 0.0))   # the LPs' share
    res = FitResult(eps=float(eps), norm=norm)
    eps_fit = eps * (1 - margin)
    ks = _resolutions(target, eps_fit, max_inputs)
    if not ks:
        k, fine = finest_eps(target, max_inputs, margin)
        res.reason = (f"no resolution within d*k <= {max_inputs} (k <= {k}) leaves room for eps={eps:.6g}: the "
                      f"finest reachable eps is {fine:.6g}")
        return res
    best: tuple[float, dict, int, float, int, list, dict] | None = None
    plain: dict[int, list] = {}
    # every resolution's plain LPs first, then (d = 1) the skip path's variants of them: a tight budget spent
    # on the variants of the first k would leave the finer k, often the cheaper, untried
    phases = [(k, False) for k in ks] + ([(k, True) for k in ks] if target.d == 1 else [])
    for k, skip in phases:
        if time.monotonic() > deadline and best is not None:
            break
        table = target.table(k, "box")
        gen = (_skip_candidates(table, eps_fit, norm, deadline, plain.get(k, []), res) if skip else
               _candidates(target, table, eps_fit, norm, deadline, seed, res, plain.setdefault(k, [])))
        for net, alts in gen:
            r = net["A"].shape[2]
            fe = float_error(net, table)
            if fe > eps:
                res.notes.append(f"k={k}: an LP net's float error {fe:.4g} exceeds eps (pruning round-off)")
                continue
            if r > max_units:
                res.notes.append(f"k={k}: an LP net with {r} units is over the cap of {max_units}")
                continue
            norms = net_norms(net)
            if best is None or (norms[norm], r) < (best[0], best[2]):
                best = (norms[norm], net, r, fe, k, alts, norms)
    res.seconds = time.monotonic() - t0
    if best is None:
        why = "; ".join(res.notes[-3:]) or "every LP was infeasible"
        res.reason = f"no net within the budget meets eps={eps:.6g} at k in {ks}: {why}"
        return res
    _, res.net, res.units, res.float_error, res.k, res.alternates, res.norms = best
    if polish:
        _polish_best(target, res, eps, eps_fit, t0 + budget_s, seed)
    elif trained and fit_trained.wanted(target, res, t0 + budget_s, eps_fit):
        fit_trained.trained_best(target, res, eps, eps_fit, t0 + budget_s, seed)
    res.seconds = time.monotonic() - t0
    return res


def live_units(net: dict) -> int:
    """Hidden units with a nonzero output column, over all blocks."""
    return int((np.abs(net["A"]).sum(1) > 0).sum())


def _polish_best(target, res: FitResult, eps: float, eps_fit: float, deadline: float, seed: int) -> None:
    """d = 1: the LP's best net polished by gradient steps within what is left of the budget
    (htmc.resnets.fit_polish: POLISH_SEEDS copies in one batch, the intervals the LP met); kept when its norm is
    lower and its float error within eps, with the LP's net first among the alternates (fit_and_compile's
    fallbacks). res.notes says what the polish gained."""
    from htmc.resnets.fit_polish import polish, Problem
    left = min(deadline - time.monotonic(), POLISH_MAX_S)
    work = (1 << (target.d * res.k)) * res.net["A"].shape[2]
    if left <= 0.1 or work > POLISH_MAX_WORK:
        res.notes.append(f"polish: not run ({left:.2f} s of the budget left, cells x units {work})")
        return
    table, tp = target.table(res.k, "box"), time.monotonic()
    prob = Problem.of_cells(table, eps_fit)
    out = polish([res.net] * POLISH_SEEDS, [prob] * POLISH_SEEDS, res.norm, steps=POLISH_STEPS, budget_s=left,
                 seed=seed)
    p = min(out, key=lambda q: q.norm)
    fe = float_error(p.net, table) if p.improved else None
    what = (f"{POLISH_SEEDS} starts x {p.steps} steps, {time.monotonic() - tp:.1f} s")
    if fe is None or fe > eps:
        res.notes.append(f"polish: no lower feasible net ({what}); kept the LP's {res.norm} {res.norms[res.norm]:.4g}")
        return
    res.notes.append(f"polish: {res.norm} {p.start_norm:.4g} -> {p.norm:.4g}, {p.net['A'].shape[0]} block(s) "
                     f"({what})")
    res.alternates = [res.net, *res.alternates]
    res.net, res.norms, res.float_error, res.units = p.net, net_norms(p.net), fe, live_units(p.net)


def _scaled(u: Units, d: int, beta: float, norm: str) -> dict:
    """u as a net at the output scale α of least objective norm (module docstring, step 3): block_path's
    optimum is near α = √(Σ|a_i|ω_i), so a few factors around it are tried; for l1 every unit is also rebalanced
    at each α (scale √(|a_i|/(α ω_i)) minimizes |a_i|/(α s) + s ω_i). A shared-coordinate u has its α fixed
    at |slope|/β (net_from_units)."""
    w = unit_costs(u.B, u.c, beta)
    alpha0 = math.sqrt(max(float((np.abs(u.a) * w).sum()), 1e-12))
    alphas = [abs(u.slope) / beta] if u.shared and u.slope else alpha0 * 2.0 ** np.arange(-2.0, 2.5, 0.5)
    best = None
    for alpha in alphas:
        scale = None
        if norm == "l1":
            scale = np.where(u.a != 0, np.sqrt(np.abs(u.a) / alpha / np.maximum(w, 1e-300)), 1.0)
        nets = [net_from_units(u, d, scale, beta, alpha)]
        if d == 1 and norm == "block_path":
            own = _own_coordinates(u, w, alpha)
            if own.any():
                nets.append(net_from_units(u, d, scale, beta, alpha, own))
        for net in nets:
            v = net_norms(net)[norm]
            if best is None or v < best[0]:
                best = (v, net)
    return best[1]


def _own_coordinates(u: Units, w: np.ndarray, alpha: float) -> np.ndarray:
    """Per unit, the scale of a coordinate of its own where that is cheaper in block_path (0 where not): on its
    own coordinate a unit costs min over s of s + |a|/(α s) = 2√(|a|/α), at s = √(|a|/α), against |a|ω/α on the
    shared one (net_from_units)."""
    a = np.abs(u.a)
    s = np.sqrt(a / alpha)
    return np.where((a > 0) & (2 * s < a * w / alpha), s, 0.0)


def _plain(u: Units, d: int) -> list[dict]:
    """The same f at β = 1 and output scales falling to α = 1: a larger norm, but weights that keep their
    precision when quantized (the least-norm scales can put α ~ 30 on the output, which multiplies every
    output weight's rounding error); fit_and_compile tries them when the least-norm net does not compile."""
    if u.shared and u.slope:
        return [net_from_units(u, d, None, 1.0)]        # α = |slope| at β = 1
    alpha0 = math.sqrt(max(float((np.abs(u.a) * unit_costs(u.B, u.c)).sum()), 1e-12))
    return [net_from_units(u, d, None, 1.0, al) for al in sorted({max(1.0, alpha0 / 4), 1.0}, reverse=True)]


def _trend(u: Units) -> float:
    """f(1) − f(0) of a d = 1 LP solution (units relu(x − τ_j), τ_j = 1/2 − c_j)."""
    return float(u.slope + (u.a * (0.5 + u.c)).sum())


SKIP_ROUNDS = 2                      # d = 1: LPs with a free skip slope, α re-estimated after each
SHARED_SLOPES = (0.5, 0.75, 1.0)     # d = 1: shared-coordinate nets with the skip slope at these shares of the trend


def _skip_variants(u: Units, x, lo, hi, beta: float, deadline: float):
    """d = 1 (issue 21 D): the LP again with the skip path's slope s (net_from_units). Not shared, s costs |s|/β
    beside the units' Σ|a_i|ω_i/α; with α fixed at its last optimum √(Σ|a_i|ω_i) that is an LP of weight α/β
    per |s|, re-solved SKIP_ROUNDS times. Shared, s = ±αβ is paid by α itself: for each share m of the trend T,
    the LP at the fixed slope s = m·T (α = |s|/β)."""
    K, w = len(u.a), unit_costs(u.B, u.c, beta)
    cur = u
    for _ in range(SKIP_ROUNDS):
        if time.monotonic() > deadline:
            return
        alpha = math.sqrt(max(float((np.abs(cur.a) * w).sum()), 1e-12))
        try:
            cur = lp_knots(x, lo, hi, K, w, slope_weight=alpha / beta)
        except Infeasible:
            return
        yield cur
    T = _trend(u)
    for m in SHARED_SLOPES:
        if time.monotonic() > deadline or T == 0.0:
            return
        try:
            yield lp_knots(x, lo, hi, K, w, slope=m * T)
        except Infeasible:
            continue


def _candidates(target, table, eps_fit, norm, deadline, seed, res: FitResult, plain: list):
    """(net, alternates) from the LPs of one table: for each input scale β in BETAS the LP at the weights that make
    it block_path's minimum, and for l1 the reweighted rounds; each net at its best output scale α."""
    if target.d == 2:
        from htmc.resnets.fit_pyramid import pyramid_candidates
        # the compile's margin: the net must keep its bits within eps_fit/(1 − MARGIN) <= eps
        yield from pyramid_candidates(table, eps_fit, eps_fit / (1 - MARGIN), norm, deadline, seed, res)
        return
    betas, trend = list(BETAS), None
    while betas:
        beta = betas.pop(0)
        if time.monotonic() > deadline:
            break
        try:
            sols = _solve_units(target, table, eps_fit, unit_costs, deadline, seed, beta=beta)
        except Infeasible as e:
            res.notes.append(f"k={table.k}: {e}")
            return
        for u in sols:
            res.steps += u.iterations
            res.solves += u.solves
            plain.append((beta, u))
            yield _scaled(u, target.d, beta, norm), _plain(u, target.d)
            if target.d == 1 and trend is None:
                # the skip path alone costs β + |T|/β, least at β = √|T|: try that input scale too
                trend = abs(_trend(u))
                if trend > 0 and all(abs(b - math.sqrt(trend)) > 1e-3 for b in BETAS):
                    betas.append(math.sqrt(trend))
            cur = u
            for _ in range(L1_ROUNDS if norm == "l1" else 0):
                if time.monotonic() > deadline:
                    break
                # majorize Σ 2√(|a_i| ω_i) at the previous solution: weight ω_i / √(|a_i| ω_i + η)
                eta = 1e-6 * max(float(np.abs(cur.a).max(initial=0.0)), 1e-12)
                wfn = lambda B, c, b, p=cur: reweighted_costs(B, c, b, p.a, eta)
                try:
                    nxt = _solve_units(target, table, eps_fit, wfn, deadline, seed, pieces=len(cur.a), beta=beta)
                except Infeasible as e:
                    res.notes.append(f"k={table.k}: reweighted LP: {e}")
                    break
                if not nxt:
                    break
                cur = nxt[0]
                res.steps += cur.iterations
                res.solves += cur.solves
                yield _scaled(cur, target.d, beta, norm), _plain(cur, target.d)


def _skip_candidates(table, eps_fit, norm, deadline, plain: list, res: FitResult):
    """d = 1: (net, alternates) of the skip path's variants (_skip_variants) of each plain LP solution (β, u)."""
    x = cell_points(table)[:, 0]
    lo, hi = table.hi - eps_fit, table.lo + eps_fit
    for beta, u in plain:
        for v in _skip_variants(u, x, lo, hi, beta, deadline):
            res.steps += v.iterations
            res.solves += v.solves
            yield _scaled(v, 1, beta, norm), _plain(v, 1)


@dataclass
class RungResult:
    """fit_rung's net compiled to its own circuit (compile_search at the k it was fitted at)."""
    fit: FitResult
    met: bool
    reason: str | None
    compiled: dict = field(default_factory=dict)   # gates, aig_nodes, max_error, w_bits, a_bits, compile_seconds
    margin: float = MARGIN
    circuit: object = None      # the verified htmc.circuits.circuit.Circuit when met


def fit_and_compile(target, eps: float, norm: str = "block_path", *, budget_s: float = 30.0,
                    compile_budget_s: float = 30.0, max_inputs: int = MAX_INPUTS, max_units: int = 4096,
                    seed: int = 0) -> RungResult:
    """fit_rung, then the net's own circuit verified within eps. When the float net fits but no quantization
    verifies, the fit is redone once with twice the margin (more of eps left to the bits)."""
    from htmc.resnets.bit_search import compile_search
    t0 = time.monotonic()
    last = None
    for margin in (MARGIN, 2 * MARGIN):
        left = budget_s - (time.monotonic() - t0)
        if last is not None and left <= 0:
            break
        # the refit gets at least 1 s even when the first fit spent the budget; the first fit gets budget_s
        fit = fit_rung(target, eps, norm, budget_s=budget_s if last is None else max(left, 1.0),
                       max_inputs=max_inputs, max_units=max_units,
                       margin=margin, seed=seed)
        if fit.net is None:
            return last or RungResult(fit, False, fit.reason, margin=margin)
        table, tc = target.table(fit.k, "box"), time.monotonic()
        for net in [fit.net, *fit.alternates]:
            c = compile_search(net, table, eps, budget_s=max(1.0, compile_budget_s - (time.monotonic() - tc)))
            ok = c.circuit is not None and c.max_error is not None and c.max_error <= eps
            if ok or time.monotonic() - tc > compile_budget_s:
                break
        if ok and net is not fit.net:       # the net compiled is the one recorded, with its own norms
            fit.net, fit.norms, fit.float_error = net, net_norms(net), float_error(net, table)
            fit.units = live_units(net)
        compiled = {"gates": c.gates, "aig_nodes": c.aig_nodes, "max_error": c.max_error, "w_bits": c.w_bits,
                    "a_bits": c.a_bits, "compile_seconds": time.monotonic() - tc}
        last = RungResult(fit, ok, None if ok else f"the fitted net's circuit did not verify: {c.reason}",
                          compiled, margin, c.circuit if ok else None)
        if ok:
            break
    return last


def rung_columns(target, eps0: float, rung: int, norm: str, seed: int, r: RungResult) -> dict:
    """The resnet_fit record's columns (htmc.records.FitRecord) of one rung, norm_<name> family included."""
    from htmc.resnets.norms import norm_versions
    from htmc.resnets.numpy_net import net_to_text
    from htmc.resnets.to_circuit import COMPILE_VERSION
    f, net = r.fit, r.fit.net
    cols = {"function": target.name, "function_version": target.version, "gamma_theory": target.gamma_theory,
            "d": target.d, "eps0": float(eps0), "rung": int(rung), "eps": float(f.eps), "k": f.k, "norm": norm,
            "fit_version": FIT_VERSION, "seed": int(seed), "met": bool(r.met), "reason": r.reason, "lam": None,
            "steps": int(f.steps), "fit_seconds": f.seconds, "float_error": f.float_error,
            "units": f.units, "margin": r.margin, "compile_version": COMPILE_VERSION,
            "verified": bool(r.met), **{k: r.compiled.get(k) for k in (
                "gates", "aig_nodes", "max_error", "w_bits", "a_bits", "compile_seconds")}}
    if net is not None:
        cols.update(width=int(net["W_in"].shape[0]), depth=int(net["A"].shape[0]), rank=int(net["A"].shape[2]),
                    nnz=int(sum(np.count_nonzero(v) for v in net.values())),
                    n_params=int(sum(np.size(v) for v in net.values())), net_text=net_to_text(net))
        for name, v in f.norms.items():
            cols[f"norm_{name}"] = v
    for name, v in norm_versions().items():
        cols[f"norm_{name}_version"] = v
    return cols

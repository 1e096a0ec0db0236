"""A batched gradient polish of fitted nets (issue 21 A "Batched", D): B feasible starting nets, B problems (cell
points x and the verifier's intervals lo <= f(x) <= hi), one torch computation over B that lowers each net's norm ν
while it stays FEASIBLE on every cell of its problem; per problem the feasible iterate of least ν, or the start.

Why: the LP of htmc.resnets.fit fixes the first layer (knots on a dyadic grid) and has one block, so its minimum
is over that layer only; gradient steps move the kinks, the input and output scales, and may use a second block
(composition multiplies slopes across blocks while block_path adds their costs). On sin at ε = 0.2 the λ path's
two-block net is below the LP's best (benchmarks/RESULTS.md, issue 21 D).

Method, per net b (elementwise over the flat (B, P) buffer of htmc.resnets.model.Layout, and the loss is a sum of
per-net terms, so each net follows the trajectory it would follow alone, up to summation order):
- minimize ν(θ) + μ_b Σ_c m_c relu(g_c(θ) + δ_c), g_c = max(f(x_c) − hi_c, lo_c − f(x_c)): an exact ℓ1 penalty on
  the interval violations (for μ above the constraints' multipliers its minimizers are the constrained ones;
  Nocedal & Wright, Numerical Optimization, 2nd ed., §17.2), with the constraints tightened by δ_c = INNER·(hi_c −
  lo_c)/2, so that iterates near the boundary are still inside the untightened intervals;
- Adam steps on it (htmc.resnets.training's update), each step LR × the start's largest |θ|, cosine-decayed to
  FLOOR of it (SGDR, Loshchilov & Hutter, ICLR 2017). No proximal step for ν: with training's prox in Adam's
  metric the sin iterates left the feasible set (max violation 0.48 at ε = 0.2 after 400 steps) and did not come
  back, likely because a coordinate with a vanishing penalty gradient gets a huge threshold there;
- μ continuation: μ_b starts at MU0 × ν(start) / max_c (hi_c − lo_c)/2 and is ×MU_UP after a step that violates
  a tightened constraint and ×MU_DOWN after one that does not, so each net hovers at the boundary of its own
  feasible set. Measured on fit_rung's sin net at ε = 0.2 (block_path 9.73), best of 4 copies x 1000 steps:
  MU0 = 0.01 reached 8.48, 0.03 8.73, 0.1 9.24; MU_UP = 1.01 was worse at each MU0;
- after every step's forward pass the iterate is kept when it is feasible (g_c <= 0 on every cell; on float32,
  g_c <= −δ_c/2, which covers its rounding) and its ν is the least so far; m_c masks the padding cells of
  problems with fewer cells.
Shapes: every start is zero-padded to the batch's widest width, deepest depth and largest rank (zeros change no f
and cost nothing in any norm); with extra_block a block is appended whose B, c are random and A = 0: f and
block_path are unchanged (block_path charges B_l[i,:] only through ‖A_l[:,i]‖_1; l1 does charge them, so an l1
start's kept iterate must first pay them back), and its units can grow (a zero B would have no gradient).
At the end the kept iterates are checked in float64 (on the CPU) against the untightened intervals and their dead
units, unused coordinates and empty blocks are removed (compact); a net whose check fails gives back its start.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from htmc.registry import check_positive, did_you_mean, UnknownNameError
from htmc.resnets.model import forward, from_numpy, Layout, to_numpy
from htmc.resnets.norms import NORMS
from htmc.resnets.numpy_net import forward_numpy
from htmc.resnets.training import adam_prox_step, DTYPES, prune_dead_units

INNER = 1e-3         # share of each interval's half-width by which the steps tighten the constraints (δ)
MU0 = 0.01           # initial penalty weight, in units of ν(start) per half-width of violation
MU_UP, MU_DOWN = 1.002, 0.999
LR = 3e-3            # Adam's step, relative to the start's largest |θ|
FLOOR = 0.01         # the cosine decay's last step, as a share of LR
EXTRA_RANK = 8       # units of the appended block
INFEASIBLE = 1e-9    # a start violating its cells by more than this is infeasible (LP nets: round-off ~1e-12)


@dataclass
class Problem:
    """A net's constraints: lo <= f(x_c) <= hi at the points x (N, d)."""
    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self):
        self.x = np.asarray(self.x, dtype=np.float64)
        self.lo, self.hi = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (self.lo, self.hi))
        if self.x.ndim != 2 or len(self.lo) != len(self.x) or len(self.hi) != len(self.x):
            raise ValueError(f"a problem needs x (N, d) and lo, hi (N,): got x {self.x.shape}, lo {self.lo.shape}, "
                             f"hi {self.hi.shape}")
        if len(self.x) == 0 or not (self.lo <= self.hi).all():
            raise ValueError("a problem needs at least one cell and lo <= hi on every cell")

    @classmethod
    def of_cells(cls, table, eps_fit: float) -> "Problem":
        """The verifier's constraint on an IntervalTable's cells at their midpoints: hi_c − ε_fit <= f <= lo_c + ε_fit
        (the fit's ε less its margin to quantization)."""
        from htmc.resnets.to_circuit import cell_points   # lazy: to_circuit pulls in scipy and the ABC wrapper
        return cls(cell_points(table), table.hi - eps_fit, table.lo + eps_fit)


@dataclass
class Polished:
    """One problem's outcome: the net (the start when nothing better was feasible), its norm and the start's."""
    net: dict
    norm: float
    start_norm: float
    improved: bool
    max_violation: float     # float64: max_c max(f − hi, lo − f) of net (<= 0: feasible; the start's when not improved)
    steps: int
    seconds: float           # the batch's wall time over B (this net's share)


def pad(net: dict, w: int, L: int, r: int) -> dict:
    """net zero-padded to width w, depth L, rank r (the same f and norms)."""
    w0, d = net["W_in"].shape
    L0, _, r0 = net["A"].shape
    out = {"W_in": np.zeros((w, d)), "b_in": np.zeros(w), "A": np.zeros((L, w, r)), "B": np.zeros((L, r, w)),
           "c": np.zeros((L, r)), "W_out": np.zeros((1, w)), "b_out": np.asarray(net["b_out"], dtype=np.float64)}
    out["W_in"][:w0], out["b_in"][:w0] = net["W_in"], net["b_in"]
    out["A"][:L0, :w0, :r0], out["B"][:L0, :r0, :w0], out["c"][:L0, :r0] = net["A"], net["B"], net["c"]
    out["W_out"][:, :w0] = net["W_out"]
    return out


def _seed_block(net: dict, L0: int, seed: int) -> None:
    """Blocks L0.. get random B, c with A = 0 (module docstring), drawn from the net's own seed only (so a net's
    result does not depend on the batch it is in)."""
    rng = np.random.default_rng(seed)
    L, r, w = net["B"].shape
    scale = max(float(np.abs(net["W_in"]).max()), 1e-3)
    for l in range(L0, L):
        net["B"][l] = rng.uniform(-1, 1, (r, w)) / max(scale, 1.0)
        net["c"][l] = rng.uniform(-0.5, 0.5, r)


def compact(net: dict) -> dict:
    """The same f without dead units (A_l[:,i] = 0, or B_l[i,:] = 0 and c_{l,i} <= 0), unread coordinates (no
    B_l and no W_out reads them) and blocks left with no unit; at least one block of one unit stays."""
    A, Bm, c = (np.asarray(net[k], dtype=np.float64).copy() for k in ("A", "B", "c"))
    dead = (A == 0).all(1) | ((Bm == 0).all(2) & (c <= 0))                       # (L, r)
    keep_l = [l for l in range(A.shape[0]) if not dead[l].all()] or [0]
    r = max(1, max(int((~dead[l]).sum()) for l in keep_l))
    read = (net["W_out"][0] != 0) | (Bm[keep_l] != 0).any((0, 1))
    cols = np.flatnonzero(read)
    if len(cols) == 0:
        cols = np.array([0])
    out = {"W_in": net["W_in"][cols].copy(), "b_in": net["b_in"][cols].copy(), "A": np.zeros((len(keep_l), len(cols), r)),
           "B": np.zeros((len(keep_l), r, len(cols))), "c": np.zeros((len(keep_l), r)),
           "W_out": net["W_out"][:, cols].copy(), "b_out": np.asarray(net["b_out"], dtype=np.float64).copy()}
    for j, l in enumerate(keep_l):
        units = np.flatnonzero(~dead[l])
        out["A"][j][:, :len(units)] = A[l][np.ix_(cols, units)]
        out["B"][j][:len(units)] = Bm[l][np.ix_(units, cols)]
        out["c"][j][:len(units)] = c[l][units]
    return out


def _violation(nets: list[dict], problems: list[Problem]) -> list[float]:
    """float64 max_c max(f(x_c) − hi_c, lo_c − f(x_c)) per net (numpy, the compiler's reference forward pass)."""
    out = []
    for n, p in zip(nets, problems):
        y = forward_numpy(n, p.x)
        out.append(float(np.maximum(y - p.hi, p.lo - y).max()))
    return out


def _check(starts, problems, norm, steps, budget_s) -> None:
    from htmc.resnets.fit import check_objective
    check_objective(norm)
    if len(starts) == 0 or len(starts) != len(problems):
        raise ValueError(f"polish needs one problem per start and at least one: got {len(starts)} starts and "
                         f"{len(problems)} problems")
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise TypeError(f"steps must be an int, got {steps!r}")
    check_positive("steps", steps)
    if budget_s is not None:
        check_positive("budget_s", budget_s)
    dims = {n["W_in"].shape[1] for n in starts} | {p.x.shape[1] for p in problems}
    if len(dims) != 1:
        raise ValueError(f"starts and problems of one batch must share the input dimension d, got {sorted(dims)}")


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device)
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch.cuda.is_available() is False; use 'cpu'")
    return torch.device(name)


def polish(starts: list[dict], problems: list[Problem], norm: str = "block_path", *, steps: int = 1000,
           device=None, budget_s: float | None = None, extra_block: bool = True, lr: float = LR, seed: int = 0,
           dtype: str | None = None) -> list[Polished]:
    """Per problem b the net of least norm found that stays feasible on all its cells, or starts[b] (module
    docstring). float64 on the CPU; on CUDA float32 steps and a float64 check of the kept iterate. budget_s stops
    the steps early (checked every 25 steps). Net b's appended block is drawn from seed + b. dtype ("float32" or
    "float64") overrides the device's default, e.g. to run the GPU's float32 steps on a CPU."""
    _check(starts, problems, norm, steps, budget_s)
    dev = _device(device)
    if dtype is not None and dtype not in DTYPES:
        raise UnknownNameError(f"unknown dtype '{dtype}': {did_you_mean(str(dtype), list(DTYPES))}")
    dt = DTYPES[dtype] if dtype else torch.float64 if dev.type == "cpu" else torch.float32
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        # small nets are overhead-bound: torch's default threads were ~40x slower than one on this loaded 2-core
        # box (docs/STATUS.md, issue 4); the caller's setting is restored below
        torch.set_num_threads(1)
    try:
        return _polish(starts, problems, norm, steps, dev, dt, budget_s, extra_block, lr, seed)
    finally:
        torch.set_num_threads(threads)


def _polish(starts, problems, norm, steps, dev, dtype, budget_s, extra_block, lr, seed) -> list[Polished]:
    t0 = time.monotonic()
    Bn, d = len(starts), starts[0]["W_in"].shape[1]
    L0 = max(n["A"].shape[0] for n in starts)
    w = max(n["W_in"].shape[0] for n in starts) + (1 if extra_block else 0)
    L = L0 + (1 if extra_block else 0)
    r = max(max(n["A"].shape[2] for n in starts), EXTRA_RANK if extra_block else 1)
    padded = [pad(n, w, L, r) for n in starts]
    if extra_block:
        for b, n in enumerate(padded):
            _seed_block(n, L0, seed + b)
    layout = Layout(d, w, L, r)
    flat = layout.flatten(from_numpy(padded, dtype, dev)).requires_grad_(True)

    X, lo, hi, mask = _cells(problems, d, dtype, dev)
    half = torch.where(mask, (hi - lo) / 2, 0.0)
    delta = INNER * half
    # float32 steps (GPU): an iterate is kept only with half of δ to spare, which covers its rounding
    slack = 0.0 if dtype == torch.float64 else 0.5 * delta
    fn = NORMS.get(norm)
    with torch.no_grad():
        start_norm = fn(layout.views(flat))
        # μ in units of norm per unit of violation: a violation of the whole half-width costs MU0 × the norm
        mu = MU0 * start_norm.clamp_min(1e-6) / half.amax(1).clamp_min(1e-12)
        scale = flat.abs().amax(1, keepdim=True).clamp_min(1e-3)
    lr_t = lr * scale
    rows = {"adam": True, "reg": {}}       # training's Adam update with no proximal step (module docstring)
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    best = flat.detach().clone()
    best_norm = torch.full((Bn,), math.inf, dtype=dtype, device=dev)
    done = 0
    for step in range(1, steps + 1):
        y = forward(layout.views(flat), X)
        g = torch.maximum(y - hi, lo - y)                                       # > 0: violated
        pen = torch.where(mask, torch.relu(g + delta), 0.0).sum(1)
        nv = fn(layout.views(flat))
        (grad,) = torch.autograd.grad((nv + mu * pen).sum(), flat)
        with torch.no_grad():
            feas = torch.where(mask, g + slack, -1.0).amax(1) <= 0
            nv = nv.detach()
            better = feas & (nv < best_norm)
            best = torch.where(better.unsqueeze(1), flat, best)
            best_norm = torch.where(better, nv, best_norm)
            infeas = torch.where(mask, g + delta, -1.0).amax(1) > 0
            mu = torch.where(infeas, mu * MU_UP, mu * MU_DOWN)
            # cosine decay of the step (Loshchilov & Hutter, SGDR, ICLR 2017): large moves first, then the
            # iterates settle near the boundary where the least norm lies
            cos = 0.5 * (1 + math.cos(math.pi * step / steps))
            adam_prox_step(flat, grad, m, v, step, lr_t * (FLOOR + (1 - FLOOR) * cos), 0.0, rows, layout)
        done = step
        if budget_s is not None and step % 25 == 0 and time.monotonic() - t0 > budget_s:
            break
    return _finish(starts, problems, layout, best, best_norm, start_norm, norm, done, t0)


def _cells(problems: list[Problem], d: int, dtype, dev):
    """The problems' cells padded to one count: (X, lo, hi, mask); a padding cell has x = lo = hi = 0 and mask 0
    (in no penalty, no check)."""
    Bn, N = len(problems), max(len(p.x) for p in problems)
    X = torch.zeros((Bn, N, d), dtype=dtype, device=dev)
    lo = torch.zeros((Bn, N), dtype=dtype, device=dev)
    hi = torch.zeros((Bn, N), dtype=dtype, device=dev)
    mask = torch.zeros((Bn, N), dtype=torch.bool, device=dev)
    for b, p in enumerate(problems):
        n = len(p.x)
        X[b, :n] = torch.as_tensor(p.x, dtype=dtype)
        lo[b, :n], hi[b, :n] = torch.as_tensor(p.lo, dtype=dtype), torch.as_tensor(p.hi, dtype=dtype)
        mask[b, :n] = True
    return X, lo, hi, mask


def _finish(starts, problems, layout, best, best_norm, start_norm, norm, done, t0) -> list[Polished]:
    """The kept iterates checked in float64 against the untightened intervals, compacted; else the starts."""
    from htmc.resnets.fit import net_norms
    with torch.no_grad():
        params = {k: t.detach().to("cpu", torch.float64).clone() for k, t in layout.views(best).items()}
        prune_dead_units(params)
    cand = [compact(to_numpy(params, b)) for b in range(len(starts))]
    viol = _violation(cand, problems)
    start_viol = _violation(starts, problems)
    wall = time.monotonic() - t0
    out = []
    for b, (s, c) in enumerate(zip(starts, cand)):
        s_norm = net_norms(s)[norm]
        ok = math.isfinite(float(best_norm[b])) and viol[b] <= max(0.0, start_viol[b])
        c_norm = net_norms(c)[norm] if ok else math.inf
        # an infeasible start (fit_trained's MSE nets; not an LP net's round-off) yields to any feasible
        # iterate, whatever its norm
        if ok and (c_norm < s_norm or (start_viol[b] > INFEASIBLE and viol[b] <= 0)):
            out.append(Polished(c, c_norm, s_norm, True, viol[b], done, wall / len(starts)))
        else:
            out.append(Polished(s, s_norm, s_norm, False, start_viol[b], done, wall / len(starts)))
    return out

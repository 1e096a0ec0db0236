"""Linear programs of fitting to a rung (issue 21 A): with the first layer of a one-block ResNet fixed, the
smallest weighted ℓ1 of its output weights subject to the verifier's interval constraints is a linear program.

Every net here has one residual block on h_0 = x - 1/2 (centring makes a unit's bias |c| as small as it can be,
and b_in enters no block_path cost):

    f(x) = Σ_i a_i relu(b_i·(x - 1/2) + c_i) + b_out

(htmc.resnets.fit.net_from_units builds it with h_0 = β(x − 1/2) and an output coordinate of its own, scaled by
α). A unit's block_path cost is then |a_i|(‖b_i‖_1/β + |c_i|)/α, so minimizing Σ ω_i |a_i| with
ω_i = ‖b_i‖_1/β + |c_i| is the block_path norm's minimum over the output weights for that (β, α) (its other
terms are dβ + α). For d = 1, f may also get a slope s·x through the skip path (Units.slope), at |s|/β (its own
term of ‖W_out‖_1) or paid by α when the units share h_0's coordinate. Simplex solutions are vertices: most a_i
are exactly 0.

- d = 1 (`lp_knots`): one unit per knot τ_j of a dyadic grid, c_j = 1/2 − τ_j. The LP's variables are the
  values at the knots (sparse: each cell reads two knots, each kink a_j is a second difference), so it stays small
  at any resolution; it is the minimum over every one-block net with kinks on that grid.
- d >= 2 (`lp_ridge`): ridge units relu(b·(x - 1/2) + c), b from a fixed set of directions, c on a grid; the LP
  is solved on an active set of cells, grown by the violated ones (cutting planes) until every cell holds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog


@dataclass
class Units:
    """One block's units (rows of B, entries of c) and output weights a, plus b_out: the LP's answer."""
    B: np.ndarray      # (r, d)
    c: np.ndarray      # (r,)
    a: np.ndarray      # (r,)
    b_out: float
    iterations: int    # simplex iterations, summed over LP solves
    solves: int
    # d = 1 only: f gets slope·x through the skip path (h_0 -> W_out), besides the units. shared: the units write
    # into h_0's own coordinate and W_out reads it at α = |slope|/β (the slope is then paid by α, which the
    # units need anyway); else W_out reads h_0 at slope/β beside the units' coordinate (fit.net_from_units).
    slope: float = 0.0
    shared: bool = False


class Infeasible(Exception):
    """No output weights meet the constraints with this first layer (the message says why)."""


def unit_costs(B: np.ndarray, c: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """ω_i = ‖b_i‖_1/β + |c_i|, a unit's block_path cost per unit of |a_i| when it reads h_0 = β(x − 1/2)."""
    return np.abs(B).sum(1) / beta + np.abs(c)


def reweighted_costs(B: np.ndarray, c: np.ndarray, beta: float, prev_a: np.ndarray, eta: float) -> np.ndarray:
    """The l1 objective's LP weights ω_i/√(|a_i| ω_i + η) at the previous solution's output weights prev_a: they
    majorize the concave per-unit cost 2√(|a_i| ω_i) (htmc.resnets.fit, step 3); plain ω when the dictionary is
    another one than prev_a's."""
    w = unit_costs(B, c, beta)
    if len(w) != len(prev_a):
        return w
    return w / np.sqrt(np.abs(prev_a) * w + eta)


def _solve(cost, A_ub, b_ub, bounds, what: str, deadline: float | None = None):
    """HiGHS dual simplex (vertex solutions: exact zeros), within the deadline; interior point when the simplex
    stops on numerical trouble (status 4)."""
    opts = {} if deadline is None else {"time_limit": max(0.5, deadline - time.monotonic())}
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs-ds", options=opts)
    if res.status == 4:
        res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs", options=opts)
    if res.status == 1:
        raise Infeasible(f"{what}: the LP ran out of time")
    if res.status == 2:
        raise Infeasible(f"{what}: the interval constraints admit no output weights")
    if res.status != 0:
        raise Infeasible(f"{what}: HiGHS stopped with status {res.status} ({res.message})")
    return res


def lp_knots(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_pieces: int, weight: np.ndarray,
             slope_weight: float | None = None, slope: float | None = None) -> Units:
    """d = 1: f(x) = s·x + Σ_j a_j relu(x − τ_j) + b_out with kinks on the grid τ_j = j/n_pieces, lo <= f(x) <= hi
    at the points x, of least Σ weight_j |a_j| + slope_weight·|s|. s is the skip path's slope (Units.slope):
    0 when neither slope_weight nor slope is given, fixed at `slope` when given, else free at slope_weight per
    unit. Variables z = (values at the n_pieces + 1 knots, u_j >= |δ a_j|, s, v >= |s|): each cell constraint
    reads two neighbouring knots, each kink three, so the LP is sparse at any resolution.
    a_0 = s_0 − s, a_j = s_j − s_{j-1}, s_j the slope on [τ_j, τ_{j+1}]; f(0) = z_0 = b_out.
    """
    K = int(n_pieces)
    if K < 1:
        raise Infeasible("no pieces")
    delta = 1.0 / K
    tau = np.arange(K + 1) * delta
    seg = np.minimum((x * K).astype(np.int64), K - 1)
    theta = x * K - seg
    n = len(x)
    rows = np.arange(n)
    F = sp.coo_matrix((np.r_[1 - theta, theta], (np.r_[rows, rows], np.r_[seg, seg + 1])), shape=(n, K + 1))
    m = K
    j = np.arange(1, m)
    # D z − δ s e_0 = δ a: row 0 is z_1 - z_0 − δ s, row j >= 1 is z_{j+1} - 2 z_j + z_{j-1}.
    D = sp.coo_matrix((np.r_[1.0, -1.0, np.ones(m - 1), np.full(m - 1, -2.0), np.ones(m - 1)],
                       (np.r_[0, 0, j, j, j], np.r_[1, 0, j + 1, j, j - 1])), shape=(m, K + 1))
    e0 = sp.coo_matrix(([-delta], ([0], [0])), shape=(m, 1))
    I = sp.identity(m)
    Z, zc, zm = sp.coo_matrix((n, m + 2)), sp.coo_matrix((m, 1)), sp.coo_matrix((1, K + 1 + m))
    sv = sp.coo_matrix(np.array([[1.0, -1.0], [-1.0, -1.0]]))     # s − v <= 0, −s − v <= 0
    A_ub = sp.vstack([sp.hstack([F, Z]), sp.hstack([-F, Z]), sp.hstack([D, -I, e0, zc]),
                      sp.hstack([-D, -I, -e0, zc]), sp.hstack([sp.vstack([zm, zm]), sv])], format="csr")
    b_ub = np.r_[hi, -lo, np.zeros(2 * m + 2)]
    free = slope_weight is not None and slope is None
    s_bounds = (None, None) if free else ((0.0, 0.0) if slope is None else (float(slope), float(slope)))
    cost = np.r_[np.zeros(K + 1), np.asarray(weight, dtype=np.float64) / delta,
                 0.0, float(slope_weight) if free else 0.0]
    res = _solve(cost, A_ub, b_ub, [(None, None)] * (K + 1) + [(0, None)] * m + [s_bounds, (0, None)],
                 f"{n} cells, {K} pieces")
    z, s = res.x[:K + 1], float(res.x[K + 1 + m])
    a = (D @ z) / delta
    a[0] -= s
    return Units(B=np.ones((m, 1)), c=0.5 - tau[:m], a=a, b_out=float(z[0]),
                 iterations=int(getattr(res, "nit", 0) or 0), solves=1, slope=s, shared=slope is not None)


def lp_dictionary(Phi: np.ndarray, lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, b_out_weight: float = 0.0,
                  deadline: float | None = None) -> tuple[np.ndarray, float, int]:
    """min Σ weight_i |a_i| + b_out_weight |b_out| s.t. lo <= Phi a + b_out <= hi; (a, b_out, iterations)."""
    n_cells, n = Phi.shape
    S = sp.csr_matrix(Phi)
    one = sp.csr_matrix(np.ones((n_cells, 1)))
    # variables (a+, a-, b+, b-) >= 0
    M = sp.hstack([S, -S, one, -one], format="csr")
    A_ub = sp.vstack([M, -M], format="csr")
    b_ub = np.r_[hi, -lo]
    cost = np.r_[weight, weight, b_out_weight, b_out_weight]
    res = _solve(cost, A_ub, b_ub, [(0, None)] * (2 * n + 2), f"{n_cells} cells, {n} units", deadline)
    x = res.x
    return x[:n] - x[n:2 * n], float(x[2 * n] - x[2 * n + 1]), int(getattr(res, "nit", 0) or 0)


def ridge_dictionary(d: int, n_offsets: int, directions: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(B, c): every direction (unit ℓ1 norm) times n_offsets offsets spread over (-1/2, 1/2], the range of
    b·(x - 1/2) on the box, so every kink crosses the domain; c = 1/2 makes a unit affine on the whole box."""
    if directions is None:
        directions = default_directions(d)
    offs = (np.arange(n_offsets) + 1.0) / n_offsets - 0.5
    B = np.repeat(directions, n_offsets, axis=0)
    c = np.tile(offs, len(directions))
    return B, c


def default_directions(d: int) -> np.ndarray:
    """±e_j and ±(e_i ± e_j)/2 for i < j: the axes and diagonals, each scaled to ‖b‖_1 = 1."""
    dirs = []
    eye = np.eye(d)
    for j in range(d):
        dirs += [eye[j], -eye[j]]
    for i in range(d):
        for j in range(i + 1, d):
            for s in (1.0, -1.0):
                v = (eye[i] + s * eye[j]) / 2
                dirs += [v, -v]
    return np.array(dirs)


def lp_cutting(Phi_all, lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, deadline: float,
               start_cells: int = 1024, seed: int = 0) -> tuple[np.ndarray, float, int, int]:
    """Cutting planes over the cells (rows of Phi_all, dense or scipy sparse): solve on an active set, add every
    violated cell, repeat until all hold. The active set's LP is a relaxation, so the answer is the LP's optimum
    over all cells. Returns (a, b_out, simplex iterations, solves)."""
    Phi_all = sp.csr_matrix(Phi_all)
    n_cells = Phi_all.shape[0]
    rng = np.random.default_rng(seed)
    active = np.zeros(n_cells, dtype=bool)
    active[rng.choice(n_cells, size=min(start_cells, n_cells), replace=False)] = True
    iters = solves = 0
    while True:
        idx = np.flatnonzero(active)
        a, b_out, it = lp_dictionary(Phi_all[idx], lo[idx], hi[idx], weight, deadline=deadline)
        iters, solves = iters + it, solves + 1
        y = Phi_all @ a + b_out
        bad = ((y < lo - 1e-12) | (y > hi + 1e-12)) & ~active
        if not bad.any():
            return a, b_out, iters, solves
        if time.monotonic() > deadline:
            raise Infeasible(f"out of time after {solves} LP solves on {int(active.sum())} of {n_cells} cells "
                             f"({int(bad.sum())} still violated)")
        active |= bad


def lp_ridge(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, B: np.ndarray, c: np.ndarray, weight: np.ndarray,
             deadline: float, start_cells: int = 1024, seed: int = 0) -> Units:
    """Ridge units relu(b_i·(x - 1/2) + c_i) on the cells x (N, d), by cutting planes (lp_cutting)."""
    a, b_out, iters, solves = lp_cutting(np.maximum((x - 0.5) @ B.T + c, 0.0), lo, hi, weight, deadline,
                                         start_cells, seed)
    return Units(B=B, c=c, a=a, b_out=b_out, iterations=iters, solves=solves)

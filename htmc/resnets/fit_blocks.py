"""d = 2 past the pyramid LP's reach (issue 21 C): at k = 8 (2^16 cells, 87k pyramids) one LP over every cell ran
out of time at 400 s, so the fit is split in two stages, each an LP of the k = 7 size or smaller:

1. **coarse:** the pyramid LP (htmc.resnets.fit_pyramid.fit_pyramids, levels <= J) on the level-J table, whose
   cell intervals are the intersections of their children's (a box range at J is the hull of its children's
   ranges). Where the intersection is empty (oscillation over 2·eps_fit) the parent asks for a value in the gap
   between its children's bounds, so the LP stays feasible (level-J pyramids interpolate any values at level-J
   midpoints).
2. **local:** block coordinate descent on the finest cells. For each dyadic square of FINE_BLOCK_CELLS cells, an
   LP re-optimizes the pyramids (any level) whose support meets no midpoint outside the block, every other weight
   fixed; a second sweep does the same on blocks moved by half a block, so pyramids straddling the first blocks
   move too. Each LP is feasible (the level-k pyramids are one per cell, 1 at its midpoint and 0 at the others),
   and a block's LP changes no other block's cells.

The scales then come from fit_pyramid.quantizable, as for the one-LP fit.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from htmc.resnets.fit_lp import Infeasible, lp_dictionary
from htmc.resnets.fit_pyramid import dictionary, fit_pyramids, ridges, unit_weights
from htmc.resnets.to_circuit import cell_points

COARSE_LEVEL = 7           # J: the coarse LP's table (2^14 cells: 1.7-16 s, fit_pyramid.START_CELLS)
FINE_BLOCK_CELLS = 1 << 12  # finest cells per local LP
PASSES = 2                 # local sweeps, the 2nd on shifted blocks (k = 7, ε = 0.1: block_path 209, 217 after one)
FIXED_OFFSET = 1e6         # the local LPs' b_out weight: the blocks may not move the shared output bias


def coarse_intervals(lo: np.ndarray, hi: np.ndarray, x: np.ndarray, level: int) -> tuple[np.ndarray, ...]:
    """(points, lo, hi) of the level-`level` cells: the intersection of their children's intervals, or the gap
    between the children's bounds where it is empty."""
    n = 1 << level
    parent = np.floor(x[:, 0] * n).astype(np.int64) * n + np.floor(x[:, 1] * n).astype(np.int64)
    plo = np.full(n * n, -np.inf)
    phi = np.full(n * n, np.inf)
    np.maximum.at(plo, parent, lo)
    np.minimum.at(phi, parent, hi)
    empty = plo > phi
    plo[empty], phi[empty] = phi[empty], plo[empty]
    g = (np.arange(n * n) // n + 0.5) / n, (np.arange(n * n) % n + 0.5) / n
    return np.stack(g, axis=1), plo, phi


def _local_columns(Phi: sp.csc_matrix, block: np.ndarray) -> list[np.ndarray]:
    """Per block, the columns of Phi whose every non-zero row lies in that block (columns with none are dropped)."""
    rows_block = block[Phi.indices]
    starts, ends = Phi.indptr[:-1], Phi.indptr[1:]
    nz = ends > starts
    first = np.where(nz, rows_block[np.minimum(starts, len(rows_block) - 1)], -1)
    same = np.ones(Phi.shape[1], dtype=bool)
    col_of = np.repeat(np.arange(Phi.shape[1]), ends - starts)
    same[col_of[rows_block != first[col_of]]] = False
    keep = nz & same
    order = np.argsort(first[keep], kind="stable")
    cols = np.flatnonzero(keep)[order]
    return np.split(cols, np.searchsorted(first[keep][order], np.arange(1, block.max() + 1)))


def two_stage(table, eps_fit: float, deadline: float, seed: int = 0, coarse: int = COARSE_LEVEL,
              block_cells: int = FINE_BLOCK_CELLS):
    """(a, b_out, units, iterations, solves) as fit_pyramid.fit_pyramids, for a table finer than `coarse`: the
    coarse LP with pyramid levels <= coarse, then PASSES sweeps of local LPs over blocks of block_cells cells,
    every other sweep on blocks moved by half a block."""
    k = table.k
    x = cell_points(table)
    lo, hi = table.hi - eps_fit, table.lo + eps_fit
    xc, clo, chi = coarse_intervals(lo, hi, x, coarse)
    a0, b_out, _, iters, solves = fit_pyramids(xc, clo, chi, coarse, deadline, seed=seed)
    Phi, units = dictionary(x, range(1, k + 1))       # levels 1..coarse first, in fit_pyramids' order
    a = np.zeros(Phi.shape[1])
    a[:len(a0)] = a0
    nr = len(ridges()[1])
    w = unit_weights(units)
    Phi = Phi.tocsc()
    level = np.array([u[0] for u in units])
    B = max(0, k - int(np.log2(block_cells)) // 2)
    for p in range(PASSES):
        block = _blocks(x, B, shifted=p % 2 == 1)
        it, so = _local_pass(Phi, a, b_out, lo, hi, w, block, nr, deadline, level)
        iters, solves = iters + it, solves + so
    return a, b_out, units, iters, solves


def _blocks(x: np.ndarray, B: int, shifted: bool) -> np.ndarray:
    """Block id per cell: dyadic squares of side 2^-B, or (shifted) the same grid moved by half a block."""
    nb = 1 << B
    i = np.floor(x * nb + (0.5 if shifted else 0.0)).astype(np.int64)
    return i[:, 0] * (nb + 1) + i[:, 1]


def _local_lp(sub, lo, hi, w, level, deadline):
    """The block's LP without its finest level first (the finest pyramids' hats cost most, and the one-LP fit
    found the k − 1 dictionary cheaper, fit_pyramid.pyramid_candidates), with it where that is infeasible."""
    top = level.max()
    coarse = np.flatnonzero(level < top)
    try:
        ab, off, it = lp_dictionary(sub[:, coarse], lo, hi, w[coarse], FIXED_OFFSET, deadline)
        full = np.zeros(sub.shape[1])
        full[coarse] = ab
        return full, off, it
    except Infeasible:
        return lp_dictionary(sub, lo, hi, w, FIXED_OFFSET, deadline)


def _local_pass(Phi: sp.csc_matrix, a: np.ndarray, b_out: float, lo, hi, w, block, nr: int, deadline: float,
                level: np.ndarray):
    """One sweep of block coordinate descent: per block, the least Σ w|a| of its local pyramids (every other
    weight fixed) that keeps the block's cells within [lo, hi]. In place on a; (iterations, solves)."""
    y = Phi @ a + b_out
    iters = solves = 0
    pyr = Phi[:, nr:]
    groups = _local_columns(pyr, block)
    for b, cols in enumerate(groups):
        if not len(cols):
            continue
        if time.monotonic() > deadline:
            raise Infeasible(f"out of time after {solves} local LPs")
        cols = cols + nr
        rows = np.flatnonzero(block == b)
        sub = Phi[rows][:, cols]
        rest = y[rows] - sub @ a[cols]
        ab, off, it = _local_lp(sub, lo[rows] - rest, hi[rows] - rest, w[cols], level[cols - nr], deadline)
        if off != 0.0:
            raise Infeasible(f"block {b}: the local LP moved the output bias by {off:.3g}")
        y[rows] = rest + sub @ ab
        a[cols] = ab
        iters, solves = iters + it, solves + 1
    return iters, solves

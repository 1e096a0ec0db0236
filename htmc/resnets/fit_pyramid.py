"""d = 2 fits with localized units (issue 21 A): a ridge unit relu(b·x + c) is never local in 2-D, and a rough
Hölder target needs about ε^(-d/s) local pieces, so a one-block net of ridges needs far more units than that. Two
residual blocks give local units:

- block 0 writes 1-D hats H^L_m(x_j) = relu(1 − |x_j − τ^L_m|/δ_L) into coordinates of their own, each a sum of
  three knot units (τ^L_m = (m + 1/2) 2^-L, the level-L cell midpoints, δ_L = 2^-L);
- block 1 has one unit per pyramid φ^L_{mn}(x) = relu(H^L_m(x_0) + H^L_n(x_1) − 1), which is 1 at the node
  (τ_m, τ_n), 0 at every other node of its level, and supported on the square of side 2δ_L around it.

At the finest level L = k the nodes are the cell midpoints, so the pyramids interpolate any values there: the LP
is feasible whenever every cell's interval is non-empty. The dictionary holds the levels L0..k together (a
multilevel basis, like the Faber–Schauder series of holder_random), plus the affine units x_j and 1 − x_j; the
LP (htmc.resnets.fit_lp.lp_cutting) picks a sparse set. Block 0's cost is a fixed cost per hat used, which an LP
cannot price; it is added after the LP, and the hats' height s is then chosen to balance the two blocks (block 0
scales with s, block 1 with 1/s; the function does not change).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from htmc.resnets.fit_lp import lp_cutting

PYRAMID_C = -1.0          # block 1's bias: φ = relu(H_m + H_n − 1)
N_AFFINE = 4              # relu(±(x_j − 1/2) + 1/2): x_j and 1 − x_j, affine on the box
LEVEL_PRICE = 4.0
RIDGE_OFFSETS = 4         # block-1 ridge units per direction (axes and diagonals): cheap where f is smooth


def _hats_at(xj: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the two level-L hats that can be non-zero there: (indices (N, 2), values (N, 2))."""
    n = 1 << L
    m0 = np.floor(xj * n - 0.5).astype(np.int64)
    idx = np.stack([m0, m0 + 1], axis=1)
    val = np.maximum(1.0 - np.abs(xj[:, None] * n - (idx + 0.5)), 0.0)
    val[(idx < 0) | (idx >= n)] = 0.0
    return np.clip(idx, 0, n - 1), val


def ridges() -> tuple[np.ndarray, np.ndarray]:
    """(B, c) of block 1's ridge units on h_j = x_j − 1/2: the affine units first, then RIDGE_OFFSETS kinks per
    direction of htmc.resnets.fit_lp.default_directions."""
    from htmc.resnets.fit_lp import ridge_dictionary
    Ba = np.array([[1.0, 0], [-1.0, 0], [0, 1.0], [0, -1.0]])
    B, c = ridge_dictionary(2, RIDGE_OFFSETS)
    keep = c < 0.5                                   # the c = 1/2 ones are the affine units again
    return np.r_[Ba, B[keep]], np.r_[np.full(N_AFFINE, 0.5), c[keep]]


def dictionary(x: np.ndarray, levels: range) -> tuple[sp.csr_matrix, list[tuple[int, int, int]]]:
    """Phi (cells x units) of the ridge units then the pyramids of every level; the pyramids as (L, m, n)."""
    rows, cols, vals = [], [], []
    cells = np.arange(len(x))
    RB, Rc = ridges()
    R = np.maximum((x - 0.5) @ RB.T + Rc, 0.0)
    for i in range(len(Rc)):
        keep = R[:, i] > 0
        rows.append(cells[keep])
        cols.append(np.full(int(keep.sum()), i))
        vals.append(R[keep, i])
    units: list[tuple[int, int, int]] = []
    offset = len(Rc)
    for L in levels:
        n = 1 << L
        i0, v0 = _hats_at(x[:, 0], L)
        i1, v1 = _hats_at(x[:, 1], L)
        for p in range(2):
            for q in range(2):
                v = np.maximum(v0[:, p] + v1[:, q] + PYRAMID_C, 0.0)
                keep = v > 0
                rows.append(cells[keep])
                cols.append(offset + i0[keep, p] * n + i1[keep, q])
                vals.append(v[keep])
        units += [(L, m, q) for m in range(n) for q in range(n)]
        offset += n * n
    Phi = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(len(x), offset)).tocsr()
    Phi.sum_duplicates()
    return Phi, units


def unit_weights(units: list[tuple[int, int, int]]) -> np.ndarray:
    """LP weight per unit: ridges ‖b‖_1 + |c| (their block_path cost per |a|); a level-L pyramid 1 + 1 + |c| = 3,
    times (1 + 2^L / LEVEL_PRICE): its hats cost block 0 about 5·2^L each (slopes 1/δ_L), a fixed cost the LP
    cannot see, so finer levels are priced up (measured: without it the LP prefers fine pyramids to ridges)."""
    RB, Rc = ridges()
    L = np.array([u[0] for u in units], dtype=np.float64)
    return np.r_[np.abs(RB).sum(1) + np.abs(Rc), (2.0 + abs(PYRAMID_C)) * (1 + 2.0 ** L / LEVEL_PRICE)]


def fit_pyramids(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, finest: int, deadline: float, seed: int = 0,
                 coarsest: int = 1):
    """LP over the ridges and the pyramids of levels coarsest..finest for the cells x; (a, b_out, units, iters,
    solves). lo/hi bound f."""
    Phi, units = dictionary(x, range(coarsest, finest + 1))
    a, b_out, iters, solves = lp_cutting(Phi, lo, hi, unit_weights(units), deadline,
                                         start_cells=min(len(x), 2048), seed=seed)
    return a, b_out, units, iters, solves


def build_net(a: np.ndarray, b_out: float, units: list[tuple[int, int, int]], s: float = 1.0, alpha: float = 1.0,
              prune: float = 1e-9) -> dict:
    """The two-block net of the module docstring for output weights a (ridge units first), hats of height s, and
    W_out = α e_2: coordinate 2 of the stream is the output's own (the skip path adds nothing to f)."""
    a = np.where(np.abs(a) <= prune * max(np.abs(a).max(initial=0.0), 1e-300), 0.0, a)
    RB, Rc = ridges()
    nr = len(Rc)
    rid = [(RB[i], Rc[i], a[i]) for i in np.flatnonzero(a[:nr])]
    pyr = [(units[i], a[nr + i]) for i in np.flatnonzero(a[nr:])]
    hats = sorted({(0, L, m) for (L, m, _), _ in pyr} | {(1, L, n) for (L, _, n), _ in pyr})
    hat_col = {hk: 3 + i for i, hk in enumerate(hats)}
    knots = sorted({(j, L, m + t) for (j, L, m) in hats for t in (-1, 0, 1)})
    knot_col = {kk: i for i, kk in enumerate(knots)}
    w = 3 + len(hats)
    r = max(len(knots), len(pyr) + len(rid), 1)
    A = np.zeros((2, w, r))
    B = np.zeros((2, r, w))
    c = np.zeros((2, r))
    for (j, L, m), u in knot_col.items():          # block 0: knot units relu(x_j − τ), τ = (m + 1/2 − 1) δ .. edges
        delta = 2.0 ** -L
        tau = (m + 0.5) * delta
        B[0, u, j] = 1.0
        c[0, u] = 0.5 - tau                          # reads h0_j = x_j − 1/2
        for t, coef in ((-1, 1.0), (0, -2.0), (1, 1.0)):   # hat m' = m − t uses knot m with weight coef
            hk = (j, L, m - t)
            if hk in hat_col:
                A[0, hat_col[hk], u] += s * coef / delta
    for i, ((L, m, n), av) in enumerate(pyr):      # block 1: pyramids, reading two hats of height s
        B[1, i, hat_col[(0, L, m)]] = 1.0
        B[1, i, hat_col[(1, L, n)]] = 1.0
        c[1, i] = PYRAMID_C * s
        A[1, 2, i] = av / s / alpha
    for q, (b, cq, av) in enumerate(rid):           # block 1: the ridge units on h_0, h_1
        i = len(pyr) + q
        B[1, i, :2] = b
        c[1, i] = cq
        A[1, 2, i] = av / alpha
    W_in = np.zeros((w, 2))
    W_in[0, 0] = W_in[1, 1] = 1.0
    b_in = np.zeros(w)
    b_in[:2] = -0.5
    W_out = np.zeros((1, w))
    W_out[0, 2] = alpha
    return {"W_in": W_in, "b_in": b_in, "A": A, "B": B, "c": c, "W_out": W_out, "b_out": np.array([b_out])}

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

import time

import numpy as np
import scipy.sparse as sp

from htmc.resnets.fit_lp import Infeasible, lp_cutting
from htmc.resnets.to_circuit import cell_points

PYRAMID_C = -1.0          # block 1's bias: φ = relu(H_m + H_n − 1)
N_AFFINE = 4              # relu(±(x_j − 1/2) + 1/2): x_j and 1 − x_j, affine on the box
LEVEL_PRICE = 4.0
RIDGE_OFFSETS = 4         # block-1 ridge units per direction (axes and diagonals): cheap where f is smooth
START_CELLS = 1 << 16     # the LP's first cut: every cell up to k = 8 (at k = 7 one solve on all 2^14 cells took 4.5 s,
                          # cutting planes from 2,048 of them 15.7 s in 7 solves, to the same optimum; issue 21 C)
INPUT_SCALES = (1.0, 2.0, 4.0, 8.0)                  # β of build_net
HEIGHTS = 2.0 ** np.arange(-14.0, 2.25, 0.25)        # hat heights s
TALLER = 6                # hat heights tried, doubling from the least-norm one, until one keeps its bits


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
    a, b_out, iters, solves = lp_cutting(Phi, lo, hi, unit_weights(units), deadline, start_cells=START_CELLS,
                                         seed=seed)
    return a, b_out, units, iters, solves


def build_net(a: np.ndarray, b_out: float, units: list[tuple[int, int, int]], s: float = 1.0, alpha: float = 1.0,
              prune: float = 1e-9, beta: float = 1.0) -> dict:
    """The two-block net of the module docstring for output weights a (ridge units first), hats of height s,
    W_out = α e_2 (coordinate 2 of the stream is the output's own: the skip path adds nothing to f) and the input
    scale h_0 = β(x − 1/2). A knot unit relu(x_j − τ) = relu(h_j + β(1/2 − τ))/β then costs |A|(1/β + |1/2 − τ|)
    instead of |A|(1 + |1/2 − τ|), for 2β more in W_in: block 0's hats are most of the norm (issue 21 C)."""
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
        c[0, u] = beta * (0.5 - tau)                 # reads h0_j = β(x_j − 1/2)
        for t, coef in ((-1, 1.0), (0, -2.0), (1, 1.0)):   # hat m' = m − t uses knot m with weight coef
            hk = (j, L, m - t)
            if hk in hat_col:
                A[0, hat_col[hk], u] += s * coef / delta / beta
    for i, ((L, m, n), av) in enumerate(pyr):      # block 1: pyramids, reading two hats of height s
        B[1, i, hat_col[(0, L, m)]] = 1.0
        B[1, i, hat_col[(1, L, n)]] = 1.0
        c[1, i] = PYRAMID_C * s
        A[1, 2, i] = av / s / alpha
    for q, (b, cq, av) in enumerate(rid):           # block 1: the ridge units on h_0, h_1
        i = len(pyr) + q
        B[1, i, :2] = b / beta
        c[1, i] = cq
        A[1, 2, i] = av / alpha
    W_in = np.zeros((w, 2))
    W_in[0, 0] = W_in[1, 1] = beta
    b_in = np.zeros(w)
    b_in[:2] = -beta / 2
    W_out = np.zeros((1, w))
    W_out[0, 2] = alpha
    return {"W_in": W_in, "b_in": b_in, "A": A, "B": B, "c": c, "W_out": W_out, "b_out": np.array([b_out])}


def objective(nets: list[dict], norm: str) -> np.ndarray:
    """The registry's norm `norm` of nets of one shape, in one batched call."""
    from htmc.resnets.model import from_numpy
    from htmc.resnets.norms import NORMS
    return NORMS.get(norm)(from_numpy(nets)).numpy()


def norm_model(a, b_out, units, norm: str, beta: float) -> np.ndarray:
    """(K, H, Q, R) with objective(build_net(.., s, α, beta=β)) = K + α + s H + (Q/s + R)/α for every s, α > 0.
    For block_path and l1 this is exact: α is ‖W_out‖_1, block 0's hats scale with s, a pyramid's output weight
    is a/(sα) and its bias s, a ridge's output weight a/α; so five evaluations fix it (one batched call) and the
    best (s, α) costs no more net builds (a grid of them took ~8 s of a k = 7 rung, issue 21 C)."""
    pts = ((1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (2.0, 2.0), (0.5, 3.0))
    F = objective([build_net(a, b_out, units, s, al, beta=beta) for s, al in pts], norm)
    M = np.array([[1.0, s, 1.0 / (s * al), 1.0 / al] for s, al in pts])
    rhs = F - np.array([al for _, al in pts])
    coef = np.linalg.lstsq(M, rhs, rcond=None)[0]
    if np.abs(M @ coef - rhs).max() > 1e-9 * max(1.0, np.abs(rhs).max()):
        raise RuntimeError(f"norm '{norm}' is not of the form K + α + sH + (Q/s + R)/α on pyramid nets")
    return coef


def scale_options(a, b_out, units, norm: str) -> list[tuple[float, float, float, float]]:
    """(objective, s, α, β) for each hat height s in HEIGHTS at its best β in INPUT_SCALES and α = √(Q/s + R)
    (norm_model), least objective first."""
    best: dict[float, tuple[float, float, float, float]] = {}
    for beta in INPUT_SCALES:
        K, H, Q, R = norm_model(a, b_out, units, norm, beta)
        for s in HEIGHTS:
            al = float(np.sqrt(max(Q / s + R, 0.0))) or 1.0
            v = float(K + al + s * H + (Q / s + R) / al)
            if s not in best or v < best[s][0]:
                best[s] = (v, float(s), al, beta)
    return sorted(best.values())


def quantizable(a, b_out, units, norm: str, table, eps: float) -> tuple[dict, list[dict]]:
    """The least-norm scales (scale_options) whose net emulates within eps at some of the compiler's bits
    (bit_search.emulates_within), and two
    taller ones as alternates. Hats of height s keep about log2(1/s) fewer of their bits (the norm's optimum is
    near s = 2^-8 at ε = 0.1, k = 7, where 16 bits reach 0.092 of 0.1, and 2^-10 is over): so from the least-norm
    s the height doubles, at most TALLER times, each at its own best α and β, until one passes (issue 21 C).
    When none does, the least-norm net and the tallest tried."""
    opts = scale_options(a, b_out, units, norm)
    ladder = [opts[0]]
    for j in range(1, TALLER + 1):
        up = [o for o in opts if o[1] >= opts[0][1] * 2.0 ** j]
        if up:
            ladder.append(up[0])
    from htmc.resnets.bit_search import emulates_within
    nets = [build_net(a, b_out, units, s, al, beta=be) for _, s, al, be in ladder]
    for i, net in enumerate(nets):
        if emulates_within(net, table, eps):
            return net, nets[i + 1:i + 3]
    return nets[0], nets[-1:]


PYRAMID_TRIES = 8          # d = 2: dictionaries tried, by their finest level: k − 1, k, k − 2, ... (pyramid_candidates)
PYRAMID_PROBE = 1.0        # ... from k − 2 on within this many times the first solve's seconds (at least 2 s)


def pyramid_candidates(table, eps_fit: float, eps_bits: float, norm: str, deadline: float, seed: int, res):
    """d = 2: two-block nets of ridges and multilevel pyramids (htmc.resnets.fit_pyramid), each at the least-norm
    scales (hat height, output and input scale) whose net keeps its bits. Dictionaries by their finest level: k − 1
    first, in half the time left (often feasible, and cheaper: holder_random d=2 s=0.75 at ε = 0.1, k = 7: norm
    313 with 946 units against 390 with 1,063 at k, where the LP's level prices mislead it); then k, where the
    pyramids interpolate any midpoint values, so the LP is feasible whenever every interval is non-empty (one
    solve, 1.7-7 s at k = 7); then k − 2, k − 3, ... until one is infeasible (at ε = 0.4, s = 0.75, k = 4: norm
    12.3 against 14.0 from levels <= 3 and 4 alone), each within the first solve's time, as proving a dictionary
    infeasible took HiGHS up to 11 s (numerical trouble, status 4). Issue 21 C. Called by
    htmc.resnets.fit (res: its FitResult, which gets the notes, LP iterations and solves)."""
    from htmc.resnets.fit_blocks import COARSE_LEVEL, two_stage
    if table.k > COARSE_LEVEL:             # one LP over every cell is out of reach: coarse, then block by block
        try:
            a, b_out, units, iters, solves = two_stage(table, eps_fit, deadline, seed)
        except Infeasible as e:
            res.notes.append(f"k={table.k}, two stages: {e}")
            return
        res.steps += iters
        res.solves += solves
        yield quantizable(a, b_out, units, norm, table, eps_bits)
        return
    x = cell_points(table)
    lo, hi = table.hi - eps_fit, table.lo + eps_fit
    probe, coarse_ok = None, False
    for fin in [f for f in (table.k - 1, table.k, *range(table.k - 2, 0, -1))[:PYRAMID_TRIES] if f >= 1]:
        now = time.monotonic()
        if now > deadline or (fin < table.k - 1 and not coarse_ok):
            break
        limit = (now + (deadline - now) / 2 if fin == table.k - 1 else
                 deadline if fin == table.k or probe is None else min(deadline, now + probe))
        try:
            a, b_out, units, iters, solves = fit_pyramids(x, lo, hi, fin, limit, seed=seed)
        except Infeasible as e:
            res.notes.append(f"k={table.k}, pyramid levels <= {fin}: {e}")
            coarse_ok = coarse_ok and fin >= table.k - 1     # coarser than an infeasible one: infeasible too
            continue
        coarse_ok = coarse_ok or fin == table.k - 1
        probe = probe or max(2.0, PYRAMID_PROBE * (time.monotonic() - now))
        res.steps += iters
        res.solves += solves
        # the least-norm scales whose net keeps its bits within eps_bits
        yield quantizable(a, b_out, units, norm, table, eps_bits)

"""Targets that are networks: relu_ridges (Barron-type ridges) and resnet_teacher (a random sparse ResNet)."""
from __future__ import annotations

import numpy as np

from htmc.resnets.numpy_net import forward_numpy

from .base import (MAX_CELLS_PER_CHUNK, Target, float_param, gamma_n, int_param, outward, register_function,
                   rounding_bound)

# ----------------------------------------------------------------------------------------------------------------
# relu_ridges: Barron-type
# ----------------------------------------------------------------------------------------------------------------

def _chunks(n: int, d: int, width: int):
    """Slices of the cell range sized so that (cells x width x d) work arrays stay around 4 MiB."""
    step = max(1024, MAX_CELLS_PER_CHUNK * 8 // max(1, width * d))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _dot_small(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """M (p, q) @ X (q, n) as q broadcast multiply-adds, skipping zero columns of M (sparse weights).

    These products are skinny (q is d, a width or a rank; n is cells): BLAS gains nothing there, and its thread
    start-up cost 10x the arithmetic on a loaded machine.
    """
    out = np.zeros((M.shape[0], X.shape[1]))
    for i in np.flatnonzero(np.any(M != 0, axis=0)):
        out += M[:, i, None] * X[i][None, :]
    return out


def _relu_slopes(zlo: np.ndarray, zhi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zonotope (DeepZ) relaxation of relu on [zlo, zhi] (Singh et al., NeurIPS 2018): relu(z) in lam z + [0, t].

    lam = clip(zhi / (zhi - zlo), 0, 1): 1 where the unit is active on the whole interval (zlo >= 0), 0 where it
    is dead (zhi <= 0), the chord's slope where the kink lies inside. The relaxation is sound for ANY lam in
    [0, 1], so lam's own rounding does no harm: relu(z) - lam z is convex and >= 0, so on [zlo, zhi] it lies in
    [0, t] with t = max((1 - lam) zhi, -lam zlo, 0), its larger end value (0 for active and dead units; the two
    terms agree for the exact chord slope). The caller bounds t's rounding.
    """
    width = zhi - zlo
    lam = np.where(width > 0, zhi / np.where(width > 0, width, 1.0), (zlo >= 0).astype(np.float64))
    lam = np.clip(lam, 0.0, 1.0)
    return lam, np.maximum(np.maximum((1.0 - lam) * zhi, -lam * zlo), 0.0)


def _chunk_codes(d: int, k: int, sl: slice) -> np.ndarray:
    """Per-coordinate codes of cells sl.start..sl.stop-1 (the rows of cell_index_grid, without building it all)."""
    c = np.arange(sl.start, sl.stop, dtype=np.int64)
    return np.stack([(c >> (k * (d - 1 - j))) & ((1 << k) - 1) for j in range(d)], axis=1)


@register_function("relu_ridges", version="2")
class ReluRidges(Target):
    """(1/Z) sum_i a_i relu(w_i . (x - z_i)) on [0,1]^d, values in [-1,1].

    a_i = +-1/m random signs, w_i Gaussian directions normalised to ||w_i||_1 = 1, z_i uniform in [0,1]^d, so
    every kink crosses the cube and |relu| <= 1. Z is the rigorous sup bound max_c max(|lo_c|, |hi_c|) of the
    unnormalised sum at k = 10 // d, so |f| <= 1 (the random signs cancel to ~m^-1/2 otherwise).
    Why: a shallow ReLU network, the Barron-type case. With m fixed, f is piecewise linear: a circuit computes
    the m dot products and ReLUs in fixed point with O(log 1/eps) bits, so C(f, eps) = m polylog(1/eps):
    gamma_theory = None. The power law belongs to the hull as m grows (the variation space of ReLU ridges, the
    Barron class): n ridges approximate it to n^-(d+3)/(2d) and no better (Siegel and Xu 2022, "Sharp bounds on
    the approximation rates, metric entropy, and n-widths of shallow neural networks", in L2; the same rate holds
    in the sup norm, Siegel 2023, "Optimal approximation of zonoids and uniform approximation by shallow neural
    networks"), so its rate is gamma = 2d/(d+3): 1/2 for d = 1, 4/5 for d = 2, reaching 2 (Maurey's
    dimension-free m^-1/2) only as d -> infinity. A large m can show that rate pre-asymptotically, while eps is
    above the finite sum's own resolution.
    Ranges: exact in exact arithmetic on cells that no kink crosses (f is linear there: the range of one linear
    form over a box); a ridge whose kink crosses the cell enters through the zonotope relaxation of relu
    (_relu_slopes; rigorous, not exact). Rounding: every term of the float sums is a_i times a quantity bounded by
    S_i = ||w_i||_1 + |b_i| (b_i = -w_i . z_i), the longest sum has m terms and the preactivations d + 1, so the
    computed ends are within 8 gamma_(m+d+6) sum_i |a_i| S_i of the exact ones (derived in _ranges; Higham's
    gamma_n, see gamma_n): about 2^-39 for m = 64 and 2^-31 for m = 4096 (d = 2, seed 0). Widened by that.
    Version 2: gamma_theory None (was 2, the Maurey rate of the hull, not of the fixed-m function), and the ranges'
    pad is derived from m (was a fixed 2^-44, too small for large m).
    """

    def __init__(self, m: int = 64, d: int = 2, seed: int = 0):
        m = int_param("m", m, 1, 1 << 16)
        d = int_param("d", d, 1, 16)
        seed = int_param("seed", seed, 0)
        self.d = d
        self.params = {"m": m, "d": d, "seed": seed}
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((m, d))
        self.w = w / np.abs(w).sum(axis=1, keepdims=True)
        self.b = -np.einsum("md,md->m", self.w, rng.uniform(0.0, 1.0, (m, d)))
        self.a = rng.choice((-1.0, 1.0), m) / m
        lo, hi = self._ranges(max(1, 10 // d))
        self.a = self.a / (max(float(np.abs(lo).max()), float(np.abs(hi).max())) or 1.0)

    def _eval(self, x):
        return np.maximum(_dot_small(x, self.w.T) + self.b, 0.0) @ self.a

    def formula(self):
        """sum_i +-relu(|a_i| (w_i . x + b_i)), for structured synthesis (htmc.synthesis.expr; the `datapath`
        method). a relu(z) = sign(a) relu(|a| z) saves each ridge its output multiplier (m=4, k=7, eps=2^-5:
        554 gates against 822 with a_i outside)."""
        from htmc.synthesis.expr import relu, total, x

        def ridge(a, row, b):
            r = relu(total([float(abs(a) * w) * x(j) for j, w in enumerate(row)] + [float(abs(a) * b)]))
            return r if a > 0 else -r
        return total(ridge(a, row, b) for a, row, b in zip(self.a, self.w, self.b))

    def _ranges(self, k):
        n = 1 << (self.d * k)
        lo, hi = np.empty(n), np.empty(n)
        for sl in _chunks(n, self.d, len(self.a)):
            lo[sl], hi[sl] = self._ranges_chunk(k, sl)
        # Rounding (u = 2^-53, A = sum_i |a_i| S_i). Preactivation zc = fl(w . mid + b) is within gamma_(d+1) S_i,
        # the radius within gamma_d S_i / 2 and their sum and difference round once more: t (1-Lipschitz in its
        # ends; two more roundings) is within 2 gamma_(d+6) S_i. The cell's linear part sums m terms
        # lam_i a_i (w_i . mid + b_i): gamma_(m+d+3) A; its radius rad ||g||_1 (rad <= 1/2): gamma_(m+d+1) A / 2;
        # sum_i a_i [0, t_i] (t_i <= 1.5 S_i): 2 gamma_(d+6) A + 1.5 gamma_m A; the two final additions of
        # values up to 3 A: 6 u A. All below 6 gamma_(m+d+6) A; 8 covers the second-order terms.
        size = float(np.abs(self.a) @ (np.abs(self.w).sum(axis=1) + np.abs(self.b)))  # A
        return outward(lo, hi, 8.0 * gamma_n(len(self.a) + self.d + 6) * size)

    def _ranges_chunk(self, k, sl):
        codes = _chunk_codes(self.d, k, sl).astype(np.float64)
        rad = 2.0 ** -(k + 1)
        mid = (codes + 0.5) * 2.0 ** -k
        zc = _dot_small(mid, self.w.T) + self.b           # (N, m) preactivation at the cell centre
        zr = rad * np.abs(self.w).sum(axis=1)             # its radius over the cell (same for all cells)
        # relu(z_i) in lam_i z_i + [0, t_i]: exact for ridges active or dead on the whole cell, the zonotope
        # relaxation where the kink crosses it. The lam-parts sum to one linear form g . x + c: exact range.
        # _relu_slopes, specialised (zhi - zlo = 2 zr > 0 is known; 4x faster on these (cells, m) arrays): with
        # lam's rounding t = max(-lam zlo, 0) may fall short of _relu_slopes' t by |lam - chord slope| 2 zr
        # <= 6 u zr, inside the 2 gamma_(d+6) S_i allowed for t in _ranges.
        lam = np.clip((zc + zr) * (0.5 / zr), 0.0, 1.0)
        t = np.maximum(lam * (zr - zc), 0.0)
        coef = lam * self.a                                # (N, m)
        g = np.stack([coef @ self.w[:, j] for j in range(self.d)], axis=1)  # (N, d)
        lin_c = np.einsum("nd,nd->n", g, mid) + coef @ self.b
        lin_r = rad * np.abs(g).sum(axis=1)
        top = t * self.a                                   # a_i [0, t_i]
        klo, khi = np.minimum(top, 0.0).sum(axis=1), np.maximum(top, 0.0).sum(axis=1)
        return lin_c - lin_r + klo, lin_c + lin_r + khi



# ----------------------------------------------------------------------------------------------------------------
# resnet_teacher: a random sparse ResNet (DESIGN §2.4), in numpy
# ----------------------------------------------------------------------------------------------------------------

@register_function("resnet_teacher", version="2")
class ResNetTeacher(Target):
    """A random sparse ResNet of DESIGN §2.4 on [0,1]^d, output rescaled into [-1,1].

    h_0 = W_in x + b_in;  h_{l+1} = h_l + A_l relu(B_l h_l + c_l);  f = W_out h_L + b_out.
    Each weight of W_in, A_l, B_l is non-zero with probability `density`; values are Gaussian with variance
    1/(density fan_in). W_out and b_out are then set so that the union of the rigorous cell ranges at
    k = 10 // d is [-1,1], so |f| <= 1 (`self.weights` holds the final arrays: every ResNet norm of the teacher
    is known exactly).
    Why: the sandwich experiment (DESIGN §1, §2.4) needs a target whose ResNet norm is known. A fixed ReLU
    network is piecewise linear with finitely many pieces, and the network itself, run in fixed point with
    O(log 1/eps) bits per value, is a circuit of width rank depth polylog(1/eps) gates: C is polylog,
    gamma_theory = None.
    Ranges: affine arithmetic through the network, vectorized over cells: each hidden unit is an affine form in
    the cell's coordinates plus an error interval; certainly-active / certainly-dead ReLUs are exact, straddling
    ones use the zonotope relaxation relu(z) in lambda z + [0, t] (_relu_slopes; Singh et al. 2018). Exact on
    cells where no ReLU changes sign, in exact arithmetic. Rounding: every step adds a bound on its own rounding
    error to the units' error intervals (gamma_n of its dot products' lengths times the magnitudes of their terms,
    rounding_bound), so the errors propagate through the later layers like any other width of the forms, and the
    ranges enclose the exact network of the float weights at any depth and width.
    Version 2: version 1 widened the output by a fixed 2^-44 instead of propagating rounding through the layers.
    """

    def __init__(self, width: int = 8, depth: int = 3, rank: int = 2, seed: int = 0, d: int = 2,
                 density: float = 0.5):
        width = int_param("width", width, 1, 4096)
        depth = int_param("depth", depth, 0, 256)
        rank = int_param("rank", rank, 1, 4096)
        seed = int_param("seed", seed, 0)
        d = int_param("d", d, 1, 16)
        density = float_param("density", density, lo=0.0, hi=1.0, lo_open=True)
        self.d = d
        self.params = {"width": width, "depth": depth, "rank": rank, "seed": seed, "d": d, "density": density}
        self.weights = self._random_weights(np.random.default_rng(seed))
        self._normalise_output()

    def _random_weights(self, rng) -> dict:
        p = self.params
        w, r, dens = p["width"], p["rank"], p["density"]

        def sparse(rows, cols, scale=1.0):
            mask = rng.random((rows, cols)) < dens
            return mask * rng.standard_normal((rows, cols)) * scale / np.sqrt(dens * cols)

        return {
            "W_in": sparse(w, p["d"]), "b_in": rng.standard_normal(w) * 0.5,
            "A": [sparse(w, r, 1.0 / np.sqrt(max(1, p["depth"]))) for _ in range(p["depth"])],
            "B": [sparse(r, w) for _ in range(p["depth"])],
            "c": [rng.standard_normal(r) * 0.5 for _ in range(p["depth"])],
            "W_out": rng.standard_normal((1, w)) / np.sqrt(w), "b_out": np.zeros(1),
        }

    def _normalise_output(self):
        k = max(1, 10 // self.d)
        lo, hi = self._ranges(k)
        lo_all, hi_all = float(lo.min()), float(hi.max())
        half = 0.5 * (hi_all - lo_all) or 1.0
        wt = self.weights
        wt["b_out"] = (wt["b_out"] - 0.5 * (lo_all + hi_all)) / half
        wt["W_out"] = wt["W_out"] / half

    def _eval(self, x):
        return forward_numpy(self.weights, x)  # the model's own forward pass: the teacher is such a net

    def _ranges(self, k):
        n = 1 << (self.d * k)
        lo, hi = np.empty(n), np.empty(n)
        for sl in _chunks(n, self.d, self.params["width"]):
            lo[sl], hi[sl] = self._affine_ranges(k, sl)
        return lo, hi

    def _affine_ranges(self, k, sl):
        """Affine arithmetic: unit i on a cell is m_i + G_i . u + [-e_i, e_i], u in [-1,1]^d the cell's local
        coordinates. Units-first layout: m, e are (units, N); G is (units, N d), entry n d + j for cell n, u_j.

        Invariant: every exact h(x), x in the cell, lies in its unit's form. Each step keeps it by adding to e a
        first-order bound on its rounding, gamma_n times the step on absolute values (rounding_bound, Higham's (3.4));
        a rounding of a G entry moves the form by at most that entry's error over u in [-1,1]^d.
        """
        wt, d, w, r = self.weights, self.d, self.params["width"], self.params["rank"]
        mid = (_chunk_codes(d, k, sl) + 0.5) * 2.0 ** -k
        n = len(mid)

        def radius(G):  # sum_j |G_ij| per unit and cell: how far the linear part moves over the cell
            out = np.abs(G[:, 0::d])  # strided adds: a sum over a length-d last axis is 10x slower
            for j in range(1, d):
                out += np.abs(G[:, j::d])
            return out

        m = _dot_small(wt["W_in"], mid.T) + wt["b_in"][:, None]  # d + 1 terms, mid in [0,1]^d
        G = np.tile(wt["W_in"] * 2.0 ** -(k + 1), (1, n))          # exact: a power-of-2 scaling
        e0 = rounding_bound(d + 1, np.abs(wt["W_in"]).sum(axis=1) + np.abs(wt["b_in"]))
        e = np.repeat(e0[:, None], n, axis=1)
        for A, B, c in zip(wt["A"], wt["B"], wt["c"]):
            absA, absB = np.abs(A), np.abs(B)
            h_mag = np.abs(m) + radius(G) + e            # bounds |h| over the cell
            # z = B h + c: w + 1 terms; B e itself is computed low by up to gamma_w |B| e, hence the e in h_mag
            zm, zG = _dot_small(B, m) + c[:, None], _dot_small(B, G)
            ze = _dot_small(absB, e) + rounding_bound(w + 2, _dot_small(absB, h_mag) + np.abs(c)[:, None])
            zG_r = radius(zG)
            zr = zG_r + ze
            lam, t = _relu_slopes(zm - zr, zm + zr)      # relu(z) in lam z + [0, t] = lam z + t/2 +- t/2
            am = lam * zm + 0.5 * t
            aG = (zG.reshape(len(zm), n, d) * lam[:, :, None]).reshape(len(zm), n * d)
            # t's ends zm +- zr (d + 2 roundings) and t itself (2), then am, aG, ae (2 each) on terms up to
            # |zm| + zr: within gamma_(d+8) (|zm| + zr)
            ae = lam * ze + 0.5 * t + rounding_bound(d + 8, np.abs(zm) + zr)
            # h + A a: r + 1 terms (radius(aG) <= lam radius(zG) up to a relative O(u): second order here)
            mag = h_mag + _dot_small(absA, np.abs(am) + lam * zG_r + ae)
            m, G = m + _dot_small(A, am), G + _dot_small(A, aG)
            e = e + _dot_small(absA, ae) + rounding_bound(r + 1, mag)
        W, b = wt["W_out"], wt["b_out"][0]
        om = _dot_small(W, m)[0] + b                      # w + 1 terms, then the d-term radius
        rr = radius(_dot_small(W, G))[0] + _dot_small(np.abs(W), e)[0]
        mag = _dot_small(np.abs(W), np.abs(m) + radius(G) + e)[0] + abs(b)
        return outward(om, om, rr + rounding_bound(w + d + 1, mag))

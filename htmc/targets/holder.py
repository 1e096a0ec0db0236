"""holder_random: a random multiscale Faber-Schauder series, Hoelder-s, so gamma = d/s (DESIGN §2.5)."""
from __future__ import annotations

import math

import numpy as np

from .base import Target, cell_bounds, float_param, int_param, outward, register_function, rounding_bound

# ----------------------------------------------------------------------------------------------------------------
# holder_random: a random Faber-Schauder series (DESIGN §2.5)
# ----------------------------------------------------------------------------------------------------------------

def _refine(v: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of grid values onto the grid of half the spacing, along every axis."""
    for axis in range(v.ndim):
        v = np.moveaxis(v, axis, 0)
        out = np.empty((2 * v.shape[0] - 1,) + v.shape[1:])
        out[0::2] = v
        out[1::2] = 0.5 * (v[:-1] + v[1:])
        v = np.moveaxis(out, 0, axis)
    return v


def _block_extrema(v: np.ndarray, k: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of grid values v ((2^J+1)^d points) over each closed level-k cell, k <= J, cell-index order."""
    t = 1 << (levels - k)
    mn = mx = v
    for axis in range(v.ndim):
        mn = _reduce_axis(mn, axis, t, np.minimum)
        mx = _reduce_axis(mx, axis, t, np.maximum)
    return mn.ravel(), mx.ravel()


def _reduce_axis(a: np.ndarray, axis: int, t: int, op: np.ufunc) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0] - 1
    red = op.reduce(a[:-1].reshape((n // t, t) + a.shape[1:]), axis=1)  # left-closed blocks
    red = op(red, a[t::t])  # plus each block's right endpoint: the cells are closed
    return np.moveaxis(red, 0, axis)


def _multilinear(v: np.ndarray, x: np.ndarray, levels: int) -> np.ndarray:
    """Evaluate the multilinear interpolant of grid values v ((2^J+1)^d) at points x (N, d)."""
    n, d = 1 << levels, x.shape[1]
    s = x * n
    idx = np.minimum(np.floor(s).astype(np.int64), n - 1)
    t = s - idx
    out = np.zeros(x.shape[0])
    for corner in range(1 << d):
        bits = [(corner >> (d - 1 - j)) & 1 for j in range(d)]
        w = np.ones(x.shape[0])
        for j, bit in enumerate(bits):
            w = w * (t[:, j] if bit else 1.0 - t[:, j])
        out += w * v[tuple(idx[:, j] + bits[j] for j in range(d))]
    return out


def default_levels(d: int) -> int:
    """Finest Faber-Schauder level J for dimension d: (2^J+1)^d grid values stay near 2^20 (8 MiB)."""
    return max(1, 20 // d)


def _max_partials(v: np.ndarray, j: int) -> np.ndarray:
    """max_m sup |d f / d x_m| over each level-j cell of the multilinear interpolant of v ((2^j+1)^d values).

    On a cell the interpolant is multilinear, so d/dx_m is constant along x_m and multilinear in the other
    coordinates: its extremes are on the cell's 2^(d-1) edges in direction m, where it is the edge's difference
    quotient. Shape (2^j,)*d, cell-index order.
    """
    n = 1 << j
    out = np.zeros((n,) * v.ndim)
    for m in range(v.ndim):
        g = np.abs(np.diff(v, axis=m)) * n
        for o in range(v.ndim):
            if o != m:  # each cell has two edges per other axis: keep the larger
                g = np.moveaxis(g, o, 0)
                g = np.moveaxis(np.maximum(g[:-1], g[1:]), 0, o)
        out = np.maximum(out, g)
    return out


HOLDER_SLOPE_CAP = 2.0  # the cap, in multiples of the rms slope of the uncapped series at the same level


@register_function("holder_random", version="3")
class HolderRandom(Target):
    """Random multiscale Faber-Schauder series with a capped slope, Hoelder-s on [0,1]^d, values in [-1,1].

    f = (1/Z) sum_{j<J} 2^(-j s) sum_i a_{j,i} H_{j,i},  H_{j,i}(x) = prod_m hat(2^j x_m - i_m),
    hat the tent on [0,1] with peak 1 at 1/2 (Faber-Schauder basis; Triebel, "Bases in function spaces", 2010),
    and Z = max |series| (attained at grid points), so max |f| = 1 exactly.
    Why: its eps-entropy is ~eps^(-d/s) (2^(jd) independent coefficients of size ~2^(-js) at every level), so
    theory expects gamma = d/s (DESIGN §2.5).

    Coefficients (version 2). a_{j,i} = r_{j,i} clipped to [-cap_{j,i}, cap_{j,i}], r = random sign *
    Uniform[1/2, 1] (the version-1 draws, in the same order). Write g_j = 2^(-j(1-s)) max_m sup |d_m f_<j| over
    the level-j cell (the normalised slope of the levels below; exact from the cell's edges, see
    _max_partials). A coefficient a adds at most 2|a| to it, and the next level rescales by 2^-(1-s), so
    cap = (c rho_(j+1) 2^(1-s) - g_j) / 2 keeps g_(j+1) <= c rho_(j+1) at every cell, where rho_j is the rms
    that g_j would have without the cap (a random walk: rho_(j+1)^2 = 4^-(1-s) (rho_j^2 + 4 E[r^2] 3^-(d-1)),
    3^-(d-1) the mean of the other coordinates' hat^2) and c = HOLDER_SLOPE_CAP = 2.
    Why the cap (version 1 had none): with free coefficients the level slopes can add up coherently. For s = 1
    the worst level-k cell then oscillates ~k 2^-k (the Zygmund class, not Lipschitz) while typical cells
    oscillate ~sqrt(k) 2^-k, so the resolution k that eps forces is set by a few outlier cells: in d = 2 the
    worst cell was 3.6x the median at k = 8 and eps = 2^-5 needed more than 16 input bits. With the cap the
    worst cell stays within ~2.5-3x the median at every level, so k grows by about 1/s bit per halving of eps.
    Regularity: on a level-k cell, f_<k has |d_m f| <= c rho_k 2^(k(1-s)) and the levels >= k add at most
    2 sum_{j>=k} 2^(-js), so its oscillation is <= (d c rho_k + 2 / (1 - 2^-s)) 2^(-ks) / Z.
    - s < 1: rho_k increases to a finite limit, so f is Hoelder-s with that explicit constant at every scale.
    - s = 1: rho_k ~ sqrt(k), so the modulus of continuity is ~h sqrt(log2(1/h)): between Lipschitz and
      Zygmund. Typical cells cannot do better while every level keeps coefficients of full size: the slope is
      a martingale along nested dyadic cells (the two halves' slopes average the parent's), so its variance grows
      linearly with the level. A Lipschitz f must let its coefficients shrink (Rademacher: Lipschitz f is
      differentiable almost everywhere), and its entropy with them, by a factor that grows with 1/eps. A
      constant cap (truly Lipschitz) did exactly that: the mean |a_j| fell ~20% per level in d = 1.
    Why the rate d/s holds: at every level the cap binds on a bounded fraction of cells (seed 0: d = 1, ~8% at
    s = 1 and ~6% at s = 1/2; d = 2, s = 1: 55% at level 2 falling to 30% at level 9, mostly partially), so the
    coefficients keep a level-independent size (mean |a_j| ~0.72 for d = 1 and ~0.62-0.67 for d = 2 at s = 1,
    against 0.75 uncapped) and the entropy stays ~eps^(-d/s).
    The rate claim holds for k < J = `levels` (default 20 // d): beyond J, f is piecewise multilinear and its
    oscillation falls like 2^-k, i.e. rate d.
    The function is the multilinear interpolant of the stored level-J grid values (`grid`, floats: the series
    above up to the rounding of its construction), which is what _eval computes and the ranges enclose.
    Ranges: exact for k <= J. f is multilinear on each finest (level-J) cell, so on a cell of level k <= J its
    extrema are at level-J grid points inside the closed cell: the block min/max of the stored grid, exact float
    comparisons. For k > J the extrema are at the cell's corners, interpolated in floats: 2^d weights (products
    of d factors t or 1 - t, summing to 1) times grid values |v| <= 1, summed, so within gamma_(2^d + d) of the
    truth (gamma_n), and widened by that (rounding_bound).
    Version 3: version 2 returned the float-interpolated corner values unwidened for k > J (off by up to 1e-16).
    """

    def __init__(self, d: int = 1, s: float = 1.0, seed: int = 0, levels: int | None = None):
        d = int_param("d", d, 1, 8)
        s = float_param("s", s, lo=0.0, hi=1.0, lo_open=True)
        seed = int_param("seed", seed, 0)
        levels = default_levels(d) if levels is None else int_param("levels", levels, 1, 30)
        if d * levels > 24:
            raise ValueError(f"levels={levels} with d={d} needs (2^{levels}+1)^{d} grid values; "
                             f"keep d * levels <= 24")
        self.d, self.gamma_theory = d, d / s
        self.params = {"d": d, "s": s, "seed": seed, "levels": levels}
        self._v: np.ndarray | None = None

    @property
    def grid(self) -> np.ndarray:
        """f at the level-J dyadic grid, shape (2^J+1,)*d; built once, lazily."""
        if self._v is None:
            d, s, levels = self.params["d"], self.params["s"], self.params["levels"]
            rng = np.random.default_rng(self.params["seed"])
            step_var = 4.0 * (7.0 / 12.0) * 3.0 ** (1 - d)  # E[(2 r)^2] times the mean of the other hats^2
            shrink = 2.0 ** (1 - s)  # the normalised slope's rescaling from one level to the next
            var = 0.0
            v = np.zeros((2,) * d)  # level 0: all tents vanish on the boundary of the cube
            for j in range(levels):
                shape = (1 << j,) * d
                coef = rng.uniform(0.5, 1.0, shape) * rng.choice((-1.0, 1.0), shape)
                var = (var + step_var) / shrink ** 2  # rms^2 of the uncapped normalised slope at level j+1
                g = _max_partials(v, j) * 2.0 ** (-j * (1 - s))
                cap = np.maximum((HOLDER_SLOPE_CAP * math.sqrt(var) * shrink - g) / 2, 0.0)
                coef = np.clip(coef, -cap, cap)
                v = _refine(v)
                v[(slice(1, None, 2),) * d] += 2.0 ** (-j * s) * coef  # tent peaks: odd points of level j+1
            self._v = v / (np.abs(v).max() or 1.0)  # the sup of a multilinear interpolant is at grid points
        return self._v

    def _eval(self, x):
        return _multilinear(self.grid, x, self.params["levels"])

    def _ranges(self, k):
        levels = self.params["levels"]
        if k <= levels:
            return _block_extrema(self.grid, k, levels)
        a, b = cell_bounds(self.d, k)  # a cell inside one finest cell: multilinear, extrema at corners
        vals = np.stack([self._eval(np.where(_corner_mask(self.d, c), b, a)) for c in range(1 << self.d)])
        return outward(vals.min(axis=0), vals.max(axis=0), rounding_bound((1 << self.d) + self.d, 1.0))


def _corner_mask(d: int, corner: int) -> np.ndarray:
    return np.array([(corner >> j) & 1 for j in range(d)], dtype=bool)

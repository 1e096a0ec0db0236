"""Arithmetic on two inputs: product and absdiff (DESIGN §2.5), exact on dyadic cells."""
from __future__ import annotations

import numpy as np

from .base import Target, cell_bounds, register_function

# ----------------------------------------------------------------------------------------------------------------
# Arithmetic on two inputs
# ----------------------------------------------------------------------------------------------------------------

@register_function("product", version="1")
class Product(Target):
    """x0 * x1 on [0,1]^2, values in [0,1].

    Why: multiplication, the basic arithmetic benchmark; an array multiplier needs O(k^2) gates for k bits, so
    C is polylog. gamma_theory = None. Ranges: exact (monotone in each coordinate; dyadic corners multiply
    exactly in floats, so no padding).
    """
    d = 2

    def __init__(self):
        self.params = {}

    def _eval(self, x):
        return x[:, 0] * x[:, 1]

    def formula(self):
        """The arithmetic form, for structured synthesis (htmc.synthesis.expr; the `datapath` method)."""
        from htmc.synthesis.expr import x
        return x(0) * x(1)

    def _ranges(self, k):
        a, b = cell_bounds(2, k)
        return a[:, 0] * a[:, 1], b[:, 0] * b[:, 1]


@register_function("absdiff", version="1")
class AbsDiff(Target):
    """|x0 - x1| on [0,1]^2, values in [0,1].

    Why: piecewise linear with a kink along the diagonal; a subtractor plus conditional negation, so C is
    polylog. gamma_theory = None. Ranges: exact (x0 - x1 spans [a0 - b1, b0 - a1] on a cell; |.| of it).
    """
    d = 2

    def __init__(self):
        self.params = {}

    def _eval(self, x):
        return np.abs(x[:, 0] - x[:, 1])

    def formula(self):
        """The arithmetic form, for structured synthesis (htmc.synthesis.expr; the `datapath` method)."""
        from htmc.synthesis.expr import x
        return abs(x(0) - x(1))

    def _ranges(self, k):
        a, b = cell_bounds(2, k)
        u, v = a[:, 0] - b[:, 1], b[:, 0] - a[:, 1]  # range of x0 - x1, exact for dyadic corners
        hi = np.maximum(np.abs(u), np.abs(v))
        lo = np.where((u <= 0) & (v >= 0), 0.0, np.minimum(np.abs(u), np.abs(v)))
        return lo, hi

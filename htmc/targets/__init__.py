"""Target functions: a registry of named, versioned, parameterized families.

Every family builds a `Target`: vectorized evaluation on [0,1]^d, RIGOROUS cell ranges for the interval truth
table (docs/DEFINITIONS.md), its domain, the rate gamma theory expects, and (in its docstring) why it is in the set.

    >>> f = make_function("holder_random", d=1, s=0.5, seed=3)
    >>> lo, hi = f.ranges(8)              # 2^8 cells, cell-index order of htmc.targets.table
    >>> tab = f.table(8)                  # IntervalTable, domain "box"

Range conventions
- `ranges(k)` encloses f on every cell [c/2^k, (c+1)/2^k]^d, closed, for continuous targets. A discontinuous
  target (`continuous = False`, e.g. parity) encloses f on the half-open cell [c/2^k, (c+1)/2^k)^d, which is
  exactly the set of inputs whose code (docs/DEFINITIONS.md) is c.
- lo <= f <= hi holds for the mathematical function of the family's float parameters (weights, frequency, grid
  values), not only for its float evaluation: the table is compared with no tolerance (docs/DEFINITIONS.md). So every
  range computed in floats is widened by a bound on its rounding error, derived from the operations:
  - exact: product, absdiff, parity (dyadic corners, exact float arithmetic) and holder_random at k <= levels
    (extrema of its stored grid values);
  - monotone libm evaluations (exp, sqrt, sigmoid, compositional's outer sin): a few ulps (LIBM_ULPS), covered
    by PAD = 2^-44 (absolute, relative above 1), which exceeds each derived bound by more than 2^4;
  - sin: its phase freq x mod 1 is reduced exactly in integer arithmetic, so the error is a few ulps (SIN_ERR)
    at every frequency;
  - float sums (relu_ridges, resnet_teacher, mixture, holder_random's corner interpolation for k > levels): the
    a-priori bound |fl(sum) - sum| <= gamma_n sum |terms| (gamma_n), with n and the terms of each sum.
  Every pad is far below any eps a ladder reaches (eps >= 2^-30).

Writing your own family (a plugin file; no package edits needed)

    # my_targets.py
    import numpy as np
    from htmc.targets import Target, cell_bounds, register_function
    from htmc.targets.base import widen

    @register_function("cube", version="1")
    class Cube(Target):
        '''scale * x^3 on [0,1]. Monotone, so a cell's range lies between its ends; analytic, so C is polylog.'''
        d = 1
        gamma_theory = None

        def __init__(self, scale=1.0):
            self.params = {"scale": float(scale)}

        def _eval(self, x):                      # x: (N, d) in [0,1]^d
            return self.params["scale"] * x[:, 0] ** 3

        def _ranges(self, k):                    # optional: without it, set `lipschitz` instead
            a, b = cell_bounds(self.d, k)
            fa, fb = self._eval(a), self._eval(b)
            # min/max: with scale < 0 the function decreases; widen: outward by a bound on float rounding
            return widen(np.minimum(fa, fb), np.maximum(fa, fb))

Load it with `htmc.registry.load_plugin("my_targets.py")`; afterwards `make_function("cube", scale=2)` works
and "cube" appears in FUNCTIONS. A family that does not define `_ranges` but sets the class attribute
`lipschitz` (a bound on |f(x) - f(y)| / ||x - y||_inf) gets the rigorous Lipschitz range f(mid) +- L 2^-(k+1).
A family may also be a plain factory function returning a Target.
"""
from . import analytic, arithmetic, combinations, discrete, holder, networks, walsh  # noqa: F401  (register the families)
from .base import FUNCTIONS, Target, cell_bounds, make_function, register_function
from htmc.targets.table import IntervalTable

__all__ = ["FUNCTIONS", "IntervalTable", "Target", "cell_bounds", "make_function", "register_function"]

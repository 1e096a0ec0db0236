"""parity embedded in [0,1]^d: constant circuit size, a hard case for smooth models (DESIGN §2.5)."""
from __future__ import annotations

import numpy as np

from .base import Target, int_param, register_function
from htmc.targets.table import cell_index_grid

# ----------------------------------------------------------------------------------------------------------------
# parity
# ----------------------------------------------------------------------------------------------------------------

@register_function("parity", version="1")
class Parity(Target):
    """Parity (XOR) of the top `bits` bits of every coordinate, on [0,1]^d; values in {0, 1}.

    Why: trivial for circuits (d*bits - 1 XOR gates, constant in eps once k >= bits) but a classic hard case for
    shallow models (Minsky and Papert, "Perceptrons", 1969): a check that circuit size, not smoothness, is what
    the project measures.
    gamma_theory = 0 (constant size). Piecewise constant and discontinuous, so its ranges are over half-open
    cells (the inputs with a given code, DESIGN §2.1): exact, [v, v] for k >= bits and [0, 1] for k < bits.
    """
    gamma_theory = 0.0
    continuous = False

    def __init__(self, d: int = 2, bits: int = 1):
        d = int_param("d", d, 1, 16)
        bits = int_param("bits", bits, 1, 16)
        self.d = d
        self.params = {"d": d, "bits": bits}

    def _parity_of_codes(self, codes: np.ndarray, k: int) -> np.ndarray:
        top = codes >> (k - self.params["bits"])  # the top `bits` bits of each coordinate's k-bit code
        ones = np.zeros(codes.shape[0], dtype=np.int64)
        for i in range(self.params["bits"]):
            ones += ((top >> i) & 1).sum(axis=1)
        return (ones & 1).astype(np.float64)

    def _eval(self, x):
        bits = self.params["bits"]
        codes = np.minimum(np.floor(x * (1 << bits)).astype(np.int64), (1 << bits) - 1)
        return self._parity_of_codes(codes, bits)

    def _ranges(self, k):
        n = 1 << (self.d * k)
        if k < self.params["bits"]:
            return np.zeros(n), np.ones(n)
        v = self._parity_of_codes(cell_index_grid(self.d, k), k)
        return v, v.copy()

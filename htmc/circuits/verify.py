"""The verifier: the single place where a circuit's error is computed (DESIGN §2.2 'Verified error').

Every search method passes its circuit through `verify`; a circuit whose verified error exceeds eps is a bug,
never a result.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from htmc.circuits.circuit import Circuit, Decoder, codes_from_words, simulate
from htmc.targets.table import IntervalTable


class VerificationError(AssertionError):
    """A search method produced a circuit that does not meet its error bound."""


@dataclass(frozen=True)
class Verification:
    max_error: float  # the exact sup error, rounded up to a float (IntervalTable.errors)
    worst_cell: int
    n_cells: int

    def within(self, eps: float) -> bool:
        """max_error <= eps with no tolerance: max_error is rounded up, so this is the exact comparison."""
        return self.max_error <= eps


def verify(circuit: Circuit, table: IntervalTable, backend: str | None = None) -> Verification:
    """Simulate over all 2^n input codes, decode, and measure the sup error against the cell ranges.

    The simulator is the numba kernel, the torch path (on CUDA when present) or numpy, chosen by
    htmc.circuits.simbackend unless `backend` or $HTMC_SIM_BACKEND forces one; all give the same bits. Where the
    numba kernels are loaded, decoding and comparing run fused (fastsim.sup_error: the same float operations as
    Decoder.decode and IntervalTable.errors, without their 2^n temporaries: ~8x less CPU at 2^22 cells).
    """
    n = circuit.n_inputs
    if n != table.n_inputs:
        raise ValueError(f"circuit has {n} inputs but the table has {table.n_inputs} "
                         f"(d={table.d}, k={table.k})")
    words = simulate(circuit, backend=backend)
    fast = sys.modules.get("htmc.circuits.fastsim")
    if fast is not None and type(circuit.decoder) is Decoder:
        max_error, worst = fast.sup_error(words, n, circuit.decoder.offset, circuit.decoder.shift, table.lo, table.hi)
        return Verification(max_error, worst, 1 << n)
    err = table.errors(circuit.decoder.decode(codes_from_words(words, n)))
    worst = int(np.argmax(err))
    return Verification(float(err[worst]), worst, err.size)


def require(circuit: Circuit, table: IntervalTable, eps: float) -> Verification:
    """verify, and raise if the error bound is not met: search methods call this before returning."""
    v = verify(circuit, table)
    if not v.within(eps):
        raise VerificationError(f"circuit error {v.max_error:.6g} exceeds eps={eps:.6g} at cell {v.worst_cell}")
    return v


def bits_table(columns: list[np.ndarray], n_inputs: int) -> IntervalTable:
    """An exact (grid) table of the integer u whose bit j is columns[j], for checking Boolean functions."""
    u = np.zeros(1 << n_inputs, dtype=np.int64)
    for j, col in enumerate(columns):
        u |= np.asarray(col, dtype=np.int64) << j
    return IntervalTable.exact(u.astype(np.float64), 1, n_inputs)

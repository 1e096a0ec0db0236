"""The verifier: the single place where a circuit's error is computed (DESIGN §2.2 'Verified error').

Every search method passes its circuit through `verify`; a circuit whose verified error exceeds eps is a bug,
never a result.

Two checks, for two kinds of output (issue 23):
- `verify` decodes the m output bits as one number u (ŷ = a + u 2^-s) and compares it with the cell ranges. u
  is an int64 and ŷ a float64, so this is exact only up to MAX_DECODED_BITS output bits: past 53 bits the float
  rounds u, and past 63 the int64 packing wraps (a 10-input, 65-output table that ABC got right read as
  "error 512"). `verify` refuses wider circuits instead of answering wrongly.
- `verify_columns` compares each output bit with its truth-table column, packed word against packed word: exact at
  any width, and the check for plain Boolean functions (`htmc circuit synth`, ABC's portfolio).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from htmc.circuits.circuit import Circuit, Decoder, codes_from_words, simulate
from htmc.targets.table import IntervalTable


# Output bits that decode exactly: u < 2^53 is exact in the float64 the decoder computes (and in the int64 packing).
MAX_DECODED_BITS = 53


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
    if len(circuit.outputs) > MAX_DECODED_BITS:
        raise ValueError(f"a circuit with {len(circuit.outputs)} output bits cannot be decoded exactly as one number "
                         f"(at most {MAX_DECODED_BITS}: float64); check a Boolean function's outputs bit by bit "
                         f"with verify_columns")
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
    """An exact (grid) table of the integer u whose bit j is columns[j], for checking Boolean functions of at
    most MAX_DECODED_BITS outputs (verify_columns checks any number)."""
    if len(columns) > MAX_DECODED_BITS:
        raise ValueError(f"{len(columns)} outputs do not fit one exactly decoded number (at most "
                         f"{MAX_DECODED_BITS}); use verify_columns")
    u = np.zeros(1 << n_inputs, dtype=np.int64)
    for j, col in enumerate(columns):
        u |= np.asarray(col, dtype=np.int64) << j
    return IntervalTable.exact(u.astype(np.float64), 1, n_inputs)


def column_words(columns: list[np.ndarray], n_inputs: int) -> np.ndarray:
    """Truth-table columns (columns[j][c] = output bit j at input code c) packed as simulate packs a circuit's
    outputs: (m, max(1, 2^n/64)) uint64, bit c of word w is input code 64 w + c."""
    rows = 1 << n_inputs
    bits = np.zeros((len(columns), max(64, rows)), dtype=np.uint8)
    for j, col in enumerate(columns):
        col = np.asarray(col)
        if col.shape != (rows,):
            raise ValueError(f"column {j} has shape {col.shape}; {rows} rows (2^{n_inputs}) expected")
        bits[j, :rows] = col != 0
    return np.packbits(bits, axis=1, bitorder="little").view(np.uint64)


def column_mismatch(circuit: Circuit, columns: list[np.ndarray]) -> tuple[int, int] | None:
    """The first (output j, input code c) where the circuit's bit j differs from columns[j][c], or None when it
    computes every column: a bit-by-bit comparison, exact for any number of outputs."""
    n = circuit.n_inputs
    if len(circuit.outputs) != len(columns):
        raise VerificationError(f"the circuit has {len(circuit.outputs)} outputs; the truth table has {len(columns)}")
    diff = simulate(circuit) ^ column_words(columns, n)
    if n < 6:    # one word, and only its low 2^n bits are codes
        diff &= np.uint64((1 << (1 << n)) - 1)
    rows, words = np.nonzero(diff)
    if rows.size == 0:
        return None
    j, w = int(rows[0]), int(words[0])
    x = int(diff[j, w])
    return j, 64 * w + (x & -x).bit_length() - 1


def verify_columns(circuit: Circuit, columns: list[np.ndarray]) -> None:
    """Raise VerificationError unless the circuit computes every column exactly (Boolean functions, any width)."""
    bad = column_mismatch(circuit, columns)
    if bad is not None:
        raise VerificationError(f"output {bad[0]} differs from its truth table at input code {bad[1]} "
                                f"({len(columns)} outputs, {circuit.n_inputs} inputs)")

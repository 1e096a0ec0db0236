"""The ε relation (DESIGN §2.2), in one place: per cell the accepted interval [hi_c - eps, lo_c + eps], whether a
resolution k is fine enough for eps at all, and, for an output grid a + u 2^-s, the integer codes [uL_c, uH_c]
each cell accepts. Every comparison is exact (decoded values are dyadic; IntervalTable.errors rounds up), so
a code is accepted exactly when its verified error is within eps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits.circuit import Decoder
from ..targets.table import IntervalTable, sub_up

MIN_SHIFT, MAX_SHIFT = -16, 52


@dataclass(frozen=True)
class CodeSpace:
    """Integer code intervals [uL, uH] per cell for the decoder (offset, shift), with m output bits."""
    decoder: Decoder
    m: int
    uL: np.ndarray
    uH: np.ndarray

    @property
    def n_cells(self) -> int:
        return self.uL.size


def accepted(table: IntervalTable, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the interval I_c = [hi_c - eps, lo_c + eps] of accepted outputs, in floats (may be empty)."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    return table.hi - eps, table.lo + eps


def feasible(table: IntervalTable, eps: float) -> bool:
    """False when some cell oscillates by more than 2 eps, i.e. k is too small for eps (exact: 2 eps is a
    float, so hi - lo <= 2 eps is decided on the exact difference)."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    return bool(np.all(sub_up(table.hi, table.lo) <= 2.0 * eps))


def accepted_codes(table: IntervalTable, eps: float, decoder: Decoder) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the integers [uL, uH] whose decoded value is within eps of the whole cell, decided exactly.

    Decoded values a + u 2^-s are dyadic, so each end is first estimated in floats and then moved to the exact
    boundary with IntervalTable.errors' exact comparison (DESIGN §2.2: no tolerance). An empty cell has uL > uH.
    """
    h = 2.0 ** (-decoder.shift)
    A, B = accepted(table, eps)
    value = lambda u: decoder.offset + u.astype(np.float64) * h  # exact: a dyadic offset plus a multiple of h
    high_enough = lambda u: sub_up(table.hi, value(u)) <= eps
    low_enough = lambda u: sub_up(value(u), table.lo) <= eps
    uL = np.ceil((A - decoder.offset) / h).astype(np.int64)
    uH = np.floor((B - decoder.offset) / h).astype(np.int64)
    for _ in range(4):  # the float estimates are off by at most one step; a few passes settle every cell
        uL = np.where(high_enough(uL - 1), uL - 1, np.where(high_enough(uL), uL, uL + 1))
        uH = np.where(low_enough(uH + 1), uH + 1, np.where(low_enough(uH), uH, uH - 1))
    if not (np.all(high_enough(uL)) and not np.any(high_enough(uL - 1))
            and np.all(low_enough(uH)) and not np.any(low_enough(uH + 1))):
        raise ArithmeticError(f"accepted codes did not settle at output step 2^-{decoder.shift}")
    return uL, uH


def code_space(table: IntervalTable, eps: float, shift: int, extra_bits: int = 0) -> CodeSpace | None:
    """The codes accepted per cell at output step 2^-shift, or None if some cell holds no grid point.

    m is the fewest output bits that reach every cell's lowest code, plus extra_bits: one more bit can lower the
    minimum (intervals L=[3,2,0,1], U=[4,2,1,2] need 2 gates at m=2 and 1 gate at m=3, with code 4 for cell 0),
    so exact synthesis also tries m+1.
    """
    A, _ = accepted(table, eps)
    h = 2.0 ** (-shift)
    offset = float(np.floor(A.min() / h) * h) - h  # dyadic, one step below the lowest end, so that u >= 0
    dec = Decoder(offset, shift)
    uL, uH = accepted_codes(table, eps, dec)
    if np.any(uL > uH):
        return None
    # rebase so the lowest accepted code is 0 (the offset is free, DESIGN §2.1)
    base = int(uL.min())
    dec = Decoder(offset + base * h, shift)
    uL, uH = uL - base, uH - base
    m = int(uL.max()).bit_length() + extra_bits
    return CodeSpace(dec, m, uL, np.minimum(uH, (1 << m) - 1))


def coarsest_shift(table: IntervalTable, eps: float) -> int | None:
    """Smallest s (fewest output bits) for which every cell's interval holds a grid point."""
    if not feasible(table, eps):
        return None
    return next((s for s in range(MIN_SHIFT, MAX_SHIFT) if code_space(table, eps, s) is not None), None)

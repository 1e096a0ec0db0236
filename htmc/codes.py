"""Choosing output codes inside each cell's accepted interval (DESIGN §2.2).

For an output grid a + u 2^-s, cell c accepts the integers u in [uL_c, uH_c]. Exact rounding picks one value per
cell; the slack between the ends is where small circuits come from. Each strategy here returns one code per cell:
- `round`: the plainly rounded table, the baseline ABC is measured against;
- `trailing_zeros`: the value with the most trailing zeros, so low output bits are constant over many cells;
- `msb_dc`: output bits decided most-significant first; where both values of a bit stay feasible, the bit is a
  don't-care, filled by merging compatible cofactors (BDD 'restrict', Coudert & Madre 1990) so the column
  depends on as few input variables as possible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import Registry
from .table import Decoder, IntervalTable, sub_up

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


def accepted_codes(table: IntervalTable, eps: float, decoder: Decoder) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the integers [uL, uH] whose decoded value is within eps of the whole cell, decided exactly.

    Decoded values a + u 2^-s are dyadic, so each end is first estimated in floats and then moved to the exact
    boundary with IntervalTable.errors' exact comparison (DESIGN §2.2: no tolerance). An empty cell has uL > uH.
    """
    h = 2.0 ** (-decoder.shift)
    A, B = table.accepted(eps)
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
    A, _ = table.accepted(eps)
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
    if not table.feasible(eps):
        return None
    return next((s for s in range(MIN_SHIFT, MAX_SHIFT) if code_space(table, eps, s) is not None), None)


STRATEGIES: Registry = Registry("code strategy")


@STRATEGIES.register("round", "1")
def round_codes(space: CodeSpace, table: IntervalTable) -> np.ndarray | None:
    """Round the cell's midpoint; None when plain rounding misses some interval at this step."""
    h = 2.0 ** (-space.decoder.shift)
    u = np.round(((table.lo + table.hi) / 2 - space.decoder.offset) / h).astype(np.int64)
    return u if np.all((u >= space.uL) & (u <= space.uH)) else None


@STRATEGIES.register("trailing_zeros", "1")
def trailing_zero_codes(space: CodeSpace, table: IntervalTable) -> np.ndarray:
    """Per cell, the accepted integer with the most trailing zeros (the 'roundest' value)."""
    u = space.uL.copy()
    done = np.zeros(u.size, dtype=bool)
    for b in range(space.m, -1, -1):
        v = -(-space.uL // (1 << b)) << b  # ceil to a multiple of 2^b
        take = ~done & (v <= space.uH)
        u[take] = v[take]
        done |= take
    return u


def fill_dont_cares(val: np.ndarray, care: np.ndarray) -> np.ndarray:
    """Assign don't-cares of one output column by merging compatible cofactors, top input variable first.

    At the level of variable v the table splits into blocks of 2^(v+1) rows; where the two halves of a block agree
    on every row both care about, both halves become their union, so the column no longer depends on v there.
    Merged halves are identical, so lower levels treat them alike and the result stays consistent.
    """
    val, care = val.astype(bool).copy(), care.astype(bool).copy()
    n = val.size.bit_length() - 1
    for v in range(n - 1, -1, -1):
        shape = (-1, 2, 1 << v)
        vb, cb = val.reshape(shape), care.reshape(shape)
        clash = cb[:, 0] & cb[:, 1] & (vb[:, 0] != vb[:, 1])
        ok = ~clash.any(axis=1)
        merged_v = np.where(cb[:, 0], vb[:, 0], vb[:, 1])[ok]
        merged_c = (cb[:, 0] | cb[:, 1])[ok]
        vb[ok] = merged_v[:, None, :]
        cb[ok] = merged_c[:, None, :]
    return val & care


@STRATEGIES.register("msb_dc", "1")
def msb_first_codes(space: CodeSpace, table: IntervalTable) -> np.ndarray:
    """Output bits most significant first, don't-cares where both bit values keep the cell feasible."""
    prefix = np.zeros(space.n_cells, dtype=np.int64)
    for j in range(space.m - 1, -1, -1):
        base = prefix << (j + 1)
        lo = np.maximum(space.uL, base)
        hi = np.minimum(space.uH, base | ((1 << (j + 1)) - 1))
        can0 = lo <= base + (1 << j) - 1
        can1 = hi >= base + (1 << j)
        bit = fill_dont_cares(can1 & ~can0, ~(can0 & can1))
        prefix = (prefix << 1) | bit.astype(np.int64)
    return prefix


def columns(u: np.ndarray, m: int) -> list[np.ndarray]:
    """Output bit columns of the codes, least significant first."""
    return [((u >> j) & 1).astype(bool) for j in range(m)]

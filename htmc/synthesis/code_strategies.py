"""Choosing output codes inside each cell's accepted codes (DESIGN §2.2; the codes come from
htmc.synthesis.relation).

Exact rounding picks one value per cell; the slack between the ends is where small circuits come from. Each
strategy here returns one code per cell:
- `round`: the plainly rounded table, the baseline ABC is measured against;
- `trailing_zeros`: the value with the most trailing zeros, so low output bits are constant over many cells;
- `msb_dc`: output bits decided most-significant first; where both values of a bit stay feasible, the bit is a
  don't-care, filled by merging compatible cofactors (BDD 'restrict', Coudert & Madre 1990) so the column
  depends on as few input variables as possible.
"""
from __future__ import annotations

import numpy as np

from ..registry import Registry
from ..targets.table import IntervalTable
from .relation import CodeSpace

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

"""Lupanov's construction for random-like truth tables, and the `lupanov` method.

Lupanov (1958; Jukna, "Boolean Function Complexity", 2012, Thm 1.15): write the table of an n-input function as a
2^r x 2^q matrix (row = the top r inputs, column = the low q = n - r), cut the rows into strips of s rows, and in
strip i let w(y) in {0,1}^s be column y restricted to the strip. Then
    f(x, y) = OR_i OR_w  g_{i,w}(x) AND h_{i,w}(y),
with g_{i,w}(x) = [x is in strip i and w has a 1 at x's row] (an OR of row minterms, independent of f) and
h_{i,w}(y) = [w(y) = w] (an OR of column minterms; for fixed i the h_{i,w} partition the columns). With
r ~ 3 log n and s ~ n - 5 log n this is 2^n/n (1 + o(1)) gates, the Shannon lower bound's order. At the sizes
here the low-order terms matter, so (r, s) minimise the exact cost bound `lupanov_bound`, computed per table.

Multi-output: the minterms and the g_{i,w} do not depend on f, so all output bits share them. The method builds
each output bit by Lupanov or by the BDD multiplexer tree (CircuitBuilder.lut), whichever adds fewer gates to
the shared netlist: high output bits of a smooth target are far from random and their BDDs are small.
Measured 2026-12-01: on random tables Lupanov gives 3.0 (n=16, m=1) and 2.4 (n=16, m=4) x 2^n m/n and beats the
BDD tree (12,384 vs 16,491 gates at n=16, m=1); on holder_random (d=2, s=1) codes up to n=20 the BDD tree won
every output bit, so there the method is the tree, in the better of the two input orders.
"""
from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from ..circuits.builder import FALSE, CircuitBuilder
from ..circuits.permute import rename_inputs
from .problem import METHODS, Attempt, Problem, make_attempt, ordered_codes

MAX_LUPANOV_INPUTS = 24
MAX_STRIP = 20   # s: a strip's 2^s patterns stay enumerable


@lru_cache(maxsize=None)
def minterm_cost(q: int) -> int:
    """Gates for all 2^q minterms of q variables: the two halves' minterms, then every pair ANDed."""
    if q <= 1:
        return 0
    return (1 << q) + minterm_cost(q // 2) + minterm_cost(q - q // 2)


def lupanov_bound(n: int, r: int, s: int, m: int = 1) -> int:
    """Upper bound on the gates `lupanov_bits` adds for m output bits (the construction's count, worst case)."""
    q, p = n - r, -(-(1 << r) // s)
    patterns = min((1 << s) - 1, 1 << q)          # nonzero column patterns per strip
    shared = minterm_cost(q) + minterm_cost(r) + p * min((1 << s) - s - 1, m * patterns * (s - 1))
    per_output = p * ((1 << q) - 1) + 2 * p * patterns
    return shared + m * per_output


def best_split(n: int, m: int = 1) -> tuple[int, int]:
    """(r, s) minimising lupanov_bound for an n-input table with m outputs."""
    cands = [(lupanov_bound(n, r, s, m), r, s) for r in range(1, n) for s in range(1, min(1 << r, MAX_STRIP) + 1)]
    _, r, s = min(cands)
    return r, s


def minterms(b: CircuitBuilder, lits: list[int]) -> list[int]:
    """Literals of all 2^len minterms of lits (index = the little-endian value of lits)."""
    if len(lits) == 1:
        return [lits[0] ^ 1, lits[0]]
    h = len(lits) // 2
    lo, hi = minterms(b, lits[:h]), minterms(b, lits[h:])
    return [b.and_(a, c) for c in hi for a in lo]


def or_all(b: CircuitBuilder, lits) -> int:
    """Balanced OR of a list of literals (FALSE when empty): len - 1 gates."""
    lits = list(lits)
    if not lits:
        return FALSE
    while len(lits) > 1:
        nxt = [b.or_(lits[i], lits[i + 1]) for i in range(0, len(lits) - 1, 2)]
        lits = nxt + ([lits[-1]] if len(lits) % 2 else [])
    return lits[0]


class Lupanov:
    """The shared part for one (n, r, s): row and column minterms and the g_{i,w}, built on demand."""

    def __init__(self, b: CircuitBuilder, inputs: list[int], r: int, s: int):
        self.b, self.n, self.r, self.s = b, len(inputs), r, s
        self.q = self.n - r
        self.cols = minterms(b, inputs[:self.q]) if self.q else [1]
        self.rows = minterms(b, inputs[self.q:])
        self._g: dict[tuple[int, int], int] = {}

    def g(self, i: int, w: int) -> int:
        """OR of the minterms of strip i's rows t with bit t of w set: one OR per pattern, on top of w's prefix."""
        if w == 0:
            return FALSE
        key = (i, w)
        if key not in self._g:
            low = (w & -w).bit_length() - 1
            rest = w & (w - 1)
            row = self.rows[i * self.s + low]
            self._g[key] = row if rest == 0 else self.b.or_(self.g(i, rest), row)
        return self._g[key]

    def bit(self, column: np.ndarray) -> int:
        """Literal of one output bit (column[c] for every code c) by Lupanov's formula."""
        mat = np.asarray(column, dtype=np.int64).reshape(1 << self.r, 1 << self.q)
        terms = []
        for i in range(0, 1 << self.r, self.s):
            strip = mat[i:i + self.s]
            w = (strip << np.arange(strip.shape[0])[:, None]).sum(axis=0)  # pattern of every column
            order = np.argsort(w, kind="stable")
            pats, starts = np.unique(w[order], return_index=True)
            groups = np.split(order, starts[1:])
            for pat, cols in zip(pats, groups):
                if pat:
                    h = or_all(self.b, (self.cols[y] for y in cols))
                    terms.append(self.b.and_(self.g(i // self.s, int(pat)), h))
        return or_all(self.b, terms)

    def cost(self, column: np.ndarray) -> int:
        """Gates that bit(column) would add, without adding them (the g_{i,w} memo is restored too)."""
        saved = dict(self._g)
        try:
            return self.b.cost(lambda: [self.bit(column)])
        finally:
            self._g = saved


def lupanov_bits(b: CircuitBuilder, inputs: list[int], u: np.ndarray, m: int, mix: bool = True) -> list[int]:
    """Literals of the m output bits of codes u over `inputs` (little-endian): Lupanov per bit, or with `mix`
    the BDD multiplexer tree where it adds fewer gates (both as trial builds on the shared netlist)."""
    n = len(inputs)
    r, s = best_split(n, m)
    lup = Lupanov(b, inputs, r, s) if n >= 2 else None
    out = []
    for j in range(m):
        col = ((np.asarray(u) >> j) & 1).astype(np.int64)
        tree = lambda: b.lut(inputs, col.tolist(), 1, order="msb")
        if lup is None:
            out += tree()
            continue
        if mix and b.cost(tree) < lup.cost(col):
            out += tree()
        else:
            out.append(lup.bit(col))
    return out


@METHODS.register("lupanov", "2")   # 2: the interleaved codes are chosen in that order
def lupanov_method(problem: Problem) -> list[Attempt]:
    """Lupanov's construction (mixed per output bit with the BDD tree), in the table's and the interleaved input
    order; up to MAX_LUPANOV_INPUTS inputs. Fast (no ABC), so it reaches tables ABC cannot take."""
    t = problem.table
    out = []
    if t.n_inputs > MAX_LUPANOV_INPUTS or t.n_inputs < 2:
        return out
    for label, p, u in ordered_codes(problem, ["msb_dc"], interleave=True):
        if problem.time_left() <= 0 and out:  # at least one circuit, even when the budget went on the tables
            return out
        t0 = time.monotonic()
        b = CircuitBuilder(t.n_inputs)
        c = b.build(lupanov_bits(b, b.inputs, u, problem.space.m))
        out.append(make_attempt(problem, "lupanov", label, rename_inputs(c, p), time.monotonic() - t0))
    return out

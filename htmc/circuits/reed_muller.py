"""The Reed-Muller (positive Davio) decision diagram of a truth table, read as B2 gates (issue 15).

On random-like tables it is about 2/3 of the BDD multiplexer tree (CircuitBuilder.lut) and 12% below ABC's flow;
the ABC portfolio (htmc.synthesis.abc_portfolio) keeps it as a candidate. On smooth codes it is worse than the
BDD tree (RESULTS.md "ABC portfolio").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from htmc.circuits.builder import FALSE, CircuitBuilder


def rm_tree(b: CircuitBuilder, index_bits: Sequence[int], columns: Sequence[np.ndarray]) -> list[int]:
    """One literal per 0/1 column over the index bits (little-endian, like CircuitBuilder.lut): the positive-Davio
    (Reed-Muller) decision diagram read as gates, f = f0 XOR (x AND (f0 XOR f1)) on the top index bit.

    A node costs 2 gates where the multiplexer of `CircuitBuilder.lut` costs 3, and on random-like tables the
    diagram is as large as the BDD, so this is about 2/3 of the tree: 1,038 against 1,172 gates for ABC's flow on
    a random 10-input 4-output table (benchmarks/portfolio.py). Sub-tables are hash-consed across columns and a
    complemented sub-table is free (Kebschull, Schubert, Rosenstiel, "Multilevel logic synthesis based on
    functional decision diagrams", EDAC 1992).
    """
    n = len(index_bits)
    memo: dict[bytes, int] = {}

    def node(tab: np.ndarray, k: int) -> int:
        if tab[0]:
            return node(1 - tab, k) ^ 1
        if not tab.any():
            return FALSE
        key = tab.tobytes()
        if key not in memo:
            f0, f1 = tab[: 1 << (k - 1)], tab[1 << (k - 1):]
            a, g, x = node(f0, k - 1), node(f0 ^ f1, k - 1), index_bits[k - 1]
            # f0 XOR x.f0 = f0.~x and f0 XOR x.~f0 = f0 | x: one gate, as the multiplexer would take
            memo[key] = (b.and_(a, x ^ 1) if g == a else b.or_(a, x) if g == a ^ 1
                         else b.xor(a, b.and_(x, g)))
        return memo[key]

    out = []
    for c in columns:
        tab = np.asarray(c, dtype=np.uint8)
        if tab.shape != (1 << n,):
            raise ValueError(f"rm_tree needs columns of 2^{n} = {1 << n} values, got shape {tab.shape}")
        out.append(node(tab & 1, n))
    return out


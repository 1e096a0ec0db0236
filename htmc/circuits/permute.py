"""Input orders: a circuit built on a permuted input code computes the original table once its inputs are renamed,
which costs no gates (DESIGN §2.1: inputs are free wires).

Convention: a permutation `p` lists, for each input i of the permuted code, the original input p[i] it reads, so
bit i of the permuted code c' is bit p[i] of the original code c. The table's own order (htmc.targets.table) is
coordinate by coordinate, most significant bit first; `interleaved_order` puts every coordinate's MSB on top,
then every coordinate's next bit, and so on (Morton / Z-order), so the top variables of a BDD split the box into
sub-boxes instead of slabs.
"""
from __future__ import annotations

import numpy as np

from htmc.circuits.circuit import Circuit


def check_permutation(p, n: int) -> list[int]:
    p = [int(i) for i in p]
    if sorted(p) != list(range(n)):
        raise ValueError(f"an input order must be a permutation of 0..{n - 1}, got {p}")
    return p


def interleaved_order(d: int, k: int) -> list[int]:
    """p for the interleaved code: permuted bit n-1-(level*d + j) is coordinate j's bit at that level (level 0 =
    MSB). Coordinate j's bit b (b = 0 the LSB) is original input k (d-1-j) + b (htmc.targets.table)."""
    n = d * k
    p = [0] * n
    for level in range(k):
        for j in range(d):
            p[n - 1 - (level * d + j)] = k * (d - 1 - j) + (k - 1 - level)
    return p


def permuted_index(p, n: int) -> np.ndarray:
    """sigma with sigma[c'] = c: the original code whose bits, read through p, give permuted code c'."""
    p = check_permutation(p, n)
    cp = np.arange(1 << n, dtype=np.int64)
    c = np.zeros_like(cp)
    for i, src in enumerate(p):
        c |= ((cp >> i) & 1) << src
    return c


def permute_values(values: np.ndarray, p) -> np.ndarray:
    """The table over the permuted code: out[c'] = values[c] for the c that c' names."""
    values = np.asarray(values)
    n = values.size.bit_length() - 1
    if values.size != 1 << n:
        raise ValueError(f"a truth table needs 2^n entries, got {values.size}")
    return values[permuted_index(p, n)]


def rename_inputs(circuit: Circuit, p) -> Circuit:
    """The circuit on the original inputs: its input i is wired to original input p[i] (same gates, same size)."""
    p = check_permutation(p, circuit.n_inputs)
    first = circuit.n_inputs + 2
    sig = lambda s: 2 + p[s - 2] if 2 <= s < first else s
    gates = [(op, sig(a), sig(b)) for op, a, b in circuit.gates]
    return Circuit(circuit.n_inputs, gates, [sig(o) for o in circuit.outputs], circuit.decoder)

"""The `decomp` method: Shannon decomposition on the top input bits, for tables past ABC's 16 inputs.

The code table (slack codes from htmc.synthesis.code_strategies) is cut on its top t input bits into 2^t cofactors
of at most COFACTOR_INPUTS inputs. Identical cofactors, and cofactors that are the bitwise complement of another
(free: inverters cost nothing in B2), are synthesized once (hashed on their code columns). Each distinct cofactor
gets the smaller of ABC (a fast script, while the budget lasts) and the BDD multiplexer tree, both on one shared
hash-consed netlist; then every output bit is a multiplexer tree over the t split bits (CircuitBuilder.mux, which
is free where the two sides agree). In the interleaved input order (htmc.circuits.permute) the split bits are the
top bits of every coordinate, so cofactors are sub-boxes. The whole circuit is verified (make_attempt).

Why a fast ABC script: on 10-input cofactors of holder_random (d=2, k=9) `collapse; muxes; strash; dc2` gave
800 gates in 1.4 s, the default script 708 in 13.5 s and the BDD tree 1227 (2026-12-01, 2 shared cores).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..circuits.builder import FALSE, TRUE, CircuitBuilder
from ..circuits.circuit import Circuit
from ..circuits.permute import rename_inputs
from . import code_strategies
from .abc_method import MAX_ABC_INPUTS
from .abc_tool import AbcError, synthesize
from .problem import METHODS, Attempt, Problem, make_attempt, ordered_codes

MAX_DECOMP_INPUTS = 24
COFACTOR_INPUTS = 14   # 2^(n-14) cofactors: 16 at n = 18, 1024 at n = 24 (most then take the BDD tree)
FAST_SCRIPT = "collapse; muxes; strash; dc2"
SMALL_COFACTOR = 16   # a cofactor whose BDD tree adds at most this many gates is not worth an ABC call


@dataclass
class DecompStats:
    cofactors: int = 0
    unique: int = 0      # distinct up to complement: the ones synthesized
    abc: int = 0         # of those, how many took ABC's circuit


def import_circuit(b: CircuitBuilder, circuit: Circuit, inputs: list[int]) -> list[int]:
    """Copy a circuit into the builder with its input i read from literal inputs[i]; its output literals."""
    lit = [FALSE, TRUE] + list(inputs)
    for op, a, c in circuit.gates:
        lit.append(b.gate(op, lit[a], lit[c]))
    return [lit[o] for o in circuit.outputs]


def cofactor_classes(cof: np.ndarray, m: int) -> tuple[list[int], list[int], list[int]]:
    """For rows of cof (one cofactor's codes each): the representative row of each distinct class, and per row
    its class and whether it is the complement (every one of the m bits inverted) of the representative."""
    full = (1 << m) - 1
    seen: dict[bytes, tuple[int, int]] = {}
    reps, cls, inv = [], [], []
    for i, row in enumerate(cof):
        hit = seen.get(row.tobytes())
        if hit is None:
            hit = (len(reps), 0)
            reps.append(i)
            seen[row.tobytes()] = hit
            seen.setdefault((full - row).tobytes(), (hit[0], 1))
        cls.append(hit[0])
        inv.append(hit[1])
    return reps, cls, inv


def _cofactor_bits(b: CircuitBuilder, lits: list[int], codes: np.ndarray, m: int, use_abc: bool,
                   timeout_s: float) -> tuple[list[int], bool]:
    """Output literals of one cofactor: ABC's circuit if it is smaller than the BDD tree's added gates."""
    tree = lambda: b.lut(lits, codes.tolist(), m, order="msb")
    tree_cost = b.cost(tree)
    if use_abc and tree_cost > SMALL_COFACTOR and len(lits) <= MAX_ABC_INPUTS:
        try:
            res = synthesize(code_strategies.columns(codes, m), script=FAST_SCRIPT, deepsyn_s=0,
                             timeout_s=timeout_s)
            if b.cost(lambda: import_circuit(b, res.circuit, lits)) < tree_cost:
                return import_circuit(b, res.circuit, lits), True
        except AbcError:
            pass  # a timeout leaves the tree, which is always there
    return tree(), False


def mux_join(b: CircuitBuilder, sels: list[int], leaves: list[int]) -> int:
    """leaves[i] selected by the little-endian value i of sels (a multiplexer tree, LSB select first)."""
    for s in sels:
        leaves = [b.mux(s, leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]
    return leaves[0]


def decompose(u: np.ndarray, m: int, n: int, cofactor_inputs: int = COFACTOR_INPUTS,
              deadline: float | None = None) -> tuple[Circuit, DecompStats]:
    """A circuit (no decoder) computing codes u over n inputs (input i = bit i of the index), by cofactors on
    the top bits. ABC runs on distinct cofactors while time.monotonic() < deadline (always when None)."""
    t = max(1, n - cofactor_inputs) if n >= 2 else 0
    ci = n - t
    b = CircuitBuilder(n)
    lits = b.inputs
    cof = np.asarray(u, dtype=np.int64).reshape(1 << t, 1 << ci)
    reps, cls, inv = cofactor_classes(cof, m)
    stats = DecompStats(cofactors=1 << t, unique=len(reps))
    bits = []
    for i in reps:
        left = None if deadline is None else deadline - time.monotonic()
        got, used = _cofactor_bits(b, lits[:ci], cof[i], m, left is None or left > 0,
                                   timeout_s=max(5.0, min(120.0, left or 120.0)))
        bits.append(got)
        stats.abc += used
    outs = [mux_join(b, lits[ci:], [bits[c][j] ^ v for c, v in zip(cls, inv)]) for j in range(m)]
    return b.build(outs), stats


@METHODS.register("decomp", "2")   # 2: the interleaved codes are chosen in that order
def decomp_method(problem: Problem) -> list[Attempt]:
    """Cofactors on the top bits (identical and complementary ones shared), each by ABC or a BDD tree, joined
    by multiplexers; in the table's and, for d >= 2, the interleaved input order. Up to MAX_DECOMP_INPUTS."""
    t = problem.table
    out = []
    if not 2 <= t.n_inputs <= MAX_DECOMP_INPUTS:
        return out
    for label, p, u in ordered_codes(problem, ["msb_dc"], interleave=True):
        if problem.time_left() <= 0 and out:
            return out
        t0 = time.monotonic()
        c, st = decompose(u, problem.space.m, t.n_inputs, deadline=problem.deadline)
        out.append(make_attempt(problem, "decomp", label, rename_inputs(c, p), time.monotonic() - t0,
                                note=f"cofactors={st.cofactors} unique={st.unique} abc={st.abc}"))
    return out

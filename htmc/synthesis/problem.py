"""What every search method gets and returns (DESIGN §2.3): the Problem (table, ε, code space), the Attempt (one
verified circuit in one format), the METHODS registry, and `make_attempt`, the only way an attempt gets gates.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..circuits.circuit import Circuit
from ..circuits.permute import interleaved_order, permute_values
from ..circuits.verify import require
from ..registry import Registry
from ..targets.table import IntervalTable
from . import code_strategies, relation

@dataclass
class Problem:
    target: object            # htmc.targets.Target (callable on [0,1]^d)
    table: IntervalTable
    eps: float
    space: relation.CodeSpace
    deadline: float

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Attempt:
    """One method's circuit in one format: input resolution k, m = bits_out output bits, step 2^-shift, offset.

    `optimal_in_format` is an exact minimum only among circuits of this format (DESIGN §2.3 'Exact minima'):
    another k, m, step or offset may need fewer gates. `exact_rounded` (grid domain only) says that every cell
    accepts exactly one code in this format, so the circuit computes the exactly rounded table: the rung has
    saturated (DESIGN §2.3 'Saturation').
    """
    method: str
    method_version: str
    strategy: str
    k: int
    bits_in: int
    bits_out: int
    shift: int
    offset: float
    gates: int | None
    aig_nodes: int | None
    max_error: float | None
    verified: bool
    optimal_in_format: bool
    seconds: float
    note: str = ""
    exact_rounded: bool = False
    circuit: Circuit | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("circuit")
        return d


METHODS: Registry[Callable[[Problem], list[Attempt]]] = Registry("search method")
# Version 2 of every method (issue 12): the accepted codes are decided exactly (no float slack, so no attempt is
# 5.7e-14 over eps), with the offset rebased to the lowest accepted code; exact also tries m+1 output bits.


def make_attempt(problem: Problem, method: str, strategy: str, circuit: Circuit | None, seconds: float,
             aig: int | None = None, optimal: bool = False, note: str = "", own_decoder: bool = False,
             space: relation.CodeSpace | None = None) -> Attempt:
    """Verify (the only way an attempt gets gates) and wrap a method's circuit.

    Circuits get the format's decoder (`space`, by default the problem's) unless the method chose its own output
    format (own_decoder). The method's circuit object is not changed.
    """
    t, sp = problem.table, space or problem.space
    if circuit is not None and not own_decoder:
        circuit = dataclasses.replace(circuit, decoder=sp.decoder)
    dec = circuit.decoder if circuit is not None else sp.decoder
    m = len(circuit.outputs) if circuit is not None else sp.m
    base = dict(method=method, method_version=METHODS.version(method), strategy=strategy, k=t.k,
                bits_in=t.n_inputs, bits_out=m, shift=dec.shift, offset=dec.offset, seconds=seconds)
    if circuit is None:
        return Attempt(**base, gates=None, aig_nodes=None, max_error=None, verified=False,
                       optimal_in_format=False, note=note)
    v = require(circuit, t, problem.eps)
    return Attempt(**base, gates=circuit.size, aig_nodes=aig if aig is not None else circuit.aig_nodes,
                   max_error=v.max_error, verified=True, optimal_in_format=optimal, note=note,
                   exact_rounded=_exact_rounded(t, problem.eps, dec, m), circuit=circuit)


def _exact_rounded(table: IntervalTable, eps: float, decoder, m: int) -> bool:
    """True on the grid domain when every cell accepts exactly one m-bit code under `decoder`."""
    if table.domain != "grid":
        return False
    uL, uH = relation.accepted_codes(table, eps, decoder)
    return bool(np.all(np.maximum(uL, 0) == np.minimum(uH, (1 << m) - 1)))


def input_orders(problem: Problem, interleave: bool) -> list[tuple[str, list[int]]]:
    """(label suffix, permutation) pairs to try: the table's own order, and the interleaved one when d >= 2."""
    t = problem.table
    orders = [("", list(range(t.n_inputs)))]
    if interleave and t.d >= 2 and t.k >= 2:
        orders.append(("/interleaved", interleaved_order(t.d, t.k)))
    return orders


def strategy_codes(problem: Problem, names: list[str], order: list[int] | None = None
                   ) -> list[tuple[str, np.ndarray]]:
    """(name, codes) per strategy; with `order` (a permutation, htmc.circuits.permute) the codes are over the
    permuted input code, chosen in that order.

    Why in that order: `msb_dc` fills don't-cares by merging cofactors, top input variable first, so its choice
    depends on the order the synthesis reads. Filled in the table's order and permuted afterwards, the
    interleaved tables kept the table order's merges: holder_random d=3 s=1 at eps=0.1 (18 bits), lupanov
    gave 42,825 gates that way and 18,195 with the codes chosen in the interleaved order (issue 15).
    """
    space, table = problem.space, problem.table
    if order is not None and order != list(range(table.n_inputs)):
        space = dataclasses.replace(space, uL=permute_values(space.uL, order), uH=permute_values(space.uH, order))
        table = dataclasses.replace(table, lo=permute_values(table.lo, order), hi=permute_values(table.hi, order))
    out = []
    for name in names:
        u = code_strategies.STRATEGIES.get(name)(space, table)
        if u is not None:
            out.append((name, u))
    return out


def ordered_codes(problem: Problem, names: list[str], interleave: bool
                  ) -> Iterator[tuple[str, list[int], np.ndarray]]:
    """(label, permutation, codes over the permuted input code) per strategy, in every input order to try (the
    table's, then the interleaved one), lazily: a method synthesizes the codes and renames its circuit's inputs
    back with the permutation, and may stop when its budget is spent before the next codes are chosen."""
    for name in names:
        for suffix, p in input_orders(problem, interleave):
            for _, u in strategy_codes(problem, [name], p):
                yield name + suffix, p, u

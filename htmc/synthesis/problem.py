"""What every search method gets and returns (DESIGN §2.3): the Problem (table, ε, code space), the Attempt (one
verified circuit in one format), the METHODS registry, and `make_attempt`, the only way an attempt gets gates.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..circuits.circuit import Circuit
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


def strategy_codes(problem: Problem, names: list[str]) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in names:
        u = code_strategies.STRATEGIES.get(name)(problem.space, problem.table)
        if u is not None:
            out.append((name, u))
    return out


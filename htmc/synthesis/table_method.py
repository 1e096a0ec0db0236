"""The `table` method: a shared multiplexer tree over the chosen codes, the baseline every method must beat."""
from __future__ import annotations

import time

from ..circuits.builder import CircuitBuilder
from .problem import METHODS, Attempt, Problem, make_attempt, strategy_codes

MAX_TABLE_INPUTS = 20


@METHODS.register("table", "2")
def table_method(problem: Problem) -> list[Attempt]:
    """Multiplexer tree over the input bits from the chosen codes: the baseline every method must beat."""
    out = []
    n = problem.table.n_inputs
    if n > MAX_TABLE_INPUTS:
        return out
    for name, u in strategy_codes(problem, ["round", "msb_dc"]):
        t0 = time.monotonic()
        b = CircuitBuilder(n)
        bits = b.lut(b.inputs, [int(x) for x in u], problem.space.m)
        c = b.build(bits, problem.space.decoder)
        out.append(make_attempt(problem, "table", name, c, time.monotonic() - t0))
    return out

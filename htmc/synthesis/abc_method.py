"""The ABC methods: `abc` (codes that use the interval slack) and `abc_round` (the plainly rounded table)."""
from __future__ import annotations

import time

from . import code_strategies
from .abc_tool import AbcError, synthesize
from .problem import METHODS, Attempt, Problem, make_attempt, strategy_codes

MAX_ABC_INPUTS = 16     # a 2^16-row PLA goes through ABC in 1-20 s (STACK-NOTES)


def _abc(problem: Problem, strategies: list[str], method: str) -> list[Attempt]:
    out = []
    if problem.table.n_inputs > MAX_ABC_INPUTS:
        return out
    for name, u in strategy_codes(problem, strategies):
        if problem.time_left() <= 0:
            break
        t0 = time.monotonic()
        try:
            res = synthesize(code_strategies.columns(u, problem.space.m),
                             timeout_s=min(600.0, max(5.0, problem.time_left() + 30)))
        except AbcError as e:  # a timeout on one strategy must not discard the circuits already verified
            out.append(make_attempt(problem, method, name, None, time.monotonic() - t0, note=str(e).splitlines()[0]))
            continue
        out.append(make_attempt(problem, method, name, res.circuit, res.seconds, aig=res.aig_nodes))
    return out


@METHODS.register("abc_round", "2")
def abc_round_method(problem: Problem) -> list[Attempt]:
    """ABC on the plainly rounded table: same script, no slack. The reference the slack methods must beat."""
    return _abc(problem, ["round"], "abc_round")


@METHODS.register("abc", "2")
def abc_method(problem: Problem) -> list[Attempt]:
    """ABC on tables whose codes exploit the interval slack (trailing zeros, MSB-first don't-cares)."""
    return _abc(problem, ["msb_dc", "trailing_zeros"], "abc")

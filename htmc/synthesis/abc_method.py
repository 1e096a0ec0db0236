"""The ABC methods: `abc` (codes that use the interval slack) and `abc_round` (the plainly rounded table).

For d >= 2, `abc` also synthesizes the table over the interleaved input code (every coordinate's MSB first,
htmc.circuits.permute) and renames the circuit's inputs back, which costs no gates; both circuits are verified
and recorded, so the search keeps the smaller. Why: ABC's `collapse` builds its BDD in the PLA's input order,
and the row-major order puts one coordinate's low bits next to the other's high bits.
"""
from __future__ import annotations

import time

from ..circuits.permute import rename_inputs
from . import code_strategies
from .abc_tool import AbcError, synthesize
from .problem import METHODS, Attempt, Problem, make_attempt, ordered_codes

MAX_ABC_INPUTS = 16     # a 2^16-row PLA goes through ABC in 1-20 s (STACK-NOTES)


def _abc(problem: Problem, strategies: list[str], method: str, interleave: bool = False) -> list[Attempt]:
    out = []
    if problem.table.n_inputs > MAX_ABC_INPUTS or problem.space.m == 0:
        return out      # m = 0: the target is a constant within eps, a 0-gate circuit that `table` returns
    for label, p, u in ordered_codes(problem, strategies, interleave):
        if problem.time_left() <= 0:
            return out
        t0 = time.monotonic()
        try:
            res = synthesize(code_strategies.columns(u, problem.space.m),
                             timeout_s=min(600.0, max(5.0, problem.time_left() + 30)))
        except AbcError as e:  # a timeout on one strategy must not discard the circuits already verified
            out.append(make_attempt(problem, method, label, None, time.monotonic() - t0,
                                    note=str(e).splitlines()[0]))
            continue
        out.append(make_attempt(problem, method, label, rename_inputs(res.circuit, p), res.seconds,
                                aig=res.aig_nodes, note=f"abc flow {res.flow}"))
    return out


@METHODS.register("abc_round", "4")   # 3: the ABC portfolio (abc_portfolio); 4: its Reed-Muller flows
def abc_round_method(problem: Problem) -> list[Attempt]:
    """ABC on the plainly rounded table: same script, no slack. The reference the slack methods must beat."""
    return _abc(problem, ["round"], "abc_round")


@METHODS.register("abc", "6")   # 3: interleaved input order; 4: the ABC portfolio; 5: its Reed-Muller flows;
# 6: the interleaved codes are chosen in that order (problem.strategy_codes)
def abc_method(problem: Problem) -> list[Attempt]:
    """ABC on tables whose codes exploit the interval slack (trailing zeros, MSB-first don't-cares), in the
    table's input order and, for d >= 2, the interleaved one. Version 3: the interleaved order."""
    return _abc(problem, ["msb_dc", "trailing_zeros"], "abc", interleave=True)

"""The `arith` method: fixed-point piecewise polynomials (htmc.synthesis.piecewise), for 1-d targets."""
from __future__ import annotations

import time

from htmc.synthesis.piecewise import arith_circuit
from .problem import METHODS, Attempt, Problem, make_attempt


@METHODS.register("arith", "2")
def arith_method(problem: Problem) -> list[Attempt]:
    """Fixed-point piecewise polynomials from gate-level adders and multipliers (1-D smooth functions)."""
    if problem.table.d != 1 or problem.time_left() <= 0:
        return []
    t0 = time.monotonic()
    c = arith_circuit(problem.target, problem.table, problem.eps, budget_s=max(1.0, problem.time_left()))
    if c is None:
        return [make_attempt(problem, "arith", "piecewise", None, time.monotonic() - t0, note="nothing verified")]
    return [make_attempt(problem, "arith", "piecewise", c, time.monotonic() - t0, own_decoder=True)]

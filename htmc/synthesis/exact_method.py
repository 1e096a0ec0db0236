"""The `exact` method: SAT exact synthesis under the ε relation itself, optimal within its format."""
from __future__ import annotations

import numpy as np

from . import relation
from .problem import METHODS, Attempt, Problem, make_attempt
from .sat_exact import exact_synthesis

MAX_EXACT_ROWS_INPUTS = 4  # SAT exact synthesis is practical to ~8 gates on 4-5 inputs


@METHODS.register("exact", "2")
def exact_method(problem: Problem) -> list[Attempt]:
    """SAT exact synthesis under the ε relation itself (every out-of-interval word forbidden), at the problem's m
    output bits and at m+1 (one more bit can lower the minimum: relation.code_space). Each attempt is optimal in
    its own format only."""
    t = problem.table
    if t.n_inputs > MAX_EXACT_ROWS_INPUTS:
        return []
    out = []
    wider = relation.code_space(t, problem.eps, problem.space.decoder.shift, extra_bits=1)
    for sp in (problem.space, wider):
        if problem.time_left() <= 0:
            break
        allowed = [np.arange(lo, hi + 1) for lo, hi in zip(sp.uL, sp.uH)]
        res = exact_synthesis(t.n_inputs, allowed, sp.m, budget_s=max(1.0, problem.time_left()))
        note = "" if res.circuit is not None else f"budget ran out; no circuit below {res.lower_bound} gates"
        out.append(make_attempt(problem, "exact", f"relation_m{sp.m}", res.circuit, res.seconds,
                            optimal=res.optimal, note=note, space=sp))
    return out

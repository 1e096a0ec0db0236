"""Circuit search under an error bound: C̄(f, ε) of DESIGN §2.3.

Over input resolutions k, output formats (m, s, a) and methods, within a time budget, keep the smallest circuit
that passes the verifier. Every attempt is recorded, not only the winner, so analysis can compare methods.
Methods live in one registry; each gets a `Problem` (table, ε, code space) and returns verified circuits only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..registry import did_you_mean
from . import relation
from .abc_method import MAX_ABC_INPUTS
from .decomp_method import MAX_DECOMP_INPUTS
from .lupanov import MAX_LUPANOV_INPUTS
from .problem import METHODS, Attempt, Problem

DEFAULT_GRID_BITS = 4

DEFAULT_METHODS = ("table", "abc", "arith", "exact", "datapath", "mc")   # the last two: targets with a formula, mixtures
# methods that choose their own output format run once per resolution, not once per output step
OWN_FORMAT = frozenset({"arith", "datapath", "mc"})


# methods that take tables past ABC's 16 input bits; every other method keeps the search at MAX_ABC_INPUTS
WIDE_METHODS = {"decomp": MAX_DECOMP_INPUTS, "lupanov": MAX_LUPANOV_INPUTS}


def max_inputs_for(methods) -> int:
    """The most input bits a search with these methods may choose: 16, or 24 with decomp or lupanov."""
    return max([MAX_ABC_INPUTS] + [WIDE_METHODS.get(m, MAX_ABC_INPUTS) for m in methods])


def check_methods(names: list[str]) -> list[str]:
    for n in names:
        METHODS.entry(n)  # raises with a did-you-mean
    return list(names)


def _resolutions(target, eps: float, domain: str, bits: int | None, max_inputs: int) -> list[int]:
    """Input resolutions to try: the coarsest feasible k and one finer (more slack per cell)."""
    if domain == "grid":
        return [bits or DEFAULT_GRID_BITS]
    if bits is not None:
        return [bits]
    if eps <= 0:
        raise ValueError("eps must be > 0 on the box domain (a real function is never exact on a cell); "
                         "use --domain grid for eps = 0")
    ks = []
    for k in range(1, max_inputs // target.d + 1):
        if relation.feasible(target.table(k, "box"), eps):
            ks.append(k)
            if len(ks) == 2:
                break
    if not ks:
        wider = "" if max_inputs >= max(WIDE_METHODS.values()) else (
            f" with these methods ({', '.join(f'{m} reaches {b}' for m, b in WIDE_METHODS.items())})")
        raise ValueError(f"eps={eps} needs more than {max_inputs} input bits for this function{wider}")
    return ks


@dataclass
class SearchResult:
    best: Attempt | None
    attempts: list[Attempt]
    seconds: float

    @property
    def exact_rounded(self) -> bool:
        """The best circuit computes the exactly rounded grid table (the rung has saturated, DESIGN §2.3)."""
        return bool(self.best and self.best.exact_rounded)


def search(target, eps: float, domain: str = "box", methods=DEFAULT_METHODS, budget_s: float = 60,
           bits: int | None = None, max_inputs: int | None = None, thorough: bool = True) -> SearchResult:
    """C̄(target, eps): the smallest verified circuit over resolutions, formats and methods.

    thorough=False tries one resolution and the coarsest output step (4x fewer syntheses; for quick looks).
    """
    if not eps >= 0 or eps == float("inf"):   # also NaN and inf
        raise ValueError(f"eps must be >= 0 and finite, got {eps}")
    if domain not in ("box", "grid"):
        raise ValueError(f"unknown domain '{domain}': {did_you_mean(domain, ['box', 'grid'])}")
    methods = check_methods(list(methods))
    max_inputs = max_inputs_for(methods) if max_inputs is None else max_inputs
    start = time.monotonic()
    attempts: list[Attempt] = []
    # quick mode takes the finer of the two resolutions: at the coarsest one a steep cell leaves almost no slack,
    # which forces a fine output step (sin at eps=0.05: 10 output bits at k=6)
    for k in _resolutions(target, eps, domain, bits, max_inputs)[0 if thorough else -1:]:
        table = target.table(k, domain)
        s = relation.coarsest_shift(table, eps)
        if s is None:
            continue
        for shift in (s, s + 1)[: None if thorough else 1]:
            space = relation.code_space(table, eps, shift)
            for name in methods:
                if shift != s and name in OWN_FORMAT:
                    continue
                problem = Problem(target, table, eps, space, start + budget_s)
                if problem.time_left() <= 0 and attempts:
                    break
                attempts += METHODS.get(name)(problem)
    ok = [a for a in attempts if a.verified]
    best = min(ok, key=lambda a: (a.gates, a.bits_in, a.bits_out, a.seconds)) if ok else None
    return SearchResult(best, attempts, time.monotonic() - start)

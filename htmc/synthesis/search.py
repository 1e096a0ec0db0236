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
from ..circuits.verify import VerificationError
from .exact_method import MAX_EXACT_ROWS_INPUTS
from .lupanov import MAX_LUPANOV_INPUTS
from .problem import METHODS, Attempt, Problem, make_attempt
from .table_method import MAX_TABLE_INPUTS

DEFAULT_GRID_BITS = 4

# The methods of a task kind's default params: this list (and its order) is part of existing task keys, so it
# stays as it is; the order the search runs them in is SCHEDULE's.
DEFAULT_METHODS = ("table", "abc", "arith", "exact", "datapath", "mc")   # the last two: targets with a formula, mixtures
# methods that choose their own output format run once per resolution, not once per output step
OWN_FORMAT = frozenset({"arith", "datapath", "mc"})


# methods that take tables past ABC's 16 input bits; every other method keeps the search at MAX_ABC_INPUTS
WIDE_METHODS = {"decomp": MAX_DECOMP_INPUTS, "lupanov": MAX_LUPANOV_INPUTS}

# The order methods run in, whatever order they are given in (issue 23): the baseline and the cheap, structured
# methods first, then the table syntheses that can use up any budget. With abc before datapath, product at 8 bits
# on the grid (eps 2^-8) spent its 60 s budget in ABC and returned 10,875 gates; datapath alone gives 211 in 6 s.
# Methods not listed (plugins) run last, in the order given.
SCHEDULE = ("table", "exact", "datapath", "arith", "mc", "abc", "abc_round", "decomp", "lupanov")
# Past 16 input bits the multiplexer tree is no longer cheap (10-20 s a strategy at 18 bits on a loaded 2-core box,
# which spent a 60 s budget before lupanov or decomp ran): lupanov, fast and often far smaller, goes first there.
SCHEDULE_WIDE = ("lupanov", "table", "exact", "datapath", "arith", "mc", "decomp", "abc", "abc_round")


def max_inputs_for(methods) -> int:
    """The most input bits a search with these methods may choose: 16, or 24 with decomp or lupanov."""
    return max([MAX_ABC_INPUTS] + [WIDE_METHODS.get(m, MAX_ABC_INPUTS) for m in methods])


def check_methods(names: list[str]) -> list[str]:
    for n in names:
        METHODS.entry(n)  # raises with a did-you-mean
    return list(names)


def default_methods(target, eps: float, domain: str = "box", bits: int | None = None,
                    tables: dict | None = None) -> list[str]:
    """The methods a search runs when none are named: DEFAULT_METHODS, plus decomp and lupanov when eps needs
    more than MAX_ABC_INPUTS input bits (issue 23: a ladder's fine rungs), since only they go past 16."""
    methods = list(DEFAULT_METHODS)
    if domain == "grid" or bits is not None:
        wide = target.d * (bits or DEFAULT_GRID_BITS) > MAX_ABC_INPUTS
    else:
        try:
            _resolutions(target, eps, domain, None, MAX_ABC_INPUTS, tables)
            wide = False
        except ValueError:
            wide = True
    return methods + [m for m in WIDE_METHODS if m not in methods] if wide else methods


def reach_hint(methods) -> str:
    """What to add when `methods` cannot reach the input bits a search needs: the exact --methods to use."""
    methods = list(methods or DEFAULT_METHODS)
    if max_inputs_for(methods) >= max(WIDE_METHODS.values()):
        return ""
    wider = methods + [m for m in WIDE_METHODS if m not in methods]
    reach = ", ".join(f"{m} reaches {b}" for m, b in WIDE_METHODS.items())
    return (f" with these methods ({reach}): use --methods {','.join(wider)} (a spec: methods: [{', '.join(wider)}]),"
            f" or leave the methods out and the default adds them where needed")


def _resolutions(target, eps: float, domain: str, bits: int | None, max_inputs: int,
                 tables: dict | None = None) -> list[int]:
    """Input resolutions to try: the coarsest feasible k and one finer (more slack per cell). `tables` (k -> box
    table), when given, keeps the tables of those two for the search: past 16 bits one takes minutes to make."""
    if domain == "grid":
        return [bits or DEFAULT_GRID_BITS]
    if bits is not None:
        return [bits]
    if eps <= 0:
        raise ValueError("eps must be > 0 on the box domain (a real function is never exact on a cell); "
                         "use --domain grid for eps = 0")
    ks = []
    for k in range(1, max_inputs // target.d + 1):
        table = tables[k] if tables is not None and k in tables else target.table(k, "box")
        if relation.feasible(table, eps):
            ks.append(k)
            if tables is not None:
                tables[k] = table
            if len(ks) == 2:
                break
    if not ks:
        raise ValueError(f"eps={eps} needs more than {max_inputs} input bits for this function")
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


def search(target, eps: float, domain: str = "box", methods=None, budget_s: float = 60,
           bits: int | None = None, max_inputs: int | None = None, thorough: bool = True) -> SearchResult:
    """C̄(target, eps): the smallest verified circuit over resolutions, formats and methods.

    methods=None runs default_methods(...). Resolution by resolution (the finer table is made only when its turn
    comes), every (format, method) pair gets its turn in SCHEDULE's order, with an even share of the budget left
    (a method that finishes early leaves its time to the next), and every pair leaves an attempt: a circuit, or a
    note saying why there is none ("not applicable: ...", "not run: the budget was spent", "dropped: ..." for a
    circuit that failed verification). thorough=False tries one resolution and the coarsest output step (4x fewer
    syntheses; for quick looks).
    """
    if not eps >= 0 or eps == float("inf"):   # also NaN and inf
        raise ValueError(f"eps must be >= 0 and finite, got {eps}")
    if domain not in ("box", "grid"):
        raise ValueError(f"unknown domain '{domain}': {did_you_mean(domain, ['box', 'grid'])}")
    tables: dict = {}
    methods = check_methods(list(methods) if methods is not None else
                            default_methods(target, eps, domain, bits, tables))
    max_inputs = max_inputs_for(methods) if max_inputs is None else max_inputs
    start = time.monotonic()
    try:
        # quick mode takes the finer of the two resolutions: at the coarsest one a steep cell leaves almost no
        # slack, which forces a fine output step (sin at eps=0.05: 10 output bits at k=6)
        ks = _resolutions(target, eps, domain, bits, max_inputs, tables)[0 if thorough else -1:]
    except ValueError as e:
        raise ValueError(f"{e}{reach_hint(methods) if max_inputs < max_inputs_for(WIDE_METHODS) else ''}") from None
    per_k = len(set(methods)) * (2 if thorough else 1)         # turns per resolution (an estimate for the shares)
    attempts: list[Attempt] = []
    for ik, k in enumerate(ks):
        spent = time.monotonic() >= start + budget_s and any(a.verified for a in attempts)
        if spent and k not in tables:   # do not spend minutes making a table nothing will use
            attempts += [_untabulated(target, name, k) for name in dict.fromkeys(methods)]
            continue
        slots = _slots(tables.pop(k) if k in tables else target.table(k, domain), eps, methods, thorough)
        for i, (name, table, space) in enumerate(slots):
            left = start + budget_s - time.monotonic()
            turns = len(slots) - i + per_k * (len(ks) - ik - 1)
            problem = Problem(target, table, eps, space, time.monotonic() + max(left, 0.0) / turns)
            if left <= 0 and any(a.verified for a in attempts):
                attempts.append(make_attempt(problem, name, "skipped", None, 0.0, note="not run: the budget was spent"))
                continue
            attempts += _run_method(name, problem)
    ok = [a for a in attempts if a.verified]
    best = min(ok, key=lambda a: (a.gates, a.bits_in, a.bits_out, a.seconds)) if ok else None
    return SearchResult(best, attempts, time.monotonic() - start)


def _slots(table, eps: float, methods: list[str], thorough: bool) -> list[tuple[str, object, object]]:
    """(method, table, code space) per turn at one resolution: the methods in SCHEDULE's order (SCHEDULE_WIDE's
    past 16 input bits; plugins last, as given), each over its output steps, except that the baseline `table` at
    the finer step goes last: it is a fallback that rarely wins where the others apply."""
    s = relation.coarsest_shift(table, eps)
    if s is None:
        return []
    schedule = SCHEDULE_WIDE if table.n_inputs > MAX_ABC_INPUTS else SCHEDULE
    rank = {m: i for i, m in enumerate(schedule)}
    order = dict.fromkeys(sorted(methods, key=lambda m: (rank.get(m, len(schedule)), methods.index(m))))
    shifts = (s, s + 1)[: None if thorough else 1]
    formats = [(relation.code_space(table, eps, shift), shift == s) for shift in shifts]
    turns = [(name, space) for name in order for space, first in formats if first or name not in OWN_FORMAT]
    late = [t for t in turns if t[0] == "table" and t[1] is not formats[0][0]]
    return [(name, table, space) for name, space in [t for t in turns if t not in late] + late]


def _untabulated(target, name: str, k: int) -> Attempt:
    """The note of a method not run at a resolution whose table was never made (so it has no output format)."""
    return Attempt(method=name, method_version=METHODS.version(name), strategy="skipped", k=k, bits_in=target.d * k,
                   bits_out=0, shift=0, offset=0.0, gates=None, aig_nodes=None, max_error=None, verified=False,
                   optimal_in_format=False, seconds=0.0,
                   note=f"not run: the budget was spent before the k={k} table was made (no output format)")


def _run_method(name: str, problem: Problem) -> list[Attempt]:
    """The method's attempts, or one attempt whose note says why there is no circuit."""
    t0 = time.monotonic()
    try:
        got = METHODS.get(name)(problem)
    except VerificationError as e:   # a method's bug: its candidate is dropped, never reported (DESIGN §2.2)
        return [make_attempt(problem, name, "dropped", None, time.monotonic() - t0,
                             note=f"dropped: a circuit failed verification ({e})")]
    if got:
        return got
    why = ("not run: the budget was spent" if problem.time_left() <= 0
           else f"not applicable: {_not_applicable(name, problem)}")
    return [make_attempt(problem, name, "skipped", None, time.monotonic() - t0, note=why)]


def _not_applicable(name: str, problem: Problem) -> str:
    """Why a method returned nothing for this problem (mirrors the methods' own entry checks)."""
    t, n = problem.table, problem.table.n_inputs
    if name in ("abc", "abc_round"):
        return f"more than {MAX_ABC_INPUTS} input bits" if n > MAX_ABC_INPUTS else "a constant within eps"
    reasons = {"table": f"more than {MAX_TABLE_INPUTS} input bits",
               "exact": f"more than {MAX_EXACT_ROWS_INPUTS} input bits (SAT exact synthesis is for tiny tables)",
               "arith": "1-d targets only" if t.d != 1 else "no circuit",
               "datapath": "no formula", "mc": "not a mixture of registered parts",
               "decomp": f"needs 2..{MAX_DECOMP_INPUTS} input bits",
               "lupanov": f"needs 2..{MAX_LUPANOV_INPUTS} input bits"}
    return reasons.get(name, "the method returned no circuit for this problem")

"""Circuit search under an error bound: C̄(f, ε) of DESIGN §2.3.

Over input resolutions k, output formats (m, s, a) and methods, within a time budget, keep the smallest circuit
that passes the verifier. Every attempt is recorded, not only the winner, so analysis can compare methods.
Methods live in one registry; each gets a `Problem` (table, ε, code space) and returns verified circuits only.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from . import codes
from .abc import AbcError, synthesize
from .circuit import Circuit
from .exact import exact_synthesis
from .registry import Registry, did_you_mean
from .table import IntervalTable
from .verify import require

MAX_ABC_INPUTS = 16     # a 2^16-row PLA goes through ABC in 1-20 s (STACK-NOTES)
MAX_TABLE_INPUTS = 20
MAX_EXACT_ROWS_INPUTS = 4  # SAT exact synthesis is practical to ~8 gates on 4-5 inputs
DEFAULT_GRID_BITS = 4


@dataclass
class Problem:
    target: object            # htmc.functions.Target (callable on [0,1]^d)
    table: IntervalTable
    eps: float
    space: codes.CodeSpace
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


def _attempt(problem: Problem, method: str, strategy: str, circuit: Circuit | None, seconds: float,
             aig: int | None = None, optimal: bool = False, note: str = "", own_decoder: bool = False,
             space: codes.CodeSpace | None = None) -> Attempt:
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
    uL, uH = codes.accepted_codes(table, eps, decoder)
    return bool(np.all(np.maximum(uL, 0) == np.minimum(uH, (1 << m) - 1)))


def _strategy_codes(problem: Problem, names: list[str]) -> list[tuple[str, np.ndarray]]:
    out = []
    for name in names:
        u = codes.STRATEGIES.get(name)(problem.space, problem.table)
        if u is not None:
            out.append((name, u))
    return out


@METHODS.register("table", "2")
def table_method(problem: Problem) -> list[Attempt]:
    """Multiplexer tree over the input bits from the chosen codes: the baseline every method must beat."""
    from .arith import CircuitBuilder
    out = []
    n = problem.table.n_inputs
    if n > MAX_TABLE_INPUTS:
        return out
    for name, u in _strategy_codes(problem, ["round", "msb_dc"]):
        t0 = time.monotonic()
        b = CircuitBuilder(n)
        bits = b.lut(b.inputs, [int(x) for x in u], problem.space.m)
        c = b.build(bits, problem.space.decoder)
        out.append(_attempt(problem, "table", name, c, time.monotonic() - t0))
    return out


def _abc(problem: Problem, strategies: list[str], method: str) -> list[Attempt]:
    out = []
    if problem.table.n_inputs > MAX_ABC_INPUTS:
        return out
    for name, u in _strategy_codes(problem, strategies):
        if problem.time_left() <= 0:
            break
        t0 = time.monotonic()
        try:
            res = synthesize(codes.columns(u, problem.space.m),
                             timeout_s=min(600.0, max(5.0, problem.time_left() + 30)))
        except AbcError as e:  # a timeout on one strategy must not discard the circuits already verified
            out.append(_attempt(problem, method, name, None, time.monotonic() - t0, note=str(e).splitlines()[0]))
            continue
        out.append(_attempt(problem, method, name, res.circuit, res.seconds, aig=res.aig_nodes))
    return out


@METHODS.register("abc_round", "2")
def abc_round_method(problem: Problem) -> list[Attempt]:
    """ABC on the plainly rounded table: same script, no slack. The reference the slack methods must beat."""
    return _abc(problem, ["round"], "abc_round")


@METHODS.register("abc", "2")
def abc_method(problem: Problem) -> list[Attempt]:
    """ABC on tables whose codes exploit the interval slack (trailing zeros, MSB-first don't-cares)."""
    return _abc(problem, ["msb_dc", "trailing_zeros"], "abc")


@METHODS.register("exact", "2")
def exact_method(problem: Problem) -> list[Attempt]:
    """SAT exact synthesis under the ε relation itself (every out-of-interval word forbidden), at the problem's m
    output bits and at m+1 (one more bit can lower the minimum: codes.code_space). Each attempt is optimal in
    its own format only."""
    t = problem.table
    if t.n_inputs > MAX_EXACT_ROWS_INPUTS:
        return []
    out = []
    wider = codes.code_space(t, problem.eps, problem.space.decoder.shift, extra_bits=1)
    for sp in (problem.space, wider):
        if problem.time_left() <= 0:
            break
        allowed = [np.arange(lo, hi + 1) for lo, hi in zip(sp.uL, sp.uH)]
        res = exact_synthesis(t.n_inputs, allowed, sp.m, budget_s=max(1.0, problem.time_left()))
        note = "" if res.circuit is not None else f"budget ran out; no circuit below {res.lower_bound} gates"
        out.append(_attempt(problem, "exact", f"relation_m{sp.m}", res.circuit, res.seconds,
                            optimal=res.optimal, note=note, space=sp))
    return out


@METHODS.register("arith", "2")
def arith_method(problem: Problem) -> list[Attempt]:
    """Fixed-point piecewise polynomials from gate-level adders and multipliers (1-D smooth functions)."""
    from .piecewise import arith_circuit
    if problem.table.d != 1 or problem.time_left() <= 0:
        return []
    t0 = time.monotonic()
    c = arith_circuit(problem.target, problem.table, problem.eps, budget_s=max(1.0, problem.time_left()))
    if c is None:
        return [_attempt(problem, "arith", "piecewise", None, time.monotonic() - t0, note="nothing verified")]
    return [_attempt(problem, "arith", "piecewise", c, time.monotonic() - t0, own_decoder=True)]


DEFAULT_METHODS = ("table", "abc", "arith", "exact")
# methods that choose their own output format run once per resolution, not once per output step
OWN_FORMAT = frozenset({"arith"})


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
        if target.table(k, "box").feasible(eps):
            ks.append(k)
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


def search(target, eps: float, domain: str = "box", methods=DEFAULT_METHODS, budget_s: float = 60,
           bits: int | None = None, max_inputs: int = MAX_ABC_INPUTS, thorough: bool = True) -> SearchResult:
    """C̄(target, eps): the smallest verified circuit over resolutions, formats and methods.

    thorough=False tries one resolution and the coarsest output step (4x fewer syntheses; for quick looks).
    """
    if not eps >= 0 or eps == float("inf"):   # also NaN and inf
        raise ValueError(f"eps must be >= 0 and finite, got {eps}")
    if domain not in ("box", "grid"):
        raise ValueError(f"unknown domain '{domain}': {did_you_mean(domain, ['box', 'grid'])}")
    methods = check_methods(list(methods))
    start = time.monotonic()
    attempts: list[Attempt] = []
    # quick mode takes the finer of the two resolutions: at the coarsest one a steep cell leaves almost no slack,
    # which forces a fine output step (sin at eps=0.05: 10 output bits at k=6)
    for k in _resolutions(target, eps, domain, bits, max_inputs)[0 if thorough else -1:]:
        table = target.table(k, domain)
        s = codes.coarsest_shift(table, eps)
        if s is None:
            continue
        for shift in (s, s + 1)[: None if thorough else 1]:
            space = codes.code_space(table, eps, shift)
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

"""The bit search of compiling (DESIGN §2.4 'the fewest bits that keep the verified error within ε'): which
(w_bits, a_bits) to emulate, which netlists to build, ABC on the few smallest, and the verified winner.
htmc.resnets.to_circuit is the compiler itself (quantize, emulate, compile_net); htmc.resnets.compile_ladder runs
this search at every rung of a ladder."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from htmc.circuits.circuit import Circuit
from htmc.circuits.verify import Verification, VerificationError, verify
from htmc.resnets.to_circuit import (COMPILE_VERSION, DEFAULT_BITS, MAX_INPUTS, Emulation, compile_net, emulate,
                                     float_error)
from htmc.synthesis.abc_tool import AbcError, optimize_with_abc, run_script
from htmc.synthesis.code_strategies import columns
from htmc.targets.table import IntervalTable

ABC_CANDIDATES = 2        # the few smallest raw netlists that go through ABC in compile_search
MIN_ABC_S = 10            # ABC gets at least this long, even when the search budget is nearly spent
TABLE_ROUTE_MAX_INPUTS = 12  # the table route (route="table", _from_table) is offered up to here only
ROUTES = ("netlist", "table")



@dataclass
class CompileResult:
    """Outcome of compile_search. circuit is None when nothing verified; `reason` then says why."""
    circuit: Circuit | None = None
    gates: int | None = None
    w_bits: int | None = None
    a_bits: int | None = None
    max_error: float | None = None                # verified error of `circuit` (htmc.circuits.verify)
    seconds: float = 0.0
    tried: list[tuple[int, int, float, int | None]] = field(default_factory=list)
    # (w_bits, a_bits, emulated error, gates of the compiled circuit or None when not built)
    k: int = 0
    eps: float = 0.0
    float_error: float = math.nan                 # the float net's error on the same cells (the floor)
    aig_nodes: int | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    version: str = COMPILE_VERSION

    def to_json(self) -> dict:
        return {"gates": self.gates, "aig_nodes": self.aig_nodes, "w_bits": self.w_bits, "a_bits": self.a_bits,
                "k": self.k, "eps": self.eps, "max_error": self.max_error, "float_error": self.float_error,
                "seconds": self.seconds, "reason": self.reason, "notes": self.notes, "compile_version": self.version,
                "tried": [list(t) for t in self.tried]}


def _pareto_min(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pairs with no other pair at most as large in both coordinates (the 'fewest bits' choices)."""
    return [p for p in points if not any(o != p and o[0] <= p[0] and o[1] <= p[1] for o in points)]


def _checked_bits(eps: float, bits) -> list[int]:
    """compile_search's bit choices, sorted and deduplicated, once eps and bits are valid."""
    if not (isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    bits = sorted({int(v) for v in bits})
    if not bits or bits[0] < 0:
        raise ValueError(f"bits must be a non-empty set of ints >= 0, got {bits}")
    return bits


@dataclass
class _Search:
    """What one compile_search run compiles against, and its clock."""
    net: dict[str, np.ndarray]
    table: IntervalTable
    eps: float
    budget_s: float
    optimize: bool
    method: str
    t0: float
    route: str = "netlist"

    def over_budget(self) -> bool:
        return time.monotonic() - self.t0 > self.budget_s

    def budget_left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)


def _passes(s: _Search, w: int, a: int, cache: dict) -> bool:
    em = _emulated(s, w, a, cache)
    return em is not None and em.max_error <= s.eps


def _bisect_first(s: _Search, n: int, ok) -> int:
    """The least i < n with ok(i), by bisection, given that ok(n - 1) holds (errors fall as bits grow; a
    non-monotone step can hide a smaller pass, never give a wrong one, since each pass is an emulated error and
    the verifier has the last word). Stops where the budget runs out, at a passing index."""
    lo, hi = 0, n - 1
    while lo < hi and not s.over_budget():
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _smallest_passing(s: _Search, w: int, cands: list[int], cache: dict) -> int | None:
    """The smallest a_bits in cands whose emulation at (w, a) is within eps (_bisect_first)."""
    if not cands or s.over_budget() or not _passes(s, w, cands[-1], cache):
        return None
    return cands[_bisect_first(s, len(cands), lambda i: _passes(s, w, cands[i], cache))]


def _emulated(s: _Search, w: int, a: int, cache: dict) -> Emulation | None:
    """emulate at (w, a), once per table: compile_ladder shares `cache` across the eps of one resolution."""
    key = (id(s.table), w, a)
    if key not in cache:
        try:
            cache[key] = emulate(s.net, s.table, w, a)
        except ValueError:  # overflow of the 64-bit emulation at this many bits
            cache[key] = None
    return cache[key]


NON_MONOTONE = 2.0   # _top_passing_w: how far over eps a w_bits' error may be before fewer bits are not tried


def _first_w(s: _Search, bits: list[int], cache: dict) -> int:
    """Index in bits of the smallest w_bits whose emulation at the most a_bits is within eps (_bisect_first);
    len(bits) when even the most bits fail. Below it no a_bits passes, and scanning those w_bits one emulation
    each spent the whole compile budget on nets of ~1,000 units at 2^14 cells (0.6 s an emulation; issue 21 C)."""
    top = _top_passing_w(s, bits, cache)
    if top is None:
        return len(bits)
    return _bisect_first(s, top + 1, lambda i: _passes(s, bits[i], bits[-1], cache))


def _top_passing_w(s: _Search, bits: list[int], cache: dict) -> int | None:
    """The largest index j with (bits[j], bits[-1]) within eps, scanning down from the most bits. The error is
    not monotone in the bits: holder_random(d=1, s=0.75) at eps 0.0125, k = 13, 415 units emulates to 0.01336
    at (16, 16) but 0.01211 at (15, 15) (rounding of a large output scale), so a failing top does not end the
    search. The scan stops where the error passes NON_MONOTONE·eps (fewer bits only round more coarsely) or the
    budget runs out."""
    for j in range(len(bits) - 1, -1, -1):
        if s.over_budget():
            return None
        em = _emulated(s, bits[j], bits[-1], cache)
        if em is not None and em.max_error <= s.eps:
            return j
        if em is not None and em.max_error > NON_MONOTONE * s.eps:
            return None
    return None


def emulates_within(net: dict[str, np.ndarray], table: IntervalTable, eps: float, bits=DEFAULT_BITS,
                    budget_s: float = math.inf) -> bool:
    """Whether some w_bits at the most a_bits emulates within eps (_top_passing_w's scan from the top): what
    compile_search needs to find a circuit. One emulation at the most bits is not enough, the error not being
    monotone in the bits."""
    s = _Search(net, table, eps, budget_s, False, "fused", time.monotonic())
    return _top_passing_w(s, _checked_bits(eps, bits), {}) is not None


def _staircase(s: _Search, bits: list[int], cache: dict | None = None
               ) -> tuple[dict[tuple[int, int], Emulation], dict[tuple[int, int], float]]:
    """Emulated error of each (w_bits, a_bits) scanned, and the emulations of those within eps.

    For each w_bits the smallest passing a_bits (bisection), below every smaller w_bits' pass (anything else is
    dominated): the Pareto-minimal pairs, in O(|bits| log |bits|) emulations rather than |bits|^2.
    """
    cache = {} if cache is None else cache
    ems: dict[tuple[int, int], Emulation] = {}
    a_limit = math.inf
    first = _first_w(s, bits, cache)
    for w in bits[first:]:
        a = _smallest_passing(s, w, [b for b in bits if b < a_limit], cache)
        if a is not None:
            ems[(w, a)] = cache[(id(s.table), w, a)]
            a_limit = a
    if not ems and first < len(bits):      # the budget ran out in the scan: the pass _first_w found stands
        ems[(bits[first], bits[-1])] = cache[(id(s.table), bits[first], bits[-1])]
    errors = {(w, a): em.max_error for (tid, w, a), em in cache.items() if tid == id(s.table) and em is not None}
    return ems, errors


def _raw_netlists(s: _Search, cands: list[tuple[int, int]], ems: dict[tuple[int, int], Emulation]
                  ) -> dict[tuple[int, int], Circuit]:
    """The unoptimized circuit of each candidate pair, as many as the budget allows (at least one)."""
    raw = {}
    for p in cands:
        if s.over_budget() and raw:
            break
        raw[p] = compile_net(s.net, s.table, *p, optimize=False, method=s.method, emulation=ems[p])
    return raw


def _optimized(s: _Search, p: tuple[int, int], c: Circuit, res: CompileResult) -> Circuit:
    """The raw netlist optimized by ABC within the budget (the raw one when ABC fails)."""
    try:
        return optimize_with_abc(c, timeout_s=max(MIN_ABC_S, s.budget_left()))
    except AbcError as e:  # past the budget: the raw netlist stands
        res.notes.append(f"w_bits={p[0]}, a_bits={p[1]}: ABC skipped ({str(e).splitlines()[0][:120]})")
        return c


def _from_table(s: _Search, p: tuple[int, int], em: Emulation, res: CompileResult) -> Circuit | None:
    """Up to TABLE_ROUTE_MAX_INPUTS input bits: ABC from the quantized net's exact output table (em.u, the function
    compile_net's netlist computes, code for code) instead of from the netlist's structure. At 7 inputs that is
    ~0.2 s and several times smaller (8,502 -> 265 gates for sin at eps 0.1), where rewriting a 10k-gate netlist
    with &dch took ~20 s, and building the netlist itself ~0.6 s. One ABC flow (run_script), not the portfolio:
    each ABC process costs 0.2-1 s and a compile tries two resolutions per rung. None when ABC fails."""
    try:
        got = run_script(columns(em.u, max(1, int(em.u.max()).bit_length())), deepsyn_s=0,
                         timeout_s=max(MIN_ABC_S, s.budget_left())).circuit
    except AbcError as e:
        res.notes.append(f"w_bits={p[0]}, a_bits={p[1]}: ABC from the table failed ({str(e).splitlines()[0][:120]})")
        return None
    return Circuit(got.n_inputs, got.gates, got.outputs, em.decoder)


def _candidates(s: _Search, pareto: list[tuple[int, int]], ems: dict, res: CompileResult
                ) -> list[tuple[tuple[int, int], Circuit]]:
    """(pair, circuit to verify) for the pairs worth optimizing.

    route "netlist" (the net's own circuit, issue 21 B): the ABC_CANDIDATES smallest raw netlists, each through
    ABC, which may rewrite the netlist but never starts from its output table. route "table": the one pair with
    the fewest output bits (then fewest bits in all) through _from_table, a circuit-search candidate whose codes
    the net chose, reported in its own column (gates_table), never as the net's gates."""
    if s.route == "table":
        p = min(pareto, key=lambda q: (int(ems[q].u.max()).bit_length(), sum(q), q))
        c = _from_table(s, p, ems[p], res)
        return [] if c is None else [(p, c)]
    raw = _raw_netlists(s, pareto, ems)
    picked = sorted(raw, key=lambda q: (raw[q].size, sum(q), q))[:ABC_CANDIDATES]
    return [(q, _optimized(s, q, raw[q], res) if s.optimize and raw[q].size else raw[q]) for q in picked]


def _best_verified(s: _Search, cands: list[tuple[tuple[int, int], Circuit]], errors: dict[tuple[int, int], float],
                   gates: dict[tuple[int, int], int]) -> tuple[int, tuple[int, int], Circuit, Verification] | None:
    """The candidates verified: the one with the fewest gates within eps as (gates, pair, circuit, verification),
    or None. Fills gates per pair. A verified error other than the emulated one is a compiler bug."""
    best: tuple[int, tuple[int, int], Circuit, Verification] | None = None
    for p, c in cands:
        v = verify(c, s.table)
        if abs(v.max_error - errors[p]) > 1e-9 * max(1.0, abs(errors[p])):
            raise VerificationError(f"compiled circuit at w_bits={p[0]}, a_bits={p[1]} has verified error "
                                    f"{v.max_error:.9g} but its emulation gave {errors[p]:.9g}: a compiler bug")
        gates[p] = c.size
        if v.within(s.eps) and (best is None or (c.size, sum(p)) < (best[0], sum(best[1]))):
            best = (c.size, p, c, v)
    return best


def compile_search(net: dict[str, np.ndarray], table: IntervalTable, eps: float, bits=DEFAULT_BITS,
                   budget_s: float = 60, optimize: bool = True, method: str = "fused",
                   cache: dict | None = None, float_err: float | None = None, route: str = "netlist"
                   ) -> CompileResult:
    """Fewest weight and activation bits whose compiled circuit verifies within eps, and the fewest gates.

    1. The float net's error on the cells (float_error) is a floor: above eps, no bits help; return no circuit.
    2. Emulate (w_bits, a_bits) pairs (cheap, integer numpy) along a staircase that finds the Pareto-minimal
       pairs within eps (bisection over a_bits per w_bits; `cache` shares emulations across calls on one table).
    3. The candidates (_candidates: route "netlist", the net's own circuit: the ABC_CANDIDATES smallest raw
       netlists; route "table": ABC from one pair's output table, up to TABLE_ROUTE_MAX_INPUTS input bits) are
       optimized with ABC (within budget_s), verified, and the one with the fewest gates is returned. tried
       records every emulated pair with its gates where one was built.
    The verified error of each built circuit must equal its emulated error (else VerificationError: a bug).
    """
    if route not in ROUTES:
        raise ValueError(f"unknown compile route {route!r}: valid choices: {', '.join(ROUTES)}")
    if route == "table" and table.n_inputs > TABLE_ROUTE_MAX_INPUTS:
        raise ValueError(f"the table route takes at most {TABLE_ROUTE_MAX_INPUTS} input bits, the table has "
                         f"{table.n_inputs}")
    s = _Search(net, table, eps, budget_s, optimize, method, time.monotonic(), route)
    bits = _checked_bits(eps, bits)
    fe = float_error(net, table) if float_err is None else float_err   # compile_ladder knows it per resolution
    res = CompileResult(k=table.k, eps=float(eps), float_error=fe)
    if fe > eps:
        res.reason = (f"the float net itself is too inaccurate: its sup error on the {1 << table.n_inputs} cells "
                      f"(k={table.k}) is {fe:.6g} > eps={eps:.6g}; no quantization can meet eps")
        res.seconds = time.monotonic() - s.t0
        return res
    ems, errors = _staircase(s, bits, cache)
    gates: dict[tuple[int, int], int] = {}
    passing = [p for p in errors if p in ems]
    if not passing:
        res.reason = (f"no (w_bits, a_bits) in {bits[0]}..{bits[-1]} emulates within eps={eps:.6g} (float net "
                      f"error {fe:.6g}; best quantized {min(errors.values(), default=math.inf):.6g}); allow more bits")
    else:
        best = _best_verified(s, _candidates(s, _pareto_min(passing), ems, res), errors, gates)
        if best is not None:
            size, p, c, v = best
            res.circuit, res.gates, res.aig_nodes = c, size, c.aig_nodes
            res.w_bits, res.a_bits, res.max_error = p[0], p[1], v.max_error
        else:
            res.reason = "no compiled circuit verified within eps"
    res.tried = [(w, a, errors[(w, a)], gates.get((w, a))) for (w, a) in sorted(errors)]
    res.seconds = time.monotonic() - s.t0
    return res

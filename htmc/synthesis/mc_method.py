"""The `mc` method: circuits for mixtures sum_i w_i f_i built from their parts, the constructive side of the
convexity theorem (DESIGN §2.6).

Three routes, each verified exhaustively (make_attempt), each choosing its own output format (own_decoder):
- `exact_sum`: every part, with weights w_i quantized to c_i / 2^P (largest-remainder apportionment of 2^P; exact
  when every w_i 2^P is an integer, e.g. walsh_mixture with m a power of 2); P grows until verification passes.
- `sampled`: Monte Carlo. N parts drawn i.i.d. with probability |w_i| / sum |w| (importance sampling); the
  estimator (1/N) sum_t f_{j_t} has sup error ~ sqrt(log(cells) / N), so N ~ eps^-2 log(cells) parts suffice
  whatever m is: the upper bound C(f, eps) = O~(min(m, eps^-2)). N is chosen by trying (doubling, then
  bisection); verification decides.
- `multilevel`: for parts that are general targets with their own ladders (Hölder parts of `mixture`), the
  multilevel Monte Carlo estimator sum_l (1/N_l) sum_t (f_{j_t}^(l) - f_{j_t}^(l-1)), f^(l) the part's circuit at
  delta_l = eps 2^(L-l-2) (Giles, "Multilevel Monte Carlo methods", Acta Numerica 2015, §1-2): level differences
  are small, so fine levels need few samples (N_l = N_0 4^-l here, a fixed simple schedule).
How a part becomes a circuit: a Walsh part w_S is its structure, an XOR chain of |S| - 1 gates; a general part is
its best circuit at a finer eps (delta) from the existing search (table, abc, arith), cached per (part, k, delta).
The sum: one bit heap (htmc.circuits.builder.BitHeap) over every term's output bits at a common scale; sample
weights c_t / 2^P (N samples, c_t in {1, 2}, sum c_t = 2^P with P = ceil(log2 N)) make the scale a power of two,
so the decoder (offset + u 2^-shift) does the division for free; low bits are then rounded off as far as the
verified slack allows.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..circuits.builder import CircuitBuilder, FALSE, TRUE
from ..circuits.circuit import CONST0, CONST1, Circuit, Decoder
from ..circuits.verify import verify
from ..targets.table import sub_up
from .problem import METHODS, Attempt, Problem, make_attempt

SEED = 0                    # the Monte Carlo draws are fixed: the same problem gives the same circuit
DRAWS = 4                   # independent samples tried at each N (a sample that misses eps is not the last word)
MAX_SAMPLES = 1 << 13       # N is never tried beyond this, nor beyond max(SAMPLES_PER_PART * m, MIN_CAP)
SAMPLES_PER_PART = 4        # past ~4 m draws nearly every part is drawn (coupon collector) and exact_sum is smaller
MIN_CAP = 256               # ... but a few parts with unequal sampled weights can still beat equal ones (cheap)
PART_METHODS = ("table", "abc", "arith")
PART_DELTAS = (0.5, 0.25)   # part accuracy delta / eps tried by exact_sum and sampled for general parts
_PART_CACHE: dict[tuple, Circuit | None] = {}


@dataclass(frozen=True)
class Part:
    """One part of a mixture: weight (>= 0; the sign is in `sign`), and either a Walsh mask (walsh_mixture: bits
    of the n-bit code, bit 1 the most significant) or a general target."""
    weight: float
    sign: int = 1
    mask: int | None = None
    n_bits: int | None = None
    target: object | None = None


def mixture_parts(target) -> list[Part] | None:
    """The parts of a mixture-like target (walsh_mixture, mixture), or None for any other target."""
    if getattr(target, "name", "") == "walsh_mixture":
        n = target.params["n"]
        return [Part(float(w), int(s), int(mk), n) for w, s, mk in zip(target.weights, target.signs, target.masks)]
    if getattr(target, "name", "") == "mixture":
        return [Part(float(w), 1, target=p) for w, p in zip(target.weights, target.parts)]
    return None


@dataclass(frozen=True)
class Term:
    """A vector of builder literals u (LSB first) whose value is offset + u 2^-shift."""
    bits: tuple
    offset: Fraction
    shift: int


# ----------------------------------------------------------------------------------------------------------------
# Parts as circuits
# ----------------------------------------------------------------------------------------------------------------

def walsh_term(b: CircuitBuilder, part: Part, k: int) -> Term:
    """sign * w_S as a 1-bit term: the XOR chain of the bits in S (|S| - 1 gates) is the parity p, w_S = 1 - 2p,
    and the term's bit is [sign * w_S = +1] (p or ~p: free), so its value -1 + 2 bit is sign * w_S. Bit j of the
    n-bit code (j = 1 the MSB) is input k - j at resolution k (DESIGN §2.1). A part reading a bit finer than k
    takes both signs in every cell: its best value there is 0, a term with no bits (verification decides)."""
    n = part.n_bits
    positions = [j for j in range(1, n + 1) if part.mask >> (n - j) & 1]
    if max(positions) > k:
        return Term((), Fraction(0), 0)
    lit = b.input(k - positions[0])
    for j in positions[1:]:
        lit = b.xor(lit, b.input(k - j))
    bit = lit ^ 1 if part.sign > 0 else lit
    return Term((bit,), Fraction(-1), -1)


def paste(b: CircuitBuilder, circuit: Circuit) -> list[int]:
    """The output literals of `circuit` rebuilt inside b (same inputs; hash-consed with what b already has)."""
    if circuit.n_inputs != b.n_inputs:
        raise ValueError(f"circuit has {circuit.n_inputs} inputs, the builder {b.n_inputs}")
    lits = {CONST0: FALSE, CONST1: TRUE, **{2 + i: b.input(i) for i in range(circuit.n_inputs)}}
    for g, (op, sa, sb) in enumerate(circuit.gates):
        lits[circuit.gate_signal(g)] = b.gate(op, lits[sa], lits[sb])
    return [lits[o] for o in circuit.outputs]


def part_circuit(target, table, delta: float, budget_s: float) -> Circuit | None:
    """The best verified circuit of a general part at accuracy delta on the table's resolution (the existing
    search, cached per part, resolution and delta); None when nothing verifies (e.g. k too coarse for delta)."""
    from .search import search       # here, not at import: search imports the registry this module fills
    key = (repr(target), target.version, table.k, table.domain, float(delta))
    if key not in _PART_CACHE:
        try:
            best = search(target, delta, table.domain, PART_METHODS, budget_s, bits=table.k, thorough=False).best
        except ValueError:
            best = None
        _PART_CACHE[key] = best.circuit if best is not None else None
    return _PART_CACHE[key]


def general_term(b: CircuitBuilder, circuit: Circuit) -> Term:
    return Term(tuple(paste(b, circuit)), Fraction(circuit.decoder.offset), circuit.decoder.shift)


# ----------------------------------------------------------------------------------------------------------------
# The sum: weighted terms into one bit heap
# ----------------------------------------------------------------------------------------------------------------

def combine(b: CircuitBuilder, items: list[tuple[Term, int, int, bool]], drop: int = 0
            ) -> tuple[list[int], Decoder] | None:
    """Output bits and decoder of sum over items (term, c, P, negative) of +-(c / 2^P) * term, rounded to a step
    of 2^drop units of the common scale (error < 2^(drop - 1) units). None if the offset is not a float.

    At the common scale 2^-top (top = max shift + P), the integer H = sum +-c u 2^(top - shift - P) is a bit heap;
    negative terms are lifted by K = their largest value, so the heap's H + K is unsigned, and rounding adds
    2^(drop-1) before dropping `drop` low bits (BitHeap.result floors).
    """
    top = max(t.shift + p for t, _, p, _ in items)
    h = b.heap()
    const, hmax, lift = Fraction(0), 0, 0
    for t, c, p, neg in items:
        const += (-1 if neg else 1) * c * t.offset / (1 << p)
        col = top - t.shift - p
        span = (c * ((1 << len(t.bits)) - 1)) << col
        for q in range(c.bit_length()):
            if c >> q & 1:
                h.add_vector(list(t.bits), shift=col + q, negative=neg)
        lift, hmax = (lift + span, hmax) if neg else (lift, hmax + span)
    h.add_const(lift)
    half = (1 << drop) >> 1
    h.add_const(half)
    width = max(1, ((hmax + lift + half) >> drop).bit_length())
    offset = const - Fraction(lift) * Fraction(2) ** -top
    if Fraction(float(offset)) != offset:
        return None
    return h.result(width, drop), Decoder(float(offset), top - drop)


def realize(problem: Problem, make_items) -> tuple[Circuit, float] | None:
    """The smallest verified circuit of make_items(builder) (a list for combine, or None) over output roundings:
    verify the unrounded sum, then drop as many low bits as its slack eps - error allows (and one more, which
    verification may still accept). None when even the unrounded sum misses eps."""
    t, eps = problem.table, problem.eps
    b = CircuitBuilder(t.n_inputs)
    items = make_items(b)
    if not items:
        return None
    best = None
    drops = [0]
    while drops:
        drop = drops.pop(0)
        made = combine(b, items, drop)
        if made is None:
            continue
        c = b.build(*made)
        err = verify(c, t).max_error
        if err > eps:
            continue
        if best is None or c.size < best[0].size:
            best = (c, err)
        if drop == 0 and eps > err:
            top = made[1].shift
            d = max(0, math.floor(math.log2(eps - err)) + 1 + top)
            drops = [d + 1, d] if d > 0 else [1]
    return best


# ----------------------------------------------------------------------------------------------------------------
# Weights: quantized (exact_sum) and sampled
# ----------------------------------------------------------------------------------------------------------------

def apportion(p: np.ndarray, total: int) -> np.ndarray:
    """Integers c_i >= 0 summing to total, c_i = floor(p_i total) plus one for the largest remainders."""
    q = p / p.sum() * total
    c = np.floor(q).astype(np.int64)
    rest = total - int(c.sum())
    if rest > 0:
        c[np.argsort(-(q - c), kind="stable")[:rest]] += 1
    return c


def sample_counts(draws: np.ndarray, n: int, m: int) -> tuple[np.ndarray, int]:
    """Per part, the summed weight c_t of the first n draws, c_t in {1, 2} with sum 2^P, P = ceil(log2 n):
    the first 2^P - n draws count twice. The estimator sum_t c_t f_{j_t} / 2^P is unbiased."""
    p = max(0, (n - 1).bit_length())
    c = np.ones(n, dtype=np.int64)
    c[: (1 << p) - n] = 2
    return np.bincount(draws[:n], weights=c, minlength=m).astype(np.int64), p


def _importance(parts: list[Part]) -> np.ndarray:
    w = np.array([p.weight for p in parts], dtype=np.float64)
    return w / w.sum()


# ----------------------------------------------------------------------------------------------------------------
# The routes
# ----------------------------------------------------------------------------------------------------------------

def part_delta(target, table, delta: float) -> float:
    """delta, raised to the least accuracy the part's own cells allow at this resolution (half its largest
    oscillation, plus 1/8 of it so that the accepted intervals hold output grid points of a few bits: a mixture
    can be smoother than its parts). Fine levels of a multilevel estimator may so collapse onto coarser ones."""
    own = target.table(table.k, table.domain)
    half = float(np.max(sub_up(own.hi, own.lo))) * (0.5 + 0.0625)
    return max(delta, half)


def _terms(problem: Problem, parts: list[Part], frac: float):
    """make_terms(b, used) -> {i: Term} for the parts with used[i], general parts at accuracy frac * eps (see
    part_delta); None when a used part has no circuit."""
    budget = max(1.0, min(30.0, problem.time_left() / (len(parts) + 1)))

    def make(b: CircuitBuilder, used) -> dict | None:
        out = {}
        for i in np.flatnonzero(used):
            part = parts[i]
            if part.mask is not None:
                term = walsh_term(b, part, problem.table.k)
            else:
                delta = part_delta(part.target, problem.table, frac * problem.eps)
                c = part_circuit(part.target, problem.table, delta, budget)
                term = general_term(b, c) if c is not None else None
            if term is None:
                return None
            out[int(i)] = term
        return out
    return make


def _weighted(make_terms, counts: np.ndarray, p: int):
    def make_items(b):
        terms = make_terms(b, counts > 0)
        return None if terms is None else [(terms[i], int(counts[i]), p, False) for i in terms]
    return make_items


def exact_sum(problem: Problem, parts: list[Part]) -> tuple[Circuit, str] | None:
    """Every part, weights quantized to c_i / 2^P for P = ceil(log2 m) + r, r = 0, 1, ... until verified."""
    w = _importance(parts)
    base = max(0, (len(parts) - 1).bit_length())
    fracs = [0.0] if all(p.mask is not None for p in parts) else PART_DELTAS
    for frac in fracs:             # the coarsest part accuracy that verifies: coarser parts are smaller
        make_terms = _terms(problem, parts, frac)
        for r in range(0, 24):
            if problem.time_left() <= 0:
                return None
            got = realize(problem, _weighted(make_terms, apportion(w, 1 << (base + r)), base + r))
            if got is not None:
                acc = "exact parts" if frac == 0 else f"parts at delta >= {frac:g} eps"
                return got[0], f"all {len(parts)} parts, weights c_i/2^{base + r}, {acc}"
    return None


def sampled(problem: Problem, parts: list[Part]) -> tuple[Circuit, str] | None:
    """N i.i.d. parts by importance, N by doubling from 1 and then bisection; at each N, DRAWS independent
    samples (seeds SEED, SEED+1, ...) are tried and the first that verifies counts; the smallest verified circuit."""
    m = len(parts)
    cap = min(MAX_SAMPLES, max(SAMPLES_PER_PART * m, MIN_CAP))
    streams = [np.random.default_rng(SEED + i).choice(m, size=cap, p=_importance(parts)) for i in range(DRAWS)]
    make_terms = _terms(problem, parts, PART_DELTAS[0])
    found: dict[int, tuple[Circuit, int] | None] = {}

    def ok(n: int) -> bool:
        if n not in found:
            found[n] = None
            for i, draws in enumerate(streams):
                if problem.time_left() <= 0:
                    break
                counts, p = sample_counts(draws, n, m)
                got = realize(problem, _weighted(make_terms, counts, p))
                if got:
                    found[n] = (got[0], SEED + i)
                    break
        return found[n] is not None

    lo, hi = 0, 1
    while hi <= cap and problem.time_left() > 0 and not ok(hi):
        lo, hi = hi, 2 * hi
    if hi > cap or not found.get(hi):
        return None
    while hi - lo > 1 and problem.time_left() > 0:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    n, (c, seed) = min(((n, f) for n, f in found.items() if f), key=lambda nf: (nf[1][0].size, nf[0]))
    return c, f"N={n} sampled parts of {m} (seed {seed}), tried N in {sorted(found)}"


def multilevel(problem: Problem, parts: list[Part]) -> tuple[Circuit, str] | None:
    """Multilevel MC over part circuits at delta_l = eps 2^(L-l-2), l = 0..L, with N_l = ceil(N_0 4^-l) draws
    of level differences; N_0 by doubling. Only for general parts (a Walsh part is exact at every eps < 1)."""
    if all(p.mask is not None for p in parts):
        return None
    m, eps = len(parts), problem.eps
    levels = max(1, round(math.log2(1.0 / eps)) - 1)
    fracs = [2.0 ** (levels - lv - 2) for lv in range(levels + 1)]
    makers = [_terms(problem, parts, f) for f in fracs]
    rng = np.random.default_rng(SEED)
    streams = [rng.choice(m, size=MAX_SAMPLES, p=_importance(parts)) for _ in fracs]
    n0 = 1
    while n0 <= MAX_SAMPLES and problem.time_left() > 0:   # draws aggregate per part: N_0 costs bits, not parts
        got = realize(problem, _levels_items(makers, streams, n0, m))
        if got is not None:
            return got[0], f"multilevel: {levels + 1} levels, delta_l >= {[f'{f:g}' for f in fracs]} eps, N_0={n0}"
        n0 *= 2
    return None


def _levels_items(makers, streams, n0: int, m: int):
    def make_items(b):
        items = []
        for lv, stream in enumerate(streams):
            counts, p = sample_counts(stream, max(1, -(-n0 // 4 ** lv)), m)
            fine = makers[lv](b, counts > 0)
            coarse = makers[lv - 1](b, counts > 0) if lv else {}
            if fine is None or coarse is None:
                return None
            for i in fine:
                items.append((fine[i], int(counts[i]), p, False))
                if lv:
                    items.append((coarse[i], int(counts[i]), p, True))
        return items
    return make_items


ROUTES = {"exact_sum": exact_sum, "sampled": sampled, "multilevel": multilevel}


@METHODS.register("mc", "1")
def mc_method(problem: Problem) -> list[Attempt]:
    """Mixtures from their parts: all parts (exact_sum), Monte Carlo samples (sampled) and multilevel MC."""
    parts = mixture_parts(problem.target)
    if parts is None or problem.time_left() <= 0:
        return []
    out = []
    for name, route in ROUTES.items():
        t0 = time.monotonic()
        got = route(problem, parts)
        if got is None:
            if name != "multilevel" or any(p.mask is None for p in parts):
                out.append(make_attempt(problem, "mc", name, None, time.monotonic() - t0, note="nothing verified"))
            continue
        out.append(make_attempt(problem, "mc", name, got[0], time.monotonic() - t0, note=got[1], own_decoder=True))
    return out

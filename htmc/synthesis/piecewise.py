"""The `arith` search method: fixed-point piecewise polynomials for smooth 1-d targets (DESIGN §2.3, §6).

Why: truth-table synthesis makes smooth functions look like gamma ~ 1, when a structured evaluator is polylog in
1/eps. This is the classic hardware route for function evaluation (FloPoCo's FixFunctionByPiecewisePoly, de
Dinechin, Joldes & Pasca 2010): the top t input bits pick a segment, a table (`lut`) gives that segment's
coefficients, and Horner's rule p(u) = c0 + u (c1 + u (c2 + u c3)) runs on gate-level multipliers and adders over
the low L = k - t bits, read as u = z / 2^L in [0, 1).

Every stage is integer arithmetic that `emulate` reproduces bit for bit in numpy, so a parameter choice is
accepted or rejected before any gate is built; the verifier (htmc.circuits.verify.require) still has the last word on
every circuit returned.

Fixed-point plan (all integers):
- acc_d = C_d[seg]; for i = d-1 .. 0: acc_i = C_i[seg] + floor((kept(acc_{i+1} * zq_i) + comp_i) / 2^drop_i).
  zq_i is the top lz_i bits of z, with lz_i as small as the size of acc_{i+1} allows (a high-order term is small,
  so it needs a coarse u); kept() leaves out partial products below a cut column (a truncated multiplier),
  and comp_i is the mean of what was left out plus the rounding half. One bit heap per stage fuses the product
  and the addition of C_i.
- acc_i for i >= 1 carries `frac` fraction bits; the output acc_0 carries `out_frac`.
- C_0 is not rounded from the fit: for each segment it is the integer that puts every cell inside its accepted
  interval [hi - eps, lo + eps] (an exact interval intersection), preferring multiples of a common 2^T, so the
  low bits of the table are constant. Its global minimum moves into the decoder offset, so outputs are
  unsigned at no cost.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from htmc.synthesis.abc_tool import AbcError, optimize_with_abc
from htmc.circuits.builder import CircuitBuilder, value_width
from htmc.circuits.circuit import Circuit, Decoder
from htmc.synthesis import relation
from htmc.targets.table import IntervalTable
from htmc.circuits.verify import require, VerificationError

try:  # BLAS threads on tiny per-segment systems only spin, badly so on a loaded machine (10x measured); optional
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

MAX_DEGREE = 3
MAX_TABLE_BITS = 12      # a degree-0 table over more index bits is never the smallest candidate, and slow to build
FIT_ITERS = 25           # Lawson iterations: weighted least squares converging to the minimax fit
SCAN_POINTS, SCAN_ITERS = 64, 10  # the quick fit that picks the segment count
FIT_TARGET = 0.85        # a (t, degree) is tried when the float fit uses at most this share of the slack
ABC_CANDIDATES = 2       # the best few candidates also go through optimize_with_abc


@dataclass
class Lut:
    values: np.ndarray   # per segment, already shifted right by `tz`
    tz: int              # common trailing zeros: the table stores values >> tz
    width: int
    signed: bool


@dataclass
class Stage:
    coef: Lut | None     # C_i (set last for stage 0, once C_0 is chosen)
    lz: int              # bits of z used (its top lz bits)
    shift: int           # product columns move up by shift (when it has fewer fraction bits than the result)
    cut: int             # partial products below this column are left out
    drop: int            # result = floor(sum / 2^drop)
    comp: int            # compensation constant added before the floor
    width: int           # result width
    signed: bool


@dataclass
class Plan:
    k: int
    t: int
    degree: int
    frac: int
    out_frac: int
    guard: int
    top: Lut                                   # C_degree (or C_0 when degree = 0)
    stages: list[Stage] = field(default_factory=list)
    decoder: Decoder = field(default_factory=Decoder)

    def params(self) -> dict:
        return {"t": self.t, "degree": self.degree, "frac": self.frac, "out_frac": self.out_frac,
                "guard": self.guard}


# --- fitting -----------------------------------------------------------------------------------------------------

def fit_segments(center: np.ndarray, slack: np.ndarray, t: int, degree: int, iters: int = FIT_ITERS
                 ) -> tuple[np.ndarray, float]:
    """Per-segment polynomial coefficients in u = z / 2^L (shape (2^t, degree+1)) and the fit's quality.

    Minimizes max |p - center| / slack per segment by Lawson's iteratively reweighted least squares (Lawson
    1961; Rice & Usow 1968): the weighted minimax fit is the one that best fits the accepted intervals, whose
    half-widths `slack` vary from cell to cell in the box domain. Quality = max over cells of |p - center| /
    slack: at most 1 means the unquantized polynomial is inside every accepted interval.
    """
    n_seg, n = 1 << t, center.size >> t
    y = center.reshape(n_seg, n)
    r = np.maximum(slack, 1e-300).reshape(n_seg, n)
    v = np.vander(np.arange(n) / n, degree + 1, increasing=True)
    outer = (v[:, :, None] * v[:, None, :]).reshape(n, -1)  # every segment shares the points: Gram = w @ outer
    w = np.full((n_seg, n), 1.0 / n) / r ** 2                # weighted LS of the residual scaled by 1/slack
    best_c = np.zeros((n_seg, degree + 1))
    best_q = np.full(n_seg, np.inf)
    ridge = 1e-13 * np.eye(degree + 1)
    for _ in range(iters):
        gram = (w @ outer).reshape(n_seg, degree + 1, degree + 1)
        rhs = (w * y) @ v
        scale = np.maximum(np.abs(np.diagonal(gram, axis1=1, axis2=2)).max(axis=1), 1e-300)
        c = np.linalg.solve(gram / scale[:, None, None] + ridge, (rhs / scale[:, None])[..., None])[..., 0]
        e = np.abs(y - c @ v.T) / r
        q = e.max(axis=1)
        better = q < best_q
        best_c[better], best_q[better] = c[better], q[better]
        w = w * e  # Lawson's update: weight grows where the scaled error is large
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
        w = np.maximum(w, 1e-12 * w.max(axis=1, keepdims=True))  # keep every point in play
    return best_c, float(best_q.max())


# --- exact integer emulation -------------------------------------------------------------------------------------

def _lut(values: np.ndarray) -> Lut:
    values = np.asarray(values, dtype=np.int64)
    nz = values[values != 0]
    tz = int(min((int(v) & -int(v)).bit_length() - 1 for v in np.unique(nz))) if nz.size else 0
    vals = values >> tz
    lo, hi = int(vals.min()), int(vals.max())
    return Lut(vals, tz, value_width(lo, hi, lo < 0), lo < 0)


def _kept_product(a: np.ndarray, width: int, signed: bool, zq: np.ndarray, cut: int, shift: int) -> np.ndarray:
    """The value BitHeap.add_product(a, zq, signed, False, shift, cut) sums: partial products a_p z_q 2^(p+q+shift)
    with p+q+shift >= cut, the top bit of a weighing -2^(width-1) when signed."""
    p0 = min(max(0, cut - shift), width)  # bits of a from p0 up meet every bit of zq
    high = (a >> p0) << p0 if p0 < width else np.zeros_like(a)  # two's complement: the sign is included
    total = high * zq
    for p in range(p0):  # low bits of a meet only the high bits of zq
        low = cut - shift - p
        term = (((a >> p) & 1) * ((zq >> low) << low)) << p
        total = total - term if (signed and p == width - 1) else total + term
    return total << shift


def _stage(acc: np.ndarray, acc_w: int, acc_signed: bool, z: np.ndarray, L: int, frac_in: int, frac_out: int,
           guard: int) -> tuple[np.ndarray, dict]:
    """floor((kept(acc * zq) + comp) / 2^drop), the product term of one Horner stage, and its parameters."""
    mag = float(np.abs(acc).max()) * 2.0 ** -frac_in
    # truncating u to lz bits costs at most mag * 2^-lz: keep that under half an output unit
    lz = 0 if mag == 0 else int(np.clip(math.ceil(frac_out + 1 + math.log2(mag)), 0, L))
    zq = z >> (L - lz)
    pf = frac_in + lz
    shift, drop = max(0, frac_out - pf), max(0, pf - frac_out)
    cut = max(0, drop - guard)
    kept = _kept_product(acc, acc_w, acc_signed, zq, cut, shift)
    full = (acc * zq) << shift
    comp = int(round(float((full - kept).mean()))) + ((1 << (drop - 1)) if drop else 0)
    return (kept + comp) >> drop, {"lz": lz, "shift": shift, "cut": cut, "drop": drop, "comp": comp}


def _choose_c0(p0: np.ndarray, table: IntervalTable, eps: float, t: int, out_frac: int
               ) -> tuple[np.ndarray, int] | None:
    """Per segment, the integer C0 that puts C0 + p0 inside every cell's accepted interval, as a multiple of the
    largest common 2^T; None if some segment has no such integer."""
    scale = 2.0 ** out_frac
    lower = np.ceil((table.hi - eps) * scale - p0).reshape(1 << t, -1).max(axis=1)
    upper = np.floor((table.lo + eps) * scale - p0).reshape(1 << t, -1).min(axis=1)
    if np.any(lower > upper):
        return None
    lower, upper = lower.astype(np.int64), upper.astype(np.int64)
    tz = 0
    while tz < 40 and np.all(((upper >> (tz + 1)) << (tz + 1)) >= lower):
        tz += 1
    step = 1 << tz
    lo_m, hi_m = -((-lower) // step), upper // step  # multiples of 2^T inside [lower, upper]
    mid = np.clip(np.round((lower + upper) / (2.0 * step)).astype(np.int64), lo_m, hi_m)
    return mid * step, tz


def emulate(coefs: np.ndarray, table: IntervalTable, eps: float, t: int, frac: int, out_frac: int, guard: int
            ) -> Plan | None:
    """The fixed-point plan for these coefficients and formats, or None when some cell would miss its interval.
    Bit-exact with `build_plan`, so a plan returned here verifies."""
    k = table.k
    L, degree = k - t, coefs.shape[1] - 1
    if max(frac, out_frac) + k + 8 > 62:  # products of acc (frac bits + a few) and z (<= k bits) must fit int64
        return None
    codes = np.arange(1 << k, dtype=np.int64)
    seg, z = codes >> L, codes & ((1 << L) - 1)
    stages: list[Stage] = []
    p0 = np.zeros(1 << k, dtype=np.int64)
    top = None
    if degree:
        top = _lut(np.round(coefs[:, degree] * 2.0 ** frac))
        # the multiplier reads the table shifted up by its trailing zeros: tz constant-0 bits below it
        acc, acc_w, acc_signed = (top.values << top.tz)[seg], top.width + top.tz, top.signed
        for i in range(degree - 1, -1, -1):
            f_out = frac if i else out_frac
            prod, prm = _stage(acc, acc_w, acc_signed, z, L, frac, f_out, guard)
            if i == 0:
                p0 = prod
                stages.append(Stage(None, **prm, width=0, signed=False))  # coef and width set below
                break
            coef = _lut(np.round(coefs[:, i] * 2.0 ** frac))
            acc = (coef.values << coef.tz)[seg] + prod
            lo, hi = int(acc.min()), int(acc.max())
            acc_w, acc_signed = value_width(lo, hi, lo < 0), lo < 0
            stages.append(Stage(coef, **prm, width=acc_w, signed=acc_signed))
    chosen = _choose_c0(p0, table, eps, t, out_frac)
    if chosen is None:
        return None
    c0, tz = chosen
    out = c0[seg] + p0
    step = 1 << tz
    base = (int(out.min()) // step) * step  # into the decoder offset; keeps C0 a multiple of 2^T
    c0, out = c0 - base, out - base
    decoder = Decoder(base * 2.0 ** -out_frac, out_frac)
    c0_lut = Lut(c0 >> tz, tz, value_width(int((c0 >> tz).min()), int((c0 >> tz).max()), bool(c0.min() < 0)),
                 bool(c0.min() < 0))
    width = max(1, int(out.max()).bit_length())
    if degree == 0:
        # outputs are the table itself: its trailing zeros are dropped from the outputs and the decoder
        return Plan(k, t, 0, frac, out_frac, guard, c0_lut, [], Decoder(decoder.offset, out_frac - tz))
    stages[-1].coef, stages[-1].width = c0_lut, width
    return Plan(k, t, degree, frac, out_frac, guard, top, stages, decoder)


# --- gates ---------------------------------------------------------------------------------------------------------

def build_plan(plan: Plan) -> Circuit:
    """The B2 circuit of a plan: coefficient tables, then one fused multiply-add bit heap per Horner stage."""
    b = CircuitBuilder(plan.k)
    L = plan.k - plan.t
    z, seg = b.inputs[:L], b.inputs[L:]

    def table(lut: Lut) -> list[int]:
        vals = [int(v) for v in lut.values]
        return b.const(vals[0], lut.width) if plan.t == 0 else b.lut(seg, vals, lut.width)

    if plan.degree == 0:
        return b.build(table(plan.top), plan.decoder)
    acc, acc_signed = b.shift(table(plan.top), plan.top.tz), plan.top.signed
    for st in plan.stages:
        h = b.heap()
        h.add_product(acc, z[L - st.lz:], acc_signed, False, shift=st.shift, cut=st.cut)
        h.add_const(st.comp)
        h.add_vector(table(st.coef), shift=st.drop + st.coef.tz, signed=st.coef.signed)
        acc, acc_signed = h.result(st.width, st.drop), st.signed
    return b.build(acc, plan.decoder)


# --- search --------------------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    size: int
    circuit: Circuit
    params: dict


def _segment_choices(table: IntervalTable, center: np.ndarray, slack: np.ndarray, eps: float, degree: int,
                     deadline: float) -> list[tuple[int, np.ndarray | None]]:
    """(t, coefficients) worth trying for this degree: the fewest segments whose float fit fits, and one more."""
    k, out = table.k, []
    top = min(k, MAX_TABLE_BITS) if degree == 0 else k
    for t in range(0, top + 1):
        if (1 << (k - t)) < degree + 1 or time.perf_counter() > deadline:
            break
        if degree == 0:  # exact test: some constant fits every cell of each segment
            ok = np.all((table.hi - eps).reshape(1 << t, -1).max(axis=1) <=
                        (table.lo + eps).reshape(1 << t, -1).min(axis=1))
            coefs = None
        else:  # a quick fit on at most SCAN_POINTS points per segment decides; the kept t gets a full fit
            stride = max(1, (1 << (k - t)) // SCAN_POINTS)
            ok = fit_segments(center[::stride], slack[::stride], t, degree, SCAN_ITERS)[1] <= FIT_TARGET
            coefs = fit_segments(center, slack, t, degree)[0] if ok else None
        if ok:
            out.append((t, coefs))
            if len(out) == 2:
                break
    return out


def search(f: Callable | None, table: IntervalTable, eps: float, budget_s: float = 30, use_abc: bool = True
           ) -> tuple[Circuit | None, dict]:
    """arith_circuit with its record: the winning parameters and how many plans were emulated and built."""
    if threadpool_limits is None:
        return _search(table, eps, budget_s, use_abc)
    with threadpool_limits(1):
        return _search(table, eps, budget_s, use_abc)


def _search(table: IntervalTable, eps: float, budget_s: float, use_abc: bool) -> tuple[Circuit | None, dict]:
    if table.d != 1:
        raise ValueError(f"the arith method handles 1-d targets; this table has d={table.d}")
    start = time.perf_counter()
    deadline = start + budget_s
    info: dict = {"emulated": 0, "built": 0}
    if eps <= 0 or not relation.feasible(table, eps):  # eps = 0 leaves no slack for a polynomial: other methods' job
        return None, {**info, "reason": "infeasible: eps <= 0 or some cell oscillates by more than 2 eps"}
    found = _plan_candidates(table, eps, deadline, info)
    if not found:
        return None, {**info, "reason": "no plan met eps", "seconds": time.perf_counter() - start}
    found.sort(key=lambda c: c.size)
    if use_abc:
        _add_abc_candidates(found, deadline)
        found.sort(key=lambda c: c.size)
    for cand in found:  # the verifier has the last word; a failure here would be a bug in emulate
        try:
            v = require(cand.circuit, table, eps)
        except VerificationError:
            info.setdefault("rejected", []).append(cand.params)
            continue
        info["candidates"] = sorted((c.size, tuple(c.params.values())) for c in found)
        return cand.circuit, {**info, **cand.params, "gates": cand.size, "max_error": v.max_error,
                              "seconds": time.perf_counter() - start}
    return None, {**info, "reason": "no candidate verified", "seconds": time.perf_counter() - start}


def _formats(degree: int, fo0: int) -> list[tuple[int, int, int]]:
    """(frac, out_frac, guard) to try for a degree, from the output step fo0 up."""
    if degree == 0:  # the common 2^T of C0 finds the coarsest output grid by itself
        return [(fo0 + 5, fo0 + 5, 0)]
    return [(fr, fo, g) for fo in range(fo0, fo0 + 4) for fr in range(fo, fo + 4) for g in (1, 3)]


def _plan_candidates(table: IntervalTable, eps: float, deadline: float, info: dict) -> list[Candidate]:
    """The built circuit of every plan that emulates within eps, over degrees, segment counts and formats;
    counts the plans emulated and built in info."""
    center = 0.5 * (table.lo + table.hi)
    slack = eps - 0.5 * (table.hi - table.lo)
    # output step: the C0 choice needs about one grid point per accepted interval, whose half-width is the slack
    # (capped: a cell with almost no slack should not blow up every format)
    fo0 = max(0, min(math.ceil(-math.log2(2 * float(slack.min()))), math.ceil(-math.log2(eps)) + 6))
    found: list[Candidate] = []
    for degree in range(MAX_DEGREE + 1):
        for t, coefs in _segment_choices(table, center, slack, eps, degree, deadline):
            worked: set[tuple[int, int]] = set()  # (out_frac, guard) that some frac met
            for frac, out_frac, guard in _formats(degree, fo0):
                if time.perf_counter() > deadline:
                    break
                if len({fo for fo, _ in worked}) >= 2 and out_frac > max(fo for fo, _ in worked):
                    break  # a larger output format only adds bits
                if (out_frac, guard) in worked:
                    continue  # a larger frac only adds bits
                info["emulated"] += 1
                plan = emulate(coefs if degree else np.zeros((1 << t, 1)), table, eps, t, frac, out_frac, guard)
                if plan is None:
                    continue
                worked.add((out_frac, guard))
                circuit = build_plan(plan)
                info["built"] += 1
                found.append(Candidate(circuit.size, circuit, plan.params()))
    return found


def _add_abc_candidates(found: list[Candidate], deadline: float) -> None:
    """Append the ABC-optimized circuit of each of the ABC_CANDIDATES first candidates where ABC makes it smaller."""
    for cand in found[:ABC_CANDIDATES]:
        if time.perf_counter() > deadline:
            break
        try:  # the verifier checks every candidate afterwards, so no check here
            opt = optimize_with_abc(cand.circuit, check=False, timeout_s=max(5.0, deadline - time.perf_counter()))
        except AbcError:
            continue
        if opt.size < cand.size:
            found.append(Candidate(opt.size, opt, {**cand.params, "abc": True}))


def arith_circuit(f: Callable | None, table: IntervalTable, eps: float, budget_s: float = 30) -> Circuit | None:
    """The smallest verified piecewise-polynomial circuit found within budget_s, or None.

    f is the target on [0,1] (shape (N,1) -> (N,)); the fit itself uses the table's cell centres, since the
    table is what the verifier checks (for smooth f they are f at the cell midpoints up to O(4^-k) in the box
    domain, and exactly f at the grid points in the grid domain). f is accepted so that every search method has
    the same signature.
    """
    return search(f, table, eps, budget_s)[0]

"""Fixed-point compilation of an expression tree (htmc.synthesis.expr) to a B2 circuit with a PROVEN error bound.

Every node becomes a bit vector V (htmc.circuits.builder, little-endian literals) with value V 2^lsb, and carries
two rigorous intervals, in exact rationals: t, the range of the true value over the domain (the cells of the box
or the grid points), and e, the range of (represented - true). Interval arithmetic propagates both:
- inputs: on the grid x = X 2^-k exactly; on the box x lies in [X h, (X+1) h], represented by its centre
  (2X+1) 2^-(k+1) (a constant 1 bit, free), so e = [-h/2, h/2];
- sums (add, sub, neg, shifts and products inside them) are fused in ONE bit heap, products as their partial
  products (a multiply-accumulate); partial products below a cut column are left out (a truncated multiplier,
  Schulte & Swartzlander 1993) and the sum is floored to the working step: the dropped bits' value range and the
  floor's [-(2^d - 2^cut), 0] enter e exactly, and the error of a product is a eb + b ea with the identity
  â b̂ - ab = â (b̂ - b) + b (â - a);
- abs is a conditional negation (x XOR s) + s, optionally without the + s (e widens by one step);
  relu ANDs with the inverted sign (1-Lipschitz and monotone: e maps to [min(0, e.lo), max(0, e.hi)]);
- lookup and apply become tables (builder.lut), with their rounding and Lipschitz terms in e.
A sum that feeds abs or relu is centred (a constant correction added in its heap), since |.| and relu widen an
error interval that does not straddle 0. The output decoder's free offset centres the root's error, so the
proven bound is half the width of the root's e. The bound decides the format; the verifier decides the result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction as Q

import numpy as np

from htmc.circuits.builder import FALSE, TRUE, CircuitBuilder, digits_csd, value_width
from htmc.circuits.circuit import Circuit, Decoder
from htmc.targets.table import sub_up

from .expr import Expr

MAX_TABLE_BITS = 14   # lookup/apply tables above this many index bits are refused (a BDD of 2^14 leaves)


class TableTooWide(ValueError):
    """A lookup or apply table would need more than MAX_TABLE_BITS index bits in this format."""


@dataclass(frozen=True)
class Iv:
    """A closed interval of exact rationals."""
    lo: Q
    hi: Q

    def __add__(self, o): return Iv(self.lo + o.lo, self.hi + o.hi)
    def __neg__(self): return Iv(-self.hi, -self.lo)
    def __sub__(self, o): return self + (-o)

    def __mul__(self, o):
        ps = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi]
        return Iv(min(ps), max(ps))

    def scale(self, c: Q) -> "Iv":
        return Iv(min(self.lo * c, self.hi * c), max(self.lo * c, self.hi * c))

    def meet(self, o) -> "Iv":
        return Iv(max(self.lo, o.lo), min(self.hi, o.hi))

    @property
    def mag(self) -> Q:
        return max(abs(self.lo), abs(self.hi))

    @property
    def mid(self) -> Q:
        return (self.lo + self.hi) / 2


ZERO = Iv(Q(0), Q(0))


@dataclass(frozen=True)
class Format:
    """The knobs of one datapath: working step 2^lsb of internal results, output step 2^out_lsb, heap columns
    kept below a sum's output step (guard; None keeps all, an exact sum before the floor), the + 1 of abs, and
    the extra fraction bits of constants beyond their sum's output step."""
    lsb: int
    out_lsb: int
    guard: int | None = None
    abs_one: bool = True
    cbits: int = 3


@dataclass
class Fx:
    bits: list[int]
    signed: bool
    lsb: int
    vlo: int    # range of the represented integer V
    vhi: int
    t: Iv       # range of the true value
    e: Iv       # range of represented - true
    v: str = "" # its word-level name, when a subclass emits RTL (datapath_verilog)


@dataclass
class Compiled:
    circuit: Circuit
    bound: Q        # proven sup error (decoded - true), the decoder's offset centring the root's e
    fmt: Format
    builder_gates: int


def _p2(k: int) -> Q:
    return Q(2) ** k


def _floor_div(v: Q, k: int) -> int:
    return math.floor(v / _p2(k))


def _ceil_div(v: Q, k: int) -> int:
    return math.ceil(v / _p2(k))


class Compiler:
    """One pass over the tree in one format: gates in a CircuitBuilder, intervals in exact rationals."""

    def __init__(self, d: int, k: int, domain: str, fmt: Format):
        self.d, self.k, self.domain, self.fmt = d, k, domain, fmt
        self.b = CircuitBuilder(d * k)

    def _rtl(self, kind: str, fx: Fx, **info) -> None:
        """A hook: each word-level step, for a subclass that writes it as RTL (datapath_verilog)."""

    # --- leaves ------------------------------------------------------------------------------------------------
    def coord_bits(self, j: int) -> list[int]:
        """Code bits of coordinate j, LSB first: coordinate 0 is the most significant block (targets.table)."""
        k = self.k
        return self.b.inputs[k * (self.d - 1 - j): k * (self.d - j)]

    def input(self, j: int) -> Fx:
        k, top = self.k, (1 << self.k) - 1
        if self.domain == "grid":
            fx = Fx(self.coord_bits(j), False, -k, 0, top, Iv(Q(0), Q(top, 1 << k)), ZERO)
        else:
            h2 = Q(1, 1 << (k + 1))
            fx = Fx([TRUE] + self.coord_bits(j), False, -(k + 1), 1, 2 * top + 1, Iv(Q(0), Q(1)), Iv(-h2, h2))
        self._rtl("input", fx, j=j)
        return fx

    def node(self, e: Expr, lsb: int, center: bool = False) -> Fx:
        op = e.op
        if op == "input":
            return self.input(e.value)
        if op in ("add", "sub", "neg", "mul", "const"):
            return self.sum(_terms(e, 1, 0), lsb, center)
        if op == "shift":
            c = self.node(e.args[0], lsb - e.value, center)
            s = _p2(e.value)
            return replace(c, lsb=c.lsb + e.value, t=c.t.scale(s), e=c.e.scale(s))
        if op == "abs":
            return self.absval(self.node(e.args[0], lsb, center=True))
        if op == "relu":
            return self.relu(self.node(e.args[0], lsb, center=True))
        if op == "lookup":
            return self.lookup(e.value[0], e.value[1], lsb)
        return self.apply(e, lsb)

    # --- sums ----------------------------------------------------------------------------------------------------
    def sum(self, terms, lsb: int, center: bool) -> Fx:
        """One bit heap for all terms (sign, 2^shift, node), floored to step 2^max(lsb, finest term)."""
        extra = max(0, len(terms) - 1).bit_length()   # constants' rounding is shared by all the terms
        parts = [self._part(s, sh, n, lsb, extra) for s, sh, n in terms]
        cval = sum((p[1] for p in parts if p[0] == "const"), Q(0))
        parts = [p for p in parts if p[0] != "const"]
        if not parts:
            return self._constant(cval, lsb)
        base = min(p[1] for p in parts)
        out = max(lsb, base)
        drop = out - base
        cut = 0 if self.fmt.guard is None else max(0, drop - self.fmt.guard)
        heap = _Heap(self.b, cut)
        t = e = r = ZERO
        for p in parts:
            pt, pe, pr = self._add_part(heap, p, base)
            t, e, r = t + pt, e + pe, r + pr
        cq = round(cval / _p2(base + cut)) << cut     # at a kept column, so the floor below stays exact
        heap.h.add_const(cq)
        cerr = cq * _p2(base) - cval
        t, e, r = t + Iv(cval, cval), e + Iv(cerr, cerr), r + Iv(Q(cq), Q(cq))
        e, r = e - heap.dropped.scale(_p2(base)), r - heap.dropped
        if drop:   # kept columns >= cut, so floor(S / 2^drop) 2^drop >= S - (2^drop - 2^cut)
            e = e + Iv(-(_p2(drop) - _p2(cut)) * _p2(base), Q(0))
        q = -round(e.mid / _p2(out)) if center else 0
        if q:
            heap.h.add_const(q, drop)
            e, r = e + Iv(q * _p2(out), q * _p2(out)), r + Iv(Q(q << drop), Q(q << drop))
        vlo, vhi = math.floor(r.lo / (1 << drop)), math.floor(r.hi / (1 << drop))
        vlo, vhi = max(vlo, _ceil_div(t.lo + e.lo, out)), min(vhi, _floor_div(t.hi + e.hi, out))
        signed = vlo < 0
        fx = Fx(heap.h.result(value_width(vlo, vhi, signed), drop), signed, out, vlo, vhi, t, e)
        self._rtl("sum", fx, parts=parts, base=base, const=cq + (q << drop), drop=drop, r=r)
        return fx

    def _part(self, sign: int, shift: int, n: Expr, lsb: int, extra: int):
        """A term ready for the heap: ('const', value) or (kind, lsb of its bits, sign, ...)."""
        s, inner = _p2(shift), min(lsb, self.fmt.lsb) - shift   # inner nodes at the working step
        if n.op == "const":
            return ("const", sign * s * Q(n.value))
        if n.op == "mul":
            a, b = n.args
            if b.op == "const" or a.op == "const":
                c, v = (Q(b.value), a) if b.op == "const" else (Q(a.value), b)
                fx = self.node(v, inner)
                mag = max(0, max(abs(fx.vlo), abs(fx.vhi)).bit_length() + fx.lsb)   # log2 of |v|, rounded up
                ec = _const_step(c, lsb - shift - self.fmt.cbits - extra - mag)
                return ("cmul", fx.lsb + ec + shift, sign, fx, round(c / _p2(ec)), c, ec, s)
            fa, fb = self.node(a, inner), self.node(b, inner)
            return ("mul", fa.lsb + fb.lsb + shift, sign, fa, fb, s)
        fx = self.node(n, inner)
        return ("vec", fx.lsb + shift, sign, fx, s)

    def _add_part(self, heap: "_Heap", p, base: int):
        """Add one part's bits at column (part lsb - base); return its (t, e, represented range in 2^base)."""
        kind, plsb, sign = p[0], p[1], p[2]
        col = plsb - base
        if kind == "vec":
            fx, s = p[3], p[4]
            heap.vector(fx.bits, fx.signed, col, sign < 0)
            return fx.t.scale(sign * s), fx.e.scale(sign * s), _ints(fx).scale(Q(sign << col))
        if kind == "cmul":   # value sign 2^shift c v, represented sign 2^shift (q 2^ec) v^
            fx, q, c, ec, s = p[3:]
            for sh, dgt in digits_csd(q):
                heap.vector(fx.bits, fx.signed, col + sh, (dgt < 0) != (sign < 0))
            qv = q * _p2(ec)
            e = fx.e.scale(qv) + fx.t.scale(qv - c)
            return fx.t.scale(sign * s * c), e.scale(sign * s), _ints(fx).scale(Q(sign * q << col))
        fa, fb, s = p[3], p[4], p[5]
        heap.product(fa, fb, col, sign < 0)
        ra, rb = _ints(fa).scale(_p2(fa.lsb)), _ints(fb).scale(_p2(fb.lsb))
        e = (ra * fb.e + fb.t * fa.e).meet(fa.t * fb.e + fb.t * fa.e + fa.e * fb.e).meet(
            rb * fa.e + fa.t * fb.e)
        r = (_ints(fa) * _ints(fb)).scale(Q(sign << col))
        return (fa.t * fb.t).scale(sign * s), e.scale(sign * s), r

    def _constant(self, c: Q, lsb: int) -> Fx:
        q = round(c / _p2(lsb))
        signed = q < 0
        err = q * _p2(lsb) - c
        fx = Fx(self.b.const(q, value_width(q, q, signed)), signed, lsb, q, q, Iv(c, c), Iv(err, err))
        self._rtl("const", fx, q=q)
        return fx

    # --- non-linear nodes ----------------------------------------------------------------------------------
    def absval(self, c: Fx) -> Fx:
        t = Iv(Q(0) if c.t.lo <= 0 <= c.t.hi else min(abs(c.t.lo), abs(c.t.hi)), c.t.mag)
        m = c.e.mag
        e = Iv(c.e.lo, m) if c.t.lo >= 0 else Iv(-c.e.hi, m) if c.t.hi <= 0 else Iv(-m, m)
        if c.vlo >= 0:
            return replace(c, t=t, e=c.e if c.t.lo >= 0 else e)
        if c.vhi <= 0:
            return self._negate(c, t, e)
        s = c.bits[-1]
        low = [self.b.xor(bit, s) for bit in c.bits[:-1]]
        if self.fmt.abs_one:
            hi = max(c.vhi, -c.vlo)
            heap = self.b.heap()
            heap.add_vector(low)
            heap.add_bit(s, 0)
            fx = Fx(heap.result(max(1, hi.bit_length())), False, c.lsb, 0, hi, t, e)
        else:
            hi = max(c.vhi, -c.vlo - 1)
            fx = Fx(low[:max(1, hi.bit_length())], False, c.lsb, 0, hi, t, e + Iv(-_p2(c.lsb), Q(0)))
        self._rtl("abs", fx, c=c, one=self.fmt.abs_one)
        return fx

    def _negate(self, c: Fx, t: Iv, e: Iv) -> Fx:
        neg = self.b.neg(c.bits, c.signed)
        hi = -c.vlo
        fx = Fx(neg[:max(1, hi.bit_length())], False, c.lsb, -c.vhi, hi, t, e)
        self._rtl("neg", fx, c=c)
        return fx

    def relu(self, c: Fx) -> Fx:
        t = Iv(max(Q(0), c.t.lo), max(Q(0), c.t.hi))
        e = Iv(min(Q(0), c.e.lo), max(Q(0), c.e.hi))
        if c.vlo >= 0:
            return replace(c, t=t, e=e)
        if c.vhi <= 0:
            fx = Fx([FALSE], False, c.lsb, 0, 0, t, e)
            self._rtl("const", fx, q=0)
            return fx
        bits = self.b.relu(c.bits)
        fx = Fx(bits[:max(1, c.vhi.bit_length())], False, c.lsb, 0, c.vhi, t, e)
        self._rtl("relu", fx, c=c)
        return fx

    # --- tables --------------------------------------------------------------------------------------------
    def lookup(self, g, j0: int, lsb: int) -> Fx:
        """g on coordinates j0.. through its own cell ranges: the table holds each cell's rounded midpoint."""
        index = [bit for j in reversed(range(j0, j0 + g.d)) for bit in self.coord_bits(j)]
        if len(index) > MAX_TABLE_BITS:
            raise TableTooWide(f"lookup of {g!r} needs a table on {len(index)} bits; at most {MAX_TABLE_BITS}")
        tab = g.table(self.k, self.domain)
        return self._table(index, 0.5 * tab.lo + 0.5 * tab.hi, tab.lo, tab.hi, lsb, ZERO)

    def apply(self, e: Expr, lsb: int) -> Fx:
        fn, lip, ulps = e.value
        c = self.node(e.args[0], min(lsb, self.fmt.lsb), center=True)   # the table's index: working step
        if len(c.bits) > MAX_TABLE_BITS:
            raise TableTooWide(f"apply({e.value[0]!r}) needs a table on {len(c.bits)} bits; at most "
                               f"{MAX_TABLE_BITS}")
        codes = np.arange(1 << len(c.bits), dtype=np.int64)
        if c.signed:
            codes = codes - ((codes >> (len(c.bits) - 1) & 1) << len(c.bits))
        u = np.clip(codes, c.vlo, c.vhi).astype(np.float64) * 2.0 ** c.lsb   # unreachable codes: clamped
        y = np.asarray(fn(u), dtype=np.float64)
        if y.shape != u.shape or not np.all(np.isfinite(y)):
            raise ValueError(f"apply: {fn!r} must map an array of shape {u.shape} to finite values on "
                             f"[{u.min()}, {u.max()}] (the values its argument can take)")
        pad = ulps * np.spacing(np.abs(y))
        lip_e = Q(lip) * c.e.mag
        return self._table(c.bits, y, y - pad, y + pad, lsb, Iv(-lip_e, lip_e))

    def _table(self, index, mid, lo, hi, lsb: int, extra: Iv) -> Fx:
        h = 2.0 ** lsb
        q = np.round(mid / h).astype(np.int64)
        qv = q * h
        e = Iv(-Q(float(np.max(sub_up(hi, qv)))), Q(float(np.max(sub_up(qv, lo))))) + extra
        vlo, vhi = int(q.min()), int(q.max())
        signed = vlo < 0
        width = value_width(vlo, vhi, signed)
        bits = self.b.lut(index, [int(v) for v in q], width)
        self._rtl("table", None)
        t = Iv(Q(float(np.min(lo))), Q(float(np.max(hi)))) if not extra.hi else \
            Iv(Q(vlo) * _p2(lsb) - e.hi, Q(vhi) * _p2(lsb) - e.lo)
        return Fx(bits, signed, lsb, vlo, vhi, t, e)


def _ints(fx: Fx) -> Iv:
    return Iv(Q(fx.vlo), Q(fx.vhi))


def _const_step(c: Q, finest: int) -> int:
    """The coarsest step 2^ec >= 2^finest that holds c exactly (a dyadic float often has few bits), else finest."""
    for ec in range(finest + 24, finest, -1):
        if (c / _p2(ec)).denominator == 1:
            return ec
    return finest


def _terms(e: Expr, sign: int, shift: int) -> list[tuple[int, int, Expr]]:
    """Flatten add, sub, neg and shifts into signed, shifted terms of one heap."""
    if e.op == "add":
        return _terms(e.args[0], sign, shift) + _terms(e.args[1], sign, shift)
    if e.op == "sub":
        return _terms(e.args[0], sign, shift) + _terms(e.args[1], -sign, shift)
    if e.op == "neg":
        return _terms(e.args[0], -sign, shift)
    if e.op == "shift":
        return _terms(e.args[0], sign, shift + e.value)
    return [(sign, shift, e)]


_VAR = -1   # a partial product that is neither constant


class _Heap:
    """A BitHeap that leaves out bits below `cut` and keeps the range of what it left out (in column units)."""

    def __init__(self, b: CircuitBuilder, cut: int):
        self.b, self.h, self.cut, self.dropped = b, b.heap(), cut, ZERO

    def bit(self, lit: int, col: int, negative: bool) -> None:
        if col >= self.cut:
            self.h.add_bit(lit, col, negative)
            return
        w = Q(-(1 << col) if negative else 1 << col)
        if lit == TRUE:
            self.dropped += Iv(w, w)
        elif lit != FALSE:
            self.dropped += Iv(min(Q(0), w), max(Q(0), w))

    def vector(self, bits, signed: bool, col: int, negative: bool) -> None:
        for i, bit in enumerate(bits):
            self.bit(bit, col + i, negative != (signed and i == len(bits) - 1))

    def product(self, fa: Fx, fb: Fx, col: int, negative: bool) -> None:
        """Partial products (Baugh-Wooley signs: a pp of one sign bit weighs -2^col)."""
        for p, ap in enumerate(fa.bits):
            sa = fa.signed and p == len(fa.bits) - 1
            for q, bq in enumerate(fb.bits):
                c, sb = col + p + q, fb.signed and q == len(fb.bits) - 1
                if c >= self.cut:
                    lit = self.b.and_(ap, bq)
                else:
                    lit = FALSE if FALSE in (ap, bq) else TRUE if ap == bq == TRUE else _VAR
                self.bit(lit, c, negative != (sa != sb))


def compile_expr(e: Expr, d: int, k: int, domain: str, fmt: Format, compiler: type = Compiler) -> Compiled:
    """The datapath of `e` in format fmt, its decoder centring the root's error, and the proven bound."""
    cp = compiler(d, k, domain, fmt)
    fx = cp.node(e, fmt.out_lsb)
    cp._rtl("output", fx)
    bits, offset = list(fx.bits), Q(0)
    if fx.signed:   # u = V + 2^(w-1): flip the sign bit, and the decoder subtracts it back
        bits[-1] ^= 1
        offset = -_p2(len(bits) - 1 + fx.lsb)
    mq = round(fx.e.mid / _p2(fx.lsb - 8)) * _p2(fx.lsb - 8)   # a short dyadic, so the decoder is exact
    offset -= mq
    if Q(float(offset)) != offset:
        raise ArithmeticError(f"decoder offset {offset} is not a float")
    circuit = cp.b.build(bits, Decoder(float(offset), -fx.lsb))
    return Compiled(circuit, max(fx.e.hi - mq, mq - fx.e.lo), fmt, circuit.size)

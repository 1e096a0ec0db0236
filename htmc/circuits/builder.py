"""Gate-level arithmetic generators over B2 (DESIGN §2.1, §2.4 'Compiling to a circuit').

Truth-table synthesis cannot see arithmetic structure: for the high half of an 8x8 product ABC from the truth
table gave ~15k B2 gates where a structured multiplier gives ~300 (STACK-NOTES "Structure beats truth tables").
This module builds that structure directly: adders, multipliers, constant multipliers, ReLU and look-up tables,
as B2 netlists that `build` turns into a `Circuit`.

Conventions
- A *literal* is 2*signal + inv (AIGER style), so NOT is free: `lit ^ 1`. FALSE = 0 (signal 0 = const 0) and
  TRUE = 1. A gate absorbs the inversions of its inputs into its op; only an output that is the complement of an
  input or of a shared gate costs a real gate, at `build` time.
- Gates are hash-consed (same normalized op and fanins -> same signal) and constant-folded, so generators may be
  written naively: x & 0, x ^ x, mux(s, a, a) ... cost nothing.
- A bit vector is a little-endian list of literals. Signedness is an explicit argument: `signed=True` means two's
  complement (the top bit weighs -2^(w-1)). Results state their own width and signedness in each docstring.
- Sums are reduced in a *bit heap* (a column per weight, full adders until one bit per column): one mechanism
  serves adders, subtractors, multipliers, constant multipliers and fused multiply-adds. Negative-weight bits
  enter as (~bit) plus a constant -2^col, the sign-extension-free trick of Baugh-Wooley multipliers
  (Baugh & Wooley, IEEE Trans. Computers C-22, 1973), so signed operands are never sign-extended bit by bit.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from htmc.circuits.circuit import Circuit, CONST0, CONST1, Decoder

FALSE, TRUE = 0, 1
OP_AND, OP_OR, OP_XOR = 0b1000, 0b1110, 0b0110
OP_NOT_A = 0b0101  # ~a, used only for an output that is the complement of an input


def _absorb(op: int, inv_a: int, inv_b: int) -> int:
    """Op of the same gate read through inverted inputs: op'(va, vb) = op(va ^ inv_a, vb ^ inv_b)."""
    out = 0
    for m in range(4):
        if op >> ((m & 1 ^ inv_a) | ((m >> 1 ^ inv_b) << 1)) & 1:
            out |= 1 << m
    return out


def _swap(op: int) -> int:
    """Op with its two inputs exchanged (truth-table bits 1 and 2 trade places)."""
    return (op & 0b1001) | ((op & 0b0010) << 1) | ((op & 0b0100) >> 1)


def _unary(signal: int, f0: int, f1: int) -> int:
    """Literal of the one-input function with f(0)=f0, f(1)=f1."""
    if f0 == f1:
        return TRUE if f0 else FALSE
    return 2 * signal + f0  # f0=0: identity; f0=1: complement


def signed_width(lo: int, hi: int) -> int:
    """Fewest two's-complement bits holding every integer in [lo, hi]."""
    return 1 + max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length() if hi > 0 else 0)


def value_width(lo: int, hi: int, signed: bool) -> int:
    """Fewest bits for [lo, hi]: two's complement if signed, else unsigned (lo must be >= 0)."""
    if signed:
        return signed_width(lo, hi)
    if lo < 0:
        raise ValueError(f"range [{lo}, {hi}] is negative; it needs a signed vector")
    return max(1, hi.bit_length())


def vector_range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def digits_csd(c: int) -> list[tuple[int, int]]:
    """Canonical signed digits of c as (shift, +-1): no two adjacent non-zeros, fewest non-zeros of any signed
    binary form (Reitwiesner 1960). 15 = 16 - 1 has 2 digits where binary has 4."""
    out, k = [], 0
    while c:
        if c & 1:
            d = 2 - (c & 3)  # +1 if c = 1 mod 4, -1 if c = 3 mod 4
            out.append((k, d))
            c -= d
        c >>= 1
        k += 1
    return out


def digits_binary(c: int) -> list[tuple[int, int]]:
    """Plain shift-and-add digits of c: the set bits of |c|, all with the sign of c."""
    s = -1 if c < 0 else 1
    return [(k, s) for k in range(abs(c).bit_length()) if abs(c) >> k & 1]


class CircuitBuilder:
    """Hash-consed, constant-folding B2 netlist with free inversions; `build` makes the `Circuit`."""

    def __init__(self, n_inputs: int):
        self.n_inputs = n_inputs
        self.gates: list[tuple[int, int, int]] = []  # (op, signal a, signal b) as in Circuit
        self._keys: list[tuple[int, int, int]] = []
        self._hash: dict[tuple[int, int, int], int] = {}

    # --- literals and gates ----------------------------------------------------------------------------------
    def input(self, i: int) -> int:
        if not 0 <= i < self.n_inputs:
            raise IndexError(f"input {i} out of range 0..{self.n_inputs - 1}")
        return 2 * (2 + i)

    @property
    def inputs(self) -> list[int]:
        """All input literals as a little-endian vector (input 0 is the code's LSB, DESIGN §2.1); slice it for
        the fields of a code, e.g. inputs[:k] and inputs[k:] for two k-bit coordinates (the second is x_0)."""
        return [self.input(i) for i in range(self.n_inputs)]

    def gate(self, op: int, a: int, b: int) -> int:
        """Literal of op(a, b) (op bit va + 2 vb), folded and hash-consed."""
        sa, sb = a >> 1, b >> 1
        op = _absorb(op, a & 1, b & 1)
        if sa == CONST0:
            return _unary(sb, op & 1, op >> 2 & 1)
        if sb == CONST0:
            return _unary(sa, op & 1, op >> 1 & 1)
        if sa == sb:
            return _unary(sa, op & 1, op >> 3 & 1)
        if sa > sb:
            sa, sb, op = sb, sa, _swap(op)
        if (op ^ (op >> 2)) & 0b11 == 0:  # ignores b
            return _unary(sa, op & 1, op >> 1 & 1)
        if (op ^ (op >> 1)) & 0b101 == 0:  # ignores a
            return _unary(sb, op & 1, op >> 2 & 1)
        inv = op & 1  # normalize f(0,0)=0 so that AND and NAND share one node
        key = (op ^ (0b1111 if inv else 0), sa, sb)
        sig = self._hash.get(key)
        if sig is None:
            sig = self.n_inputs + 2 + len(self.gates)
            self.gates.append(key)
            self._keys.append(key)
            self._hash[key] = sig
        return 2 * sig + inv

    def and_(self, a: int, b: int) -> int:
        return self.gate(OP_AND, a, b)

    def or_(self, a: int, b: int) -> int:
        return self.gate(OP_OR, a, b)

    def xor(self, a: int, b: int) -> int:
        return self.gate(OP_XOR, a, b)

    def mux(self, sel: int, a: int, b: int) -> int:
        """b if sel else a. Three gates in general; one or none when an input is constant, equal or
        complementary to another (then B2 needs no more)."""
        if sel in (FALSE, TRUE):
            return b if sel else a
        # Inside the branch taken, sel is known: substitute it.
        a = FALSE if a == sel else TRUE if a == sel ^ 1 else a
        b = TRUE if b == sel else FALSE if b == sel ^ 1 else b
        if a == b:
            return a
        if a == b ^ 1:
            return self.xor(sel, a)
        if a == FALSE:
            return self.and_(sel, b)
        if a == TRUE:
            return self.or_(sel ^ 1, b)
        if b == FALSE:
            return self.and_(sel ^ 1, a)
        if b == TRUE:
            return self.or_(sel, a)
        return self.or_(self.and_(sel ^ 1, a), self.and_(sel, b))

    # --- adders ------------------------------------------------------------------------------------------------
    def half_adder(self, a: int, b: int) -> tuple[int, int]:
        return self.xor(a, b), self.and_(a, b)

    def full_adder(self, a: int, b: int, c: int) -> tuple[int, int]:
        """(sum, carry) of three bits: 5 gates (2 XOR + 3 for the majority, reusing a^b), fewer when inputs are
        constant, equal or complementary."""
        ones = sum(1 for x in (a, b, c) if x == TRUE)
        rest = [x for x in (a, b, c) if x not in (FALSE, TRUE)]
        if len(rest) < 3:
            if not rest:
                return (TRUE if ones & 1 else FALSE), (TRUE if ones >> 1 else FALSE)
            if len(rest) == 1:
                x = rest[0]
                return [(x, FALSE), (x ^ 1, x), (x, TRUE)][ones]
            x, y = rest
            if ones:  # x + y + 1
                return self.xor(x, y) ^ 1, self.or_(x, y)
            return self.half_adder(x, y)
        for x, y, z in ((a, b, c), (a, c, b), (b, c, a)):
            if x == y:
                return z, x
            if x == y ^ 1:
                return z ^ 1, z
        t = self.xor(a, b)
        return self.xor(t, c), self.or_(self.and_(a, b), self.and_(c, t))

    def heap(self) -> "BitHeap":
        return BitHeap(self)

    def add(self, a: Sequence[int], b: Sequence[int], signed: bool = False) -> list[int]:
        """a + b by ripple carry: width max(len)+1, signed iff the operands are. An n-bit unsigned add is one
        half adder and n-1 full adders: 5n - 3 gates."""
        h = self.heap()
        h.add_vector(a, signed=signed)
        h.add_vector(b, signed=signed)
        return h.result(max(len(a), len(b)) + 1)

    def sub(self, a: Sequence[int], b: Sequence[int], signed: bool = False) -> list[int]:
        """a - b: width max(len)+1, always signed (two's complement), whatever the operands are."""
        h = self.heap()
        h.add_vector(a, signed=signed)
        h.add_vector(b, signed=signed, negative=True)
        return h.result(max(len(a), len(b)) + 1)

    def neg(self, a: Sequence[int], signed: bool = False) -> list[int]:
        """-a: width len+1, signed."""
        return self.sub([], a, signed)

    # --- multipliers -------------------------------------------------------------------------------------------
    def mul(self, a: Sequence[int], b: Sequence[int], signed: bool = False, b_signed: bool | None = None
            ) -> list[int]:
        """a * b as an array of AND partial products reduced in a bit heap (about 6 n^2 gates for n x n).

        Width len(a)+len(b); signed iff either operand is. `signed` is a's signedness and, unless b_signed says
        otherwise, b's. Signed partial products use the Baugh-Wooley complement trick.
        """
        b_signed = signed if b_signed is None else b_signed
        h = self.heap()
        h.add_product(a, b, signed, b_signed)
        return h.result(len(a) + len(b))

    def const_mul(self, a: Sequence[int], c: int, signed: bool = False, method: str = "auto") -> list[int]:
        """a * c for an integer constant c, by shift-and-add of a.

        method: 'binary' (one term per set bit of |c|), 'csd' (canonical signed digits: fewest terms) or 'auto'
        (builds both and keeps the smaller; CSD usually wins, e.g. 15 = 16 - 1, but its negative terms carry a
        constant, so it is not always smaller). The result is signed iff a is signed or c < 0, with the fewest
        bits that hold every product.
        """
        if method == "auto":
            costs = {m: self.cost(lambda m=m: self.const_mul(a, c, signed, m)) for m in ("csd", "binary")}
            method = min(costs, key=lambda m: (costs[m], m != "csd"))
        digits = {"csd": digits_csd, "binary": digits_binary}[method](c)
        lo, hi = vector_range(len(a), signed)
        width = value_width(min(lo * c, hi * c), max(lo * c, hi * c), signed or c < 0)
        h = self.heap()
        for k, d in digits:
            h.add_vector(a, shift=k, signed=signed, negative=d < 0)
        return h.result(width)

    # --- fixed point -------------------------------------------------------------------------------------------
    @staticmethod
    def const(value: int, width: int) -> list[int]:
        """value in `width` bits, two's complement if negative (taken mod 2^width)."""
        return [TRUE if value >> i & 1 else FALSE for i in range(width)]

    @staticmethod
    def resize(a: Sequence[int], width: int, signed: bool = False) -> list[int]:
        """Sign- or zero-extend, or cut the high bits (the caller knows the value fits)."""
        fill = (a[-1] if a else FALSE) if signed else FALSE
        return list(a[:width]) + [fill] * (width - len(a))

    @staticmethod
    def shift(a: Sequence[int], k: int, signed: bool = False) -> list[int]:
        """a * 2^k for k >= 0 (width grows by k); floor(a / 2^-k) for k < 0 (width shrinks, at least 1)."""
        if k >= 0:
            return [FALSE] * k + list(a)
        kept = list(a[-k:])
        return kept or [a[-1] if (signed and a) else FALSE]

    def truncate(self, a: Sequence[int], drop: int, signed: bool = False) -> list[int]:
        """floor(a / 2^drop): drop `drop` fraction bits, for free."""
        return self.shift(a, -drop, signed)

    def round(self, a: Sequence[int], drop: int, signed: bool = False) -> list[int]:
        """floor(a / 2^drop + 1/2) (round half up): width len-drop+1, as signed as a."""
        if drop <= 0:
            return list(a)
        if drop > len(a):
            raise ValueError(f"cannot drop {drop} bits of a {len(a)}-bit vector")
        h = self.heap()
        h.add_vector(a[drop:], signed=signed)
        h.add_bit(a[drop - 1], 0)
        return h.result(max(1, len(a) - drop) + 1)

    def relu(self, x: Sequence[int]) -> list[int]:
        """max(x, 0) of a signed x: each bit ANDed with ~sign, unsigned width len-1."""
        s = x[-1]
        return [self.and_(bit, s ^ 1) for bit in x[:-1]]

    # --- tables --------------------------------------------------------------------------------------------------
    def lut(self, index_bits: Sequence[int], values: Sequence[int], width: int, order: str = "auto") -> list[int]:
        """values[index] in `width` bits (two's complement for negative values), index = little-endian bits.

        Each output bit is a multiplexer tree over the index bits, i.e. a reduced ordered BDD read as muxes:
        identical sub-tables are built once (hash-consing across all output bits) and a sub-table that is the
        complement of a built one costs nothing (free inversion). A BDD read as muxes is a valid B2 circuit of
        at most 3 gates per node (STACK-NOTES "dd"). order: 'msb' (root = most significant index bit), 'lsb',
        or 'auto' (build both, keep the smaller).
        """
        n = len(index_bits)
        if len(values) != 1 << n:
            raise ValueError(f"lut needs 2^{n} = {1 << n} values, got {len(values)}")
        if order == "auto":
            if n <= 1:
                order = "msb"
            else:
                costs = {o: self.cost(lambda o=o: self.lut(index_bits, values, width, o)) for o in ("msb", "lsb")}
                order = min(costs, key=lambda o: (costs[o], o != "msb"))
        if width > 62:
            raise ValueError(f"lut width {width} exceeds 62 bits")
        vals = np.array([int(v) & ((1 << width) - 1) for v in values], dtype=np.int64)
        sels = list(index_bits)
        if order == "lsb":  # bit-reverse the index so that the root splits on index bit 0
            perm = np.zeros(1 << n, dtype=np.int64)
            for i in range(n):
                perm |= ((np.arange(1 << n) >> i) & 1) << (n - 1 - i)
            vals, sels = vals[perm], sels[::-1]
        elif order != "msb":
            raise ValueError(f"unknown lut order '{order}': valid choices: auto, msb, lsb")
        memo: dict[bytes, int] = {}
        return [self._table(((vals >> j) & 1).astype(np.uint8), sels, memo) for j in range(width)]

    def _table(self, tab: np.ndarray, sels: list[int], memo: dict[bytes, int]) -> int:
        """Literal of a single-output table over sels[:log2 len]: split on the top variable, hash-cons."""
        if tab[0]:  # canonical form has f(0)=0; the complement is free
            return self._table(1 - tab, sels, memo) ^ 1
        if not tab.any():
            return FALSE
        key = tab.tobytes()
        found = memo.get(key)
        if found is None:
            half = len(tab) // 2
            m = half.bit_length() - 1
            found = self.mux(sels[m], self._table(tab[:half], sels, memo), self._table(tab[half:], sels, memo))
            memo[key] = found
        return found

    # --- sizing and output -------------------------------------------------------------------------------------
    def cost(self, make: Callable[[], Sequence[int]]) -> int:
        """Gates that make() would add (reachable from its result), then undo them: a trial build."""
        mark = len(self.gates)
        result = make()
        first = self.n_inputs + 2
        seen, stack = set(), [lit >> 1 for lit in result]
        while stack:
            s = stack.pop()
            if s - first < mark or s in seen:
                continue
            seen.add(s)
            _, a, b = self.gates[s - first]
            stack += [a, b]
        for key in self._keys[mark:]:
            del self._hash[key]
        del self.gates[mark:], self._keys[mark:]
        return len(seen)

    def build(self, outputs: Sequence[int], decoder: Decoder | None = None) -> Circuit:
        """The pruned Circuit with output literals `outputs` (LSB first). A complemented output costs a gate
        only if its driver is an input or is read elsewhere; otherwise the driver's op is complemented."""
        first = self.n_inputs + 2
        gates = list(self.gates)
        readers: dict[int, int] = defaultdict(int)
        seen, stack = set(), [lit >> 1 for lit in outputs]
        while stack:
            s = stack.pop()
            if s < first or s in seen:
                continue
            seen.add(s)
            _, a, b = gates[s - first]
            for f in {a, b}:
                readers[f] += 1
                stack.append(f)
        for lit in outputs:
            readers[lit >> 1] += 1
        complement: dict[int, int] = {}
        outs = []
        for lit in outputs:
            s, inv = lit >> 1, lit & 1
            if not inv:
                outs.append(s)
            elif s == CONST0:
                outs.append(CONST1)
            elif s not in complement:
                if s >= first and readers[s] == 1:
                    op, a, b = gates[s - first]
                    gates[s - first] = (op ^ 0b1111, a, b)
                    complement[s] = s
                else:
                    op, a, b = gates[s - first] if s >= first else (OP_NOT_A ^ 0b1111, s, s)
                    gates.append((op ^ 0b1111, a, b))  # a twin gate with the complemented op
                    complement[s] = first + len(gates) - 1
                outs.append(complement[s])
            else:
                outs.append(complement[s])
        return Circuit(self.n_inputs, gates, outs, decoder or Decoder()).pruned()


class BitHeap:
    """A weighted sum of bits, reduced column by column with full and half adders into one word.

    Every bit enters with weight +2^col; a bit of weight -2^col enters as ~bit plus the constant -2^col (since
    -x = ~x - 1). Constants are summed exactly and enter as constant bits, which the adders fold. `result`
    returns the sum modulo 2^(drop + width), shifted right by drop (floor): correct whenever the true value of
    floor(sum / 2^drop) fits the width the caller asks for.
    """

    def __init__(self, builder: CircuitBuilder):
        self.b = builder
        self.cols: dict[int, list[int]] = defaultdict(list)
        self.constant = 0

    def add_bit(self, lit: int, col: int, negative: bool = False) -> None:
        if lit in (FALSE, TRUE):
            self.constant += (-1 if negative else 1) * (lit << col)
        elif negative:
            self.cols[col].append(lit ^ 1)
            self.constant -= 1 << col
        else:
            self.cols[col].append(lit)

    def add_const(self, value: int, shift: int = 0) -> None:
        self.constant += value << shift

    def add_vector(self, bits: Sequence[int], shift: int = 0, signed: bool = False, negative: bool = False) -> None:
        """+- bits * 2^shift, two's complement if signed (no sign extension needed)."""
        for i, bit in enumerate(bits):
            neg_weight = signed and i == len(bits) - 1
            self.add_bit(bit, i + shift, negative != neg_weight)

    def add_product(self, a: Sequence[int], b: Sequence[int], a_signed: bool = False, b_signed: bool = False,
                    shift: int = 0, cut: int | None = None, negative: bool = False) -> None:
        """+- a * b * 2^shift as AND partial products. With `cut`, partial products in columns below cut are left
        out (a truncated multiplier, Schulte & Swartzlander 1993): the caller compensates and owns the error."""
        for p, ap in enumerate(a):
            sa = a_signed and p == len(a) - 1
            for q, bq in enumerate(b):
                col = p + q + shift
                if cut is not None and col < cut:
                    continue
                sb = b_signed and q == len(b) - 1
                self.add_bit(self.b.and_(ap, bq), col, negative != (sa != sb))

    def result(self, width: int, drop: int = 0) -> list[int]:
        top = drop + width
        cols = {c: list(v) for c, v in self.cols.items() if c < top}
        const = self.constant % (1 << top)
        for c in range(top):
            if const >> c & 1:
                cols.setdefault(c, []).insert(0, TRUE)  # constants first: adders with a constant are cheap
        out = []
        for c in range(min(min(cols, default=drop), drop), top):
            col = cols.get(c, [])
            carries = cols.setdefault(c + 1, []) if c + 1 < top else []
            while len(col) > 1:
                if len(col) >= 3:
                    s, cy = self.b.full_adder(col.pop(0), col.pop(0), col.pop(0))
                else:
                    s, cy = self.b.half_adder(col.pop(0), col.pop(0))
                col.append(s)
                if cy != FALSE:
                    carries.append(cy)
            if c >= drop:
                out.append(col[0] if col else FALSE)
        return out


def bits_value(codes: np.ndarray, bits: Sequence[int], signed: bool = False) -> np.ndarray:
    """Integer value of a vector given the output codes of a circuit whose outputs are exactly these bits
    (a helper for tests: decode u as two's complement when signed)."""
    w = len(bits)
    codes = np.asarray(codes, dtype=np.int64)
    return codes - ((codes >> (w - 1) & 1) << w) if signed and w else codes

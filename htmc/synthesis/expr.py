"""A small public expression API for a target's arithmetic form (issue 15, structured synthesis).

A target that has a formula declares it by a method `formula()` returning an expression tree over its inputs:

    from htmc.synthesis.expr import x, relu
    def formula(self):
        return relu(x(0) - 0.25) * x(1) + abs(x(0) - x(1)) / 4

Nodes: inputs `x(j)` (coordinate j of [0,1]^d), constants (any finite Python or numpy number; floats are dyadic,
so a constant is an exact rational), `+`, `-` (binary and unary), `*`, `abs(e)`, `relu(e)`, shifts `e << k`,
`e >> k` and division by a power of two (`e / 4`). Two nodes reach beyond arithmetic:
- `lookup(target, j0)`: another Target g on the consecutive coordinates j0 .. j0 + g.d - 1, read through g's own
  rigorous cell ranges (its interval table at the same k); the datapath stores it as a table (a BDD of muxes).
- `apply(fn, e, lipschitz)`: a 1-d function of a computed value (vectorized numpy `fn`, |fn(u) - fn(v)| <=
  lipschitz |u - v|, float evaluation within `fn_ulps` ulps); the datapath stores it as a table of e's codes.
The datapath method (htmc.synthesis.datapath_method) compiles any such tree to a fixed-point circuit with a proven
error bound; `evaluate` is the float reference used to check a formula against its target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

OPS = ("input", "const", "add", "sub", "neg", "mul", "abs", "relu", "shift", "lookup", "apply")


def _operand(v) -> "Expr":
    if isinstance(v, Expr):
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"cannot use {v!r} ({type(v).__name__}) in an expression: valid operands are Expr "
                         f"(x(j), const(c), ...), int and float")
    if not math.isfinite(float(v)):
        raise ValueError(f"constant {v!r} in an expression must be finite")
    return Expr("const", (), float(v))


@dataclass(frozen=True, eq=False)
class Expr:
    """One node: op (one of OPS), children, and the op's argument (input index, constant, shift, ...)."""
    op: str
    args: tuple = ()
    value: object = None

    def __add__(self, o): return Expr("add", (self, _operand(o)))
    def __radd__(self, o): return Expr("add", (_operand(o), self))
    def __sub__(self, o): return Expr("sub", (self, _operand(o)))
    def __rsub__(self, o): return Expr("sub", (_operand(o), self))
    def __mul__(self, o): return Expr("mul", (self, _operand(o)))
    def __rmul__(self, o): return Expr("mul", (_operand(o), self))
    def __neg__(self): return Expr("neg", (self,))
    def __abs__(self): return Expr("abs", (self,))

    def __lshift__(self, k):
        return Expr("shift", (self,), _shift_amount(k))

    def __rshift__(self, k):
        return Expr("shift", (self,), -_shift_amount(k))

    def __truediv__(self, c):
        """Division by a power of two only (a shift); other divisors are a multiplication by a constant."""
        c = _operand(c)
        if c.op != "const":
            raise ValueError(f"an expression divides only by a constant power of two, got {c!r}")
        f = Fraction(float(c.value))
        if f <= 0 or f.numerator & (f.numerator - 1) or f.denominator & (f.denominator - 1):
            raise ValueError(f"an expression divides only by a positive power of two, got {c!r}; "
                             f"multiply by const(1/{c!r}) instead")
        e = f.numerator.bit_length() - f.denominator.bit_length()
        return Expr("shift", (self,), -e)

    def __repr__(self):
        return to_string(self)


def _shift_amount(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -64 <= int(k) <= 64:
        raise ValueError(f"shift amount must be an integer in [-64, 64], got {k!r}")
    return int(k)


def x(j: int) -> Expr:
    """Input coordinate j of [0,1]^d."""
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or j < 0:
        raise ValueError(f"input index must be an integer >= 0, got {j!r}")
    return Expr("input", (), int(j))


def const(c) -> Expr:
    return _operand(c)


def relu(e) -> Expr:
    return Expr("relu", (_operand(e),))


def total(terms) -> Expr:
    """The sum of a list of expressions (or numbers), as a balanced tree (no deep recursion for long sums)."""
    terms = [_operand(t) for t in terms]
    if not terms:
        return const(0.0)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def lookup(target, j0: int = 0) -> Expr:
    """Target g on coordinates j0 .. j0 + g.d - 1, through its own rigorous cell ranges."""
    if not hasattr(target, "ranges") or not hasattr(target, "d"):
        raise ValueError(f"lookup needs a htmc.targets.Target, got {type(target).__name__}")
    return Expr("lookup", (), (target, int(j0)))


def apply(fn: Callable[[np.ndarray], np.ndarray], e, lipschitz: float, fn_ulps: int = 4) -> Expr:
    """fn(e) for a vectorized 1-d fn with Lipschitz constant `lipschitz` (numpy's libm: within 4 ulps)."""
    if not callable(fn):
        raise ValueError(f"apply needs a callable, got {fn!r}")
    if not (isinstance(lipschitz, (int, float)) and math.isfinite(lipschitz) and lipschitz >= 0):
        raise ValueError(f"apply: lipschitz must be a finite number >= 0, got {lipschitz!r}")
    return Expr("apply", (_operand(e),), (fn, float(lipschitz), int(fn_ulps)))


def check(e, d: int) -> Expr:
    """The tree `e` for a target with d inputs, or a ValueError naming the bad node and the valid choices."""
    if not isinstance(e, Expr):
        raise ValueError(f"a formula must be an htmc.synthesis.expr.Expr, got {e!r} ({type(e).__name__})")
    stack = [e]
    while stack:
        n = stack.pop()
        if not isinstance(n, Expr) or n.op not in OPS:
            bad = n.op if isinstance(n, Expr) else repr(n)
            raise ValueError(f"unknown expression node {bad}: valid ops are {', '.join(OPS)}")
        if n.op == "input" and not 0 <= n.value < d:
            raise ValueError(f"input x({n.value}) is out of range: the target has d={d} inputs x(0)..x({d - 1})")
        if n.op == "lookup":
            g, j0 = n.value
            if not (0 <= j0 and j0 + g.d <= d):
                raise ValueError(f"lookup of a {g.d}-d target at coordinate {j0} does not fit d={d} inputs")
        stack.extend(n.args)
    return e


def evaluate(e: Expr, xs: np.ndarray) -> np.ndarray:
    """Float value of the tree at points xs, shape (N, d): the reference a formula is checked against."""
    xs = np.asarray(xs, dtype=np.float64)
    memo: dict[int, np.ndarray] = {}

    def ev(n: Expr) -> np.ndarray:
        if id(n) in memo:
            return memo[id(n)]
        a = [ev(c) for c in n.args]
        v = {"input": lambda: xs[:, n.value], "const": lambda: np.full(len(xs), n.value),
             "add": lambda: a[0] + a[1], "sub": lambda: a[0] - a[1], "neg": lambda: -a[0],
             "mul": lambda: a[0] * a[1], "abs": lambda: np.abs(a[0]), "relu": lambda: np.maximum(a[0], 0.0),
             "shift": lambda: a[0] * 2.0 ** n.value,
             "lookup": lambda: n.value[0](xs[:, n.value[1]:n.value[1] + n.value[0].d]),
             "apply": lambda: n.value[0](a[0])}[n.op]()
        memo[id(n)] = v
        return v
    return ev(e)


def to_string(e: Expr) -> str:
    if e.op == "input":
        return f"x{e.value}"
    if e.op == "const":
        return repr(e.value)
    if e.op in ("add", "sub", "mul"):
        sym = {"add": "+", "sub": "-", "mul": "*"}[e.op]
        return f"({to_string(e.args[0])} {sym} {to_string(e.args[1])})"
    if e.op == "shift":
        return f"({to_string(e.args[0])} * 2^{e.value})"
    if e.op == "lookup":
        return f"{getattr(e.value[0], 'name', 'g') or 'g'}[x{e.value[1]}..]"
    if e.op == "apply":
        return f"{getattr(e.value[0], '__name__', 'fn')}({to_string(e.args[0])})"
    return f"{e.op}({to_string(e.args[0])})"


def formula_of(target) -> Expr | None:
    """The target's declared formula, checked against its dimension; None if it declares none."""
    make = getattr(target, "formula", None)
    if make is None:
        return None
    return check(make(), target.d)

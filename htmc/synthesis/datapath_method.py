"""The `datapath` method (issue 15, structured synthesis): a fixed-point datapath from the target's formula.

A target with an arithmetic form declares it through htmc.synthesis.expr (`formula()`); product, absdiff,
relu_ridges and compositional do. htmc.synthesis.fixedpoint compiles the tree in a format (working step, output
step, truncation guard columns, abs with or without its + 1, constant bits) and PROVES an error bound by interval
arithmetic over the whole domain. The method scans formats from coarse to fine: those whose proven bound is
within eps, and those just above it (the bound is a worst case; the verifier may still accept them), are ranked
by gate count and verified in that order. The best few also go through ABC (optimize_with_abc) and, where the
datapath has no tables, through Yosys from word-level Verilog (datapath_verilog); the smallest verified circuit
is kept. Truth tables cannot see this structure: the high byte of an 8x8 product takes ~15k gates from its table
and ~300 as a multiplier (STACK-NOTES "Structure beats truth tables").
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from htmc.circuits.verify import verify
from htmc.synthesis.abc_tool import AbcError, AbcNotFoundError, optimize_with_abc

from . import datapath_verilog
from .expr import formula_of
from .fixedpoint import Compiled, Format, TableTooWide, compile_expr
from .problem import METHODS, Attempt, Problem, make_attempt

NEAR = 1.5           # also verify formats whose proven bound is up to 1.5 eps (the verifier decides)
FINISH = 2           # candidates that go through ABC
GUARDS = (None, 0, 1, 2, 3, 4, 5)
VARIANTS = 3          # untruncated formats whose knobs are explored
MAX_VERIFY = 12       # candidates verified, smallest first, before giving up
YOSYS_FORMATS = 1     # untruncated formats that also go through Yosys (seconds each)


def _formats(tree_has, eps: float, k: int) -> list[tuple[int, int]]:
    """(output step, working step) pairs to scan, coarse to fine: around eps, or for eps = 0 (the exact grid
    value) from the input step down to its cube (exact products of up to three inputs)."""
    if eps > 0:
        e0 = math.floor(math.log2(eps))
        outs = range(e0 + 1, e0 - 5, -1)
    else:
        outs = range(-k, -3 * k - 1, -1)
    works = (0, 2, 4, 6) if tree_has("inner") else (0,)
    return [(o, o - w) for o in outs for w in works]


def _scan(problem: Problem, tree, has, eps: float) -> list[Compiled]:
    """Compile the format grid in two stages: every (output step, working step) untruncated, then the knobs
    (truncation guard, abs without + 1, constant bits) around the VARIANTS smallest that are (nearly) proven.

    The bound is one interval over the whole domain, so it misses cancellations between terms (relu_ridges m=16:
    bounds 2-5 eps, verified errors 0.4-0.98 eps). When no format is nearly proven, the verifier picks the bases.
    """
    t, plains = problem.table, []

    def compile_(f: Format) -> Compiled | None:
        try:
            return compile_expr(tree, t.d, t.k, t.domain, f)
        except TableTooWide:   # this format's table index is too wide: finer formats only get wider
            return None
    for out, lsb in _formats(has, eps, t.k):
        if problem.time_left() <= 0:
            break
        c = compile_(Format(lsb, out))
        if c is not None:
            plains.append(c)
    keep = [c for c in plains if c.bound <= NEAR * eps]
    if not keep:
        small = sorted(plains, key=lambda c: c.circuit.size)[:4 * VARIANTS]
        keep = [c for c in small if verify(c.circuit, t).within(eps)]
    for plain in sorted(keep, key=lambda c: c.circuit.size)[:VARIANTS]:
        f0, limit = plain.fmt, max(NEAR * eps, float(plain.bound) * 1.25)
        variants = [replace(f0, guard=g) for g in GUARDS[1:]]
        if has("abs"):
            variants += [replace(f, abs_one=False) for f in [f0] + variants]
        if has("const"):
            variants += [replace(f0, cbits=c) for c in (1, 6)]
        for f in variants:
            if problem.time_left() <= 0:
                break
            c = compile_(f)
            if c is not None and c.bound <= limit:
                keep.append(c)
    return keep


def _features(tree):
    """Which knobs matter: abs (its + 1), constants (their bits), inner nodes (the working step)."""
    ops, stack, muls = set(), [tree], 0
    while stack:
        n = stack.pop()
        ops.add(n.op)
        muls += n.op == "mul"
        stack += list(n.args)
    has = {"abs": "abs" in ops, "const": "const" in ops,
           "inner": bool(ops & {"relu", "apply", "lookup"}) or muls > 1}
    return has.__getitem__


@dataclass
class DatapathResult:
    best: Compiled                  # the smallest verified circuit, its format and proven bound
    how: str                        # builder, builder+abc or yosys+abc
    builder: Compiled               # the smallest verified builder circuit, before ABC
    yosys: dict = field(default_factory=dict)   # untruncated format -> gates of its Yosys+ABC circuit
    tried: int = 0                  # formats proven (or nearly) within eps


def synthesize(problem: Problem) -> DatapathResult | None:
    """The datapath search on one resolution; None for targets without a formula or nothing verified."""
    tree = formula_of(problem.target)
    if tree is None or problem.time_left() <= 0:
        return None
    cands = sorted(_scan(problem, tree, _features(tree), problem.eps), key=lambda c: (c.circuit.size, c.bound))
    verified = []
    for c in cands[:MAX_VERIFY]:
        if verify(c.circuit, problem.table).within(problem.eps):
            verified.append(c)
            if len(verified) == FINISH:
                break
    if not verified:
        return DatapathResult(None, "none", None, tried=len(cands))
    res = DatapathResult(verified[0], "builder", verified[0], tried=len(cands))
    _finish(problem, tree, verified, res)
    return res


@METHODS.register("datapath", "1")
def datapath_method(problem: Problem) -> list[Attempt]:
    """A fixed-point datapath from the target's formula with a proven error budget (issue 15)."""
    t0 = time.monotonic()
    res = synthesize(problem)
    if res is None:
        return []
    if res.best is None:
        return [make_attempt(problem, "datapath", "fixedpoint", None, time.monotonic() - t0,
                             note=f"no format verified ({res.tried} tried)")]
    f = res.best.fmt
    bound = f"{float(res.best.bound) / problem.eps:.3f} eps" if problem.eps > 0 else f"{float(res.best.bound):.3g}"
    note = (f"{res.how}; out 2^{f.out_lsb}, work 2^{f.lsb}, guard {f.guard}, abs+1 {f.abs_one}; proven bound "
            f"{bound}; builder {res.builder.circuit.size} gates")
    return [make_attempt(problem, "datapath", res.how, res.best.circuit, time.monotonic() - t0, own_decoder=True,
                         note=note)]


def _finish(problem: Problem, tree, verified: list[Compiled], res: DatapathResult) -> None:
    """ABC on the best few builder circuits, and Yosys on their formats untruncated; the smallest that verifies."""
    table = problem.table
    for c in verified:
        options = []
        if problem.time_left() > 0:
            try:
                opt = optimize_with_abc(c.circuit, timeout_s=max(5.0, problem.time_left()))
                options.append(("builder+abc", c.fmt, opt))
            except (AbcError, AbcNotFoundError):   # no ABC here: the builder circuit stands
                pass
        plain = replace(c.fmt, guard=None)
        if problem.time_left() > 0 and plain not in res.yosys and len(res.yosys) < YOSYS_FORMATS:
            y = datapath_verilog.yosys_circuit(tree, table.d, table.k, table.domain, plain,
                                               timeout_s=max(5.0, problem.time_left()))
            res.yosys[plain] = y.circuit.size if y is not None else None
            if y is not None:
                options.append(("yosys+abc", plain, y.circuit))
        for name, fmt, circ in options:
            if circ.size < res.best.circuit.size and verify(circ, table).within(problem.eps):
                res.best, res.how = replace(c, circuit=circ, fmt=fmt), name

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
from dataclasses import replace

from htmc.circuits.verify import verify
from htmc.synthesis.abc_tool import AbcError, optimize_with_abc

from . import datapath_verilog
from .expr import formula_of
from .fixedpoint import Compiled, Format, compile_expr
from .problem import METHODS, Attempt, Problem, make_attempt

NEAR = 1.5           # also verify formats whose proven bound is up to 1.5 eps (the verifier decides)
FINISH = 3           # candidates that go through ABC and Yosys
GUARDS = (None, 0, 1, 2, 3, 4, 5)


def _formats(tree_has, eps: float) -> list[tuple[int, int]]:
    """(output step, working step) pairs to scan, coarse to fine, around eps."""
    e0 = math.floor(math.log2(eps))
    outs = range(e0 + 1, e0 - 4, -1)
    works = (0, 2, 4, 6) if tree_has("inner") else (0,)
    return [(o, o - w) for o in outs for w in works]


def _scan(problem: Problem, tree, has, eps: float) -> list[Compiled]:
    """Compile the format grid; keep the formats proven (or nearly proven) within eps."""
    t, keep = problem.table, []
    compile_ = lambda f: compile_expr(tree, t.d, t.k, t.domain, f)
    for out, lsb in _formats(has, eps):
        if problem.time_left() <= 0:
            break
        plain = compile_(Format(lsb, out))
        if plain.bound > NEAR * eps:
            continue
        keep.append(plain)
        variants = [Format(lsb, out, g) for g in GUARDS[1:]]
        if has("abs"):
            variants += [replace(f, abs_one=False) for f in [plain.fmt] + variants]
        if has("const"):
            variants += [replace(plain.fmt, cbits=c) for c in (1, 6)]
        for f in variants:
            c = compile_(f)
            if c.bound <= NEAR * eps:
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


@METHODS.register("datapath", "1")
def datapath_method(problem: Problem) -> list[Attempt]:
    """A fixed-point datapath from the target's formula with a proven error budget (issue 15)."""
    tree = formula_of(problem.target)
    if tree is None or problem.time_left() <= 0:
        return []
    t0, eps, table = time.monotonic(), problem.eps, problem.table
    has = _features(tree)
    cands = sorted(_scan(problem, tree, has, eps), key=lambda c: (c.circuit.size, c.bound))
    verified = []
    for c in cands:
        if verify(c.circuit, table).within(eps):
            verified.append(c)
            if len(verified) == FINISH:
                break
    if not verified:
        return [make_attempt(problem, "datapath", "fixedpoint", None, time.monotonic() - t0,
                             note=f"no format verified ({len(cands)} tried)")]
    c, how = _finish(problem, tree, verified)
    f = c.fmt
    note = (f"{how}; out 2^{f.out_lsb}, work 2^{f.lsb}, guard {f.guard}, abs+1 {f.abs_one}; "
            f"proven bound {float(c.bound) / eps:.3f} eps; builder {verified[0].builder_gates} gates")
    return [make_attempt(problem, "datapath", how, c.circuit, time.monotonic() - t0, own_decoder=True,
                         note=note)]


def _finish(problem: Problem, tree, verified: list[Compiled]) -> tuple[Compiled, str]:
    """ABC on the best few builder circuits, and Yosys on their formats untruncated; the smallest that verifies."""
    best, how, table = verified[0], "builder", problem.table
    tried = set()
    for c in verified:
        options = []
        if problem.time_left() > 0:
            try:
                options.append(("builder+abc", c.fmt, optimize_with_abc(c.circuit, timeout_s=max(5.0, problem.time_left()))))
            except AbcError:
                pass
        plain = replace(c.fmt, guard=None)
        if problem.time_left() > 0 and plain not in tried:
            tried.add(plain)
            y = datapath_verilog.yosys_circuit(tree, table.d, table.k, table.domain, plain,
                                               timeout_s=max(5.0, problem.time_left()))
            if y is not None:
                options.append(("yosys+abc", plain, y.circuit))
        for name, fmt, circ in options:
            if circ.size < best.circuit.size and verify(circ, table).within(problem.eps):
                best, how = replace(c, circuit=circ, fmt=fmt), name
    return best, how

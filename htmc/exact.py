"""Exact B2 synthesis by SAT (python-sat), under a relation: per input row, a set of allowed output words.

The encoding is the classic one of Kojevnikov, Kulikov & Yaroslavtsev (SAT 2009) and Knuth (TAOCP 7.2.2.2,
"exact synthesis"): gate i picks two earlier signals j < k and a 4-bit op; x[i,t] is its value on row t. On top,
every output h picks a signal, y[h,t] is its value, and for each row every output word OUTSIDE the row's allowed
set is forbidden by one clause. This is strictly stronger than per-bit don't-cares, which cannot express
|y - f| <= eps (STACK-NOTES: on a 4-bit x^2 with 3 output bits, one step of allowed error took 8 gates to 3).

Symmetry breaking keeps at least one minimum circuit: no gate is a constant or a wire, every gate is read, and
consecutive independent gates are ordered by their fanin pairs. So UNSAT at size g-1 proves optimality of g.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import numpy as np
from pysat.solvers import Solver

from .circuit import CONST0, CONST1, Circuit

MAX_EXACT_INPUTS = 8
# Constants and plain wires are never needed in a minimum circuit. Negations are kept: an output equal to the
# complement of an input needs exactly one gate.
USELESS_OPS = (0b0000, 0b1111, 0b1010, 0b1100)


@dataclass
class ExactResult:
    circuit: Circuit | None
    gates: int | None
    optimal: bool
    seconds: float
    lower_bound: int  # every size below this was proved impossible


class _Vars:
    def __init__(self):
        self.top = 0

    def new(self) -> int:
        self.top += 1
        return self.top


def _encode(n: int, n_gates: int, allowed: list[np.ndarray], n_out: int):
    """CNF for 'some circuit of exactly n_gates gates meets the relation'. Returns (clauses, decode-info)."""
    rows = 1 << n
    v = _Vars()
    cls: list[list[int]] = []
    inp = [[bool((t >> i) & 1) for t in range(rows)] for i in range(n)]
    x = [[v.new() for _ in range(rows)] for _ in range(n_gates)]
    f = [[v.new() for _ in range(4)] for _ in range(n_gates)]
    # a single signal may only feed both fanins when there is no second one (the NOT of a 1-input function)
    pairs = [list(itertools.combinations(range(n + i), 2)) or [(0, 0)] for i in range(n_gates)]
    sel = [{p: v.new() for p in pairs[i]} for i in range(n_gates)]

    def value(sig: int, t: int, want: bool):
        """Literal for 'signal sig has value want on row t', or a Python bool when it is a constant."""
        if sig < n:
            return inp[sig][t] == want
        lit = x[sig - n][t]
        return lit if want else -lit

    def add(clause):
        out = []
        for lit in clause:
            if lit is True:
                return
            if lit is not False:
                out.append(lit)
        cls.append(out)

    for i in range(n_gates):
        cls.append(list(sel[i].values()))
        cls.extend([-a, -b] for a, b in itertools.combinations(sel[i].values(), 2))
        for op in USELESS_OPS:  # forbid each useless op: some op bit must differ from it
            cls.append([f[i][m] if not (op >> m) & 1 else -f[i][m] for m in range(4)])
        for (j, k), s in sel[i].items():
            for t in range(rows):
                for p, q, b in itertools.product((0, 1), repeat=3):
                    # s and x_j=p and x_k=q and op[p+2q]=b  ->  x_i = b
                    add([-s, value(j, t, not p), value(k, t, not q),
                         -f[i][p + 2 * q] if b else f[i][p + 2 * q], x[i][t] if b else -x[i][t]])
    # outputs: o[h][sig] over constants, inputs and gates
    signals = ["c0", "c1"] + list(range(n + n_gates))
    o = [{sig: v.new() for sig in signals} for _ in range(n_out)]
    y = [[v.new() for _ in range(rows)] for _ in range(n_out)]
    for h in range(n_out):
        cls.append(list(o[h].values()))
        cls.extend([-a, -b] for a, b in itertools.combinations(o[h].values(), 2))
        for sig, lit in o[h].items():
            for t in range(rows):
                if sig in ("c0", "c1"):
                    add([-lit, y[h][t] if sig == "c1" else -y[h][t]])
                else:
                    add([-lit, value(sig, t, False), y[h][t]])
                    add([-lit, value(sig, t, True), -y[h][t]])
    for t in range(rows):
        ok = set(int(w) for w in allowed[t])
        for w in range(1 << n_out):
            if w not in ok:
                cls.append([-y[h][t] if (w >> h) & 1 else y[h][t] for h in range(n_out)])
    for i in range(n_gates):  # every gate is read by a later gate or an output
        readers = [sel[m][p] for m in range(i + 1, n_gates) for p in pairs[m] if n + i in p]
        cls.append(readers + [o[h][n + i] for h in range(n_out)])
    for i in range(n_gates - 1):  # order consecutive gates that do not feed each other: colex on fanin pairs
        for (j, k), s in sel[i].items():
            for (j2, k2), s2 in sel[i + 1].items():
                if k2 != n + i and (k2, j2) < (k, j):
                    cls.append([-s, -s2])
    return cls, (sel, f, o)


def _decode(model: set[int], n: int, n_gates: int, info) -> Circuit:
    sel, f, o = info
    gates = []
    for i in range(n_gates):
        j, k = next(p for p, s in sel[i].items() if s in model)
        op = sum(1 << m for m in range(4) if f[i][m] in model)
        gates.append((op, 2 + j, 2 + k))  # signal numbering of htmc.circuit: inputs start at 2
    outs = []
    for oh in o:
        sig = next(sg for sg, lit in oh.items() if lit in model)
        outs.append(CONST0 if sig == "c0" else CONST1 if sig == "c1" else 2 + sig)
    return Circuit(n, gates, outs)


def _solve(clauses: list[list[int]], deadline: float) -> tuple[bool | None, set[int]]:
    with Solver(name="g4", bootstrap_with=clauses) as s:
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), s.interrupt)
        timer.start()
        try:
            res = s.solve_limited(expect_interrupt=True)
        finally:
            timer.cancel()
        return res, set(lit for lit in (s.get_model() or []) if lit > 0)


def exact_synthesis(n_inputs: int, allowed: list[np.ndarray], n_outputs: int, budget_s: float = 60,
                    max_gates: int = 12) -> ExactResult:
    """Smallest B2 circuit whose output word on row t lies in allowed[t], for t over the 2^n input codes.

    `optimal` is true only when every smaller size was proved UNSAT within the budget.
    """
    if not 0 <= n_inputs <= MAX_EXACT_INPUTS:
        raise ValueError(f"exact synthesis takes 0..{MAX_EXACT_INPUTS} inputs, got {n_inputs}")
    if len(allowed) != 1 << n_inputs:
        raise ValueError(f"need one allowed set per row: {1 << n_inputs} rows, got {len(allowed)}")
    empty = [t for t, a in enumerate(allowed) if len(a) == 0]
    if empty:
        raise ValueError(f"row {empty[0]} allows no output word, so no circuit exists")
    start = time.monotonic()
    deadline = start + budget_s
    for g in range(max_gates + 1):
        if g > 0 and n_inputs == 0:
            break
        clauses, info = _encode(n_inputs, g, allowed, n_outputs)
        res, model = _solve(clauses, deadline)
        if res is None:
            return ExactResult(None, None, False, time.monotonic() - start, g)
        if res:
            return ExactResult(_decode(model, n_inputs, g, info), g, True, time.monotonic() - start, g)
    return ExactResult(None, None, False, time.monotonic() - start, max_gates + 1)


def allowed_from_columns(columns: list[np.ndarray]) -> list[np.ndarray]:
    """The exact relation of a multi-output Boolean function: one allowed word per row."""
    u = np.zeros(np.asarray(columns[0]).size, dtype=np.int64)
    for j, c in enumerate(columns):
        u |= np.asarray(c, dtype=np.int64) << j
    return [np.array([w]) for w in u]


def exact_boolean(columns: list[np.ndarray], budget_s: float = 60) -> ExactResult:
    n = np.asarray(columns[0]).size.bit_length() - 1
    return exact_synthesis(n, allowed_from_columns(columns), len(columns), budget_s)

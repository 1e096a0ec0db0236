"""Exact B2 synthesis by SAT (python-sat), under a relation: per input row, a set of allowed output words.

The encoding is the one of Kojevnikov, Kulikov & Yaroslavtsev (SAT 2009) and Knuth (TAOCP 7.1.2 and 7.2.2.2,
"exact synthesis"): gate i picks two earlier signals j < k and an op; x[i,t] is its value on row t. Every output
h picks a signal, y[h,t] is its value, and for each row every output word OUTSIDE the row's allowed set is
forbidden by one clause. This is strictly stronger than per-bit don't-cares, which cannot express |y - f| <= eps
(STACK-NOTES: on a 4-bit x^2 with 3 output bits, one step of allowed error took 8 gates to 3).

Gates are *normalized* (Knuth 7.1.2, "normal" chains; KKY 2009): every gate is 0 on the all-zero row, so a gate
has 3 free op bits and no variable on row 0, and each output carries a polarity bit instead. Any B2 circuit
normalizes at no cost: complement every gate that is 1 on row 0 and let its readers absorb the complement into
their op. The complement of a gate is free only where nothing else needs the gate itself, so all outputs reading
one gate must agree on its polarity, and an input is never read complemented (B2 has no free inverters). A gate
may be a plain wire only to give an output the complement of a signal; no gate reads it. `_decode` turns the
normalized solution back into a real circuit, which `exact_synthesis` checks against the relation.

Symmetry breaking keeps at least one minimum circuit (each rule says why where it is added), so UNSAT at size g-1
proves optimality of g.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import numpy as np
from pysat.solvers import Solver

from htmc.circuits.circuit import Circuit, CONST0, CONST1, output_codes

MAX_EXACT_INPUTS = 8
# Glucose 4.1 was as fast as CaDiCaL 1.9.5 on the 12 seven-gate NPN classes (35.6 s and 34.9 s in all, run
# interleaved) and, unlike CaDiCaL in python-sat, can be interrupted: CaDiCaL under conflict-budget slices took
# 30x longer on a 9-gate instance, since every resumed call disturbs its search.
SAT_SOLVER = "glucose4"
# Normalized op bits: bit m of the 4-bit op (value at fanins a + 2b = m) for m = 1, 2, 3; bit 0 is always 0.
OP_BITS = (1, 2, 3)
# op patterns (bit1, bit2, bit3) of the normalized wires a (0b1010) and b (0b1100)
WIRES = ((1, 0, 1), (0, 1, 1))


@dataclass
class ExactResult:
    circuit: Circuit | None
    gates: int | None
    optimal: bool
    seconds: float
    lower_bound: int  # every size below this was proved impossible


class _Cnf:
    """Variables and clauses; literals may be Python bools (known values), which `add` folds away."""

    def __init__(self):
        self.top = 0
        self.clauses: list[list[int]] = []

    def new(self) -> int:
        self.top += 1
        return self.top

    def add(self, clause) -> None:
        if any(lit is True for lit in clause):
            return
        self.clauses.append([lit for lit in clause if lit is not False])

    def exactly_one(self, lits: list[int]) -> None:
        self.clauses.append(list(lits))
        self.clauses.extend([-a, -b] for a, b in itertools.combinations(lits, 2))


@dataclass
class _Encoding:
    n: int
    n_gates: int
    sel: list[dict[tuple[int, int], int]]  # sel[i][(j, k)]: gate i reads signals j < k (0-based, inputs first)
    op: list[dict[int, int]]                # op[i][m]: bit m of gate i's normalized op
    out: list[dict[object, int]]            # out[h][sig]: output h reads sig ("c0", an input, or a gate)
    pol: list[int]                          # pol[h]: output h is the complement of the signal it reads


def _gates(cnf: _Cnf, n: int, n_gates: int, rows: int):
    """Gate variables and their semantics; returns (sel, op, value) where value(sig, t, want) is a literal."""
    x = [[None] + [cnf.new() for _ in range(1, rows)] for _ in range(n_gates)]
    op = [{m: cnf.new() for m in OP_BITS} for _ in range(n_gates)]
    # a single signal may feed both fanins only when there is no second one (n = 1: the NOT of x0)
    sel = [{p: cnf.new() for p in (itertools.combinations(range(n + i), 2) if n + i > 1 else [(0, 0)])}
           for i in range(n_gates)]

    def value(sig: int, t: int, want: bool):
        """Literal for 'signal sig has value want on row t', or a bool when it is known (inputs, row 0)."""
        if sig < n:
            return bool((t >> sig) & 1) == want
        if t == 0:
            return not want
        lit = x[sig - n][t]
        return lit if want else -lit

    for i in range(n_gates):
        cnf.exactly_one(list(sel[i].values()))
        cnf.add([op[i][m] for m in OP_BITS])  # not constant 0: a constant gate is never needed
        for (j, k), s in sel[i].items():
            for t in range(1, rows):
                for p, q in itertools.product((0, 1), repeat=2):
                    # s and x_j = p and x_k = q  ->  x_i = op bit (p + 2q), which is 0 for p = q = 0
                    m = p + 2 * q
                    pre = [-s, value(j, t, not p), value(k, t, not q)]
                    if m == 0:
                        cnf.add(pre + [-x[i][t]])
                    else:
                        cnf.add(pre + [-op[i][m], x[i][t]])
                        cnf.add(pre + [op[i][m], -x[i][t]])
    return sel, op, value


def _outputs(cnf: _Cnf, n: int, n_gates: int, rows: int, n_out: int, value, allowed: list[np.ndarray]):
    """Output selection, polarity and the relation; returns (out, pol)."""
    signals = ["c0"] + list(range(n + n_gates))  # constant 1 is c0 complemented
    out = [{sig: cnf.new() for sig in signals} for _ in range(n_out)]
    pol = [cnf.new() for _ in range(n_out)]
    y = [[cnf.new() for _ in range(rows)] for _ in range(n_out)]
    for h in range(n_out):
        cnf.exactly_one(list(out[h].values()))
        for sig, lit in out[h].items():
            if sig != "c0" and sig < n:
                cnf.add([-lit, -pol[h]])  # B2 has no free inverter on an input
            for t in range(rows):
                for v in (False, True):  # y = value(sig) xor pol; `known` is "sig is not v"
                    known = v if sig == "c0" else value(sig, t, not v)
                    cnf.add([-lit, known, pol[h], y[h][t] if v else -y[h][t]])
                    cnf.add([-lit, known, -pol[h], -y[h][t] if v else y[h][t]])
    for i in range(n, n + n_gates):  # outputs reading one gate agree on its polarity: the gate has one real value
        for h, h2 in itertools.combinations(range(n_out), 2):
            cnf.add([-out[h][i], -out[h2][i], -pol[h], pol[h2]])
            cnf.add([-out[h][i], -out[h2][i], pol[h], -pol[h2]])
    for t in range(rows):
        ok = set(int(w) for w in allowed[t])
        for w in range(1 << n_out):
            if w not in ok:
                cnf.add([-y[h][t] if (w >> h) & 1 else y[h][t] for h in range(n_out)])
    return out, pol


def _symmetry_breaking(cnf: _Cnf, enc: _Encoding) -> None:
    n, n_gates, sel, op, out = enc.n, enc.n_gates, enc.sel, enc.op, enc.out
    for i in range(n_gates):
        readers = [s for m in range(i + 1, n_gates) for p, s in sel[m].items() if n + i in p]
        # Every gate is read: a dead gate can be deleted (KKY 2009, "all steps are used").
        cnf.add(readers + [out[h][n + i] for h in range(len(out))])
        # A gate that reads a wire can read the wire's source instead (Knuth 7.1.2: no trivial steps), so a
        # wire is only ever needed to hand an output the complement of a signal.
        for pattern, s in itertools.product(WIRES, readers):
            cnf.add([-s] + [-op[i][m] if b else op[i][m] for m, b in zip(OP_BITS, pattern)])
    for i, m in itertools.combinations(range(n_gates), 2):
        # No re-application (Haaswijk et al., TCAD 2020): if gate m reads gate i and a fanin c of i, m is a
        # function of i's fanins and can read those instead. Like bypassing a wire, that lowers the sum over all
        # fanins of their logic level, so a minimum circuit where that sum is least has no such m.
        for (c, gi), s in sel[m].items():
            if gi == n + i:
                cnf.clauses.extend([-s, -s_i] for p, s_i in sel[i].items() if c in p)
    if len(out) == 1 and n_gates > 0:
        # With one output, the last gate is read by nothing but the output (all steps used), so it is the output.
        cnf.add([out[0][n + n_gates - 1]])
    for i in range(n_gates - 1):
        # Adjacent gates that do not feed each other can swap; each swap that puts the colex-smaller fanin pair
        # first lowers the fanin sequence lexicographically, so an ordered minimum circuit exists (KKY 2009).
        for (j, k), s in sel[i].items():
            for (j2, k2), s2 in sel[i + 1].items():
                if k2 != n + i and (k2, j2) < (k, j):
                    cnf.add([-s, -s2])


def _encode(n: int, n_gates: int, allowed: list[np.ndarray], n_out: int) -> tuple[_Cnf, _Encoding]:
    """CNF for 'some normalized circuit of exactly n_gates gates meets the relation'."""
    rows = 1 << n
    cnf = _Cnf()
    sel, op, value = _gates(cnf, n, n_gates, rows)
    out, pol = _outputs(cnf, n, n_gates, rows, n_out, value, allowed)
    enc = _Encoding(n, n_gates, sel, op, out, pol)
    _symmetry_breaking(cnf, enc)
    return cnf, enc


def _real_op(norm_op: int, flip_a: int, flip_b: int, flip_out: int) -> int:
    """The op that reads the real (possibly complemented) fanins and yields the gate's real value."""
    return sum(1 << (va + 2 * vb) for va, vb in itertools.product((0, 1), repeat=2)
               if ((norm_op >> ((va ^ flip_a) + 2 * (vb ^ flip_b))) & 1) ^ flip_out)


def _decode(model: set[int], enc: _Encoding) -> Circuit:
    """The real circuit: a gate read by a complemented output computes the complement of its normalized value."""
    n = enc.n
    reads = [next(sig for sig, lit in oh.items() if lit in model) for oh in enc.out]
    flips = [int(p in model) for p in enc.pol]
    flipped = [0] * (n + enc.n_gates)  # per signal (0-based, inputs first): real = normalized xor flipped
    for sig, flip in zip(reads, flips):
        if sig != "c0":
            flipped[sig] = flip
    gates = []
    for i in range(enc.n_gates):
        j, k = next(p for p, s in enc.sel[i].items() if s in model)
        norm_op = sum(1 << m for m in OP_BITS if enc.op[i][m] in model)
        gates.append((_real_op(norm_op, flipped[j], flipped[k], flipped[n + i]), 2 + j, 2 + k))
    outs = [(CONST1 if flip else CONST0) if sig == "c0" else 2 + sig for sig, flip in zip(reads, flips)]
    return Circuit(n, gates, outs)


def _meets(circuit: Circuit, allowed: list[np.ndarray]) -> bool:
    return all(int(u) in set(int(w) for w in a) for u, a in zip(output_codes(circuit), allowed))


def _solve(clauses: list[list[int]], deadline: float) -> tuple[bool | None, set[int]]:
    """SAT, UNSAT, or None when the deadline passed (a timer interrupts the solver)."""
    with Solver(name=SAT_SOLVER, bootstrap_with=clauses) as s:
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), s.interrupt)
        timer.start()
        try:
            res = s.solve_limited(expect_interrupt=True)
        finally:
            timer.cancel()
        return res, set(lit for lit in (s.get_model() or []) if lit > 0) if res else set()


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
        cnf, enc = _encode(n_inputs, g, allowed, n_outputs)
        res, model = _solve(cnf.clauses, deadline)
        if res is None:
            return ExactResult(None, None, False, time.monotonic() - start, g)
        if res:
            circuit = _decode(model, enc)
            if not _meets(circuit, allowed):
                raise AssertionError(f"exact synthesis decoded a {g}-gate circuit that breaks the relation")
            return ExactResult(circuit, g, True, time.monotonic() - start, g)
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

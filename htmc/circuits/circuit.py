"""Binary circuits over the full basis B2 (DESIGN §2.1) and their bit-parallel simulation.

Signals are integers: 0 is the constant 0, 1 is the constant 1, 2..n+1 are the inputs x_0..x_{n-1}, and gate g
(0-based, in topological order) is signal n + 2 + g. A gate is (op, a, b): op is its 4-bit truth table,
out = bit (va + 2*vb) of op, so any of the 16 two-input functions is one gate and inverters cost nothing.
Outputs are signals, least significant bit first; the decoder (a, s) of DESIGN §2.1 is free.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np


CONST0, CONST1 = 0, 1
OP_AND, OP_OR, OP_XOR, OP_NAND = 0b1000, 0b1110, 0b0110, 0b0111
# ops that ignore an input or are constant; a minimal circuit never needs them.
TRIVIAL_OPS = frozenset({0b0000, 0b1111, 0b1010, 0b0101, 0b1100, 0b0011})
# AIG cost of one B2 gate: XOR and XNOR need 3 ANDs, every other non-trivial op is one AND with inversions.
AIG_COST = {op: (3 if op in (0b0110, 0b1001) else 0 if op in TRIVIAL_OPS else 1) for op in range(16)}


@dataclass(frozen=True)
class Decoder:
    """Free output decoder: value = offset + u * 2^-shift (DESIGN §2.1)."""
    offset: float = 0.0
    shift: int = 0

    def decode(self, u: np.ndarray) -> np.ndarray:
        return self.offset + np.asarray(u, dtype=np.float64) * 2.0 ** (-self.shift)


class CircuitError(ValueError):
    """A malformed circuit: a cycle, a dangling signal, a bad op."""


@dataclass
class Circuit:
    n_inputs: int
    gates: list[tuple[int, int, int]]
    outputs: list[int]
    decoder: Decoder = field(default_factory=Decoder)

    def __post_init__(self):
        for g, (op, a, b) in enumerate(self.gates):
            if not 0 <= op < 16:
                raise CircuitError(f"gate {g} has op {op}; ops are 4-bit truth tables 0..15")
            me = self.gate_signal(g)
            if not (0 <= a < me and 0 <= b < me):
                raise CircuitError(f"gate {g} reads signal {a if not 0 <= a < me else b}, which is not "
                                   f"an earlier signal (gates must be in topological order; use from_unordered)")
        top = self.n_inputs + 2 + len(self.gates)
        for o in self.outputs:
            if not 0 <= o < top:
                raise CircuitError(f"output reads signal {o}, but only signals 0..{top - 1} exist")

    # --- signals -------------------------------------------------------------------------------------------------
    def gate_signal(self, g: int) -> int:
        return self.n_inputs + 2 + g

    @property
    def n_signals(self) -> int:
        return self.n_inputs + 2 + len(self.gates)

    # --- size ----------------------------------------------------------------------------------------------------
    def live_gates(self) -> list[int]:
        """Indices of the gates reachable from the outputs (the ones that count, DESIGN §2.1)."""
        first = self.n_inputs + 2
        seen = np.zeros(len(self.gates), dtype=bool)
        stack = [o - first for o in self.outputs if o >= first]
        while stack:
            g = stack.pop()
            if seen[g]:
                continue
            seen[g] = True
            _, a, b = self.gates[g]
            stack.extend(s - first for s in (a, b) if s >= first and not seen[s - first])
        return [int(g) for g in np.flatnonzero(seen)]

    @property
    def size(self) -> int:
        return len(self.live_gates())

    @property
    def aig_nodes(self) -> int:
        """AND-node count of the direct AIG translation (an upper bound; ABC reports its own for its circuits)."""
        return sum(AIG_COST[self.gates[g][0]] for g in self.live_gates())

    def pruned(self) -> "Circuit":
        """The same function with dead gates removed and signals renumbered."""
        live = self.live_gates()
        first = self.n_inputs + 2
        remap = {s: s for s in range(first)}
        gates = []
        for new, g in enumerate(live):
            op, a, b = self.gates[g]
            gates.append((op, remap[a], remap[b]))
            remap[first + g] = first + new
        return Circuit(self.n_inputs, gates, [remap[o] for o in self.outputs], self.decoder)

    @classmethod
    def from_unordered(cls, n_inputs: int, gates: dict[object, tuple[int, object, object]],
                       outputs: list[object], fixed: dict[object, int], decoder: Decoder | None = None) -> "Circuit":
        """Build from named gates in any order; a combinational cycle is a CircuitError naming a node on it.

        fixed maps the names of inputs and constants to their signals (2 + i, CONST0, CONST1).
        """
        index: dict[object, int] = dict(fixed)
        ordered: list[tuple[int, int, int]] = []
        state: dict[object, int] = {}  # 1 = on the DFS stack, 2 = done

        def visit(root: object) -> None:
            stack = [(root, False)]
            while stack:
                name, expanded = stack.pop()
                if name in index:
                    continue
                if name not in gates:
                    raise CircuitError(f"signal '{name}' is used but never defined")
                if expanded:
                    op, a, b = gates[name]
                    index[name] = n_inputs + 2 + len(ordered)
                    ordered.append((op, index[a], index[b]))
                    state[name] = 2
                    continue
                if state.get(name) == 1:
                    raise CircuitError(f"the circuit has a combinational cycle through '{name}'")
                state[name] = 1
                stack.append((name, True))
                for fanin in gates[name][1:]:
                    if fanin not in index:
                        if state.get(fanin) == 1:
                            raise CircuitError(f"the circuit has a combinational cycle through '{fanin}'")
                        stack.append((fanin, False))

        for name in list(gates) + list(outputs):
            visit(name)
        return cls(n_inputs, ordered, [index[o] for o in outputs], decoder or Decoder())


# --- bit-parallel simulation ---------------------------------------------------------------------------------------
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
# Input i < 6 varies inside a 64-bit word: bit c of the word is bit i of c.
_LOW_PATTERNS = [np.uint64(sum(1 << c for c in range(64) if (c >> i) & 1)) for i in range(6)]


def input_words(i: int, w0: int, nw: int) -> np.ndarray:
    """Packed values of input i over the codes of words w0..w0+nw-1 (64 codes per word)."""
    if i < 6:
        return np.full(nw, _LOW_PATTERNS[i], dtype=np.uint64)
    on = ((np.arange(w0, w0 + nw, dtype=np.int64) >> (i - 6)) & 1).astype(bool)
    return np.where(on, _ALL, np.uint64(0))


def _apply_op(op: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # op bit (va + 2 vb): bit0 = ~a&~b, bit1 = a&~b, bit2 = ~a&b, bit3 = a&b. Common ops get one numpy call.
    if op == 0b1000:
        return a & b
    if op == 0b1110:
        return a | b
    if op == 0b0110:
        return a ^ b
    if op == 0b1001:
        return ~(a ^ b)
    if op == 0b0111:
        return ~(a & b)
    if op == 0b0001:
        return ~(a | b)
    out = np.zeros_like(a)
    if op & 1:
        out |= ~a & ~b
    if op & 2:
        out |= a & ~b
    if op & 4:
        out |= ~a & b
    if op & 8:
        out |= a & b
    return out


def _levels(circuit: Circuit) -> list[dict[int, np.ndarray]]:
    """Live gates grouped by logic level, then by op, so that each group is one vectorised numpy call."""
    first = circuit.n_inputs + 2
    live = circuit.live_gates()
    level = np.zeros(len(circuit.gates), dtype=np.int64)
    for g in live:
        _, a, b = circuit.gates[g]
        la = level[a - first] + 1 if a >= first else 1
        lb = level[b - first] + 1 if b >= first else 1
        level[g] = max(la, lb)
    groups: dict[int, dict[int, list[int]]] = {}
    for g in live:
        groups.setdefault(int(level[g]), {}).setdefault(circuit.gates[g][0], []).append(g)
    return [{op: np.array(gs) for op, gs in groups[lv].items()} for lv in sorted(groups)]


def simulate(circuit: Circuit, chunk_words: int = 1024, backend: str | None = None,
             device: str | None = None) -> np.ndarray:
    """Packed output bits over all 2^n input codes: array (n_outputs, max(1, 2^n/64)) of uint64.

    For n < 6 only the low 2^n bits of the single word are meaningful. The numba kernel (fastsim.py), the torch
    path (torchsim.py, CUDA when present) and the numpy path below give the same bits; simbackend.py picks one,
    or `backend` ('auto', 'numpy', 'numba', 'torch') / `device` ('auto', 'cpu', 'cuda') or the environment
    variables HTMC_SIM_BACKEND / HTMC_SIM_DEVICE force it. chunk_words applies to the numpy path.
    """
    from htmc.circuits import simbackend
    return simbackend.simulate(circuit, backend, device, chunk_words)


def simulate_numpy(circuit: Circuit, chunk_words: int = 1024) -> np.ndarray:
    """simulate's numpy path: one numpy call per (level, op) group over a chunk of words.

    For n < 6 only the low 2^n bits of the single word are meaningful. Words are processed in chunks so that
    memory stays at n_signals * chunk_words * 8 bytes whatever n is.
    """
    n = circuit.n_inputs
    total_words = max(1, (1 << n) // 64)
    levels = _levels(circuit)
    gates = np.array(circuit.gates, dtype=np.int64).reshape(-1, 3)
    first = n + 2
    out = np.empty((len(circuit.outputs), total_words), dtype=np.uint64)
    for w0 in range(0, total_words, chunk_words):
        nw = min(chunk_words, total_words - w0)
        vals = np.empty((circuit.n_signals, nw), dtype=np.uint64)
        vals[CONST0] = 0
        vals[CONST1] = _ALL
        for i in range(n):
            vals[2 + i] = input_words(i, w0, nw)
        for groups in levels:
            for op, gs in groups.items():
                vals[first + gs] = _apply_op(op, vals[gates[gs, 1]], vals[gates[gs, 2]])
        out[:, w0:w0 + nw] = vals[circuit.outputs]
    return out


def unpack_bits(words: np.ndarray, n_inputs: int) -> np.ndarray:
    """Packed rows (k, W) -> bool array (k, 2^n) with column c = value at input code c."""
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=-1, bitorder="little")
    return bits[..., : 1 << n_inputs].astype(bool)


def output_codes(circuit: Circuit, backend: str | None = None) -> np.ndarray:
    """The unsigned integer u computed at every input code, shape (2^n,)."""
    return codes_from_words(simulate(circuit, backend=backend), circuit.n_inputs)


def codes_from_words(words: np.ndarray, n_inputs: int) -> np.ndarray:
    """Packed output rows (simulate's result) -> the integer u at every code, row j giving bit j."""
    if "htmc.circuits.fastsim" in sys.modules:  # loaded by simulate: the compiled unpacking (~7x faster)
        return sys.modules["htmc.circuits.fastsim"].codes(words, n_inputs)
    bits = unpack_bits(words, n_inputs)
    u = np.zeros(1 << n_inputs, dtype=np.int64)
    for j in range(len(words)):
        u |= bits[j].astype(np.int64) << j
    return u


def evaluate(circuit: Circuit, backend: str | None = None) -> np.ndarray:
    """Decoded output value at every input code."""
    return circuit.decoder.decode(output_codes(circuit, backend))


def random_circuit(rng: np.random.Generator, n_inputs: int, n_gates: int, n_outputs: int,
                   window: int | None = None) -> Circuit:
    """A random circuit for tests and benchmarks. `window` limits how far back fanins reach (deep circuits)."""
    gates = []
    for g in range(n_gates):
        top = n_inputs + 2 + g
        lo = 0 if window is None else max(0, top - window)
        a, b = (int(v) for v in rng.integers(lo, top, size=2))
        gates.append((int(rng.integers(0, 16)), a, b))
    top = n_inputs + 2 + n_gates
    outs = [int(v) for v in rng.integers(max(0, top - n_outputs * 4), top, size=n_outputs)]
    return Circuit(n_inputs, gates, outs)

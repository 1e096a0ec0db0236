"""The torch path of the verifier kernel (issue 15): whole-netlist simulation on a GPU, or on CPU tensors in tests.

A GPU needs parallel work per launch, so where the numba kernel (fastsim.py) runs gate after gate over a
cache-sized block, this runs logic level after logic level over a large chunk of words: each level is one
gather, the branch-free algebraic normal form of every gate at once, and one scatter,
    out = c0 ^ (c1 & a) ^ (c2 & b) ^ (c3 & a & b),  c0 = t0, c1 = t0^t1, c2 = t0^t2, c3 = t0^t1^t2^t3
for truth table t (out = bit (a + 2b) of t), with the coefficients as per-gate all-ones/all-zeros words. Rows
are reused by liveness at level granularity (a row is freed after the last level that reads it), so memory is
(peak live signals) x (chunk words) and the chunk, hence the work per launch, can be large.
Words are int64 (torch's uint64 lacks bitwise kernels on some devices); the bits are those of circuit.simulate.
This module imports torch at load: only simbackend imports it, and only when the torch backend is chosen.
"""
from __future__ import annotations

import numpy as np
import torch

from htmc.circuits.circuit import _LOW_PATTERNS, Circuit

LOW = np.array(_LOW_PATTERNS, dtype=np.uint64).view(np.int64)
# A share of free device memory for one chunk's rows and the level temporaries; CPU tensors get a fixed budget.
CUDA_MEMORY_SHARE = 0.25
CPU_BUDGET_BYTES = 256 << 20


def _levels(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """Live gates sorted by logic level (stable), and their levels (inputs and constants are level 0)."""
    first = circuit.n_inputs + 2
    live = circuit.live_gates()
    level = [0] * circuit.n_signals  # Python lists: ~5x faster than numpy scalar indexing in this loop
    for g in live:
        _, a, b = circuit.gates[g]
        level[first + g] = max(level[a], level[b]) + 1
    live = np.array(live, dtype=np.int64)
    levels = np.array(level, dtype=np.int64)[first + live]
    order = np.argsort(levels, kind="stable")
    return live[order], levels[order]


def _rows(first: int, order: list, levels: list, fanins: np.ndarray, last: list, bounds: list) -> tuple[list, int]:
    """Row of every signal: a level's outputs take free rows first (so none lands on a row the level still
    reads), then the rows of signals whose last reading level this is are freed."""
    row = list(range(len(last)))
    free: list[int] = []
    n_rows = first
    fa, fb = fanins[:, 0].tolist(), fanins[:, 1].tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for k in range(lo, hi):
            if free:
                row[first + order[k]] = free.pop()
            else:
                row[first + order[k]], n_rows = n_rows, n_rows + 1
        here = levels[lo]
        for k in range(lo, hi):
            for s in (fa[k], fb[k]):
                if last[s] == here:
                    last[s] = -1  # freed once
                    free.append(row[s])
    return row, n_rows


def plan(circuit: Circuit) -> dict:
    """Per-level row indices and ANF coefficients, as numpy arrays; rows reused after their last reading level."""
    first = circuit.n_inputs + 2
    order, levels = _levels(circuit)
    gates = np.array(circuit.gates, dtype=np.int64).reshape(-1, 3)[order]
    forever = int(levels[-1]) + 1 if levels.size else 1
    last = np.zeros(circuit.n_signals, dtype=np.int64)  # last level reading each signal
    np.maximum.at(last, gates[:, 1], levels)
    np.maximum.at(last, gates[:, 2], levels)
    last[:first] = forever
    last[circuit.outputs] = forever
    bounds = np.flatnonzero(np.diff(levels, prepend=-1, append=-1)) if levels.size else np.zeros(1, np.int64)
    row, n_rows = _rows(first, order.tolist(), levels.tolist(), gates[:, 1:], last.tolist(), bounds.tolist())
    row = np.array(row, dtype=np.int64)
    t = gates[:, 0]
    bit = [-((t >> k) & 1) for k in range(4)]
    coef = np.stack([bit[0], bit[0] ^ bit[1], bit[0] ^ bit[2], bit[0] ^ bit[1] ^ bit[2] ^ bit[3]], axis=1)
    a, b = row[gates[:, 1]], row[gates[:, 2]]
    # per level, its a rows then its b rows: one gather fetches both operands of the level
    ab = np.concatenate([np.concatenate([a[lo:hi], b[lo:hi]]) for lo, hi in zip(bounds[:-1], bounds[1:])]
                        or [np.zeros(0, np.int64)])
    return {"a": a, "b": b, "ab": ab, "out": row[first + order], "coef": coef,
            "bounds": bounds, "n_rows": n_rows, "outputs": row[circuit.outputs]}


def _chunk_words(p: dict, total_words: int, device: torch.device) -> int:
    widest = int(np.diff(p["bounds"]).max()) if len(p["bounds"]) > 1 else 0
    if device.type == "cuda":
        budget = int(torch.cuda.mem_get_info(device)[0] * CUDA_MEMORY_SHARE)
    else:
        budget = CPU_BUDGET_BYTES
    w = 1
    while 2 * w <= total_words and (p["n_rows"] + 3 * widest) * 2 * w * 8 <= budget:
        w *= 2
    return w


def simulate(circuit: Circuit, device: str | torch.device = "cpu", chunk_words: int | None = None) -> np.ndarray:
    """Packed output bits over all 2^n codes, (n_outputs, max(1, 2^n/64)) uint64, bit for bit circuit.simulate."""
    device = torch.device(device)
    n = circuit.n_inputs
    total_words = max(1, (1 << n) // 64)
    p = plan(circuit)
    chunk = chunk_words or _chunk_words(p, total_words, device)
    on = {k: torch.as_tensor(p[k], device=device) for k in ("ab", "out", "outputs")}
    coef = torch.as_tensor(p["coef"], device=device).unsqueeze(-1)  # (gates, 4, 1) broadcasts over words
    out = np.empty((len(circuit.outputs), total_words), dtype=np.int64)
    with torch.no_grad():
        vals = torch.zeros((p["n_rows"], chunk), dtype=torch.int64, device=device)
        vals[1] = -1
        for i in range(min(n, 6)):
            vals[2 + i] = int(LOW[i])
        word = torch.arange(chunk, dtype=torch.int64, device=device)
        bounds = [int(v) for v in p["bounds"]]
        for w0 in range(0, total_words, chunk):
            nw = min(chunk, total_words - w0)
            for i in range(6, n):  # input i >= 6 is constant over a word: bit i - 6 of the word index
                vals[2 + i] = -(((word + w0) >> (i - 6)) & 1)
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                ab = vals.index_select(0, on["ab"][2 * lo:2 * hi])
                a, b, c = ab[:hi - lo], ab[hi - lo:], coef[lo:hi]
                # c0 ^ a & (c1 ^ b & c3) ^ b & c2, in place: 8 launches per level with the gather and scatter
                r = torch.bitwise_and(b, c[:, 3]).bitwise_xor_(c[:, 1]).bitwise_and_(a)
                r.bitwise_xor_(b.bitwise_and_(c[:, 2])).bitwise_xor_(c[:, 0])
                vals.index_copy_(0, on["out"][lo:hi], r)
            out[:, w0:w0 + nw] = vals.index_select(0, on["outputs"])[:, :nw].cpu().numpy()
    return out.view(np.uint64)

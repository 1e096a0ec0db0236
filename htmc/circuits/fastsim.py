"""Compiled whole-netlist simulation (issue 15, "verifier"): the numba kernel behind `circuit.simulate`.

The numpy path (circuit.py) makes one numpy call per gate group over all words of a chunk, so every gate's words
go through memory. Here one compiled loop runs the WHOLE netlist over a block of words (256 words = 16,384 codes)
whose signal buffer stays in cache, then moves to the next block. What keeps it fast:

- Only live gates run, and signals get buffer *slots* by liveness (a slot is reused once its signal's last
  reader has run), so a deep circuit needs a few dozen slots, not one per gate. An output never takes the slot
  of its own input: LLVM's vectorised loop falls back to scalar code when the rows it reads and writes overlap.
- Each B2 op is recoded once as one of five forms with inversion masks (`OP_FORMS`): ((a^ia) & (b^ib)) ^ io,
  a ^ b ^ io, a ^ io, b ^ io, or io. The kernel branches on the form once per gate per block and runs the
  fewest word operations for it; the inner loop over the block vectorises (AVX2, 4 words per instruction).
  Measured here (benchmarks/RESULTS.md "Verifier kernel"): this beat the branch-free algebraic normal form
  c0 ^ c1&a ^ c2&b ^ c3&a&b by about 1.3x at 256-word blocks, and 256-word blocks beat 64 by about 1.4x.

Words are int64 inside the kernel (numba types uint64 & int64 as float64); the caller views them as uint64, so
results are the numpy path's bits exactly, including the bits above 2^n in the single word when n < 6.
"""
from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from htmc.circuits.circuit import _LOW_PATTERNS

# Input i < 6 varies inside a word: bit c of the word is bit i of c (circuit.input_words' patterns).
LOW_PATTERNS = np.array(_LOW_PATTERNS, dtype=np.uint64).view(np.int64)
# Block size: 256 words was the best of 16..512 on deep and wide random circuits (row prefetching works even when
# the buffer spills L2 into L3); the buffer is kept under BUFFER_BUDGET_BYTES (a share of the 32 MiB L3 here).
BLOCK_WORDS = 256
MIN_BLOCK_WORDS = 16
BUFFER_BUDGET_BYTES = 8 << 20


@njit(cache=True)
def _compile(n_inputs, gates, outputs):
    """The live gates as a program of (op, slot a, slot b, slot out) int32 rows, the output slots, slot count.

    Slots 0..n+1 hold the constants and inputs for the whole run; a gate's slot is freed after its last reader.
    """
    first = n_inputs + 2
    n_gates = gates.shape[0]
    live = np.zeros(n_gates, np.bool_)
    for o in outputs:
        if o >= first:
            live[o - first] = True
    for g in range(n_gates - 1, -1, -1):
        if live[g]:
            for s in (gates[g, 1], gates[g, 2]):
                if s >= first:
                    live[s - first] = True
    forever = n_gates + 1
    last = np.full(first + n_gates, -1, np.int64)  # last live gate reading each signal
    for g in range(n_gates):
        if live[g]:
            last[gates[g, 1]] = g
            last[gates[g, 2]] = g
    last[:first] = forever
    for o in outputs:
        last[o] = forever
    slot = np.empty(first + n_gates, np.int64)
    for s in range(first):
        slot[s] = s
    free = np.empty(n_gates + 1, np.int64)
    n_free, n_slots = 0, first
    prog = np.empty((int(live.sum()), 4), np.int32)
    k = 0
    for g in range(n_gates):
        if not live[g]:
            continue
        a, b = gates[g, 1], gates[g, 2]
        prog[k, 0], prog[k, 1], prog[k, 2] = gates[g, 0], slot[a], slot[b]
        # The output gets a slot before the inputs' slots are freed, so it never overwrites an input row: the
        # vectorised inner loop of _run falls back to scalar code when the rows it writes and reads overlap.
        if n_free > 0:
            n_free -= 1
            slot[first + g] = free[n_free]
        else:
            slot[first + g] = n_slots
            n_slots += 1
        if last[a] == g:
            free[n_free] = slot[a]
            n_free += 1
        if last[b] == g and b != a:
            free[n_free] = slot[b]
            n_free += 1
        prog[k, 3] = slot[first + g]
        k += 1
    out_slots = np.empty(outputs.size, np.int64)
    for j in range(outputs.size):
        out_slots[j] = slot[outputs[j]]
    return prog, out_slots, n_slots


def _op_forms() -> np.ndarray:
    """Row t: (form, ia, ib, io) for B2 truth table t (out = bit (a + 2b) of t), the masks 0 or -1 (all ones).

    Every two-input function is one of: ((a ^ ia) & (b ^ ib)) ^ io (the 8 with one odd truth-table entry),
    a ^ b ^ io, a ^ io, b ^ io, or the constant io.
    """
    forms = np.zeros((16, 4), np.int64)
    for t in range(16):
        ones = [p for p in range(4) if (t >> p) & 1]
        if t in (0b0000, 0b1111):
            forms[t] = (FORM_CONST, 0, 0, -(t == 0b1111))
        elif t in (0b1010, 0b0101):
            forms[t] = (FORM_A, 0, 0, -(t == 0b0101))
        elif t in (0b1100, 0b0011):
            forms[t] = (FORM_B, 0, 0, -(t == 0b0011))
        elif t in (0b0110, 0b1001):
            forms[t] = (FORM_XOR, 0, 0, -(t == 0b1001))
        else:  # one 1 at p (io = 0) or one 0 at p (io = -1): the AND term is true exactly at a = p&1, b = p>>1
            p = ones[0] if len(ones) == 1 else next(q for q in range(4) if not (t >> q) & 1)
            forms[t] = (FORM_AND, -(1 ^ (p & 1)), -(1 ^ (p >> 1)), 0 if len(ones) == 1 else -1)
    return forms


FORM_AND, FORM_XOR, FORM_A, FORM_B, FORM_CONST = range(5)
OP_FORMS = _op_forms()


@njit(cache=True)
def _run(prog, forms, out_slots, n_slots, n_inputs, total_words, block, low, out):
    """Run the program over words [0, total_words) in blocks of `block` words; fill out (n_outputs, total_words).

    The branch on the gate's form is taken once per gate per block (block words = 4 * block / 16 AVX2 steps),
    so its misprediction cost is amortised; each form's loop is the fewest word operations for it.
    """
    buf = np.zeros((n_slots, block), np.int64)
    buf[1, :] = -1
    for i in range(min(n_inputs, 6)):
        buf[2 + i, :] = low[i]
    for w0 in range(0, total_words, block):
        for i in range(6, n_inputs):  # input i >= 6 is constant over a word: bit i - 6 of the word index
            for k in range(block):
                buf[2 + i, k] = -(((w0 + k) >> (i - 6)) & 1)
        for g in range(prog.shape[0]):
            t, sa, sb, so = prog[g, 0], prog[g, 1], prog[g, 2], prog[g, 3]
            form, ia, ib, io = forms[t, 0], forms[t, 1], forms[t, 2], forms[t, 3]
            if form == 0:  # the literals are FORM_AND, FORM_XOR, FORM_A, FORM_B, FORM_CONST
                for k in range(block):
                    buf[so, k] = ((buf[sa, k] ^ ia) & (buf[sb, k] ^ ib)) ^ io
            elif form == 1:
                for k in range(block):
                    buf[so, k] = buf[sa, k] ^ buf[sb, k] ^ io
            elif form == 2:
                for k in range(block):
                    buf[so, k] = buf[sa, k] ^ io
            elif form == 3:
                for k in range(block):
                    buf[so, k] = buf[sb, k] ^ io
            else:
                for k in range(block):
                    buf[so, k] = io
        for j in range(out_slots.size):
            out[j, w0:w0 + block] = buf[out_slots[j]]


def block_words(n_slots: int, total_words: int) -> int:
    """The block for a buffer of n_slots rows: BLOCK_WORDS, halved while over budget, never over total_words."""
    w = BLOCK_WORDS
    while w > MIN_BLOCK_WORDS and n_slots * w * 8 > BUFFER_BUDGET_BYTES:
        w //= 2
    return min(w, total_words)


def compile_circuit(circuit) -> tuple[np.ndarray, np.ndarray, int]:
    """(program, output slots, slot count) for `circuit`, as `_run` takes them."""
    gates = np.fromiter(itertools.chain.from_iterable(circuit.gates), dtype=np.int64,
                        count=3 * len(circuit.gates)).reshape(-1, 3)  # 2.5x faster than np.array on tuples
    return _compile(circuit.n_inputs, gates, np.array(circuit.outputs, dtype=np.int64))


def simulate(circuit, block: int | None = None) -> np.ndarray:
    """Packed output bits over all 2^n codes, (n_outputs, max(1, 2^n/64)) uint64, bit for bit circuit.simulate."""
    n = circuit.n_inputs
    total_words = max(1, (1 << n) // 64)
    prog, out_slots, n_slots = compile_circuit(circuit)
    block = block_words(n_slots, total_words) if block is None else block
    if block < 1 or block & (block - 1) or (block > total_words):
        raise ValueError(f"block={block}: it must be a power of two between 1 and the word count {total_words}")
    out = np.empty((len(circuit.outputs), total_words), dtype=np.int64)
    _run(prog, OP_FORMS, out_slots, n_slots, n, total_words, block, LOW_PATTERNS, out)
    return out.view(np.uint64)


@njit(cache=True)
def _codes(words, n_codes, u):
    for w in range(words.shape[1]):  # word-major, so the 64 entries of u being assembled stay in L1
        base = w * 64
        for j in range(words.shape[0]):
            x = words[j, w]
            for c in range(min(64, n_codes - base)):
                u[base + c] |= ((x >> c) & 1) << j


def codes(words: np.ndarray, n_inputs: int) -> np.ndarray:
    """circuit.output_codes from packed words: u at every code, bit j from row j."""
    u = np.zeros(1 << n_inputs, dtype=np.int64)
    _codes(np.ascontiguousarray(words).view(np.int64), 1 << n_inputs, u)
    return u



@njit(cache=True)
def _sub_up(a, b):
    # htmc.targets.table.sub_up for scalars, the same operations in the same order (TwoSum, no fastmath, so
    # LLVM neither reassociates nor fuses them): the smallest float >= a - b.
    b = -b
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return np.nextafter(s, np.inf) if e > 0 else s


@njit(cache=True)
def _sup_error(words, n_codes, offset, scale, lo, hi):
    best, worst = 0.0, -1
    for w in range(words.shape[1]):
        base = w * 64
        for c in range(min(64, n_codes - base)):
            u = 0
            for j in range(words.shape[0]):
                u |= ((words[j, w] >> c) & 1) << j
            i = base + c
            y = offset + np.float64(u) * scale  # Decoder.decode
            d1, d2 = _sub_up(hi[i], y), _sub_up(y, lo[i])
            err = d1 if d1 >= d2 or d1 != d1 else d2  # np.maximum: a NaN wins
            if worst < 0 or err > best or err != err:
                best, worst = err, i
                if err != err:  # np.argmax: the first NaN
                    return best, worst
    return best, worst


def sup_error(words: np.ndarray, n_inputs: int, offset: float, shift: int, lo: np.ndarray,
              hi: np.ndarray) -> tuple[float, int]:
    """(max, argmax) of table.errors(decoder.decode(codes)), fused: no 2^n temporaries, bit for bit the same."""
    n_codes = 1 << n_inputs
    if lo.shape != (n_codes,) or hi.shape != (n_codes,):
        raise ValueError(f"cell ranges of shape {lo.shape}/{hi.shape}; {n_codes} cells expected")
    lo, hi = np.ascontiguousarray(lo, np.float64), np.ascontiguousarray(hi, np.float64)
    best, worst = _sup_error(np.ascontiguousarray(words).view(np.int64), n_codes, float(offset), 2.0 ** (-shift),
                             lo, hi)
    return float(best), int(worst)


def warm() -> float:
    """Compile (first time in a checkout, ~10-20 s) or load (~1-2 s) every kernel; returns the seconds taken.

    numba caches the machine code in __pycache__ (cache=True), so one call after install spares every later
    process the compile; only the load remains.
    """
    import time
    from htmc.circuits.circuit import Circuit
    start = time.perf_counter()
    c = Circuit(7, [(op, 2 + op % 7, 3 + op % 5) for op in range(16)], [9 + op for op in range(16)])
    codes(simulate(c), 7)
    return time.perf_counter() - start

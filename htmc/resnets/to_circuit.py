"""Compiling a trained ResNet (DESIGN §2.4) to a verified binary circuit (DESIGN §2.1, §2.2).

The net's parameters are quantized to fixed point, its forward pass becomes integer arithmetic, and that
arithmetic is emitted as a B2 netlist with htmc.circuits.builder: constant multiplications by shift-and-add with canonical
signed digits, one bit heap per neuron, ReLU from the sign bit, residual adds fused into the block's heap.
ABC then optimizes the netlist, and htmc.circuits.verify measures its error against the TARGET's interval table over all
2^(d k) input codes, like every other circuit. The gate count is an upper bound on C(f, eps) (the sandwich link).

Fixed-point plan (all integers; F_w = w_bits, F_a = a_bits; q(v, F) = round(v 2^F)):
- Input. The cell code of coordinate j, z_j in [0, 2^k), enters as the k input bits of that coordinate's block
  (htmc.targets.table's cell-index convention). On the `box` domain the net is evaluated at the cell's midpoint
  x_j = (2 z_j + 1) 2^-(k+1): the constant 1 is one more input bit, always TRUE, so it costs no gates and the
  midpoint is exact. On `grid`, x_j = z_j 2^-k. fx = k+1 (box) or k (grid) fraction bits.
- Weights and biases: q(., F_w). Zero weights emit nothing, so a sparser net compiles to fewer gates.
- h_0[i]   = R_{F_w+fx-F_a}( sum_j W_in[i,j] z'_j + b_in[i] 2^fx )                       (F_a fraction bits)
- p_l[i]   = R_{F_w}( sum_j B_l[i,j] h_l[j] + c_l[i] 2^F_a ),   r_l = max(p_l, 0)       (F_a fraction bits)
- h_{l+1}  = R_{F_w}( h_l 2^F_w + sum_i A_l[:,i] r_l[i] )        (residual add fused into the heap)
- y        = R_{F_w}( sum_j W_out[j] h_L[j] + b_out 2^F_a )                              (F_a fraction bits)
  with R_D(s) = floor((s + 2^(D-1)) / 2^D) (round half up; the half is a constant in the heap, nearly free)
  for D > 0, and s 2^-D for D <= 0.
- Output: u = y - min y (unsigned), decoder (offset = min y 2^-F_a, shift = F_a): the minimum moves into the free
  decoder, so no output bit is spent on a sign.
Every vector's bit width is read off the exact range of its integer over all input codes, which `emulate`
computes in numpy (the input space is enumerated anyway for verification). Hence the netlist computes exactly
the emulated integers: `emulate` rejects bit choices before any gate is built, and the verifier has the last word.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from htmc.synthesis.abc_tool import optimize_with_abc
from htmc.circuits.builder import BitHeap, CircuitBuilder, digits_csd, FALSE, TRUE, value_width
from htmc.circuits.circuit import Circuit, Decoder
from htmc.resnets.numpy_net import forward_numpy, mostly_zero, PARAM_NAMES, row_chunks
from htmc.targets.table import cell_index_grid, IntervalTable

COMPILE_VERSION = "4"      # 2: bisection over a_bits; resolutions chosen per eps by compile_ladder; 3: gates always
                          # from the net's netlist, the table route only as gates_table (issue 21 B); 4: bits to 24
MAX_INPUTS = 16           # exhaustive emulation and verification: 2^16 cells at most by default
MAX_ENUM_INPUTS = 24      # hard limit: every function here enumerates all 2^(d k) input codes
DEFAULT_BITS = range(2, 25)   # a net of n units sums n roundings: holder_random d=1 s=0.75 at eps 0.003125
#                               (3,109 units, output scale 113) emulates to 4.4 eps at (16, 16) and passes at
#                               (22, 19), so 16 bits had forced 180x-norm fallback nets (issue 21 sandwich run)
METHODS = ("fused", "const_mul")
_INT_LIMIT = 1 << 62      # emulation runs in int64; anything larger is rejected with a clear message


# --------------------------------------------------------------------------------------------------------------
# Quantization and bit-exact emulation
# --------------------------------------------------------------------------------------------------------------

def _check_net(net: dict[str, np.ndarray], table: IntervalTable) -> None:
    if table.n_inputs > MAX_ENUM_INPUTS:
        raise ValueError(f"table has {table.n_inputs} input bits (d={table.d}, k={table.k}); compiling enumerates "
                         f"every input code: keep d*k <= {MAX_INPUTS} (at most {MAX_ENUM_INPUTS})")
    missing = [k for k in PARAM_NAMES if k not in net]
    if missing:
        raise ValueError(f"net is missing parameters {missing}; expected htmc.resnets.model.to_numpy's keys {PARAM_NAMES}")
    d = np.asarray(net["W_in"]).shape[1]
    if d != table.d:
        raise ValueError(f"net has input dimension {d} but the table has d={table.d}")
    for k in PARAM_NAMES:
        if not np.all(np.isfinite(np.asarray(net[k], dtype=np.float64))):
            raise ValueError(f"net parameter {k} has non-finite entries")


def _check_bits(w_bits: int, a_bits: int) -> None:
    for name, v in (("w_bits", w_bits), ("a_bits", a_bits)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")


def quantize(net: dict[str, np.ndarray], w_bits: int) -> dict[str, np.ndarray]:
    """Every weight and bias as the integer round(v 2^w_bits) (int64, shapes of htmc.resnets.model.param_shapes)."""
    out = {}
    for k in PARAM_NAMES:
        v = np.rint(np.asarray(net[k], dtype=np.float64) * 2.0 ** w_bits)
        if np.any(np.abs(v) >= _INT_LIMIT >> 20):
            raise ValueError(f"parameter {k} is too large for {w_bits} fraction bits (max |v| = "
                             f"{np.abs(net[k]).max():.3g})")
        out[k] = v.astype(np.int64)
    return out


def _frac_in(table: IntervalTable) -> int:
    return table.k + 1 if table.domain == "box" else table.k


def input_codes(table: IntervalTable) -> np.ndarray:
    """Per cell, the fixed-point input of each coordinate as an integer with _frac_in(table) fraction bits:
    2 z + 1 (the cell midpoint) on box, z on grid; shape (2^(d k), d), cell-index order."""
    z = cell_index_grid(table.d, table.k)
    return 2 * z + 1 if table.domain == "box" else z


def cell_points(table: IntervalTable) -> np.ndarray:
    """The points at which the compiled net is evaluated: the cells' midpoints (box) or grid points (grid)."""
    return input_codes(table) * 2.0 ** -_frac_in(table)


def _round(s: np.ndarray, drop: int) -> np.ndarray:
    """R_D of the module docstring (floor of s / 2^D + 1/2; exact left shift for D <= 0)."""
    if drop <= 0:
        return s << -drop
    return (s + (1 << (drop - 1))) >> drop


def _check_range(name: str, v: np.ndarray) -> None:
    if v.size and max(abs(int(v.min())), abs(int(v.max()))) >= _INT_LIMIT >> 2:
        raise ValueError(f"{name} overflows the 64-bit emulation; use fewer bits")


@dataclass
class Emulation:
    """The quantized net evaluated on every input code, integer for integer what the circuit computes."""
    w_bits: int
    a_bits: int
    q: dict[str, np.ndarray]          # quantized parameters (quantize)
    h: list[tuple[np.ndarray, np.ndarray]]    # per coordinate of h_l, its (min, max) over all inputs, l = 0..L
    pre: list[tuple[np.ndarray, np.ndarray]]  # per unit of p_l (before relu), its (min, max) over all inputs
    y: np.ndarray                     # (N,) int64 output, a_bits fraction bits
    u: np.ndarray                     # (N,) unsigned output code
    decoder: Decoder
    errors: np.ndarray                # per cell, table.errors(decoded value)

    @property
    def max_error(self) -> float:
        return float(self.errors.max())

    @property
    def values(self) -> np.ndarray:
        return self.decoder.decode(self.u)


def _imatmul(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """X @ M.T in int64, through a sparse M where most of M is zero: numpy's integer matmul has no BLAS, and the
    d = 2 pyramid nets (htmc.resnets.fit_pyramid) have ~2 non-zeros per row of B, so the dense product took ~1.3 s
    per emulation at 2^14 cells (issue 21 C). Integer sums wrap alike either way: the results are identical."""
    if not mostly_zero(M):
        return X @ M.T
    S = sp.csr_matrix(M)
    out = np.empty((X.shape[0], M.shape[0]), dtype=np.int64)
    _csr_kernel()(np.ascontiguousarray(X, dtype=np.int64), S.indptr.astype(np.int64),
                    S.indices.astype(np.int64), S.data.astype(np.int64), out)
    return out


@functools.cache
def _csr_kernel():
    """_csr_times_rows compiled by numba, on first use: importing numba costs every `htmc` command ~0.2 s and
    60 MB (the CLI imports this module to build its parser), and most commands never emulate a net."""
    from numba import njit
    return njit(cache=True)(_csr_times_rows)


def _csr_times_rows(X, indptr, indices, data, out):  # pragma: no cover - numba
    """out[i, j] = Σ_p data[p] X[i, indices[p]] over row j of a CSR matrix: row by row of X, with no transposed
    copies (scipy's sparse @ dense needs X.T contiguous and returns the transpose: ~2 s at 2^14 cells x 1,000)."""
    for i in range(X.shape[0]):
        for j in range(len(indptr) - 1):
            acc = 0
            for p in range(indptr[j], indptr[j + 1]):
                acc += data[p] * X[i, indices[p]]
            out[i, j] = acc


def emulate(net: dict[str, np.ndarray], table: IntervalTable, w_bits: int, a_bits: int) -> Emulation:
    """Bit-exact numpy emulation of compile_net(net, table, w_bits, a_bits) over all 2^(d k) input codes. The
    codes go through in chunks and only each column's range is kept, which is all the netlist needs: a d = 2 net of
    11k units at 2^16 cells held ~6 GB per layer whole and was killed at 24 GB (issue 21 C)."""
    _check_net(net, table)
    _check_bits(w_bits, a_bits)
    q = quantize(net, w_bits)
    fx = _frac_in(table)
    x = input_codes(table)
    L = q["A"].shape[0]
    hr = [_Range() for _ in range(L + 1)]
    pr = [_Range() for _ in range(L)]
    ys = []
    for rows in row_chunks(len(x), max(q["A"].shape[1:])):
        h = _round(x[rows] @ q["W_in"].T + (q["b_in"] << fx), w_bits + fx - a_bits)
        _check_range("h_0", h)
        hr[0].add(h)
        for l in range(L):
            p = _round(_imatmul(h, q["B"][l]) + (q["c"][l] << a_bits), w_bits)
            h = h + _round(_imatmul(np.maximum(p, 0), q["A"][l]), w_bits)
            _check_range(f"h_{l + 1}", h)
            pr[l].add(p)
            hr[l + 1].add(h)
        ys.append(_round(h @ q["W_out"][0] + (int(q["b_out"][0]) << a_bits), w_bits))
    y = np.concatenate(ys)
    _check_range("the output", y)
    y_min = int(y.min())
    decoder = Decoder(y_min * 2.0 ** -a_bits, a_bits)
    u = y - y_min
    return Emulation(w_bits, a_bits, q, [r.pair() for r in hr], [r.pair() for r in pr], y, u, decoder,
                     table.errors(decoder.decode(u)))


class _Range:
    """Per column, the min and max over the chunks seen."""
    lo = hi = None

    def add(self, v: np.ndarray) -> None:
        lo, hi = v.min(0), v.max(0)
        self.lo = lo if self.lo is None else np.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else np.maximum(self.hi, hi)

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lo, self.hi


def float_error(net: dict[str, np.ndarray], table: IntervalTable) -> float:
    """Sup error against the table of the float net evaluated where the circuit evaluates it (cell midpoints on
    box): the limit of the compiled error as the bits grow. No bit choice can beat it."""
    _check_net(net, table)
    return float(table.errors(forward_numpy(net, cell_points(table))).max())


# --------------------------------------------------------------------------------------------------------------
# The netlist
# --------------------------------------------------------------------------------------------------------------

@dataclass
class _Vec:
    """A bit vector with its signedness (htmc.circuits.builder conventions: little endian literals)."""
    bits: list[int]
    signed: bool


def _vec_for(lo: int, hi: int) -> tuple[int, int, bool, int]:
    lo, hi = int(lo), int(hi)
    signed = lo < 0
    return lo, hi, signed, value_width(lo, hi, signed)


def _add_term(b: CircuitBuilder, heap: BitHeap, v: _Vec, c: int, shift: int, method: str) -> None:
    """heap += c * v * 2^shift; nothing at all for c = 0 (sparsity saves gates)."""
    c = int(c)
    if c == 0 or not v.bits:
        return
    if method == "fused":  # every CSD digit of c is one shifted copy of v, straight into the neuron's heap
        for k, sign in digits_csd(c):
            heap.add_vector(v.bits, shift=shift + k, signed=v.signed, negative=sign < 0)
    else:  # a separate constant multiplier (csd or binary, whichever is smaller), then its word joins the heap
        heap.add_vector(b.const_mul(v.bits, c, signed=v.signed, method="auto"), shift=shift,
                        signed=v.signed or c < 0)


def _close(heap: BitHeap, drop: int, lo: int, hi: int) -> _Vec:
    """R_drop of the heap's sum as a vector wide enough for [lo, hi] (its exact range over all inputs)."""
    lo, hi, signed, width = _vec_for(lo, hi)
    if lo == hi:  # a constant: free
        return _Vec(CircuitBuilder.const(lo, width), signed)
    if drop > 0:
        heap.add_const(1 << (drop - 1))
        return _Vec(heap.result(width, drop), signed)
    return _Vec([FALSE] * (-drop) + heap.result(width + drop), signed)


def _relu(b: CircuitBuilder, p: _Vec, hi: int) -> _Vec:
    """max(p, 0) from the sign bit, cut to the bits its range needs (the bits above are provably 0)."""
    hi = int(hi)
    if hi <= 0:
        return _Vec([], False)
    keep = hi.bit_length()
    if not p.signed:
        return _Vec(p.bits[:keep], False)
    return _Vec(b.relu(p.bits)[:keep], False)


def _input_vectors(b: CircuitBuilder, table: IntervalTable) -> list[_Vec]:
    """The fixed-point input of each coordinate (input_codes): its k cell-index bits, below a constant TRUE (the
    midpoint's 1) on box."""
    d, k, ins = table.d, table.k, b.inputs
    xs = []
    for j in range(d):  # coordinate j is the block at bits k(d-1-j) .. k(d-j)-1 of the cell index
        z = ins[k * (d - 1 - j): k * (d - j)]
        xs.append(_Vec([TRUE] + z if table.domain == "box" else z, False))
    return xs


def _input_layer(b: CircuitBuilder, em: Emulation, table: IntervalTable, method: str) -> list[_Vec]:
    """h_0 of the module docstring, one heap per unit."""
    q, fx = em.q, _frac_in(table)
    xs = _input_vectors(b, table)
    h = []
    for i in range(q["W_in"].shape[0]):
        heap = b.heap()
        for j in range(table.d):
            _add_term(b, heap, xs[j], q["W_in"][i, j], 0, method)
        heap.add_const(int(q["b_in"][i]), fx)
        h.append(_close(heap, em.w_bits + fx - em.a_bits, em.h[0][0][i], em.h[0][1][i]))
    return h


def _block(b: CircuitBuilder, em: Emulation, l: int, h: list[_Vec], method: str) -> list[_Vec]:
    """h_{l+1} from h_l: the relu units r_l, then the residual add fused into one heap per coordinate."""
    q, w_bits = em.q, em.w_bits
    r = []
    for i in range(q["B"].shape[1]):
        if not np.any(q["A"][l][:, i]):  # nobody reads this unit
            r.append(_Vec([], False))
            continue
        heap = b.heap()
        for j, hj in enumerate(h):
            _add_term(b, heap, hj, q["B"][l][i, j], 0, method)
        heap.add_const(int(q["c"][l][i]), em.a_bits)
        lo, hi = em.pre[l][0][i], em.pre[l][1][i]
        r.append(_relu(b, _close(heap, w_bits, lo, hi), hi))
    new_h = []
    for j, hj in enumerate(h):
        if not np.any(q["A"][l][j]):  # the residual passes through untouched
            new_h.append(hj)
            continue
        heap = b.heap()
        heap.add_vector(hj.bits, shift=w_bits, signed=hj.signed)
        for i, ri in enumerate(r):
            _add_term(b, heap, ri, q["A"][l][j, i], 0, method)
        new_h.append(_close(heap, w_bits, em.h[l + 1][0][j], em.h[l + 1][1][j]))
    return new_h


def _output(b: CircuitBuilder, em: Emulation, h: list[_Vec], method: str) -> _Vec:
    """u = y - min y of the module docstring (unsigned)."""
    q, w_bits = em.q, em.w_bits
    heap = b.heap()
    for j, hj in enumerate(h):
        _add_term(b, heap, hj, q["W_out"][0, j], 0, method)
    y_min = int(em.y.min())
    heap.add_const(int(q["b_out"][0]), em.a_bits)
    heap.add_const(-y_min, w_bits)  # u = y - min y, exact: the shift is a multiple of 2^w_bits
    return _close(heap, w_bits, 0, em.u.max())


def compile_net(net: dict[str, np.ndarray], table: IntervalTable, w_bits: int, a_bits: int,
                optimize: bool = True, method: str = "fused", emulation: Emulation | None = None) -> Circuit:
    """The B2 circuit of the quantized net (module docstring), decoder set; its output codes equal
    emulate(...).u on every input. With optimize, ABC post-optimizes it (optimize_with_abc keeps the smaller and
    checks the function). Not verified here: compile_search and callers run htmc.circuits.verify on it."""
    if method not in METHODS:
        raise ValueError(f"unknown compile method '{method}': valid choices: {', '.join(METHODS)}")
    if emulation is not None and (emulation.w_bits, emulation.a_bits) != (w_bits, a_bits):
        raise ValueError(f"emulation is for w_bits={emulation.w_bits}, a_bits={emulation.a_bits}, "
                         f"not {w_bits}, {a_bits}")
    em = emulation if emulation is not None else emulate(net, table, w_bits, a_bits)
    b = CircuitBuilder(table.n_inputs)
    h = _input_layer(b, em, table, method)
    for l in range(em.q["A"].shape[0]):
        h = _block(b, em, l, h, method)
    u = _output(b, em, h, method)
    circuit = b.build(u.bits if u.bits else [FALSE], em.decoder)
    if optimize and circuit.size:
        circuit = optimize_with_abc(circuit)
    return circuit

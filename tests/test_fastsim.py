"""The verifier kernels (issue 15): the numba block kernel (fastsim) and the torch path (torchsim, on CPU tensors
here) give the numpy simulator's bits exactly, on every B2 op, odd input counts, constant and input outputs,
random and real synthesized circuits; the backend choice and its errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

from htmc.circuits import simbackend
from htmc.circuits.builder import CircuitBuilder
from htmc.circuits.circuit import Circuit, output_codes, random_circuit, simulate, simulate_numpy, unpack_bits
from htmc.circuits.verify import bits_table, verify

torch = pytest.importorskip("torch")
from htmc.circuits import torchsim  # noqa: E402

try:  # the GPU device image has torch but maybe not numba: the torch tests still run there
    from htmc.circuits import fastsim
except ImportError:
    fastsim = None
needs_numba = pytest.mark.skipif(fastsim is None, reason="numba is not installed")
# benchmarks/gpu_session.sh sets cuda, so the same differential tests check the torch path on the GPU
DEVICE = os.environ.get("HTMC_TEST_TORCH_DEVICE", "cpu")


def _all_equal(c: Circuit, **torch_kw) -> np.ndarray:
    ref = simulate_numpy(c)
    if fastsim is not None:
        np.testing.assert_array_equal(fastsim.simulate(c), ref)
    np.testing.assert_array_equal(torchsim.simulate(c, DEVICE, **torch_kw), ref)
    return ref


def test_every_op_on_every_input_pair_including_constants_and_equal_fanins():
    # signals 0..4: constants 0 and 1, inputs x0..x2; each of the 16 ops on each ordered pair (25) is an output.
    gates = [(op, a, b) for op in range(16) for a in range(5) for b in range(5)]
    c = Circuit(3, gates, [5 + g for g in range(len(gates))])
    ref = _all_equal(c)
    bits = unpack_bits(ref, 3)
    x = [np.zeros(8, bool), np.ones(8, bool)] + [((np.arange(8) >> i) & 1).astype(bool) for i in range(3)]
    for g, (op, a, b) in enumerate(gates):  # the truth-table convention itself: out = bit (va + 2 vb) of op
        want = (op >> (x[a].astype(int) + 2 * x[b].astype(int))) & 1
        np.testing.assert_array_equal(bits[g], want.astype(bool), err_msg=f"op {op:04b} on ({a}, {b})")


@needs_numba
def test_op_forms_reproduce_every_truth_table():
    for t in range(16):
        form, ia, ib, io = (int(v) for v in fastsim.OP_FORMS[t])
        for a in (0, 1):
            for b in (0, 1):
                x, y = -a, -b
                got = [((x ^ ia) & (y ^ ib)) ^ io, x ^ y ^ io, x ^ io, y ^ io, io][form] & 1
                assert got == (t >> (a + 2 * b)) & 1, (t, a, b)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 6, 7, 9, 13])
def test_random_circuits_with_constant_and_input_outputs(n):
    rng = np.random.default_rng(n)
    for window in (None, 12):
        c = random_circuit(rng, n, 300, 6, window=window)
        extra = [0, 1] + [2 + i for i in range(n)] + [c.n_signals - 1] * 2  # constants, inputs, a repeated gate
        _all_equal(Circuit(n, c.gates, c.outputs + extra))


def test_no_gates_and_no_outputs():
    _all_equal(Circuit(4, [], [3, 0, 1, 2]))
    _all_equal(Circuit(8, [(8, 2, 3)], []))
    assert torchsim.simulate(Circuit(8, [(8, 2, 3)], []), DEVICE).shape == (0, 4)


@needs_numba
def test_block_and_chunk_sizes_do_not_change_bits():
    c = random_circuit(np.random.default_rng(5), 14, 600, 8, window=40)  # 256 words
    ref = simulate_numpy(c)
    for block in (1, 2, 16, 256):
        np.testing.assert_array_equal(fastsim.simulate(c, block=block), ref)
    for chunk in (37, 64, 1000):
        np.testing.assert_array_equal(torchsim.simulate(c, DEVICE, chunk_words=chunk), ref)
    with pytest.raises(ValueError, match="block=3: it must be a power of two between 1 and the word count 256"):
        fastsim.simulate(c, block=3)


@needs_numba
def test_slots_are_reused_by_liveness():
    # a 3000-gate chain-like circuit whose fanins reach back at most 16 signals needs few buffer rows
    c = random_circuit(np.random.default_rng(2), 10, 3000, 4, window=16)
    prog, _, n_slots = fastsim.compile_circuit(c)
    assert prog.shape[0] == c.size and c.size > 2000
    assert n_slots <= 12 + 40, n_slots
    assert torchsim.plan(c)["n_rows"] < c.size // 4


def test_real_circuit_multiplier():
    b = CircuitBuilder(16)
    mul = b.build(b.mul(b.inputs[:8], b.inputs[8:]))  # 8x8 multiplier: 65,536 codes, 4 kernel blocks
    x, y = np.arange(1 << 16) & 255, np.arange(1 << 16) >> 8
    _all_equal(mul, chunk_words=128)
    np.testing.assert_array_equal(output_codes(mul, backend="torch"), x * y)
    if fastsim is not None:
        assert simbackend.resolve(len(mul.gates), 16, device="cpu") == ("numba", "cpu")
        np.testing.assert_array_equal(output_codes(mul), x * y)


@needs_numba
def test_real_circuit_from_abc_synthesis_verifies_on_every_backend():
    from htmc.synthesis.abc_tool import synthesize
    cols = [(((np.arange(64) & 7) * (np.arange(64) >> 3)) >> j & 1).astype(bool) for j in range(6)]
    syn = synthesize(cols, deepsyn_s=0).circuit  # the 3x3 product, as ABC maps it to B2
    assert syn.size > 10
    _all_equal(syn)
    table = bits_table(cols, 6)
    for backend in ("numpy", "numba", "torch"):
        assert verify(syn, table, backend=backend).max_error == 0.0
    worse = Circuit(6, syn.gates, syn.outputs[:-1] + [0])  # top product bit forced to 0: 7*7 = 49 reads 17
    assert verify(worse, table, backend="numba").max_error == 32.0


@needs_numba
def test_output_codes_unpacking_matches_numpy():
    rng = np.random.default_rng(3)
    for n in (2, 6, 11):
        words = rng.integers(0, 2 ** 63, size=(9, max(1, 2 ** (n - 6)))).astype(np.uint64) * np.uint64(2) + 1
        bits = unpack_bits(words, n)
        want = sum(bits[j].astype(np.int64) << j for j in range(9))
        np.testing.assert_array_equal(fastsim.codes(words, n), want)


@needs_numba
def test_backend_argument_environment_and_errors(monkeypatch):
    c = random_circuit(np.random.default_rng(4), 8, 200, 5)
    ref = simulate_numpy(c)
    for backend in simbackend.BACKENDS:
        np.testing.assert_array_equal(simulate(c, backend=backend), ref)
    with pytest.raises(ValueError, match=r"backend 'numbaa'.*did you mean 'numba'\? valid choices: auto, numba"):
        simulate(c, backend="numbaa")
    monkeypatch.setenv("HTMC_SIM_BACKEND", "torch")
    assert simbackend.resolve(10, 8) == ("torch", "cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("HTMC_SIM_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"device 'gpu' \(argument or \$HTMC_SIM_DEVICE\)"):
        simulate(c)
    monkeypatch.delenv("HTMC_SIM_DEVICE")
    monkeypatch.setenv("HTMC_SIM_BACKEND", "numpy")
    assert simbackend.resolve(10 ** 6, 24) == ("numpy", "cpu")


def _fresh(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [out.stdout.strip(), out.stderr]


@needs_numba
def test_without_numba_the_numpy_path_runs_and_says_why():
    stdout, stderr = _fresh(
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from htmc.circuits.circuit import random_circuit, simulate, simulate_numpy\n"
        "from htmc.circuits import simbackend\n"
        "c = random_circuit(np.random.default_rng(0), 12, 500, 4)\n"
        "assert (simulate(c) == simulate_numpy(c)).all()\n"
        "print(simbackend.resolve(500, 12), 'htmc.circuits.fastsim' in sys.modules)\n")
    assert stdout == "('numpy', 'cpu') False"
    assert "simulate uses the numpy path (50-90x slower than numba): numba is not installed or fails to import" in stderr
    with pytest.raises(ValueError, match="backend 'numba' was asked for, but numba is not installed"):
        simbackend._state["numba_missing"] = "numba is not installed (test)"
        try:
            simbackend.resolve(10, 4, "numba")
        finally:
            del simbackend._state["numba_missing"]


@needs_numba
def test_tiny_circuits_stay_on_numpy_until_numba_is_loaded():
    stdout, _ = _fresh(
        "import sys, numpy as np\n"
        "from htmc.circuits.circuit import random_circuit, simulate\n"
        "from htmc.circuits import simbackend as s\n"
        "simulate(random_circuit(np.random.default_rng(0), 5, 40, 3))\n"
        "a = s.resolve(40, 5), 'htmc.circuits.fastsim' in sys.modules\n"
        "simulate(random_circuit(np.random.default_rng(0), 14, 400, 3))\n"
        "print(a, s.resolve(40, 5), 'htmc.circuits.fastsim' in sys.modules)\n")
    assert stdout == "(('numpy', 'cpu'), False) ('numba', 'cpu') True"


@needs_numba
def test_fused_sup_error_is_table_errors_bit_for_bit():
    from htmc.circuits.circuit import Decoder
    from htmc.targets.table import IntervalTable, sub_up
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=3000) * 10.0 ** rng.integers(-20, 20, 3000), rng.normal(size=3000)
    want = sub_up(a, b)  # the scalar TwoSum rounds up exactly like the array one (inexact a - b included)
    assert (a - b != want).sum() > 1000
    assert all(fastsim._sub_up(x, y) == w for x, y, w in zip(a[:3000:7], b[:3000:7], want[:3000:7]))
    c = random_circuit(rng, 11, 400, 7, window=30)
    for offset, shift in ((0.0, 0), (0.1, 3), (-1 / 3, 9)):
        c.decoder = Decoder(offset, shift)
        y = c.decoder.decode(output_codes(c, backend="numpy"))
        lo = y - rng.random(y.size) * 1e-9 * (rng.random(y.size) < 0.5)  # half the cells: y exactly at lo
        table = IntervalTable(1, 11, lo, lo + rng.random(y.size) * 2.0 ** -40)
        err = table.errors(y)
        got = verify(c, table, backend="numba")
        assert (got.max_error, got.worst_cell, got.n_cells) == (float(err.max()), int(np.argmax(err)), 2048)

"""Which simulator runs `circuit.simulate` (issue 15): numpy, the numba kernel (fastsim) or the torch path (torchsim).

All three give the same bits; only speed differs, so the choice is automatic unless forced by the `backend` /
`device` arguments or the HTMC_SIM_BACKEND / HTMC_SIM_DEVICE environment variables:
- `torch` on CUDA for big jobs when a GPU is present. torch is imported only if an NVIDIA device node exists or
  torch is already loaded, so CPU-only workers never pay torch's import.
- `numba` otherwise. Its first use in a process costs about 2 s (importing numba, loading the cached machine
  code); a process that has only simulated tiny circuits stays on numpy until those have taken LOAD_COST_S.
- `numpy` when numba is not installed (one warning names the reason) or for those first tiny circuits.
"""
from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

from htmc.registry import did_you_mean

BACKENDS = ("auto", "numpy", "numba", "torch")
DEVICES = ("auto", "cpu", "cuda")
ENV_BACKEND, ENV_DEVICE = "HTMC_SIM_BACKEND", "HTMC_SIM_DEVICE"
# gate-words (gates x 64-bit words) up to which numpy, at 1e6..4e6 gate-words/s on small circuits, takes at most
# ~15 ms, far below numba's ~2 s load (benchmarks/RESULTS.md "Verifier kernel").
TINY_GATE_WORDS = 1 << 14
LOAD_COST_S = 2.0
# Gate-evaluations above which the GPU pays back torch/CUDA start-up and per-level launches: about 2 s of the
# numba kernel at ~1e11/s.
GPU_MIN_GATE_EVALS = 2e11

_state = {"numpy_s": 0.0, "warned": False}


def _choice(value: str | None, env: str, valid: tuple[str, ...], what: str) -> str:
    value = value if value is not None else os.environ.get(env, "auto") or "auto"
    if value not in valid:
        raise ValueError(f"simulator {what} {value!r} (argument or ${env}) is unknown; "
                         f"{did_you_mean(value, list(valid))}")
    return value


def numba_missing() -> str | None:
    """Why the numba kernel cannot run here, or None when it can (checked once per process)."""
    if "numba_missing" not in _state:
        try:
            from htmc.circuits import fastsim  # noqa: F401
            _state["numba_missing"] = None
        except ImportError as e:
            _state["numba_missing"] = (f"numba is not installed or fails to import ({e}); pip install numba "
                                       f"(a pyproject dependency)")
        except RuntimeError as e:  # cache=True with no writable cache directory: numba refuses at decoration
            _state["numba_missing"] = f"numba cannot cache its kernels ({e}); set NUMBA_CACHE_DIR to a writable path"
    return _state["numba_missing"]


def _gpu_present() -> bool:
    if "torch" in sys.modules:
        return sys.modules["torch"].cuda.is_available()
    if not os.path.exists("/dev/nvidiactl"):
        return False
    try:   # a plain import, not importlib: tests/test_security.py allows one code-loading module, the registry
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve(n_gates: int, n_inputs: int, backend: str | None = None, device: str | None = None) -> tuple[str, str]:
    """(backend, device) for a circuit of n_gates over n_inputs; device is 'cpu' unless the torch path runs on CUDA."""
    backend = _choice(backend, ENV_BACKEND, BACKENDS, "backend")
    device = _choice(device, ENV_DEVICE, DEVICES, "device")
    if backend == "torch":
        return "torch", ("cuda" if _gpu_present() else "cpu") if device == "auto" else device
    if backend == "numba":
        if numba_missing():
            raise ValueError(f"simulator backend 'numba' was asked for, but {numba_missing()}")
        return "numba", "cpu"
    if backend == "numpy":
        return "numpy", "cpu"
    if device == "cuda" or (device == "auto" and n_gates * 2.0 ** n_inputs >= GPU_MIN_GATE_EVALS and _gpu_present()):
        return "torch", "cuda"
    tiny = n_gates * max(1, (1 << n_inputs) // 64) <= TINY_GATE_WORDS
    if tiny and "htmc.circuits.fastsim" not in sys.modules and _state["numpy_s"] < LOAD_COST_S:
        return "numpy", "cpu"
    reason = numba_missing()
    if reason:
        if not _state["warned"]:
            warnings.warn(f"htmc.circuits.simulate uses the numpy path (50-90x slower than numba): {reason}", stacklevel=4)
            _state["warned"] = True
        return "numpy", "cpu"
    return "numba", "cpu"


def simulate(circuit, backend: str | None = None, device: str | None = None, chunk_words: int = 1024) -> np.ndarray:
    """circuit.simulate through the chosen backend (see the module docstring)."""
    from htmc.circuits.circuit import simulate_numpy

    name, dev = resolve(len(circuit.gates), circuit.n_inputs, backend, device)
    if name == "numba":
        from htmc.circuits import fastsim
        return fastsim.simulate(circuit)
    if name == "torch":
        from htmc.circuits import torchsim
        return torchsim.simulate(circuit, dev)
    t = time.perf_counter()
    out = simulate_numpy(circuit, chunk_words)
    _state["numpy_s"] += time.perf_counter() - t
    return out

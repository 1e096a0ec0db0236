"""Bit-parallel simulation throughput: random B2 circuits over all 2^n input codes, one core (issue 15, verifier).

Each backend of htmc.circuits.simulate (numpy, the numba block kernel, the torch path on cpu or cuda) runs the
same circuits; the table shows gate-evaluations/s (live gates x codes / best time) and the ratio to numpy,
which runs at --baseline-inputs (its rate per gate-evaluation does not depend on n once the chunk is full).
"first s" is the first call in this process: numba's cache load (or JIT compile), torch's CUDA start-up.
    python benchmarks/simulate.py [--gates 10000] [--inputs 20] [--repeats 3] [--backend numba] [--json]
Issue 15 target: >= 1e11 gate-evaluations/s on one core; a 100k-gate circuit over 2^24 codes in < 20 s:
    python benchmarks/simulate.py --gates 100000 --inputs 24 --repeats 1 --shapes deep
--json prints one object for the last shape: {"gate_evals_per_s", "gates", "codes", ...}.
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import numpy as np  # noqa: E402

from htmc.circuits.circuit import random_circuit, simulate  # noqa: E402

SHAPES = {"wide": None, "deep": 64}  # fanins anywhere / within the last 64 signals


def _time(circuit, backend, device, repeats):
    """(first-call s, best wall s, best CPU s, result) of simulate on this backend."""
    t = time.perf_counter()
    ref = simulate(circuit, backend=backend, device=device)
    first = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        simulate(circuit, backend=backend, device=device)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return first, min(walls), min(cpus), ref


def _verify_time(circuit, words, backend, device):
    """(wall s, CPU s) of the whole verifier (simulate, unpack, decode, compare) against the circuit's own table."""
    from htmc.circuits.circuit import codes_from_words
    from htmc.circuits.verify import verify
    from htmc.targets.table import IntervalTable
    u = codes_from_words(words, circuit.n_inputs).astype(np.float64)
    table = IntervalTable.exact(u, 1, circuit.n_inputs)
    t, c = time.perf_counter(), time.process_time()
    v = verify(circuit, table, backend=backend)
    assert v.max_error == 0.0, v
    return time.perf_counter() - t, time.process_time() - c


def _measure(args, shape, rng):
    c = random_circuit(rng, args.inputs, args.gates, 16, window=SHAPES[shape])
    live, codes = c.size, 2 ** args.inputs
    first, wall, cpu, got = _time(c, args.backend, args.device, args.repeats)
    base = random_circuit(np.random.default_rng(1), args.baseline_inputs, args.gates, 16, window=SHAPES[shape])
    _, bwall, _, _ = _time(base, "numpy", None, max(1, min(args.repeats, 2)))
    numpy_rate = base.size * 2 ** args.baseline_inputs / bwall
    if args.inputs <= args.baseline_inputs:  # where numpy is affordable at n, check the bits too
        assert np.array_equal(got, simulate(c, backend="numpy")), f"{args.backend} differs from numpy on {shape}"
    rate = live * codes / wall
    extra = dict(zip(("verify_s", "verify_cpu_s"), _verify_time(c, got, args.backend, args.device))) \
        if args.verify else {}
    return extra | {"shape": shape, "backend": args.backend, "device": args.device, "gates": live,
            "total_gates": args.gates, "codes": codes, "seconds": wall, "cpu_seconds": cpu, "first_call_s": first, "gate_evals_per_s": rate,
            "cpu_gate_evals_per_s": live * codes / max(cpu, 1e-9), "numpy_gate_evals_per_s": numpy_rate,
            "speedup_vs_numpy": rate / numpy_rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gates", type=int, default=10_000)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", choices=["numpy", "numba", "torch"], default="numba")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="for --backend torch")
    ap.add_argument("--baseline-inputs", type=int, default=None, help="numpy baseline's n (default min(n, 18))")
    ap.add_argument("--shapes", default="wide,deep", help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--verify", action="store_true", help="also time verify() end to end (column 'verify s')")
    ap.add_argument("--json", action="store_true", help="print one JSON object (the last shape) instead")
    args = ap.parse_args()
    args.baseline_inputs = args.baseline_inputs or min(args.inputs, 18)
    shapes = args.shapes.split(",")
    bad = [s for s in shapes if s not in SHAPES]
    if bad:
        ap.error(f"--shapes {','.join(bad)}: valid shapes are {', '.join(SHAPES)}")
    rng = np.random.default_rng(0)
    rows = [_measure(args, s, rng) for s in shapes]
    if args.json:
        print(json.dumps(rows[-1] | {"shapes": rows}))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}; "
          f"backend {args.backend} (device {args.device}); numpy baseline at n={args.baseline_inputs}")
    print(f"{'shape':<6} {'gates':>7} {'live':>7} {'codes':>9} {'first s':>8} {'best s':>8} {'cpu s':>8} "
          f"{'gate-evals/s':>13} {'numpy':>9} {'x numpy':>8}"
          + (f" {'verify s':>9} {'cpu s':>6}" if args.verify else ""))
    for r in rows:
        print(f"{r['shape']:<6} {r['total_gates']:>7} {r['gates']:>7} {r['codes']:>9} {r['first_call_s']:>8.2f} "
              f"{r['seconds']:>8.3f} {r['cpu_seconds']:>8.3f} {r['gate_evals_per_s']:>13.3g} "
              f"{r['numpy_gate_evals_per_s']:>9.3g} {r['speedup_vs_numpy']:>8.1f}"
              + (f" {r['verify_s']:>9.2f} {r['verify_cpu_s']:>6.2f}" if args.verify else ""))


if __name__ == "__main__":
    main()

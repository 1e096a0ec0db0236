"""Bit-parallel simulation throughput: random B2 circuits over all 2^n input codes, one core.

Issue target: a 10,000-gate circuit over 2^20 codes in seconds, not minutes.
    python benchmarks/simulate.py [--gates 10000] [--inputs 20] [--repeats 3]
"""
import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import numpy as np  # noqa: E402

from htmc.circuits.circuit import random_circuit, simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gates", type=int, default=10_000)
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}")
    print(f"{'shape':<12} {'gates':>7} {'live':>7} {'codes':>9} {'best s':>8} {'gate-evals/s':>14}")
    for shape, window in (("wide", None), ("deep", 64)):
        c = random_circuit(rng, args.inputs, args.gates, 16, window=window)
        live = c.size
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            simulate(c)
            times.append(time.perf_counter() - t)
        best = min(times)
        print(f"{shape:<12} {args.gates:>7} {live:>7} {2 ** args.inputs:>9} {best:>8.2f} "
              f"{live * 2 ** args.inputs / best:>14.3g}")


if __name__ == "__main__":
    main()

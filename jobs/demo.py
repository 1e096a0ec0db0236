"""`make demo`: the most complete job the project has, on the embedded defaults.

For now (foundation issue): synthesize, verify by exhaustive simulation, and print the sizes of a few circuits.
"""
from __future__ import annotations

import time

import numpy as np

from htmc.boolean import boolean_abc, boolean_exact
from htmc.hextable import parse_hex


def _int_columns(u: np.ndarray, bits: int) -> list[np.ndarray]:
    return [((u >> j) & 1).astype(bool) for j in range(bits)]


def demo_cases():
    """(name, inputs, output columns, method) for a few classic functions."""
    x = np.arange(1 << 8)
    sin8 = np.round((np.sin(2 * np.pi * np.arange(1 << 10) / 1024) + 1) / 2 * 255).astype(np.int64)
    return [
        ("xor3", 3, [parse_hex("96", 3)], "exact"),
        ("majority3", 3, [parse_hex("e8", 3)], "exact"),
        ("full adder", 3, [parse_hex("96", 3), parse_hex("e8", 3)], "exact"),
        ("4x4 product", 8, _int_columns((x & 15) * (x >> 4), 8), "abc"),
        ("|a-b| 4-bit", 8, _int_columns(np.abs((x & 15) - (x >> 4)), 4), "abc"),
        ("sin 10->8 bit", 10, _int_columns(sin8, 8), "abc"),
    ]


def main() -> None:
    print("htmc-sweep demo: smallest verified B2 circuits (every one checked on all input codes)\n")
    print(f"{'function':<16} {'inputs':>6} {'outputs':>7} {'method':>6} {'gates':>6} {'AIG':>6} "
          f"{'optimal':>7} {'verified':>8} {'s':>6}")
    t0 = time.perf_counter()
    for name, n, cols, method in demo_cases():
        res, _ = boolean_exact(cols) if method == "exact" else boolean_abc(cols)
        print(f"{name:<16} {n:>6} {len(cols):>7} {method:>6} {res.gates:>6} {res.aig_nodes:>6} "
              f"{str(res.optimal):>7} {str(res.verified):>8} {res.seconds:>6.2f}")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s. Next: `htmc circuit exact --help`, README.md.")


if __name__ == "__main__":
    main()

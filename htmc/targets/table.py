"""The interval truth table of DESIGN §2.2 and the input codes of DESIGN §2.1 (the ε relation on it is
htmc.synthesis.relation; the output decoder is htmc.circuits.circuit.Decoder).

Conventions (used by every module; change them only with a version bump):
- Cell index c of a d-dimensional input at k bits per coordinate: coordinate 0 is the most significant block,
  each coordinate most significant bit first, i.e. c = sum_j floor(x_j 2^k) * 2^(k (d-1-j)).
- Circuit input i is bit i of c (input 0 = least significant), which is ABC's truth-table convention.
- Output bit j of a circuit has weight 2^j in the unsigned integer u; the decoded value is a + u * 2^-s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DOMAINS = ("box", "grid")


def sub_up(a, b) -> np.ndarray:
    """The smallest float >= a - b, exactly (elementwise): float subtraction rounds to nearest, so `a - b <= eps`
    in floats can accept a true difference up to half an ulp above eps.

    TwoSum (Knuth, TAOCP 2 §4.2.2, Theorem B) gives s = fl(a - b) and the exact rounding error e with
    a - b = s + e; when e > 0 the true difference lies strictly between s and the next float up. This is what
    makes "within eps" exact (DESIGN §2.2): ceil(t) <= eps if and only if t <= eps, for a float eps.
    """
    a, b = np.asarray(a, dtype=np.float64), -np.asarray(b, dtype=np.float64)
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return np.where(e > 0, np.nextafter(s, np.inf), s)


def cell_index_grid(d: int, k: int) -> np.ndarray:
    """Per-coordinate integer codes of every cell, shape (2^(d k), d), in cell-index order."""
    c = np.arange(1 << (d * k), dtype=np.int64)
    return np.stack([(c >> (k * (d - 1 - j))) & ((1 << k) - 1) for j in range(d)], axis=1)


@dataclass(frozen=True)
class IntervalTable:
    """Rigorous range [lo_c, hi_c] of f on each of the 2^(d k) cells (or the value at grid points)."""
    d: int
    k: int
    lo: np.ndarray
    hi: np.ndarray
    domain: str = "box"

    def __post_init__(self):
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain '{self.domain}': valid choices: {', '.join(DOMAINS)}")
        n = 1 << self.n_inputs
        if self.lo.shape != (n,) or self.hi.shape != (n,):
            raise ValueError(f"ranges must have shape ({n},) for d={self.d}, k={self.k}; "
                             f"got lo {self.lo.shape}, hi {self.hi.shape}")
        if np.any(self.lo > self.hi):
            raise ValueError("every cell needs lo <= hi")

    @property
    def n_inputs(self) -> int:
        return self.d * self.k

    def errors(self, y: np.ndarray) -> np.ndarray:
        """sup over each cell of |f - y| given the cell's range, max(hi - y, y - lo), rounded UP to a float:
        `errors(y) <= eps` holds exactly when the true error is within eps, with no tolerance."""
        return np.maximum(sub_up(self.hi, y), sub_up(y, self.lo))

    @classmethod
    def exact(cls, values: np.ndarray, d: int, k: int) -> "IntervalTable":
        """A grid table: f known exactly at each cell's code (DESIGN §2.1 'grid' domain)."""
        v = np.asarray(values, dtype=np.float64)
        return cls(d, k, v, v.copy(), domain="grid")

"""Truth tables as hex strings, in ABC's convention.

Bit i of the table is f at input index i, where input 0 is the least significant bit of i; the string is written
most significant digit first. So "at least 2 of 4 inputs" is "fee8", and XOR of 2 inputs is "6". Tables of n < 2
inputs still take one hex digit (the unused high bits must be 0).
"""
from __future__ import annotations

import numpy as np

MAX_HEX_INPUTS = 24


def hex_digits(n_inputs: int) -> int:
    return max(1, (1 << n_inputs) // 4)


def parse_hex(text: str, n_inputs: int) -> np.ndarray:
    """Bool array of length 2^n with entry i = f(i). Errors name the bad string and what was expected."""
    if not 0 <= n_inputs <= MAX_HEX_INPUTS:
        raise ValueError(f"--inputs must be between 0 and {MAX_HEX_INPUTS}, got {n_inputs}")
    s = text.strip().lower().removeprefix("0x")
    want = hex_digits(n_inputs)
    if len(s) != want:
        raise ValueError(f"truth table '{text}' has {len(s)} hex digits; {n_inputs} inputs need {want} "
                         f"(2^{n_inputs} bits, 4 bits per digit)")
    bad = sorted(set(s) - set("0123456789abcdef"))
    if bad:
        raise ValueError(f"truth table '{text}' has non-hex characters: {''.join(bad)}")
    value = int(s, 16)
    if value >> (1 << n_inputs):
        raise ValueError(f"truth table '{text}' sets bits beyond the 2^{n_inputs} rows of {n_inputs} inputs")
    rows = 1 << n_inputs
    # Work byte-wise so that 2^24-row tables stay fast.
    raw = np.frombuffer(value.to_bytes(max(1, (rows + 7) // 8), "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:rows].astype(bool)


def to_hex(bits: np.ndarray) -> str:
    """Inverse of parse_hex."""
    bits = np.asarray(bits, dtype=bool)
    n_rows = bits.size
    packed = np.packbits(bits, bitorder="little").tobytes()
    value = int.from_bytes(packed, "little")
    return format(value, "x").zfill(max(1, n_rows // 4))

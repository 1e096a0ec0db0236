"""Synthesis of plain Boolean functions (multi-output truth tables), exact or through ABC, always verified.

Verification is bit by bit against the columns (htmc.circuits.verify.verify_columns), exact for any number of
outputs. A circuit that fails it is dropped: the result says verified=false with the reason in `note`, and no
circuit is returned (issue 23: past 64 outputs the old numeric check crashed the command on correct circuits).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from htmc.synthesis.abc_tool import DEFAULT_SCRIPT, synthesize
from htmc.circuits.circuit import Circuit
from htmc.synthesis.sat_exact import exact_boolean
from htmc.circuits.verify import VerificationError, verify_columns


@dataclass
class BooleanResult:
    gates: int | None
    aig_nodes: int | None
    optimal: bool
    seconds: float
    method: str
    verified: bool
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _checked(columns: list[np.ndarray], circuit: Circuit | None) -> tuple[Circuit | None, str]:
    """(circuit, "") when it computes every column; (None, why) when it does not."""
    if circuit is None:
        return None, ""
    try:
        verify_columns(circuit, columns)
    except VerificationError as e:
        return None, f"dropped a circuit that failed verification: {e}"
    return circuit, ""


def boolean_exact(columns: list[np.ndarray], budget_s: float = 60) -> tuple[BooleanResult, Circuit | None]:
    res = exact_boolean(columns, budget_s)
    circuit, note = _checked(columns, res.circuit)
    gates = circuit.size if circuit is not None else None
    aig = circuit.aig_nodes if circuit is not None else None
    return BooleanResult(gates, aig, res.optimal and circuit is not None, res.seconds, "exact", circuit is not None,
                         note), circuit


def boolean_abc(columns: list[np.ndarray], script: str = DEFAULT_SCRIPT,
                deepsyn_s: float | None = None) -> tuple[BooleanResult, Circuit | None]:
    res = synthesize(columns, script, deepsyn_s)
    circuit, note = _checked(columns, res.circuit)
    if circuit is None:
        return BooleanResult(None, None, False, res.seconds, "abc", False, note), None
    return BooleanResult(res.gates, res.aig_nodes, False, res.seconds, "abc", True), circuit

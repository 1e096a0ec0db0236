"""Synthesis of plain Boolean functions (multi-output truth tables), exact or through ABC, always verified."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from htmc.synthesis.abc_tool import DEFAULT_SCRIPT, synthesize
from htmc.circuits.circuit import Circuit
from htmc.synthesis.sat_exact import exact_boolean
from htmc.circuits.verify import bits_table, require


@dataclass
class BooleanResult:
    gates: int | None
    aig_nodes: int | None
    optimal: bool
    seconds: float
    method: str
    verified: bool

    def to_json(self) -> dict:
        return asdict(self)


def _check(columns: list[np.ndarray], circuit: Circuit) -> None:
    n = circuit.n_inputs
    require(circuit, bits_table(columns, n), eps=0.0)


def boolean_exact(columns: list[np.ndarray], budget_s: float = 60) -> tuple[BooleanResult, Circuit | None]:
    res = exact_boolean(columns, budget_s)
    if res.circuit is not None:
        _check(columns, res.circuit)
    gates = res.circuit.size if res.circuit is not None else None
    aig = res.circuit.aig_nodes if res.circuit is not None else None
    return BooleanResult(gates, aig, res.optimal, res.seconds, "exact", res.circuit is not None), res.circuit


def boolean_abc(columns: list[np.ndarray], script: str = DEFAULT_SCRIPT,
                deepsyn_s: float | None = None) -> tuple[BooleanResult, Circuit]:
    res = synthesize(columns, script, deepsyn_s)
    _check(columns, res.circuit)
    return BooleanResult(res.gates, res.aig_nodes, False, res.seconds, "abc", True), res.circuit

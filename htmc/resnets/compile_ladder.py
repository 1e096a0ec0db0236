"""A trained net compiled at every rung of a ladder (DESIGN §2.6, the sandwich link; issue 14 A).

For each ε the net can meet, the input resolution k is the smallest at which the float net's own cell error
leaves room for quantization (at most FLOAT_SHARE of ε), and one finer k is tried as well: a coarser k has fewer
input bits, a finer one leaves more of ε to the weights and activations. Work is shared across ε: the float
error per k, and every (k, w_bits, a_bits) emulation. A rung the net cannot meet gets the reason, not a hole.
"""
from __future__ import annotations

import math
import time

from htmc.resnets.bit_search import compile_search
from htmc.resnets.to_circuit import MAX_INPUTS, float_error

FLOAT_SHARE = 0.9          # the float net may use this much of ε; the rest is left to quantization
K_TRIES = 2                # resolutions tried per ε: the coarsest feasible one and the next finer


class _Tables:
    """The target's box tables and the float net's error on them, per k, computed once per net."""

    def __init__(self, net: dict, target, max_inputs: int):
        self.net, self.target = net, target
        self.k_max = max(1, max_inputs // target.d)
        self.tables, self.errors = {}, {}

    def error(self, k: int) -> float:
        if k not in self.errors:
            self.tables[k] = self.target.table(k, "box")
            self.errors[k] = float_error(self.net, self.tables[k])
        return self.errors[k]

    def resolutions(self, eps: float) -> list[int]:
        """The K_TRIES smallest k whose float error is at most FLOAT_SHARE·ε."""
        ks = []
        for k in range(1, self.k_max + 1):
            if self.error(k) <= FLOAT_SHARE * eps:
                ks.append(k)
                if len(ks) == K_TRIES:
                    break
        return ks

    def floor(self) -> tuple[int, float]:
        """(k, float error) at the finest allowed k: the best the net can do."""
        return self.k_max, self.error(self.k_max)


def _point(eps: float, res, tried_k: list[int]) -> dict:
    out = res.to_json()
    out.pop("tried")
    out.update(eps=float(eps), ks_tried=tried_k, verified=res.circuit is not None)
    return out


def compile_rung(net: dict, tables: _Tables, eps: float, budget_s: float, cache: dict) -> dict:
    """The fewest-gate verified circuit of the net within eps over the resolutions tried, as a point dict."""
    ks = tables.resolutions(eps)
    if not ks:
        k, fe = tables.floor()
        return {"eps": float(eps), "gates": None, "verified": False, "float_error": fe, "k": k,
                "reason": f"the float net's cell error is {fe:.4g} at k={k} (the finest allowed), over "
                          f"{FLOAT_SHARE:g}·eps = {FLOAT_SHARE * eps:.4g}: no quantization can meet eps"}
    results, t0 = [], time.monotonic()
    for k in ks:
        left = budget_s - (time.monotonic() - t0)
        if results and left <= 0:
            break
        results.append(compile_search(net, tables.tables[k], eps, budget_s=max(1.0, left), cache=cache,
                                      float_err=tables.errors[k]))
    verified = [r for r in results if r.circuit is not None]
    best = min(verified, key=lambda r: r.gates) if verified else results[0]
    point = _point(eps, best, ks)
    point["seconds"] = time.monotonic() - t0
    return point


def compile_ladder(net: dict, target, eps_list: list[float], budget_s: float = 30.0,
                   max_inputs: int = MAX_INPUTS) -> list[dict]:
    """One point per ε (module docstring); budget_s per ε. Coarse ε first, so a net too inaccurate for a rung
    costs only its float error (known once per k)."""
    if not eps_list or any(not (isinstance(e, (int, float)) and math.isfinite(e) and e > 0) for e in eps_list):
        raise ValueError(f"eps_list must be finite numbers > 0, got {eps_list!r}")
    tables, cache = _Tables(net, target, max_inputs), {}
    return [compile_rung(net, tables, e, budget_s, cache) for e in sorted(eps_list, reverse=True)]



"""A net compiled at one rung (compile_at) or at every rung of a ladder (compile_ladder): DESIGN §2.6, the sandwich
link; issue 14 A, issue 21 B. The one compile path of `htmc resnet train --compile-eps`, the resnet_compile task
and the resnet_fit task.

For each ε the net can meet, the input resolution k is the smallest at which the float net's own cell error
leaves room for quantization (at most FLOAT_SHARE of ε), and one finer k is tried as well: a coarser k has fewer
input bits, a finer one leaves more of ε to the weights and activations. Work is shared across ε: the float
error per k, and every (k, w_bits, a_bits) emulation. A rung the net cannot meet gets the reason, not a hole.

`gates` always counts the net's own circuit, built from its netlist (bit_search route "netlist"); the table route
(ABC from the quantized net's output table, up to TABLE_ROUTE_MAX_INPUTS input bits) is kept only as its own
column, `gates_table`: a circuit-search candidate whose codes the net chose (issue 21 B).
"""
from __future__ import annotations

import math
import time

from htmc.resnets.bit_search import TABLE_ROUTE_MAX_INPUTS, compile_search
from htmc.resnets.to_circuit import COMPILE_VERSION, MAX_INPUTS, float_error

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


def _table_column(net: dict, tables: _Tables, k: int, eps: float, budget_s: float, cache: dict) -> dict:
    """gates_table (and its bits) at resolution k: ABC from the output table, a C̄ candidate, not the net's gates."""
    if tables.target.d * k > TABLE_ROUTE_MAX_INPUTS:
        return {"gates_table": None}
    r = compile_search(net, tables.tables[k], eps, budget_s=budget_s, cache=cache, float_err=tables.errors[k],
                       route="table")
    return {"gates_table": r.gates, "gates_table_bits": None if r.gates is None else [r.w_bits, r.a_bits, k]}


def compile_rung(net: dict, tables: _Tables, eps: float, budget_s: float, cache: dict, k: int | None = None,
                 table_route: bool = False, keep_circuit: bool = False) -> dict:
    """The fewest-gate verified circuit of the net's own netlist within eps over the resolutions tried (or at k
    when given), as a point dict; with table_route also the table route's gates_table at the same resolution;
    with keep_circuit also `circuit` (the Circuit or None) and `tried` (bit_search.CompileResult.tried)."""
    ks = tables.resolutions(eps) if k is None else [k]
    if k is not None:
        tables.error(k)
    if not ks:
        k, fe = tables.floor()
        return {"eps": float(eps), "gates": None, "verified": False, "float_error": fe, "k": k,
                "gates_table": None, "compile_version": COMPILE_VERSION, "aig_nodes": None, "max_error": None,
                "w_bits": None, "a_bits": None, "seconds": 0.0, "ks_tried": [], "notes": [],
                **({"circuit": None, "tried": []} if keep_circuit else {}),
                "reason": f"the float net itself is too inaccurate: its cell error is {fe:.4g} at k={k} (the finest "
                          f"allowed), over "
                          f"{FLOAT_SHARE:g}·eps = {FLOAT_SHARE * eps:.4g}: no quantization can meet eps"}
    results, t0 = [], time.monotonic()
    for kk in ks:
        left = budget_s - (time.monotonic() - t0)
        if results and left <= 0:
            break
        results.append(compile_search(net, tables.tables[kk], eps, budget_s=max(1.0, left), cache=cache,
                                      float_err=tables.errors[kk]))
    verified = [r for r in results if r.circuit is not None]
    best = min(verified, key=lambda r: r.gates) if verified else results[0]
    point = _point(eps, best, ks)
    point["gates_table"] = None
    if keep_circuit:
        point.update(circuit=best.circuit, tried=[list(t) for t in best.tried])
    if table_route:
        point.update(_table_column(net, tables, best.k, eps, max(1.0, budget_s - (time.monotonic() - t0)), cache))
    point["seconds"] = time.monotonic() - t0
    return point


def compile_at(net: dict, target, eps: float, budget_s: float = 30.0, max_inputs: int = MAX_INPUTS,
               k: int | None = None, table_route: bool = False, keep_circuit: bool = False) -> dict:
    """One net at one eps: its own circuit (from its netlist) verified within eps, as a dict with gates, aig_nodes,
    max_error, verified, w_bits, a_bits, k, float_error, seconds, reason (why gates is None), compile_version,
    ks_tried, notes, gates_table (None unless table_route; module docstring); with keep_circuit also circuit and
    tried (not JSON). k: the input resolution (default: the module docstring's choice, d k <= max_inputs).
    budget_s: the bit search's time budget."""
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    if not (isinstance(budget_s, (int, float)) and budget_s > 0):
        raise ValueError(f"budget_s must be a number > 0, got {budget_s!r}")
    if k is not None and not (isinstance(k, int) and 1 <= k and target.d * k <= max_inputs):
        raise ValueError(f"k must be an int with 1 <= k and d*k <= {max_inputs} (d={target.d}), got {k!r}")
    return compile_rung(net, _Tables(net, target, max_inputs), eps, budget_s, {}, k=k, table_route=table_route,
                        keep_circuit=keep_circuit)


def compile_ladder(net: dict, target, eps_list: list[float], budget_s: float = 30.0,
                   max_inputs: int = MAX_INPUTS, table_route: bool = False) -> list[dict]:
    """One point per ε (module docstring); budget_s per ε. Coarse ε first, so a net too inaccurate for a rung
    costs only its float error (known once per k)."""
    if not eps_list or any(not (isinstance(e, (int, float)) and math.isfinite(e) and e > 0) for e in eps_list):
        raise ValueError(f"eps_list must be finite numbers > 0, got {eps_list!r}")
    tables, cache = _Tables(net, target, max_inputs), {}
    return [compile_rung(net, tables, e, budget_s, cache, table_route=table_route)
            for e in sorted(eps_list, reverse=True)]



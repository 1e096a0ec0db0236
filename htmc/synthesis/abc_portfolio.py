"""The ABC portfolio for truth tables (issue 15): several flows (htmc.synthesis.abc_flows) within one time budget,
then `&deepsyn` from the best AIG with the time that is left; the smallest circuit that computes the table wins.

Budget rules. Flows run in priority order. The first always runs to completion (bounded only by timeout_s), so
there is always a result; each later one starts only while budget is left and is stopped when it runs out
(a stopped flow yields nothing). `&deepsyn` then gets what is left (its -T, whole seconds, at least 1), on the
AIG of the best candidate so far, for tables of at most DEEPSYN_MAX_INPUTS inputs: its run time is its budget
whatever the size, and on bigger tables it rarely finds anything within seconds. It never gets less than
today's 1 s, even past the budget, so the portfolio always contains today's flow.

Every candidate is simulated on all 2^n inputs and must equal the table, or it is dropped (ABC preserves
function; this guards the BLIF round trip and the input relabelling).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..circuits.blif import BlifError, read_blif
from ..circuits.circuit import CircuitError, output_codes
from .abc_flows import (DEFAULT_MAPPINGS, DEFAULT_PORTFOLIO, FLOWS, MAPPINGS, check_flows, check_mappings, order_permutation,
                        permute_columns, relabel_inputs)
from .abc_tool import DEEPSYN_MAX_INPUTS, DEFAULT_DEEPSYN_S, AbcError, SynthResult, _first_stat, run_abc, write_pla

DEFAULT_BUDGET_S = 8.0
DEEPSYN_SHARE = 0.75      # of the time left: -T is whole seconds and the mapping after it takes time too


class _Run:
    """One portfolio run: the table, its expected codes, the candidates found so far, the clock."""

    def __init__(self, columns, n, mappings, budget_s, timeout_s, work: Path):
        self.columns, self.n, self.m = columns, n, len(columns)
        self.want = np.zeros(1 << n, dtype=np.int64)
        for j, c in enumerate(columns):
            self.want |= np.asarray(c, dtype=np.int64) << j
        self.mappings, self.timeout_s, self.work = mappings, timeout_s, work
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s
        self.best = None        # (gates, name, circuit, aig_nodes, aig_path, perm)
        self.tried: list[tuple[str, int | None, float]] = []

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def run(self, name: str, head: str, perm: np.ndarray, limit: float, tag: str) -> None:
        """Run `head` (commands that leave the AIG in the main network), map it every way, keep the best."""
        d = self.work / tag
        d.mkdir(exist_ok=True)
        if tag.startswith("f"):
            write_pla(d / "f.pla", permute_columns(self.columns, perm))
        maps = "; ".join(f"read_aiger opt.aig; {MAPPINGS[k]}; write_blif m{i}.blif"
                         for i, k in enumerate(self.mappings))
        t0 = time.perf_counter()
        try:
            text = run_abc(f"{head}; write_aiger opt.aig; print_stats; {maps}", d, limit)
        except AbcError:
            self.tried.append((name, None, time.perf_counter() - t0))
            return
        secs = time.perf_counter() - t0
        aig = _first_stat(text, "and")
        for i, k in enumerate(self.mappings):
            circuit = self._read(d / f"m{i}.blif", perm)
            gates = circuit.size if circuit is not None else None
            self.tried.append((f"{name}/{k}", gates, secs))
            if gates is not None and (self.best is None or gates < self.best[0]):
                self.best = (gates, f"{name}/{k}", circuit, aig if aig is not None else circuit.aig_nodes,
                             d / "opt.aig", perm, name)

    def _read(self, path: Path, perm: np.ndarray):
        """The mapped circuit for the original input order, or None if it is missing, wide or wrong."""
        try:
            circuit = relabel_inputs(read_blif(path.read_text()).pruned(), perm)
        except (OSError, BlifError, CircuitError):
            return None
        if circuit.n_inputs != self.n or len(circuit.outputs) != self.m:
            return None
        return circuit if np.array_equal(output_codes(circuit), self.want) else None


def run_portfolio(columns: list[np.ndarray], n: int, flows=None, mappings=None, budget_s: float | None = None,
                  deepsyn_s: float | None = None, timeout_s: float = 600) -> SynthResult:
    """The smallest verified candidate over `flows` x `mappings`, then &deepsyn (see the module docstring).

    deepsyn_s None: &deepsyn gets the budget left, at least 1 s (none above DEEPSYN_MAX_INPUTS inputs); a number
    fixes its -T (0 turns it off).
    """
    flows = check_flows(DEFAULT_PORTFOLIO if flows is None else flows)
    mappings = check_mappings(DEFAULT_MAPPINGS if mappings is None else mappings)
    if not mappings:
        raise ValueError(f"the portfolio needs at least one B2 mapping; valid choices: {', '.join(MAPPINGS)}")
    budget = DEFAULT_BUDGET_S if budget_s is None else float(budget_s)
    if not budget >= 0:
        raise ValueError(f"budget_s must be >= 0, got {budget_s!r}")
    with tempfile.TemporaryDirectory(prefix="htmc-abcp-") as tmp:
        r = _Run(columns, n, mappings, budget, timeout_s, Path(tmp))
        for i, name in enumerate(flows):
            if i > 0 and r.left() <= 0:
                break
            flow = FLOWS.get(name)
            limit = timeout_s if i == 0 else min(timeout_s, r.left())
            r.run(name, f"read_pla f.pla; {flow.script(n, len(columns))}", order_permutation(flow.order, n),
                  limit, f"f{i}")
        _deepsyn(r, deepsyn_s)
        if r.best is None:
            raise AbcError(f"no flow of {flows} produced a circuit for this {n}-input table: "
                           f"{[t[0] for t in r.tried]} all failed")
        gates, name, circuit, aig, _, _, _ = r.best
    return SynthResult(circuit, gates, aig, time.perf_counter() - r.start, "portfolio", name, tuple(r.tried))


def _deepsyn(r: _Run, deepsyn_s: float | None) -> None:
    """&deepsyn from the best candidate's AIG, mapped every way.

    deepsyn_s None: DEEPSYN_SHARE of the budget left, and never less than today's DEFAULT_DEEPSYN_S, so that with
    any budget the portfolio still contains today's flow (classic, then 1 s of &deepsyn).
    """
    if r.best is None:
        return
    if deepsyn_s is None:
        if r.n > DEEPSYN_MAX_INPUTS:
            return
        share = int(r.left() * DEEPSYN_SHARE)
        if share >= DEFAULT_DEEPSYN_S:
            seconds, limit = share, r.left() + 2.0   # -T is checked between iterations: a little grace
        else:
            seconds, limit = DEFAULT_DEEPSYN_S, r.timeout_s
    elif deepsyn_s <= 0:
        return
    else:
        seconds, limit = deepsyn_s, r.timeout_s
    _, _, _, _, aig_path, perm, flow = r.best
    (r.work / "ds").mkdir()
    (r.work / "ds" / "src.aig").write_bytes(aig_path.read_bytes())
    r.run(f"deepsyn({flow})", f"read_aiger src.aig; &get -n; &deepsyn -T {int(max(1, seconds))}; &put", perm,
          limit, "ds")

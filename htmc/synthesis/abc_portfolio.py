"""The ABC portfolio for truth tables (issue 15): several flows (htmc.synthesis.abc_flows) within one time budget,
then `&deepsyn` from the best AIG, then the other B2 mappings on the best AIG, while time is left; the smallest
circuit that computes the table wins.

Budget rules. Flows run in priority order, each mapped with the first mapping (`&dch; &if -K 2`). The first flow
always runs to completion (bounded only by timeout_s), so there is always a result; each later step starts only
while budget is left and is stopped when it runs out (a stopped step yields nothing). The first flow, classic,
ends with today's 1 s of `&deepsyn` (tables of at most DEEPSYN_MAX_INPUTS inputs), so the portfolio contains
today's flow. Right after it, while budget is left, the Reed-Muller trees of the `davio` flows
(reed_muller.rm_tree, milliseconds) become candidates; ABC maps them in their turn, last. `&deepsyn` then
gets DEEPSYN_SHARE of what is left (its -T, whole seconds) on the AIG of the best candidate so far (its run
time is its budget whatever the size; on bigger tables it rarely finds anything within seconds). The other
mappings (`&mfs`, `mfs2`) come last, on the best AIG: they gained under 1% and cost up to 8x the plain mapping
on 4,000-gate networks.

Every candidate is simulated on all 2^n inputs and must equal the table, or it is dropped (ABC preserves
function; this guards the BLIF round trip and the input relabelling).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..circuits.blif import BlifError, read_blif, write_blif
from ..circuits.builder import CircuitBuilder
from ..circuits.reed_muller import rm_tree
from ..circuits.circuit import CircuitError
from ..circuits.verify import column_mismatch   # bit by bit: exact past 64 outputs (issue 23)
from .abc_flows import (DEFAULT_MAPPINGS, DEFAULT_PORTFOLIO, FLOWS, MAPPINGS, check_flows, check_mappings,
                        order_permutation, permute_columns, relabel_inputs)
from .abc_tool import DEEPSYN_MAX_INPUTS, DEFAULT_DEEPSYN_S, AbcError, SynthResult, _first_stat, run_abc, write_pla

# With no budget_s, the budget is relative: DEFAULT_BUDGET_X times the first flow's own time (classic, which is
# today's flow), so the default portfolio costs 1.5x today's time on any table and load. A fixed number of
# seconds would be 30x today's cost on a 6-input table and less than today's own cost on a loaded 12-input one.
# tests/test_search.py CPU time: 45 s with today's flow, 50 s at 1.5x, 73 s at 2x plus 1 s (2026-12-02, loaded).
DEFAULT_BUDGET_X = 1.5
DEEPSYN_SHARE = 0.75      # of the time left: -T is whole seconds, and the other mappings come after it


@dataclass
class _Best:
    gates: int
    name: str
    circuit: object
    aig_nodes: int
    aig_path: Path | None     # None: a Reed-Muller candidate whose flow has not run ABC yet
    perm: np.ndarray
    flow: str


class _Run:
    """One portfolio run: the table, its expected codes, the candidates found so far, the clock."""

    def __init__(self, columns, n, budget_s, timeout_s, work: Path):
        self.columns, self.n, self.m = columns, n, len(columns)
        self.timeout_s, self.work = timeout_s, work
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s
        self.best: _Best | None = None
        self.tried: list[tuple[str, int | None, float]] = []
        self.built: dict[str, tuple] = {}     # flow name -> (Reed-Muller circuit in its order, its candidate)

    def left(self) -> float:
        """Seconds of budget left; none once a candidate has 0 gates (a wire or a constant: nothing is smaller)."""
        if self.best is not None and self.best.gates == 0:
            return 0.0
        return self.deadline - time.perf_counter()

    def run(self, name: str, head: str, perm: np.ndarray, limit: float, tag: str, mappings: list[str]) -> None:
        """Run `head` (commands that leave an AIG in the main network), map it each way, keep the best. A head
        that reads f.blif reads the Reed-Muller tree of the table, which is a candidate itself."""
        d = self.work / tag
        d.mkdir(exist_ok=True)
        if head.startswith("read_pla"):
            write_pla(d / "f.pla", permute_columns(self.columns, perm))
        if head.startswith("read_blif f.blif"):
            (d / "f.blif").write_text(write_blif(self.add_rm_tree(name, perm, d / "opt.aig")))
        # the first mapping straight from the network, as today's flow does; the others from the saved AIG
        maps = "; ".join(f"{'read_aiger opt.aig; ' if i else ''}{MAPPINGS[k]}; write_blif m{i}.blif"
                         for i, k in enumerate(mappings))
        t0 = time.perf_counter()
        try:
            text = run_abc(f"{head}; write_aiger opt.aig; print_stats; {maps}", d, limit)
        except AbcError:
            self.tried.append((name, None, time.perf_counter() - t0))
            return
        secs = time.perf_counter() - t0
        aig = _first_stat(text, "and")
        for i, k in enumerate(mappings):
            circuit = self._read(d / f"m{i}.blif", perm)
            gates = circuit.size if circuit is not None else None
            self.tried.append((f"{name}/{k}", gates, secs))
            if gates is not None and (self.best is None or gates < self.best.gates):
                self.best = _Best(gates, f"{name}/{k}", circuit, aig if aig is not None else circuit.aig_nodes,
                                  d / "opt.aig", perm, name)

    def add_rm_tree(self, name: str, perm: np.ndarray, aig_path: Path | None = None):
        """reed_muller.rm_tree of the permuted table, kept as candidate `<name>/built` if it verifies (once per
        flow); its AIG is the one ABC writes to aig_path when the flow runs (the same circuit, strashed), None
        until then."""
        if name in self.built:
            self.built[name][1].aig_path = aig_path
            return self.built[name][0]
        t0 = time.perf_counter()
        b = CircuitBuilder(self.n)
        built = b.build(rm_tree(b, b.inputs, permute_columns(self.columns, perm)))
        circuit = relabel_inputs(built.pruned(), perm)
        ok = column_mismatch(circuit, self.columns) is None
        self.tried.append((f"{name}/built", circuit.size if ok else None, time.perf_counter() - t0))
        cand = _Best(circuit.size, f"{name}/built", circuit, circuit.aig_nodes, aig_path, perm, name)
        if ok and (self.best is None or circuit.size < self.best.gates):
            self.best = cand
        self.built[name] = (built, cand)
        return built

    def rerun(self, name: str, head: str, limit: float, tag: str, mappings: list[str]) -> None:
        """`head` on a copy of the best candidate's AIG (src.aig), in the best candidate's input order."""
        if self.best.aig_path is None or not self.best.aig_path.exists():   # a built candidate with no ABC run yet
            return                                                          # (or a failed one) has no AIG
        (self.work / tag).mkdir()
        (self.work / tag / "src.aig").write_bytes(self.best.aig_path.read_bytes())
        self.run(name, head, self.best.perm, limit, tag, mappings)

    def _read(self, path: Path, perm: np.ndarray):
        """The mapped circuit for the original input order, or None if it is missing, wide or wrong."""
        try:
            circuit = relabel_inputs(read_blif(path.read_text()).pruned(), perm)
        except (OSError, BlifError, CircuitError):
            return None
        if circuit.n_inputs != self.n or len(circuit.outputs) != self.m:
            return None
        return circuit if column_mismatch(circuit, self.columns) is None else None


def run_portfolio(columns: list[np.ndarray], n: int, flows=None, mappings=None, budget_s: float | None = None,
                  deepsyn_s: float | None = None, timeout_s: float = 600) -> SynthResult:
    """The smallest verified candidate over `flows`, &deepsyn and `mappings` (see the module docstring).

    budget_s None: DEFAULT_BUDGET_X times the first flow's time (see DEFAULT_BUDGET_X).

    deepsyn_s None: classic ends with today's 1 s of &deepsyn and the final &deepsyn gets DEEPSYN_SHARE of the
    budget left (neither above DEEPSYN_MAX_INPUTS inputs); a number fixes both -T (0 turns both off).
    """
    flows = check_flows(DEFAULT_PORTFOLIO if flows is None else flows)
    mappings = check_mappings(DEFAULT_MAPPINGS if mappings is None else mappings)
    if not mappings:
        raise ValueError(f"the portfolio needs at least one B2 mapping; valid choices: {', '.join(MAPPINGS)}")
    if budget_s is not None and not float(budget_s) >= 0:
        raise ValueError(f"budget_s must be >= 0 (or None for the relative default), got {budget_s!r}")
    with tempfile.TemporaryDirectory(prefix="htmc-abcp-") as tmp:
        r = _Run(columns, n, float("inf") if budget_s is None else float(budget_s), timeout_s, Path(tmp))
        for i, name in enumerate(flows):
            if i > 0 and r.left() <= 0:
                break
            flow = FLOWS.get(name)
            limit = timeout_s if i == 0 else min(timeout_s, r.left())
            first_ds = (DEFAULT_DEEPSYN_S if n <= DEEPSYN_MAX_INPUTS else 0) if deepsyn_s is None else deepsyn_s
            src = "read_blif f.blif" if flow.start == "davio" else "read_pla f.pla"
            r.run(name, f"{src}; {flow.script(n, len(columns), first_ds)}",
                  order_permutation(flow.order, n), limit, f"f{i}", mappings[:1])
            if i == 0 and budget_s is None:
                r.deadline = r.start + DEFAULT_BUDGET_X * (time.perf_counter() - r.start)
            if i == 0 and r.left() > 0:   # Reed-Muller trees take milliseconds: candidates now, ABC maps them later
                for other in flows:
                    if FLOWS.get(other).start == "davio":
                        r.add_rm_tree(other, order_permutation(FLOWS.get(other).order, n))
        _deepsyn(r, deepsyn_s, mappings[:1])
        for j, k in enumerate(mappings[1:]):
            if r.best is None or r.left() <= 0:
                break
            r.rerun(f"{r.best.flow}", "read_aiger src.aig", min(timeout_s, r.left()), f"m{j}", [k])
        if r.best is None:
            raise AbcError(f"no flow of {flows} produced a circuit for this {n}-input table: "
                           f"{[t[0] for t in r.tried]} all failed")
        b = r.best
    return SynthResult(b.circuit, b.gates, b.aig_nodes, time.perf_counter() - r.start, "portfolio", b.name,
                       tuple(r.tried))


def _deepsyn(r: _Run, deepsyn_s: float | None, mappings: list[str]) -> None:
    """&deepsyn from the best candidate's AIG: DEEPSYN_SHARE of the budget left (deepsyn_s None; none under 1 s)
    or deepsyn_s seconds. Today's 1 s is already in the classic flow."""
    if r.best is None or r.best.gates == 0:
        return
    if deepsyn_s is None:
        seconds = int(r.left() * DEEPSYN_SHARE)
        if r.n > DEEPSYN_MAX_INPUTS or seconds < 1:
            return
        limit = r.left() + 2.0   # -T is checked between iterations: a little grace
    elif deepsyn_s <= 0:
        return
    else:
        seconds, limit = deepsyn_s, r.timeout_s
    r.rerun(f"deepsyn({r.best.flow})", f"read_aiger src.aig; &get -n; &deepsyn -T {int(max(1, seconds))}; &put",
            limit, "ds", mappings)

"""The named ABC flows of the truth-table portfolio (issue 15): how a table becomes an AIG, how the AIG is
optimized, and the B2 mappings tried on it.

A flow is a start (BDD `collapse`, the PLA's SOP, Miyasaka's truth-table `&ttopt`, or our Reed-Muller tree read
by ABC), an optimization script and an input order. The portfolio (abc_portfolio) maps every flow's AIG with the
first mapping and tries the others on the best AIG only.
Input permutations are free in a circuit, so an order other than the identity permutes the table, synthesizes,
and relabels the circuit's inputs back (`permute_columns`, `relabel_inputs`).

Why these flows (measured 2026-12-02, benchmarks/portfolio.py, RESULTS.md "ABC portfolio (issue 15)"):
- `bdd` with the classic script is today's flow: STACK-NOTES found the BDD start far better than the SOP start on
  smooth tables (sin on 12 bits: 1681 vs 4337 ANDs); `sop` stays in as a cheap alternative for tables whose
  SOP is small.
- `&ttopt` (Y. Miyasaka et al., "Synthesizing a class of practical Boolean functions using truth tables",
  IWLS 2022; the UCB entry of the IWLS 2022 contest) reorders variables on the truth table itself and merges
  equal cofactors across outputs. It won 7 of 10 holder_random tables, by 8-26% (RESULTS.md), and 3 of 8 IWLS
  2022 tables; on random tables it is 2-3% worse than the BDD start.
  Its -O (outputs per group) must divide the number of outputs, or ABC aborts; the whole table is one group.
- `davio` builds the positive-Davio (Reed-Muller) decision diagram in Python (reed_muller.rm_tree: 2 gates
  per node where a multiplexer takes 3). The built circuit is itself a candidate; ABC only maps it (no AIG
  script: dc2 and resyn2 count an XOR as 3 ANDs and undo the structure, 1,038 -> 1,254 gates on a random
  10-input table). On random 10-12-input tables it is 11-13% below today's flow (RESULTS.md), where no ABC flow
  gained.
- `&mfs` / `mfs2` after `&if -K 2` are don't-care resubstitution on the mapped network (Mishchenko et al.,
  "Scalable don't-care-based logic optimization and resynthesis", FPGA 2009); they keep nodes at two fanins.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..circuits.circuit import Circuit
from ..registry import Registry, did_you_mean

CLASSIC_OPT = "dc2; resyn2; compress2rs; dc2; resyn2; compress2rs; dc2"

# B2 mappings, each applied to the optimized AIG read back from opt.aig. `&if -K 2` maps to 2-input LUTs: a 2-LUT
# is any B2 function and ABC absorbs inverters into LUTs, so `nd` is the B2 gate count; `&dch` first gives the
# mapper structural choices (STACK-NOTES "Counting B2 gates").
MAPPINGS: dict[str, str] = {
    "dch_if": "&get -n; &dch; &if -K 2 -a; &put",
    "dch_if_mfs": "&get -n; &dch; &if -K 2 -a; &mfs; &put",
    "dch_if_mfs2": "&get -n; &dch; &if -K 2 -a; &put; mfs2",
    "syn2_if": "&get -n; &st; &syn2; &dc2; &if -K 2 -a; &put",
}
# syn2_if never won in scratch runs (random n=10 6 outputs: 2172 vs 1666 gates; it rewrites away the BDD's mux
# structure), so it is opt-in only.
DEFAULT_MAPPINGS = ("dch_if", "dch_if_mfs", "dch_if_mfs2")


@dataclass(frozen=True)
class Flow:
    start: str            # "bdd" | "sop" | "ttopt" | "davio" (f.blif, the reed_muller.rm_tree circuit)
    optimize: str         # ABC script on the started AIG
    order: str = "identity"   # input order: "identity" | "reversed"
    deepsyn: bool = False     # end with today's &deepsyn (classic only, so the portfolio contains today's flow)

    def script(self, n_inputs: int, n_outputs: int, deepsyn_s: float = 0) -> str:
        """ABC commands from `read_pla f.pla` to the optimized AIG in the main network."""
        tail = f"; &get -n; &deepsyn -T {int(max(1, deepsyn_s))}; &put" if self.deepsyn and deepsyn_s > 0 else ""
        return self._head(n_inputs, n_outputs) + (f"; {self.optimize}" if self.optimize else "") + tail

    def _head(self, n_inputs: int, n_outputs: int) -> str:
        if self.start == "bdd":
            return "collapse; muxes; strash"
        if self.start in ("sop", "davio"):   # the PLA's SOP, or the Reed-Muller netlist read from f.blif
            return "strash"
        # -I at least the support; -O must divide the outputs (ABC aborts otherwise), so one group
        return f"strash; &get -n; &ttopt -I {max(n_inputs, 6)} -O {n_outputs}; &put"


FLOWS: Registry[Flow] = Registry("ABC flow")
FLOWS.register("classic", "1", Flow("bdd", CLASSIC_OPT, deepsyn=True))   # today's flow
FLOWS.register("ttopt", "1", Flow("ttopt", CLASSIC_OPT))
FLOWS.register("bdd_rev", "1", Flow("bdd", CLASSIC_OPT, "reversed"))
FLOWS.register("ttopt_rev", "1", Flow("ttopt", CLASSIC_OPT, "reversed"))
FLOWS.register("sop", "1", Flow("sop", CLASSIC_OPT))
FLOWS.register("davio", "1", Flow("davio", ""))
FLOWS.register("davio_rev", "1", Flow("davio", "", "reversed"))

# Priority order: the portfolio runs flows in this order while its budget lasts, then spends what is left on
# &deepsyn from the best AIG. classic (with today's 1 s &deepsyn) first, so the portfolio contains today's flow:
# a &deepsyn only from the best AIG lost to it on 3 of 8 IWLS tables (e.g. ex04: 332 vs 328 gates).
# The davio flows' Reed-Muller trees are candidates right after classic (milliseconds); ABC maps them last, in
# their turn here (0.4% fewer gates at most, measured): before ttopt they cut its time on loaded holder tables.
DEFAULT_PORTFOLIO = ("classic", "ttopt", "ttopt_rev", "bdd_rev", "sop", "davio", "davio_rev")
ORDERS = ("identity", "reversed")


def check_flows(names) -> list[str]:
    """The flow names, each checked (a wrong name fails with did-you-mean); at least one."""
    names = list(names)
    if not names:
        raise ValueError(f"the portfolio needs at least one flow; valid choices: {', '.join(FLOWS.names())}")
    for n in names:
        FLOWS.entry(n)
    return names


def check_mappings(names) -> list[str]:
    names = list(names)
    for n in names:
        if n not in MAPPINGS:
            raise ValueError(f"unknown B2 mapping '{n}': {did_you_mean(n, list(MAPPINGS))}")
    return names


def order_permutation(order: str, n: int) -> np.ndarray:
    """perm[i] = the position that original input i takes in the permuted table."""
    if order == "identity":
        return np.arange(n)
    if order == "reversed":
        return np.arange(n)[::-1].copy()
    raise ValueError(f"unknown input order '{order}': {did_you_mean(order, list(ORDERS))}")


def permute_columns(columns: list[np.ndarray], perm: np.ndarray) -> list[np.ndarray]:
    """The table with original input i moved to position perm[i]: new[c'] = old[c], bit perm[i] of c' = bit i of c."""
    n = len(perm)
    new_idx = np.arange(1 << n, dtype=np.int64)
    old_idx = np.zeros_like(new_idx)
    for i, p in enumerate(perm):
        old_idx |= ((new_idx >> int(p)) & 1) << i
    return [np.asarray(c)[old_idx] for c in columns]


def relabel_inputs(circuit: Circuit, perm: np.ndarray) -> Circuit:
    """A circuit for the permuted table (input perm[i] is original input i) as a circuit for the original one."""
    back = {2 + int(p): 2 + i for i, p in enumerate(perm)}
    sig = lambda s: back.get(s, s)  # noqa: E731  (constants and gate signals keep their numbers)
    gates = [(op, sig(a), sig(b)) for op, a, b in circuit.gates]
    return Circuit(circuit.n_inputs, gates, [sig(o) for o in circuit.outputs], circuit.decoder)

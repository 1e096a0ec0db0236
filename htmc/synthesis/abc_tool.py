"""Synthesis through ABC: multi-output truth table in, verified B2 circuit out (`synthesize`), and post-optimization
of a circuit that htmc.circuits.builder built (`optimize_with_abc`).

ABC comes with the Python install: the `pyosys` wheel ships a native `yosys-abc` inside the package. `abc_binary`
is the one place that finds it (STACK-NOTES "Logic synthesis").
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from htmc.circuits.blif import read_blif, write_blif
from htmc.circuits.circuit import Circuit, simulate

INSTALL_HINT = ("install it with `pip install pyosys` (ships yosys-abc), or `apt-get install berkeley-abc`, "
                "or point HTMC_ABC at an ABC binary")

# pyosys' yosys-abc has no abc.rc, so resyn2 and compress2rs silently do nothing until defined (STACK-NOTES).
ALIASES = (
    'alias b balance; alias rw rewrite; alias rwz rewrite -z; alias rf refactor; alias rfz refactor -z; '
    'alias rs resub; alias resyn2 "b; rw; rf; b; rw; rwz; b; rfz; rwz; b"; '
    'alias compress2rs "b -l; rs -K 6 -l; rw -l; rs -K 6 -N 2 -l; rf -l; rs -K 8 -l; b -l; rs -K 8 -N 2 -l; '
    'rw -l; rs -K 10 -l; rwz -l; rs -K 10 -N 2 -l; b -l; rs -K 12 -l; rfz -l; rs -K 12 -N 2 -l; rwz -l; b -l"'
)
# Start from a BDD, not the SOP (sin on 12 bits: 1681 vs 4337 ANDs), then iterate the strong scripts.
DEFAULT_SCRIPT = "collapse; muxes; strash; dc2; resyn2; compress2rs; dc2; resyn2; compress2rs; dc2"
# B2 count: map to 2-input LUTs with area recovery. A 2-LUT is any B2 function and ABC absorbs inverters into
# LUTs, so `nd` after `&if -K 2` is the B2 gate count; `&dch` first gives the mapper structural choices.
B2_MAPPING = "&get -n; &dch; &if -K 2 -a; &put"
# &deepsyn searches for smaller AIGs within a time budget; worth it on small tables only (full adder: 8 -> 5
# gates with 1 s), since its run time is the budget whatever the size.
DEEPSYN_MAX_INPUTS = 12
DEFAULT_DEEPSYN_S = 1.0


class AbcNotFoundError(RuntimeError):
    pass


class AbcError(RuntimeError):
    pass


def abc_binary() -> str:
    """Path of the ABC executable: $HTMC_ABC, else pyosys' bundled yosys-abc, else one on PATH."""
    env = os.environ.get("HTMC_ABC")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise AbcNotFoundError(f"HTMC_ABC={env!r} is not an executable file; unset it or {INSTALL_HINT}")
        return env
    try:
        import pyosys  # noqa: F401  (only to find the bundled binary)
        bundled = Path(pyosys.__file__).parent / "yosys-abc"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    for name in ("yosys-abc", "berkeley-abc", "abc"):
        found = shutil.which(name)
        if found:
            return found
    raise AbcNotFoundError(f"ABC was not found; {INSTALL_HINT}")


def run_abc(commands: str, workdir: Path, timeout_s: float = 600) -> str:
    """Run an ABC command string and return its stdout; errors name the failing command."""
    cmd = [abc_binary(), "-q", f"{ALIASES}; {commands}"]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise AbcError(f"ABC ran past {timeout_s:.0f} s on: {commands[:200]}") from e
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or re.search(r"(?m)^(Error|\*\* cmd error)", text):
        raise AbcError(f"ABC failed (exit {proc.returncode}) on: {commands[:200]}\n{text[-2000:]}")
    return text


def write_pla(path: Path, columns: list[np.ndarray], care: np.ndarray | None = None) -> None:
    """A full truth table as PLA: one row per input code, input x0 first in the row (named, so order is explicit).

    Rows outside `care` are left out of the on-set and the off-set alike (`.type fr` leaves them unspecified),
    which ABC's collapse treats as zeros; callers that need don't-cares exploit them before calling.
    """
    n = int(np.log2(columns[0].size))
    rows = np.arange(1 << n, dtype=np.int64)
    in_bits = ((rows[:, None] >> np.arange(n)) & 1).astype(np.uint8) + ord("0")
    out_bits = np.stack([np.asarray(c, dtype=np.uint8) for c in columns], axis=1) + ord("0")
    if care is not None:
        in_bits, out_bits = in_bits[care], out_bits[care]
    body = np.concatenate([in_bits, np.full((len(in_bits), 1), ord(" "), np.uint8), out_bits,
                           np.full((len(in_bits), 1), ord("\n"), np.uint8)], axis=1)
    head = (f".i {n}\n.o {len(columns)}\n.ilb {' '.join(f'x{i}' for i in range(n))}\n"
            f".ob {' '.join(f'y{j}' for j in range(len(columns)))}\n.type fr\n.p {len(in_bits)}\n")
    path.write_bytes(head.encode() + body.tobytes() + b".e\n")


@dataclass
class SynthResult:
    circuit: Circuit
    gates: int
    aig_nodes: int
    seconds: float
    script: str
    flow: str = "script"      # the portfolio's winning flow ("classic/dch_if", "deepsyn(ttopt)/dch_if", ...)
    tried: tuple = ()         # (flow/mapping, B2 gates or None if it failed, seconds of its ABC run) per candidate


def _first_stat(text: str, key: str) -> int | None:
    found = re.search(rf"\b{key}\s*=\s*(\d+)", text)
    return int(found.group(1)) if found else None


def _check_table(columns: list[np.ndarray]) -> int:
    n_rows = np.asarray(columns[0]).size
    n = n_rows.bit_length() - 1
    if n_rows != 1 << n or any(np.asarray(c).size != n_rows for c in columns):
        raise ValueError(f"every truth-table column needs 2^n rows; got sizes {[np.asarray(c).size for c in columns]}")
    return n


def synthesize(columns: list[np.ndarray], script: str = DEFAULT_SCRIPT, deepsyn_s: float | None = None,
               timeout_s: float = 600, flows=None, budget_s: float | None = None,
               mappings=None) -> SynthResult:
    """Synthesize a multi-output truth table (columns[j][c] = output bit j at input code c) with ABC.

    With the default script this runs the portfolio of htmc.synthesis.abc_portfolio (`flows`, by default
    abc_flows.DEFAULT_PORTFOLIO, within `budget_s` seconds in all, by default 1.5x the time of its first flow,
    which is today's) and returns the smallest candidate, its flow named in `.flow`; every candidate is checked
    to compute the table. A custom `script` runs that one script as before. Returns the mapped B2 circuit
    (outputs LSB first); callers still verify it against their table (htmc.circuits.verify), as every search
    result does.
    """
    n = _check_table(columns)
    if script != DEFAULT_SCRIPT and flows is None:
        return run_script(columns, script, deepsyn_s, timeout_s)
    from .abc_portfolio import run_portfolio
    return run_portfolio(columns, n, flows, mappings, budget_s, deepsyn_s, timeout_s)


def run_script(columns: list[np.ndarray], script: str = DEFAULT_SCRIPT, deepsyn_s: float | None = None,
               timeout_s: float = 600) -> SynthResult:
    """One ABC script, then `&deepsyn` (n <= 12) and the B2 mapping: the flow before the portfolio (issue 15)."""
    n = _check_table(columns)
    if deepsyn_s is None:
        deepsyn_s = DEFAULT_DEEPSYN_S if n <= DEEPSYN_MAX_INPUTS else 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="htmc-abc-") as tmp:
        work = Path(tmp)
        write_pla(work / "f.pla", columns)
        deep = f"&get -n; &deepsyn -T {int(max(1, deepsyn_s))}; &put; " if deepsyn_s > 0 else ""
        text = run_abc(f"read_pla f.pla; {script}; {deep}print_stats; {B2_MAPPING}; print_stats; "
                       f"write_blif out.blif", work, timeout_s)
        circuit = read_blif((work / "out.blif").read_text())
    aig = _first_stat(text, "and")  # the first print_stats is the optimized AIG, before mapping
    return SynthResult(circuit.pruned(), circuit.size, aig if aig is not None else circuit.aig_nodes,
                       time.perf_counter() - start, script)


# --- ABC post-optimization -----------------------------------------------------------------------------------------
# Local AIG rewriting of a built circuit (htmc.circuits.builder), then the B2 mapping above (STACK-NOTES "Logic
# synthesis"). Starts from the structure that was built, not from a truth table, so there is no collapse.
OPT_SCRIPT = "dc2; resyn2; dc2"
CHECK_MAX_INPUTS = 20


def optimize_with_abc(circuit: Circuit, script: str = OPT_SCRIPT, timeout_s: float = 300,
                      check: bool = True) -> Circuit:
    """Run ABC on a built circuit and return whichever of input and result is smaller (decoder kept).

    With check (and at most CHECK_MAX_INPUTS inputs) the result must compute the same codes on every input, or
    the input is returned: ABC's rewriting preserves function, and this guards the BLIF round trip.
    """
    circuit = circuit.pruned()
    with tempfile.TemporaryDirectory(prefix="htmc-opt-") as tmp:
        work = Path(tmp)
        (work / "f.blif").write_text(write_blif(circuit))
        run_abc(f"read_blif f.blif; strash; {script}; {B2_MAPPING}; write_blif out.blif", work, timeout_s)
        got = read_blif((work / "out.blif").read_text()).pruned()
    if got.n_inputs != circuit.n_inputs or len(got.outputs) != len(circuit.outputs):
        return circuit
    got = Circuit(got.n_inputs, got.gates, got.outputs, circuit.decoder)
    if got.size >= circuit.size:
        return circuit
    if check and circuit.n_inputs <= CHECK_MAX_INPUTS and \
            not np.array_equal(simulate(got), simulate(circuit)):   # bit by bit: any number of outputs (issue 23)
        return circuit
    return got

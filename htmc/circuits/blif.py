"""BLIF read and write, to interoperate with ABC and other logic-synthesis tools.

Only combinational BLIF is accepted. A .names node with two inputs is one B2 gate. Nodes with one input
(buffers, inverters) cost nothing: buffers become aliases and inverters are absorbed into the ops of the gates
that read them, which is exactly the B2 gate count of DESIGN §2.1. An inverter that feeds an output directly is
absorbed into its driving gate when nothing else reads that gate, and otherwise becomes a gate of its own (B2
has no free output inverters). Nodes with more than two inputs must be mapped first (ABC: `&if -K 2`).
"""
from __future__ import annotations

from pathlib import Path

from htmc.circuits.circuit import Circuit, CircuitError, CONST0, CONST1


class BlifError(ValueError):
    pass


def _logical_lines(text: str) -> list[str]:
    lines, buf = [], ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = (buf + line).strip()
        buf = ""
        if line:
            lines.append(line)
    return lines


def _cover_table(fanins: list[str], rows: list[str], node: str) -> int:
    """Truth table (bit index = sum of fanin_i << i) of a single-output cover."""
    n = len(fanins)
    on_rows, polarity = 0, None
    for row in rows:
        parts = row.split()
        cube, out = (parts[0], parts[1]) if n else ("", parts[0])
        if len(cube) != n or out not in "01":
            raise BlifError(f"node '{node}': malformed cover row '{row}'")
        if polarity is not None and out != polarity:
            raise BlifError(f"node '{node}': cover mixes on-set and off-set rows")
        polarity = out
        for m in range(1 << n):
            if all(ch == "-" or int(ch) == (m >> i) & 1 for i, ch in enumerate(cube)):
                on_rows |= 1 << m
    full = (1 << (1 << n)) - 1
    if polarity is None:  # an empty cover is constant 0
        return 0
    return on_rows if polarity == "1" else full & ~on_rows


def _parse(text: str) -> tuple[list[str], list[str], dict[str, tuple[list[str], int]]]:
    inputs: list[str] = []
    outputs: list[str] = []
    nodes: dict[str, tuple[list[str], int]] = {}
    lines = _logical_lines(text)
    i = 0
    while i < len(lines):
        tok = lines[i].split()
        i += 1
        if tok[0] in (".model", ".end", ".exdc"):
            if tok[0] == ".exdc":
                raise BlifError("BLIF .exdc sections are not supported")
            continue
        if tok[0] == ".inputs":
            inputs += tok[1:]
        elif tok[0] == ".outputs":
            outputs += tok[1:]
        elif tok[0] == ".names":
            *fanins, name = tok[1:]
            rows = []
            while i < len(lines) and not lines[i].startswith("."):
                rows.append(lines[i])
                i += 1
            if name in nodes or name in inputs:
                raise BlifError(f"signal '{name}' is defined twice")
            nodes[name] = (fanins, _cover_table(fanins, rows, name))
        elif tok[0] in (".latch", ".subckt", ".gate", ".mlatch"):
            raise BlifError(f"BLIF '{tok[0]}' is not supported: only combinational .names logic is")
        else:
            raise BlifError(f"unknown BLIF directive '{tok[0]}'")
    return inputs, outputs, nodes


def read_blif(source: str | Path) -> Circuit:
    """Parse BLIF text (or a pathlib.Path to a .blif file) into a Circuit with inverters absorbed."""
    text = source.read_text() if isinstance(source, Path) else source
    inputs, outputs, nodes = _parse(text)
    wide = [n for n, (f, _) in nodes.items() if len(f) > 2]
    if wide:
        raise BlifError(f"node '{wide[0]}' has {len(nodes[wide[0]][0])} inputs; map to 2-input gates first "
                        f"(ABC: &get; &if -K 2; &put)")
    fixed = {name: 2 + i for i, name in enumerate(inputs)}
    # Resolve each name to (base signal name, inverted?) through chains of buffers and inverters.
    literal: dict[str, tuple[object, bool]] = {name: (name, False) for name in inputs}

    def resolve(name: str, trail: tuple = ()) -> tuple[object, bool]:
        if name in literal:
            return literal[name]
        if name not in nodes:
            raise BlifError(f"signal '{name}' is used but never defined")
        if name in trail:
            raise CircuitError(f"the circuit has a combinational cycle through '{name}'")
        fanins, tt = nodes[name]
        if not fanins:
            literal[name] = (CONST1 if tt & 1 else CONST0, False)
        elif len(fanins) == 1 and tt in (0b10, 0b01):
            base, inv = resolve(fanins[0], trail + (name,))
            literal[name] = (base, inv ^ (tt == 0b01))
        elif len(fanins) == 1:  # constant single-input cover
            literal[name] = (CONST1 if tt == 0b11 else CONST0, False)
        else:
            literal[name] = (name, False)
        return literal[name]

    gates: dict[object, tuple[int, object, object]] = {}
    for name, (fanins, tt) in nodes.items():
        if len(fanins) != 2:
            continue
        (a, ia), (b, ib) = (resolve(f, (name,)) for f in fanins)
        gates[name] = (_absorb(tt, ia, ib), a, b)
    readers = _reader_counts(gates, outputs, resolve)
    out_names = []
    for o in outputs:
        base, inv = resolve(o)
        if inv and base in gates and readers.get(base, 0) == 1:
            op, a, b = gates[base]
            gates[base] = (op ^ 0b1111, a, b)
        elif inv and base in (CONST0, CONST1):
            base = CONST1 - base
        elif inv:  # B2 has no free output inverter: a NOT gate
            gates[("not", o)] = (0b0101, base, base)
            base = ("not", o)
        out_names.append(base)
    const_fixed = {CONST0: CONST0, CONST1: CONST1}
    return Circuit.from_unordered(len(inputs), gates, out_names, {**fixed, **const_fixed})


def _absorb(tt: int, inv_a: bool, inv_b: bool) -> int:
    """Op of a gate whose inputs were inverted: permute its truth table."""
    op = 0
    for m in range(4):
        if tt >> m & 1:
            op |= 1 << ((m & 1) ^ inv_a | ((m >> 1) ^ inv_b) << 1)
    return op


def _reader_counts(gates, outputs, resolve) -> dict[object, int]:
    count: dict[object, int] = {}
    for _, a, b in gates.values():
        for s in {a, b}:
            count[s] = count.get(s, 0) + 1
    for o in outputs:
        base = resolve(o)[0]
        count[base] = count.get(base, 0) + 1
    return count


def write_blif(circuit: Circuit, model: str = "htmc") -> str:
    """BLIF text with inputs x0.., outputs y0.. (LSB first) and one 2-input .names per live gate."""
    c = circuit.pruned()
    n = c.n_inputs
    name = {CONST0: "const0", CONST1: "const1", **{2 + i: f"x{i}" for i in range(n)}}
    name.update({c.gate_signal(g): f"g{g}" for g in range(len(c.gates))})
    lines = [f".model {model}", ".inputs " + " ".join(f"x{i}" for i in range(n)),
             ".outputs " + " ".join(f"y{j}" for j in range(len(c.outputs))),
             ".names const0", ".names const1", "1"]
    for g, (op, a, b) in enumerate(c.gates):
        lines.append(f".names {name[a]} {name[b]} g{g}")
        lines += [f"{m & 1}{m >> 1 & 1} 1" for m in range(4) if op >> m & 1]
    for j, o in enumerate(c.outputs):
        lines += [f".names {name[o]} y{j}", "1 1"]
    lines.append(".end")
    return "\n".join(lines) + "\n"

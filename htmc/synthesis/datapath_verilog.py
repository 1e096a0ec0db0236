"""The Yosys route of the datapath method: the same fixed-point datapath as word-level Verilog, synthesized by Yosys
(`synth`, then its ABC call mapped to two-input gates) and post-optimized by ABC (optimize_with_abc).

Yosys sees `a * b`, `+` and shifts, and picks its own multiplier and adder structures (STACK-NOTES "The RTL route
through pyosys": the high byte of an 8x8 product, 327 B2 cells). The Verilog computes exactly what
fixedpoint.Compiler computes for a format without truncation (guard None: every sum exact, then floored), so the
decoder and the proven bound carry over; the verifier checks the result all the same. Tables (lookup, apply) are
not written: trees with them return None. Yosys runs in a subprocess, since it logs every pass to stdout.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from htmc.circuits.blif import BlifError, read_blif
from htmc.circuits.circuit import Circuit
from htmc.synthesis.abc_tool import AbcError, AbcNotFoundError, optimize_with_abc

from .fixedpoint import Compiled, Compiler, Format, Fx, compile_expr

YOSYS_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT"   # all two-input: the B2 count (DESIGN §2.1)
SCRIPT = """
from pyosys import libyosys as ys
d = ys.Design()
for p in ["read_verilog dp.v", "synth -flatten -top dp", "abc -g {gates}", "opt_clean", "write_blif out.blif"]:
    ys.run_pass("tee -q -o yosys.log " + p, d)
"""


class _NoRtl(Exception):
    pass


def _lit(value: int, width: int) -> str:
    return f"-{width}'sd{-value}" if value < 0 else f"{width}'sd{value}"


def _signed(fx: Fx) -> str:
    return f"$signed({fx.v})" if fx.signed else f"$signed({{1'b0, {fx.v}}})"


class RtlCompiler(Compiler):
    """fixedpoint.Compiler that also writes each word-level step as a Verilog wire."""

    def __init__(self, *args):
        super().__init__(*args)
        self.lines: list[str] = []
        self.outputs: list[str] = []

    def _wire(self, fx: Fx, expr: str, width: int | None = None, signed: bool = False) -> None:
        fx.v = f"w{len(self.lines)}"
        w = width or len(fx.bits)
        self.lines.append(f"wire {'signed ' if signed else ''}[{w - 1}:0] {fx.v} = {expr};")

    def _rtl(self, kind: str, fx: Fx, **info) -> None:
        if kind == "table" or self.fmt.guard is not None:
            raise _NoRtl(kind)
        if kind == "input":
            j, k = info["j"], self.k
            lo = k * (self.d - 1 - info["j"])
            self._wire(fx, f"c[{lo + k - 1}:{lo}]" if self.domain == "grid" else f"{{c[{lo + k - 1}:{lo}], 1'b1}}")
        elif kind == "const":
            self._wire(fx, f"{len(fx.bits)}'d{info['q'] % (1 << len(fx.bits))}")
        elif kind == "sum":
            self._sum(fx, **info)
        elif kind in ("abs", "neg", "relu"):
            self._unary(kind, fx, info["c"], info.get("one"))
        elif kind == "output":
            bits = [f"{fx.v}[{i}]" for i in range(len(fx.bits))]
            if fx.signed:
                bits[-1] = f"~{bits[-1]}"
            self.outputs = bits

    def _sum(self, fx: Fx, parts, base, const, drop, r) -> None:
        width = max(drop + len(fx.bits), max(abs(r.lo), abs(r.hi)).__ceil__().bit_length()) + 2
        terms = []
        for p in parts:
            kind, col, sign = p[0], p[1] - base, p[2]
            if kind == "vec":
                t = _signed(p[3])
            elif kind == "cmul":
                t = f"{_signed(p[3])} * {_lit(p[4], p[4].bit_length() + 2)}"
            else:
                t = f"{_signed(p[3])} * {_signed(p[4])}"
            terms.append(f"{'-' if sign < 0 else '+'} (({t}) <<< {col})")
        terms.append(f"+ {_lit(const, max(width, abs(const).bit_length() + 2))}")
        s = Fx([], True, 0, 0, 0, fx.t, fx.e)
        self._wire(s, " ".join(terms).lstrip("+ "), width, signed=True)
        self._wire(fx, f"{s.v}[{drop + len(fx.bits) - 1}:{drop}]")

    def _unary(self, kind: str, fx: Fx, c: Fx, one: bool | None) -> None:
        w, n = len(c.bits), len(fx.bits)
        if kind == "neg":
            self._wire(fx, f"-{_signed(c)}", n)
        elif kind == "relu":
            self._wire(fx, f"{c.v}[{w - 1}] ? {n}'d0 : {c.v}[{n - 1}:0]")
        elif w < 2:
            raise _NoRtl("abs of a 1-bit word")
        else:
            flip = Fx([], False, 0, 0, 0, c.t, c.e)
            self._wire(flip, f"{c.v}[{w - 2}:0] ^ {{{w - 1}{{{c.v}[{w - 1}]}}}}", w - 1)
            self._wire(fx, f"{flip.v} + {c.v}[{w - 1}]" if one else f"{flip.v}[{n - 1}:0]", n)

    def verilog(self) -> str:
        n, m = self.d * self.k, len(self.outputs)
        ports = ", ".join([f"c{i}" for i in range(n)] + [f"y{j}" for j in range(m)])
        body = [f"module dp({ports});", f"input {', '.join(f'c{i}' for i in range(n))};",
                f"output {', '.join(f'y{j}' for j in range(m))};",
                f"wire [{n - 1}:0] c = {{{', '.join(f'c{i}' for i in reversed(range(n)))}}};", *self.lines]
        body += [f"assign y{j} = {b};" for j, b in enumerate(self.outputs)]
        return "\n".join(body + ["endmodule", ""])


def run_yosys(verilog: str, timeout_s: float = 120) -> Circuit | None:
    """Yosys synth + its ABC mapping to two-input gates; None if pyosys is missing or Yosys fails."""
    with tempfile.TemporaryDirectory(prefix="htmc-yosys-") as tmp:
        work = Path(tmp)
        (work / "dp.v").write_text(verilog)
        try:
            subprocess.run([sys.executable, "-c", SCRIPT.format(gates=YOSYS_GATES)], cwd=work, timeout=timeout_s,
                           capture_output=True, check=True)
            return read_blif((work / "out.blif").read_text())
        except (subprocess.SubprocessError, OSError, BlifError):
            return None


def yosys_circuit(tree, d: int, k: int, domain: str, fmt: Format, timeout_s: float = 120) -> Compiled | None:
    """The datapath of `tree` in fmt without truncation, through Yosys and then ABC; None where no RTL exists."""
    fmt = replace(fmt, guard=None)
    made: list[RtlCompiler] = []
    try:
        ref = compile_expr(tree, d, k, domain, fmt, compiler=lambda *a: made.append(RtlCompiler(*a)) or made[0])
    except _NoRtl:
        return None
    got = run_yosys(made[0].verilog(), timeout_s)
    if got is None or got.n_inputs != d * k or len(got.outputs) != len(ref.circuit.outputs):
        return None
    got = Circuit(got.n_inputs, got.gates, got.outputs, ref.circuit.decoder)
    try:
        got = optimize_with_abc(got, timeout_s=timeout_s)
    except (AbcError, AbcNotFoundError):
        pass
    return replace(ref, circuit=got, builder_gates=ref.builder_gates)

"""The `htmc` command line. Thin: it parses arguments, calls htmc/ and cluster/, and prints results.

JSON output is a contract that other tools parse; errors are one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from htmc.abc import AbcError, AbcNotFoundError
from htmc.hextable import parse_hex

# Failures that are the user's input or environment: shown as one line, never as a traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, AbcNotFoundError, AbcError)

EPILOG_HEX = """truth tables use ABC's hex convention: bit i of the table is f at input index i, where input 0 is the
least significant bit of i, and the string is written most significant digit first. Examples: XOR of 2
inputs is 6, majority of 3 is e8, 'at least 2 of 4' is fee8. Give --truth-table once per output."""


def _emit(payload: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload, sort_keys=True))
    else:
        width = max(len(k) for k in payload)
        for k, v in payload.items():
            print(f"{k:<{width}}  {v}")


def _columns(args) -> list:
    return [parse_hex(h, args.inputs) for h in args.truth_table]


def cmd_circuit_exact(args) -> int:
    from htmc.boolean import boolean_exact
    from htmc.blif import write_blif
    result, circuit = boolean_exact(_columns(args), budget_s=args.budget_s)
    if circuit is not None and args.save:
        Path(args.save).write_text(write_blif(circuit))
    _emit(result.to_json(), args.json)
    return 0 if circuit is not None else 1


def cmd_circuit_synth(args) -> int:
    from htmc.abc import DEFAULT_SCRIPT
    from htmc.blif import write_blif
    from htmc.boolean import boolean_abc
    result, circuit = boolean_abc(_columns(args), args.script or DEFAULT_SCRIPT, args.deepsyn_s)
    if args.save:
        Path(args.save).write_text(write_blif(circuit))
    _emit(result.to_json(), args.json)
    return 0


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truth-table", "-t", action="append", required=True, metavar="HEX",
                   help="one output's truth table in ABC hex convention; repeat for multi-output functions")
    p.add_argument("--inputs", "-n", type=int, required=True, metavar="N", help="number of inputs")
    p.add_argument("--save", metavar="OUT.blif", help="write the verified circuit as BLIF")
    p.add_argument("--json", action="store_true", help="print one JSON object (a stable contract)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htmc", description="Measure circuit-size rates and ResNet norms (Jacot, arXiv 2511.20888).")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    circuit = sub.add_parser("circuit", help="synthesize and verify binary circuits")
    csub = circuit.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = csub.add_parser("exact", help="exact minimum B2 circuit of a small truth table (SAT, optimal=true)",
                        epilog=EPILOG_HEX, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Find the fewest 2-input gates (any of the 16 B2 functions, inverters free) "
                                    "that compute the given outputs, proving optimality by SAT. Keys of --json: "
                                    "gates, aig_nodes, optimal, seconds, method, verified.")
    _add_table_args(p)
    p.add_argument("--budget-s", type=float, default=120, help="SAT time budget in seconds (default 120)")
    p.set_defaults(func=cmd_circuit_exact)

    p = csub.add_parser("synth", help="synthesize a truth table with ABC and count B2 gates",
                        epilog=EPILOG_HEX, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Run ABC's optimization script on the truth table, map to 2-input gates and "
                                    "verify the result by exhaustive simulation.")
    _add_table_args(p)
    p.add_argument("--script", help="ABC script run after read_pla (default: BDD start + dc2/resyn2/compress2rs)")
    p.add_argument("--deepsyn-s", type=float, default=None,
                   help="&deepsyn time budget in seconds (default: 1 s for up to 12 inputs, else off)")
    p.set_defaults(func=cmd_circuit_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as e:
        # Known, user-facing failures: one clear line, never a traceback from deep inside.
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"htmc: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

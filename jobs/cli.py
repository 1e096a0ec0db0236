"""The `htmc` command line. Thin: it parses arguments, calls htmc/ and cluster/, and prints results.

JSON output is a contract that other tools parse; errors are one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from htmc.circuits.hextable import parse_hex
from htmc.synthesis.search import DEFAULT_METHODS, SCHEDULE, WIDE_METHODS
from jobs.common import add_function_args, add_json_arg, add_plugin_arg, emit, target_from_args
from jobs.errors import user_error, USER_ERRORS

EPILOG_HEX = """truth tables use ABC's hex convention: bit i of the table is f at input index i, where input 0 is the
least significant bit of i, and the string is written most significant digit first. Examples: XOR of 2
inputs is 6, majority of 3 is e8, 'at least 2 of 4' is fee8. Give --truth-table once per output."""


def _columns(args) -> list:
    return [parse_hex(h, args.inputs) for h in args.truth_table]


def cmd_circuit_exact(args) -> int:
    from htmc.synthesis.boolean import boolean_exact
    return _boolean_out(args, *boolean_exact(_columns(args), budget_s=args.budget_s))


def cmd_circuit_synth(args) -> int:
    from htmc.synthesis.abc_tool import DEFAULT_SCRIPT
    from htmc.synthesis.boolean import boolean_abc
    return _boolean_out(args, *boolean_abc(_columns(args), args.script or DEFAULT_SCRIPT, args.deepsyn_s))


def _boolean_out(args, result, circuit) -> int:
    """--save the verified circuit and print the result: exit 0, or 1 when no verified circuit came back."""
    from htmc.circuits.blif import write_blif
    if circuit is not None and args.save:
        Path(args.save).write_text(write_blif(circuit))
    emit(result.to_json(), args.json)
    return 0 if circuit is not None else 1


def _check_bits(args, target) -> None:
    from htmc.synthesis.abc_method import MAX_ABC_INPUTS
    if args.bits is not None and target.d * args.bits > MAX_ABC_INPUTS:
        raise ValueError(f"--bits {args.bits} gives d*k = {target.d * args.bits} input bits for '{target.name}' "
                         f"(d={target.d}); circuit search handles at most {MAX_ABC_INPUTS}")


def _methods(text: str | None) -> list[str] | None:
    """--methods as a list; None (not given) lets the search choose its defaults per eps."""
    from htmc.synthesis.search import check_methods
    return None if text is None else check_methods([m.strip() for m in text.split(",") if m.strip()])


def _point_json(args, target, eps: float, result) -> dict:
    from htmc.tasks import search_record
    rec = search_record(target, eps, result).to_row()
    attempts = json.loads(rec.pop("attempts_json"))
    return {**rec, "params": target.params, "seconds": rec.pop("search_seconds"), "attempts": attempts}


def cmd_functions_list(args) -> int:
    from htmc.targets import FUNCTIONS, make_function
    rows = []
    for e in FUNCTIONS:
        t = make_function(e.name)
        rows.append({"name": e.name, "version": e.version, "d": t.d, "domain": t.domain_default,
                     "gamma_theory": t.gamma_theory, "params": t.params,
                     "doc": (e.doc.splitlines() or [""])[0]})
    if args.json:
        print(json.dumps({"functions": rows}, sort_keys=True))
    else:
        for r in rows:
            print(f"{r['name']:<16} v{r['version']:<4} d={r['d']}  γ_theory={r['gamma_theory']}  {r['doc']}")
    return 0


def cmd_circuit_search(args) -> int:
    from htmc.circuits.blif import write_blif
    from htmc.synthesis.search import search
    target = target_from_args(args)
    _check_bits(args, target)
    result = search(target, args.eps, args.domain or target.domain_default, _methods(args.methods),
                    args.budget_s, args.bits, thorough=not args.quick)
    if args.save and result.best:
        Path(args.save).write_text(write_blif(result.best.circuit))
    payload = _point_json(args, target, args.eps, result)
    if not args.json:
        payload = {k: v for k, v in payload.items() if k != "attempts"}
    emit(payload, args.json)
    return 0 if result.best else 1


def cmd_circuit_ladder(args) -> int:
    from htmc.rates.ladder import run_ladder
    target = target_from_args(args)
    from htmc.rates.ladder import check_ladder
    _check_bits(args, target)
    check_ladder(target, args.eps0, args.steps, domain=args.domain or target.domain_default, bits=args.bits,
                 methods=_methods(args.methods))   # decomp and lupanov reach 24 input bits, the others 16
    from tqdm import tqdm
    bar = tqdm(total=args.steps, desc=f"ladder {target.name}", unit="ε", disable=args.json, file=sys.stderr)

    def progress(j, r):
        bar.set_postfix(eps=f"{args.eps0 * 2.0 ** -j:.3g}", gates=r.best.gates if r.best else None)
        bar.update(1)

    ladder = run_ladder(target, args.eps0, args.steps, domain=args.domain or target.domain_default,
                        methods=_methods(args.methods), budget_s=args.budget_s, bits=args.bits,
                        thorough=not args.quick, progress=progress)
    bar.close()
    fit = ladder.fit.to_json() if ladder.fit else None
    fit_keys = ("gamma", "gamma_ci", "ci_note", "c", "polylog", "preferred_model", "delta_aic", "local_slopes",
                "htmc_norm_at_rungs", "htmc_norm_over_range")
    payload = {"function": target.name, "params": target.params,
               "points": [_point_json(args, target, e, r) for e, r in zip(ladder.eps, ladder.results)],
               **{key: fit[key] if fit else None for key in fit_keys}, "fit_error": ladder.fit_error or None}
    if args.plot:
        from analysis.plots import plot_ladder
        use = [p["gates"] is not None and p["gates"] > 0 for p in payload["points"]]
        eps = [e for e, u in zip(ladder.eps, use) if u]
        plot_ladder(eps, [p["gates"] for p, u in zip(payload["points"], use) if u], fit,
                    f"{target.name} {target.params}", args.plot)
    if args.json:
        print(json.dumps(payload, sort_keys=True))
    else:
        for p in payload["points"]:
            print(f"eps={p['eps']:<10.4g} gates={p['gates']!s:<7} method={p['method']!s:<6} "
                  f"max_error={p['max_error']!s:.8}")
        print(f"gamma={payload['gamma']} CI={payload['gamma_ci']} ({payload['ci_note']}) "
              f"preferred={payload['preferred_model']} (ΔAIC={payload['delta_aic']}) "
              f"htmc_norm at the rungs={payload['htmc_norm_at_rungs']}, over the range="
              f"{payload['htmc_norm_over_range']}" + (f" ({ladder.fit_error})" if ladder.fit_error else ""))
    return 0


def _add_function_args(p: argparse.ArgumentParser) -> None:
    add_function_args(p, plugin_help="a Python file that registers extra target functions (docs/SEARCH.md); "
                                     "repeatable")
    p.add_argument("--domain", choices=["box", "grid"], help="error domain (default: the function's)")
    p.add_argument("--methods", metavar="M1,M2,...",
                   help=f"comma-separated search methods, run cheapest first whatever the order given (default "
                        f"{','.join(DEFAULT_METHODS)}, plus {','.join(WIDE_METHODS)} where eps needs more than 16 "
                        f"input bits; all: {','.join(SCHEDULE)})")
    p.add_argument("--budget-s", type=float, metavar="SECONDS", default=60,
                   help="time budget per ε in seconds, shared by the methods (default 60)")
    p.add_argument("--bits", type=int, metavar="K",
                   help="input bits per coordinate k (default: searched on box, 4 on grid)")
    p.add_argument("--quick", action="store_true",
                   help="one input resolution and output step per eps (about 4x faster, slightly larger circuits)")
    add_json_arg(p)


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truth-table", "-t", action="append", required=True, metavar="HEX",
                   help="one output's truth table in ABC hex convention; repeat for multi-output functions")
    p.add_argument("--inputs", "-n", type=int, required=True, metavar="N", help="number of inputs")
    p.add_argument("--save", metavar="OUT.blif", help="write the verified circuit as BLIF")
    add_json_arg(p)


def _add_circuit_commands(sub) -> None:
    circuit = sub.add_parser("circuit", help="synthesize and verify binary circuits")
    csub = circuit.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = csub.add_parser("exact", help="exact minimum B2 circuit of a small truth table (SAT, optimal=true)",
                        epilog=EPILOG_HEX, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Find the fewest 2-input gates (any of the 16 B2 functions, inverters free) "
                                    "that compute the given outputs, proving optimality by SAT. Keys of --json: "
                                    "gates, aig_nodes, optimal, seconds, method, verified, note.")
    _add_table_args(p)
    p.add_argument("--budget-s", type=float, metavar="SECONDS", default=120,
                   help="SAT time budget in seconds (default 120)")
    p.set_defaults(func=cmd_circuit_exact)

    p = csub.add_parser("synth", help="synthesize a truth table with ABC and count B2 gates",
                        epilog=EPILOG_HEX, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Run ABC's optimization script on the truth table, map to 2-input gates and "
                                    "verify the result bit by bit against every output's column (any number of "
                                    "outputs). Keys of --json: gates, aig_nodes, optimal, seconds, method, verified, "
                                    "note (why a circuit was dropped; exit status 1 then).")
    _add_table_args(p)
    p.add_argument("--script", help="ABC script run after read_pla (default: BDD start + dc2/resyn2/compress2rs)")
    p.add_argument("--deepsyn-s", type=float, metavar="SECONDS", default=None,
                   help="&deepsyn time budget in seconds (default: 1 s for up to 12 inputs, else off)")
    p.set_defaults(func=cmd_circuit_synth)

    p = csub.add_parser("search", help="smallest verified circuit approximating a function within eps",
                        description="C̄(f, eps): search input resolutions, output formats and methods for the "
                                    "smallest circuit whose verified sup error is <= eps (exactly: max_error is "
                                    "rounded up). JSON keys: function, function_version, params, eps, gates, "
                                    "aig_nodes, max_error, the format (k, bits_in, bits_out, shift, offset), "
                                    "method, method_version, optimal_in_format (an exact minimum within that "
                                    "format only), exact_rounded, verified, seconds (plus attempts: every "
                                    "method tried).")
    _add_function_args(p)
    p.add_argument("--eps", type=float, required=True, metavar="EPS", help="sup-norm error bound (>= 0; > 0 on box)")
    p.add_argument("--save", metavar="OUT.blif", help="write the best circuit as BLIF")
    p.set_defaults(func=cmd_circuit_search)

    p = csub.add_parser("ladder", help="C̄ over eps_j = eps0 2^-j, with the rate fits",
                        description="Search every rung of the ladder and fit log2 C̄ = log2 c + γ log2(1/ε) "
                                    "(interval: the spread of the fit; none with <= 3 rungs), the polylog model "
                                    "a·log2(1/ε)^b, ΔAIC (inconclusive below 2) and the HTMC norm estimate at the "
                                    "rungs and over the ladder's range. JSON keys: points, gamma, gamma_ci, "
                                    "ci_note, c, polylog, preferred_model, delta_aic, local_slopes, "
                                    "htmc_norm_at_rungs, htmc_norm_over_range, fit_error.")
    _add_function_args(p)
    p.add_argument("--eps0", type=float, required=True, help="largest eps of the ladder")
    p.add_argument("--steps", type=int, required=True, help="number of rungs (each halves eps)")
    p.add_argument("--plot", metavar="OUT.png", help="write the log-log plot of size against 1/eps")
    p.set_defaults(func=cmd_circuit_ladder)


def _add_functions_command(sub) -> None:
    fn = sub.add_parser("functions", help="target functions")
    fsub = fn.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = fsub.add_parser("list", help="list registered target functions with versions and expected rates",
                        description="One line per registered target function. With --json: {\"functions\": [...]}, "
                                    "each with name, version, d, domain, gamma_theory, params, doc.")
    add_plugin_arg(p, help="a Python file that registers extra target functions, listed too; repeatable")
    add_json_arg(p)
    p.set_defaults(func=cmd_functions_list)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="htmc", description="Measure circuit-size rates and ResNet norms (Jacot, arXiv 2511.20888).")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    _add_circuit_commands(sub)
    _add_functions_command(sub)
    from jobs.analyze_cli import add_analyze_command
    from jobs.nightly_cli import add_nightly_command
    from jobs.resnet_cli import add_resnet_commands
    from jobs.store_cli import add_store_commands
    from jobs.sweep_cli import add_sweep_commands
    add_resnet_commands(sub)
    add_sweep_commands(sub)
    add_nightly_command(sub)
    add_analyze_command(sub)
    add_store_commands(sub)
    parser.set_defaults(plugin=None)       # for the commands without --plugin (load_plugins reads it)
    return parser


class _Version(argparse.Action):
    """`htmc --version`: the package version and the git sha of the checkout (computed only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the package version and git sha, and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from cluster.provenance import git_sha, versions
        print(f"htmc {versions()['htmc_version'] or 'unknown (not installed)'} "
              f"(git {git_sha() or 'unknown: not a git checkout'})")
        parser.exit(0)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error convention: one line `htmc: error: ...` (with a did-you-mean for a
    mistyped command or choice), exit status 2, instead of the usage block. Subparsers inherit the class."""

    def error(self, message):
        import re
        from htmc.registry import did_you_mean
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            message = message[:m.start()] + f"invalid choice '{m.group(1)}': {did_you_mean(m.group(1), choices)}"
        command = self.prog.split(" ", 1)[1] + " " if " " in self.prog else ""
        self.exit(2, f"htmc: error: {message} (see `htmc {command}--help`)\n")


MAX_LADDER_STEPS = 40   # eps0·2^-39 is far below what any input resolution reaches


def _finite(args, name: str, *, lo: float, strict: bool, flag: str | None = None) -> None:
    import math
    v = getattr(args, name, None)
    if v is None:
        return
    flag = flag or "--" + name.replace("_", "-")
    if not math.isfinite(v) or (v <= lo if strict else v < lo):
        raise ValueError(f"{flag} must be {'>' if strict else '>='} {lo:g} and finite, got {v!r}")


def _out_path(args, name: str, flag: str) -> None:
    v = getattr(args, name, None)
    if not v:
        return
    p = Path(v)
    if p.is_dir():
        raise ValueError(f"{flag} '{v}' is a directory; give a file name")
    if not p.resolve().parent.is_dir():
        raise FileNotFoundError(f"{flag} '{v}': the directory '{p.parent}' does not exist")


def check_args(args) -> None:
    """Range and path checks for every command, before any work starts (and so before anything is written)."""
    group, action = getattr(args, "group", None), getattr(args, "action", None)
    for name, lo, strict in (("budget_s", 0, True), ("deepsyn_s", 0, False), ("eps", 0, False),
                             ("eps0", 0, True), ("compile_budget_s", 0, True), ("num_cpus", 0, True),
                             ("num_gpus", 0, False), ("timeout_s", 0, True)):
        _finite(args, name, lo=lo, strict=strict)
    if getattr(args, "bits", None) is not None and args.bits < 1:
        raise ValueError(f"--bits must be >= 1 (input bits per coordinate), got {args.bits}")
    if getattr(args, "max_units", None) is not None and args.max_units < 1:
        raise ValueError(f"--max-units must be an integer >= 1, got {args.max_units!r}")
    if group == "circuit" and action == "ladder" and not 2 <= args.steps <= MAX_LADDER_STEPS:
        raise ValueError(f"a ladder needs --steps >= 2 to fit a rate and at most {MAX_LADDER_STEPS}, "
                         f"got {args.steps}")
    if getattr(args, "methods", None) is not None and not [m for m in args.methods.split(",") if m.strip()]:
        raise ValueError(f"--methods is empty: give at least one of {', '.join(SCHEDULE)}, or leave it out")
    _out_path(args, "save", "--save")
    _out_path(args, "save_params", "--save-params")
    _out_path(args, "plot", "--plot")
    wd = getattr(args, "working_dir", None)
    if group == "sweep" and wd is not None and not Path(wd).is_dir():
        raise FileNotFoundError(f"--working-dir '{wd}' is not an existing directory")
    if group == "sweep" and action == "run":
        import os
        address = args.ray_address or os.environ.get("RAY_ADDRESS")
        if address:
            from cluster.dispatch.raysetup import probe_address
            try:
                probe_address(address)
            except ConnectionError as e:
                raise ValueError(f"cannot connect to Ray: {e}") from None
    results = getattr(args, "results", None)
    readonly = group == "analyze" or (group == "sweep" and action in ("status", "sync-mlflow"))
    if readonly and results and "://" not in results and not Path(results).exists():
        raise FileNotFoundError(f"--results '{results}' does not exist (nothing has run there, or a typo)")


def load_plugins(args) -> None:
    """Import the --plugin files the user named (they register target functions, norms or task kinds; README):
    the one place where this project loads code by path. Every entry point calls it before its command runs."""
    from htmc.registry import load_plugin
    for plugin in args.plugin or []:
        load_plugin(plugin)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
        load_plugins(args)
        return args.func(args)
    except USER_ERRORS as e:
        return user_error(e)
    except BrokenPipeError:  # `htmc functions list | head`: the reader left; no traceback, and no second error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # when Python flushes stdout at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())

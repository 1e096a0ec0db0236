"""`htmc resnet fit`: minimum-norm nets fitted to every rung of a ladder and compiled to their own circuits
(issue 21 A). Thin: the science is htmc.resnets.fit; the checks are the resnet_fit task kind's, so the command
and a sweep reject the same input with the same words. jobs/resnet_cli.py's add_resnet_commands registers it."""
from __future__ import annotations

import json
import sys

from jobs.common import add_function_args, add_json_arg, parse_params

# htmc.resnets.fit.OBJECTIVES, written out so that building the parser does not import scipy's LP solver (0.6 s
# on every `htmc` command); tests/test_fit.py checks that the two agree.
OBJECTIVES = ("block_path", "l1")


def _rung_params(args, rung: int) -> dict:
    return {"function": args.function, "function_params": parse_params(args.param), "eps0": args.eps0,
            "rung": rung, "norm": args.norm, "seed": args.seed, "budget_s": args.budget_s,
            "compile_budget_s": args.compile_budget_s, "max_inputs": args.max_inputs,
            "max_units": args.max_units}


def cmd_resnet_fit(args) -> int:
    from htmc.tasks import TASK_KINDS
    if not isinstance(args.steps, int) or args.steps < 1:
        raise ValueError(f"--steps must be an integer >= 1, got {args.steps!r}")
    kind = TASK_KINDS.get("resnet_fit")
    params = [kind.validate(_rung_params(args, j)) for j in range(args.steps)]   # every rung checked first
    rungs = []
    for p in params:
        row = kind.run(p).to_row()
        point = {"eps": row["eps"], "verified": row["met"], "max_error": row["max_error"], "gates": row["gates"],
                 "norms": {k[5:]: v for k, v in row.items() if k.startswith("norm_") and not k.endswith("_version")},
                 "seconds": (row["fit_seconds"] or 0.0) + (row["compile_seconds"] or 0.0),
                 "k": row["k"], "units": row.get("units"), "reason": row["reason"]}
        rungs.append(point)
        if not args.json:
            nu = point["norms"].get(args.norm)
            print(f"rung {p['rung']}: eps={point['eps']:.6g} " + (
                f"met, {args.norm}={nu:.6g}, {point['units']} units, k={point['k']}, gates={point['gates']}, "
                f"max_error={point['max_error']:.6g}" if point["verified"] else f"not met: {point['reason']}")
                + f" ({point['seconds']:.1f} s)", file=sys.stderr, flush=True)
    out = {"function": params[0]["function"], "function_params": params[0]["function_params"], "norm": args.norm,
           "rungs": rungs, "coverage": sum(r["verified"] for r in rungs) / len(rungs)}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"coverage {out['coverage']:.3g} ({sum(r['verified'] for r in rungs)} of {len(rungs)} rungs)")
    return 0


def add_fit_command(rsub) -> None:
    """`resnet fit` under the `resnet` subparsers."""
    p = rsub.add_parser(
        "fit", help="fit a minimum-norm ResNet to every rung of a ladder and compile each to its own circuit",
        description="For eps_j = eps0 * 2^-j, j < steps: the one-block ResNet that meets eps_j on the verifier's "
                    "interval constraints (every cell's midpoint within [hi - eps, lo + eps]) with the least norm "
                    "the linear program finds, compiled and verified within eps_j (docs/fitting.md). JSON keys: "
                    "function, function_params, norm, rungs [{eps, verified, max_error, gates, norms, seconds, k, "
                    "units, reason}], coverage (rungs met / rungs).")
    add_function_args(p)
    p.add_argument("--eps0", type=float, required=True, help="the coarsest rung's eps")
    p.add_argument("--steps", type=int, required=True, help="number of rungs (eps0 * 2^-j, j < steps)")
    p.add_argument("--norm", default="block_path", choices=OBJECTIVES,
                   help="the norm the fit minimizes (default block_path); every registered norm is reported")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit's random choices (default 0)")
    p.add_argument("--budget-s", type=float, metavar="SECONDS", default=30.0,
                   help="fitting budget per rung in seconds (default 30)")
    p.add_argument("--compile-budget-s", type=float, metavar="SECONDS", default=30.0,
                   help="compile budget per rung in seconds (default 30)")
    p.add_argument("--max-inputs", type=int, metavar="N", default=16,
                   help="cap on the input bits d*k of a rung's circuit (default 16; d = 2 rungs at k = 9 or 10 "
                        "need --max-inputs 20)")
    p.add_argument("--max-units", type=int, metavar="N", default=4096,
                   help="cap on a rung's ReLU units (default 4096). The d = 2 rungs past k = 7 are fitted in two "
                        "stages and take up to 12,000 units: give them --max-units 16384 and --budget-s 600 "
                        "(docs/fitting.md)")
    add_json_arg(p)
    p.set_defaults(func=cmd_resnet_fit)

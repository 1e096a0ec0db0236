"""`htmc resnet train`: argparse wiring and handler. Thin: training is htmc.resnets.training, compiling is
htmc.resnets.compile_ladder.compile_at (the path of the resnet_compile task as well; resnet_fit compiles at the
resolution it fitted, through the same bit_search.compile_search).

jobs/cli.py's build_parser calls add_resnet_commands(sub). The handler raises ValueError / KeyError for user
errors (jobs/cli.py prints `htmc: error: ...` and exits 2).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from htmc.resnets.to_circuit import MAX_INPUTS
from jobs.common import add_function_args, emit, JSON_HELP, target_from_args

# The choices of --reg and --dtype: htmc.resnets.training's REGS and DTYPES, written out so that building the parser
# does not import torch (tests/test_help_tree.py checks they agree).
REGS = ("l1", "block_path")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", *(f"cuda:{i}" for i in range(16)))
MAX_COMPILE_INPUTS = 20   # exhaustive verification of 2^(d k) codes; the default k keeps d k <= 16


def _check_args(args) -> None:
    """Fail fast, before any training, on arguments that would only fail later."""
    if args.compile_eps is not None and not (math.isfinite(args.compile_eps) and args.compile_eps > 0):
        raise ValueError(f"--compile-eps must be a finite number > 0, got {args.compile_eps!r}")
    if args.compile_bits is not None and args.compile_bits < 1:
        raise ValueError(f"--compile-bits must be >= 1, got {args.compile_bits}")
    if args.compile_bits is not None and args.compile_eps is None:
        raise ValueError("--compile-bits only applies with --compile-eps")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    dev = str(args.device)
    if dev != "cpu" and not dev.startswith("cuda"):
        raise ValueError(f"--device must be 'cpu' or 'cuda' (or 'cuda:N'), got {dev!r}")
    if dev.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ValueError(f"--device {dev} requested but no CUDA GPU is available here (torch {torch.__version__}, "
                             f"CUDA build {torch.version.cuda}); use --device cpu")


def cmd_resnet_train(args) -> int:
    import torch

    from htmc.resnets.training import train_one, TrainConfig
    _check_args(args)
    target = target_from_args(args)
    config = TrainConfig(width=args.width, depth=args.depth, rank=args.rank, lam=args.lam, reg=args.reg,
                         steps=args.steps, lr=args.lr, seed=args.seed, n_train=args.n_train, d=target.d,
                         device=args.device, dtype=args.dtype)
    k = args.compile_bits
    if k is not None and target.d * k > MAX_COMPILE_INPUTS:
        raise ValueError(f"--compile-bits {k} gives d*k = {target.d * k} input bits; exhaustive verification "
                         f"allows at most {MAX_COMPILE_INPUTS}")
    if args.device == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    result = train_one(target, config)
    payload = {"function": target.name, "function_version": target.version, "function_params": target.params,
               "status": result.status, "error": result.error or None, "sup_error": result.sup_error,
               "rms_error": result.rms_error, "train_mse": result.train_mse, "norms": result.norms,
               "norm_versions": result.norm_versions, "nnz": result.nnz, "n_params": result.n_params,
               "steps": result.steps, "seconds": result.seconds, "device": result.device,
               "width": args.width, "depth": args.depth, "rank": args.rank, "lam": args.lam, "reg": args.reg,
               "lr": args.lr, "seed": args.seed}
    code = 0 if result.status == "ok" else 1
    if args.save_params and result.params:
        Path(args.save_params).write_text(json.dumps({name: v.tolist() for name, v in result.params.items()},
                                                     sort_keys=True))
    if args.compile_eps is not None:
        payload.update(_compile(args, target, result))
        if payload["compiled_gates"] is None:
            code = 1
    if args.json:
        print(json.dumps(payload, sort_keys=True))
    else:
        emit({k: v for k, v in payload.items() if k not in ("norm_versions", "compiled_tried")}, False)
    return code


def _compile(args, target, result) -> dict:
    """The net's own circuit at --compile-eps by compile_at, the resnet_compile task's path (one resolution rule)."""
    from htmc.resnets.compile_ladder import compile_at
    out = {"compiled_gates": None, "compiled_aig_nodes": None, "compiled_bits": None, "compiled_max_error": None,
           "compiled_float_error": None, "compiled_eps": args.compile_eps, "compiled_reason": None,
           "compiled_seconds": None, "compiled_tried": None}
    if result.status != "ok":
        out["compiled_reason"] = "training failed; nothing to compile"
        return out
    res = compile_at(result.params, target, args.compile_eps, budget_s=args.compile_budget_s,
                     k=args.compile_bits, max_inputs=MAX_COMPILE_INPUTS if args.compile_bits else MAX_INPUTS,
                     keep_circuit=True)
    out.update({"compiled_gates": res["gates"], "compiled_aig_nodes": res["aig_nodes"],
                "compiled_bits": {"w_bits": res["w_bits"], "a_bits": res["a_bits"], "k": res["k"]},
                "compiled_max_error": res["max_error"], "compiled_float_error": res["float_error"],
                "compiled_reason": res["reason"] or None, "compiled_seconds": res["seconds"],
                "compiled_tried": res["tried"]})
    if args.save and res["circuit"] is not None:
        from htmc.circuits.blif import write_blif
        Path(args.save).write_text(write_blif(res["circuit"]))
    return out


def add_resnet_commands(subparsers) -> None:
    """Add `resnet train` to the top-level subparsers of jobs/cli.py's build_parser."""
    rn = subparsers.add_parser("resnet", help="train ResNets with weighted-l1 regularization; compile to circuits")
    rsub = rn.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = rsub.add_parser(
        "train", help="train one ResNet on a target function, record its norms, optionally compile it",
        description="Train h_{l+1} = h_l + A_l relu(B_l h_l + c_l) (DESIGN §2.4) by Adam on the MSE plus a "
                    "proximal lam*R step, R in {l1, block_path}. Reports the sup and RMS error on the "
                    "verification grid, every registered norm and the nonzeros; --save-params writes the trained "
                    "weights. With --compile-eps, also the fewest-gate verified circuit of the quantized net "
                    "(htmc.resnets.to_circuit). JSON keys: function, function_version, function_params, status, error, "
                    "sup_error, rms_error, train_mse, norms, norm_versions, nnz, n_params, steps, seconds, device "
                    "and the arguments width, depth, rank, lam, reg, lr, seed; with --compile-eps also "
                    "compiled_gates, compiled_aig_nodes, compiled_bits {w_bits, a_bits, k}, compiled_max_error, "
                    "compiled_float_error, compiled_eps, compiled_seconds, compiled_tried and compiled_reason "
                    "(why compiled_gates is null).")
    add_function_args(p, plugin_help="a Python file that registers extra target functions or norms (docs/SEARCH.md); "
                                     "repeatable")
    p.add_argument("--width", type=int, required=True, help="residual stream width w")
    p.add_argument("--depth", type=int, required=True, help="number of residual blocks L")
    p.add_argument("--rank", type=int, required=True, help="hidden units per block r")
    p.add_argument("--lam", type=float, required=True, help="regularization strength lambda (>= 0)")
    p.add_argument("--reg", default="l1", choices=REGS, help="the regularizer R (default l1)")
    p.add_argument("--steps", type=int, default=1000, help="Adam steps (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialization and training points")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--n-train", type=int, default=1000, help="training points (full batch; default 1000)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="floating-point type (default float32)")
    p.add_argument("--device", default="cpu", choices=DEVICES, metavar="{cpu,cuda,cuda:N}",
                   help="where to train (default cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: these nets are tiny and extra threads only spin)")
    p.add_argument("--compile-eps", type=float, help="also compile the net to a circuit verified within this eps")
    p.add_argument("--compile-bits", type=int, metavar="K",
                   help="input bits per coordinate for compiling (default: compile_ladder's choice, as in the "
                        "resnet_compile task: the two smallest k, d*k <= 16, at which the float net uses at most "
                        "0.9 of eps; the fewer gates wins)")
    p.add_argument("--compile-budget-s", type=float, default=60, help="time budget of the bit search (default 60)")
    p.add_argument("--save", metavar="OUT.blif", help="write the compiled circuit as BLIF")
    p.add_argument("--save-params", metavar="FILE.json",
                   help="write the trained weights as one JSON object: name -> nested lists (W_in, b_in, A, B, c, "
                        "W_out, b_out; A and B stacked over the blocks)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_resnet_train)
    from jobs.fit_cli import add_fit_command
    add_fit_command(rsub)   # `resnet fit` (issue 21 A)

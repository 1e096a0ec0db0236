"""Batched vs one-after-another training of many small ResNets (DESIGN §2.4 "Batched training", §6 throughput).

Trains the same B nets (seeds 0..B-1, λ cycling over a few values, target sin(2πx)) twice in one run:
  sequential  htmc.resnets.training.train_one for each net, one after another;
  batched     htmc.resnets.training.train_batch on all B nets at once;
and prints models·steps/s for each and their ratio, plus how far the two runs' results are apart.

    python benchmarks/batched_training.py                      # B=64, w=32, L=4, r=32, 1000 points, 100 steps
    python benchmarks/batched_training.py --device cuda --steps 500
    python benchmarks/batched_training.py --width 8 --rank 8 --n-train 256   # small nets: overhead-bound

Timing includes everything a caller pays for (data, init, training, verification grid, norms), measured after
one warm-up run. Both wall and process CPU seconds are reported: on a shared machine the wall clock also counts
time other processes held the cores, so CPU seconds compare the two modes more fairly.

Threads default to 1: these matrices are too small for intra-op parallelism to pay, and with more threads than
free cores OpenMP's barrier spinning makes every op many times slower; a sweep runs one single-threaded worker
per core instead. Use --threads to try otherwise.

What to expect: batching removes per-op overhead (Python, dispatcher, autograd bookkeeping: ~100 ops per step),
not arithmetic. A CPU core does one net's w=32, r=32, N=1000 step (~48 MFLOP of small matrix products) in ~3 ms
whether nets come one at a time or 64 at once, so the gain there is small; for small nets (e.g. --width 8
--rank 8 --n-train 256) overhead dominates and batching gains much more. On a GPU one net is launch-bound and
batching gains the most.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from htmc.resnets.training import train_batch, train_one, TrainConfig  # noqa: E402


def sin2pi(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * x[:, 0])


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# FP32 peaks without tensor cores (TFLOP/s), from the vendors' data sheets; training here runs in float32.
KNOWN_PEAKS = {"H100 80GB HBM3": 67.0, "H100 SXM": 67.0, "H100 PCIe": 51.0, "H200": 67.0, "A100": 19.5}


def flop_figures(args, work: int, seconds: float) -> dict:
    """Matrix FLOPs per net-step (forward 2·N·(d·w + L·2·w·r + w), training ≈ 3× forward) and the rate reached."""
    d = 1
    fwd = 2 * args.n_train * (d * args.width + args.depth * 2 * args.width * args.rank + args.width)
    per_step = 3 * fwd
    tflops = per_step * work / seconds / 1e12
    peak = args.peak_tflops
    if peak is None and str(args.device).startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in KNOWN_PEAKS.items() if k in name), None)
    return {"flop_per_net_step": per_step, "batched_tflops": tflops, "peak_tflops": peak,
            "fraction_of_peak": tflops / peak if peak else None}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--batch", type=int, default=64, help="number of nets B (default 64)")
    ap.add_argument("--steps", type=int, default=100, help="training steps per net (default 100)")
    ap.add_argument("--width", type=int, default=32, help="residual width w (default 32)")
    ap.add_argument("--depth", type=int, default=4, help="number of blocks L (default 4)")
    ap.add_argument("--rank", type=int, default=32, help="block rank r (default 32)")
    ap.add_argument("--n-train", type=int, default=1000, help="training points per net, full batch (default 1000)")
    ap.add_argument("--reg", default="l1", help="l1 or block_path (default l1)")
    ap.add_argument("--threads", type=int, default=1,
                    help=f"torch intra-op threads (default 1; this process may use {usable_cpus()} CPUs)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's peak FLOP/s in TFLOP/s for the dtype used, to report the fraction reached "
                         "(default: a known card's FP32 non-tensor-core peak, e.g. H100 SXM 67, else none)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    threads = args.threads
    torch.set_num_threads(threads)
    lams = [1e-4, 3e-4, 1e-3, 3e-3]  # different λ per net: the batch is a small sweep, as in real use
    configs = [TrainConfig(width=args.width, depth=args.depth, rank=args.rank, lam=lams[i % len(lams)],
                           reg=args.reg, steps=args.steps, lr=1e-3, seed=i, n_train=args.n_train,
                           device=args.device) for i in range(args.batch)]
    targets = [sin2pi] * args.batch

    # Warm-up: allocator, BLAS and (on GPU) CUDA context, so neither timed run pays for them.
    train_batch(targets[:2], [TrainConfig(**{**c.__dict__, "steps": 5}) for c in configs[:2]])

    t0, c0 = time.perf_counter(), time.process_time()
    seq = [train_one(t, c) for t, c in zip(targets, configs)]
    t_seq, c_seq = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    bat = train_batch(targets, configs)
    t_bat, c_bat = time.perf_counter() - t0, time.process_time() - c0

    work = args.batch * args.steps
    ok = [i for i in range(args.batch) if seq[i].status == bat[i].status == "ok"]
    diff = max((abs(seq[i].sup_error - bat[i].sup_error) for i in ok), default=float("nan"))
    res = {"device": bat[0].device, "threads": threads, "torch": torch.__version__, "machine": platform.machine(),
           "B": args.batch, "steps": args.steps, "width": args.width, "depth": args.depth, "rank": args.rank,
           "n_train": args.n_train, "sequential_s": t_seq, "batched_s": t_bat,
           "sequential_models_steps_per_s": work / t_seq, "batched_models_steps_per_s": work / t_bat,
           "ratio": t_seq / t_bat, "sequential_cpu_s": c_seq, "batched_cpu_s": c_bat, "cpu_ratio": c_seq / c_bat,
           "usable_cpus": usable_cpus(), "max_sup_error_diff": diff, "ok_nets": len(ok)}

    print(f"device {res['device']}, torch {res['torch']}, threads {threads}, B={args.batch}, steps={args.steps}, "
          f"w={args.width}, L={args.depth}, r={args.rank}, N={args.n_train}")
    print(f"{'mode':<12}{'wall s':>9}{'models·steps/s':>16}{'ratio':>7}{'CPU s':>9}{'models·steps/CPU s':>20}"
          f"{'ratio':>7}")
    for name, t, c in (("sequential", t_seq, c_seq), ("batched", t_bat, c_bat)):
        print(f"{name:<12}{t:>9.2f}{work / t:>16.1f}{t_seq / t:>7.2f}{c:>9.2f}{work / c:>20.1f}{c_seq / c:>7.2f}")
    print(f"nets ok in both: {len(ok)}/{args.batch}; max |sup_error sequential - batched| = {diff:.2e}")
    res.update(flop_figures(args, work, t_bat))
    print(f"batched: {res['batched_tflops']:.3f} TFLOP/s of matrix work (≈{res['flop_per_net_step'] / 1e6:.1f} MFLOP "
          f"per net-step)" + (f", {100 * res['fraction_of_peak']:.2f}% of the {res['peak_tflops']:g} TFLOP/s peak"
                              if res["peak_tflops"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()

"""Compile speed and quality of trained nets (issue 14 A): one (net, ε) at a time, the size the issue names.

Trains w16 L2 r8 nets on sin along a λ path (one thread), then compiles each at every rung of a ladder with
htmc.resnets.compile_ladder (what the resnet_compile task runs), and prints per (net, ε): seconds, gates, bits,
the resolution k and the verified error. Target: <= 3 s per (net, ε).
    python benchmarks/compile.py [--steps 2000] [--eps0 0.2] [--rungs 4] [--lams 1e-5 1e-4 7e-4]
"""
import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eps0", type=float, default=0.2)
    ap.add_argument("--rungs", type=int, default=4)
    ap.add_argument("--lams", type=float, nargs="+", default=[1e-5, 1e-4, 7e-4])
    ap.add_argument("--budget-s", type=float, default=20.0)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from htmc.rates.ladder import ladder_eps
    from htmc.resnets.compile_ladder import compile_ladder
    from htmc.resnets.training import TrainConfig, train_batch
    from htmc.targets import make_function
    target = make_function("sin")
    cfgs = [TrainConfig(width=16, depth=2, rank=8, lam=lam, reg="block_path", steps=args.steps, n_train=512,
                        lr=0.01, seed=0, d=1) for lam in args.lams]
    nets = train_batch([target] * len(cfgs), cfgs)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; sin, w16 L2 r8, {args.steps} steps")
    print(f"{'lam':>8} {'nnz':>5} {'sup err':>8} {'eps':>7} {'k':>3} {'bits w,a':>8} {'gates':>6} "
          f"{'max err':>8} {'s':>6}")
    times = []
    for c, r in zip(cfgs, nets):
        for p in compile_ladder(r.params, target, ladder_eps(args.eps0, args.rungs), budget_s=args.budget_s):
            t = p.get("seconds")
            if p.get("verified"):
                times.append(t)
            bits = f"{p['w_bits']},{p['a_bits']}" if p.get("verified") else "-"
            print(f"{c.lam:>8.1e} {r.nnz:>5} {r.sup_error:>8.4f} {p['eps']:>7.4f} {p.get('k') or '-':>3} {bits:>8} "
                  f"{p.get('gates') or '-':>6} {p.get('max_error') or float('nan'):>8.4f} "
                  f"{t if t is not None else float('nan'):>6.2f}")
    if times:
        print(f"compiled (net, eps): {len(times)}; seconds median {statistics.median(times):.2f}, max {max(times):.2f}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")

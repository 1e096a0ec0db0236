"""holder_random ladders past 16 input bits (issue 15): C̄(f, eps_j) for eps_j = eps0 2^-j in d = 2 and 3, with the
methods that take up to 24 input bits, and the fitted rate against theory's d/s (DESIGN §2.3, §2.5).

The ladders are the tasks of sweeps/holder2d.yaml (one source for both), so the table is either

    .venv/bin/python benchmarks/holder_ladders.py --store ./results      # tabulate a finished holder2d sweep
    .venv/bin/python benchmarks/holder_ladders.py --only 2,1.0 --seeds 0 # or run ladders here, without the service

One row per ladder: d, s, seed, rungs fitted, gamma-hat (and the model the fit preferred), its interval, d/s,
the rates the fitted rungs' input bits alone imply (table 2^n and Shannon's 2^n/n, htmc.rates.fits.
resolution_rates: what gamma-hat is up against at these sizes), seconds, the gates and the input bits of every rung.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from htmc.rates.fits import resolution_rates

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "holder2d.yaml"


def spec_tasks(spec_path: Path, only: tuple[float, float] | None, seeds: set[int] | None) -> list:
    from cluster.spec.parse import load_spec
    tasks = [t for t in load_spec(spec_path).plan.tasks if t.kind == "circuit_ladder"]
    fp = lambda t: t.params["function_params"]
    return [t for t in tasks if (only is None or (fp(t)["d"], fp(t)["s"]) == only)
            and (seeds is None or fp(t)["seed"] in seeds)]


def run_here(task) -> dict:
    """The task's own code path (htmc.tasks), without Ray: the same record the service would store."""
    from htmc.tasks import TASK_KINDS
    t0 = time.monotonic()
    rec = TASK_KINDS.get("circuit_ladder").run(task.params)
    return {**rec.to_row(), "wall_seconds": time.monotonic() - t0}


def from_store(store: str, spec_path: Path, tasks: list) -> dict[str, dict]:
    from cluster.spec.parse import load_spec
    from cluster.store.core import load_records
    spec = load_spec(spec_path, results=store)
    tab = load_records(spec.results, spec.name, "circuit_ladder").to_pylist()
    rows = {r["task_key"]: r for r in tab if r.get("status") == "ok"}
    return {t.key: rows[t.key] for t in tasks if t.key in rows}


def table_row(task, rec: dict) -> str:
    fp = task.params["function_params"]
    fit = json.loads(rec.get("fit_json") or "{}")
    pts = json.loads(rec.get("points_json") or "[]")
    ci = fit.get("gamma_ci")
    g = "n/a" if rec.get("gamma") is None else f"{rec['gamma']:.2f} ({rec.get('preferred_model')})"
    used = [p for p, keep in zip(pts, fit.get("kept") or []) if keep]
    res = "n/a" if len(used) < 2 else "{table:.2f} / {shannon:.2f}".format(
        **resolution_rates([p["eps"] for p in used], [p["bits_in"] for p in used]))
    secs = rec.get("wall_seconds") or rec.get("wall_s") or sum(p.get("search_seconds") or 0 for p in pts)
    return (f"| {fp['d']} | {fp['s']} | {fp['seed']} | {fit.get('n_used', 0)} | {g} | "
            f"{'n/a' if not ci else f'[{ci[0]:.2f}, {ci[1]:.2f}]'} | {fp['d'] / fp['s']:.2f} | {res} | {secs:.0f} | "
            f"{', '.join(str(p['gates']) for p in pts)} | {', '.join(str(p['bits_in']) for p in pts)} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=SPEC, help="sweep spec whose circuit_ladder tasks to use")
    ap.add_argument("--store", default=None, help="results location of a finished run of the spec: tabulate it")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    ap.add_argument("--only", default=None, help="d,s: one configuration")
    args = ap.parse_args(argv)
    only = tuple(map(float, args.only.split(","))) if args.only else None
    seeds = set(map(int, args.seeds.split(","))) if args.seeds else None
    tasks = spec_tasks(args.spec, only, seeds)
    if not tasks:
        sys.exit(f"no circuit_ladder task of {args.spec} matches --only {args.only} --seeds {args.seeds}")
    done = from_store(args.store, args.spec, tasks) if args.store else {}
    print("| d | s | seed | rungs fitted | gamma-hat (model) | interval | d/s | table / Shannon rate | seconds "
          "| gates per rung | input bits |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in tasks:
        if args.store and t.key not in done:
            print(f"# {t.group} {t.params['function_params']}: no ok record in {args.store}", file=sys.stderr)
            continue
        print(table_row(t, done[t.key] if args.store else run_here(t)), flush=True)


if __name__ == "__main__":
    main()

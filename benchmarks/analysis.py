"""Aggregation throughput: analysis.aggregate.summarize over 1,000,000 synthetic records with the store's schema.

Issue 6 target: aggregating 1,000,000 records takes under 10 s here. "Aggregating" is summarize(): function
identities, C̄ merged per function and refit, every net joined to its function's C̄, the norm ranking, and the
convexity and phase tables. Writing the tables and drawing the plots are timed separately (--report).

    python benchmarks/analysis.py [--records 1000000] [--scenario typical|worst|both] [--report] [--repeats 2]

Scenarios (analysis/synthetic.py): typical = one ladder per function (the stored fit is reused unless other
records change its points), searches on 100 functions (refit), ~94% trained nets; worst = 20 ladders and many
searches per function, so every one of the 1,000 functions is refit (htmc.rates.fits.fit_ladder, ~2-8 ms each here).
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

from analysis.aggregate import summarize, write_summary  # noqa: E402
from analysis.report import build_report  # noqa: E402
from analysis.synthetic import synthetic_records  # noqa: E402

TARGET_S = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--scenario", choices=["typical", "worst", "both"], default="both")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="also time write_summary and build_report (plots, HTML)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"pyarrow {pa.__version__}, python {platform.python_version()}")
    scenarios = ["typical", "worst"] if args.scenario == "both" else [args.scenario]
    for sc in scenarios:
        t0 = time.perf_counter()
        table = synthetic_records(args.records, scenario=sc)
        print(f"\n[{sc}] {table.num_rows:,} records, {table.nbytes / 1e6:.0f} MB in memory "
              f"(generated in {time.perf_counter() - t0:.0f} s, not timed)")
        best, timings = None, None
        for r in range(args.repeats):
            load = os.getloadavg()[0]
            t = time.perf_counter()
            s = summarize(table)
            dt = time.perf_counter() - t
            print(f"  summarize run {r + 1}: {dt:6.2f} s   (load average {load:.1f})")
            if best is None or dt < best:
                best, timings, summ = dt, s.timings, s
        refits = int((summ.functions["fit_source"] == "refit").sum())
        print(f"  functions {len(summ.functions):,} ({refits:,} refit, {len(summ.functions) - refits:,} stored fits "
              f"reused), nets {len(summ.nets):,}, C̄ points {len(summ.points):,}")
        print("  stages (best run): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
        print(f"  best {best:.2f} s vs target {TARGET_S:.0f} s: {'met' if best < TARGET_S else 'NOT met'}")
        if args.report:
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                write_summary(summ, tmp)
                w = time.perf_counter() - t
                t = time.perf_counter()
                res = build_report(table, Path(tmp) / "report", title=f"synthetic {sc}")
                b = time.perf_counter() - t
                print(f"  write_summary {w:.2f} s; build_report (summarize + tables + 5 plots + HTML) {b:.2f} s; "
                      f"plots: " + ", ".join(f"{k} {v.n_points:,} pts" for k, v in res.plots.items()))
        del table


if __name__ == "__main__":
    main()

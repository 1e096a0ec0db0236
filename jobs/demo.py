"""`make demo`: the demo sweep on the embedded defaults, then its analysis.

Local Ray (in process, 127.0.0.1), MLflow on sqlite:///mlflow.db, results in ./results, the report in
./reports/demo. A second run finds every task done and only redraws the report.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_SPEC = "sweeps/demo.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=DEMO_SPEC, help=f"sweep spec (default {DEMO_SPEC})")
    args = ap.parse_args(argv)
    from jobs.analyze_cli import analyze
    from jobs.sweep import main as sweep_main

    t0 = time.perf_counter()
    print(f"== 1/2  sweep {args.spec} (local Ray, results in ./results, MLflow in sqlite:///mlflow.db)")
    rc = sweep_main([args.spec])
    if rc != 0:
        print(f"htmc: the sweep exited with status {rc}", file=sys.stderr)
        return rc
    print("== 2/2  analysis")
    report = analyze(args.spec)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    print(f"report:         {report.report.resolve()}")
    for name, path in report.paths.items():
        if "phase" in name:
            print(f"phase diagram:  {Path(path).resolve()}")
    if report.missing:
        print("missing:        " + "; ".join(report.missing))
    print("MLflow UI:      .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  (then http://127.0.0.1:5000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

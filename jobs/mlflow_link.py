"""`python -m jobs.mlflow_link [SPEC]`: print the MLflow UI link to the sweep's runs page (`make ui` runs it).

Thin: cluster/tracking/links.py reads the experiment id from the spec's tracking store (it writes nothing)."""
from __future__ import annotations

import argparse
import sys

from jobs.common import spec_from_args
from jobs.errors import USER_ERRORS, user_error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobs.mlflow_link", description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default="sweeps/demo.yaml", help="sweep spec (default sweeps/demo.yaml)")
    ap.add_argument("--tracking-uri", metavar="URI", help="override tracking.uri (MLflow), e.g. sqlite:///mlflow.db")
    ap.add_argument("--ui", default=None, metavar="URL", help="the MLflow UI's address (default http://127.0.0.1:5000)")
    args = ap.parse_args(argv)
    from cluster.spec.redact import redact_uri
    from cluster.tracking.links import UI, sweep_runs_link
    try:
        spec = spec_from_args(args, validate_tasks=False)
        link = sweep_runs_link(spec, args.ui or UI, args.tracking_uri)
    except USER_ERRORS as e:
        return user_error(e)
    if link is None:
        print(f"MLflow: no experiment '{spec.experiment}' at {redact_uri(spec.tracking.uri)} yet (run the sweep "
              f"first)")
    else:
        print(f"MLflow runs of sweep '{spec.name}': {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

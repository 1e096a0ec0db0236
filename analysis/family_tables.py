"""Tables over target families, from the functions table: the convexity table (mixtures of m parts against their
parts' theoretical γ) and the phase table (γ̂ over two parameters of one family). No ray/mlflow/boto3."""
from __future__ import annotations

import functools
import json
import math

import pandas as pd

PHASE_DEFAULT = ("holder_random", "s", "d")


@functools.lru_cache(maxsize=4096)
def theory_gamma(part_json: str) -> float | None:
    """The theory's gamma of a target given as JSON {"name": family, **params} (None if unknown or none)."""
    try:
        from htmc.targets import make_function
        part = json.loads(part_json)
        g = make_function(part["name"], **{k: v for k, v in part.items() if k != "name"}).gamma_theory
        return None if g is None else float(g)
    except Exception:  # noqa: BLE001  an unknown or plugin family: no theory value
        return None


def convexity_table(functions: pd.DataFrame) -> pd.DataFrame:
    cols = ["function_key", "label", "m", "part_family", "part_gamma_theory", "gamma", "gamma_lo", "gamma_hi",
            "preferred_model", "n_records", "n_points", "n_used"]
    mix = functions[functions["function"] == "mixture"] if len(functions) else functions
    rows = []
    for _, f in mix.iterrows():
        try:
            parts = json.loads(f["function_params"]).get("parts") or []
        except (TypeError, ValueError, AttributeError):
            parts = []
        names = sorted({p.get("name") for p in parts if isinstance(p, dict)})
        pg = [theory_gamma(json.dumps(p, sort_keys=True)) for p in parts if isinstance(p, dict)]
        pg = [g for g in pg if g is not None]
        rows.append({"function_key": f["function_key"], "label": f["label"], "m": len(parts),
                     "part_family": names[0] if len(names) == 1 else "+".join(names),
                     "part_gamma_theory": max(pg) if pg else f["gamma_theory"], "gamma": f["gamma"],
                     "gamma_lo": f["gamma_lo"], "gamma_hi": f["gamma_hi"], "preferred_model": f["preferred_model"],
                     "n_records": f["n_records"], "n_points": f["n_points"], "n_used": f["n_used"]})
    df = pd.DataFrame(rows, columns=cols)
    for c in ("m", "part_gamma_theory", "gamma", "gamma_lo", "gamma_hi", "n_records", "n_points", "n_used"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.sort_values(["part_gamma_theory", "m"], kind="stable").reset_index(drop=True)


def phase_table(functions: pd.DataFrame, family: str = PHASE_DEFAULT[0], x: str = PHASE_DEFAULT[1],
                y: str = PHASE_DEFAULT[2]) -> pd.DataFrame:
    """γ̂ per (x, y) cell of one family: median over the family's other parameters (seeds), with the cell's
    median interval ends, the theory's γ, how many functions and failed records the cell has, and the fewest and
    most rungs its fits used (issue 15 asks for d = 2 cells of >= 6 rungs)."""
    cols = ["family", "x_name", "y_name", "x", "y", "gamma", "gamma_lo", "gamma_hi", "gamma_theory", "n_functions",
            "n_fitted", "n_records", "n_failed", "rungs_min", "rungs_max"]
    fam = functions[functions["function"] == family] if len(functions) else functions
    if fam.empty:
        return pd.DataFrame({c: [] for c in cols})
    params = [json.loads(p) if isinstance(p, str) else {} for p in fam["function_params"]]
    xs = pd.to_numeric(pd.Series([p.get(x) for p in params], index=fam.index), errors="coerce")
    ys = pd.to_numeric(pd.Series([p.get(y) for p in params], index=fam.index), errors="coerce")
    f = fam.assign(_x=xs, _y=ys).dropna(subset=["_x", "_y"])
    rows = []
    for (xv, yv), g in f.groupby(["_x", "_y"], sort=True):
        fitted = g[g["gamma"].notna()]
        rows.append({"family": family, "x_name": x, "y_name": y, "x": float(xv), "y": float(yv),
                     "gamma": fitted["gamma"].median() if len(fitted) else math.nan,
                     "gamma_lo": fitted["gamma_lo"].median() if len(fitted) else math.nan,
                     "gamma_hi": fitted["gamma_hi"].median() if len(fitted) else math.nan,
                     "gamma_theory": g["gamma_theory"].median(), "n_functions": len(g), "n_fitted": len(fitted),
                     "n_records": int(g["n_records"].sum()), "n_failed": int(g["n_failed"].sum()),
                     "rungs_min": fitted["n_used"].min() if len(fitted) else 0,
                     "rungs_max": fitted["n_used"].max() if len(fitted) else 0})
    return pd.DataFrame(rows, columns=cols)

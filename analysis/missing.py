"""What a sweep's summary cannot show, and why: the `missing` notes of analysis.aggregate.summarize (shown in the
report next to the plots they affect). No ray/mlflow/boto3."""
from __future__ import annotations

import numpy as np
import pandas as pd

MAX_LISTED = 10            # per-function lines in `missing` before they are summarised


def missing_notes(counts: dict, *, n_records: int, n_circuits: int, functions: pd.DataFrame, n_nets: int,
                  nets: pd.DataFrame, phase: tuple, phase_table: pd.DataFrame, convexity: pd.DataFrame,
                  resnet_phase: pd.DataFrame | None = None) -> list[str]:
    """The notes, in report order. counts: summarize's counts; n_circuits: ok circuit_ladder and circuit_search
    records; functions: the per-function fits; n_nets: ok resnet_train records; nets: their joined table; phase:
    (family, x parameter, y parameter) of the phase diagram; phase_table, convexity: the tables drawn;
    resnet_phase: analysis.sandwich.resnet_phase (the sandwich's coverage and fits per function)."""
    if n_records == 0:
        return ["no records at all: the sweep has not run, or the results location or sweep name is wrong"]
    missing = []
    for kind, st in counts["by_kind"].items():
        nf = sum(v for s, v in st.items() if s != "ok")
        if nf:
            missing.append(f"{nf} of {sum(st.values())} {kind} records did not finish ok; they are listed under "
                           f"'Failed tasks' and left out of every fit and plot")
    if n_circuits == 0:
        missing.append("no ok circuit_ladder or circuit_search records: no C̄(f, ε), rates, phase diagram or "
                       "convexity test")
    nofit = functions[functions["gamma"].isna()]
    for _, f in nofit.head(MAX_LISTED).iterrows():
        missing.append(f"no rate fit for {f['label']}: {f['fit_error'] or 'no ok records'}"
                       + (f" ({int(f['n_failed'])} failed records)" if f["n_failed"] else ""))
    if len(nofit) > MAX_LISTED:
        missing.append(f"… and {len(nofit) - MAX_LISTED} more functions without a rate fit (summary.parquet "
                       f"lists each with its fit_error)")
    fitted = counts["by_kind"].get("resnet_fit", {}).get("ok", 0)
    if n_nets == 0:
        missing.append("no ok resnet_train records (λ-path nets): no norm ranking or Pareto frontier"
                       + ("" if fitted else ", and no resnet_fit records either: no sandwich"))
    else:
        missing += _net_notes(nets)
    if resnet_phase is not None and len(resnet_phase):
        missing += sandwich_notes(resnet_phase)
    if n_circuits and phase_table.empty:
        missing.append(f"no ladders of {phase[0]} with parameters {phase[1]} and {phase[2]}: no phase diagram")
    if n_circuits and convexity.empty:
        missing.append("no Hölder-mixture ladders: no γ̂-of-mixtures table (the control group of sweeps/convexity.yaml)")
    return missing


def _net_notes(net_df: pd.DataFrame) -> list[str]:
    """Trained nets without what the sandwich plot needs: a compiled gate count, a C̄ ladder, a C̄ at their error."""
    out = []
    nc = int(np.isfinite(net_df["compiled_gates"].to_numpy(float)).sum())
    if nc == 0:
        out.append(f"none of the {len(net_df)} trained nets has a compiled gate count "
                   f"(compiled_gates is empty): the sandwich plot shows C̄ only")
    elif nc < len(net_df):
        out.append(f"{len(net_df) - nc} of {len(net_df)} λ-path nets have no compiled gate count (a net is "
                   f"compiled only where a resnet_compile group names its training group)")
    nol = ~net_df["has_ladder"].to_numpy(bool)
    if nol.any():
        fns = sorted(set(net_df.loc[nol, "label"].astype(str)))
        out.append(f"{int(nol.sum())} of {len(net_df)} trained nets have no C̄ ladder of their function on "
                   f"the box domain ({', '.join(fns[:5])}{', …' if len(fns) > 5 else ''}): no C̄ at "
                   f"their error")
    fine = int((~nol & net_df["cbar_at_error"].isna().to_numpy()).sum())
    if fine:
        out.append(f"{fine} trained nets reach an error finer than every rung of their function's "
                   f"ladder: no verified C̄ at their error (extend the ladder to smaller ε)")
    return out


def sandwich_notes(resnet_phase: pd.DataFrame) -> list[str]:
    """Per function of the sandwich: circuit-ladder rungs without a net within ε (the coverage), and norms whose ρ̂
    has no interval (3 or fewer rungs with nets)."""
    out = []
    for _, r in resnet_phase.head(MAX_LISTED).iterrows():
        cov = r.get("coverage") or {}
        if cov.get("rungs") and cov["rungs_with_net"] < cov["rungs"]:
            out.append(f"{r['function']}: {cov['rungs'] - cov['rungs_with_net']} of {cov['rungs']} rungs of its "
                       f"circuit ladder have no net whose own circuit verifies within ε (no fit was asked there, or its "
                       f"fit and compile records say why)")
        bare = sorted(n for n, v in (r.get("rho") or {}).items() if v[0] is not None and v[1] is None)
        if bare:
            out.append(f"{r['function']}: ρ̂ of {', '.join(bare)} has no interval ({r['rungs_with_nets']} rungs with "
                       f"nets; an interval needs 4)")
    return out


RATE_TOLERANCE = 0.3       # issue 21 E: a γ̂ further than this from the theory's rate is flagged


def rate_notes(functions: pd.DataFrame) -> list[str]:
    """Functions whose γ̂ is more than RATE_TOLERANCE from the theory's γ (d/s for Hölder targets): the range the
    fit used, and that the range is pre-asymptotic (issue 21 E), so that the phase cell is not read as the rate."""
    if functions.empty or not {"gamma", "gamma_theory", "eps_min", "eps_max"} <= set(functions.columns):
        return []
    out = []
    for _, f in functions.iterrows():
        g, th = f["gamma"], f["gamma_theory"]
        if pd.isna(g) or pd.isna(th) or abs(g - th) <= RATE_TOLERANCE:
            continue
        out.append(f"{f['label']}: γ̂ {g:.2f} is {g - th:+.2f} off the theory's {th:.2f}, fitted on ε in "
                   f"[{f['eps_min']:.3g}, {f['eps_max']:.3g}] ({int(f.get('n_used') or 0)} rungs): a pre-asymptotic "
                   f"range; a longer ladder from a finer ε is needed for the rate")
        if len(out) == MAX_LISTED:
            break
    return out

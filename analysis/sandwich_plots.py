"""The plots of the sandwich experiment (DESIGN §2.6; issue 14 B): the HTMC-vs-ResNet-norm phase diagram, Ḡ
against C̄, and R̄_ν against C̄ per function. Tables from analysis.sandwich. No ray/mlflow/boto3."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import PlotResult, is_finite, panel_grid, plain_log_axes, plt, save_png
from .sandwich import frac_within_square, norm_names


def _colors(functions) -> dict:
    return {f: f"C{i % 10}" for i, f in enumerate(sorted(set(functions), key=str))}


def _err(v, lo, hi) -> list | None:
    if not (is_finite(v) and is_finite(lo) and is_finite(hi)):
        return None
    return [[max(0.0, v - lo)], [max(0.0, hi - v)]]


def plot_resnet_phase(phase: pd.DataFrame, path) -> PlotResult:
    """Plot 1: ρ̂_ν (one panel per norm) against γ̂, one point per function with both intervals, γ = 2 marked."""
    name = "resnet_phase"
    text = ("Phase diagram: the ResNet-norm rate ρ̂_ν (R̄_ν ∝ ε^-ρ, the smallest norm ν among nets whose compiled "
            "circuit verifies within ε) against the circuit rate γ̂ (C̄ ∝ ε^-γ), one point per function, with the "
            "spread of each fit as bars (none where ≤ 3 rungs make an interval meaningless). Right of the dashed "
            "γ = 2 line: the HTMC regime.")
    if phase.empty:
        return PlotResult(name, None, 0, 0, text, "no compiled nets: nothing to draw")
    norms = sorted({n for r in phase["rho"] for n in r})
    have = phase[[is_finite(g) for g in phase.get("gamma", pd.Series([None] * len(phase)))]]
    if have.empty:
        return PlotResult(name, None, 0, 0, text, "no function has both a circuit fit γ̂ and compiled nets")
    fig, axes = panel_grid(1, len(norms), pw=3.4, ph=3.0, top=0.7, bottom=1.1)
    col, n_pts = _colors(have["function"]), 0
    for ax, nu in zip(axes[0], norms):
        for _, r in have.iterrows():
            rho, lo, hi = r["rho"].get(nu, [None] * 3)
            if not is_finite(rho):
                continue
            ax.errorbar([r["gamma"]], [rho], xerr=_err(r["gamma"], r.get("gamma_lo"), r.get("gamma_hi")),
                        yerr=_err(rho, lo, hi), fmt="o", color=col[r["function"]], capsize=3, label=r["function"])
            n_pts += 1
        ax.axvline(2.0, color="k", ls="--", lw=1, label="γ = 2")
        lo, hi = ax.get_xlim()
        ax.set_xlim(min(lo, 0.0), max(hi, 3.0))    # both sides of the γ = 2 line, whatever the data
        ax.set_xlabel("γ̂ (circuit rate)")
        ax.set_ylabel(f"ρ̂ of norm {nu}")
        ax.set_title(nu, fontsize=10)
        ax.grid(True, alpha=0.3)
    h, lab = axes[0][0].get_legend_handles_labels()
    uniq = dict(zip(lab, h))
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=min(6, len(uniq)), fontsize=8)
    fig.suptitle("HTMC-vs-ResNet-norm phase diagram", fontsize=11)
    return PlotResult(name, save_png(fig, path), n_pts, len(have), text)


def _lines(ax, lo: float, hi: float) -> None:
    x = np.geomspace(lo, hi, 50)
    ax.plot(x, x, "k--", lw=1, label="Ḡ = C̄")
    ax.plot(x, x ** 2, "k:", lw=1.2, label="Ḡ = C̄²")


def plot_sandwich_points(sandwich: pd.DataFrame, path) -> PlotResult:
    """Plot 2: Ḡ against C̄ for every (f, ε), log-log, coloured by function, with Ḡ = C̄ and Ḡ = C̄²."""
    name = "sandwich"
    frac, n = frac_within_square(sandwich)
    text = ("The sandwich: Ḡ(f, ε), the fewest gates of a trained net's verified compiled circuit within ε, "
            "against C̄(f, ε), the circuit search's bound, one point per (function, rung). The paper says "
            "minimizing the ResNet norm finds a circuit within a power of 2 of optimal: points at or under the "
            "dotted Ḡ = C̄² line." + (f" Measured: {frac:.0%} of {n} points." if frac is not None else ""))
    both = sandwich.dropna(subset=["cbar", "gates_min"]) if len(sandwich) else sandwich
    if not len(both):
        return PlotResult(name, None, 0, 0, text, "no rung has both C̄ and a compiled net")
    zero = int(((both["gates_min"] <= 0) | (both["cbar"] <= 0)).sum())
    both = both[(both["gates_min"] > 0) & (both["cbar"] > 0)]    # a 0-gate circuit (a wire) has no place on log axes
    note = f"{zero} points with a 0-gate circuit (within C̄² by definition) not drawn on the log axes" if zero else ""
    if not len(both):
        return PlotResult(name, None, 0, 0, text, note)
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    col = _colors(both["function"])
    for f, g in both.groupby("function"):
        ax.plot(g["cbar"], g["gates_min"], "o-", color=col[f], label=str(f), alpha=0.85)
    vals = np.concatenate([both["cbar"].to_numpy(float), both["gates_min"].to_numpy(float)])
    _lines(ax, max(1.0, vals.min() / 2), vals.max() * 2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axes(ax)
    ax.set_ylim(max(0.5, vals.min() / 2), max(vals.max() * 3, 10))
    ax.set_xlabel("C̄(f, ε), circuit search (gates)")
    ax.set_ylabel("Ḡ(f, ε), best compiled net (gates)")
    ax.set_title(f"Sandwich: {frac:.0%} of points within C̄²", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return PlotResult(name, save_png(fig, path), len(both), len(both), text, note)


def plot_norms_vs_cbar(sandwich: pd.DataFrame, path) -> PlotResult:
    """Plot 3: R̄_ν against C̄ per function, joined along ε, one panel per norm."""
    name = "norms_vs_cbar"
    text = ("R̄_ν(f, ε), the smallest norm ν among nets compiled within ε, against C̄(f, ε), one line per function "
            "joined along the rungs: the sandwich bound says each norm grows at most polynomially in C̄.")
    norms = norm_names(sandwich) if len(sandwich) else []
    both = sandwich.dropna(subset=["cbar"]) if len(sandwich) else sandwich
    if not norms or not len(both):
        return PlotResult(name, None, 0, 0, text, "no rung has both C̄ and a compiled net")
    fig, axes = panel_grid(1, len(norms), pw=3.2, ph=2.9, top=0.6, bottom=1.1)
    col, n_pts = _colors(both["function"]), 0
    for ax, nu in zip(axes[0], norms):
        for f, g in both.groupby("function"):
            g = g.dropna(subset=[f"norm_min_{nu}"]).sort_values("eps", ascending=False)
            g = g[g[f"norm_min_{nu}"] > 0]
            ax.plot(g["cbar"], g[f"norm_min_{nu}"], "o-", color=col[f], label=str(f))
            n_pts += len(g)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axes(ax)
        ax.set_xlabel("C̄(f, ε) (gates)")
        ax.set_ylabel(f"R̄ of {nu}")
        ax.set_title(nu, fontsize=10)
        ax.grid(True, alpha=0.3)
    h, lab = axes[0][0].get_legend_handles_labels()
    if lab:
        fig.legend(h, lab, loc="lower center", ncol=min(6, len(lab)), fontsize=8)
    return PlotResult(name, save_png(fig, path), n_pts, len(both), text)

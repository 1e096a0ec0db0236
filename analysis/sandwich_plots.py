"""The plots of the sandwich experiment (DESIGN §2.6; issue 14 B, issue 21 B): the HTMC-vs-ResNet-norm phase
diagram, G*_ν (the min-norm net's own circuit) against C̄, Ḡ (the best over all nets) against C̄, and R*_ν against
C̄ per function. Tables from analysis.sandwich. No ray/mlflow/boto3."""
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
    text = ("Phase diagram: the ResNet-norm rate ρ̂_ν (R*_ν ∝ ε^-ρ, the smallest norm ν among nets whose own "
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
    text = ("Ḡ, the best over all nets (not the paper's quantity; the min-norm plot above is): Ḡ(f, ε) is the "
            "fewest gates over every net's own verified circuit within ε (fitted and λ-path nets), against C̄(f, ε), "
            "the circuit search's bound, one point per (function, rung); the dotted line is Ḡ = C̄²."
            + (f" Measured: {frac:.0%} of {n} points." if frac is not None else ""))
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
    ax.set_ylabel("Ḡ(f, ε), best over all nets (gates)")
    ax.set_title(f"Ḡ (best over all nets): {frac:.0%} of points within C̄²", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return PlotResult(name, save_png(fig, path), len(both), len(both), text, note)


def plot_minnorm_points(sandwich: pd.DataFrame, phase: pd.DataFrame, path) -> PlotResult:
    """G*_ν against C̄ per (f, ε), one panel per norm: the gates of the argmin-norm net's own circuit, with the
    slope of log G* on log C̄ per function (phase's gates_exponent, analysis.sandwich.resnet_phase) in the legend
    and the lines G = C̄, G = C̄² (issue 21 B)."""
    name = "sandwich_minnorm"
    norms = [n for n in (norm_names(sandwich) if len(sandwich) else []) if f"gates_minnorm_{n}" in sandwich]
    fr = {n: frac_within_square(sandwich, f"gates_minnorm_{n}") for n in norms}
    text = ("The sandwich on the min-norm net: G*_ν(f, ε), the gates of the own circuit (built from its netlist, "
            "verified within ε) of the net with the smallest norm ν among the nets within ε, against C̄(f, ε), one "
            "panel per norm. The paper: minimizing the ResNet norm finds a circuit within a power of 2 of "
            "optimal, i.e. points at or under the dotted G = C̄² line and a slope of log G* on log C̄ of at most 2 "
            "(legend: slope per function, with its interval where ≥ 4 points). Measured: "
            + "; ".join(f"{n}: {f:.0%} of {k} points" for n, (f, k) in fr.items() if f is not None) + ".")
    both = {n: sandwich.dropna(subset=["cbar", f"gates_minnorm_{n}"]) for n in norms}
    both = {n: b[(b["cbar"] > 0) & (b[f"gates_minnorm_{n}"] > 0)] for n, b in both.items()}
    if not norms or not any(len(b) for b in both.values()):
        return PlotResult(name, None, 0, 0, text, "no rung has both C̄ and a net's own circuit within ε")
    fig, axes = panel_grid(1, len(norms), pw=3.6, ph=3.3, top=0.7, bottom=0.7, left=1.0, wgap=1.1)
    col, n_pts = _colors(sandwich["function"]), 0
    slopes = phase if phase is not None else pd.DataFrame()
    for ax, nu in zip(axes[0], norms):
        b = both[nu]
        for f, g in b.groupby("function"):
            sel = slopes[slopes["function"] == f] if len(slopes) else slopes
            ge = sel["gates_exponent"].iloc[0].get(nu, {}) if len(sel) else {}
            sl = "" if ge.get("slope") is None else f" (slope {ge['slope']:.2f}" + (
                f" [{ge['lo']:.2f}, {ge['hi']:.2f}])" if ge.get("lo") is not None else ", no interval)")
            ax.plot(g["cbar"], g[f"gates_minnorm_{nu}"], "o-", color=col[f], label=f"{f}{sl}", alpha=0.85)
            n_pts += len(g)
        if len(b):
            vals = np.concatenate([b["cbar"].to_numpy(float), b[f"gates_minnorm_{nu}"].to_numpy(float)])
            x = np.geomspace(max(1.0, vals.min() / 2), vals.max() * 2, 50)
            ax.plot(x, x, "k--", lw=1, label="G = C̄")
            ax.plot(x, x ** 2, "k:", lw=1.2, label="G = C̄²")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axes(ax)
        ax.set_xlabel("C̄(f, ε), circuit search (gates)")
        ax.set_ylabel(f"G* of the min-{nu} net")
        f, k = fr[nu]
        ax.set_title(f"{nu}: {f:.0%} of {k} within C̄²" if f is not None else nu, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle("G*_ν: the min-norm net's own circuit against C̄", fontsize=11)
    return PlotResult(name, save_png(fig, path), n_pts, int(sum(len(b) for b in both.values())), text)


def plot_norms_vs_cbar(sandwich: pd.DataFrame, path) -> PlotResult:
    """Plot 3: R̄_ν against C̄ per function, joined along ε, one panel per norm."""
    name = "norms_vs_cbar"
    text = ("R*_ν(f, ε), the smallest norm ν among nets whose own circuit verifies within ε, against C̄(f, ε), one "
            "line per function joined along the rungs: the sandwich bound says each norm grows at most "
            "polynomially in C̄.")
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
        if not ax.lines:    # log axes need data: this norm has no positive R* here
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axes(ax)
        ax.set_xlabel("C̄(f, ε) (gates)")
        ax.set_ylabel(f"R* of {nu}")
        ax.set_title(nu, fontsize=10)
        ax.grid(True, alpha=0.3)
    h, lab = axes[0][0].get_legend_handles_labels()
    if lab:
        fig.legend(h, lab, loc="lower center", ncol=min(6, len(lab)), fontsize=8)
    return PlotResult(name, save_png(fig, path), n_pts, len(both), text)

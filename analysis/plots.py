"""Plots of target functions drawn from result tables and fits. Never imports ray, mlflow or boto3 (DESIGN §3).

`plot_ladder` draws one ladder (used by `htmc circuit ladder --plot`). The five sweep plots of issue 6 take the
tidy tables of analysis.aggregate.summarize and return a `PlotResult` (analysis.figures): where the PNG is, how many
data points it draws and how many records went into them, and a sentence for the report saying what it shows.

1. plot_ladders     C̄ against 1/ε per function, log-log, power-law and polylog fits, saturated points marked.
2. plot_phase       γ̂ over two parameters of a family, with the γ̂ = 2 contour and the theory's γ = 2 line.
3. plot_sandwich    compiled gates and C̄ at the achieved error against each ResNet norm, with fitted slopes
                    (analysis.net_plots).
4. plot_pareto      ResNet norm against achieved error, Pareto frontier over λ per function and width
                    (analysis.net_plots).
5. plot_convexity   γ̂ of mixtures of m parts against m, parts below and above γ = 2.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from .figures import PlotResult, fmt_interval, is_finite, panel_grid, plain_log_axes, plt, save_png


def _fmt_gamma_ci(lo, hi) -> str:
    """A ladder fit's γ interval: null means it was not reported, with <= 3 fitted rungs (DESIGN §2.3)."""
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)) or \
            (isinstance(hi, float) and math.isnan(hi)):
        return "n/a (≤3 rungs)"
    return fmt_interval(lo, hi)


def _model_label(fit: dict) -> str:
    """The model choice of a fit, with ΔAIC = AIC(polylog) − AIC(power) (negative favours polylog)."""
    pm, d = fit.get("preferred_model"), fit.get("delta_aic")
    dtxt = f"ΔAIC = {d:.1f}" if is_finite(d) else ""
    if pm == "inconclusive":
        return f"model choice inconclusive ({dtxt})" if dtxt else "model choice inconclusive"
    if isinstance(pm, str):
        return f"preferred: {pm}" + (f" ({dtxt})" if dtxt else "")
    return "no model choice (2 points, or ε ≥ 1)"


# ----------------------------------------------------------------------------------------------------------------
# 1. Ladders
# ----------------------------------------------------------------------------------------------------------------

def _draw_ladder(ax, eps, sizes, kept, fit: dict | None, *, legend_size: int = 8) -> int:
    eps, sizes = np.asarray(eps, float), np.asarray(sizes, float)
    inv = 1.0 / eps
    kept = np.asarray(kept, bool) if kept is not None else np.ones(eps.size, bool)
    ax.loglog(inv[kept], sizes[kept], "o", color="C0", label="C̄(f, ε), fitted")
    if (~kept).any():
        ax.loglog(inv[~kept], sizes[~kept], "x", color="0.4", ms=8, mew=2, label="at the exact circuit (not fitted)")
    if fit and is_finite(fit.get("gamma")):
        xs = np.geomspace(inv.min(), inv.max(), 100)
        ci = fit.get("gamma_ci") or [None, None]
        ax.loglog(xs, fit["c"] * xs ** fit["gamma"], "-", color="C1",
                  label=f"power: γ̂ = {fit['gamma']:.2f} {_fmt_gamma_ci(*ci)}")
        if fit.get("polylog") and all(is_finite(v) for v in fit["polylog"]) and np.all(xs > 1):
            a, b = fit["polylog"]
            ax.loglog(xs, a * np.log2(xs) ** b, "--", color="C2", label=f"polylog: {a:.3g}·log2(1/ε)^{b:.2f}")
    ax.grid(True, alpha=0.3)
    plain_log_axes(ax)
    ax.legend(fontsize=legend_size, loc="upper left")
    return int(eps.size)


def plot_ladder(eps, sizes, fit: dict | None, title: str, path: str | Path) -> Path:
    """Circuit size against 1/ε, log-log, with the power-law and polylog fits and excluded points marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    _draw_ladder(ax, eps, sizes, fit["kept"] if fit else None, fit)
    ax.set_xlabel("1/ε (inverse sup-norm error)")
    ax.set_ylabel("circuit size (B2 gates)")
    pref = f" — {_model_label(fit)}" if fit and is_finite(fit.get("gamma")) else ""
    ax.set_title(f"{title}{pref}", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def _fit_dict(f: pd.Series) -> dict | None:
    if not is_finite(f.get("gamma")):
        return None
    return {"gamma": f["gamma"], "c": f["c"], "gamma_ci": [f["gamma_lo"], f["gamma_hi"]],
            "polylog": [f["polylog_a"], f["polylog_b"]] if is_finite(f.get("polylog_a")) else None,
            "preferred_model": f.get("preferred_model"), "delta_aic": f.get("delta_aic")}


def plot_ladders(functions: pd.DataFrame, points: pd.DataFrame, path, *, max_panels: int = 16) -> PlotResult:
    """Plot 1: one log-log panel per function (up to max_panels), C̄ against 1/ε with both fits."""
    name = "ladders"
    text = ("Circuit-size upper bound C̄(f, ε) (smallest verified circuit over methods and records) against 1/ε, "
            "one panel per target function, log-log. Orange: fitted power law C̄ = ĉ ε^-γ̂ with its interval (the "
            "spread of the fit over fixed rungs, not sampling error; n/a with ≤3 fitted rungs); green dashed: "
            "polylog fit a·log2(1/ε)^b; grey crosses: rungs at the exactly rounded circuit (grid domain), "
            "excluded from the fits. The panel title gives the model choice by ΔAIC = AIC(polylog) − AIC(power) "
            "(negative favours polylog; inconclusive when |ΔAIC| < 2).")
    have = functions[functions["n_points"] > 0] if len(functions) else functions
    if have.empty:
        return PlotResult(name, None, 0, 0, text, "no verified circuit sizes: nothing to draw")
    have = have.sort_values(["function", "label"], kind="stable")
    shown = have.head(max_panels)
    n = len(shown)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = panel_grid(nrows, ncols, pw=3.5, ph=2.6, left=0.75, top=0.95, bottom=0.5, wgap=0.8, hgap=0.85)
    groups = points.groupby("function_key").indices
    n_pts = 0
    for ax, (_, f) in zip(axes.flat, shown.iterrows()):
        p = points.iloc[groups[f["function_key"]]].sort_values("eps", ascending=False)
        n_pts += _draw_ladder(ax, p["eps"], p["cbar"], p["kept"], _fit_dict(f), legend_size=7)
        th = f" · theory γ = {f['gamma_theory']:.2g}" if is_finite(f.get("gamma_theory")) else ""
        pref = _model_label(f) if is_finite(f.get("gamma")) else f"no fit: {f.get('fit_error') or ''}"
        ax.set_title(f"{f['label']}\n{pref}{th}", fontsize=8)
        ax.set_xlabel("1/ε (1 / sup-norm error)", fontsize=8)
        ax.set_ylabel("C̄ (B2 gates)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    note = f"showing {n} of {len(have)} functions (first by name)" if len(have) > n else ""
    fig.suptitle("Circuit size C̄(f, ε) against 1/ε per target function, with power-law and polylog fits"
                 + (f" ({note})" if note else ""), fontsize=11)
    recs = int(shown["n_records"].sum())
    return PlotResult(name, save_png(fig, path), n_pts, recs, text, note)


# ----------------------------------------------------------------------------------------------------------------
# 2. Phase diagram
# ----------------------------------------------------------------------------------------------------------------

def _edges(v: np.ndarray) -> np.ndarray:
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5]) if v[0] >= 1 else np.array([v[0] * 0.75, v[0] * 1.25])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _phase_label(r) -> str:
    """A phase cell's text: γ̂ and its interval (or why none), the theory, and how many fits with how many rungs."""
    th = f"theory {r['gamma_theory']:.2f}" if is_finite(r["gamma_theory"]) else "theory —"
    val = (f"γ̂ = {r['gamma']:.2f}\n{_fmt_gamma_ci(r['gamma_lo'], r['gamma_hi'])}" if is_finite(r["gamma"])
           else f"no fit\n({int(r['n_failed'])} failed)")
    lo, hi = int(r["rungs_min"]), int(r["rungs_max"])
    rungs = "" if not r["n_fitted"] else f"\n{lo} rungs" if lo == hi else f"\n{lo}-{hi} rungs"
    return f"{val}\n{th}\nfitted {int(r['n_fitted'])} of {int(r['n_functions'])}{rungs}"


def plot_phase(phase: pd.DataFrame, path) -> PlotResult:
    """Plot 2: γ̂ over (x, y) of a family as coloured cells (diverging at γ = 2), the γ̂ = 2 contour (solid) and
    the theory's γ = 2 contour (dashed)."""
    name = "phase"
    if phase.empty:
        return PlotResult(name, None, 0, 0, "Phase diagram of γ̂ over a family's parameters.",
                          "no ladders of the family: nothing to draw")
    fam, xn, yn = phase["family"].iloc[0], phase["x_name"].iloc[0], phase["y_name"].iloc[0]
    text = (f"Fitted rate γ̂ of C̄(f, ε) for {fam} over its parameters {xn} (x) and {yn} (y); each cell is the median "
            f"over the family's other parameters (seeds), with the median interval (the spread of the fit, not "
            f"sampling error; n/a where fits have ≤3 rungs), the theory's γ, how many of the cell's functions have a "
            f"fit, and the fewest and most rungs those fits used. Colours "
            f"diverge at γ = 2: red cells are in the HTMC regime (γ̂ > 2). Solid black: the γ̂ = 2 contour; dashed: "
            f"the theory's γ = 2 contour. Hatched cells have records but no fit (failed or too few points).")
    xs, ys = np.unique(phase["x"].to_numpy(float)), np.unique(phase["y"].to_numpy(float))
    G = np.full((len(ys), len(xs)), np.nan)
    T = np.full_like(G, np.nan)
    for _, r in phase.iterrows():
        i, j = np.searchsorted(ys, r["y"]), np.searchsorted(xs, r["x"])
        G[i, j], T[i, j] = r["gamma"], r["gamma_theory"]
    finite = G[np.isfinite(G)]
    vmax = max(4.0, float(np.nanmax(finite)) if finite.size else 4.0)
    vmin = min(0.0, float(np.nanmin(finite)) if finite.size else 0.0)
    fig, ax = plt.subplots(figsize=(1.9 * len(xs) + 3.2, 1.5 * len(ys) + 2.4))
    xe, ye = _edges(xs), _edges(ys)
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(G), cmap="RdBu_r",
                         norm=TwoSlopeNorm(vmin=vmin, vcenter=2.0, vmax=vmax), shading="flat")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("γ̂ (fitted rate, C̄ ∝ ε^-γ̂)")
    for _, r in phase.iterrows():
        if not is_finite(r["gamma"]):
            i, j = np.searchsorted(ys, r["y"]), np.searchsorted(xs, r["x"])
            ax.fill_between([xe[j], xe[j + 1]], ye[i], ye[i + 1], facecolor="none", hatch="//", edgecolor="0.5")
        ax.text(r["x"], r["y"], _phase_label(r), ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", alpha=0.75, edgecolor="none"))
    handles = []
    if len(xs) >= 2 and len(ys) >= 2:
        if np.isfinite(G).sum() >= 3 and np.nanmin(G) < 2 < np.nanmax(G):
            ax.contour(xs, ys, np.ma.masked_invalid(G), levels=[2.0], colors="k", linewidths=2)
            handles.append(plt.Line2D([], [], color="k", lw=2, label="γ̂ = 2 (measured)"))
        if np.isfinite(T).all() and np.nanmin(T) <= 2 <= np.nanmax(T):
            ax.contour(xs, ys, T, levels=[2.0], colors="k", linestyles="--", linewidths=1.5)
            handles.append(plt.Line2D([], [], color="k", ls="--", lw=1.5, label="theory γ = 2"))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_xticks(xs)
    ax.set_yticks(ys)
    ax.set_xlabel(f"{xn} (family parameter{', Hölder exponent' if xn == 's' else ''}, dimensionless)")
    ax.set_ylabel(f"{yn} (family parameter{', input dimension' if yn == 'd' else ''}, dimensionless)")
    theory = " (theory: γ = d/s)" if fam == "holder_random" and (xn, yn) == ("s", "d") else ""
    ax.set_title(f"Phase diagram of γ̂ for {fam}\nover ({xn}, {yn}){theory}; γ > 2 is the HTMC regime", fontsize=10)
    fig.tight_layout()
    n_pts = int(np.isfinite(G).sum())
    return PlotResult(name, save_png(fig, path), n_pts, int(phase["n_records"].sum()), text)


# ----------------------------------------------------------------------------------------------------------------
# 5. Convexity
# ----------------------------------------------------------------------------------------------------------------

def plot_convexity(conv: pd.DataFrame, path) -> PlotResult:
    """Plot 5: γ̂ of mixtures against their number of parts m, one series per parts' theoretical γ."""
    name = "convexity"
    text = ("Convexity test: fitted rate γ̂ (with the spread of its fit) of mixtures Σ w_i f_i of m random parts "
            "against m, "
            "one series per parts' theoretical rate γ (dotted line of the same colour). Theory (DESIGN §1): "
            "for parts with γ > 2 (the HTMC regime, above the dashed γ = 2 line) the mixture keeps the parts' "
            "rate; for parts below 2 the rate may drift toward 2 as m grows. Hollow markers: no interval (n/a with "
            "≤3 fitted rungs, or unbounded).")
    if conv.empty:
        return PlotResult(name, None, 0, 0, text, "no Hölder-mixture ladders: nothing to draw")
    fitted = conv[conv["gamma"].notna()]
    if fitted.empty:
        return PlotResult(name, None, 0, 0, text, "no mixture ladder has a rate fit")
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    groups = list(fitted.groupby(fitted["part_gamma_theory"].round(6), dropna=False))
    n_pts = 0
    ms = sorted(fitted["m"].unique())
    for gi, (pg, g) in enumerate(groups):
        c = f"C{gi}"
        g = g.sort_values("m")
        x = g["m"].to_numpy(float) * 2 ** ((gi - (len(groups) - 1) / 2) * 0.04)  # small offsets, no overlap
        y = g["gamma"].to_numpy(float)
        lo, hi = g["gamma_lo"].to_numpy(float), g["gamma_hi"].to_numpy(float)
        bounded = np.isfinite(lo) & np.isfinite(hi)
        side = ("above" if pg > 2 else "below" if pg < 2 else "at") if is_finite(pg) else "unknown"
        fam = g["part_family"].iloc[0]
        lab = f"parts: {fam}, γ = {pg:.2f} ({side} 2)" if is_finite(pg) else f"parts: {fam}"
        ax.errorbar(x[bounded], y[bounded], yerr=[y[bounded] - lo[bounded], hi[bounded] - y[bounded]], fmt="o-",
                    color=c, capsize=3, label=lab)
        if (~bounded).any():
            ax.plot(x[~bounded], y[~bounded], "o", mfc="none", color=c)
        ax.plot(x, y, "-", color=c, alpha=0.5)
        if is_finite(pg):
            ax.axhline(pg, color=c, ls=":", lw=1.2)
        n_pts += len(g)
    ax.axhline(2.0, color="k", ls="--", lw=1.2, label="γ = 2 (HTMC boundary)")
    ax.plot([], [], ls=":", color="0.3", label="dotted: the parts' theoretical γ")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ms)
    ax.set_xticklabels([str(int(m)) for m in ms])
    ax.set_xlabel("m, number of parts in the mixture (count)")
    ax.set_ylabel("γ̂ (fitted rate of C̄ ∝ ε^-γ̂)")
    ax.set_title("Convexity test: rate of mixtures of m random parts against m", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    note = f"{len(conv) - len(fitted)} mixtures without a fit left out" if len(fitted) < len(conv) else ""
    return PlotResult(name, save_png(fig, path), n_pts, int(fitted["n_records"].sum()), text, note)

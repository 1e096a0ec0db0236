"""Plots of the convexity test with a threshold (analysis.convexity, DESIGN §2.6). Never imports ray, mlflow or
boto3.

- plot_convexity_slopes: the fitted slope of log K̂ against log m, per gamma, with its interval, and the theory
  max(0, 1/gamma - 1/2), which crosses zero at gamma = 2.
- plot_sizes_vs_budget: C̄ of every walsh_mixture rung against min(m, eps^-2), log-log: theory says the points
  lie on one line of slope 1 up to polylog factors.
"""
from __future__ import annotations

import numpy as np

from .convexity import theory_slope, walsh_ladders
from .figures import PlotResult, is_finite, plain_log_axes, plt, save_png


def plot_convexity_slopes(summary: dict, path) -> PlotResult:
    """summary: convexity_slopes' result. Points with interval bars; the theory curve; zero and gamma = 2 lines."""
    name = "convexity_slopes"
    text = ("Convexity with a threshold: slope of log K̂ against log m, K̂ = ||walsh mixture of m parts||_{H^γ} / "
            "max ||part||_{H^γ} (norm estimates at the ladder's rungs), with its 95% interval, against γ. Theory "
            "(DESIGN §2.6): max(0, 1/γ − 1/2), positive below γ = 2 and zero above: mixing raises the norm only "
            "below the HTMC threshold.")
    if not any(is_finite(r.get("slope")) for r in summary.get("slopes", [])):
        return PlotResult(name, None, 0, 0, text, "no walsh_mixture ladders with 2 or more m: nothing to draw")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    n = draw_convexity_slopes(ax, summary)
    fig.tight_layout()
    return PlotResult(name, save_png(fig, path), n, int(summary.get("n_ladders", 0)), text)


def draw_convexity_slopes(ax, summary: dict) -> int:
    """Onto ax: measured slopes with interval bars, the theory curve, the zero line and the gamma = 2 line.
    Returns the number of slopes drawn."""
    rows = [r for r in summary.get("slopes", []) if is_finite(r.get("slope"))]
    g = np.array([r["gamma"] for r in rows], float)
    s = np.array([r["slope"] for r in rows], float)
    lo = np.array([r["lo"] if is_finite(r["lo"]) else np.nan for r in rows], float)
    hi = np.array([r["hi"] if is_finite(r["hi"]) else np.nan for r in rows], float)
    bounded = np.isfinite(lo) & np.isfinite(hi)
    ax.errorbar(g[bounded], s[bounded], yerr=[s[bounded] - lo[bounded], hi[bounded] - s[bounded]], fmt="o",
                color="C0", capsize=4, label="measured slope (95% interval)")
    if (~bounded).any():
        ax.plot(g[~bounded], s[~bounded], "o", mfc="none", color="C0", label="measured (no interval)")
    gs = np.linspace(min(0.9, g.min()), max(3.2, g.max()), 200)
    ax.plot(gs, [theory_slope(x) for x in gs], "-", color="C1", label="theory max(0, 1/γ − 1/2)")
    ax.axhline(0.0, color="0.3", lw=1, label="zero")
    ax.axvline(2.0, color="k", ls="--", lw=1.2, label="γ = 2 (HTMC threshold)")
    ax.set_xlabel("γ (exponent of the HTMC norm)")
    ax.set_ylabel("slope of log K̂ against log m")
    ax.set_title(f"Convexity test: walsh mixtures, m in {summary.get('ms')}, {len(summary.get('seeds', []))} seeds",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return len(rows)


def plot_sizes_vs_budget(ladder_rows, path) -> PlotResult:
    """C̄(mix_m, eps) against min(m, eps^-2), one colour per m, with the slope-1 reference line."""
    name = "convexity_sizes"
    text = ("Verified circuit size C̄ of walsh mixtures against min(m, ε^-2), log-log, every rung of every ladder; "
            "theory (DESIGN §2.6): C = Θ̃(min(m, ε^-2)), a line of slope 1 up to polylog factors (dashed).")
    lad = walsh_ladders(ladder_rows)
    if lad.empty:
        return PlotResult(name, None, 0, 0, text, "no walsh_mixture ladders: nothing to draw")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    n_pts = draw_sizes_vs_budget(ax, lad)
    fig.tight_layout()
    return PlotResult(name, save_png(fig, path), n_pts, len(lad), text)


def draw_sizes_vs_budget(ax, lad) -> int:
    """Onto ax: C̄ (floored at 1) against min(m, eps^-2), one series per m, and the slope-1 line through the
    median ratio. lad: analysis.convexity.walsh_ladders. Returns the number of points drawn."""
    n_pts, xs_all, ys_all = 0, [], []
    for i, (m, g) in enumerate(lad.groupby("m", sort=True)):
        x = np.concatenate([np.minimum(m, r.eps ** -2.0) for r in g.itertuples()])
        y = np.concatenate([np.maximum(r.cbar, 1.0) for r in g.itertuples()])
        ax.loglog(x, y, "o", color=f"C{i % 10}", ms=4, label=f"m = {m}")
        n_pts += len(x)
        xs_all.append(x)
        ys_all.append(y)
    x, y = np.concatenate(xs_all), np.concatenate(ys_all)
    ref = np.geomspace(x.min(), x.max(), 50)
    c = float(np.exp(np.median(np.log(y) - np.log(x))))
    ax.loglog(ref, c * ref, "--", color="0.3", label=f"slope 1 (C̄ = {c:.3g}·min(m, ε⁻²))")
    plain_log_axes(ax)
    ax.set_xlabel("min(m, ε^-2) (parts an ε-approximation needs)")
    ax.set_ylabel("C̄(f, ε) (B2 gates, verified)")
    ax.set_title("Walsh mixtures: circuit size against min(m, ε^-2)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return n_pts

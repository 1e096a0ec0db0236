"""Plots of trained nets against their ResNet norms, from the tidy tables of analysis.aggregate.summarize
(plots 3 and 4 of the report; analysis.plots has the other three). Never imports ray, mlflow or boto3.

3. plot_sandwich    compiled gates and C̄ at the achieved error against each ResNet norm, with fitted slopes.
4. plot_pareto      ResNet norm against achieved error, Pareto frontier over λ per function and width.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .figures import PlotResult, fmt_interval, is_finite, panel_grid, plain_log_axes, plt, save_png

MAX_SCATTER = 20_000   # points per scatter panel; more are subsampled (uniformly at random, seed 0) for drawing


# ----------------------------------------------------------------------------------------------------------------
# 3. Sandwich
# ----------------------------------------------------------------------------------------------------------------

_SIZE_LABEL = {"compiled_gates": "compiled net, B2 gates", "cbar_at_error": "C̄ at the net's error, B2 gates"}


def _subsample(n: int, k: int) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(np.random.default_rng(0).choice(n, k, replace=False))


def _function_colors(keys) -> dict:
    uniq = sorted(set(keys))
    cmap = plt.get_cmap("tab10" if len(uniq) <= 10 else "tab20")
    return {k: cmap(i % cmap.N) for i, k in enumerate(uniq)}


def plot_sandwich(nets: pd.DataFrame, ranking: pd.DataFrame, path, *, norms: list[str] | None = None,
                  max_points: int = MAX_SCATTER) -> PlotResult:
    """Plot 3: rows = circuit-size measure (compiled gates, C̄ at the achieved error), columns = ResNet norms."""
    name = "sandwich"
    text = ("Sandwich plot: circuit size of each trained net against each of its ResNet norms, log-log, coloured by "
            "target function. Top row: gates of the net compiled to a verified circuit; bottom row: C̄ of its "
            "target at the net's achieved sup error (the smallest verified circuit at an ε no larger than that "
            "error). Lines: least-squares log-log fit with slope and 95% interval; ρ is Spearman's rank "
            "correlation over nets with its bootstrap interval (the norm ranking table ranks the norms by it).")
    if nets is None or nets.empty:
        return PlotResult(name, None, 0, 0, text, "no trained nets: nothing to draw")
    norms = norms or sorted(c[len("norm_"):] for c in nets.columns if c.startswith("norm_")
                            and not c.endswith("_version"))
    if not norms:
        return PlotResult(name, None, 0, 0, text, "the nets carry no norm_* columns: nothing to draw")
    sizes = ["compiled_gates", "cbar_at_error"]
    colors = _function_colors(nets["function_key"])
    labels = {}
    n_leg_rows = math.ceil(min(12, nets["function_key"].nunique()) / 4)
    fig, axes = panel_grid(len(sizes), len(norms), pw=3.0, ph=2.6, left=0.8, top=0.8,
                           bottom=0.75 + 0.2 * n_leg_rows + 0.35, wgap=0.55, hgap=0.45)
    n_pts, used = 0, np.zeros(len(nets), dtype=bool)
    notes = []
    for i, size in enumerate(sizes):
        y_all = pd.to_numeric(nets[size], errors="coerce").to_numpy(float) if size in nets else np.full(len(nets),
                                                                                                         np.nan)
        for j, norm in enumerate(norms):
            ax = axes[i, j]
            ok, pick = _sandwich_panel(ax, nets, ranking, size, norm, y_all, colors, labels, max_points)
            if len(pick) < len(ok):
                notes.append(f"{size} vs {norm}: {len(pick)} of {len(ok)} nets drawn")
            n_pts += len(pick)
            used[ok] = True
            _label_sandwich_panel(ax, ranking, size, norm, last_row=i == len(sizes) - 1, first_col=j == 0,
                                  first_row=i == 0)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[k], label=labels[k]) for k in sorted(labels)][:12]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7,
                   title="target function", title_fontsize=7, bbox_to_anchor=(0.5, 0.005))
    fig.suptitle("Sandwich: circuit size of trained ResNets against each ResNet norm (log-log)", fontsize=11)
    return PlotResult(name, save_png(fig, path), n_pts, int(used.sum()), text, "; ".join(notes))


def _sandwich_panel(ax, nets: pd.DataFrame, ranking: pd.DataFrame, size: str, norm: str, y_all: np.ndarray,
                    colors: dict, labels: dict, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """One panel: the nets with both the size and the norm (at most max_points of them drawn) and the ranking's
    log-log fit. Adds the drawn functions to labels; returns (rows with both, rows drawn)."""
    x_all = pd.to_numeric(nets[f"norm_{norm}"], errors="coerce").to_numpy(float)
    ok = np.flatnonzero(np.isfinite(x_all) & np.isfinite(y_all) & (x_all > 0) & (y_all > 0))
    if len(ok) == 0:
        ax.text(0.5, 0.5, f"no nets with both\n{_SIZE_LABEL[size].split(',')[0]}\nand norm {norm}",
                transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4")
        return ok, ok
    pick = ok[_subsample(len(ok), max_points)]
    keys = nets["function_key"].to_numpy()[pick]
    ax.scatter(x_all[pick], y_all[pick], s=14, c=[colors[k] for k in keys], alpha=0.8, edgecolors="none")
    for k, lab in zip(nets["function_key"].to_numpy()[pick], nets["label"].to_numpy()[pick]):
        labels.setdefault(k, lab)
    ax.set_xscale("log")
    ax.set_yscale("log")
    r = ranking[(ranking["size"] == size) & (ranking["norm"] == norm)] if len(ranking) else ranking
    if len(r) and is_finite(r["slope"].iloc[0]) and is_finite(r["intercept_c"].iloc[0]):
        r = r.iloc[0]
        xs = np.geomspace(x_all[ok].min(), x_all[ok].max(), 50)
        ax.plot(xs, r["intercept_c"] * xs ** r["slope"], "k-", lw=1.2,
                label=f"slope {r['slope']:.2f} {fmt_interval(r['slope_lo'], r['slope_hi'])}")
        rho = (f"ρ = {r['spearman']:.2f} {fmt_interval(r['spearman_lo'], r['spearman_hi'])}"
               if is_finite(r["spearman"]) else "ρ undefined")
        ax.legend(fontsize=7, loc="best", title=rho, title_fontsize=7)
    return ok, pick


def _label_sandwich_panel(ax, ranking: pd.DataFrame, size: str, norm: str, *, last_row: bool, first_col: bool,
                          first_row: bool) -> None:
    """Grid and ticks; the norm's name under the last row, the size measure left of the first column, and above
    the first row the norm with its rank by compiled gates."""
    ax.grid(True, alpha=0.3)
    plain_log_axes(ax)
    ax.tick_params(labelsize=7)
    if last_row:
        ax.set_xlabel(f"ResNet norm '{norm}' (dimensionless)", fontsize=8)
    if first_col:
        ax.set_ylabel(_SIZE_LABEL[size], fontsize=8)
    if first_row:
        rk = ranking[(ranking["size"] == "compiled_gates") & (ranking["norm"] == norm)] if len(ranking) \
            else ranking
        rank = (f" (rank {int(rk['rank'].iloc[0])} by compiled gates)"
                if len(rk) and pd.notna(rk["rank"].iloc[0]) else "")
        ax.set_title(f"norm: {norm}{rank}", fontsize=9)


# ----------------------------------------------------------------------------------------------------------------
# 4. Pareto frontier
# ----------------------------------------------------------------------------------------------------------------

def pareto_mask(err: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Points no other point beats in both error and norm (lower is better for both)."""
    order = np.lexsort((norm, err))
    best, keep = np.inf, np.zeros(len(err), dtype=bool)
    for i in order:
        if norm[i] < best:
            keep[i], best = True, norm[i]
    return keep


def plot_pareto(nets: pd.DataFrame, path, *, norm: str | None = None, max_panels: int = 6,
                max_points: int = MAX_SCATTER) -> PlotResult:
    """Plot 4: per function, norm against achieved error, one colour per width; lines join each width's
    Pareto-optimal nets (over λ and the other settings), labelled with λ."""
    name = "pareto"
    if nets is None or nets.empty:
        return PlotResult(name, None, 0, 0, "ResNet norm against achieved error.", "no trained nets: nothing to draw")
    avail = [c[len("norm_"):] for c in nets.columns if c.startswith("norm_") and not c.endswith("_version")]
    norm = norm if norm in avail else ("block_path" if "block_path" in avail else (sorted(avail) or [None])[0])
    text = (f"ResNet norm '{norm}' of each trained net against its achieved sup error (on the verification grid), "
            f"log-log, one panel per target function and one colour per width. Lines join each width's "
            f"Pareto-optimal nets (no other net of that width has both a smaller error and a smaller norm), "
            f"labelled with their regularisation strength λ.")
    if norm is None:
        return PlotResult(name, None, 0, 0, text, "the nets carry no norm_* columns: nothing to draw")
    x_all = pd.to_numeric(nets["achieved_error"], errors="coerce").to_numpy(float)
    y_all = pd.to_numeric(nets[f"norm_{norm}"], errors="coerce").to_numpy(float)
    good = np.isfinite(x_all) & np.isfinite(y_all) & (x_all > 0) & (y_all > 0)
    df = nets.assign(_x=x_all, _y=y_all)[good]
    if df.empty:
        return PlotResult(name, None, 0, 0, text, f"no nets with a finite error and norm '{norm}'")
    counts = df.groupby("function_key").size().sort_values(ascending=False, kind="stable")
    keys = sorted(counts.index[:max_panels], key=lambda k: df.loc[df["function_key"] == k, "label"].iloc[0])
    n = len(keys)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = panel_grid(nrows, ncols, pw=3.9, ph=3.0, left=0.8, top=0.7, bottom=0.6, wgap=0.9, hgap=0.8)
    widths = sorted(df["width"].dropna().unique())
    wcol = {w: f"C{i % 10}" for i, w in enumerate(widths)}
    n_pts, n_rec, notes = 0, 0, []
    for ax, key in zip(axes.flat, keys):
        g = df[df["function_key"] == key]
        pick = g.iloc[_subsample(len(g), max_points)]
        if len(pick) < len(g):
            notes.append(f"{g['label'].iloc[0]}: {len(pick)} of {len(g)} nets drawn")
        n_pts += len(pick)
        n_rec += len(g)
        _pareto_panel(ax, g, pick, wcol, norm)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if len(counts) > n:
        notes.append(f"showing the {n} of {len(counts)} functions with the most nets")
    fig.suptitle(f"ResNet norm '{norm}' against achieved error: Pareto frontier over λ per function and width",
                 fontsize=11)
    return PlotResult(name, save_png(fig, path), n_pts, n_rec, text, "; ".join(notes))


def _pareto_panel(ax, g: pd.DataFrame, pick: pd.DataFrame, wcol: dict, norm: str) -> None:
    """One function's panel: its drawn nets (pick) per width, and each width's Pareto frontier over all its nets
    (g), labelled with λ when it has at most 8 points."""
    for wi, (w, gw) in enumerate(g.groupby("width", dropna=False)):
        c = wcol.get(w, "0.5")
        pw = pick[pick["width"] == w] if pd.notna(w) else pick[pick["width"].isna()]
        ax.scatter(pw["_x"], pw["_y"], s=16, color=c, alpha=0.55, edgecolors="none")
        front = gw[pareto_mask(gw["_x"].to_numpy(), gw["_y"].to_numpy())].sort_values("_x")
        ax.plot(front["_x"], front["_y"], "-o", color=c, ms=5, lw=1.5,
                label=f"width {int(w)}" if pd.notna(w) else "width ?")
        if len(front) <= 8:
            for k, (_, r) in enumerate(front.iterrows()):
                ax.annotate(f"λ={r['lam']:.0e}", (r["_x"], r["_y"]), textcoords="offset points",
                            xytext=(5, 4 if (k + wi) % 2 == 0 else -9), fontsize=6.5, color=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(x=0.12, y=0.08)      # room for the λ labels
    ax.grid(True, alpha=0.3)
    plain_log_axes(ax)
    ax.set_title(g["label"].iloc[0], fontsize=9)
    ax.set_xlabel("achieved sup error (target units)", fontsize=8)
    ax.set_ylabel(f"ResNet norm '{norm}' (dimensionless)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="best")

"""Plots drawn from result tables and fits. Never imports ray, mlflow or boto3 (DESIGN §3).

`plot_ladder` draws one ladder (used by `htmc circuit ladder --plot`). The five sweep plots of issue 6 take the
tidy tables of analysis.aggregate.summarize and return a `PlotResult`: where the PNG is, how many data points it
draws and how many records went into them, and a sentence for the report saying what it shows.

1. plot_ladders     C̄ against 1/ε per function, log-log, power-law and polylog fits, saturated points marked.
2. plot_phase       γ̂ over two parameters of a family, with the γ̂ = 2 contour and the theory's γ = 2 line.
3. plot_sandwich    compiled gates and C̄ at the achieved error against each ResNet norm, with fitted slopes.
4. plot_pareto      ResNet norm against achieved error, Pareto frontier over λ per function and width.
5. plot_convexity   γ̂ of mixtures of m parts against m, parts below and above γ = 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

DPI = 110
MAX_SCATTER = 20_000   # points per scatter panel; more are subsampled (uniformly at random, seed 0) for drawing


@dataclass
class PlotResult:
    name: str
    path: Path | None          # None when nothing could be drawn (`note` says why)
    n_points: int              # data points drawn
    n_records: int             # records behind the drawn points
    text: str                  # what the plot shows (for the report)
    note: str = ""             # caveats: subsampling, panels left out, missing data


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _panels(nrows: int, ncols: int, *, pw: float, ph: float, left: float = 0.8, right: float = 0.2,
            top: float = 0.9, bottom: float = 0.6, wgap: float = 0.8, hgap: float = 0.9):
    """A grid of panels of pw x ph inches with fixed margins and gaps (inches): the layout tight_layout would find
    for these plots, without its cost (it draws the figure once more)."""
    w = left + right + ncols * pw + (ncols - 1) * wgap
    h = top + bottom + nrows * ph + (nrows - 1) * hgap
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False)
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wgap / pw, hspace=hgap / ph)
    return fig, axes


def _plain_log(ax, axes: str = "xy") -> None:
    """Log axes labelled with plain numbers (0.05, 20, 3000) at 1-2-5 steps instead of 5×10^-2."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        if axis.get_scale() != "log":
            continue
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        axis.set_major_formatter(fmt)
        axis.set_minor_locator(NullLocator())   # 1-2-5 majors are enough; minor ticks cost drawing time


def _fmt_ci(lo, hi) -> str:
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "[unbounded]"
    return f"[{lo:.2f}, {hi:.2f}]"


def _fmt_gamma_ci(lo, hi) -> str:
    """A ladder fit's γ interval: null means it was not reported, with <= 3 fitted rungs (DESIGN §2.3)."""
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)) or \
            (isinstance(hi, float) and math.isnan(hi)):
        return "n/a (≤3 rungs)"
    return _fmt_ci(lo, hi)


def _model_label(fit: dict) -> str:
    """The model choice of a fit, with ΔAIC = AIC(polylog) − AIC(power) (negative favours polylog)."""
    pm, d = fit.get("preferred_model"), fit.get("delta_aic")
    dtxt = f"ΔAIC = {d:.1f}" if _finite(d) else ""
    if pm == "inconclusive":
        return f"model choice inconclusive ({dtxt})" if dtxt else "model choice inconclusive"
    if isinstance(pm, str):
        return f"preferred: {pm}" + (f" ({dtxt})" if dtxt else "")
    return "no model choice (2 points, or ε ≥ 1)"


def _finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and np.isfinite(v)


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
    if fit and _finite(fit.get("gamma")):
        xs = np.geomspace(inv.min(), inv.max(), 100)
        ci = fit.get("gamma_ci") or [None, None]
        ax.loglog(xs, fit["c"] * xs ** fit["gamma"], "-", color="C1",
                  label=f"power: γ̂ = {fit['gamma']:.2f} {_fmt_gamma_ci(*ci)}")
        if fit.get("polylog") and all(_finite(v) for v in fit["polylog"]) and np.all(xs > 1):
            a, b = fit["polylog"]
            ax.loglog(xs, a * np.log2(xs) ** b, "--", color="C2", label=f"polylog: {a:.3g}·log2(1/ε)^{b:.2f}")
    ax.grid(True, alpha=0.3)
    _plain_log(ax)
    ax.legend(fontsize=legend_size, loc="upper left")
    return int(eps.size)


def plot_ladder(eps, sizes, fit: dict | None, title: str, path: str | Path) -> Path:
    """Circuit size against 1/ε, log-log, with the power-law and polylog fits and excluded points marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    _draw_ladder(ax, eps, sizes, fit["kept"] if fit else None, fit)
    ax.set_xlabel("1/ε (inverse sup-norm error)")
    ax.set_ylabel("circuit size (B2 gates)")
    pref = f" — {_model_label(fit)}" if fit and _finite(fit.get("gamma")) else ""
    ax.set_title(f"{title}{pref}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _fit_dict(f: pd.Series) -> dict | None:
    if not _finite(f.get("gamma")):
        return None
    return {"gamma": f["gamma"], "c": f["c"], "gamma_ci": [f["gamma_lo"], f["gamma_hi"]],
            "polylog": [f["polylog_a"], f["polylog_b"]] if _finite(f.get("polylog_a")) else None,
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
    fig, axes = _panels(nrows, ncols, pw=3.5, ph=2.6, left=0.75, top=0.95, bottom=0.5, wgap=0.8, hgap=0.85)
    groups = points.groupby("function_key").indices
    n_pts = 0
    for ax, (_, f) in zip(axes.flat, shown.iterrows()):
        p = points.iloc[groups[f["function_key"]]].sort_values("eps", ascending=False)
        n_pts += _draw_ladder(ax, p["eps"], p["cbar"], p["kept"], _fit_dict(f), legend_size=7)
        th = f" · theory γ = {f['gamma_theory']:.2g}" if _finite(f.get("gamma_theory")) else ""
        pref = _model_label(f) if _finite(f.get("gamma")) else f"no fit: {f.get('fit_error') or ''}"
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
    return PlotResult(name, _save(fig, path), n_pts, recs, text, note)


# ----------------------------------------------------------------------------------------------------------------
# 2. Phase diagram
# ----------------------------------------------------------------------------------------------------------------

def _edges(v: np.ndarray) -> np.ndarray:
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5]) if v[0] >= 1 else np.array([v[0] * 0.75, v[0] * 1.25])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


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
            f"sampling error; n/a where fits have ≤3 rungs) and the theory's γ. Colours "
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
        if not _finite(r["gamma"]):
            i, j = np.searchsorted(ys, r["y"]), np.searchsorted(xs, r["x"])
            ax.fill_between([xe[j], xe[j + 1]], ye[i], ye[i + 1], facecolor="none", hatch="//", edgecolor="0.5")
        th = f"theory {r['gamma_theory']:.2f}" if _finite(r["gamma_theory"]) else "theory —"
        val = (f"γ̂ = {r['gamma']:.2f}\n{_fmt_gamma_ci(r['gamma_lo'], r['gamma_hi'])}" if _finite(r["gamma"])
               else f"no fit\n({int(r['n_failed'])} failed)")
        ax.text(r["x"], r["y"], f"{val}\n{th}\nfitted {int(r['n_fitted'])} of {int(r['n_functions'])}",
                ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", alpha=0.75, edgecolor="none"))
    handles = []
    if len(xs) >= 2 and len(ys) >= 2:
        if np.isfinite(G).sum() >= 3 and np.nanmin(G) < 2 < np.nanmax(G):
            cs = ax.contour(xs, ys, np.ma.masked_invalid(G), levels=[2.0], colors="k", linewidths=2)
            handles.append(plt.Line2D([], [], color="k", lw=2, label="γ̂ = 2 (measured)"))
            del cs
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
    ax.set_title(f"Phase diagram of γ̂ for {fam} over ({xn}, {yn}){theory}\nγ > 2 is the HTMC regime", fontsize=10)
    fig.tight_layout()
    n_pts = int(np.isfinite(G).sum())
    return PlotResult(name, _save(fig, path), n_pts, int(phase["n_records"].sum()), text)


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
    fig, axes = _panels(len(sizes), len(norms), pw=3.0, ph=2.6, left=0.8, top=0.8, bottom=0.75 + 0.2 * n_leg_rows
                        + 0.35, wgap=0.55, hgap=0.45)
    n_pts, used = 0, np.zeros(len(nets), dtype=bool)
    notes = []
    for i, size in enumerate(sizes):
        y_all = pd.to_numeric(nets[size], errors="coerce").to_numpy(float) if size in nets else np.full(len(nets),
                                                                                                         np.nan)
        for j, norm in enumerate(norms):
            ax = axes[i, j]
            x_all = pd.to_numeric(nets[f"norm_{norm}"], errors="coerce").to_numpy(float)
            ok = np.flatnonzero(np.isfinite(x_all) & np.isfinite(y_all) & (x_all > 0) & (y_all > 0))
            if len(ok) == 0:
                ax.text(0.5, 0.5, f"no nets with both\n{_SIZE_LABEL[size].split(',')[0]}\nand norm {norm}",
                        transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4")
            else:
                pick = ok[_subsample(len(ok), max_points)]
                if len(pick) < len(ok):
                    notes.append(f"{size} vs {norm}: {len(pick)} of {len(ok)} nets drawn")
                keys = nets["function_key"].to_numpy()[pick]
                ax.scatter(x_all[pick], y_all[pick], s=14, c=[colors[k] for k in keys], alpha=0.8,
                           edgecolors="none")
                for k, lab in zip(nets["function_key"].to_numpy()[pick], nets["label"].to_numpy()[pick]):
                    labels.setdefault(k, lab)
                n_pts += len(pick)
                used[ok] = True
                ax.set_xscale("log")
                ax.set_yscale("log")
                r = ranking[(ranking["size"] == size) & (ranking["norm"] == norm)] if len(ranking) else ranking
                if len(r) and _finite(r["slope"].iloc[0]) and _finite(r["intercept_c"].iloc[0]):
                    r = r.iloc[0]
                    xs = np.geomspace(x_all[ok].min(), x_all[ok].max(), 50)
                    ax.plot(xs, r["intercept_c"] * xs ** r["slope"], "k-", lw=1.2,
                            label=f"slope {r['slope']:.2f} {_fmt_ci(r['slope_lo'], r['slope_hi'])}")
                    rho = (f"ρ = {r['spearman']:.2f} {_fmt_ci(r['spearman_lo'], r['spearman_hi'])}"
                           if _finite(r["spearman"]) else "ρ undefined")
                    ax.legend(fontsize=7, loc="best", title=rho, title_fontsize=7)
            ax.grid(True, alpha=0.3)
            _plain_log(ax)
            ax.tick_params(labelsize=7)
            if i == len(sizes) - 1:
                ax.set_xlabel(f"ResNet norm '{norm}' (dimensionless)", fontsize=8)
            if j == 0:
                ax.set_ylabel(_SIZE_LABEL[size], fontsize=8)
            if i == 0:
                rk = ranking[(ranking["size"] == "compiled_gates") & (ranking["norm"] == norm)] if len(ranking) \
                    else ranking
                rank = (f" (rank {int(rk['rank'].iloc[0])} by compiled gates)"
                        if len(rk) and pd.notna(rk["rank"].iloc[0]) else "")
                ax.set_title(f"norm: {norm}{rank}", fontsize=9)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[k], label=labels[k]) for k in sorted(labels)][:12]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7,
                   title="target function", title_fontsize=7, bbox_to_anchor=(0.5, 0.005))
    fig.suptitle("Sandwich: circuit size of trained ResNets against each ResNet norm (log-log)", fontsize=11)
    return PlotResult(name, _save(fig, path), n_pts, int(used.sum()), text, "; ".join(notes))


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
    fig, axes = _panels(nrows, ncols, pw=3.9, ph=3.0, left=0.8, top=0.7, bottom=0.6, wgap=0.9, hgap=0.8)
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
        _plain_log(ax)
        ax.set_title(g["label"].iloc[0], fontsize=9)
        ax.set_xlabel("achieved sup error (target units)", fontsize=8)
        ax.set_ylabel(f"ResNet norm '{norm}' (dimensionless)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if len(counts) > n:
        notes.append(f"showing the {n} of {len(counts)} functions with the most nets")
    fig.suptitle(f"ResNet norm '{norm}' against achieved error: Pareto frontier over λ per function and width",
                 fontsize=11)
    return PlotResult(name, _save(fig, path), n_pts, n_rec, text, "; ".join(notes))


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
        return PlotResult(name, None, 0, 0, text, "no mixture ladders: nothing to draw")
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
        side = ("above" if pg > 2 else "below" if pg < 2 else "at") if _finite(pg) else "unknown"
        fam = g["part_family"].iloc[0]
        lab = f"parts: {fam}, γ = {pg:.2f} ({side} 2)" if _finite(pg) else f"parts: {fam}"
        ax.errorbar(x[bounded], y[bounded], yerr=[y[bounded] - lo[bounded], hi[bounded] - y[bounded]], fmt="o-",
                    color=c, capsize=3, label=lab)
        if (~bounded).any():
            ax.plot(x[~bounded], y[~bounded], "o", mfc="none", color=c)
        ax.plot(x, y, "-", color=c, alpha=0.5)
        if _finite(pg):
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
    return PlotResult(name, _save(fig, path), n_pts, int(fitted["n_records"].sum()), text, note)

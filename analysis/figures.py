"""What the plot modules (analysis.plots, analysis.net_plots) share: the Agg backend, PlotResult, saving a PNG, a
fixed panel grid, log axes with plain numbers, and number formats. Never imports ray, mlflow or boto3."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

DPI = 110


@dataclass
class PlotResult:
    name: str
    path: Path | None          # None when nothing could be drawn (`note` says why)
    n_points: int              # data points drawn
    n_records: int             # records behind the drawn points
    text: str                  # what the plot shows (for the report)
    note: str = ""             # caveats: subsampling, panels left out, missing data


def save_png(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def panel_grid(nrows: int, ncols: int, *, pw: float, ph: float, left: float = 0.8, right: float = 0.2,
               top: float = 0.9, bottom: float = 0.6, wgap: float = 0.8, hgap: float = 0.9):
    """A grid of panels of pw x ph inches with fixed margins and gaps (inches): the layout tight_layout would find
    for these plots, without its cost (it draws the figure once more)."""
    w = left + right + ncols * pw + (ncols - 1) * wgap
    h = top + bottom + nrows * ph + (nrows - 1) * hgap
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False)
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wgap / pw, hspace=hgap / ph)
    return fig, axes


def plain_log_axes(ax, axes: str = "xy") -> None:
    """Log axes labelled with plain numbers (0.05, 20, 3000) at 1-2-5 steps instead of 5×10^-2."""
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        if axis.get_scale() != "log":
            continue
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        axis.set_major_formatter(fmt)
        axis.set_minor_locator(NullLocator())   # 1-2-5 majors are enough; minor ticks cost drawing time


def fmt_interval(lo, hi) -> str:
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "[unbounded]"
    return f"[{lo:.2f}, {hi:.2f}]"


def is_finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and np.isfinite(v)

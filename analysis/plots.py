"""Plots drawn from result tables and fits. Never imports ray, mlflow or boto3 (DESIGN §3)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_ladder(eps, sizes, fit: dict | None, title: str, path: str | Path) -> Path:
    """Circuit size against 1/ε, log-log, with the power-law and polylog fits and excluded points marked."""
    eps, sizes = np.asarray(eps, float), np.asarray(sizes, float)
    inv = 1.0 / eps
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    kept = np.asarray(fit["kept"], bool) if fit else np.ones(eps.size, bool)
    ax.loglog(inv[kept], sizes[kept], "o", color="C0", label="C̄(f, ε) (verified)")
    if (~kept).any():
        ax.loglog(inv[~kept], sizes[~kept], "x", color="gray", label="saturated (not fitted)")
    if fit:
        xs = np.geomspace(inv.min(), inv.max(), 100)
        ax.loglog(xs, fit["c"] * xs ** fit["gamma"], "-", color="C1",
                  label=f"power: γ̂ = {fit['gamma']:.2f} [{fit['gamma_ci'][0]:.2f}, {fit['gamma_ci'][1]:.2f}]")
        if fit.get("polylog"):
            a, b = fit["polylog"]
            ax.loglog(xs, a * np.log2(xs) ** b, "--", color="C2", label=f"polylog: {a:.3g}·log2(1/ε)^{b:.2f}")
    ax.set_xlabel("1/ε (inverse sup-norm error)")
    ax.set_ylabel("circuit size (B2 gates)")
    pref = f" — preferred: {fit['preferred_model']}" if fit and fit.get("preferred_model") else ""
    ax.set_title(f"{title}{pref}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

"""A ladder of ε: C̄(f, ε_j) for ε_j = ε_0 2^-j, then the rate fits of DESIGN §2.3."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from htmc.rates.fits import fit_ladder, LadderFit
from htmc.synthesis.search import search, SearchResult


@dataclass
class Ladder:
    eps: list[float]
    results: list[SearchResult]
    fit: LadderFit | None
    fit_error: str = ""

    def sizes(self) -> np.ndarray:
        return np.array([r.best.gates if r.best else np.nan for r in self.results], dtype=float)

    def exact_rounded(self) -> np.ndarray:
        """Per rung: is its best circuit the exactly rounded one (SearchResult.exact_rounded; False if absent)."""
        return np.array([bool(getattr(r, "exact_rounded", False)) for r in self.results], dtype=bool)


def ladder_eps(eps0: float, steps: int) -> list[float]:
    """The rungs eps_j = eps0 2^-j, j < steps (DESIGN §2.3): one formula, so that a compiled net's rungs equal
    the ladder's floats exactly and join with C̄ by value."""
    return [eps0 * 2.0 ** -j for j in range(steps)]


def check_ladder(target, eps0: float, steps: int, *, domain: str = "box", bits: int | None = None,
                 methods=None, max_inputs: int | None = None) -> None:
    """Raise ValueError, before any search runs, for a ladder that cannot complete: too few rungs, eps0 not a
    finite number > 0, or a last rung eps0·2^-(steps-1) that needs more input bits than circuit search handles
    (feasibility only gets harder as eps shrinks, so checking the last rung covers them all). methods=None is
    search's default, which adds decomp and lupanov on the rungs past 16 input bits; named methods that cannot
    reach the last rung get an error that names the --methods to use (issue 23)."""
    from htmc.synthesis.search import _resolutions, DEFAULT_METHODS, max_inputs_for, reach_hint, WIDE_METHODS
    if methods is None:
        methods = list(DEFAULT_METHODS) + list(WIDE_METHODS)
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"a ladder needs --steps >= 2 to fit a rate, got {steps}")
    if not (isinstance(eps0, (int, float, np.integer, np.floating)) and np.isfinite(eps0) and eps0 > 0):
        raise ValueError(f"eps0 must be > 0 and finite, got {eps0}")
    last = eps0 * 2.0 ** -(steps - 1)
    if domain == "box" and bits is None:
        try:
            _resolutions(target, last, domain, None, max_inputs or max_inputs_for(methods))
        except ValueError as e:
            hint = reach_hint(methods) if max_inputs is None else ""
            raise ValueError(f"the ladder's last rung (eps={last:.3g}, step {steps - 1}) cannot be searched: {e}"
                             f"{hint or '; use fewer steps or a larger eps0'}") from None


def run_ladder(target, eps0: float, steps: int, *, domain: str = "box", methods=None,
               budget_s: float = 60, gammas=(2, 3, 4), bits: int | None = None, thorough: bool = True,
               max_inputs: int | None = None, progress: Callable[[int, SearchResult], None] | None = None) -> Ladder:
    """Search every rung, then fit the sizes. Rungs with no verified circuit or with 0 gates (a constant or a
    wire, below the power-law regime) do not enter the fits. Each rung's `exact_rounded` (its circuit is the
    exactly rounded one, grid domain only) tells the fit which rungs can be saturated (DESIGN §2.3). methods=None:
    each rung's search picks search's default methods for its eps (decomp and lupanov join past 16 input bits)."""
    check_ladder(target, eps0, steps, domain=domain, bits=bits, methods=methods, max_inputs=max_inputs)
    eps = ladder_eps(eps0, steps)
    results = []
    for j, e in enumerate(eps):
        results.append(search(target, e, domain, methods, budget_s, bits, max_inputs=max_inputs, thorough=thorough))
        if progress:
            progress(j, results[-1])
    ladder = Ladder(eps, results, None)
    sizes = ladder.sizes()
    use = np.isfinite(sizes) & (sizes > 0)
    try:
        ladder.fit = fit_ladder(np.array(eps)[use], sizes[use], gammas, exact_rounded=ladder.exact_rounded()[use])
    except ValueError as e:
        ladder.fit_error = str(e)
    return ladder

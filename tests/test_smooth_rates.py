"""Analytic functions are polylog, not power law (DESIGN §2.3): with structured arithmetic in the portfolio,
sin and exp prefer the polylog model and their local slopes fall as ε shrinks."""
import numpy as np
import pytest

from conftest import BACKGROUND
from htmc.targets import make_function
from htmc.rates.ladder import run_ladder


def ladder_of(name):
    return run_ladder(make_function(name), 2 ** -4, 7, methods=["arith", "table"], budget_s=30, thorough=False)


for _name in ("sin", "exp"):        # in conftest's background worker
    BACKGROUND.job(f"test_analytic_functions_prefer_polylog[{_name}]", ladder_of, _name)


@pytest.mark.parametrize("name", ["sin", "exp"])
def test_analytic_functions_prefer_polylog(name, request):
    ladder = BACKGROUND.result(request)             # ladder_of(name)
    fit = ladder.fit
    sizes = ladder.sizes()
    assert np.all(np.isfinite(sizes)) and np.all(np.diff(sizes) > 0)
    assert all(r.best.max_error <= e for r, e in zip(ladder.results, ladder.eps))
    assert fit.preferred_model == "polylog", fit.to_json()
    slopes = np.array(fit.local_slopes)
    assert slopes[-3:].mean() < slopes[:3].mean() and slopes[-1] < slopes[0]
    # a power law would need gamma near 1 over this range (table sizes); analytic ones stay far below
    assert fit.gamma < 0.8

"""The contract every registered search method passes (issue 15: "every new method passes the method contract
test"): on a few small problems, every attempt it returns either has no circuit (and says why in its note) or a
circuit that the verifier, run again here, finds within eps; its method and version are the registry's; a method
that chooses its own output format says so through its decoder, others use the problem's."""
from __future__ import annotations

import time

import pytest

from conftest import BACKGROUND
from htmc.circuits.verify import verify
from htmc.synthesis import relation
from htmc.synthesis.problem import METHODS, Problem
from htmc.synthesis.search import OWN_FORMAT
from htmc.targets import make_function

# (target, params, domain, eps, k): 1-D smooth, 2-D arithmetic on the grid, a mixture, 2-D Hölder on the box
PROBLEMS = [("sin", {}, "box", 0.1, 5), ("product", {}, "grid", 0.125, 3),
            ("walsh_mixture", {"m": 8, "n": 6, "seed": 0}, "box", 0.25, 6),
            ("holder_random", {"d": 2, "s": 1.0}, "box", 0.3, 4)]


def _problem(name, params, domain, eps, k, budget_s=20.0) -> Problem:
    target = make_function(name, **params)
    table = target.table(k, domain)
    shift = relation.coarsest_shift(table, eps)
    assert shift is not None, "the contract's problems must be feasible at their k"
    return Problem(target, table, eps, relation.code_space(table, eps, shift), time.monotonic() + budget_s)


def problems_of(method):
    if method == "exact":
        return [("product", {}, "grid", 0.25, 2)]      # SAT exact synthesis: 4 input bits at most
    if method.startswith("abc"):
        return PROBLEMS[::3]      # its portfolio is the slow part of this file; 1-D and 2-D cover its branches
    return PROBLEMS


def attempts_of(method):
    """The method's attempts on each of its problems (each problem made afresh, with its own deadline)."""
    return [METHODS.get(method)(_problem(*spec)) for spec in problems_of(method)]


for _method in ("abc", "abc_round"):      # ABC's portfolio (~11 and ~2 s), in conftest's background worker
    BACKGROUND.job(f"test_every_attempt_is_verified_and_versioned[{_method}]", attempts_of, _method)


@pytest.mark.parametrize("method", sorted(METHODS.names()))
def test_every_attempt_is_verified_and_versioned(method, request):
    problems = problems_of(method)
    results = BACKGROUND.result(request) if method in ("abc", "abc_round") else attempts_of(method)
    assert len(results) == len(problems)
    n_verified = 0
    for spec, attempts in zip(problems, results):
        p = _problem(*spec)      # the same table and code space as the one the attempts were made for
        for a in attempts:
            n_verified += a.verified
            assert (a.method, a.method_version) == (method, METHODS.version(method))
            if a.circuit is None:
                assert a.gates is None and not a.verified and a.note, (method, spec, a)
                continue
            v = verify(a.circuit, p.table)
            assert a.verified and v.within(p.eps) and a.max_error == v.max_error, (method, spec, a)
            assert a.gates == a.circuit.size and a.bits_in == p.table.n_inputs
            if method not in OWN_FORMAT:
                assert (a.shift, a.offset) == (p.space.decoder.shift, p.space.decoder.offset)
    assert n_verified >= 1, f"{method} verified nothing on the contract's problems: the contract checked nothing"


def test_an_unknown_method_is_named_with_a_suggestion():
    with pytest.raises(Exception, match="did you mean 'datapath'"):
        METHODS.get("datapth")

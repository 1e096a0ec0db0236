"""Issue 23: the search's defaults give the tool's best. Cheap, structured methods run first, every method that
did not run says why in `attempts`, and past 16 input bits the default methods include the ones that go there."""
from __future__ import annotations

import dataclasses

import pytest

from htmc.rates.ladder import check_ladder
from htmc.synthesis.problem import METHODS, make_attempt
from htmc.synthesis.search import DEFAULT_METHODS, default_methods, search
from htmc.targets import make_function


def test_structured_methods_run_before_table_synthesis_whatever_the_order_given():
    r = search(make_function("product"), 2.0 ** -3, "grid", methods=["abc_round", "datapath", "table"], budget_s=60,
               bits=3)
    order = list(dict.fromkeys(a.method for a in r.attempts))
    assert order == ["table", "datapath", "abc_round"]
    ok = [a for a in r.attempts if a.verified]
    assert r.best.gates == min(a.gates for a in ok) and all(a.max_error <= 2.0 ** -3 for a in ok)
    assert {a.method for a in ok} == {"table", "datapath", "abc_round"}


def test_methods_that_did_not_run_say_why():
    r = search(make_function("product"), 2.0 ** -4, "grid", methods=["table", "exact", "arith", "mc", "abc"],
               budget_s=1e-9, bits=4)
    # the baseline (two code strategies) runs even with no budget: a search always has a circuit. After it nothing
    # runs: not the others (arith and mc choose their own step: once), nor the baseline at the finer step (last)
    assert r.best.method == "table" and r.best.shift == r.attempts[0].shift == r.attempts[1].shift
    assert [(a.method, a.note) for a in r.attempts[2:]] == [(m, "not run: the budget was spent") for m in
                                                           ("exact", "exact", "arith", "mc", "abc", "abc", "table")]
    assert r.attempts[-1].shift == r.best.shift + 1
    r = search(make_function("product"), 2.0 ** -4, "grid", methods=["table", "exact", "arith", "mc"],
               budget_s=30, bits=4)
    notes = {a.method: a.note for a in r.attempts if not a.verified}
    assert notes == {"exact": "not applicable: more than 4 input bits (SAT exact synthesis is for tiny tables)",
                     "arith": "not applicable: 1-d targets only", "mc": "not applicable: not a mixture of registered parts"}


def test_a_candidate_that_fails_verification_is_dropped_with_a_note():
    def wrong(problem):      # a method with a bug: the table's circuit with its output bits reversed
        good = METHODS.get("table")(problem)[0].circuit
        return [make_attempt(problem, "issue23_wrong", "bug", dataclasses.replace(good, outputs=good.outputs[::-1]),
                             0.0)]
    if "issue23_wrong" not in METHODS:
        METHODS.register("issue23_wrong", "1", wrong)
    r = search(make_function("product"), 0.0, "grid", methods=["table", "issue23_wrong"], budget_s=30, bits=3)
    dropped = [a for a in r.attempts if a.method == "issue23_wrong"]
    assert r.best.method == "table" and len(dropped) == 2          # one per output step
    assert all(not a.verified and a.gates is None and a.note.startswith("dropped: a circuit failed verification")
               for a in dropped)


def test_past_16_bits_lupanov_runs_first(monkeypatch):
    """There the multiplexer tree is slow (it spent the issue's 18-bit rung's budget alone); lupanov is fast."""
    from htmc.synthesis import search as search_module
    table = make_function("product").table(4, "grid")                  # 8 input bits
    methods = ["table", "abc", "decomp", "lupanov"]
    names = [name for name, _, _ in search_module._slots(table, 2.0 ** -4, methods, True)]
    assert names == ["table", "abc", "abc", "decomp", "decomp", "lupanov", "lupanov", "table"]
    monkeypatch.setattr(search_module, "MAX_ABC_INPUTS", 6)           # as if these 8 bits were past 16
    names = [name for name, _, _ in search_module._slots(table, 2.0 ** -4, methods, True)]
    assert names == ["lupanov", "lupanov", "table", "decomp", "decomp", "abc", "abc", "table"]


def test_default_methods_go_past_16_bits_only_where_a_rung_needs_it():
    f = make_function("holder_random", d=2, s=0.75)
    assert default_methods(f, 0.1) == list(DEFAULT_METHODS)
    assert default_methods(f, 0.0125) == list(DEFAULT_METHODS) + ["decomp", "lupanov"]
    assert default_methods(f, 0.0, "grid", bits=9) == list(DEFAULT_METHODS) + ["decomp", "lupanov"]
    # the ladder (its last rung, 0.0125, needs 18 bits): named methods that stop at 16 get the flag to use
    with pytest.raises(ValueError, match=r"use --methods table,abc,decomp,lupanov \(a spec: methods: "
                                         r"\[table, abc, decomp, lupanov\]\)"):
        check_ladder(f, 0.4, 6, methods=["table", "abc"])

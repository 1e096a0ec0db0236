"""htmc.resnets.to_circuit: a trained ResNet as a verified binary circuit (DESIGN §2.4 'Compiling to a circuit'), and the
`htmc resnet train` command (jobs/resnet_cli.py)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from htmc.circuits.circuit import output_codes
from htmc.resnets import bit_search
from htmc.resnets.bit_search import compile_search
from htmc.resnets.compile_ladder import FLOAT_SHARE, compile_at, compile_ladder
from htmc.resnets.to_circuit import compile_net, emulate, float_error
from htmc.targets import make_function
from htmc.resnets.model import init_one, to_numpy
from htmc.targets.table import IntervalTable
from htmc.circuits.verify import verify


@pytest.fixture
def one_thread():
    """Tiny nets train ~30x faster on one torch thread on a loaded machine; restore the setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def teacher_net(target):
    """The weights of a resnet_teacher target as a to_numpy net: the float net is exact on its own target."""
    w = target.weights
    return {"W_in": w["W_in"], "b_in": w["b_in"], "A": np.stack(w["A"]), "B": np.stack(w["B"]),
            "c": np.stack(w["c"]), "W_out": w["W_out"], "b_out": w["b_out"]}


@pytest.fixture(scope="module")
def teacher():
    t = make_function("resnet_teacher", d=1, width=6, depth=2, rank=2, seed=1)
    return teacher_net(t), t.table(8, "box")


@pytest.fixture(scope="module")
def absdiff():
    """|x0 - x1| exactly: h0 = (x0 - x1, x1 - x0), h1 = h0 + 2 relu(h0), f = (h1_0 + h1_1) / 2."""
    net = {"W_in": np.array([[1.0, -1.0], [-1.0, 1.0]]), "b_in": np.zeros(2), "A": 2 * np.eye(2)[None],
           "B": np.eye(2)[None], "c": np.zeros((1, 2)), "W_out": np.array([[0.5, 0.5]]), "b_out": np.zeros(1)}
    return net, make_function("absdiff").table(5, "box")


@pytest.fixture(scope="module")
def random_net():
    """An untrained net with mixed-sign weights and live relus in 2 blocks, d = 2 (bit-exactness only)."""
    p = init_one(2, 4, 2, 3, seed=3)
    return {k: v.numpy().copy() for k, v in p.items()}


@pytest.fixture(scope="module")
def sin_net():
    from htmc.resnets.training import train_one, TrainConfig
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = train_one(make_function("sin"), TrainConfig(width=4, depth=2, rank=2, lam=1e-4, steps=300, lr=3e-2,
                                                        seed=0))
    finally:
        torch.set_num_threads(n)
    assert r.status == "ok"
    return r.params


# ---------------------------------------------------------------- bit-exactness against the numpy emulation

@pytest.mark.parametrize("bits", [(3, 2), (5, 7), (9, 4), (2, 12)])  # (2, 12): h_0 needs no rounding
@pytest.mark.parametrize("method", ["fused", "const_mul"])
@pytest.mark.parametrize("domain", ["box", "grid"])
def test_circuit_equals_emulation_on_every_code(random_net, bits, method, domain):
    table = make_function("absdiff").table(4, domain)
    em = emulate(random_net, table, *bits)
    c = compile_net(random_net, table, *bits, optimize=False, method=method)
    assert np.array_equal(output_codes(c), em.u)
    assert c.decoder == em.decoder
    assert verify(c, table).max_error == em.max_error


def test_optimized_circuits_equal_emulation(teacher, absdiff, sin_net):
    for net, table, bits in [(teacher[0], teacher[1], (6, 6)), (absdiff[0], absdiff[1], (3, 4)),
                             (sin_net, make_function("sin").table(6, "box"), (5, 5))]:
        em = emulate(net, table, *bits)
        raw = compile_net(net, table, *bits, optimize=False)
        opt = compile_net(net, table, *bits, optimize=True)
        assert opt.size <= raw.size
        assert np.array_equal(output_codes(opt), em.u) and np.array_equal(output_codes(raw), em.u)


def test_depth_zero_net_is_affine(random_net):
    net = {**random_net, "A": np.zeros((0, 4, 3)), "B": np.zeros((0, 3, 4)), "c": np.zeros((0, 3))}
    table = make_function("product").table(4)
    em = emulate(net, table, 6, 6)
    assert np.array_equal(output_codes(compile_net(net, table, 6, 6, optimize=False)), em.u)


def test_emulation_tracks_the_float_net(teacher):
    net, table = teacher
    from htmc.resnets.to_circuit import cell_points
    from htmc.resnets.numpy_net import forward_numpy
    em = emulate(net, table, 16, 16)
    assert np.abs(em.values - forward_numpy(net, cell_points(table))).max() < 1e-3


# ---------------------------------------------------------------- the bit search

def _pareto_minimal(res, eps):
    err = {(w, a): e for w, a, e, _ in res.tried}
    for p in [(res.w_bits - 1, res.a_bits), (res.w_bits, res.a_bits - 1)]:
        assert p not in err or err[p] > eps, f"{p} also emulates within eps: {(res.w_bits, res.a_bits)} is not fewest"


@pytest.mark.parametrize("case,eps,optimize", [("teacher", 0.05, True), ("teacher", 0.02, False),
                                               ("absdiff", 0.04, False), ("sin", 0.3, False)])
def test_search_verifies_within_eps_with_fewest_bits(teacher, absdiff, sin_net, case, eps, optimize):
    if case == "sin":
        net, table = sin_net, make_function("sin").table(6, "box")
    else:
        net, table = {"teacher": teacher, "absdiff": absdiff}[case]
    res = compile_search(net, table, eps, optimize=optimize, budget_s=60)
    assert res.circuit is not None, res.reason
    v = verify(res.circuit, table)
    assert v.within(eps) and v.max_error == res.max_error <= eps
    assert res.gates == res.circuit.size > 0
    _pareto_minimal(res, eps)
    built = [t for t in res.tried if t[3] is not None]
    assert (res.w_bits, res.a_bits, res.max_error, res.gates) in built
    assert res.gates == min(t[3] for t in built if t[2] <= eps)


def test_staircase_finds_exactly_the_pareto_minimal_pairs(teacher):
    net, table = teacher
    eps, bits = 0.03, range(2, 13)
    full = {(w, a): emulate(net, table, w, a).max_error for w in bits for a in bits}
    ok = [p for p, e in full.items() if e <= eps]
    pareto = {p for p in ok if not any(o != p and o[0] <= p[0] and o[1] <= p[1] for o in ok)}
    res = compile_search(net, table, eps, bits=bits, optimize=False)
    built = {(w, a): g for w, a, _, g in res.tried if g is not None}
    assert set(built) == pareto and len(res.tried) < len(full)
    assert all(full[(w, a)] == e for w, a, e, _ in res.tried)
    assert res.gates == min(compile_net(net, table, *p, optimize=False).size for p in pareto)


def test_search_reports_a_float_net_that_is_too_inaccurate(sin_net):
    table = make_function("sin").table(6, "box")
    fe = float_error(sin_net, table)
    res = compile_search(sin_net, table, fe / 2)
    assert res.circuit is None and res.gates is None and res.tried == []
    assert res.float_error == fe and "float net itself is too inaccurate" in res.reason and f"{fe:.6g}" in res.reason


def test_more_bits_smaller_error_and_more_gates(teacher):
    net, table = teacher
    errs, gates = {}, {}
    for b in (3, 4, 6, 8, 12):
        errs[b] = emulate(net, table, b, b).max_error
        gates[b] = compile_net(net, table, b, b, optimize=False).size
    assert errs[3] > errs[4] > errs[6] > errs[8] > errs[12] >= float_error(net, table)
    assert gates[3] < gates[4] < gates[6] < gates[8] < gates[12]
    # fewer bits that verify at a looser eps
    loose, tight = (compile_search(net, table, e, optimize=False) for e in (0.1, 0.02))
    assert loose.w_bits + loose.a_bits < tight.w_bits + tight.a_bits and loose.gates < tight.gates


# ---------------------------------------------------------------- sparsity saves gates

def test_pruned_net_compiles_to_fewer_gates(teacher, sin_net):
    for net, table, bits in [(sin_net, make_function("sin").table(6, "box"), (4, 4)), (*teacher, (6, 6))]:
        pruned = {k: v.copy() for k, v in net.items()}
        for name in ("A", "B", "W_out"):  # zero the smaller half of the non-zero weights
            v = pruned[name]
            v[np.abs(v) < np.median(np.abs(v[v != 0]))] = 0.0
        assert sum(int((v != 0).sum()) for v in pruned.values()) < sum(int((v != 0).sum()) for v in net.values())
        dense_c = compile_net(net, table, *bits)
        pruned_c = compile_net(pruned, table, *bits)
        assert pruned_c.size < dense_c.size
        assert np.array_equal(output_codes(pruned_c), emulate(pruned, table, *bits).u)


def test_zero_weights_emit_nothing(absdiff):
    net, table = absdiff
    dead = {k: v.copy() for k, v in net.items()}
    dead["W_out"][:] = 0.0
    dead["b_out"][:] = 0.25
    c = compile_net(dead, table, 4, 4, optimize=False)
    assert c.size == 0 and verify(c, IntervalTable.exact(np.full(1 << 10, 0.25), 2, 5)).max_error == 0


# ---------------------------------------------------------------- input checks

def test_bad_inputs_are_clear_errors(absdiff, random_net):
    net, table = absdiff
    with pytest.raises(ValueError, match="input dimension 2 but the table has d=1"):
        emulate(net, make_function("sin").table(4), 4, 4)
    with pytest.raises(ValueError, match="w_bits must be an int >= 0"):
        emulate(net, table, -1, 4)
    with pytest.raises(ValueError, match="unknown compile method 'csd'"):
        compile_net(net, table, 4, 4, method="csd")
    with pytest.raises(ValueError, match="missing parameters"):
        emulate({"W_in": net["W_in"]}, table, 4, 4)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        compile_search(net, table, -0.1)


def test_one_resolution_rule_for_the_cli_and_the_ladder(teacher):
    """compile_at (the CLI's --compile-eps and resnet_fit) and compile_ladder (resnet_compile) pick the same k: the
    smallest k whose float cell error is within FLOAT_SHARE*eps, or the next finer one (issue 21 B)."""
    net, _ = teacher
    t = make_function("resnet_teacher", d=1, width=6, depth=2, rank=2, seed=1)
    one = compile_at(net, t, 0.05, budget_s=20)
    assert one["verified"] and one["max_error"] <= 0.05
    assert one["k"] == compile_ladder(net, t, [0.05], budget_s=20)[0]["k"]
    k0 = one["ks_tried"][0]
    assert one["ks_tried"] == [k0, k0 + 1] and one["k"] in one["ks_tried"]
    assert float_error(net, t.table(k0)) <= FLOAT_SHARE * 0.05 < float_error(net, t.table(k0 - 1))


def test_the_netlist_route_never_starts_from_the_output_table(teacher, monkeypatch):
    """gates counts the net's own circuit: with ABC from the table disabled it is the same number, and it is the
    ABC-optimized netlist of one of the pairs tried; the table route only fills gates_table."""
    net, _ = teacher
    t = make_function("resnet_teacher", d=1, width=6, depth=2, rank=2, seed=1)
    with_table = compile_at(net, t, 0.03, budget_s=30, table_route=True, keep_circuit=True)

    def no_table(*a, **k):
        raise AssertionError("the netlist route called the table route")
    monkeypatch.setattr(bit_search, "_from_table", no_table)
    own = compile_at(net, t, 0.03, budget_s=30, keep_circuit=True)
    assert own["gates"] == with_table["gates"] and own["verified"]
    k, w, a = own["k"], own["w_bits"], own["a_bits"]
    raw = compile_net(net, t.table(k), w, a, optimize=False)
    assert own["gates"] <= raw.size and own["circuit"].n_inputs == k
    assert verify(own["circuit"], t.table(k)).max_error == own["max_error"] <= 0.03
    # the table route: its own column, a smaller circuit here (ABC from the 2^k output codes)
    assert with_table["gates_table"] is not None and with_table["gates_table"] < own["gates"]
    assert own["gates_table"] is None


def test_compile_at_names_bad_input(teacher):
    net, _ = teacher
    t = make_function("resnet_teacher", d=1, width=6, depth=2, rank=2, seed=1)
    with pytest.raises(ValueError, match="budget_s must be a number > 0"):
        compile_at(net, t, 0.1, budget_s=0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        compile_at(net, t, 0.0)
    with pytest.raises(ValueError, match=r"k must be an int with 1 <= k and d\*k <= 16"):
        compile_at(net, t, 0.1, k=17)
    with pytest.raises(ValueError, match="unknown compile route 'tabel': valid choices: netlist, table"):
        compile_search(net, t.table(4), 0.1, route="tabel")


# ---------------------------------------------------------------- the CLI

def run_cli(argv, capsys):
    """jobs.cli.main in this process (the `resnet` group is wired into build_parser)."""
    import jobs.cli as cli
    try:
        rc = cli.main(argv)
    except SystemExit as e:     # argparse's own errors (an invalid choice) exit from the parser, status 2
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


TRAIN = ["resnet", "train", "sin", "--width", "8", "--depth", "2", "--rank", "4", "--lam", "1e-4", "--steps", "300",
         "--seed", "0"]
KEYS = {"sup_error", "rms_error", "norms", "nnz", "steps", "seconds", "device"}
COMPILE_KEYS = {"compiled_gates", "compiled_bits", "compiled_max_error"}


def test_cli_train_json_contract(capsys, one_thread, tmp_path):
    saved = tmp_path / "params.json"       # the weights go to --save-params, not into the JSON contract
    rc, out, err = run_cli(TRAIN + ["--compile-eps", "0.1", "--json", "--save-params", str(saved)], capsys)
    payload = json.loads(out)
    params = json.loads(saved.read_text())
    assert KEYS | COMPILE_KEYS <= set(payload) and "params" not in payload, err
    assert payload["steps"] == 300 and payload["device"] == "cpu" and payload["sup_error"] > 0
    assert {"l1", "block_path", "weighted_path"} <= set(payload["norms"])
    assert set(params) == {"W_in", "b_in", "A", "B", "c", "W_out", "b_out"}
    assert np.array(params["A"]).shape == (2, 8, 4)
    # at lr 1e-3 and 300 steps the net is not within 0.1 of sin: no circuit, and the reason says so (exit 1)
    if payload["compiled_gates"] is None:
        assert rc == 1 and "float net itself is too inaccurate" in payload["compiled_reason"]
    else:
        assert rc == 0 and payload["compiled_max_error"] <= 0.1


def test_cli_train_compiles_a_verified_circuit(capsys, one_thread, tmp_path):
    blif = tmp_path / "net.blif"
    rc, out, err = run_cli(["resnet", "train", "sin", "--width", "4", "--depth", "2", "--rank", "2", "--lam", "1e-4",
                            "--steps", "300", "--lr", "3e-2", "--compile-eps", "0.35", "--compile-bits", "6",
                            "--save", str(blif), "--json"], capsys)
    payload = json.loads(out)
    assert rc == 0, payload.get("compiled_reason") or err
    assert payload["compiled_gates"] > 0 and payload["compiled_max_error"] <= 0.35
    assert set(payload["compiled_bits"]) == {"w_bits", "a_bits", "k"} and payload["compiled_bits"]["k"] == 6
    from htmc.circuits.blif import read_blif
    assert read_blif(blif.read_text()).size == payload["compiled_gates"]


@pytest.mark.parametrize("extra,needle", [
    (["--width", "-3"], "width must be > 0, got -3"),
    (["--width", "8", "--reg", "l2"], "invalid choice 'l2': did you mean 'l1'?"),
    (["--width", "8", "--device", "cuda"], "no CUDA GPU is available here"),
    (["--width", "8", "--compile-eps", "0"], "--compile-eps must be a finite number > 0"),
    (["--width", "8", "--compile-eps", "0.1", "--compile-bits", "30"], "exhaustive verification allows"),
])
def test_cli_bad_input_is_a_clear_error(capsys, extra, needle):
    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rc, out, err = run_cli(["resnet", "train", "sin", "--depth", "2", "--rank", "4", "--lam", "1e-4", "--steps", "3",
                            *extra], capsys)
    assert rc == 2 and err.startswith("htmc: error: ") and needle in err and "Traceback" not in err


def test_cli_exit_status_in_a_real_process():
    p = subprocess.run([sys.executable, "-m", "jobs.cli", "resnet", "train", "sin", "--width", "8", "--depth", "2",
                        "--rank", "4", "--lam", "1e-4", "--reg", "l2"], capture_output=True, text=True)
    assert p.returncode == 2 and "did you mean 'l1'" in p.stderr and "Traceback" not in p.stderr


def test_staircase_searches_past_a_failing_top_when_the_error_is_not_monotone_in_the_bits():
    """holder_random(d=1, s=0.75) at eps 0.0125 (k = 13, 415 units) emulates to 0.01336 at (16, 16) and 0.01211
    at (15, 15): a failing (most, most) pair must not end the search (bit_search._top_passing_w). The emulated
    errors are given through the search's own emulation cache (the errors measured on that net)."""
    import time
    from types import SimpleNamespace
    from htmc.resnets.bit_search import _Search, _staircase
    table = IntervalTable(1, 2, np.zeros(4), np.ones(4))
    s = _Search({}, table, 0.0125, 1e9, False, "fused", time.monotonic())
    bits = list(range(10, 17))
    err = {16: 0.01336, 15: 0.01211, 14: 0.01367, 13: 0.0345, 12: 0.0250, 11: 0.0414, 10: 0.08}
    cache = {(id(table), w, a): SimpleNamespace(max_error=err[w] + (16 - a) * 1e-3) for w in bits for a in bits}
    ems, errors = _staircase(s, bits, cache)
    assert sorted(ems) == [(15, 16)]
    class Seen(dict):
        def __init__(self, *a):
            super().__init__(*a)
            self.read = set()

        def __getitem__(self, key):
            self.read.add(key[1:])
            return super().__getitem__(key)
    cache2 = Seen({key: SimpleNamespace(max_error=0.03) for key in cache})   # over 2 eps at the top: scan stops
    ems2, _ = _staircase(s, bits, cache2)
    assert ems2 == {} and cache2.read == {(16, 16)}

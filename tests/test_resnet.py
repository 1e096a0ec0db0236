"""ResNet model, norms and (batched) proximal training: DESIGN §2.4. Values are checked against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from htmc.resnets.norms import all_norms, block_path, l1, lipschitz_l1, norm_versions, NORMS, weighted_path
from htmc.registry import load_plugin, UnknownNameError
from htmc.resnets.model import forward, from_numpy, init_params, Layout, nnz, select, to_numpy
from htmc.resnets.numpy_net import forward_numpy, PARAM_NAMES
from htmc.resnets.training import prox_, prune_dead_units, train_batch, train_one, TrainConfig, verification_grid


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny nets on a shared 2-core machine: one intra-op thread avoids oversubscription stalls.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sin2pi(x):
    return np.sin(2 * np.pi * x[:, 0])


def cos2pi(x):
    return np.cos(2 * np.pi * x[:, 0])


def tiny_net() -> dict[str, torch.Tensor]:
    """w=2, L=1, r=1, d=1, batch of one, with numbers chosen for hand computation."""
    net = {"W_in": [[1.0], [-2.0]], "b_in": [0.5, -1.0],
           "A": [[[3.0], [-1.0]]], "B": [[[2.0, -1.0]]], "c": [[-0.5]],
           "W_out": [[1.0, -3.0]], "b_out": [2.0]}
    return {k: torch.tensor(v, dtype=torch.float64).unsqueeze(0) for k, v in net.items()}


# ------------------------------------------------------------------------------------------------ model


def test_forward_matches_hand_computation_and_numpy():
    p = tiny_net()
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    # x=0: h0 = (0.5, -1); pre = 2*0.5 - 1*(-1) - 0.5 = 1.5; h1 = h0 + (3, -1)*1.5 = (5, -2.5)
    #      f = 5 - 3*(-2.5) + 2 = 14.5
    # x=1: h0 = (1.5, -3); pre = 3 + 3 - 0.5 = 5.5; h1 = (1.5 + 16.5, -3 - 5.5) = (18, -8.5); f = 18 + 25.5 + 2
    f, tr = forward(p, x, return_intermediates=True)
    assert f.shape == (1, 2)
    assert torch.allclose(f[0], torch.tensor([14.5, 45.5], dtype=torch.float64))
    assert len(tr.h) == 2 and len(tr.pre) == 1
    assert torch.allclose(tr.pre[0][0, :, 0], torch.tensor([1.5, 5.5], dtype=torch.float64))
    assert torch.allclose(tr.h[1][0, 1], torch.tensor([18.0, -8.5], dtype=torch.float64))
    assert np.allclose(forward_numpy(to_numpy(p, 0), x.numpy()), [14.5, 45.5])


def test_init_depends_only_on_own_seed_and_roundtrips():
    batch = init_params(2, 6, 3, 4, [5, 9, 11], dtype=torch.float64)
    alone = init_params(2, 6, 3, 4, [9], dtype=torch.float64)
    for k in PARAM_NAMES:
        assert torch.equal(batch[k][1], alone[k][0])
    assert not torch.equal(batch["A"][0], batch["A"][2])
    lay = Layout(2, 6, 3, 4)
    assert lay.flatten(batch).shape == (3, lay.n_params)
    again = from_numpy([to_numpy(batch, i) for i in range(3)])
    assert all(torch.equal(again[k], batch[k]) for k in PARAM_NAMES)
    # every relu kink starts inside the domain: each unit of block 0 is active somewhere and inactive somewhere
    _, tr = forward(batch, torch.rand(4000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
                    return_intermediates=True)
    assert bool(((tr.pre[0] > 0).any(1) & (tr.pre[0] < 0).any(1)).all())


# ------------------------------------------------------------------------------------------------ norms


def test_norms_match_hand_computation():
    p = tiny_net()
    # l1: |W_in| 1+2, |b_in| .5+1, |A| 3+1, |B| 2+1, |c| .5, |W_out| 1+3, |b_out| 2
    assert l1(p).item() == pytest.approx(3 + 1.5 + 4 + 3 + 0.5 + 4 + 2)                       # 18
    # block_path: one unit, ‖A[:,0]‖_1 (‖B[0,:]‖_1 + |c|) + ‖W_in‖_1 + ‖W_out‖_1 = 4 (3 + .5) + 3 + 4
    assert block_path(p).item() == pytest.approx(4 * 3.5 + 3 + 4)                              # 21
    # weighted_path: Ũ = [1, 3, 2]; |Ã||B̃| = [3,1,0]^T [2,1,.5] -> I + 3|Ã||B̃| = [[19,9,4.5],[6,4,1.5],[0,0,1]]
    # Ũ M = [19+18, 9+12, 4.5+4.5+2] = [37, 21, 11]; |Ṽ| = [[1,.5],[2,1],[0,1]]
    # -> [37 + 42, 18.5 + 21 + 11] = [79, 50.5], sum 129.5
    assert weighted_path(p).item() == pytest.approx(79 + 50.5)
    # lipschitz_l1: |A||B| = [[6,3],[2,1]], max row sum 9 -> Lip_0 = 10; block mass 4 + 3 + .5 = 7.5 (P_1 = 1);
    # input layer (3 + 1.5) * P_0 = 4.5 * 10; output 4 + 2
    assert lipschitz_l1(p).item() == pytest.approx(7.5 + 45 + 6)                                # 58.5
    everything = all_norms(p)
    assert set(everything) >= {"l1", "block_path", "weighted_path", "lipschitz_l1"}
    assert everything["weighted_path"].shape == (1,)
    assert set(norm_versions()) == set(everything)


def test_norms_are_per_net_in_a_batch():
    p = tiny_net()
    two = {k: torch.cat([v, 2 * v]) for k, v in p.items()}
    # l1 is 1-homogeneous; block_path has degree-2 unit terms: 4*2*3.5*2 + 2*(3 + 4) = 56 + 14
    assert torch.allclose(l1(two), torch.tensor([18.0, 36.0], dtype=torch.float64))
    assert torch.allclose(block_path(two), torch.tensor([21.0, 70.0], dtype=torch.float64))


def test_block_path_invariant_under_unit_rescaling_l1_not():
    p = init_params(2, 5, 3, 4, [3], dtype=torch.float64)
    q = {k: v.clone() for k, v in p.items()}
    alpha, l, i = 3.7, 1, 2
    q["B"][0, l, i, :] *= alpha
    q["c"][0, l, i] *= alpha
    q["A"][0, l, :, i] /= alpha
    x = torch.rand(50, 2, dtype=torch.float64)
    assert torch.allclose(forward(p, x), forward(q, x))        # same function (relu is positively homogeneous)
    assert block_path(q).item() == pytest.approx(block_path(p).item(), rel=1e-12)
    assert weighted_path(q).item() == pytest.approx(weighted_path(p).item(), rel=1e-12)
    assert abs(l1(q).item() - l1(p).item()) > 1e-3


def test_register_norm_from_a_plugin_file(tmp_path):
    f = tmp_path / "my_norms.py"
    f.write_text("from htmc.resnets.norms import register_norm\n"
                 "@register_norm('test_a_only', version='7')\n"
                 "def a_only(params):\n"
                 "    '''Σ|A|.'''\n"
                 "    return params['A'].abs().flatten(1).sum(1)\n")
    try:
        load_plugin(f)
        assert NORMS.version("test_a_only") == "7"
        assert all_norms(tiny_net())["test_a_only"].item() == pytest.approx(4.0)
        with pytest.raises(UnknownNameError, match="did you mean 'block_path'"):
            NORMS.get("block_pth")
    finally:
        NORMS._entries.pop("test_a_only", None)  # keep the registry clean for other tests


# ------------------------------------------------------------------------------------------------ proximal steps


def test_prox_steps_give_exact_zeros():
    p = tiny_net()
    lay = Layout(1, 2, 1, 1)
    flat = lay.flatten(p)
    l1_flat = flat.clone()
    prox_("l1", lay, l1_flat, torch.tensor([[1.0]], dtype=torch.float64))
    # every entry, biases included, moves 1 towards 0; |θ| <= 1 becomes exactly 0
    expect = torch.sign(flat) * torch.clamp(flat.abs() - 1, min=0)
    # zeros: W_in 1; b_in .5, -1; A -1; B -1; c -.5; W_out 1
    assert torch.equal(l1_flat, expect) and int((l1_flat == 0).sum()) == 7
    bp = flat.clone()
    prox_("block_path", lay, bp, torch.tensor([[0.5]], dtype=torch.float64))
    q = lay.views(bp)
    # A is thresholded by .5 * (‖B‖_1 + |c|) = 1.75: (3, -1) -> (1.25, 0)
    assert torch.allclose(q["A"][0, 0, :, 0], torch.tensor([1.25, 0.0], dtype=torch.float64))
    # B and c by .5 * ‖A[:,0]‖_1 = 2: (2, -1, -.5) -> 0; W_in, W_out by .5; b_in, b_out untouched
    assert torch.equal(q["B"], torch.zeros_like(q["B"])) and q["c"].item() == 0.0
    assert torch.allclose(q["W_in"][0, :, 0], torch.tensor([0.5, -1.5], dtype=torch.float64))
    assert torch.equal(q["b_in"], p["b_in"]) and torch.equal(q["b_out"], p["b_out"])
    # that unit is now dead (B row 0, c 0): pruning also zeroes its A column, f unchanged
    x = torch.rand(20, 1, dtype=torch.float64)
    before = forward(q, x)
    prune_dead_units(q)
    assert torch.equal(q["A"], torch.zeros_like(q["A"])) and torch.allclose(forward(q, x), before)


def test_training_reaches_exact_zeros():
    r = train_one(sin2pi, TrainConfig(width=8, depth=2, rank=8, lam=1e-2, steps=200, lr=1e-2, n_train=128))
    assert r.status == "ok"
    zeros = sum(int((v == 0).sum()) for v in r.params.values())
    assert zeros > 0.3 * r.n_params and r.nnz == r.n_params - zeros


def test_raising_lambda_lowers_norm_and_raises_error():
    lams = [1e-4, 1e-3, 1e-2, 1e-1]
    configs = [TrainConfig(width=8, depth=2, rank=8, lam=lam, reg=reg, steps=600, lr=1e-2, seed=0, n_train=128)
               for reg in ("l1", "block_path") for lam in lams]
    res = train_batch([sin2pi] * len(configs), configs)  # one batch, mixed regs
    assert all(r.status == "ok" for r in res)
    for k, reg in enumerate(("l1", "block_path")):
        rs = res[4 * k: 4 * k + 4]
        norm = [r.norms[reg] for r in rs]
        err = [r.rms_error for r in rs]
        assert all(np.diff(norm) < 0), (reg, norm)
        assert all(np.diff(err) > 0), (reg, err)
        assert all(np.diff([r.nnz for r in rs]) <= 0)


# ------------------------------------------------------------------------------------------------ batched training


def test_batched_equals_sequential():
    configs = [TrainConfig(width=6, depth=2, rank=3, lam=1e-3, reg="l1", steps=120, lr=1e-2, seed=1,
                           n_train=64, dtype="float64"),
               TrainConfig(width=6, depth=2, rank=3, lam=3e-3, reg="block_path", steps=120, lr=3e-3, seed=2,
                           n_train=64, dtype="float64"),
               TrainConfig(width=6, depth=2, rank=3, lam=0.0, reg="l1", steps=120, lr=1e-2, seed=3,
                           n_train=64, dtype="float64", prox="plain")]
    targets = [sin2pi, cos2pi, sin2pi]
    batched = train_batch(targets, configs)
    for t, c, b in zip(targets, configs, batched):
        alone = train_one(t, c)
        assert b.status == alone.status == "ok"
        for k in PARAM_NAMES:
            np.testing.assert_allclose(b.params[k], alone.params[k], rtol=1e-7, atol=1e-9)
        assert b.sup_error == pytest.approx(alone.sup_error, rel=1e-7)
        assert b.norms["block_path"] == pytest.approx(alone.norms["block_path"], rel=1e-7)
        assert b.batch_size == 3 and alone.batch_size == 1


def test_result_fields_are_real_values():
    r = train_one(sin2pi, TrainConfig(width=8, depth=2, rank=4, lam=1e-4, steps=300, lr=1e-2, n_train=128))
    assert r.status == "ok" and r.error == ""
    grid = verification_grid(1)
    assert grid.shape == (4096, 1) and verification_grid(2).shape == (64 * 64, 2)
    err = forward_numpy(r.params, grid) - sin2pi(grid)
    assert r.sup_error == pytest.approx(np.abs(err).max(), rel=1e-4)      # float32 training, float64 check
    assert r.rms_error == pytest.approx(math.sqrt(np.mean(err ** 2)), rel=1e-3)
    assert r.sup_error < 0.5                                              # it did learn something
    assert r.n_params == Layout(1, 8, 2, 4).n_params and r.steps == 300 and r.seconds > 0
    assert r.norms["l1"] == pytest.approx(sum(np.abs(v).sum() for v in r.params.values()), rel=1e-5)
    rec = r.to_record()
    assert rec["norm_block_path"] == r.norms["block_path"] and rec["status"] == "ok" and rec["lam"] == 1e-4


def test_divergence_gives_failed_record_and_spares_the_rest():
    good = TrainConfig(width=6, depth=2, rank=3, lam=1e-3, steps=60, lr=1e-2, seed=4, n_train=64)
    bad = TrainConfig(width=6, depth=2, rank=3, lam=1e-3, steps=60, lr=1e30, seed=5, n_train=64)
    r_bad, r_good = train_batch([sin2pi, sin2pi], [bad, good])
    assert r_bad.status == "failed"
    assert "diverged" in r_bad.error and "lr=1e+30" in r_bad.error and "at step" in r_bad.error
    assert r_bad.sup_error is None and r_bad.norms == {} and r_bad.params is None and r_bad.nnz is None
    assert 1 <= r_bad.steps < 60
    alone = train_one(sin2pi, good)
    assert r_good.status == "ok"
    np.testing.assert_allclose(r_good.params["A"], alone.params["A"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_configs_give_clear_errors():
    base = dict(width=8, depth=2, rank=4, lam=1e-3)
    with pytest.raises(ValueError, match=r"width must be > 0, got -3"):
        TrainConfig(**{**base, "width": -3})
    with pytest.raises(ValueError, match=r"lam must be >= 0, got -0.1"):
        TrainConfig(**{**base, "lam": -0.1})
    with pytest.raises(ValueError, match=r"lr must be a finite number, got nan"):
        TrainConfig(**base, lr=float("nan"))
    with pytest.raises(TypeError, match=r"steps must be an int, got 2.5"):
        TrainConfig(**base, steps=2.5)
    with pytest.raises(UnknownNameError, match=r"unknown reg 'block_paht': did you mean 'block_path'"):
        TrainConfig(**base, reg="block_paht")
    with pytest.raises(ValueError, match=r"device must be 'cpu' or 'cuda'"):
        TrainConfig(**base, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
            TrainConfig(**base, device="cuda")
    c = TrainConfig(**base, steps=5)
    with pytest.raises(ValueError, match=r"must share width: net 0 has 8, net 1 has 16"):
        train_batch([sin2pi, sin2pi], [c, TrainConfig(**{**base, "width": 16}, steps=5)])
    with pytest.raises(ValueError, match=r"got 1 targets for 2 configs"):
        train_batch([sin2pi], [c, c])
    with pytest.raises(ValueError, match=r"must map \(N, d\) -> \(N,\)"):
        train_one(lambda x: x, c)
    with pytest.raises(ValueError, match=r"x must be \(N, 1\)"):
        forward(tiny_net(), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"rank must be > 0, got 0"):
        init_params(1, 2, 1, 0, [0])


def test_select_is_a_batch_of_one():
    p = init_params(1, 4, 2, 2, [0, 1], dtype=torch.float64)
    one = select(p, 1)
    assert one["A"].shape == (1, 2, 4, 2)
    x = torch.rand(7, 1, dtype=torch.float64)
    assert torch.allclose(forward(one, x)[0], forward(p, x)[1])
    assert nnz(p).tolist() == [Layout(1, 4, 2, 2).n_params] * 2


def test_student_of_a_resnet_teacher_reaches_a_norm_near_the_teachers():
    """A student trained with adequate λ on resnet_teacher fits it closely and its block_path norm lands within a
    small factor of the teacher's: not above it by much (the teacher is one feasible net), not far below it (the
    function needs that much norm). Measured: teacher 29.3, student 11.2 at λ=1e-5 (factor 2.6), sup error 0.0034."""
    from htmc.targets import make_function
    teacher = make_function("resnet_teacher", d=1, width=8, depth=2, rank=2, seed=0)
    t_norm = float(all_norms(from_numpy([teacher.weights]))["block_path"][0])
    cfg = TrainConfig(width=8, depth=2, rank=4, lam=1e-5, reg="block_path", steps=1500, lr=1e-2, seed=0, d=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: thread start-up dominates on 2 cores
    try:
        (res,) = train_batch([teacher], [cfg])
    finally:
        torch.set_num_threads(threads)
    assert res.status == "ok" and res.sup_error < 0.01
    assert t_norm / 5 <= res.norms["block_path"] <= t_norm * 1.5, (res.norms["block_path"], t_norm)


# ------------------------------------------------------------------------------------------------ GPU (issue 4)
# Run where CUDA exists (benchmarks/gpu_session.sh on a lent device); skipped on the CPU-only CI.
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@needs_cuda
def test_batched_equals_sequential_on_cuda():
    configs = [TrainConfig(width=8, depth=2, rank=4, lam=lam, reg=reg, steps=150, lr=1e-2, seed=s, n_train=128,
                           dtype="float64", device="cuda")
               for s, (lam, reg) in enumerate([(1e-3, "l1"), (3e-3, "block_path"), (0.0, "l1")])]
    targets = [sin2pi, cos2pi, sin2pi]
    for t, c, b in zip(targets, configs, train_batch(targets, configs)):
        alone = train_one(t, c)
        assert b.status == alone.status == "ok" and b.device.startswith("cuda")
        for k in PARAM_NAMES:
            np.testing.assert_allclose(b.params[k], alone.params[k], rtol=1e-6, atol=1e-8)
        assert b.sup_error == pytest.approx(alone.sup_error, rel=1e-6)


@needs_cuda
def test_cuda_training_matches_cpu_training():
    base = dict(width=8, depth=2, rank=4, lam=1e-3, reg="block_path", steps=150, lr=1e-2, seed=4, n_train=128,
                dtype="float64")
    gpu, cpu = train_one(sin2pi, TrainConfig(**base, device="cuda")), train_one(sin2pi, TrainConfig(**base))
    for k in PARAM_NAMES:
        np.testing.assert_allclose(gpu.params[k], cpu.params[k], rtol=1e-6, atol=1e-8)
    assert gpu.norms["block_path"] == pytest.approx(cpu.norms["block_path"], rel=1e-6)

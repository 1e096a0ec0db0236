"""Synthetic sweep records with the store's schema (cluster/store/schema.py), for benchmarks and scale tests.

The numbers follow the models the analysis expects (C̄ = c ε^-γ with noise, norms that grow as the error falls),
but they are made up: never mix them with results. `synthetic_records(...)` returns a pyarrow Table like
cluster.store.core's Store.load: the common columns, `sweep` and `kind`, and the per-kind columns of circuit_ladder
(with a real htmc.rates.fits fit in fit_json), circuit_search and resnet_train (compiled_gates on half of the nets).

Two shapes of a million-record sweep (benchmarks/analysis.py times both):
  typical   one ladder per target function (as a sweep spec produces them), searches on a few of those targets
            (their C̄ points change, so those are refit), and most records are trained nets.
  worst     20 ladders per target plus searches on every target: every function must be refit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from htmc.records import canonical_json

NORMS = ("l1", "block_path", "weighted_path", "lipschitz_l1")
EPS0 = 0.2      # the ladders' first ε
SCENARIOS = {
    "typical": dict(n_functions=2000, ladder_share=None, search_share=0.05, search_functions=100,
                    net_functions=200),
    "worst": dict(n_functions=1000, ladder_share=0.02, search_share=0.15, search_functions=None,
                  net_functions=None),
}


def _functions(n_functions: int) -> list[tuple[str, dict, float]]:
    """holder_random over d in {1, 2} x 5 values of s and seeds; every 10th target a mixture of m parts."""
    out = []
    ds, ss = [1, 2], [0.5, 0.625, 0.75, 0.875, 1.0]
    j = 0
    for i in range(n_functions):
        if i % 10 == 9:
            s, m = ss[(i // 10) % len(ss)], [1, 2, 4, 8][(i // 50) % 4]
            parts = [{"d": 1, "levels": 20, "name": "holder_random", "s": s, "seed": i * 8 + k} for k in range(m)]
            out.append(("mixture", {"parts": parts, "weights": [1.0 / m] * m}, 1.0 / s))
        else:
            d, s = ds[j % len(ds)], ss[(j // len(ds)) % len(ss)]
            out.append(("holder_random", {"d": d, "levels": 20 // d, "s": s, "seed": j // (len(ds) * len(ss))},
                        d / s))
            j += 1
    return out


def _common(m: int, rng, kind: str, sweep: str, failed_share: float) -> dict:
    status = np.where(rng.random(m) < failed_share, "failed", "ok")
    return {
        "task_key": [f"{x:016x}" for x in rng.integers(0, 2 ** 63, m)], "kind_version": ["1"] * m,
        "status": status.tolist(),
        "error": [None if s == "ok" else "ValueError: synthetic failure" for s in status],
        "attempt": np.ones(m, np.int64), "wall_s": rng.exponential(5.0, m), "num_cpus": np.ones(m),
        "num_gpus": np.zeros(m), "cpu_seconds": rng.exponential(5.0, m), "gpu_seconds": np.zeros(m),
        "batch_size": np.ones(m, np.int64), "device": ["cpu"] * m, "worker": ["synthetic:0"] * m,
        "git_sha": ["synthetic"] * m, "schema_version": ["1"] * m, "extra_json": [None] * m,
        "function_version": ["1"] * m, "sweep": [sweep] * m, "kind": [kind] * m,
    }


@dataclass
class _Draw:
    """What the three kinds' records are drawn from: the targets, their true rates, the ladder's ε and the rng
    (shared, in a fixed order: ladders, searches, nets)."""
    rng: np.random.Generator
    fns: list[tuple[str, dict, float]]
    fparams: list[str]
    gamma_true: np.ndarray
    eps: np.ndarray
    sweep: str
    failed_share: float

    def common(self, m: int, kind: str) -> dict:
        return _common(m, self.rng, kind, self.sweep, self.failed_share)


def synthetic_records(n: int = 1_000_000, *, scenario: str = "typical", steps: int = 8, seed: int = 0,
                      sweep: str = "synthetic", failed_share: float = 0.01, **overrides) -> pa.Table:
    cfg = {**SCENARIOS[scenario], **overrides}
    rng = np.random.default_rng(seed)
    fns = _functions(cfg["n_functions"])
    nf = len(fns)
    gamma_true = np.array([g for _, _, g in fns]) * rng.uniform(0.85, 1.1, nf)
    draw = _Draw(rng, fns, [canonical_json(p) for _, p, _ in fns], gamma_true, EPS0 * 2.0 ** -np.arange(steps), sweep,
                 failed_share)
    n_lad = nf if cfg["ladder_share"] is None else int(round(n * cfg["ladder_share"]))
    n_srch = int(round(n * cfg["search_share"]))
    tables = [_ladders(draw, n_lad, steps), _searches(draw, n_srch, cfg["search_functions"] or nf, steps),
              _nets(draw, n - n_lad - n_srch, cfg["net_functions"] or nf)]
    return pa.concat_tables(tables, promote_options="permissive")


def _ladders(draw: _Draw, n_lad: int, steps: int) -> pa.Table:
    """One ladder per function (typical) or spread over the functions (worst), with a real fit in fit_json."""
    from htmc.rates.fits import fit_ladder
    fns, eps, nf = draw.fns, draw.eps, len(draw.fns)
    f = np.arange(n_lad) % nf
    cols = draw.common(n_lad, "circuit_ladder")
    pj, pts, fits, gam = [], [], [], []
    for fi in f:
        name = fns[fi][0]
        pj.append(f'{{"bits":null,"budget_s":60,"domain":"box","eps0":{EPS0},"function":"{name}",'
                  f'"function_params":{draw.fparams[fi]},"gammas":[2,3,4],"methods":["abc"],"steps":{steps},'
                  f'"thorough":true}}')
        sizes = np.maximum(1, np.round(5 * (EPS0 / eps) ** draw.gamma_true[fi] * draw.rng.lognormal(0, 0.15, steps)))
        pts.append(json.dumps([{"function": name, "function_version": "1", "eps": float(e), "method": "abc",
                                "method_version": "1", "gates": int(c), "aig_nodes": int(c), "max_error": float(e) * .9,
                                "bits_in": 8 + j, "bits_out": 3 + j, "optimal_in_format": False, "verified": True,
                                "search_seconds": 1.0} for j, (e, c) in enumerate(zip(eps, sizes))]))
        fit = fit_ladder(eps, sizes, (2, 3, 4)).to_json()
        fits.append(json.dumps(fit))
        gam.append(fit["gamma"])
    cols.update({"function": [fns[i][0] for i in f], "params_json": pj, "eps0": np.full(n_lad, EPS0),
                 "steps": np.full(n_lad, steps, np.int64), "gamma": np.array(gam, float),
                 "gamma_lo": np.array(gam, float) - 0.1, "gamma_hi": np.array(gam, float) + 0.1,
                 "c": np.full(n_lad, 5.0), "preferred_model": ["power"] * n_lad,
                 "gamma_theory": np.array([fns[i][2] for i in f]), "fit_json": fits, "points_json": pts,
                 "fit_error": [None] * n_lad})
    return pa.table(cols)


def _searches(draw: _Draw, n_srch: int, sf: int, steps: int) -> pa.Table:
    """Searches at the ladder's ε, on the first sf functions (a few: typical; all: worst)."""
    rng, fns = draw.rng, draw.fns
    f = rng.integers(0, sf, n_srch)
    e = draw.eps[rng.integers(0, steps, n_srch)]
    gates = np.maximum(1, np.round(5 * (EPS0 / e) ** draw.gamma_true[f] * rng.lognormal(0.1, 0.3, n_srch)))\
        .astype(np.int64)
    cols = draw.common(n_srch, "circuit_search")
    cols.update({
        "function": [fns[i][0] for i in f],
        "params_json": [f'{{"bits":null,"budget_s":60,"domain":"box","eps":{ei!r},"function":"{fns[fi][0]}",'
                        f'"function_params":{draw.fparams[fi]},"methods":["arith"],"thorough":true}}'
                        for ei, fi in zip(e.tolist(), f)],
        "eps": e, "method": ["arith"] * n_srch, "method_version": ["1"] * n_srch, "gates": gates, "aig_nodes": gates,
        "max_error": e * 0.9, "bits_in": np.full(n_srch, 10, np.int64), "bits_out": np.full(n_srch, 5, np.int64),
        "optimal_in_format": np.zeros(n_srch, bool), "verified": np.ones(n_srch, bool), "search_seconds": np.ones(n_srch),
        "attempts_json": ["[]"] * n_srch})
    return pa.table(cols)


def _nets(draw: _Draw, n_net: int, nfun: int) -> pa.Table:
    """Trained nets on the first nfun functions, with norms that grow as the error falls; compiled_gates on half."""
    rng, fns = draw.rng, draw.fns
    f = rng.integers(0, nfun, n_net)
    width = rng.choice([8, 16, 32, 64], n_net)
    lam = rng.choice([0.0, 1e-5, 1e-4, 1e-3, 1e-2], n_net)
    sup = np.exp(rng.uniform(np.log(0.004), np.log(0.5), n_net))
    base = (1 / sup) ** 0.5 * rng.lognormal(0, 0.3, n_net)
    cols = draw.common(n_net, "resnet_train")
    cols.update({
        "function": [fns[i][0] for i in f],
        "params_json": [f'{{"depth":2,"device":"cpu","function":"{fns[fi][0]}","function_params":{draw.fparams[fi]},'
                        f'"lam":{la!r},"lr":0.01,"n_train":1000,"rank":16,"reg":"l1","seed":0,"steps":500,'
                        f'"width":{int(w)}}}' for fi, la, w in zip(f, lam.tolist(), width)],
        "width": width.astype(np.int64), "depth": np.full(n_net, 2, np.int64), "rank": np.full(n_net, 16, np.int64),
        "lam": lam, "reg": ["l1"] * n_net, "steps": np.full(n_net, 500, np.int64), "lr": np.full(n_net, 0.01),
        "seed": np.zeros(n_net, np.int64), "n_train": np.full(n_net, 1000, np.int64),
        "d": np.ones(n_net, np.int64), "sup_error": sup, "rms_error": sup / 3, "train_mse": (sup / 4) ** 2,
        "nnz": rng.integers(10, 500, n_net), "n_params": np.full(n_net, 600, np.int64),
        "seconds": np.ones(n_net), "batch_seconds": np.ones(n_net),
        "compiled_gates": pa.array(np.round(50 * base ** 2).astype(np.int64), mask=rng.random(n_net) < 0.5)})
    for i, nm in enumerate(NORMS):
        cols[f"norm_{nm}"] = base * (1 + i) * rng.lognormal(0, 0.1 * (i + 1), n_net)
        cols[f"norm_{nm}_version"] = ["1"] * n_net
    return pa.table(cols)

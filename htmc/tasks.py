"""Task kinds: the unit of work a sweep schedules (DESIGN §4). One registry; no Ray, MLflow or S3 here.

A kind validates its parameters before anything runs (so a bad sweep spec starts nothing), and turns
parameters into one flat result record (the per-kind columns of DESIGN §4; cluster/ adds the common ones).
Kinds that can share one computation (batched ResNet training) also give a batch key and a batched runner.

A kind also declares what the sweep service needs to know about it, so that cluster/ knows no kind by name: its
default batch size and resources, how the driver validates it (on a machine that need not have the task's
devices) and its checks against the resources the spec gives it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from htmc.records import CompileRecord, LadderRecord, SearchRecord, task_key, TrainRecord
from htmc.registry import did_you_mean, Registry
from htmc.synthesis.search import DEFAULT_METHODS

TASK_KINDS: Registry["TaskKind"] = Registry("task kind")


@dataclass(frozen=True)
class TaskKind:
    name: str
    version: str
    defaults: dict
    validate: Callable[[dict], dict]           # params -> canonical params (defaults filled), or ValueError
    run: Callable[[dict], Any]                 # canonical params -> the kind's htmc.records.Record
    batch_key: Callable[[dict], Any] | None = None        # equal keys may share one batched run
    run_batch: Callable[[list[dict]], list[dict]] | None = None
    default_batch: int = 1                     # tasks per actor call unless the spec's dispatch.batch_size says
    default_resources: dict = field(default_factory=lambda: {"num_cpus": 1.0, "num_gpus": 0.0})  # per actor
    # validate as the driver that plans the sweep does (default: validate); it need not have the task's devices
    driver_validate: Callable[[dict], dict] | None = None
    # (canonical params, resources with num_cpus and num_gpus) -> None, or ValueError when they cannot run
    driver_check: Callable[[dict, Any], None] | None = None
    # a kind that consumes another task's record: params -> (that task's kind, its key). The sweep runs such
    # tasks after the others, and `run` then gets (params, that record as a dict, or None when it has none).
    upstream: Callable[[dict], tuple[str, str]] | None = None
    upstream_kind: str | None = None           # the kind `upstream` points at (a spec's for_each is checked on it)
    upstream_param: str | None = None          # the parameter a spec's for_each fills with each upstream task's params
    # parameters that validate on their own: whether a value is valid and what it validates to depend on that value
    # only, and no other parameter's validated value depends on it. A spec grid's axes over them are validated once
    # per value instead of once per task (cluster.spec.grid; 10^6 tasks planned in seconds, issue 22 A).
    separable: tuple[str, ...] = ()


def _merge(kind: str, params: dict, defaults: dict) -> dict:
    unknown = [k for k in params if k not in defaults]
    if unknown:
        raise ValueError(f"unknown parameter '{unknown[0]}' for task kind '{kind}': "
                         f"{did_you_mean(unknown[0], list(defaults))}")
    return {**defaults, **params}


def _function(params: dict):
    from htmc.targets import make_function
    return make_function(params["function"], **(params.get("function_params") or {}))


def _pin_version(p: dict, key: str, registered, what: str):
    """Put the registered version into the validated params, so that it is part of the task key (DESIGN §4): a
    version bump schedules new work and never merges old records into new C̄. A version given in the spec must
    match the registered one, since no other version can run."""
    given = p.get(key)
    if given is not None and given != registered:
        raise ValueError(f"{key} {given!r} does not match {what}: {registered!r} is what this code runs")
    p[key] = registered


# --- circuit_search -----------------------------------------------------------------------------------------------
SEARCH_DEFAULTS = {"function": None, "function_params": {}, "function_version": None, "eps": None,
                   "domain": None, "methods": list(DEFAULT_METHODS), "method_versions": None,
                   "budget_s": 60.0, "bits": None, "thorough": True}


def _validate_search(params: dict) -> dict:
    from htmc.synthesis.problem import METHODS
    from htmc.synthesis.search import check_methods
    p = _merge("circuit_search", params, SEARCH_DEFAULTS)
    if p["function"] is None:
        raise ValueError("circuit_search needs 'function'")
    target = _function(p)
    if p["eps"] is None or not isinstance(p["eps"], (int, float)) or p["eps"] < 0:
        raise ValueError(f"eps must be a number >= 0, got {p['eps']!r}")
    p["domain"] = p["domain"] or target.domain_default
    if p["domain"] == "box" and p["eps"] == 0:
        raise ValueError("eps must be > 0 on the box domain; use domain: grid for eps = 0")
    check_methods(p["methods"])
    p["function_params"] = target.params
    _pin_version(p, "function_version", target.version, f"the registered version of '{target.name}'")
    _pin_version(p, "method_versions", {m: METHODS.version(m) for m in p["methods"]},
                 "the registered versions of the methods")
    return p


def search_record(target, eps: float, result) -> SearchRecord:
    """The record of one search: the best attempt's circuit and format, and every attempt as JSON."""
    b = result.best
    get = lambda name: getattr(b, name) if b else None
    return SearchRecord(function=target.name, function_version=target.version, gamma_theory=target.gamma_theory,
                        eps=float(eps), **{name: get(name) for name in (
                            "method", "method_version", "gates", "aig_nodes", "max_error", "k", "bits_in",
                            "bits_out", "shift", "offset")},
                        optimal_in_format=bool(b and b.optimal_in_format), exact_rounded=result.exact_rounded,
                        verified=bool(b and b.verified), search_seconds=result.seconds,
                        attempts_json=json.dumps([a.to_json() for a in result.attempts]))


def _run_search(p: dict) -> dict:
    from htmc.synthesis.search import search
    target = _function(p)
    r = search(target, p["eps"], p["domain"], p["methods"], p["budget_s"], p["bits"], thorough=p["thorough"])
    return search_record(target, p["eps"], r)


# --- circuit_ladder -----------------------------------------------------------------------------------------------
LADDER_DEFAULTS = {**SEARCH_DEFAULTS, "eps": None, "eps0": None, "steps": None, "gammas": [2, 3, 4],
                   "max_inputs": None}
del LADDER_DEFAULTS["eps"]


def _check_rungs(p: dict) -> None:
    if not isinstance(p["steps"], int) or isinstance(p["steps"], bool) or p["steps"] < 2:
        raise ValueError(f"steps must be an integer >= 2, got {p['steps']!r}")
    _check_eps0(p)


def _check_eps0(p: dict) -> None:
    if not isinstance(p["eps0"], (int, float)) or isinstance(p["eps0"], bool) or not 0 < p["eps0"] < float("inf"):
        raise ValueError(f"eps0 must be a finite number > 0, got {p['eps0']!r}")


def _check_max_inputs(v, most: int, why: str) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most:
        raise ValueError(f"max_inputs must be an integer in 1..{most} ({why}), got {v!r}")


def _validate_ladder(params: dict) -> dict:
    p = _merge("circuit_ladder", params, LADDER_DEFAULTS)
    _check_rungs(p)
    rest = _validate_search({**{k: v for k, v in p.items() if k in SEARCH_DEFAULTS}, "eps": p["eps0"]})
    rest.pop("eps")
    p = {**p, **rest}
    if p["max_inputs"] is None:   # added after ladders ran: unset, it stays out of the params, so their keys hold
        del p["max_inputs"]
    else:
        from htmc.synthesis.search import max_inputs_for
        _check_max_inputs(p["max_inputs"], max_inputs_for(p["methods"]),
                          f"the most input bits methods {p['methods']} take")
    return p


def _run_ladder(p: dict) -> LadderRecord:
    from htmc.rates.ladder import run_ladder
    target = _function(p)
    lad = run_ladder(target, p["eps0"], p["steps"], domain=p["domain"], methods=p["methods"],
                     budget_s=p["budget_s"], gammas=p["gammas"], bits=p["bits"], thorough=p["thorough"],
                     max_inputs=p.get("max_inputs"))
    fit = lad.fit.to_json() if lad.fit else {}
    points = [search_record(target, e, r).to_row() for e, r in zip(lad.eps, lad.results)]
    for pt in points:
        pt.pop("attempts_json")
    lo, hi = fit.get("gamma_ci") or (None, None)
    return LadderRecord(function=target.name, function_version=target.version, eps0=p["eps0"], steps=p["steps"],
                        gamma=fit.get("gamma"), gamma_lo=lo, gamma_hi=hi, c=fit.get("c"),
                        preferred_model=fit.get("preferred_model"), gamma_theory=target.gamma_theory,
                        fit_json=json.dumps(fit), points_json=json.dumps(points), fit_error=lad.fit_error or None)


# --- resnet_train -------------------------------------------------------------------------------------------------
TRAIN_DEFAULTS = {"function": "sin", "function_params": {}, "function_version": None, "width": 16, "depth": 2,
                  "rank": 16, "lam": 1e-3, "reg": "l1", "steps": 500, "lr": 1e-2, "seed": 0, "n_train": 1000,
                  "device": "cpu"}


def _config(p: dict):
    from htmc.resnets.training import TrainConfig
    target = _function(p)
    keys = ("width", "depth", "rank", "lam", "reg", "steps", "lr", "seed", "n_train", "device")
    return target, TrainConfig(**{k: p[k] for k in keys}, d=target.d)


def _validate_train(params: dict) -> dict:
    p = _merge("resnet_train", params, TRAIN_DEFAULTS)
    target, _ = _config(p)  # TrainConfig raises with the bad value named
    p["function_params"] = target.params
    _pin_version(p, "function_version", target.version, f"the registered version of '{target.name}'")
    return p


def _validate_train_on_driver(params: dict) -> dict:
    """_validate_train, except that a CUDA device need not exist on the machine that validates (a CPU head node
    validates GPU sweeps). The worker's own run still checks that CUDA exists where the task runs."""
    dev = params.get("device")
    if isinstance(dev, str) and dev.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            p = _validate_train({**params, "device": "cpu"})
            p["device"] = dev
            return p
    return _validate_train(params)


def _check_train_resources(p: dict, resources) -> None:
    if str(p.get("device", "cpu")).startswith("cuda") and resources.num_gpus == 0:
        raise ValueError(f"device '{p['device']}' needs resources.resnet_train.num_gpus > 0")


def _train_records(params: list[dict]) -> list[TrainRecord]:
    from htmc.resnets.training import train_batch
    pairs = [_config(p) for p in params]
    results = train_batch([t for t, _ in pairs], [c for _, c in pairs])
    from htmc.resnets.numpy_net import net_to_text
    return [TrainRecord.from_columns({**r.to_record(), "function": t.name, "function_version": t.version,
                                      "gamma_theory": t.gamma_theory,
                                      "net_text": net_to_text(r.params) if r.params is not None else None})
            for (t, _), r in zip(pairs, results)]


def _train_batch_key(p: dict):
    """Nets of one shape train together whatever their target, seed, λ or lr (htmc.resnets.training.BATCH_SHAPE_FIELDS)."""
    return tuple(p[k] for k in ("width", "depth", "rank", "steps", "n_train", "device")) + (_function(p).d,)


TASK_KINDS.register("circuit_search", "1", TaskKind("circuit_search", "1", SEARCH_DEFAULTS, _validate_search,
                                                    _run_search, separable=("budget_s",)))   # eps: see domain
TASK_KINDS.register("circuit_ladder", "1", TaskKind("circuit_ladder", "1", LADDER_DEFAULTS, _validate_ladder,
                                                    _run_ladder, separable=("eps0", "steps", "budget_s")))
TASK_KINDS.register("resnet_train", "1", TaskKind("resnet_train", "1", TRAIN_DEFAULTS, _validate_train,
                                                  lambda p: _train_records([p])[0], _train_batch_key,
                                                  _train_records, default_batch=64,
                                                  driver_validate=_validate_train_on_driver,
                                                  driver_check=_check_train_resources,
                                                  separable=("lam", "lr", "seed", "steps")))


# --- resnet_compile -----------------------------------------------------------------------------------------------
# One trained net (the resnet_train task `train`) compiled at every rung eps0 2^-j of a ladder (issue 14 A): its own
# key, so it resumes and extends; CPU actors, while training may use GPUs. A spec writes it as a group with
# `for_each: <a resnet_train group>`, which fills `train` with each of that group's tasks.
COMPILE_DEFAULTS = {"train": None, "eps0": None, "steps": None, "budget_s": 20.0, "max_inputs": 16}
MAX_COMPILE_INPUTS = 20


def _validate_compile(params: dict, *, on_driver: bool = True) -> dict:
    p = _merge("resnet_compile", params, COMPILE_DEFAULTS)
    if not isinstance(p["train"], dict):
        raise ValueError("resnet_compile needs 'train', the parameters of a resnet_train task (a spec group sets "
                         f"it with for_each: <resnet_train group>), got {p['train']!r}")
    p["train"] = (_validate_train_on_driver if on_driver else _validate_train)(p["train"])
    _check_rungs(p)
    if not isinstance(p["budget_s"], (int, float)) or not p["budget_s"] > 0:
        raise ValueError(f"budget_s must be a number > 0, got {p['budget_s']!r}")
    _check_max_inputs(p["max_inputs"], MAX_COMPILE_INPUTS, "every input code is enumerated")
    return p


def _train_key(p: dict) -> tuple[str, str]:
    return "resnet_train", task_key("resnet_train", TASK_KINDS.version("resnet_train"), p["train"])


def _compile_failed(p: dict, target, why: str) -> CompileRecord:
    return CompileRecord(function=target.name, function_version=target.version, gamma_theory=target.gamma_theory,
                         train_key=_train_key(p)[1], eps0=p["eps0"], steps=p["steps"],
                         extra={"status": "failed", "error": why})


def _run_compile(p: dict, trained: dict | None) -> CompileRecord:
    from htmc.rates.ladder import ladder_eps
    from htmc.resnets.compile_ladder import compile_ladder
    from htmc.resnets.numpy_net import net_from_text
    from htmc.resnets.to_circuit import COMPILE_VERSION
    target = _function(p["train"])
    if trained is None:
        return _compile_failed(p, target, f"the net is not trained: this sweep has no record of resnet_train task "
                                          f"{_train_key(p)[1]} (run the sweep again to train it first)")
    if trained.get("status") != "ok" or not trained.get("net_text"):
        why = (trained.get("error") or "no stored net").splitlines()[0][:300]
        return _compile_failed(p, target, f"training failed, nothing to compile: {why}")
    t0 = time.monotonic()
    # gates: the net's own circuit; gates_table: ABC from its output table, a C̄ candidate (issue 21 B)
    points = compile_ladder(net_from_text(trained["net_text"]), target, ladder_eps(p["eps0"], p["steps"]),
                            budget_s=p["budget_s"], max_inputs=p["max_inputs"], table_route=True)
    gates = [pt["gates"] for pt in points if pt.get("verified")]
    t = p["train"]
    return CompileRecord(
        function=target.name, function_version=target.version, gamma_theory=target.gamma_theory,
        train_key=_train_key(p)[1], **{k: t[k] for k in ("width", "depth", "rank", "lam", "reg", "seed")},
        sup_error=trained.get("sup_error"), nnz=trained.get("nnz"), eps0=p["eps0"], steps=p["steps"],
        compile_version=COMPILE_VERSION, rungs_compiled=len(gates), gates_min=min(gates) if gates else None,
        compile_seconds=time.monotonic() - t0, points_json=json.dumps(points),
        extra={k: v for k, v in trained.items() if k.startswith("norm_")})


# Version 2 (issue 21): a net's gates come from its own netlist only (compile v3); version 1 records could hold the
# gates of ABC run on the net's output table, so they must not resume into the sandwich. Version 3: up to 24 bits
# (compile v4), which can change the chosen bits where 16 passed too (the scan starts from the top).
TASK_KINDS.register("resnet_compile", "3", TaskKind(
    "resnet_compile", "3", COMPILE_DEFAULTS, lambda q: _validate_compile(q, on_driver=False), _run_compile,
    driver_validate=_validate_compile, upstream=_train_key, upstream_kind="resnet_train", upstream_param="train",
    separable=("eps0", "steps", "budget_s", "max_inputs")))


# --- resnet_fit ---------------------------------------------------------------------------------------------------
# One rung eps0 2^-rung of one function fitted to a least-norm net under the verifier's interval constraints and
# compiled to the net's own circuit (issue 21 A, htmc.resnets.fit). One task per rung, so ladders resume and extend.
FIT_DEFAULTS = {"function": None, "function_params": {}, "function_version": None, "eps0": None, "rung": None,
                "norm": "block_path", "seed": 0, "budget_s": 30.0, "compile_budget_s": 30.0, "max_inputs": 16,
                "max_units": 4096, "fit_version": None, "norm_versions": None}


def _validate_fit(params: dict) -> dict:
    from htmc.resnets.fit import check_objective, FIT_VERSION, finest_eps
    from htmc.resnets.norms import norm_versions
    p = _merge("resnet_fit", params, FIT_DEFAULTS)
    if p["function"] is None:
        raise ValueError("resnet_fit needs 'function'")
    target = _function(p)
    check_objective(p["norm"])
    _check_eps0(p)
    if not isinstance(p["rung"], int) or isinstance(p["rung"], bool) or p["rung"] < 0:
        raise ValueError(f"rung must be an integer >= 0 (eps = eps0 * 2^-rung), got {p['rung']!r}")
    for name in ("budget_s", "compile_budget_s"):
        if not isinstance(p[name], (int, float)) or isinstance(p[name], bool) or not p[name] > 0:
            raise ValueError(f"{name} must be a number > 0, got {p[name]!r}")
    if not isinstance(p["seed"], int) or isinstance(p["seed"], bool):
        raise ValueError(f"seed must be an integer, got {p['seed']!r}")
    if not isinstance(p["max_units"], int) or isinstance(p["max_units"], bool) or p["max_units"] < 1:
        raise ValueError(f"max_units must be an integer >= 1, got {p['max_units']!r}")
    _check_max_inputs(p["max_inputs"], MAX_COMPILE_INPUTS, "every input code is enumerated")
    eps = p["eps0"] * 2.0 ** -p["rung"]
    k, fine = finest_eps(target, p["max_inputs"])
    if eps < fine:
        raise ValueError(f"rung {p['rung']} (eps={eps:.6g}) is below what the resolution cap allows: max_inputs="
                         f"{p['max_inputs']} gives k <= {k} for d={target.d}, whose finest reachable eps is "
                         f"{fine:.6g}")
    p["function_params"] = target.params
    _pin_version(p, "function_version", target.version, f"the registered version of '{target.name}'")
    _pin_version(p, "fit_version", FIT_VERSION, "htmc.resnets.fit.FIT_VERSION")
    _pin_version(p, "norm_versions", norm_versions(), "the registered versions of the norms")
    return p


def _run_fit(p: dict):
    from htmc.records import FitRecord
    from htmc.resnets.fit import fit_and_compile, rung_columns
    target = _function(p)
    r = fit_and_compile(target, p["eps0"] * 2.0 ** -p["rung"], p["norm"], budget_s=p["budget_s"],
                        compile_budget_s=p["compile_budget_s"], max_inputs=p["max_inputs"],
                        max_units=p["max_units"], seed=p["seed"])
    return FitRecord.from_columns(rung_columns(target, p["eps0"], p["rung"], p["norm"], p["seed"], r))


def _fit_batch_key(p: dict):
    """Rungs of one dimension and objective go to one actor call (each still runs alone: an LP per rung)."""
    return (_function(p).d, p["norm"], p["max_inputs"])


TASK_KINDS.register("resnet_fit", "1", TaskKind("resnet_fit", "1", FIT_DEFAULTS, _validate_fit, _run_fit,
                                                batch_key=_fit_batch_key, default_batch=4))

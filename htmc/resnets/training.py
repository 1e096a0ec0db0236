"""Training of the ResNets of DESIGN §2.4: Adam on the MSE, then a proximal step for λ·R after every Adam step.

One batched computation trains B nets of one shape (other seeds, λ, lr or targets): the parameters of all nets
live in one (B, P) tensor (htmc.resnets.model.Layout), the forward pass is batched matrix products, and the loss is
Σ_b mean_n (f_b(x_bn) - y_bn)^2, a sum over nets of per-net means. Net b's parameters only enter term b, so
∂loss/∂θ_b is exactly the gradient net b would get alone (not scaled by B), and Adam and the proximal steps are
elementwise, so each net follows the trajectory it would follow alone, up to floating-point summation order.

Proximal steps (proximal gradient: Parikh & Boyd, "Proximal Algorithms", 2014, §4.2 and §6.5.2). The Adam step
θ <- θ - lr m̂/(sqrt(v̂) + eps) is a gradient step in the diagonal metric D = diag(sqrt(v̂) + eps)/lr, so the matching
proximal step for λ·R soft-thresholds coordinate j by t_j = lr·λ/(sqrt(v̂_j) + eps) (prox="adam", the default;
the adaptive proximal methods of Yun, Lozano & Yang, "Adaptive Proximal Gradient Methods for Structured Neural
Networks", NeurIPS 2021). Its fixed points (where m̂ equals the gradient) satisfy the optimality condition of
MSE + λ·R: a weight stays at 0 exactly when |∂MSE/∂θ_j| <= λ (for l1), so λ is in the units of the loss.
prox="plain" thresholds by t = lr·λ instead, as for SGD; after Adam's normalised steps (each ~lr) that penalty no
longer corresponds to λ·R (a weight with any steady gradient survives every λ < 1), so it is kept for comparison.
  l1          R = Σ|θ| over ALL weights and biases (DESIGN §2.4 `l1`), so every entry, biases included, is
              soft-thresholded: θ <- sign(θ) max(|θ| - t, 0). This is the exact prox of R in the step's metric.
  block_path  R = Σ_l Σ_i ‖A_l[:,i]‖_1 (‖B_l[i,:]‖_1 + |c_{l,i}|) + ‖W_in‖_1 + ‖W_out‖_1 is not separable, so
              we take the exact prox of its linearisation at the current point: R is a sum of products of
              absolute values; freezing the other factor of each product leaves a weighted ℓ1 norm whose prox is
              weighted soft-thresholding. Entry θ is thresholded by t·κ_θ, with
                κ = ‖B_l[i,:]‖_1 + |c_{l,i}|  for A_l[j,i],      κ = ‖A_l[:,i]‖_1  for B_l[i,k] and c_{l,i},
                κ = 1 for W_in and W_out,                         κ = 0 for b_in and b_out (not in R).
              κ is computed from the post-Adam point and all entries are updated at once.
Both give exact zeros (soft-thresholding returns 0.0 for |θ| <= threshold).

After training, dead hidden units are removed without changing f (prune_dead_units), so that nnz and the norms
describe the function that was learned, not the optimiser's leftovers.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from htmc.resnets.norms import all_norms, norm_versions
from htmc.registry import check_positive, did_you_mean, UnknownNameError
from htmc.resnets.model import forward, init_params, Layout, nnz, Params, to_numpy

TRAIN_VERSION = "1"
REGS = ("l1", "block_path")
PROX_METRICS = ("adam", "plain")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Adam's defaults (Kingma & Ba 2015; torch.optim.Adam).
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
# Bad-input guards (far above any sweep here): beyond these one net does not fit a GPU's memory.
MAX_PARAMS = 10 ** 9
MAX_ACTIVATIONS = 10 ** 10

Target = Callable[[np.ndarray], np.ndarray]


def _check_int(name: str, v, *, allow_zero: bool = False) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{name} must be an int, got {v!r}")
    check_positive(name, v, allow_zero=allow_zero)


def _check_real(name: str, v, *, allow_zero: bool = False) -> None:
    if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    check_positive(name, v, allow_zero=allow_zero)


@dataclass(frozen=True)
class TrainConfig:
    """One net's training run. Nets in one batch must agree on BATCH_SHAPE_FIELDS."""
    width: int
    depth: int
    rank: int
    lam: float
    reg: str = "l1"
    prox: str = "adam"           # threshold metric: "adam" (lr·λ / Adam's denominator) or "plain" (lr·λ)
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0
    n_train: int = 1000          # full-batch: every step uses all training points
    d: int = 1                   # input dimension of the target
    device: str = "cpu"          # "cpu" or "cuda" / "cuda:N"
    dtype: str = "float32"
    grid_points: int = 4096      # verification grid: round(grid_points^(1/d)) points per axis, endpoints included

    def __post_init__(self):
        for name in ("width", "depth", "rank", "steps", "n_train", "d", "grid_points"):
            _check_int(name, getattr(self, name))
        _check_int("seed", self.seed, allow_zero=True)
        _check_real("lam", self.lam, allow_zero=True)
        _check_real("lr", self.lr)
        n_params = self.width * (self.d + 2) + self.depth * self.rank * (2 * self.width + 1) + 1
        if n_params > MAX_PARAMS:
            raise ValueError(f"width={self.width}, depth={self.depth}, rank={self.rank} give about {n_params:.3g} "
                             f"parameters per net; at most {MAX_PARAMS:.0e} are allowed")
        if self.n_train * self.depth * (self.width + self.rank) > MAX_ACTIVATIONS:
            raise ValueError(f"n_train={self.n_train} with depth={self.depth}, width={self.width}, rank={self.rank} "
                             f"needs more than {MAX_ACTIVATIONS:.0e} stored activations per net; use fewer points")
        if self.reg not in REGS:
            raise UnknownNameError(f"unknown reg '{self.reg}': {did_you_mean(str(self.reg), list(REGS))}")
        if self.prox not in PROX_METRICS:
            raise UnknownNameError(f"unknown prox '{self.prox}': {did_you_mean(str(self.prox), list(PROX_METRICS))}")
        if self.dtype not in DTYPES:
            raise UnknownNameError(f"unknown dtype '{self.dtype}': {did_you_mean(str(self.dtype), list(DTYPES))}")
        dev = str(self.device)
        if dev != "cpu" and not dev.startswith("cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {dev!r} requested but torch.cuda.is_available() is False "
                               f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use device='cpu'")


BATCH_SHAPE_FIELDS = ("width", "depth", "rank", "steps", "n_train", "d", "device", "dtype", "grid_points")


@dataclass
class TrainResult:
    """Outcome of one net. On status "failed", error says why and the numeric outcome fields are None."""
    config: TrainConfig
    status: str                                  # "ok" | "failed"
    error: str = ""
    sup_error: float | None = None               # max |f - target| on the verification grid
    rms_error: float | None = None               # root mean square of f - target on the same grid
    train_mse: float | None = None               # final training loss (MSE, without λ·R)
    norms: dict[str, float] = field(default_factory=dict)
    norm_versions: dict[str, str] = field(default_factory=dict)
    nnz: int | None = None                       # exactly-nonzero parameters after training
    n_params: int = 0
    steps: int = 0                               # steps taken (for a failed net: the step at which it failed)
    seconds: float = 0.0                         # batch wall time / B: this net's share
    batch_seconds: float = 0.0                   # wall time of the whole batched run
    batch_size: int = 1
    device: str = "cpu"
    params: dict[str, np.ndarray] | None = None  # htmc.resnets.model.to_numpy of the trained net

    def to_record(self) -> dict:
        """Flat columns for the training result record (DESIGN §4): config fields, outcome, norm_<name>."""
        rec = {**asdict(self.config), "train_version": TRAIN_VERSION}
        rec.update({k: getattr(self, k) for k in ("status", "error", "sup_error", "rms_error", "train_mse", "nnz",
                                                  "n_params", "steps", "seconds", "batch_seconds", "batch_size",
                                                  "device")})
        for name, ver in self.norm_versions.items():
            rec[f"norm_{name}"] = self.norms.get(name)
            rec[f"norm_{name}_version"] = ver
        return rec


def verification_grid(d: int, grid_points: int = 4096) -> np.ndarray:
    """Dense tensor grid on [0,1]^d, (n^d, d) with n = max(2, round(grid_points^(1/d))): 4096 in 1-D, 64^2 in 2-D."""
    n = max(2, round(grid_points ** (1.0 / d)))
    axes = np.meshgrid(*([np.linspace(0.0, 1.0, n)] * d), indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def training_points(d: int, n: int, seed: int) -> np.ndarray:
    """Uniform points in [0,1]^d from numpy's default generator seeded by the net's seed."""
    return np.random.default_rng(seed).random((n, d))


def _eval_target(target: Target, x: np.ndarray, i: int) -> np.ndarray:
    y = np.asarray(target(x), dtype=np.float64)
    if y.shape != (x.shape[0],):
        raise ValueError(f"target of net {i} must map (N, d) -> (N,), got shape {y.shape} for x {x.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"target of net {i} returned non-finite values")
    return y


# ---------------------------------------------------------------- proximal steps on the flat (B, P) buffer


def soft_threshold_(flat: torch.Tensor, thr: torch.Tensor) -> None:
    """In place θ <- sign(θ) max(|θ| - thr, 0); thr broadcasts against flat. Entries with |θ| <= thr become 0.0."""
    flat.copy_(torch.sign(flat) * torch.clamp(flat.abs() - thr, min=0))


def block_path_weights(layout: Layout, flat: torch.Tensor) -> torch.Tensor:
    """κ of the module docstring: (B, P) coefficient of each |θ| in the linearised block_path norm."""
    from htmc.resnets.norms import block_path_coefficients  # the exact factors the norm uses
    p = layout.views(flat)
    a_out, b_in = block_path_coefficients(p)                        # (B, L, r) each
    kappa = torch.zeros_like(flat)
    k = layout.views(kappa)
    k["W_in"].fill_(1.0)
    k["W_out"].fill_(1.0)
    k["A"].copy_(b_in.unsqueeze(2).expand_as(k["A"]))               # A_l[j, i] <- ‖B_l[i,:]‖_1 + |c_{l,i}|
    k["B"].copy_(a_out.unsqueeze(3).expand_as(k["B"]))              # B_l[i, k] <- ‖A_l[:,i]‖_1
    k["c"].copy_(a_out)                                             # c_{l,i}   <- ‖A_l[:,i]‖_1
    return kappa


def prox_(reg: str, layout: Layout, flat: torch.Tensor, t: torch.Tensor) -> None:
    """Proximal step for t·R in place; t broadcasts against flat: (B, 1) (lr·λ per net) or (B, P) (per entry)."""
    if reg == "l1":
        soft_threshold_(flat, t)
    elif reg == "block_path":
        soft_threshold_(flat, t * block_path_weights(layout, flat))
    else:  # TrainConfig validates reg; this guards direct callers.
        raise UnknownNameError(f"unknown reg '{reg}': {did_you_mean(reg, list(REGS))}")


def prune_dead_units(params: Params) -> None:
    """Zero hidden units that cannot affect f, in place; f is unchanged exactly.

    Unit i of block l contributes A_l[:,i] relu(B_l[i,:] h + c_{l,i}). It is dead if A_l[:,i] = 0, or if
    B_l[i,:] = 0 and c_{l,i} <= 0 (relu then outputs 0 everywhere). Either way all of its parameters are zeroed.
    """
    with torch.no_grad():
        A, Bm, c = params["A"], params["B"], params["c"]
        dead = (A == 0).all(2) | (((Bm == 0).all(3)) & (c <= 0))    # (B, L, r)
        A.masked_fill_(dead.unsqueeze(2), 0.0)
        Bm.masked_fill_(dead.unsqueeze(3), 0.0)
        c.masked_fill_(dead, 0.0)


# ---------------------------------------------------------------- training


def _check_batch(targets: list[Target], configs: list[TrainConfig]) -> None:
    if len(configs) == 0:
        raise ValueError("train_batch needs at least one config")
    if len(targets) != len(configs):
        raise ValueError(f"got {len(targets)} targets for {len(configs)} configs; give one target per config")
    for i, c in enumerate(configs):
        if not isinstance(c, TrainConfig):
            raise TypeError(f"configs[{i}] must be a TrainConfig, got {type(c).__name__}")
        for f in BATCH_SHAPE_FIELDS:
            if getattr(c, f) != getattr(configs[0], f):
                raise ValueError(f"configs of one batch must share {f}: net 0 has {getattr(configs[0], f)!r}, "
                                 f"net {i} has {getattr(c, f)!r}; train them in separate batches")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def adam_prox_step(flat, g, m, v, step: int, lr, thr, rows: dict, layout: Layout) -> None:
    """One Adam step (same update as torch.optim.Adam, written out so that lr may differ per net) and then the
    proximal step of each row's reg, in place. lr, thr: (B, 1); rows: per-net masks, see _Batch."""
    m.mul_(BETA1).add_(g, alpha=1 - BETA1)
    v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
    denom = (v / (1 - BETA2 ** step)).sqrt_().add_(ADAM_EPS)
    flat.sub_(lr / (1 - BETA1 ** step) * m / denom)
    # Threshold lr·λ/denom (Adam's metric) or lr·λ (plain); see the module docstring.
    adam = rows["adam"]
    t = thr / denom if adam is True else thr if adam is False else torch.where(adam, thr / denom, thr)
    if len(rows["reg"]) == 1:
        prox_(next(iter(rows["reg"])), layout, flat, t)
        return
    for reg, mask in rows["reg"].items():  # mixed regs in one batch: each row takes its own prox
        trial = flat.clone()
        prox_(reg, layout, trial, t)
        flat.copy_(torch.where(mask, trial, flat))


def _rows(configs: list[TrainConfig], device) -> dict:
    """Which nets use which reg and prox metric: True/False when all or none do, else a (B, 1) bool mask."""
    def mask(pred):
        flags = [pred(c) for c in configs]
        return all(flags) or (any(flags) and torch.tensor(flags, device=device).unsqueeze(1))
    return {"adam": mask(lambda c: c.prox == "adam"),
            "reg": {r: mask(lambda c, r=r: c.reg == r) for r in sorted({c.reg for c in configs})}}


def train_batch(targets: list[Target], configs: list[TrainConfig]) -> list[TrainResult]:
    """Train len(configs) nets of one shape in one batched computation; one TrainResult per net, in order.

    targets[i] is a numpy function (N, d) -> (N,) for net i. Nets may differ in seed, lam, lr, reg, prox and
    target. A net whose loss becomes NaN/inf stops there (its parameters are frozen at zero) and is reported as
    failed; the other nets are unaffected.
    """
    _check_batch(targets, configs)
    c0, B = configs[0], len(configs)
    device, dtype = torch.device(c0.device), DTYPES[c0.dtype]
    layout = Layout(c0.d, c0.width, c0.depth, c0.rank)
    xs = [training_points(c.d, c.n_train, c.seed) for c in configs]
    ys = [_eval_target(t, x, i) for i, (t, x) in enumerate(zip(targets, xs))]
    grid = verification_grid(c0.d, c0.grid_points)
    y_grid = np.stack([_eval_target(t, grid, i) for i, t in enumerate(targets)])

    _sync(device)
    t0 = time.perf_counter()
    X = torch.as_tensor(np.stack(xs), dtype=dtype, device=device)                    # (B, N, d)
    Y = torch.as_tensor(np.stack(ys), dtype=dtype, device=device)                    # (B, N)
    flat, failures, steps_done = _train_steps(layout, configs, X, Y, device, dtype)
    params, out = _evaluate(layout, flat, failures, X, Y, grid, y_grid, device, dtype)
    _sync(device)
    wall = time.perf_counter() - t0
    dev_name = str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})"
    common = dict(n_params=layout.n_params, seconds=wall / B, batch_seconds=wall, batch_size=B, device=dev_name,
                  norm_versions=norm_versions())
    return [_result(i, c, out, params, steps_done, common) for i, c in enumerate(configs)]


@dataclass
class _Failures:
    """Per net (B,): whether it still trains, and the step and loss at which it failed (-1 and 0 until then)."""
    active: torch.Tensor
    step: torch.Tensor
    loss: torch.Tensor

    @classmethod
    def none(cls, n_nets: int, device: torch.device, dtype: torch.dtype) -> "_Failures":
        return cls(torch.ones(n_nets, dtype=torch.bool, device=device),
                   torch.full((n_nets,), -1, dtype=torch.long, device=device),
                   torch.zeros(n_nets, dtype=dtype, device=device))

    def record(self, step: int, per_loss: torch.Tensor, finite: torch.Tensor) -> None:
        """Nets whose loss is no longer finite stop at this step."""
        newly = self.active & ~finite
        self.step = torch.where(newly, step, self.step)
        self.loss = torch.where(newly, per_loss.detach(), self.loss)
        self.active = self.active & finite


def _train_steps(layout: Layout, configs: list[TrainConfig], X: torch.Tensor, Y: torch.Tensor,
                 device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, _Failures, int]:
    """The Adam + proximal steps of the batch from its initial parameters: the (B, P) parameters after them,
    which nets failed, and the number of steps taken."""
    c0 = configs[0]
    flat = layout.flatten(init_params(c0.d, c0.width, c0.depth, c0.rank, [c.seed for c in configs],
                                      dtype=dtype, device=device)).requires_grad_(True)
    lr = torch.tensor([c.lr for c in configs], dtype=dtype, device=device).unsqueeze(1)
    thr = lr * torch.tensor([c.lam for c in configs], dtype=dtype, device=device).unsqueeze(1)
    rows = _rows(configs, device)
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    failures = _Failures.none(len(configs), device, dtype)

    # On a GPU, failures are tracked on the device every step (no host sync). On the CPU a sync is free, so the
    # masking is skipped until some net has actually failed (fewer ops per step for small nets).
    masking = device.type != "cpu"
    steps_done = 0
    for step in range(1, c0.steps + 1):
        per_loss = ((forward(layout.views(flat), X) - Y) ** 2).mean(1)             # (B,)
        with torch.no_grad():
            finite = torch.isfinite(per_loss)
            masking = masking or not bool(finite.all())
            if masking:
                failures.record(step, per_loss, finite)
        active = failures.active
        # torch.where, not a product: 0 * nan would be nan. Sum of per-net means: see the module docstring.
        (g,) = torch.autograd.grad(torch.where(active, per_loss, 0.0).sum() if masking else per_loss.sum(), flat)
        with torch.no_grad():
            if masking:
                g = torch.where(active.unsqueeze(1), g, 0.0)
            adam_prox_step(flat, g, m, v, step, lr, thr, rows, layout)
            if masking:  # a failed net stays at 0 so that its forward pass stays finite
                flat.masked_fill_(~active.unsqueeze(1), 0.0)
        steps_done = step
        if masking and (device.type == "cpu" or step % 50 == 0) and not bool(active.any()):
            break  # every net failed (on a GPU this is a sync, hence only every 50 steps)
    return flat, failures, steps_done


def _evaluate(layout: Layout, flat: torch.Tensor, failures: _Failures, X: torch.Tensor, Y: torch.Tensor,
              grid: np.ndarray, y_grid: np.ndarray, device: torch.device, dtype: torch.dtype
              ) -> tuple[Params, dict]:
    """The trained nets, dead units pruned, and their numbers as numpy: errors on the verification grid, norms,
    nnz, final training MSE and the failures (read by _result)."""
    with torch.no_grad():
        params = {k: t.detach().clone() for k, t in layout.views(flat).items()}
        prune_dead_units(params)
        f_grid = torch.cat([forward(params, torch.as_tensor(chunk, dtype=dtype, device=device))
                            for chunk in np.array_split(grid, max(1, len(grid) // 8192))], dim=1)
        out = {"err": f_grid.double().cpu().numpy() - y_grid,
               "norms": {k: t.double().cpu().numpy() for k, t in all_norms(params).items()},
               "nnz": nnz(params).cpu().numpy(),
               "mse": ((forward(params, X) - Y) ** 2).mean(1).double().cpu().numpy(),
               "active": failures.active.cpu().numpy(), "fail_step": failures.step.cpu().numpy(),
               "fail_loss": failures.loss.cpu().numpy()}
    return params, out


def _result(i: int, c: TrainConfig, out: dict, params: Params, steps_done: int, common: dict) -> TrainResult:
    """Net i's TrainResult from the batch's evaluation `out`; no numbers for a failed net, only the reason."""
    if not out["active"][i]:
        at = int(out["fail_step"][i])
        return TrainResult(config=c, status="failed", steps=at, **common, error=(
            f"training diverged: loss became {float(out['fail_loss'][i])} at step {at} "
            f"(lr={c.lr}, lam={c.lam}, reg={c.reg}); lower lr"))
    err = out["err"][i]
    if not (np.all(np.isfinite(err)) and np.isfinite(out["mse"][i])):
        return TrainResult(config=c, status="failed", steps=steps_done, **common, error=(
            f"trained net gives non-finite values on the verification grid or training points after "
            f"{steps_done} steps (lr={c.lr}, lam={c.lam}); lower lr"))
    return TrainResult(
        config=c, status="ok", steps=steps_done, **common,
        sup_error=float(np.abs(err).max()), rms_error=float(np.sqrt(np.mean(err ** 2))),
        train_mse=float(out["mse"][i]), norms={k: float(n[i]) for k, n in out["norms"].items()},
        nnz=int(out["nnz"][i]), params=to_numpy(params, i))


def train_one(target: Target, config: TrainConfig) -> TrainResult:
    """Train a single net: train_batch with B = 1."""
    return train_batch([target], [config])[0]

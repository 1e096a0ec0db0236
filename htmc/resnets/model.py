"""The ResNet of DESIGN §2.4, held as a batch of nets of one shape.

    h_0     = W_in x + b_in                         (in R^w)
    h_{l+1} = h_l + A_l relu(B_l h_l + c_l)         (A_l in R^{w x r}, B_l in R^{r x w}, l = 0..L-1)
    f(x)    = W_out h_L + b_out                     (scalar)

Parameters are a dict of tensors whose leading dimension B indexes independent nets of the same shape
(param_shapes below); a single net is B = 1. Every operation is batched over B with torch.baddbmm / torch.bmm, so
B nets cost one kernel launch per layer instead of B (this is what makes many small models fast, DESIGN §2.4
"Batched training").

For training, the dict may be a set of views into one flat (B, P) buffer (`Layout.views`): the optimiser and
proximal steps then run as a handful of elementwise ops on one tensor, whatever the number of layers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from htmc.registry import check_positive
from htmc.resnets.numpy_net import PARAM_NAMES


Params = dict[str, torch.Tensor]


def param_shapes(d: int, width: int, depth: int, rank: int) -> dict[str, tuple[int, ...]]:
    """Per-net shapes (without the leading batch dimension)."""
    w, L, r = width, depth, rank
    return {"W_in": (w, d), "b_in": (w,), "A": (L, w, r), "B": (L, r, w), "c": (L, r),
            "W_out": (1, w), "b_out": (1,)}


def _check_shape_args(d: int, width: int, depth: int, rank: int) -> None:
    for name, v in (("d", d), ("width", width), ("depth", depth), ("rank", rank)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{name} must be an int, got {v!r}")
        check_positive(name, v)


@dataclass(frozen=True)
class Layout:
    """Where each parameter lives in a flat per-net vector of length n_params."""
    d: int
    width: int
    depth: int
    rank: int

    def __post_init__(self):
        _check_shape_args(self.d, self.width, self.depth, self.rank)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return param_shapes(self.d, self.width, self.depth, self.rank)

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    def views(self, flat: torch.Tensor) -> Params:
        """Dict of views into flat (B, n_params); writes through a view change flat, and autograd follows.

        torch.split (not 7 slices) so that the backward pass concatenates the 7 gradients into one (B, P) tensor
        instead of allocating a zero-padded full-size gradient per parameter.
        """
        B = flat.shape[0]
        sh = self.shapes
        parts = flat.split([math.prod(sh[k]) for k in PARAM_NAMES], dim=1)
        return {k: p.view(B, *sh[k]) for k, p in zip(PARAM_NAMES, parts)}

    def flatten(self, params: Params) -> torch.Tensor:
        B = params["W_in"].shape[0]
        return torch.cat([params[k].reshape(B, -1) for k in PARAM_NAMES], dim=1)


def _uniform(gen: torch.Generator, shape, bound: float) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound


def init_one(d: int, width: int, depth: int, rank: int, seed: int) -> dict[str, torch.Tensor]:
    """One net's initial parameters (float64, CPU, no batch dim), a function of its seed only.

    Weights follow torch.nn.Linear's default scale U(-1/sqrt(fan_in), 1/sqrt(fan_in)), except that each residual
    branch's output A_l is further scaled by 1/sqrt(L) so that the residual stream stays O(1) with depth (the
    depth scaling of residual branches of Fixup, Zhang, Dauphin & Ma, ICLR 2019). b_out is drawn like a
    Linear bias. The other biases place every relu kink inside the domain [0,1]^d, as Steinwart ("A sober look
    at neural network initializations", arXiv:1903.11482, 2019) argues: with random biases most kinks of a
    low-dimensional net start outside the domain, where the unit is dead or affine on all of it, and gradient
    descent rarely moves them in (nets then get stuck at the best affine fit). So:
      b_in    = -W_in (1/2, ..., 1/2): h_0 = W_in (x - 1/2) is centred on the domain (input centring, LeCun et
                al., "Efficient BackProp", 1998, §4.3);
      c_{l,i} = -B_l[i,:] h_l(z_{l,i}) for an anchor z_{l,i} uniform in [0,1]^d, so unit i's hyperplane
                passes through z_{l,i} and the unit is active on part of the domain.
    All draws happen on CPU in float64 in a fixed order and are then cast by the caller, so a net's initial
    values do not depend on the batch it is in, the dtype or the device.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    sh = param_shapes(d, width, depth, rank)
    p = {"W_in": _uniform(gen, sh["W_in"], 1 / math.sqrt(d)),
         "A": _uniform(gen, sh["A"], 1 / math.sqrt(rank * depth)),
         "B": _uniform(gen, sh["B"], 1 / math.sqrt(width)),
         "W_out": _uniform(gen, sh["W_out"], 1 / math.sqrt(width)),
         "b_out": _uniform(gen, sh["b_out"], 1 / math.sqrt(width))}
    anchors = torch.rand((depth, rank, d), generator=gen, dtype=torch.float64)
    p["b_in"] = -0.5 * p["W_in"].sum(1)
    p["c"] = torch.zeros(sh["c"], dtype=torch.float64)
    for l in range(depth):
        h = anchors[l] @ p["W_in"].T + p["b_in"]                    # h_0 at the r anchors of block l
        for m in range(l):
            h = h + torch.relu(h @ p["B"][m].T + p["c"][m]) @ p["A"][m].T
        p["c"][l] = -(p["B"][l] * h).sum(1)                          # row i: -B_l[i,:] . h_l(z_{l,i})
    return {k: p[k] for k in PARAM_NAMES}


def init_params(d: int, width: int, depth: int, rank: int, batch_seeds: list[int],
                dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Params:
    """A batch of len(batch_seeds) nets; net i depends only on batch_seeds[i]."""
    _check_shape_args(d, width, depth, rank)
    if len(batch_seeds) == 0:
        raise ValueError("batch_seeds must name at least one seed")
    nets = [init_one(d, width, depth, rank, s) for s in batch_seeds]
    return {k: torch.stack([n[k] for n in nets]).to(dtype=dtype, device=device) for k in PARAM_NAMES}


@dataclass
class Trace:
    """Intermediate values of a forward pass, for norms and the circuit compiler.

    h[l]:   residual stream h_l, shape (B, N, w), l = 0..L (h[L] feeds the output layer).
    pre[l]: pre-activation B_l h_l + c_l of block l, shape (B, N, r), l = 0..L-1.
    """
    h: list[torch.Tensor]
    pre: list[torch.Tensor]


def forward(params: Params, x: torch.Tensor, return_intermediates: bool = False):
    """f(x) for every net in the batch: (B, N).

    x is (B, N, d) (each net its own points) or (N, d) (the same points for every net). With
    return_intermediates=True, returns (f, Trace) computed in the same pass (no hooks).
    """
    W_in = params["W_in"]
    B, _, d = W_in.shape
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(B, -1, -1)
    if x.dim() != 3 or x.shape[0] != B or x.shape[2] != d:
        raise ValueError(f"x must be (N, {d}) or ({B}, N, {d}), got {tuple(x.shape)}")
    x = x.to(dtype=W_in.dtype)
    # baddbmm(bias, a, b) = bias + a @ b, fused; weights are stored (out, in) so they enter transposed.
    h = torch.baddbmm(params["b_in"].unsqueeze(1), x, W_in.transpose(1, 2))
    hs, pres = [h], []
    # unbind once (one backward node that stacks the L gradients) rather than index A[:, l] per block (L nodes,
    # each allocating a full-size zero gradient); this matters when one small net's step is overhead-bound.
    As = params["A"].transpose(2, 3).unbind(1)          # A_l^T  (B, r, w)
    Bs = params["B"].transpose(2, 3).unbind(1)          # B_l^T  (B, w, r)
    cs = params["c"].unsqueeze(2).unbind(1)             # c_l    (B, 1, r)
    for A_t, B_t, c in zip(As, Bs, cs):
        pre = torch.baddbmm(c, h, B_t)
        h = torch.baddbmm(h, torch.relu(pre), A_t)
        if return_intermediates:
            hs.append(h)
            pres.append(pre)
    out = torch.baddbmm(params["b_out"].unsqueeze(1), h, params["W_out"].transpose(1, 2)).squeeze(2)
    return (out, Trace(hs, pres)) if return_intermediates else out


def select(params: Params, i: int) -> Params:
    """Net i of a batch, as a batch of one (views, no copy)."""
    return {k: v[i:i + 1] for k, v in params.items()}


def to_numpy(params: Params, i: int = 0) -> dict[str, np.ndarray]:
    """Net i as float64 numpy arrays without the batch dimension (shapes of param_shapes)."""
    return {k: params[k][i].detach().to("cpu", torch.float64).numpy().copy() for k in PARAM_NAMES}


def from_numpy(nets: list[dict[str, np.ndarray]], dtype: torch.dtype = torch.float64,
               device: str | torch.device = "cpu") -> Params:
    """Inverse of to_numpy for a list of nets of one shape."""
    return {k: torch.stack([torch.as_tensor(n[k]) for n in nets]).to(dtype=dtype, device=device)
            for k in PARAM_NAMES}


def nnz(params: Params) -> torch.Tensor:
    """Number of exactly-nonzero parameters per net, (B,)."""
    B = params["W_in"].shape[0]
    return sum((params[k].reshape(B, -1) != 0).sum(1) for k in PARAM_NAMES)

"""Named, versioned parameter norms of the ResNet of DESIGN §2.4 (htmc.resnets.model).

Every entry of NORMS maps a batched parameter dict to a tensor of shape (B,), one value per net, and is plain
differentiable torch. Bump an entry's version whenever its formula changes: the version is stored with every
result. Users add norms from their own file:

    from htmc.resnets.norms import register_norm

    @register_norm("my_norm", version="1")
    def my_norm(params):
        '''Exact formula here.'''
        return params["A"].abs().flatten(1).sum(1)

and load that file with htmc.registry.load_plugin(path).

Notation: |M| is the entrywise absolute value, ‖M‖_1 the sum of |entries|, L the depth, w the width, r the rank.
"""
from __future__ import annotations

from typing import Callable

import torch

from htmc.registry import Registry
from htmc.resnets.model import Params
from htmc.resnets.numpy_net import PARAM_NAMES

NormFn = Callable[[Params], torch.Tensor]
NORMS: Registry[NormFn] = Registry("norm")


def register_norm(name: str, version: str, *, replace: bool = False):
    """Decorator registering fn(params) -> (B,) tensor under name in NORMS."""
    return NORMS.register(name, version, replace=replace)


def _l1(t: torch.Tensor) -> torch.Tensor:
    """‖t[b]‖_1 for every net b: (B,)."""
    return t.abs().flatten(1).sum(1)


@register_norm("l1", version="1")
def l1(params: Params) -> torch.Tensor:
    """Σ|θ| over all weights and biases:

    ‖W_in‖_1 + ‖b_in‖_1 + Σ_l (‖A_l‖_1 + ‖B_l‖_1 + ‖c_l‖_1) + ‖W_out‖_1 + |b_out|.
    """
    return sum(_l1(params[k]) for k in PARAM_NAMES)


def block_path_coefficients(params: Params) -> tuple[torch.Tensor, torch.Tensor]:
    """(‖A_l[:,i]‖_1, ‖B_l[i,:]‖_1 + |c_{l,i}|), each (B, L, r): the two factors of hidden unit i of block l."""
    a_out = params["A"].abs().sum(2)                      # column sums of |A_l|
    b_in = params["B"].abs().sum(3) + params["c"].abs()   # row sums of |B_l|, plus the unit's bias
    return a_out, b_in


@register_norm("block_path", version="1")
def block_path(params: Params) -> torch.Tensor:
    """Σ_l Σ_i ‖A_l[:,i]‖_1 · (‖B_l[i,:]‖_1 + |c_{l,i}|) + ‖W_in‖_1 + ‖W_out‖_1.

    Each hidden unit (l, i) costs the ℓ1 mass of its outgoing weights times that of its incoming weights and
    bias, so rescaling the unit (B_l[i,:], c_{l,i}) -> α(B_l[i,:], c_{l,i}), A_l[:,i] -> A_l[:,i]/α, α > 0,
    which leaves f unchanged by the positive homogeneity of relu, leaves the norm unchanged too.
    b_in and b_out do NOT enter: they only shift the residual stream and the output by constants, are tied to no
    rescaling symmetry, and including b_out would make f and f + const have different norms.
    """
    a_out, b_in = block_path_coefficients(params)
    return (a_out * b_in).flatten(1).sum(1) + _l1(params["W_in"]) + _l1(params["W_out"])


@register_norm("weighted_path", version="1")
def weighted_path(params: Params) -> torch.Tensor:
    """Weighted path norm of E, Ma & Wang, "A priori estimates of the population risk for residual networks"
    (Comm. Math. Sci. 2019 / arXiv:1903.02154, Def. 2.1): ‖ |Ũ| Π_{l=L-1..0} (I + 3|Ã_l||B̃_l|) |Ṽ| ‖_1.

    Biases are folded in as a constant input: x̃ = (x, 1) in R^{d+1}, and the residual stream gets an extra
    coordinate that holds the constant 1 through every block. Our net is then exactly their bias-free ResNet of
    width w + 1 with
        Ṽ   = [[W_in, b_in], [0, 1]]       in R^{(w+1) x (d+1)}   (input embedding; the 1 carries the constant)
        B̃_l = [B_l, c_l]                   in R^{r x (w+1)}       (the bias reads the constant coordinate)
        Ã_l = [[A_l], [0]]                 in R^{(w+1) x r}       (no block writes the constant coordinate)
        Ũ   = [W_out, b_out]               in R^{1 x (w+1)}
    The ‖·‖_1 of the resulting 1 x (d+1) row is the sum of its entries (all are >= 0); later blocks multiply on
    the left. Computed right to left as row-vector products, O(L w r) per net.
    """
    Wi, bi, A, Bm, c, Wo, bo = (params[k].abs() for k in PARAM_NAMES)
    w = Wi.shape[1]
    v = torch.cat([Wo, bo.unsqueeze(2)], dim=2)                     # (B, 1, w+1) = |Ũ|
    for l in reversed(range(A.shape[1])):
        vA = torch.bmm(v[:, :, :w], A[:, l])                        # v |Ã_l|   (B, 1, r)
        Bt = torch.cat([Bm[:, l], c[:, l].unsqueeze(2)], dim=2)     # |B̃_l|     (B, r, w+1)
        v = v + 3 * torch.bmm(vA, Bt)
    vh, vc = v[:, 0, :w], v[:, 0, w]
    # v |Ṽ| = [vh |W_in|, vh·|b_in| + vc·1]; sum its entries.
    return torch.bmm(vh.unsqueeze(1), Wi).flatten(1).sum(1) + (vh * bi).sum(1) + vc


def block_lipschitz(params: Params) -> torch.Tensor:
    """(B, L): 1 + ‖|A_l||B_l|‖_∞, an ℓ∞ -> ℓ∞ Lipschitz bound of h -> h + A_l relu(B_l h + c_l).

    relu is 1-Lipschitz entrywise, so |A_l (relu(B_l h + c) - relu(B_l h' + c))| <= |A_l||B_l||h - h'|
    entrywise; ‖M‖_∞ is the largest row sum of M.
    """
    row_b = params["B"].abs().sum(3, keepdim=True)                  # (B, L, r, 1) = |B_l| 1
    return 1 + torch.matmul(params["A"].abs(), row_b).squeeze(3).amax(2)


@register_norm("lipschitz_l1", version="1")
def lipschitz_l1(params: Params) -> torch.Tensor:
    """Σ_{l=0}^{L-1} m_l · P_{l+1} + (‖W_in‖_1 + ‖b_in‖_1) · P_0 + ‖W_out‖_1 + |b_out|, where

    m_l = ‖A_l‖_1 + ‖B_l‖_1 + ‖c_l‖_1 is block l's ℓ1 mass, P_k = Π_{m=k}^{L-1} (1 + ‖|A_m||B_m|‖_∞) (P_L = 1)
    is the product of the ℓ∞-operator Lipschitz bounds of the blocks after block k-1 (block_lipschitz).
    The input layer counts as a block before block 0; the output layer has nothing after it.
    Rationale: a change of a block's parameters moves the residual stream, and every later block can amplify
    that change (in ℓ∞) by at most its Lipschitz bound.
    """
    lip = block_lipschitz(params)                                   # (B, L)
    # suffix[:, k] = P_k for k = 0..L: reverse cumulative product, with P_L = 1 appended.
    suffix = torch.flip(torch.cumprod(torch.flip(lip, [1]), 1), [1])
    suffix = torch.cat([suffix, torch.ones_like(suffix[:, :1])], dim=1)
    mass = (params["A"].abs().sum((2, 3)) + params["B"].abs().sum((2, 3)) + params["c"].abs().sum(2))
    return ((mass * suffix[:, 1:]).sum(1) + (_l1(params["W_in"]) + _l1(params["b_in"])) * suffix[:, 0]
            + _l1(params["W_out"]) + _l1(params["b_out"]))


def all_norms(params: Params) -> dict[str, torch.Tensor]:
    """Every registered norm, name -> (B,) tensor, in one no-grad pass on the params' device (no host sync)."""
    with torch.no_grad():
        detached = {k: v.detach() for k, v in params.items()}
        return {e.name: e.obj(detached) for e in NORMS}


def norm_versions() -> dict[str, str]:
    """name -> version of every registered norm, to store with results."""
    return {e.name: e.version for e in NORMS}

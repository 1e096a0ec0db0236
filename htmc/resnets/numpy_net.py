"""One net of DESIGN §2.4 as numpy arrays, with no torch: the parameter names and the reference forward pass, shared
by the compiler (to_circuit) and the resnet_teacher target, whose weights are such a net."""
from __future__ import annotations

import numpy as np

# Order matters: it is the order of the flat layout (model.Layout) and of model.to_numpy/from_numpy.
PARAM_NAMES = ("W_in", "b_in", "A", "B", "c", "W_out", "b_out")


CHUNK_VALUES = 1 << 22   # entries of one chunk's widest layer (32 MB of int64 or float64): rows per chunk in
#                          forward_numpy and to_circuit.emulate, whose d = 2 nets of 11k units at 2^16 cells
#                          held ~6 GB a layer whole (issue 21 C)


def row_chunks(n: int, width: int):
    """Slices of range(n) of at most CHUNK_VALUES // width rows each."""
    step = max(1, CHUNK_VALUES // max(1, width))
    return (slice(s, min(n, s + step)) for s in range(0, n, step))


def forward_numpy(net: dict, x: np.ndarray) -> np.ndarray:
    """Reference forward pass of one net in numpy float64 (x: (N, d) -> (N,)). A, B and c are per-block: stacked
    arrays (L, ...) of an exported net, or lists of arrays (a teacher's weights). Rows go in chunks, and mostly
    zero A and B as sparse matrices (a fitted d = 2 net has ~2 non-zeros per row of B)."""
    blocks = [(_sparse_or_dense(A), _sparse_or_dense(B), c) for A, B, c in zip(net["A"], net["B"], net["c"])]
    width = max([len(net["b_in"])] + [np.shape(c)[-1] for c in net["c"]])
    out = np.empty(len(x))
    for rows in row_chunks(len(x), width):
        h = x[rows] @ net["W_in"].T + net["b_in"]
        for A, B, c in blocks:
            h = h + _times_transposed(np.maximum(_times_transposed(h, B) + c, 0.0), A)
        out[rows] = (h @ net["W_out"].T + net["b_out"])[:, 0]
    return out


def mostly_zero(M: np.ndarray) -> bool:
    """Whether a weight matrix is worth a sparse product: at least 4,096 entries, at most 1/8 of them non-zero."""
    return M.size >= 4096 and np.count_nonzero(M) <= M.size // 8


def _sparse_or_dense(M):
    M = np.asarray(M, dtype=np.float64)
    if mostly_zero(M):
        import scipy.sparse as sp
        return sp.csr_matrix(M)
    return M


def _times_transposed(X: np.ndarray, M) -> np.ndarray:
    """X @ M.T for a dense or scipy sparse M."""
    return np.asarray((M @ X.T).T) if not isinstance(M, np.ndarray) else X @ M.T


def net_to_text(net: dict) -> str:
    """A trained net as text for a record column (base64 of an uncompressed .npz, float64: bit-exact round trip),
    so that a compile task on another machine gets exactly the weights that were trained and normed."""
    import base64
    import io
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(net[k], dtype=np.float64) for k in PARAM_NAMES})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def net_from_text(text: str) -> dict:
    """Inverse of net_to_text; a damaged value is a ValueError that says so."""
    import base64
    import io
    try:
        with np.load(io.BytesIO(base64.b64decode(text.encode("ascii"), validate=True))) as z:
            net = {k: z[k] for k in PARAM_NAMES}
    except Exception as e:  # noqa: BLE001  binascii, zipfile and KeyError alike mean a damaged column
        raise ValueError(f"the stored net is damaged or not a net ({type(e).__name__}: {e})") from None
    return net

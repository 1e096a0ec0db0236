"""One net of DESIGN §2.4 as numpy arrays, with no torch: the parameter names and the reference forward pass, shared
by the compiler (to_circuit) and the resnet_teacher target, whose weights are such a net."""
from __future__ import annotations

import numpy as np

# Order matters: it is the order of the flat layout (model.Layout) and of model.to_numpy/from_numpy.
PARAM_NAMES = ("W_in", "b_in", "A", "B", "c", "W_out", "b_out")


def forward_numpy(net: dict, x: np.ndarray) -> np.ndarray:
    """Reference forward pass of one net in numpy float64 (x: (N, d) -> (N,)). A, B and c are per-block: stacked
    arrays (L, ...) of an exported net, or lists of arrays (a teacher's weights)."""
    h = x @ net["W_in"].T + net["b_in"]
    for A, B, c in zip(net["A"], net["B"], net["c"]):
        h = h + np.maximum(h @ B.T + c, 0.0) @ A.T
    return (h @ net["W_out"].T + net["b_out"])[:, 0]


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

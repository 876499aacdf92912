"""Layout and interop utilities for the head-wise recurrence (FlashRNN, arXiv 2412.07752).

* ``to_block_diagonal`` / ``from_block_diagonal``: N heads of (D, D) recurrent blocks <-> one
  dense (N*D, N*D) matrix per gate. A head-wise RNN *is* a single-head RNN with this matrix.
* ``permute_layout``: transpose between the letter layouts of the official code (B batch,
  T time, G gates, H heads, D head width / output index, P input index, S states).
* ``lstm_from_torch`` / ``gru_from_torch`` / ``elman_from_torch``: ``torch.nn.LSTM/GRU/RNN``
  weights of one layer and direction -> ``(W, R, b)`` for ``project_inputs`` and
  ``flashrnn_forward`` (one head, D = hidden size). Gradients map back with the ``*_to_torch``
  functions (``dW, dR, db`` -> the four torch parameter gradients).
* ``round_to_bfloat16``: round-to-nearest-even to bfloat16's 8-bit mantissa (the official
  default stores bfloat16 and accumulates in float32).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks


def to_block_diagonal(R):
    """``R`` (G, N, D, D) -> dense (G, N*D, N*D) with ``R[g, n]`` as the n-th diagonal block."""
    R = _checks.float_array(R, "R")
    if R.ndim != 4 or R.shape[2] != R.shape[3]:
        raise ValueError(f"R must have shape (G, N, D, D), got {R.shape}")
    G, N, D, _ = R.shape
    dense = np.zeros((G, N * D, N * D), R.dtype)
    for n in range(N):
        dense[:, n * D:(n + 1) * D, n * D:(n + 1) * D] = R[:, n]
    return dense


def from_block_diagonal(Rdense, N, *, strict=True):
    """Dense (G, N*D, N*D) -> (G, N, D, D), the N diagonal blocks.

    ``strict`` raises ``ValueError`` if an off-diagonal block is nonzero. Pass ``strict=False``
    to read the diagonal blocks of a *gradient* of a dense matrix: its off-diagonal blocks are the
    cross-head terms, which a head-wise model does not have.
    """
    Rdense = _checks.float_array(Rdense, "Rdense")
    N = _checks.check_number(N, "N", integer=True, low=1)
    strict = _checks.check_flag(strict, "strict")
    if Rdense.ndim != 3 or Rdense.shape[1] != Rdense.shape[2] or Rdense.shape[1] % N:
        raise ValueError(f"Rdense must have shape (G, N*D, N*D) with N = {N}, got {Rdense.shape}")
    G, ND, _ = Rdense.shape
    D = ND // N
    blocks = np.stack([Rdense[:, n * D:(n + 1) * D, n * D:(n + 1) * D] for n in range(N)], 1)
    if strict and not np.array_equal(to_block_diagonal(blocks), Rdense):
        raise ValueError("Rdense has nonzero off-diagonal blocks (pass strict=False to drop them)")
    return blocks


def permute_layout(x, src: str, dst: str):
    """Transpose ``x`` from letter layout ``src`` to ``dst``, e.g. ``"GHDP" -> "HPGD"``.

    Both strings must be permutations of the same distinct letters, one per axis of ``x``.
    Official layouts: inputs ``BTGHD``/``TBGHD``; recurrent ``GHDP``/``HPGD``/``HDGP``; bias
    ``GHD``/``HGD``/``HDG``; states ``SBTHD``/``STBHD``/``TSBHD``.
    """
    x = np.asarray(x)
    for value, name in ((src, "src"), (dst, "dst")):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str of layout letters (e.g. 'GHDP'), got "
                            f"{value!r} ({type(value).__name__})")
    if len(set(src)) != len(src) or sorted(src) != sorted(dst) or len(src) != x.ndim:
        raise ValueError(
            f"src and dst must be permutations of the same {x.ndim} distinct letters (one per "
            f"axis of x with shape {x.shape}), got src={src!r}, dst={dst!r}"
        )
    return np.transpose(x, [src.index(c) for c in dst])


# ---------------------------------------------------------------------------------------------
# torch.nn.LSTM / GRU / RNN (one layer, one direction; rows of weight_ih / weight_hh are gates).


def _numpy(x, name):
    if x is not None and hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return None if x is None else _checks.float_array(x, name)


def _torch_params(weight_ih, weight_hh, bias_ih, bias_hh, G):
    w_ih, w_hh = _numpy(weight_ih, "weight_ih"), _numpy(weight_hh, "weight_hh")
    if w_hh.ndim != 2 or w_hh.shape[0] != G * w_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape ({G}*H, H), got {w_hh.shape}")
    H = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != G * H:
        raise ValueError(f"weight_ih must have shape ({G}*H, I) = ({G * H}, I), got {w_ih.shape}")
    zeros = np.zeros(G * H, w_hh.dtype)
    b_ih = zeros if bias_ih is None else _numpy(bias_ih, "bias_ih")
    b_hh = zeros if bias_hh is None else _numpy(bias_hh, "bias_hh")
    _checks.check_shape(b_ih, (G * H,), "bias_ih", f"({G}*H,)")
    _checks.check_shape(b_hh, (G * H,), "bias_hh", f"({G}*H,)")
    split = lambda x: x.reshape((G, 1, H) + x.shape[1:])  # noqa: E731  (gate, head=1, H, ...)
    return split(w_ih), split(w_hh), split(b_ih), split(b_hh)


def lstm_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """``torch.nn.LSTM`` layer -> ``W (4,1,H,I), R (4,1,H,H), b (4,1,H)``.

    Torch rows are (i, f, g, o) = (i, f, z, o) here; ``b = bias_ih + bias_hh``.
    """
    W, R, b_ih, b_hh = _torch_params(weight_ih, weight_hh, bias_ih, bias_hh, 4)
    return W, R, b_ih + b_hh


def gru_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """``torch.nn.GRU`` layer -> ``W (3,1,H,I)`` (r, z, n), ``R (3,1,H,H)`` (g, r, z),
    ``b (4,1,H)`` (g, r, z, n).

    Torch rows are (r, z, n): ``W = [W_ir, W_iz, W_in]``, ``R = [W_hn, W_hr, W_hz]``,
    ``b = [b_hn, b_ir + b_hr, b_iz + b_hz, b_in]`` (``b_hn`` stays inside ``r ⊙ (.)``).
    """
    W, Rt, b_ih, b_hh = _torch_params(weight_ih, weight_hh, bias_ih, bias_hh, 3)
    R = Rt[[2, 0, 1]]  # (n, r, z) -> (g, r, z)
    b = np.stack([b_hh[2], b_ih[0] + b_hh[0], b_ih[1] + b_hh[1], b_ih[2]])
    return W, R, b


def elman_from_torch(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """``torch.nn.RNN`` layer (tanh or relu) -> ``W (1,1,H,I), R (1,1,H,H), b (1,1,H)``.

    Use ``cell="elman"`` for ``nonlinearity="tanh"`` and ``cell="elman_relu"`` for ``"relu"``.
    """
    W, R, b_ih, b_hh = _torch_params(weight_ih, weight_hh, bias_ih, bias_hh, 1)
    return W, R, b_ih + b_hh


def _torch_grads(dW, dR, db, G, G_b):
    """Check ``dW (G,1,H,I), dR (G,1,H,H), db (G_b,1,H)`` (one head) and return them as arrays."""
    dW, dR, db = _numpy(dW, "dW"), _numpy(dR, "dR"), _numpy(db, "db")
    if dR.ndim != 4 or dR.shape[:2] != (G, 1) or dR.shape[2] != dR.shape[3]:
        raise ValueError(f"dR must have shape ({G}, 1, H, H), got {dR.shape}")
    H = dR.shape[2]
    if dW.ndim != 4 or dW.shape[:3] != (G, 1, H):
        raise ValueError(f"dW must have shape ({G}, 1, H, I) = ({G}, 1, {H}, I), got {dW.shape}")
    _checks.check_shape(db, (G_b, 1, H), "db", f"({G_b}, 1, H)")
    return dW, dR, db


def lstm_to_torch(dW, dR, db):
    """Gradients ``dW (4,1,H,I), dR (4,1,H,H), db (4,1,H)`` -> torch's
    ``(weight_ih, weight_hh, bias_ih, bias_hh)`` gradients (both biases get ``db``)."""
    dW, dR, db = _torch_grads(dW, dR, db, 4, 4)
    H = dR.shape[2]
    flat = db.reshape(4 * H)
    return dW.reshape(4 * H, -1), dR.reshape(4 * H, H), flat, flat.copy()


def gru_to_torch(dW, dR, db):
    """Gradients of :func:`gru_from_torch`'s outputs -> torch's four parameter gradients."""
    dW, dR, db = _torch_grads(dW, dR, db, 3, 4)
    H = dR.shape[2]
    d_ih = np.concatenate([db[1, 0], db[2, 0], db[3, 0]])  # (r, z, n)
    d_hh = np.concatenate([db[1, 0], db[2, 0], db[0, 0]])
    return dW.reshape(3 * H, -1), dR[[1, 2, 0]].reshape(3 * H, H), d_ih, d_hh


def elman_to_torch(dW, dR, db):
    """Gradients of :func:`elman_from_torch`'s outputs -> torch's four parameter gradients."""
    dW, dR, db = _torch_grads(dW, dR, db, 1, 1)
    H = dR.shape[2]
    return dW.reshape(H, -1), dR.reshape(H, H), db.reshape(H), db.reshape(H).copy()


# ---------------------------------------------------------------------------------------------
# bfloat16 emulation.


def round_to_bfloat16(x):
    """Round to the nearest bfloat16 value (ties to even), returned in ``x``'s dtype.

    ``x`` is a float32 or float64 array (``TypeError`` otherwise). bfloat16 is float32 with the
    low 16 mantissa bits dropped (8-bit significand). float64 input is first rounded to float32.
    Overflow rounds to +-inf; NaN stays NaN.
    """
    x = _checks.float_array(x, "x")
    u = x.astype(np.float32).view(np.uint32)
    nan = np.isnan(x)
    u = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    out = u.view(np.float32).astype(x.dtype)
    return np.where(nan, x, out) if nan.any() else out

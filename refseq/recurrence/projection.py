"""The input projection of an RNN layer and its gradients (NumPy reference).

FlashRNN (arXiv 2412.07752) splits a layer into a projection that is parallel over time,

.. math:: Wx[b, t, g, n, d] = \\sum_i W[g, n, d, i] \\, x[b, t, i] \\;(+\\, bias[g, n, d]),

and the recurrence over ``Wx`` (:mod:`refseq.recurrence.engine`). Over the flattened ``B*T``
rows both directions are one matrix product each, written here with ``@`` so that they run on
BLAS: ``Wx = x W^T``, ``dx = dWx W``, ``dW = dWx^T x`` and ``dbias = sum_{b,t} dWx``.
``backend="jit" | "cuda"`` runs the compiled twins after the same checks
(:func:`check_projection_args`).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.recurrence.checks import check_all_finite
from refseq.tiers import check_backend, implementation


def check_projection_args(x, W, bias=None, *, check_finite=True, all_finite=None):
    """Validate ``project_inputs`` arguments; return ``(x, W, bias)`` in their widest dtype.

    ``x`` must be (B, T, I), ``W`` (G_w, N, D, I) with the same I, ``bias`` None or (G_w, N, D);
    float32 or float64 (``TypeError`` otherwise), finite when ``check_finite`` (tested by
    ``all_finite``, see :func:`refseq.recurrence.checks.check_all_finite`).
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    x = _checks.float_array(x, "x")
    W = _checks.float_array(W, "W")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I), got {x.shape}")
    if W.ndim != 4 or W.shape[3] != x.shape[2]:
        raise ValueError(f"W must have shape (G_w, N, D, I) with I = x.shape[2] = {x.shape[2]}, "
                         f"got {W.shape}")
    arrays = [x, W]
    if bias is not None:
        bias = _checks.float_array(bias, "bias")
        _checks.check_shape(bias, W.shape[:3], "bias", "(G_w, N, D)")
        arrays.append(bias)
    dtype = np.result_type(*arrays)  # promote: never downcast silently
    x, W = x.astype(dtype, copy=False), W.astype(dtype, copy=False)
    bias = None if bias is None else bias.astype(dtype, copy=False)
    if check_finite:
        check_all_finite(((x, "x"), (W, "W"), (bias, "bias")), all_finite)
    return x, W, bias


def check_projection_backward_args(dWx, x, W, *, check_finite=True, all_finite=None):
    """Validate ``project_inputs_backward`` arguments; return ``(dWx, x, W)`` in ``dWx``'s
    dtype (``dWx`` must be (B, T, G_w, N, D) for ``x`` (B, T, I) and ``W`` (G_w, N, D, I))."""
    x, W, _ = check_projection_args(x, W, check_finite=check_finite, all_finite=all_finite)
    dWx = _checks.float_array(dWx, "dWx")
    B, T, _ = x.shape
    _checks.check_shape(dWx, (B, T) + W.shape[:3], "dWx", "(B, T, G_w, N, D)")
    if check_finite:
        check_all_finite(((dWx, "dWx"),), all_finite)
    return dWx, x.astype(dWx.dtype, copy=False), W.astype(dWx.dtype, copy=False)


def project_inputs(x, W, bias=None, *, backend="numpy", check_finite=True):
    """``Wx[b, t, g, n, d] = sum_i W[g, n, d, i] x[b, t, i] (+ bias[g, n, d])``.

    Dense across heads and parallel over time; only ``R`` is block-diagonal. For the GRU the
    input bias of the candidate gate lives in ``b[3]`` of the recurrence, not here.

    Parameters
    ----------
    x : (B, T, I) float32 or float64.
    W : (G_w, N, D, I).
    bias : (G_w, N, D), optional.
    backend : "numpy" | "jit" | "cuda".
    check_finite : bool — reject NaN/inf inputs with ``ValueError`` (default).

    Returns
    -------
    Wx : (B, T, G_w, N, D) in the widest input dtype.
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    numpy = check_backend(backend) == "numpy"
    # the compiled tiers check finiteness themselves, with their own (faster) predicate
    x, W, bias = check_projection_args(x, W, bias, check_finite=check_finite and numpy)
    if not numpy:
        return implementation("recurrence", "project_inputs", backend)(
            x, W, bias, check_finite=check_finite)
    B, T, I = x.shape
    GND = int(np.prod(W.shape[:3]))  # G_w * N * D (explicit: B*T may be 0)
    Wx = (x.reshape(B * T, I) @ W.reshape(GND, I).T).reshape((B, T) + W.shape[:3])
    if bias is not None:
        Wx += bias
    return Wx  # (B, T, G_w, N, D)


def project_inputs_backward(dWx, x, W, *, backend="numpy", check_finite=True):
    """Gradients of :func:`project_inputs`: ``(dx (B, T, I), dW (G_w, N, D, I))``.

    ``dx = dWx W`` and ``dW = dWx^T x`` over the flattened ``B*T`` rows; the bias gradient is
    ``dWx.sum(axis=(0, 1))`` (no product needed, so not returned). All in ``dWx``'s dtype.
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    numpy = check_backend(backend) == "numpy"
    dWx, x, W = check_projection_backward_args(dWx, x, W, check_finite=check_finite and numpy)
    if not numpy:
        return implementation("recurrence", "project_inputs_backward", backend)(
            dWx, x, W, check_finite=check_finite)
    B, T, I = x.shape
    GND = int(np.prod(W.shape[:3]))  # G_w * N * D (explicit: B*T may be 0)
    g = dWx.reshape(B * T, GND)  # (B*T, GND)
    dx = (g @ W.reshape(GND, I)).reshape(B, T, I)
    dW = (g.T @ x.reshape(B * T, I)).reshape(W.shape)
    return dx, dW


__all__ = ["check_projection_args", "check_projection_backward_args", "project_inputs",
           "project_inputs_backward"]

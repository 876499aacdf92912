"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` and its backward pass (NumPy reference).

The inclusive scan of the ``AFFINE`` operator of :mod:`refseq.scan.assoc`, written as a loop
over time; ``backend="jit" | "cuda"`` runs the compiled twins after the same checks.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.scan._dispatch import dispatch as _dispatch
from refseq.scan.checks import check_linear_scan_args, check_out
from refseq.tiers import check_backend


def linear_scan(a, b, h0=None, *, reverse=False, backend="numpy", check_finite=True, out=None):
    """Inclusive linear recurrence along time.

    .. math:: h_t = a_t \\odot h_{t-1} + b_t, \\qquad h_{-1} = h_0 \\;(\\text{or } 0)

    and with ``reverse=True`` ``h_t = a_t * h_{t+1} + b_t`` with ``h_T = h0``.

    Parameters
    ----------
    a : array broadcastable to ``b`` — decay; a scalar per (B, T, H) over a (N, P) state is the
        Mamba-2 case ``a.shape == (B, T, H, 1, 1)``. Cast to ``b``'s dtype.
    b : ``(B, T, *S)`` float32 or float64 — input.
    h0 : ``(B, *S)``, optional — initial state (zeros when omitted).
    reverse : bool — run from t = T-1 down to 0.
    backend : "numpy" | "jit" | "cuda".
    check_finite : bool — reject NaN/inf inputs with ``ValueError`` (default). The reference
        checks every input before the loop; the compiled tiers check after their pass, from
        the final state (:func:`refseq.scan.checks.recheck_linear_scan`), with the same error.
    out : ``(B, T, *S)`` C-contiguous array of ``b``'s dtype, optional — receives ``h`` (no fresh
        allocation and its page faults); returned.

    Returns
    -------
    h : ``(B, T, *S)``, ``b``'s dtype. ``h[:, -1]`` (``h[:, 0]`` if reverse) is the final state to
        pass as ``h0`` of the next chunk.
    """
    reverse = _checks.check_flag(reverse, "reverse")
    check_finite = _checks.check_flag(check_finite, "check_finite")
    compiled = check_backend(backend) != "numpy"
    a, b, h0 = check_linear_scan_args(a, b, h0, check_finite and not compiled)
    out = check_out(out, b.shape, b.dtype)
    if compiled:  # the twin checks finiteness after its pass
        return _dispatch("linear_scan", backend, a, b, h0, reverse=reverse,
                         check_finite=check_finite, out=out)
    return _linear_scan_numpy(a, b, h0, reverse=reverse, out=out)


def _linear_scan_numpy(a, b, h0=None, *, reverse=False, check_finite=False, out=None):
    """Reference: the recurrence as a loop over time (the AFFINE fold, written out)."""
    a = np.broadcast_to(a, b.shape)
    h = np.empty_like(b) if out is None else out  # (B, T, *S)
    h_prev = np.zeros(b.shape[:1] + b.shape[2:], b.dtype) if h0 is None else h0
    steps = range(b.shape[1] - 1, -1, -1) if reverse else range(b.shape[1])
    for t in steps:
        h_prev = a[:, t] * h_prev + b[:, t]  # (B, *S)
        h[:, t] = h_prev
    return h


def _sum_to_shape(x, shape):
    """Sum ``x`` over the axes that broadcasting added or stretched to reach ``x.shape``."""
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead))) if lead else x
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return x.sum(axis=axes, keepdims=True) if axes else x


def linear_scan_backward(a, h, grad_h, h0=None, *, reverse=False, backend="numpy",
                         check_finite=True):
    """Vector-Jacobian product of ``h = linear_scan(a, b, h0, reverse=reverse)``.

    With ``G_t = dL/dh_t`` accumulated through later steps,

    .. math:: G_t = \\bar g_t + a_{t+1} G_{t+1}, \\quad
              \\partial b_t = G_t, \\quad \\partial a_t = G_t h_{t-1}, \\quad
              \\partial h_0 = a_0 G_0,

    i.e. the *reverse* linear scan of the upstream gradient ``grad_h`` with decays shifted by one
    step (forward ``reverse=True`` mirrors all of it). ``backend`` runs that reverse scan.

    Returns ``(grad_a, grad_b, grad_h0)``: ``grad_a`` has ``a``'s shape (summed over broadcast
    axes), ``grad_b`` has ``h``'s shape, ``grad_h0`` has shape ``(B, *S)`` (the gradient for the
    zero initial state when ``h0`` is None).

    ``check_finite`` (default True) rejects NaN/inf in ``a``, ``h``, ``grad_h`` or ``h0`` with a
    ``ValueError`` naming the argument, before any tier runs (the same on every ``backend``).
    """
    reverse = _checks.check_flag(reverse, "reverse")
    check_finite = _checks.check_flag(check_finite, "check_finite")
    check_backend(backend)
    a, h, h0 = check_linear_scan_args(a, h, h0, check_finite, b_name="h")
    grad_h = _checks.float_array(grad_h, "grad_h", dtype=h.dtype)
    _checks.check_shape(grad_h, h.shape, "grad_h", "(B, T, *S)")
    if check_finite:
        _checks.check_finite(grad_h, "grad_h")
    if reverse:  # the mirror image: flip time, run the forward rule, flip back
        flip = (lambda x: x[:, ::-1]) if a.ndim == h.ndim and a.shape[1] > 1 else (lambda x: x)
        ga, gb, gh0 = linear_scan_backward(
            flip(a), h[:, ::-1], grad_h[:, ::-1], h0, reverse=False, backend=backend,
            check_finite=False,
        )
        return flip(ga), np.ascontiguousarray(gb[:, ::-1]), gh0
    B, T = h.shape[:2]
    state_shape = h.shape[:1] + h.shape[2:]
    if T == 0:
        return np.zeros_like(a), np.zeros_like(h), np.zeros(state_shape, h.dtype)
    a_full = np.broadcast_to(a, h.shape)  # (B, T, *S)
    a_next = np.concatenate([a_full[:, 1:], np.zeros_like(a_full[:, :1])], axis=1)  # a_{t+1}
    G = linear_scan(a_next, grad_h, reverse=True, backend=backend, check_finite=False)
    h_prev = np.concatenate(
        [(np.zeros(state_shape, h.dtype) if h0 is None else h0)[:, None], h[:, :-1]], axis=1
    )  # h_{t-1}, (B, T, *S)
    grad_a = _sum_to_shape(G * h_prev, a.shape).astype(h.dtype, copy=False)
    grad_h0 = a_full[:, 0] * G[:, 0]
    return grad_a, G, grad_h0

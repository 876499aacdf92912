"""Argument checks of the scan hot path, shared by every tier.

The NumPy reference, :mod:`refseq.jit.scan` and :mod:`refseq.cuda.scan` all import these, so a
bad input gets the same ``TypeError``/``ValueError`` naming the argument on every tier.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.scan.assoc import SoftmaxState


def check_linear_scan_args(a, b, h0, check_finite=True, *, b_name="b"):
    """Validate ``linear_scan`` arguments; return ``(a, b, h0)`` as arrays of ``b``'s dtype.

    ``a`` keeps its own (broadcastable) shape; ``h0`` is None or has shape ``(B, *S)``.
    ``b_name`` is the user's name for ``b`` in messages (``"h"`` for ``linear_scan_backward``).
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    b = _checks.float_array(b, b_name, ndim_min=2)
    a = _checks.float_array(a, "a", dtype=b.dtype)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        shape = None
    if shape != b.shape:
        raise ValueError(
            f"a must broadcast to {b_name}'s shape (B, T, *S) = {b.shape}, got {a.shape} "
            "(keep size-1 axes for broadcast dims, e.g. a[..., None])"
        )
    if h0 is not None:
        h0 = _checks.float_array(h0, "h0", dtype=b.dtype)
        _checks.check_shape(h0, b.shape[:1] + b.shape[2:], "h0", "(B, *S)")
    if check_finite:
        for x, name in ((a, "a"), (b, b_name), (h0, "h0")):
            if x is not None:
                _checks.check_finite(x, name)
    return a, b, h0


def check_softmax_scan_args(s, v, mask, state, check_finite=True):
    """Validate ``softmax_scan`` arguments; return ``(s, v, mask, state)`` in ``v``'s dtype."""
    check_finite = _checks.check_flag(check_finite, "check_finite")
    v = _checks.float_array(v, "v")
    if v.ndim != 4:
        raise ValueError(f"v must have shape (B, T, H, D), got {v.shape}")
    s = _checks.float_array(s, "s", dtype=v.dtype)
    B, T, H, D = v.shape
    _checks.check_shape(s, (B, T, H), "s", "(B, T, H)")
    mask = _checks.bool_mask(mask, (B, T), "mask", "(B, T)")
    if state is not None:
        state = check_softmax_state(state, (B, H, D), v.dtype, check_finite)
    if check_finite:
        _checks.check_finite(s, "s")
        _checks.check_finite(v, "v")
    return s, v, mask, state


def check_softmax_state(state, shape, dtype, check_finite=True) -> SoftmaxState:
    """Validate a carried ``SoftmaxState`` against ``shape = (B, H, D)``; cast it to ``dtype``.

    ``m`` must be finite or ``-inf``; ``u >= 0``; and where ``m = -inf`` (no token seen yet) the
    state must be the identity, ``u = 0`` and ``w = 0``: ``softmax_combine`` would otherwise drop
    that mass silently (``e^{-inf - m} = 0``).
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    dtype = _checks.check_float_dtype(dtype, "dtype")
    B, H, D = shape
    if not isinstance(state, tuple) or len(state) != 3:
        raise TypeError("state must be a tuple (m (B, H), u (B, H), w (B, H, D)), e.g. a "
                        "SoftmaxState from softmax_scan or softmax_identity((B, H), D, dtype)")
    m0, u0, w0 = (_checks.float_array(x, f"state.{n}", dtype=dtype) for x, n in zip(state, "muw"))
    _checks.check_shape(m0, (B, H), "state.m", "(B, H)")
    _checks.check_shape(u0, (B, H), "state.u", "(B, H)")
    _checks.check_shape(w0, (B, H, D), "state.w", "(B, H, D)")
    if np.isnan(m0).any() or np.isposinf(m0).any():
        raise ValueError("state.m must be finite or -inf (the identity)")
    if (u0 < 0).any():
        raise ValueError("state.u must be >= 0 (it is a sum of exponentials)")
    empty = np.isneginf(m0)
    if empty.any() and ((u0[empty] != 0).any() or (w0[empty] != 0).any()):
        raise ValueError("state.u and state.w must be 0 where state.m is -inf (an empty state)")
    if check_finite:
        _checks.check_finite(u0, "state.u")
        _checks.check_finite(w0, "state.w")
    return SoftmaxState(m0, u0, w0)


def check_out(out, shape, dtype, name="out"):
    """Validate an ``out=`` buffer: a C-contiguous ndarray of ``shape`` and ``dtype``, or None.

    Raises ``TypeError`` for a non-array or a wrong dtype and ``ValueError`` for a wrong shape
    or a non-contiguous array (the kernels write it as one flat block).
    """
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of dtype {np.dtype(dtype)} and shape "
                        f"{tuple(shape)}, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)} (the result's), got {out.dtype}")
    _checks.check_shape(out, shape, name, "of the result")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array "
                         "(use np.empty(shape, dtype))")
    return out


# --- validation after the pass (the compiled tiers) -------------------------------------------
# A non-finite input always leaves a non-finite value in the final state of a linear scan: once
# h is NaN or +-inf, a * h + b stays non-finite (0 * inf = NaN, NaN persists, a finite non-zero
# multiple of inf is inf, inf - inf = NaN), and a non-finite a_t or b_t makes h_t non-finite
# whatever the finite h_{t-1}. So the compiled tiers test the final state only (B * C values)
# and run the exact check of the reference (same message) when it is not finite; finite inputs
# that overflow legitimately pass that check and the result is returned.


def recheck_linear_scan(a, b, h0, final):
    """Raise as the reference would if ``final`` (the scan's last state) reveals a bad input."""
    if b.size == 0 or not np.isfinite(final).all():
        check_linear_scan_args(a, b, h0, check_finite=True)


def recheck_softmax_scan(s, v, mask, state, flag, final):
    """Raise as the reference would if the kernel's evidence reveals a non-finite ``s`` or ``v``.

    ``flag`` accumulates ``s_t - s_t`` for every score and ``v_t - v_t`` for every value the
    fold skips (masked tokens), so it is NaN exactly when one of those is NaN or +-inf. A
    non-finite value ``v_t`` at a valid token leaves the final ``w`` non-finite: ``w`` is updated
    as ``w alpha + v_t beta`` with ``0 <= alpha, beta <= 1``, and ``0 * inf = NaN``; a
    non-finite carried ``state.u`` or ``state.w`` persists in the final ``u`` or ``w`` the same
    way (``state.m`` is always checked before the pass).
    """
    if v.size == 0 or not (np.isfinite(flag).all() and np.isfinite(final.u).all()
                           and np.isfinite(final.w).all()):
        check_softmax_scan_args(s, v, mask, state, check_finite=True)

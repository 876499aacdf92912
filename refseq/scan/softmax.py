"""The prefix-softmax scan of Aaren and its backward pass (NumPy reference).

The inclusive scan of the ``SOFTMAX_TRIPLE`` operator of :mod:`refseq.scan.assoc` (Feng et al.,
"Attention as an RNN", arXiv 2405.13956, Sec. 3.1); ``backend="jit" | "cuda"`` runs the
compiled twins after the same checks.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.scan._dispatch import dispatch as _dispatch
from refseq.scan.assoc import (
    SOFTMAX_TRIPLE,
    SoftmaxState,
    scan_sequential,
    softmax_identity,
    softmax_leaf,
)
from refseq.scan.checks import check_out, check_softmax_scan_args
from refseq.scan.linear import linear_scan
from refseq.tiers import check_backend


def softmax_scan(s, v, mask=None, state=None, *, backend="numpy", check_finite=True, out=None):
    """Prefix softmax attention of one query: ``o_t = sum_{i<=t} e^{s_i} v_i / sum_{i<=t} e^{s_i}``.

    The inclusive scan of ``SOFTMAX_TRIPLE`` over leaves ``(s_i, 1, v_i)`` (Aaren, arXiv
    2405.13956, Sec. 3.2, the stable form), combined on the left with ``state``:

    .. math:: m_t = \\max(m_{t-1}, s_t),\\; u_t = u_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t},\\;
              w_t = w_{t-1} e^{m_{t-1}-m_t} + v_t e^{s_t-m_t},\\; o_t = w_t / u_t.

    Parameters
    ----------
    s : (B, T, H) scores; v : (B, T, H, D) values (float32 or float64, ``v``'s dtype wins).
    mask : (B, T) bool, optional — False marks padding; a masked token is the identity leaf, so
        its output repeats the current prefix value. A prefix with no valid token (and no carried
        mass) outputs 0 and reports ``u = 0``.
    state : ``SoftmaxState`` (m (B, H), u (B, H), w (B, H, D)), optional — carry from a previous
        call, so that two calls with carried state equal one call.
    backend : "numpy" | "jit" | "cuda".
    check_finite : bool — reject NaN/inf inputs with ``ValueError`` (default); the compiled
        tiers check after their pass (:func:`refseq.scan.checks.recheck_softmax_scan`).
    out : (B, T, H, D) C-contiguous array of ``v``'s dtype, optional — receives ``o``.

    Returns
    -------
    o : (B, T, H, D); state : the final ``SoftmaxState`` (the input state if T = 0).
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    compiled = check_backend(backend) != "numpy"
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite and not compiled)
    out = check_out(out, v.shape, v.dtype)
    if compiled:  # the twin checks finiteness after its pass
        return _dispatch("softmax_scan", backend, s, v, mask, state, check_finite=check_finite,
                         out=out)
    o, (M, U, W), final = _softmax_prefix(s, v, mask, state)
    if out is not None:
        out[...] = o
        o = out
    return o, final


def _softmax_prefix(s, v, mask, state):
    """Reference fold; returns ``o`` and the per-step prefix triples ``(M, U, W)``."""
    B, T, H, D = v.shape
    leaves = softmax_leaf(s, v, mask)  # m, u: (B, T, H); w: (B, T, H, D)
    M, U, W = scan_sequential(SOFTMAX_TRIPLE, leaves, axis=1, initial=state)
    o = np.divide(W, U[..., None], out=np.zeros_like(W), where=U[..., None] > 0)  # o = w / u
    if T == 0:
        final = state if state is not None else softmax_identity((B, H), D, v.dtype)
    else:
        final = SoftmaxState(M[:, -1].copy(), U[:, -1].copy(), W[:, -1].copy())
    return o, (M, U, W), final


def _softmax_scan_numpy(s, v, mask=None, state=None, *, check_finite=False):
    o, _, final = _softmax_prefix(s, v, mask, state)
    return o, final


def softmax_scan_backward(s, v, grad_o, mask=None, state=None, *, backend="numpy",
                          check_finite=True):
    """Vector-Jacobian product of ``o, _ = softmax_scan(s, v, mask, state)``.

    With ``p_{t,i} = e^{s_i - M_t} / U_t`` (the attention weight of token i in prefix t),
    ``do_t/dv_i = p_{t,i}`` and ``do_t/ds_i = p_{t,i} (v_i - o_t)``. The sums over ``t >= i`` are
    two *reverse linear scans* whose decays ``e^{M_t - M_{t+1}} <= 1`` never overflow:

    .. math:: A_t = g_t / U_t + e^{M_t - M_{t+1}} A_{t+1}, \\quad
              \\beta_t = (g_t \\cdot o_t) / U_t + e^{M_t - M_{t+1}} \\beta_{t+1},

    then ``grad_v_i = e^{s_i - M_i} A_i`` and ``grad_s_i = e^{s_i - M_i} (v_i . A_i - beta_i)``
    (zero at masked tokens). The carried state acts as one more token group on the left:
    ``grad_w0 = e^{m0 - M_0} A_0``, ``grad_u0 = -e^{m0 - M_0} beta_0``,
    ``grad_m0 = u0 grad_u0 + w0 . grad_w0``. ``backend`` runs the two reverse scans.

    Returns ``(grad_s (B, T, H), grad_v (B, T, H, D), grad_state)``; ``grad_state`` is a
    ``SoftmaxState`` of gradients, or None when ``state`` is None.

    ``check_finite`` (default True) rejects NaN/inf in ``s``, ``v``, ``grad_o`` or ``state``
    with a ``ValueError`` naming the argument, before any tier runs (the same on every
    ``backend``).
    """
    check_finite = _checks.check_flag(check_finite, "check_finite")
    check_backend(backend)
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite)
    grad_o = _checks.float_array(grad_o, "grad_o", dtype=v.dtype)
    _checks.check_shape(grad_o, v.shape, "grad_o", "(B, T, H, D)")
    if check_finite:
        _checks.check_finite(grad_o, "grad_o")
    B, T, H, D = v.shape
    if T == 0:
        zero = None if state is None else SoftmaxState(*(np.zeros_like(x) for x in state))
        return np.zeros_like(s), np.zeros_like(v), zero
    o, M, U = _softmax_forward_for_backward(s, v, mask, state, backend)
    safe_M = np.where(np.isneginf(M), 0.0, M)
    # decay_t = e^{M_t - M_{t+1}} (0 after an empty prefix, and at t = T-1 where A_T = 0)
    decay = np.zeros_like(M)
    decay[:, :-1] = np.where(np.isneginf(M[:, :-1]), 0.0, np.exp(M[:, :-1] - safe_M[:, 1:]))
    inv_U = np.divide(1.0, U, out=np.zeros_like(U), where=U > 0)  # (B, T, H)
    A = linear_scan(
        decay[..., None],
        grad_o * inv_U[..., None],
        reverse=True,
        backend=backend,
        check_finite=False,
    )  # (B, T, H, D)
    beta = linear_scan(
        decay,
        np.einsum("bthd,bthd->bth", grad_o, o) * inv_U,
        reverse=True,
        backend=backend,
        check_finite=False,
    )  # (B, T, H)
    valid = np.ones((B, T), bool) if mask is None else mask
    p = np.where(valid[..., None], np.exp(np.minimum(s - safe_M, 0.0)), 0.0)  # e^{s_i - M_i}
    grad_v = p[..., None] * A
    grad_s = p * (np.einsum("bthd,bthd->bth", v, A) - beta)
    grad_state = None
    if state is not None:
        m0, u0, w0 = state
        c = np.where(np.isneginf(m0), 0.0, np.exp(m0 - safe_M[:, 0]))  # e^{m0 - M_0}, (B, H)
        grad_w0 = c[..., None] * A[:, 0]
        grad_u0 = -c * beta[:, 0]
        grad_m0 = u0 * grad_u0 + np.einsum("bhd,bhd->bh", w0, grad_w0)
        grad_state = SoftmaxState(grad_m0, grad_u0, grad_w0)
    return grad_s.astype(v.dtype, copy=False), grad_v.astype(v.dtype, copy=False), grad_state


def _softmax_forward_for_backward(s, v, mask, state, backend):
    """``o`` and the prefix maxima ``M`` and normalisers ``U`` (carry included), on ``backend``.

    ``M`` is a running maximum; given it, ``U`` is a linear scan,
    ``U_t = U_{t-1} e^{M_{t-1} - M_t} + e^{s_t - M_t}`` (0 for a masked token), seeded with
    ``u0`` under the decay ``e^{m0 - M_0}``. ``o`` is the forward scan itself.
    """
    B, T, H, D = v.shape
    s_valid = s if mask is None else np.where(mask[..., None], s, -np.inf)  # (B, T, H)
    m_start = np.full((B, H), -np.inf, s.dtype) if state is None else state.m
    M = np.maximum.accumulate(np.concatenate([m_start[:, None], s_valid], axis=1), axis=1)
    M_prev, M = M[:, :-1], M[:, 1:]  # M_{t-1} (M_{-1} = m0) and M_t, (B, T, H)
    safe_M = np.where(np.isneginf(M), 0.0, M)
    with np.errstate(invalid="ignore"):
        decay = np.where(np.isneginf(M_prev), 0.0, np.exp(M_prev - safe_M))
        leaf = np.where(np.isneginf(s_valid), 0.0, np.exp(s_valid - safe_M))
    u0 = None if state is None else state.u
    U = linear_scan(decay.astype(s.dtype), leaf.astype(s.dtype), u0, backend=backend,
                    check_finite=False)
    o, _ = softmax_scan(s, v, mask, state, backend=backend, check_finite=False)
    return o, M, U


def softmax_scan_textbook(s, v, mask=None):
    """The textbook rolling form ``a^_t = a^_{t-1} + e^{s_t} v_t``, ``c^_t = c^_{t-1} + e^{s_t}``,
    ``o_t = a^_t / c^_t`` (Aaren, arXiv 2405.13956, Sec. 3.1, before the max shift).

    Kept beside the stable scan only to show why the running max ``m`` exists: it overflows once
    a score passes ~709 (float64) or ~88 (float32), where ``softmax_scan`` stays exact. Never use
    it for real work.
    """
    s, v, mask, _ = check_softmax_scan_args(s, v, mask, None, check_finite=True)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(s) if mask is None else np.where(mask[..., None], np.exp(s), 0.0).astype(s.dtype)
        a_hat = np.cumsum(e[..., None] * v, axis=1)  # (B, T, H, D)
        c_hat = np.cumsum(e, axis=1)  # (B, T, H)
        return a_hat / c_hat[..., None]

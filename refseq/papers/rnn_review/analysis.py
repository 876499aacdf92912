"""Gradient-flow diagnostics: why simple RNNs forget and LSTM cells do not (Lipton et al., arXiv
1506.00019, Sec. 3.2 and 4.1; Hochreiter et al. 2001; Pascanu et al. 2013, arXiv 1211.5063).

The sensitivity of a late hidden state to an early one is a product of per-step Jacobians,

.. math::

    \\frac{\\partial h(t)}{\\partial h(0)} = \\prod_{j=t}^{1} \\mathrm{diag}(\\sigma_h'(a(j)))\\,
    W^{hh}, \\qquad
    \\Big\\lVert \\frac{\\partial h(t)}{\\partial h(0)} \\Big\\rVert_2
    \\le \\big(\\lVert W^{hh} \\rVert_2 \\max|\\sigma_h'|\\big)^t

so it vanishes geometrically when the bracket is below one. For the LSTM the state is the pair
``(h, s)`` and the per-step Jacobian is ``2H x 2H``; with a forget gate near one the ``s -> s``
block is close to the identity (the constant error carousel) and the product does not vanish.
All products are exact (forward mode, one matrix product per step), not estimates.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.rnn.elman import ACTIVATIONS, elman_forward
from refseq.rnn.lstm import lstm_forward

MAX_DERIVATIVE = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}  # max |σ_h'|


def _spectral_norms(J):
    """Largest singular value of each matrix in ``J (..., M, M)``."""
    return np.linalg.norm(J, ord=2, axis=(-2, -1))


def _check_x(x, I):
    """``x`` is (T, I) or (B, T, I) with I = the input weights' width (when known)."""
    if x.ndim not in (2, 3) or (I is not None and x.shape[-1] != I):
        raise ValueError("x must have shape (T, I) or (B, T, I)"
                         + ("" if I is None else f" with I = {I} (the input weights' width)")
                         + f", got {x.shape}")


def elman_jacobian_chain(x, W_hx, W_hh, b_h, h0=None, activation="tanh"):
    """``norms[..., t-1] = ||∂h(t)/∂h(0)||_2`` for t = 1..T.

    Parameters
    ----------
    x : (T, I) one sequence, or (B, T, I); W_hx : (H, I); W_hh : (H, H); b_h : (H,);
    h0 : (H,) or (B, H), optional; activation : "tanh" | "sigmoid" | "relu".

    Returns
    -------
    norms : (T,) or (B, T), ``x``'s dtype.
    """
    x = _checks.float_array(x, "x")
    _check_x(x, np.shape(W_hx)[-1] if np.ndim(W_hx) == 2 else None)
    single = x.ndim == 2
    x3 = x[None] if single else x
    h0 = None if h0 is None else np.asarray(h0)
    h0 = h0[None] if (h0 is not None and single) else h0
    h, _, _ = elman_forward(x3, W_hx, W_hh, b_h, h0, activation)  # (B, T, H)
    dphi = ACTIVATIONS[activation][1](h)  # (B, T, H) σ_h'(a(t)) from h(t)
    W_hh = np.asarray(W_hh, x.dtype)
    B, T, H = h.shape
    J = np.broadcast_to(np.eye(H, dtype=x.dtype), (B, H, H))
    norms = np.empty((B, T), x.dtype)
    for t in range(T):
        J = dphi[:, t, :, None] * (W_hh @ J)  # (B, H, H): diag(φ'(a(t))) W^hh J
        norms[:, t] = _spectral_norms(J)
    return norms[0] if single else norms


def jacobian_bound(W_hh, activation, T):
    """``(||W_hh||_2 max|σ_h'|)^t`` for t = 1..T: the bound on :func:`elman_jacobian_chain`."""
    W_hh = _checks.float_array(W_hh, "W_hh")
    if W_hh.ndim != 2 or W_hh.shape[0] != W_hh.shape[1]:
        raise ValueError(f"W_hh must be a square matrix (H, H), got shape {W_hh.shape}")
    _checks.check_choice(activation, "activation", tuple(MAX_DERIVATIVE))
    T = _checks.check_number(T, "T", integer=True, low=0)
    rate = np.linalg.norm(W_hh.astype(np.float64), 2) * MAX_DERIVATIVE[activation]
    return rate ** np.arange(1, T + 1)


def scalar_rnn_gradient(w, activation_derivatives):
    """The review's one-unit illustration: running products ``Π_{j<=t} (w φ'_j)`` (T,).

    The last entry is the full factor ``∂h(T)/∂h(0)`` of a single unit with self-weight ``w``.
    """
    d = _checks.float_array(activation_derivatives, "activation_derivatives")
    w = _checks.check_number(w, "w")
    return np.cumprod(w * d)


def lstm_step_jacobians(x, params, state0=None, *, forget_gate=True, peepholes=False,
                        output_activation="tanh"):
    """Per-step Jacobians ``∂(h(t), s(t)) / ∂(h(t-1), s(t-1))``, shape (B, T, 2H, 2H).

    Rows and columns are ordered ``(h, s)``. Analytic:
    with ``A_k = diag(k'_pre) W^{kh}`` for each gate ``k`` and peephole diagonals
    ``D_i = i(1-i) p_i``, ``D_f = f(1-f) p_f``,
    ``∂s/∂h = diag(i) A_g + diag(g) A_i + diag(s(t-1)) A_f``,
    ``∂s/∂s = diag(f + g D_i + s(t-1) D_f)``,
    ``∂o/∂· = diag(o(1-o)) (W^{oh} [h only] + diag(p_o) ∂s/∂·)``,
    ``∂h/∂· = diag(φ'(s) o) ∂s/∂· + diag(φ(s)) ∂o/∂·``.
    """
    forget_gate = check_flag(forget_gate, "forget_gate")
    peepholes = check_flag(peepholes, "peepholes")
    _, _, cache = lstm_forward(x, params, state0, forget_gate=forget_gate, peepholes=peepholes,
                               output_activation=output_activation)
    P, S = cache.P, cache.steps
    g, i, f, o, s_prev, phi_s = (np.moveaxis(S[k], 0, 1)[..., None]  # (B, T, H, 1)
                                 for k in ("g", "i", "f", "o", "s_prev", "phi_s"))
    H = g.shape[2]
    zero = np.zeros(H, g.dtype)
    p_i, p_f, p_o = (P[k] if peepholes else zero for k in ("p_i", "p_f", "p_o"))
    df = f * (1 - f) if forget_gate else np.zeros_like(f)
    A_g = (1 - g * g) * P["W_gh"]  # (B, T, H, H)
    A_i = i * (1 - i) * P["W_ih"]
    A_f = df * P["W_fh"]
    ds_dh = i * A_g + g * A_i + s_prev * A_f
    eye = np.eye(H, dtype=g.dtype)
    ds_ds = (f + g * i * (1 - i) * p_i[:, None] + s_prev * df * p_f[:, None]) * eye
    do = o * (1 - o)
    do_dh = do * (P["W_oh"] + p_o[:, None] * ds_dh)
    do_ds = do * (p_o[:, None] * ds_ds)
    dphi = 1 - phi_s * phi_s if output_activation == "tanh" else np.ones_like(phi_s)
    dh_dh = dphi * o * ds_dh + phi_s * do_dh
    dh_ds = dphi * o * ds_ds + phi_s * do_ds
    top = np.concatenate([dh_dh, dh_ds], axis=-1)  # (B, T, H, 2H)
    bottom = np.concatenate([ds_dh, ds_ds], axis=-1)
    return np.concatenate([top, bottom], axis=-2)  # (B, T, 2H, 2H)


def lstm_state_jacobian(x, params, state0=None, which="s", *, forget_gate=True, peepholes=False,
                        output_activation="tanh"):
    """Norms of the LSTM's state sensitivity over time (forward-mode product of the per-step
    Jacobians of :func:`lstm_step_jacobians`).

    Parameters
    ----------
    x : (T, I) or (B, T, I); params, switches : as :func:`~refseq.rnn.lstm.lstm_forward`;
    state0 : ``(h0, s0)``, optional (each (H,) for a single sequence, else (B, H)).
    which : "s" -> ``||∂s(t)/∂s(0)||_2``; "h" -> ``||∂h(t)/∂h(0)||_2``;
        "full" -> ``||∂(h(t), s(t))/∂(h(0), s(0))||_2``. All are total derivatives (every path).

    Returns
    -------
    norms : (T,) or (B, T).
    """
    forget_gate = check_flag(forget_gate, "forget_gate")
    peepholes = check_flag(peepholes, "peepholes")
    if which not in ("s", "h", "full"):
        raise ValueError(f"which must be 's', 'h' or 'full', got {which!r}")
    x = _checks.float_array(x, "x")
    W_gx = params.get("W_gx") if isinstance(params, dict) else getattr(params, "W_gx", None)
    _check_x(x, np.shape(W_gx)[-1] if np.ndim(W_gx) == 2 else None)
    single = x.ndim == 2
    if single:
        x = x[None]
        state0 = None if state0 is None else tuple(np.asarray(v)[None] for v in state0)
    J_steps = lstm_step_jacobians(x, params, state0, forget_gate=forget_gate,
                                  peepholes=peepholes, output_activation=output_activation)
    B, T, M, _ = J_steps.shape
    H = M // 2
    block = {"h": np.s_[..., :H, :H], "s": np.s_[..., H:, H:], "full": np.s_[...]}[which]
    J = np.broadcast_to(np.eye(M, dtype=x.dtype), (B, M, M))
    norms = np.empty((B, T), x.dtype)
    for t in range(T):
        J = J_steps[:, t] @ J  # (B, 2H, 2H)
        norms[:, t] = _spectral_norms(J[block])
    return norms[0] if single else norms

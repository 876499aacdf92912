"""FlashRNN's head-wise recurrence: forward, explicit BPTT backward, step and input projection.

Pöppel, Beck, Hochreiter, *FlashRNN: Optimizing Traditional RNNs on Modern Hardware*, arXiv
2412.07752; official code NX-AI/flashrnn. The hidden vector is split into N heads and
the recurrent matrix is block-diagonal, one dense (D, D) block per gate and head:

.. math:: Ry_t[b, g, n, d] = \\sum_p R[g, n, d, p] \\, h_{t-1}[b, n, p], \\qquad
          states_t = P_{cell}(states_{t-1},\\; Wx_t + Ry_t + b)

with the pointwise maps ``P`` of :mod:`refseq.recurrence.cells`.

Layouts (the official defaults, so results compare with ``flashrnn(...)`` without transposes):
``Wx`` (B, T, G_w, N, D) ("BTGHD"), ``R`` (G_r, N, D, D) ("GHDP", [gate, head, out, in]),
``b`` (G_t, N, D) ("GHD"), states (S, B, N, D) and ``states_all`` (S, B, T, N, D) ("SBTHD").

The cache
---------
``flashrnn_forward(..., return_cache=True)`` returns a plain dict that ``flashrnn_backward``
consumes; the compiled tiers produce and consume the same dict::

    cache = {
        "states": (S, B, T+1, N, D)  # states[:, :, 0] = states0 (zeros if None),
                                     # states[:, :, t+1] = states_all[:, :, t]
        "gates":  (T, B, G_t, N, D)  # per-step gate cache, gate axis = CELLS[cell].cache_names:
                                     #   elman/elman_relu: h;  lstm: i, f, z, o (activations);
                                     #   gru: g~, r, z, n~ (g~, n~ pre-activations);
                                     #   slstm: i~, f~ (pre-activations), z, o (activations)
    }

Both arrays have the computation dtype. Nothing else is stored: options that change the backward
(``clamp_gates_le_one``) are passed to ``flashrnn_backward`` again.

The argument checks every tier shares (:func:`check_recurrence_args`,
:func:`check_backward_args`) live in :mod:`refseq.recurrence.checks`.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag
from refseq.recurrence.cells import preactivations
from refseq.recurrence.checks import (
    check_accumulate_dtype,
    check_backward_args,
    check_clipval,
    check_numpy_only,
    check_recurrence_args,
)
from refseq.recurrence.layouts import round_to_bfloat16
from refseq.tiers import check_backend, implementation

# ---------------------------------------------------------------------------------------------
# Input projection and one step.


def _recurrent_input(R, h, acc):
    """``Ry[b, g, n, d] = sum_p R[g, n, d, p] h[b, n, p]``, accumulated in ``acc``."""
    Ry = np.einsum("gndp,bnp->bgnd", R.astype(acc, copy=False), h.astype(acc, copy=False))
    return Ry.astype(h.dtype, copy=False)  # (B, G_r, N, D)


def _step(spec, Wx_t, R, b, states, forward_clipval, acc, options):
    """One loop iteration: returns ``(states_t, gates_t (B, G_t, N, D))``."""
    Ry = _recurrent_input(R, states[0], acc)  # (B, G_r, N, D)
    pre = preactivations(spec, Wx_t, Ry, b)  # (B, G_t, N, D), bias order
    new, cache = spec.forward(pre, states, **options)  # (S, B, N, D), {name: (B, N, D)}
    if forward_clipval is not None:
        new[0] = np.clip(new[0], -forward_clipval, forward_clipval)
    gates = np.stack([cache[k] for k in spec.cache_names], axis=1)  # (B, G_t, N, D)
    return new.astype(states.dtype, copy=False), gates.astype(states.dtype, copy=False)


def _options(spec, clamp_gates_le_one):
    if clamp_gates_le_one and "clamp_gates_le_one" not in spec.options:
        raise ValueError(f"clamp_gates_le_one applies to the sLSTM only, not {spec.name!r}")
    return {"clamp_gates_le_one": True} if clamp_gates_le_one else {}


def flashrnn_step(Wx_t, R, b, states, *, cell="lstm", forward_clipval=None,
                  clamp_gates_le_one=False, accumulate_dtype=None, emulate_bfloat16=False,
                  check_finite=True):
    """One step of :func:`flashrnn_forward`: ``states_t = P(states_{t-1}, Wx_t + R h + b)``.

    ``Wx_t`` (B, G_w, N, D), ``states`` (S, B, N, D) (required); returns ``new_states``
    (S, B, N, D). T calls with carried state reproduce the full forward exactly. NumPy only;
    the keywords are those of :func:`flashrnn_forward`.
    """
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    emulate_bfloat16 = check_flag(emulate_bfloat16, "emulate_bfloat16")
    check_finite = check_flag(check_finite, "check_finite")
    if states is None:
        raise TypeError("states must be a float32 or float64 array (S, B, N, D), got None")
    spec, Wx, R, b, states = check_recurrence_args(Wx_t, R, b, states, cell=cell,
                                                   check_finite=check_finite, step=True)
    acc = check_accumulate_dtype(accumulate_dtype, Wx.dtype)
    new, _ = _step(spec, Wx[:, 0], R, b, states, check_clipval(forward_clipval, "forward_clipval"),
                   acc, _options(spec, clamp_gates_le_one))
    return round_to_bfloat16(new) if emulate_bfloat16 else new


# ---------------------------------------------------------------------------------------------
# Forward over a sequence.


def flashrnn_forward(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                     return_cache=False, backend="numpy", clamp_gates_le_one=False,
                     accumulate_dtype=None, emulate_bfloat16=False, check_finite=True):
    """Run a head-wise RNN over a sequence (contract: docs/hot-paths/recurrence.md).

    .. math:: \\tilde g_t = Wx_t + R\\,h_{t-1} + b, \\qquad
              states_t = P_{cell}(states_{t-1}, \\tilde g_t), \\quad t = 1..T

    Parameters
    ----------
    Wx : (B, T, G_w, N, D) — projected inputs (:func:`project_inputs`), gate order of the cell.
    R : (G_r, N, D, D) — recurrent blocks ``[gate, head, out, in]``.
    b : (G_t, N, D) — biases (GRU: ``[b_hn, b_ir+b_hr, b_iz+b_hz, b_in]``).
    states0 : (S, B, N, D), optional — initial states; None = zeros (sLSTM: ``n = m = 0``).
    cell : "elman" | "elman_relu" | "lstm" | "gru" | "slstm" (``refseq.recurrence.CELLS``).
    forward_clipval : float, optional — clip each new ``h`` to ``[-v, v]`` before it is stored
        and fed back (the backward treats this clip as the identity, like the official code).
    return_cache : bool — also return the cache dict (module docstring) for the backward.
    backend : "numpy" | "jit" | "cuda".
    clamp_gates_le_one : bool — sLSTM only: ``i', f' <- min(., 1)`` as the official CUDA kernels.
    accumulate_dtype : float32 | float64, optional — numpy tier only: dtype of the ``R h``
        accumulation, not narrower than the inputs (default: the input dtype).
    emulate_bfloat16 : bool — numpy tier only: round stored states and gates to bfloat16
        precision after every step (mimics the official default ``dtype="bfloat16"``,
        ``dtype_acc="float32"``). On ``"jit"``/``"cuda"`` setting either is a ``ValueError``.
    check_finite : bool — reject NaN/inf inputs with ``ValueError``.

    Returns
    -------
    states_all : (S, B, T, N, D) — states after every step (excludes ``states0``).
    last_states : (S, B, N, D) — ``states_all[:, :, -1]``, or ``states0`` when T = 0; pass it as
        ``states0`` of the next chunk.
    cache : dict, only if ``return_cache``
        ``{"states": (S, B, T+1, N, D), "gates": (T, B, G_t, N, D)}``.

    All outputs have the widest input dtype (float32 or float64).
    """
    return_cache = check_flag(return_cache, "return_cache")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    emulate_bfloat16 = check_flag(emulate_bfloat16, "emulate_bfloat16")
    check_finite = check_flag(check_finite, "check_finite")
    numpy = check_backend(backend) == "numpy"
    if not numpy:
        check_numpy_only(backend, accumulate_dtype=accumulate_dtype,
                         emulate_bfloat16=emulate_bfloat16)
    # the compiled tiers check finiteness themselves, with their own (faster) predicate
    spec, Wx, R, b, states0 = check_recurrence_args(Wx, R, b, states0, cell=cell,
                                                    check_finite=check_finite and numpy)
    forward_clipval = check_clipval(forward_clipval, "forward_clipval")
    options = _options(spec, clamp_gates_le_one)
    if not numpy:
        fn = implementation("recurrence", "flashrnn_forward", backend)
        return fn(Wx, R, b, states0, cell=spec.name, forward_clipval=forward_clipval,
                  return_cache=return_cache, clamp_gates_le_one=clamp_gates_le_one,
                  check_finite=check_finite)
    acc = check_accumulate_dtype(accumulate_dtype, Wx.dtype)
    B, T, _, N, D = Wx.shape
    states = np.empty((spec.num_states, B, T + 1, N, D), Wx.dtype)  # index 0 = states0
    gates = np.empty((T, B, spec.num_gates_t, N, D), Wx.dtype)
    states[:, :, 0] = states0
    s = states0
    for t in range(T):
        s, g = _step(spec, Wx[:, t], R, b, s, forward_clipval, acc, options)
        if emulate_bfloat16:
            s, g = round_to_bfloat16(s), round_to_bfloat16(g)
        states[:, :, t + 1] = s  # (S, B, N, D)
        gates[t] = g  # (B, G_t, N, D)
    states_all = states[:, :, 1:].copy()  # (S, B, T, N, D)
    last_states = states[:, :, T].copy()  # (S, B, N, D)
    if return_cache:
        return states_all, last_states, {"states": states, "gates": gates}
    return states_all, last_states


# ---------------------------------------------------------------------------------------------
# Backward (BPTT).


def flashrnn_backward(d_states_all, d_last_states, R, b, cache, *, cell="lstm",
                      gradient_recurrent_cut=False, gradient_recurrent_clipval=None,
                      backend="numpy", clamp_gates_le_one=False, accumulate_dtype=None,
                      exact_stabiliser=False, check_finite=True):
    """Explicit backward pass through time of :func:`flashrnn_forward`.

    With ``δs_t`` the total gradient on ``states_t`` (external + carried), for t = T..1:

    .. math:: (δs^{direct}_{t-1}, δ\\tilde g_t) = P^{*}_{cell}(δs_t; s_{t-1}, s_t, cache_t),
              \\quad δh^{rec}_{t-1}[n] = \\sum_{g \\in R\\text{-gates}} R[g, n]^T δ\\tilde g_t[g, n]

    ``δs_{t-1} = δs^{direct}_{t-1}`` with ``δh^{rec}_{t-1}`` added to its ``h`` component;
    ``dWx[:, t] = δg~_t`` on the Wx gates, ``dR[g, n] += Σ_b δg~_t[b, g, n] ⊗ h_{t-1}[b, n]``,
    ``db += Σ_b δg~_t``; ``d_states0 = δs_0``.

    Parameters
    ----------
    d_states_all : (S, B, T, N, D) or None — gradient on ``states_all``.
    d_last_states : (S, B, N, D) or None — gradient on ``last_states``; it is *added* to the
        one on ``states_all[:, :, -1]`` (the same tensor), or to ``d_states0`` when T = 0.
    R, b : the forward's weights; cache : the forward's cache dict.
    cell : the forward's cell.
    gradient_recurrent_cut : bool — drop ``δh^{rec}`` (truncate BPTT to the direct paths).
    gradient_recurrent_clipval : float, optional — clip ``δh^{rec}`` to ``[-v, v]``; for the
        sLSTM NaN/inf entries of ``δh^{rec}`` become 0 first. ``v = 0`` equals the cut.
    clamp_gates_le_one, accumulate_dtype : as passed to the forward (``accumulate_dtype``:
        numpy tier only).
    exact_stabiliser : bool — sLSTM only, numpy tier only: differentiate the stabiliser ``m``
        and the clamps exactly instead of FlashRNN's convention (see Notes).
    check_finite : bool — reject NaN/inf gradients, weights or cache entries with ``ValueError``.

    Returns
    -------
    d_states0 : (S, B, N, D); dWx : (B, T, G_w, N, D); dR : (G_r, N, D, D); db : (G_t, N, D).

    Notes
    -----
    sLSTM, FlashRNN's convention (the default, what every tier computes): the stabiliser ``m``
    is a stop-gradient and the clamps ``max(n, 1)`` and ``min(1, .)`` are the identity, so
    incoming gradients on ``m`` are ignored and ``d_states0[3] = 0``. Where this is the true
    gradient: ``h_t = o_t c_t / n_t`` does not depend on the ``m`` trajectory after step 0
    (``c`` and ``n`` are rescaled by the same ``e^{-m_t}``), so for a loss on ``h`` alone, with
    ``f' n_{t-1} + i' >= 1`` at every step (and the gate clamps inactive), the gradients on
    ``Wx``, ``R``, ``b``, ``h0``, ``c0`` and ``n0`` are exact. The one returned value that is not
    is ``d m0``: the initial ``m0`` sets the scale of the carried ``c0`` and ``n0``, and its
    true gradient under those conditions is ``c0 * d_c0 + n0 * d_n0`` (not 0). Losses on ``c``,
    ``n`` or ``m``, or an active clamp, also depart from the convention.
    ``exact_stabiliser=True`` (numpy tier) returns the true gradient in every case (ties:
    ``m_t = max(ĩ, ℓ_t)`` goes to ``ĩ``; a clamp at its boundary passes the gradient).
    """
    gradient_recurrent_cut = check_flag(gradient_recurrent_cut, "gradient_recurrent_cut")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    exact_stabiliser = check_flag(exact_stabiliser, "exact_stabiliser")
    check_finite = check_flag(check_finite, "check_finite")
    numpy = check_backend(backend) == "numpy"
    if not numpy:  # the compiled tiers compute FlashRNN's convention of the sLSTM backward
        check_numpy_only(backend, accumulate_dtype=accumulate_dtype,
                         exact_stabiliser=exact_stabiliser)
    spec, d_all, d_last, R, b, states, gates = check_backward_args(
        d_states_all, d_last_states, R, b, cache, cell=cell, check_finite=check_finite and numpy)
    clipval = check_clipval(gradient_recurrent_clipval, "gradient_recurrent_clipval")
    options = _options(spec, clamp_gates_le_one)
    if exact_stabiliser:
        options["exact_stabiliser"] = True
    if not numpy:
        fn = implementation("recurrence", "flashrnn_backward", backend)
        d_all, d_last = (None if g is None else x for g, x in ((d_states_all, d_all),
                                                              (d_last_states, d_last)))
        return fn(d_all, d_last, R, b, {"states": states, "gates": gates}, cell=spec.name,
                  gradient_recurrent_cut=gradient_recurrent_cut,
                  gradient_recurrent_clipval=clipval, clamp_gates_le_one=clamp_gates_le_one,
                  check_finite=check_finite)
    acc = check_accumulate_dtype(accumulate_dtype, states.dtype)
    dtype = states.dtype
    S, B, T, N, D = d_all.shape
    w, r = list(spec.w_gates), list(spec.r_gates)
    dWx = np.zeros((B, T, spec.num_gates_w, N, D), dtype)
    dR = np.zeros(R.shape, acc)
    db = np.zeros(b.shape, acc)
    ds = d_last.copy()  # δs_T before the external gradient of the last step
    for t in range(T - 1, -1, -1):
        ds = ds + d_all[:, :, t]  # δs_t, (S, B, N, D)
        s_prev, s_new = states[:, :, t], states[:, :, t + 1]
        cache_t = {k: gates[t, :, j] for j, k in enumerate(spec.cache_names)}
        ds_prev, dg = spec.backward(ds, s_prev, s_new, cache_t, **options)  # dg: (B, G_t, N, D)
        dg = dg.astype(dtype, copy=False)
        dg_r = dg[:, r].astype(acc, copy=False)  # (B, G_r, N, D)
        h_prev = s_prev[0].astype(acc, copy=False)  # (B, N, D)
        dh_rec = np.einsum("gndp,bgnd->bnp", R.astype(acc, copy=False), dg_r)  # (B, N, D)
        if gradient_recurrent_cut:
            dh_rec = np.zeros_like(dh_rec)
        elif clipval is not None:
            if spec.name == "slstm":
                dh_rec = np.where(np.isfinite(dh_rec), dh_rec, 0)
            dh_rec = np.clip(dh_rec, -clipval, clipval)
        dR += np.einsum("bgnd,bnp->gndp", dg_r, h_prev)  # outer products, (G_r, N, D, D)
        db += dg.sum(axis=0)  # (G_t, N, D)
        dWx[:, t] = dg[:, w]
        ds = ds_prev.astype(dtype, copy=True)
        ds[0] += dh_rec.astype(dtype, copy=False)
    return ds, dWx, dR.astype(dtype, copy=False), db.astype(dtype, copy=False)


__all__ = [
    "flashrnn_backward", "flashrnn_forward", "flashrnn_step",
]

"""One RNN layer over an input sequence: input projection + FlashRNN recurrence, one call.

FlashRNN (arXiv 2412.07752) splits a layer into a projection that is parallel over time and the
sequential recurrence over its result,

.. math:: Wx_t = W x_t, \\qquad \\tilde g_t = Wx_t + R\\,h_{t-1} + b, \\qquad
          states_t = P_{cell}(states_{t-1}, \\tilde g_t), \\quad t = 1..T,

(:func:`~refseq.recurrence.projection.project_inputs`, then
:func:`~refseq.recurrence.engine.flashrnn_forward`). :func:`rnn_forward` and
:func:`rnn_backward` are the documented way to run both on one tier
(docs/hot-paths/recurrence.md, "One layer"): the arguments are validated once, under the names
the user passed, and the two halves run on the same ``backend``. On ``"jit"`` that means both
in Numba with the BLAS that Numba's ``np.dot`` calls (scipy's OpenBLAS), pinned to one thread
wherever Numba's own pool does the parallel work (:mod:`refseq.jit.blas_threads`) — the path
``refseq bench recurrence`` measures; NumPy's separate OpenBLAS is never called in between. On
``"numpy"`` everything is NumPy (its BLAS), on ``"cuda"`` both run on the device.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag
from refseq.recurrence.cells import get_cell
from refseq.recurrence.checks import check_recurrence_args
from refseq.recurrence.engine import flashrnn_backward, flashrnn_forward
from refseq.recurrence.projection import (
    check_projection_args,
    project_inputs,
    project_inputs_backward,
)
from refseq.tiers import check_backend


def _all_finite(backend):
    """The finiteness predicate of ``backend`` (the jit tier's parallel one on ``"jit"``)."""
    if backend == "jit":
        from refseq.jit.recurrence.finite import all_finite

        return all_finite
    return None


def _check_layer_inputs(x, W, spec, check_finite, all_finite):
    """``x`` (B, T, I) and ``W`` (G_w, N, D, I) with the cell's ``G_w``; returns them."""
    x, W, _ = check_projection_args(x, W, check_finite=check_finite, all_finite=all_finite)
    if W.shape[0] != spec.num_gates_w:
        gates = ", ".join(spec.gate_names[g] for g in spec.w_gates)
        raise ValueError(f"W has {W.shape[0]} gates (axis 0) but cell {spec.name!r} needs "
                         f"G_w = {spec.num_gates_w} ({gates}); W must have shape (G_w, N, D, I)")
    return x, W


def rnn_forward(x, W, R, b, states0=None, *, cell="lstm", backend="numpy", return_cache=False,
                forward_clipval=None, clamp_gates_le_one=False, check_finite=True):
    """Run one head-wise RNN layer over the sequence ``x``.

    .. math:: Wx[b, t, g, n, d] = \\sum_i W[g, n, d, i] \\, x[b, t, i], \\qquad
              states_t = P_{cell}(states_{t-1},\\; Wx_t + R\\,h_{t-1} + b)

    Parameters
    ----------
    x : (B, T, I) — the input sequence, float32 or float64.
    W : (G_w, N, D, I) — input weights, gate order of the cell (``lstm_from_torch`` converts a
        ``torch.nn.LSTM``).
    R : (G_r, N, D, D) — recurrent blocks ``[gate, head, out, in]``.
    b : (G_t, N, D) — all biases (torch: ``bias_ih + bias_hh``; GRU: see ``gru_from_torch``).
    states0 : (S, B, N, D), optional — initial states (None: zeros).
    cell : "elman" | "elman_relu" | "lstm" | "gru" | "slstm".
    backend : "numpy" | "jit" | "cuda" — runs the projection and the recurrence on that tier.
    return_cache, forward_clipval, clamp_gates_le_one : as in :func:`flashrnn_forward`.
    check_finite : bool — reject NaN/inf in ``x``, ``W``, ``R``, ``b``, ``states0``.

    Returns
    -------
    states_all : (S, B, T, N, D) — ``states_all[0]`` is the hidden sequence ``h`` (for N = 1,
        ``states_all[0, :, :, 0]`` is torch's ``output``, (B, T, H)).
    last_states : (S, B, N, D) — pass as ``states0`` of the next chunk.
    cache : dict, only if ``return_cache`` — for :func:`rnn_backward`.

    All outputs have the widest input dtype. Errors name the argument (``TypeError`` for
    dtypes and flags, ``ValueError`` for shapes, gate counts, values).
    """
    check_finite = check_flag(check_finite, "check_finite")
    numpy = check_backend(backend) == "numpy"
    spec = get_cell(cell)
    fast = None if numpy else _all_finite(backend)
    x, W = _check_layer_inputs(x, W, spec, check_finite, fast)
    B, T, _ = x.shape
    # R, b, states0 against an empty Wx of the layer's shape (validates names, shapes, values)
    _, _, R, b, states0 = check_recurrence_args(
        np.empty((B, 0) + W.shape[:3], x.dtype), R, b, states0, cell=spec,
        check_finite=check_finite, all_finite=fast,
        source=f"(from cell {spec.name!r}, x of shape {x.shape} and W of shape {W.shape})")
    Wx = project_inputs(x, W, backend=backend, check_finite=False)  # (B, T, G_w, N, D)
    return flashrnn_forward(Wx, R, b, states0, cell=spec.name, forward_clipval=forward_clipval,
                            return_cache=return_cache, backend=backend,
                            clamp_gates_le_one=clamp_gates_le_one, check_finite=False)


def rnn_backward(d_states_all, d_last_states, x, W, R, b, cache, *, cell="lstm",
                 backend="numpy", gradient_recurrent_cut=False, gradient_recurrent_clipval=None,
                 clamp_gates_le_one=False, check_finite=True):
    """Gradients of :func:`rnn_forward`: ``(dx, dW, dR, db, d_states0)``.

    The recurrence's BPTT (:func:`flashrnn_backward`) gives ``dWx``, ``dR``, ``db`` and
    ``d_states0``; the projection's gradients follow over the flattened ``B*T`` rows:

    .. math:: dx[b, t, i] = \\sum_{g,n,d} dWx[b, t, g, n, d] \\, W[g, n, d, i], \\qquad
              dW[g, n, d, i] = \\sum_{b,t} dWx[b, t, g, n, d] \\, x[b, t, i]

    Parameters
    ----------
    d_states_all : (S, B, T, N, D) or None; d_last_states : (S, B, N, D) or None — gradients
        on the forward's outputs (None: zeros).
    x, W, R, b : the forward's inputs; cache : the forward's cache (``return_cache=True``).
    cell, backend, clamp_gates_le_one : as passed to the forward.
    gradient_recurrent_cut, gradient_recurrent_clipval : as in :func:`flashrnn_backward`.
    check_finite : bool — reject NaN/inf gradients, inputs, weights or cache entries.

    Returns
    -------
    dx : (B, T, I); dW : (G_w, N, D, I); dR : (G_r, N, D, D); db : (G_t, N, D);
    d_states0 : (S, B, N, D). In the cache's dtype.
    """
    check_finite = check_flag(check_finite, "check_finite")
    numpy = check_backend(backend) == "numpy"
    spec = get_cell(cell)
    x, W = _check_layer_inputs(x, W, spec, check_finite, None if numpy else _all_finite(backend))
    d_states0, dWx, dR, db = flashrnn_backward(
        d_states_all, d_last_states, R, b, cache, cell=spec.name,
        gradient_recurrent_cut=gradient_recurrent_cut,
        gradient_recurrent_clipval=gradient_recurrent_clipval, backend=backend,
        clamp_gates_le_one=clamp_gates_le_one, check_finite=check_finite)
    expected = x.shape[:2] + W.shape[:3]
    if dWx.shape != expected:
        raise ValueError(f"x (B, T, I) = {x.shape} and W (G_w, N, D, I) = {W.shape} do not match "
                         f"the cache, whose (B, T, G_w, N, D) is {dWx.shape}; pass the forward's "
                         "x, W and cache")
    dx, dW = project_inputs_backward(dWx, x, W, backend=backend, check_finite=False)
    return dx, dW, dR, db, d_states0


__all__ = ["rnn_backward", "rnn_forward"]

"""Pointwise RNN cells of FlashRNN (arXiv 2412.07752; equations of the official NX-AI/flashrnn).

Every cell is written in FlashRNN's generic form: the gate pre-activations of step t are

.. math:: \\tilde g_t = Wx_t + R\\, h_{t-1} + b \\qquad (\\text{per head } n:\\;
          Ry_t[g, n] = R[g, n] \\, h_{t-1}[n])

and a cell-specific *pointwise* function maps ``(states_{t-1}, g~_t)`` to ``states_t``. This
module holds only that pointwise math (forward and its explicit backward); the time loop lives
in :mod:`refseq.recurrence.engine`.

Symbols: B batch, N heads, D head width, S states, and three gate counts per cell: ``G_w`` gates
receive an input projection ``Wx``, ``G_r`` gates receive ``R h_{t-1}``, ``G_t`` gates have a
bias (all gates). ``CellSpec.w_gates`` / ``r_gates`` give the position of the Wx / R gates in the
bias order. Gate orders (the gate axis of ``Wx``, ``R``, ``b``):

==============  =======  =======  =======  ============  =======================
cell            G_w      G_r      G_t      states        cached gates (per step)
==============  =======  =======  =======  ============  =======================
``elman``       (a)      (a)      (a)      (h)           h
``elman_relu``  (a)      (a)      (a)      (h)           h
``lstm``        i f z o  i f z o  i f z o  (h, c)        i f z o (activations)
``gru``         r z n    g r z    g r z n  (h)           g~ r z n~ (g~, n~ raw)
``slstm``       i f z o  i f z o  i f z o  (h, c, n, m)  i~ f~ (raw) z o
==============  =======  =======  =======  ============  =======================

The first state is always ``h``, the one fed back through ``R``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit


def sigmoid(x):
    """Logistic sigmoid ``σ(x) = 1 / (1 + e^{-x})`` (``scipy.special.expit``: no overflow, full
    relative precision in both tails, dtype preserved)."""
    return expit(x)


def log_sigmoid(x):
    """``log σ(x) = -log(1 + e^{-x})``, computed as ``-logaddexp(0, -x)`` (never -inf)."""
    return -np.logaddexp(0.0, -x)


# ---------------------------------------------------------------------------------------------
# Elman: a = Wx + R h + b, h = tanh(a) (or relu(a)).


def _elman_forward(pre, states, *, relu=False, **_):
    """``h_t = tanh(ã)`` (``relu(ã)`` for ``elman_relu``); pre: (B, 1, N, D)."""
    h = np.maximum(pre[:, 0], 0) if relu else np.tanh(pre[:, 0])  # (B, N, D)
    return h[None], {"h": h}


def _elman_backward(d_states, states_prev, states_new, cache, *, relu=False, **_):
    """``δã = δh ⊙ (1 - h²)`` (relu: ``δh ⊙ [h > 0]``); no direct path to ``h_{t-1}``."""
    h, dh = cache["h"], d_states[0]
    da = dh * (h > 0) if relu else dh * (1 - h * h)
    return np.zeros_like(d_states), da[:, None]


# ---------------------------------------------------------------------------------------------
# LSTM, gates (i, f, z, o): c = f c + i z, h = o tanh(c).


def _lstm_forward(pre, states, **_):
    i, f, o = sigmoid(pre[:, 0]), sigmoid(pre[:, 1]), sigmoid(pre[:, 3])  # (B, N, D)
    z = np.tanh(pre[:, 2])
    c = f * states[1] + i * z
    h = o * np.tanh(c)
    return np.stack([h, c]), {"i": i, "f": f, "z": z, "o": o}


def _lstm_backward(d_states, states_prev, states_new, cache, **_):
    i, f, z, o = cache["i"], cache["f"], cache["z"], cache["o"]
    dh, dc_t = d_states[0], d_states[1]
    tanh_c = np.tanh(states_new[1])
    dc = dc_t + dh * o * (1 - tanh_c * tanh_c)
    d_gates = np.stack(
        [
            dc * z * i * (1 - i),  # δĩ
            dc * states_prev[1] * f * (1 - f),  # δf̃
            dc * i * (1 - z * z),  # δz̃
            dh * tanh_c * o * (1 - o),  # δõ
        ],
        axis=1,
    )  # (B, 4, N, D)
    d_prev = np.stack([np.zeros_like(dh), dc * f])
    return d_prev, d_gates


# ---------------------------------------------------------------------------------------------
# GRU (torch.nn.GRU semantics), bias order (g, r, z, n):
#   g~ = Ry[0] + b[0], r~ = Wx[0] + Ry[1] + b[1], z~ = Wx[1] + Ry[2] + b[2], n~ = Wx[2] + b[3]
#   h = z h_prev + (1 - z) tanh(n~ + r g~)


def _gru_forward(pre, states, **_):
    g, r, z, n_in = pre[:, 0], sigmoid(pre[:, 1]), sigmoid(pre[:, 2]), pre[:, 3]
    n = np.tanh(n_in + r * g)  # candidate
    h = z * states[0] + (1 - z) * n
    return h[None], {"g": g, "r": r, "z": z, "n": n_in}


def _gru_backward(d_states, states_prev, states_new, cache, **_):
    g, r, z, n_in = cache["g"], cache["r"], cache["z"], cache["n"]
    dh, h_prev = d_states[0], states_prev[0]
    n = np.tanh(n_in + r * g)
    dn = dh * (1 - z) * (1 - n * n)  # δñ
    d_gates = np.stack(
        [
            dn * r,  # δg̃
            dn * g * r * (1 - r),  # δr̃
            dh * (h_prev - n) * z * (1 - z),  # δz̃
            dn,  # δñ
        ],
        axis=1,
    )  # (B, 4, N, D)
    return (dh * z)[None], d_gates


# ---------------------------------------------------------------------------------------------
# sLSTM, gates (i, f, z, o), states (h, c, n, m) with the log-domain stabiliser m.


def _slstm_gates(i_pre, f_pre, m_prev, m, clamp_gates_le_one):
    """Stabilised gates ``i' = e^{ĩ - m_t}``, ``f' = e^{logσ(f̃) + m_{t-1} - m_t}``."""
    i_s = np.exp(i_pre - m)
    f_s = np.exp(log_sigmoid(f_pre) + m_prev - m)
    if clamp_gates_le_one:  # the official CUDA kernels' min(1, .)
        i_s, f_s = np.minimum(i_s, 1), np.minimum(f_s, 1)
    return i_s, f_s


def _slstm_forward(pre, states, *, clamp_gates_le_one=False, **_):
    i_pre, f_pre = pre[:, 0], pre[:, 1]
    z, o = np.tanh(pre[:, 2]), sigmoid(pre[:, 3])
    _, c_prev, n_prev, m_prev = states
    ell = log_sigmoid(f_pre) + m_prev  # ℓ_t
    m = np.where(n_prev == 0, i_pre, np.maximum(i_pre, ell))  # first step keys on n = 0
    i_s, f_s = _slstm_gates(i_pre, f_pre, m_prev, m, clamp_gates_le_one)
    c = f_s * c_prev + i_s * z
    n = np.maximum(f_s * n_prev + i_s, 1)
    h = o * c / n
    return np.stack([h, c, n, m]), {"i": i_pre, "f": f_pre, "z": z, "o": o}


def _slstm_backward(d_states, states_prev, states_new, cache, *, clamp_gates_le_one=False,
                    exact_stabiliser=False, **_):
    """VJP of :func:`_slstm_forward`.

    Official convention (FlashRNN's kernels, ``exact_stabiliser=False``): ``m`` is a
    stop-gradient and ``max(., 1)`` (and the optional ``min(1, .)``) the identity, so an incoming
    ``δm`` is ignored and ``δm_{t-1} = 0``. ``exact_stabiliser=True`` differentiates ``m`` as the
    state it is: ``m_t = max(ĩ, ℓ_t)`` (``ĩ`` when ``n_{t-1} = 0``; a tie goes to ``ĩ``),
    ``ℓ_t = log σ(f̃) + m_{t-1}``, the ``max(n, 1)`` clamp passes the gradient where
    ``f' n_{t-1} + i' >= 1`` and ``min(1, f')`` where its argument is ``<= 1`` (``i' <= 1`` always).
    """
    i_pre, f_pre, z, o = cache["i"], cache["f"], cache["z"], cache["o"]
    _, c_prev, n_prev, m_prev = states_prev
    _, c, n, m = states_new
    dh, dc_t, dn_t = d_states[0], d_states[1], d_states[2]
    i_s, f_s = _slstm_gates(i_pre, f_pre, m_prev, m, clamp_gates_le_one)
    dc = dc_t + dh * o / n
    dn = dn_t - dh * o * c / (n * n)
    zero = np.zeros_like(dh)
    if not exact_stabiliser:
        d_gates = np.stack(
            [
                (dc * z + dn) * i_s,  # δĩ
                (dc * c_prev + dn * n_prev) * f_s * (1 - sigmoid(f_pre)),  # δf̃
                dc * i_s * (1 - z * z),  # δz̃
                dh * (c / n) * o * (1 - o),  # δõ
            ],
            axis=1,
        )  # (B, 4, N, D)
        return np.stack([zero, dc * f_s, dn * f_s, zero]), d_gates
    dn = np.where(f_s * n_prev + i_s >= 1, dn, 0)  # through max(n~, 1)
    ell = log_sigmoid(f_pre) + m_prev  # ℓ_t
    # gradients on the exponents i~ - m_t and ℓ_t - m_t of i' and f' (zero where min(1, .) bites)
    a_i = (dc * z + dn) * i_s
    a_f = (dc * c_prev + dn * n_prev) * f_s
    if clamp_gates_le_one:  # i~ <= m_t always, so only min(1, f') can bite (from n = 0)
        a_f = np.where(ell - m <= 0, a_f, 0)
    dm = d_states[3] - a_i - a_f  # total gradient on m_t
    to_i = (n_prev == 0) | (i_pre >= ell)  # which argument of the max m_t equals
    d_ell = a_f + np.where(to_i, 0, dm)
    d_gates = np.stack(
        [
            a_i + np.where(to_i, dm, 0),  # δĩ
            d_ell * (1 - sigmoid(f_pre)),  # δf̃
            dc * i_s * (1 - z * z),  # δz̃
            dh * (c / n) * o * (1 - o),  # δõ
        ],
        axis=1,
    )  # (B, 4, N, D)
    return np.stack([zero, dc * f_s, dn * f_s, d_ell]), d_gates


# ---------------------------------------------------------------------------------------------
# Registry and the two public entry points.


@dataclass(frozen=True)
class CellSpec:
    """One cell: gate counts and orders, state names, pointwise forward/backward.

    ``w_gates`` / ``r_gates`` are the indices (in the bias order ``gate_names``) of the gates
    that receive ``Wx`` / ``R h``; ``cache_names`` name the per-step cached gate arrays, in the
    order of the gate axis of the ``cache["gates"]`` array of :func:`flashrnn_forward`.
    """

    name: str
    num_gates_w: int
    num_gates_r: int
    num_gates_t: int
    num_states: int
    state_names: tuple
    gate_names: tuple
    w_gates: tuple
    r_gates: tuple
    cache_names: tuple
    forward: Callable
    backward: Callable
    options: tuple = ()


def _relu(fn):
    return lambda *a, **k: fn(*a, **{**k, "relu": True})


_LSTM_GATES = ("i", "f", "z", "o")
CELLS: dict[str, CellSpec] = {
    "elman": CellSpec("elman", 1, 1, 1, 1, ("h",), ("a",), (0,), (0,), ("h",),
                      _elman_forward, _elman_backward),
    "elman_relu": CellSpec("elman_relu", 1, 1, 1, 1, ("h",), ("a",), (0,), (0,), ("h",),
                           _relu(_elman_forward), _relu(_elman_backward)),
    "lstm": CellSpec("lstm", 4, 4, 4, 2, ("h", "c"), _LSTM_GATES, (0, 1, 2, 3), (0, 1, 2, 3),
                     _LSTM_GATES, _lstm_forward, _lstm_backward),
    "gru": CellSpec("gru", 3, 3, 4, 1, ("h",), ("g", "r", "z", "n"), (1, 2, 3), (0, 1, 2),
                    ("g", "r", "z", "n"), _gru_forward, _gru_backward),
    "slstm": CellSpec("slstm", 4, 4, 4, 4, ("h", "c", "n", "m"), _LSTM_GATES, (0, 1, 2, 3),
                      (0, 1, 2, 3), _LSTM_GATES, _slstm_forward, _slstm_backward,
                      ("clamp_gates_le_one",)),
}


def get_cell(cell) -> CellSpec:
    """The ``CellSpec`` named ``cell`` (or ``cell`` itself), else ``ValueError`` listing names."""
    if isinstance(cell, CellSpec):
        return cell
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    return CELLS[cell]


def preactivations(cell, Wx_t, Ry_t, b):
    """Gate pre-activations ``g~ = Wx_t + Ry_t + b`` in bias order, (B, G_t, N, D).

    ``Wx_t`` (B, G_w, N, D) lands on ``spec.w_gates``, ``Ry_t`` (B, G_r, N, D) on
    ``spec.r_gates``; e.g. GRU ``g~ = Ry[0] + b[0]`` and ``n~ = Wx[2] + b[3]``.
    """
    spec = get_cell(cell)
    B, _, N, D = Wx_t.shape
    pre = np.zeros((B, spec.num_gates_t, N, D), np.result_type(Wx_t, Ry_t, b))
    pre[:, list(spec.w_gates)] = Wx_t
    pre[:, list(spec.r_gates)] += Ry_t
    pre += b
    return pre


def pointwise_forward(cell, Wx_t, Ry_t, b, states, **options):
    """One pointwise step: ``states_t, cache_t = P(states_{t-1}, Wx_t + Ry_t + b)``.

    Parameters
    ----------
    cell : str — a key of ``CELLS`` (gate orders in the module docstring).
    Wx_t : (B, G_w, N, D) input part; Ry_t : (B, G_r, N, D) recurrent part ``R[g, n] h[n]``;
    b : (G_t, N, D) bias; states : (S, B, N, D) previous states; float32 or float64.
    **options : ``clamp_gates_le_one`` (sLSTM only: ``i', f' <- min(., 1)``), a bool.

    Returns
    -------
    new_states : (S, B, N, D); cache : dict ``{name: (B, N, D)}`` keyed by
    ``CELLS[cell].cache_names`` — what :func:`pointwise_backward` needs besides the states.
    Bad shapes, dtypes, cells or options raise ``ValueError`` / ``TypeError`` naming them.
    """
    from refseq.recurrence.checks import check_pointwise_args

    spec, (Wx_t, Ry_t, b, states) = check_pointwise_args(
        cell, [(Wx_t, "Wx_t", "BGND"), (Ry_t, "Ry_t", "BRND"), (b, "b", "TND"),
               (states, "states", "SBND")], options)
    return spec.forward(preactivations(spec, Wx_t, Ry_t, b), states, **options)


def pointwise_backward(cell, d_states_total, states_prev, states_new, cache, **options):
    """Vector-Jacobian product of :func:`pointwise_forward` (docs/hot-paths/recurrence.md).

    Parameters
    ----------
    d_states_total : (S, B, N, D) total gradient on ``states_t``; states_prev, states_new :
    (S, B, N, D); cache : the dict returned by the forward step (``{name: (B, N, D)}``).
    **options : sLSTM only: ``clamp_gates_le_one``, ``exact_stabiliser`` (bools).

    Returns
    -------
    d_states_prev_direct : (S, B, N, D) — gradient on ``states_{t-1}`` through the pointwise map
    only (the ``R^T δg`` path into ``h_{t-1}`` is the caller's); d_gates : (B, G_t, N, D) —
    gradient on the pre-activations in bias order. sLSTM: ``m`` is a stop-gradient.
    Bad shapes, dtypes, caches, cells or options raise ``ValueError`` / ``TypeError``.
    """
    from refseq.recurrence.checks import check_pointwise_args

    spec, (d_total, prev, new, *gates) = check_pointwise_args(
        cell, [(d_states_total, "d_states_total", "SBND"), (states_prev, "states_prev", "SBND"),
               (states_new, "states_new", "SBND")], options, cache=cache)
    return spec.backward(d_total, prev, new, dict(zip(spec.cache_names, gates, strict=True)),
                         **options)

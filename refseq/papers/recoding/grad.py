"""Recoding's same-step state gradients (Ulmer, arXiv 2101.00674).

The error signal δ_t is differentiated w.r.t. every layer's current ``h^l_t`` and ``c^l_t``
through the *same* time step only (:func:`state_gradients`; :func:`top_hidden_from` is the
function it differentiates); :func:`refseq.papers.recoding.recoder.recode` then moves the states
against it. Narrative: docs/papers/recoding.md.

Same-step gradient, layer l from the top down (``g_h^{L-1} = ∂δ/∂h^{L-1}_t`` from the signal)::

    g_c^l   = g_h^l ⊙ o^l ⊙ (1 - tanh²(c^l_t))
    δ gates = the engine's lstm pointwise backward of (g_h^l, 0)
    g_h^{l-1} = W^lᵀ δ gates               (input weights only; R is not involved)
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.recoding.lm import LSTMLanguageModel, StepCache
from refseq.recurrence.cells import pointwise_backward


def _check_model_cache(model, cache_t):
    _checks.check_instance(model, LSTMLanguageModel, "model")
    _checks.check_instance(cache_t, StepCache, "cache_t", "StepCache (from model.step)")
    if len(cache_t.layers) != model.L:
        raise ValueError(f"cache_t must come from this model's step ({model.L} layers), got "
                         f"{len(cache_t.layers)} layer caches")


def state_gradients(model: LSTMLanguageModel, cache_t, d_h_top) -> list:
    """Gradient of δ_t w.r.t. every layer's ``h^l_t`` and ``c^l_t`` through step t only.

    ``h^l_t`` is a leaf (its ``g_h`` has no path through ``c^l_t``); ``g_c`` is the total
    derivative through ``h^l_t = o ⊙ tanh(c^l_t)``. d_h_top : (B, H) = ``∂δ/∂h^{L-1}_t``.
    Returns ``[(g_h (B, H), g_c (B, H))]`` per layer, bottom first.
    """
    _check_model_cache(model, cache_t)
    d = _checks.float_array(d_h_top, "d_h_top", dtype=model.dtype)
    _checks.check_shape(d, (cache_t.h_dec.shape[0], model.H), "d_h_top", "(B, H)")
    out = [None] * model.L
    for l in reversed(range(model.L)):
        lc = cache_t.layers[l]
        o, c = lc.gates["o"][:, 0], lc.new[1, :, 0]
        tc = np.tanh(c)
        g_c = d * o * (1 - tc * tc)
        out[l] = (d, g_c)
        if l:
            d_states = np.stack([d, np.zeros_like(d)])[:, :, None]  # (2, B, 1, H)
            _, d_gates = pointwise_backward("lstm", d_states, lc.prev, lc.new, lc.gates)
            d = np.einsum("bgnd,gndi->bi", d_gates, model.params[f"{l}.W"])  # (B, H)
    return out


def top_hidden_from(model: LSTMLanguageModel, cache_t, layer: int, h=None, c=None):
    """Recompute the top ``h^{L-1}_t`` with layer ``layer``'s ``h`` replaced (a leaf) or its
    ``c`` replaced (then ``h = o ⊙ tanh(c)``), re-running the layers above at step t from their
    cached incoming states. The definition :func:`state_gradients` differentiates."""
    _check_model_cache(model, cache_t)
    layer = _checks.check_number(layer, "layer", integer=True, low=0, high=model.L - 1)
    if (h is None) == (c is None):
        raise ValueError("pass exactly one of h and c")
    name, v = ("h", h) if c is None else ("c", c)
    v = _checks.float_array(v, name, dtype=model.dtype)
    _checks.check_shape(v, (cache_t.h_dec.shape[0], model.H), name, "(B, H)")
    h = v if c is None else cache_t.layers[layer].gates["o"][:, 0] * np.tanh(v)
    for l in range(layer + 1, model.L):
        prev = cache_t.layers[l].prev
        h, _, _ = model.layer_step(l, h, prev[0, :, 0], prev[1, :, 0])
    return h

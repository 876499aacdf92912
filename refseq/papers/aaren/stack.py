"""A stack of Aaren blocks: a causal Transformer with attention replaced by Aaren.

Feng et al., arXiv 2405.13956, Sec. 3.3 stack Aaren modules, ``h^{(j+1)}_{1..T} =
Aaren(q^{(j)}, h^{(j)}_{1..T})``, each with its own learned query, so output k of every layer
depends only on inputs 1..k. The block layout is not fixed by the paper; refseq chooses the
pre-LayerNorm Transformer block

.. code-block:: text

    x = x + Aaren(LN_1(x))        # refseq.papers.aaren.layer.aaren_layer
    x = x + FFN(LN_2(x))          # GELU(x W_1 + b_1) W_2 + b_2

with no final LayerNorm. Symbols: B batch, T time, D model width, H heads, Dk / Dv key / value
width per head, F FFN width, L layers.

Two ways to run the same function (tested equal): :func:`aaren_stack` over a whole
sequence (each layer's Aaren runs as a prefix scan), and :func:`aaren_stack_step`, one token at a
time with one ``SoftmaxState`` per layer (heads inside): O(1) time and memory per token, the
paper's efficiency claim. Both carry state, so calls compose.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.nn.basic import ffn, layer_norm
from refseq.papers.aaren.layer import AarenParams, aaren_layer, aaren_layer_step, init_aaren_params


class AarenBlockParams(NamedTuple):
    """One block: ``ln_1_gamma``, ``ln_1_beta`` (D,); ``aaren`` (AarenParams);
    ``ln_2_gamma``, ``ln_2_beta`` (D,); ``W_1`` (D, F), ``b_1`` (F,) | None, ``W_2`` (F, D),
    ``b_2`` (D,) | None."""

    ln_1_gamma: np.ndarray
    ln_1_beta: np.ndarray
    aaren: AarenParams
    ln_2_gamma: np.ndarray
    ln_2_beta: np.ndarray
    W_1: np.ndarray
    b_1: np.ndarray | None
    W_2: np.ndarray
    b_2: np.ndarray | None


def init_aaren_block_params(rng, D, H, Dk, Dv, F=None, dtype=np.float64, bias=True,
                            head_merge="concat"):
    """Random block parameters: LayerNorm gains 1 and shifts 0, weights ~ N(0, 1/fan_in),
    zero biases (None when ``bias=False``); ``F`` defaults to 4 D."""
    bias = check_flag(bias, "bias")
    rng = _checks.check_rng(rng)
    D = _checks.check_number(D, "D", integer=True, low=1)
    F = 4 * D if F is None else _checks.check_number(F, "F", integer=True, low=1)
    dtype = _checks.check_float_dtype(dtype, "dtype")

    def weight(n_in, n_out):
        return (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)

    def zeros(n):
        return np.zeros(n, dtype) if bias else None

    return AarenBlockParams(
        np.ones(D, dtype), np.zeros(D, dtype),
        init_aaren_params(rng, D, H, Dk, Dv, dtype, bias, head_merge),
        np.ones(D, dtype), np.zeros(D, dtype),
        weight(D, F), zeros(F), weight(F, D), zeros(D),
    )


def init_aaren_stack_params(rng, L, D, H, Dk, Dv, F=None, dtype=np.float64, bias=True,
                            head_merge="concat"):
    """A list of ``L`` independently drawn :class:`AarenBlockParams`."""
    bias = check_flag(bias, "bias")
    rng = _checks.check_rng(rng)
    L = _checks.check_number(L, "L", integer=True, low=1)
    return [init_aaren_block_params(rng, D, H, Dk, Dv, F, dtype, bias, head_merge)
            for _ in range(L)]


def _check_block(params):
    if not isinstance(params, AarenBlockParams):
        raise TypeError(f"block params must be AarenBlockParams, got {type(params).__name__}")
    return params


def _check_input(params, x, name, form):
    """``x`` as a float array of shape ``form`` ((B, T, D) or (B, D)) with D = the block's."""
    x = _checks.float_array(x, name)
    D = np.shape(params.ln_1_gamma)[0]
    if x.ndim != len(form.split(",")) or x.shape[-1] != D:
        raise ValueError(f"{name} must have shape {form} with D = {D} (the block's width), "
                         f"got {x.shape}")
    return x


def _feed_forward(params, x):
    """The second half of the block: ``x + FFN(LN_2(x))``, position-wise."""
    h = layer_norm(x, params.ln_2_gamma, params.ln_2_beta)
    return x + ffn(h, params.W_1, params.b_1, params.W_2, params.b_2)


def aaren_block(params, x, mask=None, state=None, scale=None, head_merge="concat", *,
                backend="numpy"):
    """One pre-LN block over a whole sequence: ``x + Aaren(LN_1(x))``, then ``+ FFN(LN_2(.))``.

    Parameters
    ----------
    params : AarenBlockParams (cast to ``x``'s dtype); x : (B, T, D) float32 or float64.
    mask : (B, T) bool, optional — padding is the identity inside Aaren; the block's outputs at
        padded positions are finite but meaningless. state : SoftmaxState of this block's Aaren
        layer, optional. scale, head_merge, backend : as in :func:`aaren_layer`.

    Returns
    -------
    y : (B, T, D); state : the final SoftmaxState.
    """
    params = _check_block(params)
    x = _check_input(params, x, "x", "(B, T, D)")
    h = layer_norm(x, params.ln_1_gamma, params.ln_1_beta)  # (B, T, D)
    a, state = aaren_layer(params.aaren, h, mask, state, scale, head_merge, backend=backend)
    return _feed_forward(params, x + a), state


def aaren_block_step(params, x_t, state=None, valid_t=None, scale=None, head_merge="concat"):
    """:func:`aaren_block` for one token ``x_t`` (B, D); returns ``(y_t (B, D), state)``."""
    params = _check_block(params)
    x_t = _check_input(params, x_t, "x_t", "(B, D)")
    h_t = layer_norm(x_t, params.ln_1_gamma, params.ln_1_beta)  # (B, D)
    a_t, state = aaren_layer_step(params.aaren, h_t, state, valid_t, scale, head_merge)
    return _feed_forward(params, x_t + a_t), state


def _check_stack(params_list, states):
    if not isinstance(params_list, (list, tuple)) or not params_list:
        raise TypeError("params_list must be a non-empty list of AarenBlockParams")
    if states is None:
        return [None] * len(params_list)
    if not isinstance(states, (list, tuple)) or len(states) != len(params_list):
        raise ValueError(f"states must be a list of {len(params_list)} SoftmaxStates (one per "
                         "layer) or None")
    return list(states)


def aaren_stack(params_list, x, mask=None, states=None, scale=None, head_merge="concat", *,
                backend="numpy"):
    """``L`` Aaren blocks over a whole sequence (the parallel, training-time form).

    Parameters
    ----------
    params_list : list of L AarenBlockParams — each block has its own learned queries.
    x : (B, T, D); mask : (B, T) bool, optional (shared by every layer).
    states : list of L SoftmaxStates, optional — carried from a previous call.

    Returns
    -------
    y : (B, T, D); states : list of the L final SoftmaxStates.
    """
    states = _check_stack(params_list, states)
    new_states = []
    for params, state in zip(params_list, states):
        x, state = aaren_block(params, x, mask, state, scale, head_merge, backend=backend)
        new_states.append(state)
    return x, new_states


def aaren_stack_step(params_list, x_t, states=None, valid_t=None, scale=None,
                     head_merge="concat"):
    """Streaming decode: one token ``x_t`` (B, D) through all L blocks (Sec. 3.1, 3.3).

    Each layer keeps one SoftmaxState (m (B, H), u (B, H), w (B, H, Dv)): ``Dv + 2`` numbers per
    head and layer, whatever the number of tokens seen. Token by token it equals
    :func:`aaren_stack` on the whole sequence. ``states=None`` starts from empty states;
    ``valid_t`` (B,) bool marks padding steps (their state is left unchanged).

    Returns
    -------
    y_t : (B, D); states : list of L SoftmaxStates.
    """
    states = _check_stack(params_list, states)
    new_states = []
    for params, state in zip(params_list, states):
        x_t, state = aaren_block_step(params, x_t, state, valid_t, scale, head_merge)
        new_states.append(state)
    return x_t, new_states

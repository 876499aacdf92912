"""Position-wise MLP of a Transformer block, with its vector-Jacobian product.

Two forms, written as compositions of :mod:`refseq.nn.linear` and :mod:`refseq.nn.activations`
so the backward is the chain rule read bottom-up:

- ``"gelu"`` / ``"gelu_tanh"`` (GPT-2): ``y = GELU(x W_in + b_in) W_out + b_out``;
- ``"swiglu"`` (Shazeer 2020, arXiv 2002.05202; LLaMA):
  ``y = (SiLU(x W_gate + b_gate) * (x W_in + b_in)) W_out + b_out``. ``W_gate`` is LLaMA's
  ``w1``, ``W_in`` its ``w3`` and ``W_out`` its ``w2`` (transposed: row-vector convention).

Symbols: ``D`` model width, ``F`` hidden width, ``(...)`` leading positions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.nn.activations import gelu_backward, gelu_forward, silu_backward, silu_forward
from refseq.nn.linear import _linear_forward, linear_backward

ACTIVATIONS = ("gelu", "gelu_tanh", "swiglu")


class MLPParams(NamedTuple):
    """Weights of :func:`mlp_forward`; the gate is used by ``"swiglu"`` only."""

    W_in: np.ndarray  # (D, F)
    b_in: np.ndarray | None  # (F,)
    W_out: np.ndarray  # (F, D)
    b_out: np.ndarray | None  # (D,)
    W_gate: np.ndarray | None = None  # (D, F)
    b_gate: np.ndarray | None = None  # (F,)


class MLPCache(NamedTuple):
    activation: str
    lin_in: tuple
    act: tuple  # activation cache of the hidden pre-activation (GELU) or of the gate (SiLU)
    lin_out: tuple
    lin_gate: tuple | None
    h_in: np.ndarray | None  # (..., F) x W_in + b_in, the linear branch of SwiGLU
    gate: np.ndarray | None  # (..., F) SiLU(x W_gate + b_gate)


def _check_activation(activation) -> None:
    _checks.check_choice(activation, "activation", ACTIVATIONS)


def init_mlp_params(rng, D: int, D_hidden: int, activation: str = "gelu", dtype=np.float64,
                    bias: bool = True) -> MLPParams:
    """Random weights ``N(0, 1/fan_in)`` (LeCun normal) and zero biases.

    Parameters
    ----------
    rng : numpy Generator (or a seed for ``np.random.default_rng``).
    D, D_hidden : model and hidden widths; activation : one of ``ACTIVATIONS`` (``"swiglu"``
    adds ``W_gate``, ``b_gate``); dtype : float32 or float64; bias : False gives ``None`` biases.
    """
    bias = check_flag(bias, "bias")
    _check_activation(activation)
    rng = _checks.check_rng(rng)
    D = _checks.check_number(D, "D", integer=True, low=1)
    D_hidden = _checks.check_number(D_hidden, "D_hidden", integer=True, low=1)
    dtype = _checks.check_float_dtype(dtype, "dtype")

    def weight(fan_in, fan_out):
        return (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(dtype)

    def zeros(n):
        return np.zeros(n, dtype) if bias else None

    gated = activation == "swiglu"
    return MLPParams(
        W_in=weight(D, D_hidden), b_in=zeros(D_hidden),
        W_out=weight(D_hidden, D), b_out=zeros(D),
        W_gate=weight(D, D_hidden) if gated else None, b_gate=zeros(D_hidden) if gated else None,
    )


def mlp_forward(x, params: MLPParams, activation: str = "gelu"):
    """Apply the MLP to each position of ``x``.

    Parameters
    ----------
    x : (..., D) float32 or float64; params : MLPParams; activation : "gelu" (exact erf GELU),
    "gelu_tanh" (GPT-2's tanh approximation) or "swiglu" (needs ``params.W_gate``).

    Returns
    -------
    y : (..., D), ``x``'s dtype; cache : MLPCache for :func:`mlp_backward`.
    """
    return _mlp_forward(x, params, activation)


def _mlp_forward(x, params: MLPParams, activation: str, name=lambda field: f"params.{field}"):
    """:func:`mlp_forward`; ``name(field)`` spells a parameter in messages (``ffn``: ``W_1``)."""
    _check_activation(activation)
    if not isinstance(params, MLPParams):
        raise TypeError(f"params must be an MLPParams, got {type(params).__name__}")

    def names(w, b, inp="x"):
        return inp, name(w), name(b)

    h_in, lin_in = _linear_forward(x, params.W_in, params.b_in, names("W_in", "b_in"))  # (..., F)
    if activation == "swiglu":
        if params.W_gate is None:
            raise ValueError("params.W_gate is required for activation='swiglu'")
        a, lin_gate = _linear_forward(x, params.W_gate, params.b_gate,
                                      names("W_gate", "b_gate"))  # (..., F)
        gate, act = silu_forward(a)  # (..., F)
        h = gate * h_in  # (..., F)
        y, lin_out = _linear_forward(h, params.W_out, params.b_out,
                                     names("W_out", "b_out", "the hidden layer"))  # (..., D)
        return y, MLPCache(activation, lin_in, act, lin_out, lin_gate, h_in, gate)
    approximate = "tanh" if activation == "gelu_tanh" else "none"
    h, act = gelu_forward(h_in, approximate)  # (..., F)
    y, lin_out = _linear_forward(h, params.W_out, params.b_out,
                                 names("W_out", "b_out", "the hidden layer"))  # (..., D)
    return y, MLPCache(activation, lin_in, act, lin_out, None, None, None)


def mlp_backward(dy, cache: MLPCache):
    """Vector-Jacobian product of :func:`mlp_forward`: the chain rule through its pieces.

    GELU form: ``dh = dy W_out^T``, ``dh_in = dh * GELU'(h_in)``, ``dx = dh_in W_in^T``.
    SwiGLU form with ``h = s * u`` (``s`` the SiLU gate, ``u = x W_in + b_in``):
    ``du = dh * s``, ``ds = dh * u``, ``da = ds * SiLU'(a)``, ``dx = du W_in^T + da W_gate^T``.
    Weight gradients are those of :func:`refseq.nn.linear.linear_backward`.

    Returns
    -------
    dx : (..., D); grads : MLPParams of gradients (``None`` where the parameter was ``None``).
    """
    dh, dW_out, db_out = linear_backward(dy, cache.lin_out)  # (..., F)
    if cache.activation == "swiglu":
        (da,) = silu_backward(dh * cache.h_in, cache.act)  # (..., F)
        dx_gate, dW_gate, db_gate = linear_backward(da, cache.lin_gate)  # (..., D)
        dx, dW_in, db_in = linear_backward(dh * cache.gate, cache.lin_in)  # (..., D)
        return dx + dx_gate, MLPParams(dW_in, db_in, dW_out, db_out, dW_gate, db_gate)
    (dh_in,) = gelu_backward(dh, cache.act)  # (..., F)
    dx, dW_in, db_in = linear_backward(dh_in, cache.lin_in)  # (..., D)
    return dx, MLPParams(dW_in, db_in, dW_out, db_out)

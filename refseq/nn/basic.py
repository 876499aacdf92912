"""Forward-only conveniences: linear, layer norm, exact GELU, position-wise FFN.

Symbols: B batch, T time, D model width, F hidden width of the FFN. Every function accepts any
leading shape ``(...)`` and works on the last axis. The result has the dtype of ``x`` (float32 or
float64); parameters are cast to it, so a float64 parameter set can run a float32 forward pass.

These are the pieces a Transformer-style block needs around its mixing layer (Aaren's block,
``refseq.papers.aaren.stack``). Each returns only the output of the layer's ``*_forward`` in
:mod:`refseq.nn` (which also returns the cache its ``*_backward`` needs).
"""

from __future__ import annotations

from refseq.nn.activations import gelu_forward
from refseq.nn.linear import linear_forward
from refseq.nn.mlp import MLPParams, _mlp_forward
from refseq.nn.norms import layer_norm_forward


def linear(x, W, b=None):
    """Affine map on the last axis: ``y = x W + b`` (see :func:`refseq.nn.linear_forward`).

    Parameters
    ----------
    x : (..., D_in) float32 or float64.
    W : (D_in, D_out) — weight, right-multiplied (row-vector convention).
    b : (D_out,), optional — bias.

    Returns
    -------
    y : (..., D_out), ``x``'s dtype.
    """
    return linear_forward(x, W, b)[0]


def layer_norm(x, gamma, beta, eps: float = 1e-5):
    """Layer normalisation over the last axis (see :func:`refseq.nn.layer_norm_forward`).

    Parameters
    ----------
    x : (..., D); gamma, beta : (D,) — gain and shift; eps : added to the variance.

    Returns
    -------
    y : (..., D), ``x``'s dtype.
    """
    return layer_norm_forward(x, gamma, beta, eps)[0]


def gelu(x):
    """Exact GELU ``x Phi(x)`` (see :func:`refseq.nn.gelu_forward` with ``approximate="none"``)."""
    return gelu_forward(x, "none")[0]


def ffn(x, W_1, b_1, W_2, b_2):
    """Position-wise feed-forward network: ``y = GELU(x W_1 + b_1) W_2 + b_2``.

    Parameters
    ----------
    x : (..., D); W_1 : (D, F); b_1 : (F,) or None; W_2 : (F, D); b_2 : (D,) or None.

    Returns
    -------
    y : (..., D), ``x``'s dtype. Each position is transformed independently (no mixing in time).
    """
    names = {"W_in": "W_1", "b_in": "b_1", "W_out": "W_2", "b_out": "b_2"}
    return _mlp_forward(x, MLPParams(W_1, b_1, W_2, b_2), "gelu", names.get)[0]

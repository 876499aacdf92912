"""Functional layers (NumPy) with explicit forward and backward (vector-Jacobian product) passes.

The contract (docs/nn.md): ``<name>_forward(x, *params, **options) -> (y, cache)`` and
``<name>_backward(dy, cache) -> (dx, dparam_1, ...)``, gradients in the order of the forward's
array arguments (``None`` for a parameter passed as ``None``). Output and gradient dtypes are the
dtype of ``x`` (float32 or float64). :mod:`refseq.nn.basic` keeps forward-only shorthands.
"""

from refseq.nn.activations import (
    gelu_backward,
    gelu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    tanh_backward,
    tanh_forward,
)
from refseq.nn.basic import ffn, gelu, layer_norm, linear
from refseq.nn.conv1d import conv1d_backward, conv1d_forward
from refseq.nn.dropout import dropout_backward, dropout_forward
from refseq.nn.embedding import embedding_backward, embedding_forward
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.mlp import MLPParams, init_mlp_params, mlp_backward, mlp_forward
from refseq.nn.norms import (
    layer_norm_backward,
    layer_norm_forward,
    rms_norm_backward,
    rms_norm_forward,
)
from refseq.nn.positions import (
    position_embedding_backward,
    position_embedding_forward,
    rope_backward,
    rope_forward,
)
from refseq.nn.softmax import (
    cross_entropy_backward,
    cross_entropy_forward,
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
)

__all__ = [
    "MLPParams",
    "conv1d_backward",
    "conv1d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dropout_backward",
    "dropout_forward",
    "embedding_backward",
    "embedding_forward",
    "ffn",
    "gelu",
    "gelu_backward",
    "gelu_forward",
    "init_mlp_params",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_forward",
    "linear",
    "linear_backward",
    "linear_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "mlp_backward",
    "mlp_forward",
    "position_embedding_backward",
    "position_embedding_forward",
    "relu_backward",
    "relu_forward",
    "rms_norm_backward",
    "rms_norm_forward",
    "rope_backward",
    "rope_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "silu_backward",
    "silu_forward",
    "softmax_backward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]

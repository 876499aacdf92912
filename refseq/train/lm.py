"""Training the tiny transformer as a language model with :func:`refseq.train.train`.

``lm_loss_and_grad`` is next-token cross-entropy over a batch of token sequences ``(B, T + 1)``
(inputs ``[:, :-1]``, targets ``[:, 1:]``), with the transformer's own backward pass; parameters
travel as the flat dict of :func:`refseq.models.tiny_transformer.named_parameters` so that the
optimisers can walk them.
"""

from __future__ import annotations

import numpy as np

from refseq.models.tiny_transformer.backward import backward
from refseq.models.tiny_transformer.forward import forward
from refseq.models.tiny_transformer.params import (
    check_params,
    named_parameters,
    params_from_named,
)
from refseq.nn.embedding import int_array
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward


def param_dict(params) -> dict:
    """The flat ``name -> array`` view of ``TinyParams`` (the same arrays, no copies)."""
    return dict(named_parameters(params))


def lm_loss_and_grad(named: dict, batch, config):
    """Mean next-token cross-entropy of ``batch`` (B, T + 1) and its gradients (a flat dict)."""
    params = params_from_named(config, named)
    tokens = int_array(batch, "batch", high=config.vocab_size, form="(B, T + 1)")
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"batch must have shape (B, T + 1) with T >= 1, got {tokens.shape}")
    logits, _, _, cache = forward(params, tokens=tokens[:, :-1], return_hidden=False,
                                  return_cache=True)  # (B, T, V)
    loss, c_ce = cross_entropy_forward(logits, tokens[:, 1:])
    (dlogits,) = cross_entropy_backward(np.ones((), logits.dtype), c_ce)
    grads = backward(params, cache, dlogits)
    return float(loss), param_dict(grads.params)


def make_lm_objective(params):
    """``(named_params, loss_and_grad)`` ready for :func:`refseq.train.train`."""
    config = check_params(params)
    return param_dict(params), lambda named, batch: lm_loss_and_grad(named, batch, config)

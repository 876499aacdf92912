"""Hidden-state optimisation for prompt-based few-shot classification (**reconstructed**).

Yoshida and Gimpel, arXiv 2112.08653 (thesis arXiv 2408.16241, Part B) report that HSO also
helps few-shot classification with a prompt: the states of the demonstrations are optimised on
the LM loss of the demonstrations, and the label words are then scored after the query with the
updated states. The sources give no more detail; the formulation below is the one chosen here.

The demonstrations ``d = (d_0 .. d_{n-1})`` are run once; their states become the cache
``C_0`` (keys/values ``(L, 2, H, n, Dh)`` for ``target="kv"``, layer inputs ``(L, n, D)`` for
``target="hidden"``). The demonstration loss is a function of ``C`` in which **every read of a
demonstration's key or value goes through C**: input ``d_j`` (queries from the usual forward)
attends to cached slots ``0 .. j`` and to nothing else, so ``NLL(C_0)`` is the ordinary loss of
the demonstrations:

.. code-block:: text

    NLL(C) = - sum_{j=0}^{n-2} log p(d_{j+1} | queries of d_{0..j}; K, V = C[0..j])
    G = dNLL / dC  (/ (n - 1) when grad_scale = "mean");  Adam, one step count for all slots:
    m <- b1 m + (1-b1) G;  v <- b2 v + (1-b2) G^2   (step k = 1 .. steps)
    C <- C - lr (m / (1-b1^k)) / (sqrt(v / (1-b2^k)) + eps)
    scores[y] = log p(y | C, query)            (query at positions n .. n + n_q - 1)

The last demonstration slot ``C[n-1]`` is read by no demonstration input (it has no target), so
its gradient is 0 and Adam leaves it exactly where it was (``m = v = 0`` gives a zero step).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.models.tiny_transformer.forward import forward
from refseq.models.tiny_transformer.kv import kv_from_hidden
from refseq.models.tiny_transformer.params import check_params
from refseq.papers.making_the_most.hso import TARGETS, segment_nll_and_grad
from refseq.train.adam import check_betas

__all__ = ["demo_cache", "demo_nll_and_grad", "hso_fewshot_scores"]


def _demo(params, demo_tokens, n_min: int):
    """``(config, demo_tokens as (n,) int)`` with ``n_min <= n <= max_positions``."""
    cfg = check_params(params)
    d = _checks.int_array(demo_tokens, "demo_tokens", low=0, high=cfg.vocab_size, ndim=1,
                          form="(n,)")
    if not n_min <= len(d) <= cfg.max_positions:
        raise ValueError(f"demo_tokens must hold {n_min} <= n <= max_positions = "
                         f"{cfg.max_positions} tokens, got {len(d)}")
    return cfg, d


def demo_cache(params, demo_tokens, target: str) -> np.ndarray:
    """``C_0``: the states of ``demo_tokens`` (n,) at positions ``0 .. n-1`` — keys and values
    ``(L, 2, H, n, Dh)`` (``target="kv"``) or layer inputs ``(L, n, D)`` (``"hidden"``)."""
    cfg, demo_tokens = _demo(params, demo_tokens, 1)
    _checks.check_choice(target, "target", TARGETS)
    _, hidden, kv = forward(params, tokens=demo_tokens)  # kv (L, 2, H, n, Dh)
    return kv if target == "kv" else np.stack(hidden[:-1]).astype(cfg.np_dtype)  # (L, n, D)


def demo_nll_and_grad(params, demo_tokens, cache, target: str):
    """``NLL(C)`` of the demonstrations (summed over their n - 1 targets) and ``dNLL / dC``
    (like ``cache``); input ``d_j`` reads cached slots ``0 .. j`` only (module docstring)."""
    _, d = _demo(params, demo_tokens, 2)
    n = len(d)
    _checks.check_choice(target, "target", TARGETS)
    cache = _checks.float_array(cache, "cache")
    if (cache.shape[-2 if target == "kv" else 1] if cache.ndim >= 2 else -1) != n:
        raise ValueError(f"cache must hold the n = {n} demonstration slots (demo_cache), got "
                         f"shape {cache.shape}")
    allow = np.zeros((n - 1, 2 * n - 1), bool)  # (n-1, S + s) with S = n cached, s = n-1 new
    allow[:, :n] = np.arange(n)[None, :] <= np.arange(n - 1)[:, None]  # slots 0 .. j
    nll, g, _ = segment_nll_and_grad(params, d[:-1], d[1:], np.arange(n - 1), cache,
                                     np.arange(n), target, allow_mask=allow)
    return float(nll.sum()), g


def hso_fewshot_scores(params, demo_tokens, query_tokens, label_token_ids, *, steps: int,
                       lr: float, target: str = "kv", betas=(0.9, 0.999), eps: float = 1e-8,
                       grad_scale: str = "mean") -> np.ndarray:
    """Label scores after optimising the demonstrations' states on their own LM loss.

    Parameters
    ----------
    params : TinyParams. demo_tokens : (n,) int, n >= 2, the demonstrations (prompt text).
    query_tokens : (n_q,) int, n_q >= 1, the test input and template, ending where the label
        word follows; ``n + n_q <= max_positions``.
    label_token_ids : (n_labels,) int, one token per label.
    steps : Adam steps on ``C`` (0: no optimisation). lr : step size >= 0.
    target : "kv" | "hidden". betas, eps : Adam's. grad_scale : "mean" (divide ``G`` by n - 1)
        | "sum".

    Returns
    -------
    (n_labels,) float64: ``log p(label | C, query)`` over the whole vocabulary (not renormalised
    over the labels); the prediction is the arg-max. With ``steps = 0`` or ``lr = 0`` this is
    the plain forward over ``demo + query``.
    """
    cfg = check_params(params)
    V = cfg.vocab_size
    d = _checks.int_array(demo_tokens, "demo_tokens", low=0, high=V, ndim=1, form="(n,)")
    q = _checks.int_array(query_tokens, "query_tokens", low=0, high=V, ndim=1, form="(n_q,)")
    labels = _checks.int_array(label_token_ids, "label_token_ids", low=0, high=V, ndim=1,
                               form="(n_labels,)")
    n, n_q = len(d), len(q)
    if n < 2 or n_q < 1 or not len(labels):
        raise ValueError(f"need demo_tokens with n >= 2, query_tokens with n_q >= 1 and at "
                         f"least one label; got n = {n}, n_q = {n_q}, {len(labels)} labels")
    if n + n_q > cfg.max_positions:
        raise ValueError(f"demo_tokens and query_tokens must fit in max_positions = "
                         f"{cfg.max_positions}, got n + n_q = {n + n_q}")
    steps = _checks.check_number(steps, "steps", integer=True, low=0)
    lr = _checks.check_number(lr, "lr", low=0)
    _checks.check_choice(target, "target", TARGETS)
    b1, b2 = check_betas(betas)
    eps = _checks.check_number(eps, "eps", low=0, low_open=True)
    _checks.check_choice(grad_scale, "grad_scale", ("mean", "sum"))

    C = demo_cache(params, d, target)
    m, v = np.zeros(C.shape), np.zeros(C.shape)
    for k in range(1, steps + 1 if lr > 0 else 1):
        _, g = demo_nll_and_grad(params, d, C, target)
        g = g / (n - 1) if grad_scale == "mean" else g
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        C = (C - lr * (m / (1 - b1 ** k)) / (np.sqrt(v / (1 - b2 ** k)) + eps)).astype(C.dtype)
    past = C if target == "kv" else kv_from_hidden(params, C, np.arange(n))  # (L, 2, H, n, Dh)
    logits, _, _ = forward(params, tokens=q, positions=n + np.arange(n_q), past_kv=past,
                           return_hidden=False)  # (n_q, V)
    return log_softmax(logits[-1].astype(np.float64))[labels]  # (n_labels,)

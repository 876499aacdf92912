"""Training the recurrent transformer (truncated BPTT over windows) and its two baselines.

Thesis arXiv 2408.16241, Part A (arXiv 2008.07027); model: :mod:`.recurrent`
**[reconstructed design]**. The loss is next-token cross-entropy over the whole text, labels
crossing window boundaries (the last row of window k predicts the first token of window k+1):

.. code-block:: text

    loss = - 1/(B (n-1)) sum_b sum_{j < n-1} log p(x_{j+1} | S_k, window prefix)
    S_{k+1} = f(R_k, S_k);   S_{k+1} is detached when (k + 1) % bptt_windows == 0

so windows are trained in chunks of ``bptt_windows``: a loss reaches the memory module through
the memory updates of its own chunk only (``bptt_windows = 1`` trains no memory parameter but
``S_0``). Baselines: :func:`isolated_windows` (each window alone, the ``M = 0`` model) and
:func:`sliding_window` (each token sees the ``w - 1`` tokens before it: the expensive bound).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.models.tiny_transformer.backward import forward_layers_backward, lm_head_backward
from refseq.models.tiny_transformer.forward import forward
from refseq.models.tiny_transformer.params import check_params, named_parameters
from refseq.papers.making_the_most.recurrent import RecurrentLM, pool_backward
from refseq.train.adam import Adam

__all__ = ["isolated_windows", "recurrent_loss_and_grad", "sliding_window", "train_recurrent",
           "trainable_parameters"]


def trainable_parameters(model: RecurrentLM, finetune_base: bool = True) -> dict:
    """The model's arrays (not copies) by name: ``"base.<name>"`` and ``"mem.<name>"``."""
    _checks.check_instance(model, RecurrentLM, "model")
    finetune_base = _checks.check_flag(finetune_base, "finetune_base")
    out = {f"base.{k}": v for k, v in named_parameters(model.base)} if finetune_base else {}
    out.update({f"mem.{k}": v for k, v in model.mem.items()})
    return out


def _window_backward(model: RecurrentLM, cache, dlogits, dS_next, grads):
    """VJP of ``RecurrentLM.window_forward``; accumulates into ``grads``, returns ``dS``."""
    tok, c_lo, c_up, c_head, c_pool = cache
    p, M, lw, lr = model.base, model.n_mem, model.write_layer, model.read_layer
    L, T = model.config.n_layers, tok.shape[1]
    dR, dS, g_pool = pool_backward(model.mem, c_pool, dS_next)
    for k, g in g_pool.items():
        grads[f"mem.{k}"] += g
    d_hidden = [None] * (L - lw + 1)
    d_hidden[lr - lw] = np.concatenate([dR[:, T:], dR[:, :T]], axis=1)  # back to [memory; window]
    dh_win, g_head = lm_head_backward(p, c_head, dlogits)  # (B, T, D)
    for k, g in g_head.items():
        grads[f"base.{k}"] += g
    dh_out = np.concatenate([np.zeros_like(dS), dh_win], axis=1)  # (B, M + T, D)
    dZ, g_up, _ = forward_layers_backward(p, c_up, dh_out, d_hidden=d_hidden)
    dx, g_lo, _ = forward_layers_backward(p, c_lo, dZ[:, M:])  # (B, T, D)
    for g in (g_up, g_lo):
        for k, a in named_parameters(g):
            grads[f"base.{k}"] += a
    dS = dS + dZ[:, :M]
    np.add.at(grads["base.wte"], tok, dx)
    if p.wpe is not None:
        grads["base.wpe"][M:M + T] += dx.sum(axis=0)
        if lw == 0:
            grads["base.wpe"][:M] += dZ[:, :M].sum(axis=0)
    return dS


def recurrent_loss_and_grad(model: RecurrentLM, tokens, bptt_windows: int):
    """Mean next-token NLL of ``tokens (B, n)`` and its gradient w.r.t. every trainable array
    (a dict like :func:`trainable_parameters`), with the memory path cut every
    ``bptt_windows`` windows."""
    _checks.check_instance(model, RecurrentLM, "model")
    tok = _checks.int_array(np.asarray(tokens), "tokens", low=0, high=model.config.vocab_size,
                            ndim=2, form="(B, n)")
    if tok.shape[1] < 2 or tok.shape[0] < 1:
        raise ValueError(f"tokens must have shape (B, n) with B >= 1, n >= 2, got {tok.shape}")
    K = _checks.check_number(bptt_windows, "bptt_windows", integer=True, low=1)
    B, n = tok.shape
    w = model.window
    S, caches, lps = model.initial_memory(B), [], []
    for a in range(0, n, w):
        logits, S, c = model.window_forward(S, tok[:, a:a + w], return_cache=True)
        caches.append(c)
        lps.append(log_softmax(logits))  # (B, T, V)
    lp = np.concatenate(lps, axis=1)[:, :-1]  # (B, n - 1, V): rows with a target
    tgt = tok[:, 1:]  # (B, n - 1)
    loss = -np.take_along_axis(lp, tgt[..., None], axis=-1).mean()
    dlog = np.exp(lp)  # d loss / d logits = (softmax - onehot) / count
    np.put_along_axis(dlog, tgt[..., None], np.take_along_axis(dlog, tgt[..., None], -1) - 1, -1)
    dlog = np.concatenate([dlog, np.zeros_like(dlog[:, :1])], axis=1) / (B * (n - 1))
    grads = {k: np.zeros_like(v) for k, v in trainable_parameters(model).items()}
    dS = np.zeros_like(S)
    for k in reversed(range(len(caches))):
        if (k + 1) % K == 0:
            dS = np.zeros_like(dS)  # S_{k+1} detached: truncated BPTT
        dS = _window_backward(model, caches[k], dlog[:, k * w:(k + 1) * w].astype(S.dtype), dS,
                              grads)
    if model.mem_init == "learned":
        grads["mem.S0"] += dS.sum(axis=0)
    return float(loss), grads


def train_recurrent(model: RecurrentLM, data, *, lr: float, steps: int, batch_size: int,
                    bptt_windows: int, finetune_base: bool = True, seed: int = 0):
    """Adam on :func:`recurrent_loss_and_grad` over random batches of ``data (N, n)``.

    Returns ``(trained copy of model, losses (steps,))``; ``model`` itself is not changed. With
    ``finetune_base=False`` only the memory module (and ``S_0``) is trained.
    """
    if not isinstance(model, RecurrentLM):
        raise TypeError(f"model must be a RecurrentLM, got {type(model).__name__}")
    data = _checks.int_array(np.asarray(data), "data", low=0, high=model.config.vocab_size,
                             ndim=2, form="(N, n)")
    if data.shape[0] < 1 or data.shape[1] < 2:
        raise ValueError(f"data must have shape (N, n) with N >= 1, n >= 2, got {data.shape}")
    steps = _checks.check_number(steps, "steps", integer=True, low=1)
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    finetune_base = _checks.check_flag(finetune_base, "finetune_base")
    rng = np.random.default_rng(_checks.check_number(seed, "seed", integer=True, low=0))
    model = model.copy()
    opt = Adam(lr=lr)
    params = trainable_parameters(model, finetune_base)
    losses = np.empty(steps)
    for i in range(steps):
        batch = data[rng.integers(0, len(data), batch_size)]  # (batch_size, n)
        losses[i], g = recurrent_loss_and_grad(model, batch, bptt_windows)
        opt.step(params, {k: g[k] for k in params})  # in place: the model's own arrays
    return model, losses


def _base_tokens(params, tokens, window):
    cfg = check_params(params)
    tok = _checks.int_array(np.asarray(tokens), "tokens", low=0, high=cfg.vocab_size, ndim=1,
                            form="(n,)")
    if len(tok) < 1:
        raise ValueError("tokens must hold at least one token")
    w = _checks.check_number(window, "window", integer=True, low=1, high=cfg.max_positions)
    return tok, w


def isolated_windows(params, tokens, window: int) -> np.ndarray:
    """Logits ``(n, V)``: each window of ``window`` tokens read alone from position 0."""
    tok, w = _base_tokens(params, tokens, window)
    return np.concatenate([forward(params, tokens=tok[a:a + w])[0]
                           for a in range(0, len(tok), w)])  # (n, V)


def sliding_window(params, tokens, window: int) -> np.ndarray:
    """Logits ``(n, V)``: token j read with the ``window - 1`` tokens before it, at positions
    ``0 .. window - 1`` (one forward per token: the expensive upper bound)."""
    tok, w = _base_tokens(params, tokens, window)
    return np.stack([forward(params, tokens=tok[max(0, j - w + 1):j + 1])[0][-1]
                     for j in range(len(tok))])  # (n, V)

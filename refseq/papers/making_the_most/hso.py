"""Hidden-state optimisation (HSO) for the tiny transformer.

Yoshida and Gimpel, "Reconsidering the Past: Optimizing Hidden States in Language Models",
arXiv 2112.08653 (thesis arXiv 2408.16241, Part B). The text is read in segments ``X_i`` of
``s`` tokens with a cache ``C`` of the last ``c`` tokens' states. Each segment is first *scored*
with the current cache, then the cache takes Adam steps on the gradient of the segment's NLL
(the weights never change, unlike dynamic evaluation), then the segment's own states join the
cache and the oldest fall out:

.. code-block:: text

    NLL_i(C) = - sum_j log p(x_{j+1} | C, x_{a..j}),  j = a .. a+s-1 (the last target is the
               first token of X_{i+1}: already scored here, before any update that uses it)
    G = dNLL_i / dC   (/ number of targets when grad_scale = "mean")
    per slot q:  m_q <- b1 m_q + (1-b1) G_q ; v_q <- b2 v_q + (1-b2) G_q^2 ; t_q <- t_q + 1
                 C_q <- C_q - lr (m_q / (1 - b1^t_q)) / (sqrt(v_q / (1 - b2^t_q)) + eps)
    C <- last c slots of [C ; new slots of X_i];   new slots start with (m, v, t) = (0, 0, 0)

``target="kv"`` optimises the per-layer keys and values ``(L, 2, H, S, Dh)`` (GPT-2 style);
``target="hidden"`` the per-layer inputs ``(L, S, D)`` from which keys and values are recomputed
(``K, V = LN_1(h) W``, Transformer-XL style; :func:`kv_from_hidden`). Positions are absolute
(token j sits at position j), so ``n <= max_positions``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.models.tiny_transformer.backward import backward
from refseq.models.tiny_transformer.forward import forward
from refseq.models.tiny_transformer.kv import kv_from_hidden, kv_from_hidden_backward
from refseq.models.tiny_transformer.params import check_params
from refseq.train.adam import check_betas

__all__ = ["HSOResult", "TARGETS", "hso_evaluate", "segment_nll_and_grad"]

TARGETS = ("kv", "hidden")


class HSOResult(NamedTuple):
    """``nll_per_token`` (n,): ``-log p(x_j | x_<j)`` as scored by HSO (NaN at j = 0, which has
    no context); ``nll_baseline`` (n,) the same with ``lr = 0`` (None unless requested);
    ``update_norms`` (segments,) the norm of the total cache change at each segment."""

    nll_per_token: np.ndarray
    nll_baseline: np.ndarray | None
    update_norms: np.ndarray


def _slot_axis(target):
    return -2 if target == "kv" else 1  # kv (L, 2, H, S, Dh); hidden (L, S, D)


def segment_nll_and_grad(params, seg, targets, positions, cache, cache_pos, target: str,
                         allow_mask=None):
    """NLL (summed over ``targets``) of one segment given the cache, its gradient w.r.t. the
    cache, and the segment's new slots.

    Parameters
    ----------
    seg : (s,) int inputs. targets : (s',) int, s' <= s, the next tokens of the first s' inputs.
    positions : (s,) int. cache : kv (L, 2, H, S, Dh) or hidden (L, S, D), S may be 0.
    cache_pos : (S,) int positions of the cached slots (used by ``target="hidden"``).
    allow_mask : (s, S + s) bool, default: every cached slot and the segment causally
        (:func:`hso_fewshot_scores` lets the inputs read cached slots only).

    Returns
    -------
    nll (s',) float64, grad (like ``cache``; None when S = 0), new_slots (like ``cache`` with s
    slots).
    """
    cfg = check_params(params)
    _checks.check_choice(target, "target", TARGETS)
    V, P = cfg.vocab_size, cfg.max_positions
    seg = _checks.int_array(seg, "seg", low=0, high=V, ndim=1, form="(s,)")
    targets = _checks.int_array(targets, "targets", low=0, high=V, ndim=1, form="(s',)")
    if len(targets) > len(seg):
        raise ValueError(f"targets must have s' <= s = {len(seg)} entries, got {len(targets)}")
    positions = _checks.int_array(positions, "positions", low=0, high=P, ndim=1, form="(s,)")
    _checks.check_shape(positions, seg.shape, "positions", "(s,)")
    cache = _checks.float_array(cache, "cache")
    S = cache.shape[_slot_axis(target)] if cache.ndim in (3, 5) else 0
    L, H, Dh, D = cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_model
    _checks.check_shape(cache, (L, 2, H, S, Dh) if target == "kv" else (L, S, D), "cache",
                        "(L, 2, H, S, Dh)" if target == "kv" else "(L, S, D)")
    cache_pos = _checks.int_array(cache_pos, "cache_pos", low=0, high=P, ndim=1, form="(S,)")
    _checks.check_shape(cache_pos, (S,), "cache_pos", "(S,)")
    past, c_kv = None, None
    if S and target == "kv":
        past = cache
    elif S:
        past, c_kv = kv_from_hidden(params, cache, cache_pos, return_cache=True)
    logits, hidden, new_kv, mc = forward(params, tokens=seg, positions=positions, past_kv=past,
                                         allow_mask=allow_mask, return_hidden=True,
                                         return_cache=True)  # (s, V)
    n_t = len(targets)
    lp = log_softmax(logits[:n_t])  # (s', V) float64
    nll = -lp[np.arange(n_t), targets]  # (s',)
    dlogits = np.zeros(logits.shape)  # (s, V): d(sum nll)/dlogits = softmax - onehot
    dlogits[:n_t] = np.exp(lp)
    dlogits[np.arange(n_t), targets] -= 1.0
    new = (new_kv[..., S:, :] if target == "kv"
           else np.stack(hidden[:-1]))  # (L, 2, H, s, Dh) or (L, s, D)
    if not S:
        return nll, None, new
    g = backward(params, mc, dlogits.astype(logits.dtype)).past_kv  # (L, 2, H, S, Dh)
    if target == "hidden":
        g, _ = kv_from_hidden_backward(params, c_kv, g)  # (L, S, D)
    return nll, g, new


def hso_evaluate(params, tokens, *, segment: int, cache_len: int, lr: float,
                 betas=(0.9, 0.999), eps: float = 1e-8, steps: int = 1, target: str = "kv",
                 recompute_after_update: bool = False, grad_scale: str = "mean",
                 baseline: bool = False) -> HSOResult:
    """Evaluate ``tokens`` (n,) segment by segment with hidden-state optimisation.

    Parameters
    ----------
    params : TinyParams. tokens : (n,) int, 2 <= n <= max_positions.
    segment : s >= 1. cache_len : c >= 1 (slots kept; the oldest are dropped first).
    lr : Adam step size >= 0 (0: the plain cached evaluation). betas, eps : Adam's.
    steps : Adam steps per segment. target : "kv" | "hidden".
    recompute_after_update : the segment's new slots come from a second forward with the
        updated cache (default: from the scoring pass, with the pre-update cache).
    grad_scale : "mean" (divide by the segment's number of targets) | "sum".
    baseline : also return the ``lr = 0`` evaluation.
    """
    cfg = check_params(params)
    tokens = _checks.int_array(np.asarray(tokens), "tokens", low=0, high=cfg.vocab_size, ndim=1,
                               form="(n,)").astype(np.int64)
    n = len(tokens)
    if not 2 <= n <= cfg.max_positions:
        raise ValueError(f"tokens must have 2 <= n <= max_positions = {cfg.max_positions} "
                         f"tokens, got {n}")
    s = _checks.check_number(segment, "segment", integer=True, low=1)
    c = _checks.check_number(cache_len, "cache_len", integer=True, low=1)
    lr = _checks.check_number(lr, "lr", low=0)
    b1, b2 = check_betas(betas)
    eps = _checks.check_number(eps, "eps", low=0, low_open=True)
    steps = _checks.check_number(steps, "steps", integer=True, low=1)
    _checks.check_choice(target, "target", TARGETS)
    _checks.check_choice(grad_scale, "grad_scale", ("mean", "sum"))
    recompute = _checks.check_flag(recompute_after_update, "recompute_after_update")
    baseline = _checks.check_flag(baseline, "baseline")
    base = (hso_evaluate(params, tokens, segment=s, cache_len=c, lr=0.0, target=target)
            .nll_per_token if baseline and lr > 0 else None)

    ax = _slot_axis(target)
    D, L, H, Dh = cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_head
    cache = np.zeros((L, 2, H, 0, Dh) if target == "kv" else (L, 0, D), cfg.np_dtype)
    m, v = np.zeros_like(cache), np.zeros_like(cache)
    t = np.zeros(0, np.int64)  # (S,) Adam step count of each slot
    cache_pos = np.zeros(0, np.int64)  # (S,) absolute position of each slot
    nll = np.full(n, np.nan)
    norms = []
    for a in range(0, n - 1, s):
        seg = tokens[a:a + s]  # (s,)
        pos = np.arange(a, a + len(seg))  # (s,)
        targets = tokens[a + 1:a + s + 1]  # (s',) the next token of each input
        seg_nll, g, new = segment_nll_and_grad(params, seg, targets, pos, cache, cache_pos,
                                               target)
        nll[a + 1:a + 1 + len(targets)] = seg_nll  # scored before any update that uses them
        start = cache.copy()
        if g is not None and lr > 0:
            for k in range(steps):
                if k:
                    _, g, _ = segment_nll_and_grad(params, seg, targets, pos, cache, cache_pos,
                                                   target)
                g = g / len(targets) if grad_scale == "mean" else g
                t = t + 1
                shape = [1] * cache.ndim
                shape[ax] = -1
                tt = t.reshape(shape)  # broadcast over the slot axis
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                step = lr * (m / (1 - b1 ** tt)) / (np.sqrt(v / (1 - b2 ** tt)) + eps)
                cache = (cache - step).astype(cfg.np_dtype)
        norms.append(float(np.linalg.norm(cache - start)))
        if recompute and g is not None:
            _, _, new = segment_nll_and_grad(params, seg, targets, pos, cache, cache_pos, target)
        keep = slice(-c, None)  # roll: the last c slots, with their Adam state
        cat = lambda x, y: np.concatenate([x, y], axis=ax)  # noqa: E731
        idx = [slice(None)] * cache.ndim
        idx[ax] = keep
        cache = cat(cache, new)[tuple(idx)]
        m = cat(m, np.zeros_like(new))[tuple(idx)]
        v = cat(v, np.zeros_like(new))[tuple(idx)]
        t = np.concatenate([t, np.zeros(len(seg), np.int64)])[keep]
        cache_pos = np.concatenate([cache_pos, pos])[keep]
    return HSOResult(nll, base, np.asarray(norms))

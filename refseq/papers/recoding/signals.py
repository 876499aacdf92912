"""Recoding's error signals δ and their exact gradients (Ulmer, arXiv 2101.00674), plus the
anchored-ensemble extras (Pearce et al. 2018): the ensemble
LM output and its backward (the members are trained through it), the anchors and the anchor
loss.

Every signal is per example: ``δ (B,)`` and the gradient of ``δ_b`` w.r.t. example b's input
(never reduced over the batch). For one example with logits ``o (V,)`` and ``p = softmax(o)``::

    surprisal       δ = -log p_y           ∂δ/∂o = p - e_y
    code variant    δ = p_y^{-p_y} - 1     ∂δ/∂o_j = -(δ+1)(ln p_y + 1) p_y (1[j=y] - p_j)
    mixture entropy p̄ = (1/K) Σ_k p^(k), δ = -Σ_j p̄_j ln p̄_j
                    ∂δ/∂o^(k)_j = -(1/K) p^(k)_j (ln p̄_j - Σ_i p^(k)_i ln p̄_i)

The code variant is the official code's "surprisal" (kept for reproduction only: it is
non-monotone in ``p_y`` with its maximum ``e^{1/e} - 1`` at ``p_y = 1/e``).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.embedding import int_array


def _log_softmax(o):
    z = o - o.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _target(logits, target):
    logits = _checks.float_array(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, V), got {logits.shape}")
    B, V = logits.shape
    if target is None:  # the official training loop: the arg-max token (lowest index on ties)
        return logits, np.argmax(logits, axis=-1)
    target = int_array(target, "target", high=V, form="(B,)")
    _checks.check_shape(target, (B,), "target", "(B,)")
    return logits, target


def surprisal(logits, target=None):
    """``δ = -log softmax(logits)[target]`` and ``∂δ/∂logits = p - e_y``; ``target=None`` uses
    the arg-max token. Returns ``(delta (B,), d_logits (B, V))``."""
    logits, y = _target(logits, target)
    logp = _log_softmax(logits)  # (B, V)
    B = logits.shape[0]
    delta = -logp[np.arange(B), y]
    d = np.exp(logp)
    d[np.arange(B), y] -= 1
    return delta, d


def token_perplexity_code_variant(logits, target=None):
    """The official code's signal ``δ = p_y^{-p_y} - 1 = exp(-p_y ln p_y) - 1`` (Traps) and
    its gradient; returns ``(delta (B,), d_logits (B, V))``."""
    logits, y = _target(logits, target)
    logp = _log_softmax(logits)
    B = logits.shape[0]
    lpy = logp[np.arange(B), y]  # (B,)
    py = np.exp(lpy)
    delta = np.expm1(-py * lpy)
    p = np.exp(logp)
    onehot = np.zeros_like(p)
    onehot[np.arange(B), y] = 1
    coef = -(delta + 1) * (lpy + 1) * py  # (B,) = dδ/d(ln p_y) ... times dp_y/do
    return delta, coef[:, None] * (onehot - p)


def mixture_entropy(member_logits):
    """Entropy of the mean of K member softmaxes and its gradient per member.

    member_logits : (K, B, V). Returns ``(delta (B,), d_logits (K, B, V))``; the mean is over
    members (axis 0), never over the batch.
    """
    o = _checks.float_array(member_logits, "member_logits")
    if o.ndim != 3:
        raise ValueError(f"member_logits must have shape (K, B, V), got {o.shape}")
    K = o.shape[0]
    pk = np.exp(_log_softmax(o))  # (K, B, V)
    pbar = pk.mean(axis=0)  # (B, V)
    tiny = np.finfo(o.dtype).tiny
    ln_pbar = np.log(np.maximum(pbar, tiny))  # 0 * log 0 := 0
    delta = -(pbar * ln_pbar).sum(axis=-1)  # (B,)
    inner = (pk * ln_pbar).sum(axis=-1, keepdims=True)  # (K, B, 1)
    d = -(pk * (ln_pbar - inner)) / o.dtype.type(K)
    return delta, d


def mc_dropout_entropy(h_top, W_dec, b_dec, num_samples: int, p_drop: float, rng=None,
                       masks=None):
    """Predictive entropy of K MC-dropout decodes of ``h_top`` (Gal & Ghahramani 2016).

    ``o^(k) = W_dec (m_k ⊙ h) / (1 - q) + b_dec`` with Bernoulli keep masks ``m_k``;
    ``∂δ/∂h = Σ_k (m_k / (1 - q)) ⊙ W_decᵀ ∂δ/∂o^(k)``. The official constant ``2qℓ²/(2Nλ)``
    has no gradient and is not added.

    Parameters
    ----------
    h_top : (B, H); W_dec : (V, H); b_dec : (V,); num_samples : K >= 1; p_drop : q in [0, 1);
    rng : draws the masks unless ``masks`` (K, B, H) bool is given.

    Returns
    -------
    delta : (B,); d_h_top : (B, H).
    """
    h = _checks.float_array(h_top, "h_top")
    if h.ndim != 2:
        raise ValueError(f"h_top must have shape (B, H), got {h.shape}")
    num_samples = _checks.check_number(num_samples, "num_samples", integer=True, low=1)
    p_drop = _checks.check_number(p_drop, "p_drop", low=0, high=1, high_open=True)
    W = _checks.float_array(W_dec, "W_dec", dtype=h.dtype)
    b = _checks.float_array(b_dec, "b_dec", dtype=h.dtype)
    if W.ndim != 2 or W.shape[1] != h.shape[1]:
        raise ValueError(f"W_dec must have shape (V, H={h.shape[1]}), got {W.shape}")
    _checks.check_shape(b, W.shape[:1], "b_dec", "(V,)")
    if masks is None:
        masks = _checks.check_rng(rng).random((num_samples,) + h.shape) >= p_drop
    masks = _checks.bool_mask(masks, (num_samples,) + h.shape, "masks", "(K, B, H)")
    scale = masks / h.dtype.type(1 - p_drop)  # (K, B, H)
    o = (scale * h) @ W.T + b  # (K, B, V)
    delta, d_o = mixture_entropy(o)
    return delta, ((d_o @ W) * scale).sum(axis=0).astype(h.dtype, copy=False)


def ensemble_entropy(h_top, decoders):
    """Entropy of the mean member distribution of an ensemble of decoders.

    h_top : (B, H); decoders : [(W_k (V, H), b_k (V,))]. ``∂δ/∂h = Σ_k W_kᵀ ∂δ/∂o^(k)``.
    Returns ``(delta (B,), d_h_top (B, H))``.
    """
    h, decoders = _check_ensemble(h_top, decoders)
    o = _member_logits(h, decoders)  # (K, B, V)
    delta, d_o = mixture_entropy(o)
    d_h = sum(d_o[k] @ W for k, (W, _) in enumerate(decoders))
    return delta, d_h


def _check_decoders(decoders, name, H=None, dtype=None):
    """``decoders`` as a list of float ``(W (V, H), b (V,))``, one V for all (H if given)."""
    if not isinstance(decoders, (list, tuple)) or not decoders:
        raise ValueError(f"{name} must hold at least one (W_k, b_k) pair")
    out = []
    for k, pair in enumerate(decoders):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"{name}[{k}] must be a pair (W (V, H), b (V,))")
        W = _checks.float_array(pair[0], f"{name}[{k}][0]", dtype=dtype)
        b = _checks.float_array(pair[1], f"{name}[{k}][1]", dtype=W.dtype)
        V, H = out[0][0].shape if out else (W.shape[0] if W.ndim else None, H)
        if W.ndim != 2 or W.shape[0] != V or (H is not None and W.shape[1] != H):
            raise ValueError(f"{name}[{k}][0] must have shape (V, H) = ({V}, {H}), "
                             f"got {W.shape}")
        _checks.check_shape(b, (V,), f"{name}[{k}][1]", "(V,)")
        out.append((W, b))
    return out


def _check_ensemble(h_top, decoders):
    h = _checks.float_array(h_top, "h_top")
    if h.ndim != 2:
        raise ValueError(f"h_top must have shape (B, H), got {h.shape}")
    return h, _check_decoders(decoders, "decoders", h.shape[1], h.dtype)


def _member_logits(h, decoders):
    return np.stack([h @ W.T + b for W, b in decoders])  # (K, B, V)


def ensemble_log_probs(h_top, decoders, average="probs"):
    """The ensemble LM output: ``log mean_k p^(k)`` (Pearce et al.; default) or, with
    ``average="logits"``, the official code's mean of member logits. Returns (B, V)."""
    _checks.check_choice(average, "average", ("probs", "logits"))
    h, decoders = _check_ensemble(h_top, decoders)
    o = _member_logits(h, decoders)  # (K, B, V)
    if average == "logits":
        return _log_softmax(o.mean(axis=0))
    lp = _log_softmax(o)
    m = lp.max(axis=0)
    return m + np.log(np.exp(lp - m).mean(axis=0))


def ensemble_log_probs_backward(h_top, decoders, d_out, average="probs"):
    """VJP of :func:`ensemble_log_probs` w.r.t. ``h_top`` and every member's ``(W_k, b_k)``.

    With ``out = log p̄``, ``p̄ = (1/K) Σ_k p^(k)``, ``p^(k) = softmax(o^(k))``,
    ``o^(k) = W_k h + b_k`` and ``w_k = p^(k) / p̄ = exp(log p^(k) - log p̄)`` (at most K, so no
    division by a tiny ``p̄``)::

        ∂L/∂o^(k) = (1/K) (w_k ⊙ d_out - p^(k) Σ_j w_kj d_out_j)          average="probs"
        ∂L/∂o^(k) = (1/K) (d_out - softmax(ō) Σ_j d_out_j),  ō = mean_k o^(k)   "logits"
        ∂L/∂W_k = (∂L/∂o^(k))ᵀ h,  ∂L/∂b_k = Σ_B ∂L/∂o^(k),  ∂L/∂h = Σ_k ∂L/∂o^(k) W_k

    Parameters
    ----------
    h_top : (B, H); decoders : [(W_k (V, H), b_k (V,))]; d_out : (B, V) cotangent of the output.

    Returns
    -------
    d_h_top : (B, H); d_decoders : [(dW_k (V, H), db_k (V,))].
    """
    _checks.check_choice(average, "average", ("probs", "logits"))
    h, decoders = _check_ensemble(h_top, decoders)
    o = _member_logits(h, decoders)  # (K, B, V)
    K = o.shape[0]
    d_out = _checks.float_array(d_out, "d_out", dtype=h.dtype)
    _checks.check_shape(d_out, o.shape[1:], "d_out", "(B, V)")
    if average == "logits":
        lq = _log_softmax(o.mean(axis=0))  # (B, V)
        d_bar = d_out - np.exp(lq) * d_out.sum(axis=-1, keepdims=True)
        d_o = np.broadcast_to(d_bar / h.dtype.type(K), o.shape)  # (K, B, V)
    else:  # "probs"
        lp = _log_softmax(o)  # (K, B, V)
        w = np.exp(lp - ensemble_log_probs(h, decoders))  # (K, B, V), p^(k) / p̄
        d_o = (w * d_out - np.exp(lp) * (w * d_out).sum(axis=-1, keepdims=True)) \
            / h.dtype.type(K)
    d_h = sum(d_o[k] @ W for k, (W, _) in enumerate(decoders))
    return d_h, [(d_o[k].T @ h, d_o[k].sum(axis=0)) for k in range(K)]


def init_anchored_decoders(K, H, V, prior_var, rng=None, dtype=np.float64):
    """K decoders and their anchors, both drawn independently from ``N(0, prior_var)``
    (Pearce et al. 2018). Returns ``(decoders, anchors)``, each ``[(W (V, H), b (V,))]``."""
    K, H, V = (_checks.check_number(n, name, integer=True, low=1)
               for n, name in ((K, "K"), (H, "H"), (V, "V")))
    sd = np.sqrt(_checks.check_number(prior_var, "prior_var", low=0, low_open=True))
    rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")

    def draw():
        return [((sd * rng.standard_normal((V, H))).astype(dtype),
                 (sd * rng.standard_normal(V)).astype(dtype)) for _ in range(K)]

    return draw(), draw()


def anchor_loss(decoders, anchors, data_noise, prior_var, N):
    """``(λ/N) Σ_k (||W_k - W_k^anc||² + ||b_k - b_k^anc||²)`` with ``λ = data_noise/prior_var``
    (squared norms and stored anchors, unlike the official code). Returns ``(loss, grads)``,
    grads ``[(dW_k, db_k)]``."""
    data_noise = _checks.check_number(data_noise, "data_noise", low=0, low_open=True)
    prior_var = _checks.check_number(prior_var, "prior_var", low=0, low_open=True)
    N = _checks.check_number(N, "N", integer=True, low=1)
    decoders = _check_decoders(decoders, "decoders")
    anchors = _check_decoders(anchors, "anchors", dtype=decoders[0][0].dtype)
    if len(anchors) != len(decoders):
        raise ValueError(f"anchors must have one (W, b) per decoder ({len(decoders)}), got "
                         f"{len(anchors)}")
    if anchors[0][0].shape != decoders[0][0].shape:
        raise ValueError(f"anchors and decoders must have the same shapes: anchors[0][0] is "
                         f"{anchors[0][0].shape}, decoders[0][0] is {decoders[0][0].shape}")
    lam = data_noise / prior_var
    loss, grads = 0.0, []
    for (W, b), (Wa, ba) in zip(decoders, anchors):
        loss += lam / N * (float(((W - Wa) ** 2).sum()) + float(((b - ba) ** 2).sum()))
        grads.append((2 * lam / N * (W - Wa), 2 * lam / N * (b - ba)))
    return loss, grads

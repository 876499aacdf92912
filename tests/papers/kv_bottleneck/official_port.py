"""NumPy ports (own code, no torch) of the small functions of the official Discrete Key-Value
Bottleneck code: ftraeuble/discrete_key_value_bottleneck (commit 1987958;
``key_value_bottleneck/core.py`` ``KeyValueBottleneck.forward``, ``utils.py``) and
ftraeuble/experiments_discrete_key_value_bottleneck (``utils/model.py``
``CodebookVotingLogitsDecoder``).

What each port keeps from its original:

- :func:`scores`: the *negative* squared distance in the expanded form
  ``-(|x|^2 - 2 x.key + |key|^2)`` over flattened queries ``(C, I, d_k)``.
- :func:`masked_scores`: evaluation mode (counts off): pairs whose counter is 0 get the
  smallest score of the **whole** tensor (all codebooks and queries), not minus infinity.
- :func:`select`: top-k by largest score (a stable descending sort stands in for
  ``torch.topk``, whose order among equal scores is unspecified).
- :func:`ema_step`: ``ema_inplace`` of the one-hot counts and sums, ``laplace_smoothing`` times
  the total, ``keys_avg / smoothed``; dead keys (``cluster_size < threshold``) replaced by the
  sampled rows passed in (``sample_vectors`` draws them).
- :func:`voting`: ``einsum("b n t v, t -> b n v")`` over the top-k slots after folding
  ``(codebook, token)`` into one axis, then the mean over that axis.
"""

from __future__ import annotations

import numpy as np


def flatten(h):
    """``rearrange(x, "b c n k -> c (b n) k")``."""
    B, C, N, d_k = h.shape
    return h.transpose(1, 0, 2, 3).reshape(C, B * N, d_k)


def scores(flat, keys):
    """``dist`` of the official forward: ``-(|x|^2 - 2 x.k + |k|^2)``, shape (C, I, M)."""
    xx = np.einsum("cid,cid->ci", flat, flat)[..., None]
    xk = np.einsum("cid,cjd->cij", flat, keys)
    kk = np.einsum("cjd,cjd->cj", keys, keys)[:, None, :]
    return -(xx - 2 * xk + kk)


def masked_scores(s, counter):
    """Unused pairs (``counter == 0``) get the global minimum score."""
    out = s.copy()
    out[np.broadcast_to((counter == 0)[:, None, :], s.shape)] = s.min()
    return out


def select(s, topk):
    """Indices (C, I, k) of the ``topk`` largest scores, larger first."""
    return np.argsort(-s, axis=-1, kind="stable")[..., :topk]


def forward_values(h, keys, values, topk, counter=None):
    """Official output ``(values (B, C, k, N, d_v), idx (B, C, k, N))``; ``counter`` given:
    evaluation masking."""
    B, C, N, _ = h.shape
    s = scores(flatten(h), keys)
    if counter is not None:
        s = masked_scores(s, counter)
    ind = select(s, topk)  # (C, B N, k)
    fetched = np.stack([values[c][ind[c]] for c in range(C)])  # (C, B N, k, d_v)
    fetched = fetched.reshape(C, B, N, topk, -1).transpose(1, 0, 3, 2, 4)
    return fetched, ind.reshape(C, B, N, topk).transpose(1, 0, 3, 2)


def ema_step(h, keys, keys_avg, cluster_size, decay, eps, threshold=0.0, samples=None):
    """One official EMA update; returns new ``(keys, keys_avg, cluster_size)``."""
    flat = flatten(h)
    C, I, _ = flat.shape
    M = keys.shape[1]
    ind = select(scores(flat, keys), 1)[..., 0]  # (C, I)
    onehot = (ind[..., None] == np.arange(M)).astype(flat.dtype)  # (C, I, M)
    cluster_size = cluster_size * decay + onehot.sum(1) * (1 - decay)
    keys_sum = np.einsum("cik,cij->cjk", flat, onehot)
    keys_avg = keys_avg * decay + keys_sum * (1 - decay)
    total = cluster_size.sum(-1, keepdims=True)
    smoothed = (cluster_size + eps) / (total + M * eps) * total
    keys = keys_avg / smoothed[..., None]
    if threshold > 0:
        dead = cluster_size < threshold
        keys = np.where(dead[..., None], samples, keys)
    return keys, keys_avg, cluster_size


def voting(fetched, weights):
    """``fetched (B, C, k, N, d_v)`` -> logits (B, d_v), the official decoder without dropout."""
    B, C, k, N, d_v = fetched.shape
    x = fetched.transpose(0, 3, 1, 2, 4).reshape(B, N * C, k, d_v)  # "b (... c) t v"
    x = np.einsum("bntv,t->bnv", x, weights)
    return x.mean(axis=1)

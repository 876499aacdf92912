"""Ports of the peers' small functions, written for these tests from reading their source.

- ``kool_*``: wouterkool/stochastic-beam-search, ``fairseq/gumbel.py``: ``gumbel_with_maximum``
  and ``_shift_gumbel_maximum`` (torch; here in torch float64 with explicit noise instead of
  ``torch.rand_like``). The peer computes ``u = T - g + log1p(-exp(g - Z))`` and returns
  ``T - relu(u) - log1p(exp(-|u|))``.
- ``sequoia_*``: Infini-AI-Lab/Sequoia, ``utils.get_residual``,
  ``utils.sampling_without_replacement`` and ``Tree/SpecTree.py::SpecTree.accept_step`` (torch
  on GPU there; NumPy float64 here, one node's children given as a list, draft logits at
  temperature 1). After a rejection Sequoia sets the rejected token's draft logit to
  ``finfo.min`` and re-applies the softmax: the without-replacement conditional.
"""

from __future__ import annotations

import numpy as np


def kool_shift_gumbel_maximum(g_phi, T, Z):
    import torch
    import torch.nn.functional as F

    g_phi, T, Z = (torch.as_tensor(x, dtype=torch.float64) for x in (g_phi, T, Z))
    u = T.unsqueeze(-1) - g_phi + torch.log1p(-torch.exp(g_phi - Z.unsqueeze(-1)))
    return (T.unsqueeze(-1) - F.relu(u) - torch.log1p(torch.exp(-u.abs()))).numpy()


def kool_gumbel_with_maximum(phi, T, gumbel):
    """``phi (B, V)`` locations, ``T (B,)`` maxima, ``gumbel (B, V)`` standard Gumbel noise."""
    g_phi = np.asarray(phi) + np.asarray(gumbel)
    Z, argmax = g_phi.max(-1), g_phi.argmax(-1)
    return kool_shift_gumbel_maximum(g_phi, T, Z), argmax


def sequoia_get_residual(p, q):
    r = np.maximum(p - q, 0.0)
    return r / r.sum(-1, keepdims=True)


def sequoia_sampling_without_replacement(sampling_logits, rand, num_samples):
    q = np.exp(sampling_logits - sampling_logits.max())
    q = q / q.sum()
    with np.errstate(divide="ignore"):
        keys = np.log(rand) / q  # topk of log(u)/q = the smallest exponential arrival times
    return np.argsort(-keys, kind="stable")[:num_samples]


def sequoia_accept_step(p, draft_logits, child_tokens, r):
    """One node: returns ``(index of the accepted child or -1, residual p or None)``."""
    draft_logits = np.array(draft_logits, np.float64)
    for j, token in enumerate(child_tokens):
        z = draft_logits - draft_logits.max()
        q = np.exp(z) / np.exp(z).sum()
        if p[token] > r[j] * q[token]:
            return j, None
        p = sequoia_get_residual(p, q)
        draft_logits[token] = np.finfo(np.float64).min
    return -1, p


def sequoia_verify(tree, target_probs, draft_probs, u_accept):
    """Sequoia's ``verify`` loop over ``accept_step`` on a DraftTree: ``(path, residual)``."""
    node, path = 0, [0]
    while True:
        kids = [int(c) for c in np.flatnonzero(tree.parents == node)]
        if not kids:
            return path, None  # accepted leaf: Sequoia samples the bonus from p_leaf
        with np.errstate(divide="ignore"):
            logits = np.maximum(np.log(draft_probs[node]), np.finfo(np.float64).min)
        j, res = sequoia_accept_step(target_probs[node], logits,
                                     [int(tree.tokens[c]) for c in kids], u_accept[kids])
        if j < 0:
            return path, res
        node = kids[j]
        path.append(node)

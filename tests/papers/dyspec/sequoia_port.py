"""A NumPy port (own code, same logic) of two functions of Infini-AI-Lab/Sequoia:

- ``Tree/SpecTree.py::SpecTree.accept_step`` and the walk of ``SpecTree.verify``: at a node,
  ``q = softmax(draft_logits / T)``; child accepted iff ``p[token] > r * q[token]``; otherwise
  ``p = get_residual(p, q)`` (``relu(p - q)`` normalised, NaN on an empty residual) and the
  rejected token's draft logit is set to ``finfo.min``; no child accepted (or a leaf): the
  residual ``p`` is the law of the next token (Sequoia samples it with ``multinomial``; the
  port returns the row).
- ``utils.py::sampling_without_replacement``: ``topk(log(rand) / q)`` (an exponential race,
  which orders tokens as sequential sampling without replacement does).

Differences: float64 NumPy instead of torch half/float on CUDA; children given as lists
instead of Sequoia's ``Successors``; the terminal-token checks (ids 0 and 2) are left out.
"""

from __future__ import annotations

import numpy as np


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def get_residual(p, q):
    r = np.maximum(p - q, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return r / r.sum()


def accept_step(p, draft_logits, children, tokens, r, temperature=1.0):
    """-> (accepted node or -1, residual row or None)."""
    draft_logits = draft_logits.copy()
    if len(children) == 0:
        return -1, p
    for pos in children:
        token = tokens[pos]
        q = _softmax(draft_logits / temperature)
        if p[token] > r[pos] * q[token]:
            return pos, None
        p = get_residual(p, q)
        draft_logits[token] = np.finfo(np.float64).min
    return -1, p


def verify(children, tokens, target_probs, draft_logits, r, temperature=1.0):
    """The accept loop of ``SpecTree.verify``: -> (accept_list, residual row)."""
    accept = [0]
    while True:
        pos, res = accept_step(target_probs[accept[-1]], draft_logits[accept[-1]],
                               children[accept[-1]], tokens, r, temperature)
        if pos == -1:
            return accept, res
        accept.append(pos)


def sampling_without_replacement(q, rand, num_samples):
    return np.argsort(-(np.log(rand) / q), kind="stable")[:num_samples]

"""Peers of the verification core.

- Hugging Face assisted generation's chain rule, **the peer's own code**
  (``transformers.generation.utils._speculative_sampling``, torch CPU): the joint law of its
  number of accepted drafts and next token, over 6,000 calls, against the exact law of the
  same chain verified in "iid" mode (:func:`step_emission_distribution`).
- EAGLE's sampling branch of ``evaluate_posterior`` (SafeAILab/EAGLE, ``eagle/model/utils.py``),
  **a NumPy port** written here: it tests each depth's distinct candidate tokens with
  ``r <= p(x)`` (``q = 1``) and on rejection zeroes ``p(x)`` and renormalises, which is the
  "point" rule. Fed the same uniforms, it walks exactly like ``verify_tree_stochastic(...,
  "point")`` on tries (EAGLE's trees hold distinct top-k tokens per node; it addresses nodes by
  their token prefix, which would merge the subtrees of repeated siblings); its ``<=`` differs
  from ``<`` only on a measure-zero set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.decoding.speculative.buffers import retrieve_paths
from refseq.decoding.speculative.exact import step_emission_distribution
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import verify_tree_stochastic

ALPHA = 1e-6


def _l1_radius(k, n):
    """Bretagnolle-Huber-Carol: P(||p_hat - p||_1 >= eps) <= 2**k exp(-n eps**2 / 2)."""
    return math.sqrt(2 * (k * math.log(2) + math.log(1 / ALPHA)) / n)


@pytest.mark.parametrize("seed", [0, 1])
def test_hf_assisted_generation_chain_rule_has_the_exact_law(seed):
    torch = pytest.importorskip("torch")
    utils = pytest.importorskip("transformers.generation.utils")
    rng = np.random.default_rng(seed)
    K, V, n = 3, 5, 6_000
    draft_logits = rng.standard_normal((K, V))
    target_logits = draft_logits[np.r_[0:K, K - 1]] + rng.standard_normal((K + 1, V))
    q = np.exp(draft_logits) / np.exp(draft_logits).sum(-1, keepdims=True)  # (K, V)
    p = np.exp(target_logits) / np.exp(target_logits).sum(-1, keepdims=True)  # (K+1, V)
    drafts = [int(np.argmax(q[0]))] + [int(rng.choice(V, p=q[j])) for j in range(1, K)]
    ctx = torch.tensor([[0, 1] + drafts])  # two context tokens, then the K candidates
    cand = torch.tensor(draft_logits[None], dtype=torch.float64)
    new = torch.tensor(target_logits[None], dtype=torch.float64)
    torch.manual_seed(seed)
    counts, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add contention
    try:
        for _ in range(n):
            tokens, _ = utils._speculative_sampling(ctx, cand, K, new)
            key = tuple(int(t) for t in tokens[0])
            counts[key] = counts.get(key, 0) + 1
    finally:
        torch.set_num_threads(threads)
    tree = DraftTree.chain(1, drafts)
    want = step_emission_distribution(tree, p, np.vstack([q, q[-1:]]), "iid")
    keys = set(counts) | set(want)
    l1 = sum(abs(counts.get(e, 0) / n - want.get(e, 0.0)) for e in keys)
    eps = _l1_radius((K + 1) * V, n)
    assert l1 < eps, (l1, eps)
    # power: the law of the same chain under the point rule is far outside the radius
    wrong = step_emission_distribution(tree, p, None, "point")
    assert sum(abs(counts.get(e, 0) / n - wrong.get(e, 0.0)) for e in set(counts) | set(wrong)) \
        > 3 * eps


def _eagle_sampling_posterior(candidates, rows, node_of, probs, uniform):
    """Port of EAGLE's ``evaluate_posterior`` sampling branch (T > 0) on token rows.

    ``candidates (P, D+1)`` token rows (root first, -1 padded), ``node_of (P, D+1)`` the node of
    each entry, ``probs[node]`` the target law after it, ``uniform(node)`` the uniform drawn for
    testing that node's token. Returns ``(accepted tokens, sample_p)``.
    """
    P, W = candidates.shape
    accept_length, accept_cand, best = 1, list(candidates[0, :1]), 0
    adjust, gtp = False, None
    for i in range(1, W):
        if i != accept_length:
            break
        adjust = False
        is_eq = [list(candidates[j, :accept_length]) == accept_cand for j in range(P)]
        fi = is_eq.index(True)
        gtp = probs[node_of[fi, i - 1]].copy()
        seen = []
        for j in range(P):
            if not is_eq[j]:
                continue
            x = int(candidates[j, i])
            if x in seen or x == -1:
                continue
            seen.append(x)
            if uniform(node_of[j, i]) <= gtp[x] / 1.0:  # q(x) = 1: a deterministic candidate
                accept_cand.append(x)
                accept_length += 1
                best = j
                break
            gtp[x] = 0.0
            gtp = gtp / gtp.sum()
            adjust = True
    if adjust and accept_length != W:
        sample_p = gtp
    else:
        sample_p = probs[node_of[best, accept_length - 1]]
    return accept_cand[1:], sample_p


def _dfs_rows(tree):
    """Root-to-leaf rows with leaves in depth-first order (children by index), as EAGLE's
    candidate rows list them, so that siblings first appear in index order."""
    retrieve, length = retrieve_paths(tree)
    order = sorted(range(len(length)), key=lambda r: tuple(retrieve[r, :length[r]]))
    return retrieve[order], length[order]


@pytest.mark.parametrize("seed", range(40))
def test_eagle_sampling_branch_port_walks_like_point_mode(seed):
    rng = np.random.default_rng(seed)
    V, n = 4, int(rng.integers(2, 12))
    parents, tokens = [-1], [0]
    for i in range(1, n):  # a trie: distinct tokens among siblings
        u = int(rng.integers(max(0, i - 3), i))
        used = {tokens[c] for c in range(i) if parents[c] == u}
        free = [t for t in range(V) if t not in used]
        if not free:
            u, free = i - 1, list(range(V))  # the newest node has no children yet
        parents.append(u)
        tokens.append(int(rng.choice(free)))
    tree = DraftTree(np.array(parents), np.array(tokens))
    probs = rng.dirichlet(np.full(V, 0.7), n)  # (n, V)
    u_accept, u_final = rng.random(n), float(rng.random())
    want = verify_tree_stochastic(tree, probs, None, "point", u_accept, u_final)
    nodes, length = _dfs_rows(tree)
    cand = np.where(nodes >= 0, tree.tokens[np.maximum(nodes, 0)], -1)
    accepted, sample_p = _eagle_sampling_posterior(cand, None, nodes, probs, lambda i: u_accept[i])
    assert accepted == [int(t) for t in want.accepted_tokens]
    cdf = np.cumsum(sample_p)  # EAGLE draws with torch.multinomial; the port by inverse CDF
    nxt = int(np.flatnonzero((sample_p > 0) & (cdf > u_final * cdf[-1]))[0])
    assert nxt == want.next_token

"""Batched DySpec generation: one tree per row, one batched target forward, the batched
verification kernels of the tree-verification hot path (Xiong et al., arXiv 2410.11744, Sec. 5;
the kernels: :mod:`refseq.tree_verify`).

Rows build their own trees (sizes differ under the threshold builder), the trees are packed into
a :class:`~refseq.decoding.speculative.batch.TreeBatch` padded to the largest, the target scores
them in one :class:`~refseq.decoding.speculative.target.BatchedTreeLM` forward, and
:func:`~refseq.tree_verify.tree_verify_stochastic` (``mode = 1``, "wor") or
:func:`~refseq.tree_verify.tree_verify_greedy` decides every row. Each row then compacts its
target cache and its draft cache to its own path. Rows finish independently (EOS or
``max_new_tokens``); a finished row is carried along with a root-only tree and ignored.

Row b with random stream ``rngs[b]`` gives exactly what
:func:`~refseq.papers.dyspec.generate.dyspec_generate` gives on row b alone with the same stream:
per step, the draft tokens are drawn first, then ``u_accept (N_b,)`` and ``u_final``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq import tree_verify as tv
from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.dyspec.generate import DySpecDrafter, _same_vocab
from refseq.papers.dyspec.samplers import InverseCdfSampler

__all__ = ["dyspec_generate_batch"]


def _cut(tokens, eos_id, room):
    if eos_id is not None and eos_id in tokens:
        tokens = tokens[: tokens.index(eos_id) + 1]
    return tokens[:room]


class _Result:
    """What ``observe`` reads of a verification result."""

    def __init__(self, path):
        self.path = path


def dyspec_generate_batch(target, drafts, prompts, max_new_tokens, *, budget=64,
                          threshold=None, max_nodes=None, lazy=True, target_temperature=0.0,
                          top_p=1.0, rngs=None, eos_id=None, backend="numpy"):
    """DySpec on ``B`` rows at once.

    Parameters
    ----------
    target : BatchedTreeLM
    drafts : list of B DraftLM
        One draft model per row, B distinct objects (each keeps its own cache), over the
        target's vocabulary.
    prompts : list of B (n_b,) int arrays
    max_new_tokens : int >= 0
    budget, threshold, max_nodes, lazy, target_temperature, top_p, eos_id :
        As in :func:`~refseq.papers.dyspec.generate.dyspec_generate`.
    rngs : list of B numpy Generators or int seeds, optional
        Row b's stream (draft tokens, then the verification uniforms, per step).
    backend : "numpy" | "jit" | "cuda"
        Tier of the verification kernels.

    Returns
    -------
    tokens : list of B ndarrays (n_new_b,) int64
    stats : list of B DySpecStats
    """
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise TypeError("prompts must be a non-empty list of 1-d token arrays")
    B = len(prompts)
    if not isinstance(drafts, (list, tuple)) or len(drafts) != B:
        raise TypeError(f"drafts must be a list of B = {B} DraftLM (one per row)")
    V = _same_vocab(target, drafts[0], "drafts[0]")
    for b, d in enumerate(drafts[1:], 1):
        _same_vocab(target, d, f"drafts[{b}]")
    if len({id(d) for d in drafts}) != B:
        raise ValueError("drafts must be B distinct DraftLM objects (each row keeps its own "
                         "draft cache)")
    for b, p in enumerate(prompts):
        p = np.asarray(p) if not isinstance(p, (list, tuple)) or len(p) else np.zeros(0, int)
        _checks.int_array(p, f"prompts[{b}]", ndim=1, low=0, high=V, form="(n_b,)")
        if p.size == 0:
            raise ValueError(f"prompts[{b}] must hold at least one token (its last token is "
                             f"the first root)")
    rngs = [None] * B if rngs is None else rngs
    if not isinstance(rngs, (list, tuple)) or len(rngs) != B:
        raise TypeError(f"rngs must be a list of B = {B} generators or seeds")
    rngs = [_checks.check_rng(r, f"rngs[{b}]") for b, r in enumerate(rngs)]
    n_max = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=0)
    T = _checks.check_number(target_temperature, "target_temperature", low=0)
    top_p = _checks.check_number(top_p, "top_p", low=0, high=1, low_open=True)
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    drafters = [DySpecDrafter(d, budget=budget, threshold=threshold, max_nodes=max_nodes,
                              lazy=lazy, sampler=InverseCdfSampler(r))
                for d, r in zip(drafts, rngs)]
    outs = [[] for _ in range(B)]
    done = [n_max == 0] * B
    if all(done):
        return [np.zeros(0, np.int64) for _ in range(B)], [dr.stats for dr in drafters]
    target.prefill(list(prompts))
    prompts = [np.asarray(p, np.int64) for p in prompts]
    ctx = [list(p[:-1]) for p in prompts]
    root = [int(p[-1]) for p in prompts]
    while not all(done):
        trees, qs = [], []
        for b in range(B):
            if done[b]:
                trees.append(DraftTree.chain(root[b], np.zeros(0, np.int64)))
                qs.append(np.zeros((1, target.vocab_size)))
            else:
                tree, q, _ = drafters[b].draft(np.array(ctx[b], np.int64), root[b])
                trees.append(tree)
                qs.append(q)
        logits, hidden = target.forward_tree(trees)  # (B, N, V)
        tb = TreeBatch.from_trees(trees)
        N = tb.n_max
        if T == 0:
            path, m, nxt = tv.tree_verify_greedy(tb.parents, tb.tokens,
                                                 np.argmax(logits, axis=-1), tb.num_nodes,
                                                 backend=backend)
        else:
            p = warped_probs(logits.reshape(B * N, -1), temperature=T, top_k=0,
                             top_p=top_p).reshape(B, N, -1)
            q = np.zeros_like(p)
            u_acc, u_fin = np.zeros((B, N)), np.zeros(B)
            for b in range(B):
                q[b, :qs[b].shape[0]] = qs[b]
                if not done[b]:
                    u_acc[b, :trees[b].num_nodes] = rngs[b].random(trees[b].num_nodes)
                    u_fin[b] = rngs[b].random()
            path, m, nxt = tv.tree_verify_stochastic(tb.parents, tb.tokens, p, q, "wor", None,
                                                     u_acc, u_fin, tb.num_nodes,
                                                     backend=backend)
        target.commit(path)
        for b in range(B):
            if done[b]:
                continue
            pb = path[b, : m[b] + 1].astype(np.int64)
            drafters[b].observe(trees[b], logits[b], hidden[b], _Result(pb))
            step = [int(t) for t in trees[b].tokens[pb[1:]]] + [int(nxt[b])]
            kept = _cut(step, eos_id, n_max - len(outs[b]))
            outs[b] += kept
            st = drafters[b].stats.spec
            st.tree_size.append(trees[b].num_nodes)
            st.depth.append(trees[b].max_depth)
            st.num_accepted.append(int(m[b]))
            st.emitted.append(len(kept))
            st.target_calls.append(st.steps)
            if len(kept) < len(step) or len(outs[b]) >= n_max or \
                    (eos_id is not None and eos_id in kept):
                done[b] = True
            ctx[b] += [root[b]] + step[:-1]
            root[b] = step[-1]
    return [np.array(o, np.int64) for o in outs], [dr.stats for dr in drafters]


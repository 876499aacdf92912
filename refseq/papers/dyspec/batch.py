"""Batched DySpec generation: one tree per row, one batched target forward, the batched
verification kernels of the tree-verification hot path (Xiong et al., arXiv 2410.11744, Sec. 5;
the kernels: :mod:`refseq.tree_verify`), through the core's batched engine
:func:`~refseq.decoding.speculative.batched.speculative_generate_batch`.

Rows build their own trees (sizes differ under the threshold builder), the trees are padded into
a :class:`~refseq.decoding.speculative.batch.TreeBatch`, the target scores them in one
:class:`~refseq.decoding.speculative.target.BatchedTreeLM` forward, and
:func:`~refseq.tree_verify.tree_verify_stochastic` (``mode = 1``, "wor") or
:func:`~refseq.tree_verify.tree_verify_greedy` decides every row. Each row then compacts its
target cache and its draft cache to its own path. Rows finish independently (EOS or
``max_new_tokens``).

Row b with random stream ``rngs[b]`` gives exactly what
:func:`~refseq.papers.dyspec.generate.dyspec_generate` gives on row b alone with the same stream:
per step, the draft tokens are drawn first, then ``u_accept (N_b,)`` and ``u_final``.
"""

from __future__ import annotations

from refseq import _checks
from refseq.decoding.speculative.batched import (
    _batch_size,
    _row_rngs,
    speculative_generate_batch,
)
from refseq.papers.dyspec.generate import DySpecDrafter, _same_vocab
from refseq.papers.dyspec.samplers import InverseCdfSampler

__all__ = ["dyspec_generate_batch"]


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
    B = _batch_size(prompts)
    if not isinstance(drafts, (list, tuple)) or len(drafts) != B:
        raise TypeError(f"drafts must be a list of B = {B} DraftLM (one per row)")
    for b, d in enumerate(drafts):
        _same_vocab(target, d, f"drafts[{b}]")
    if len({id(d) for d in drafts}) != B:
        raise ValueError("drafts must be B distinct DraftLM objects (each row keeps its own "
                         "draft cache)")
    rngs = _row_rngs(rngs, B)
    T = _checks.check_number(target_temperature, "target_temperature", low=0)
    drafters = [DySpecDrafter(d, budget=budget, threshold=threshold, max_nodes=max_nodes,
                              lazy=lazy, sampler=InverseCdfSampler(r))
                for d, r in zip(drafts, rngs)]
    tokens, stats = speculative_generate_batch(target, drafters, prompts, max_new_tokens,
                                               temperature=T, top_p=top_p, mode="wor",
                                               eos_id=eos_id, rngs=rngs, backend=backend)
    for dr, st in zip(drafters, stats):
        dr.stats.spec = st
    return tokens, [dr.stats for dr in drafters]

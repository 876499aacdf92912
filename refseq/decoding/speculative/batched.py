"""Batched speculative decoding: one draft tree per row, one batched target forward, the batched
kernels of the tree-verification hot path (:mod:`refseq.tree_verify`).

One step for ``B`` rows (the loop of :func:`~refseq.decoding.speculative.engine.
speculative_generate`, row by row where it must be, batched where it can be):

1. ``before_draft(contexts, roots, active)`` if given (shared adaptive state, updated in row
   order before any row drafts); then ``drafters[b].draft(context_b, root_b)`` for every active
   row, in row order. A finished row is carried along with a root-only tree and ignored.
2. ``logits, hidden = target.forward_tree(trees)`` — one call, ``(B, N_max, V)``.
3. The trees are padded into a :class:`~refseq.decoding.speculative.batch.TreeBatch` and
   :func:`~refseq.tree_verify.tree_verify_greedy` (``temperature == 0``, arg-max ties to the
   lowest index) or :func:`~refseq.tree_verify.tree_verify_stochastic` decides every row at once
   (``backend`` picks the tier).
4. ``target.commit(paths)``; then per row: ``observe``, emit, cut at EOS / ``max_new_tokens``.

Row b with stream ``rngs[b]`` gives exactly what ``speculative_generate`` gives on row b alone
with the same stream when the batched target's rows equal the single-row target: per step the
row draws ``u_accept (N_b,)`` then ``u_final`` from ``rngs[b]``, after its drafter has drawn
(pass the same generator to a random drafter to share one stream, as the single-row call does).
:class:`RowsTreeLM` stacks single-row targets into the batched interface, exactly.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq import tree_verify as tv
from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.engine import (
    MODES,
    SpecStats,
    _check_common,
    _cut,
    _warp_kw,
)
from refseq.decoding.speculative.greedy import VerifyResult
from refseq.decoding.speculative.tree import DraftTree
from refseq.tiers import check_backend

__all__ = ["RowsTreeLM", "speculative_generate_batch"]

_TARGET = ("prefill", "forward_tree", "commit")


class RowsTreeLM:
    """``B`` single-row TreeLMs behind the batched interface of
    :class:`~refseq.decoding.speculative.target.BatchedTreeLM`: row ``b`` is ``targets[b]``
    exactly (one forward per row, so no batched rounding).

    ``prefill(prompts)`` -> ``(B, V)``, ``(B, D)``; ``forward_tree(trees)`` -> ``logits (B, N_max,
    V)``, ``hidden (B, N_max, D)``, zeros on padding rows; ``commit(paths (B, P))``, ``-1``-padded.
    """

    def __init__(self, targets):
        if not isinstance(targets, (list, tuple)) or not targets:
            raise TypeError("targets must be a non-empty list of TreeLM (one per row)")
        for b, t in enumerate(targets):
            _checks.check_methods(t, f"targets[{b}]", _TARGET,
                                  "a TreeLM (prefill, forward_tree and commit methods)")
        if len({id(t) for t in targets}) != len(targets):
            raise ValueError("targets must be distinct objects (each row keeps its own cache)")
        sizes = {int(t.vocab_size) for t in targets}
        if len(sizes) != 1:
            raise ValueError(f"targets must share one vocab_size, got {sorted(sizes)}")
        self.targets, self.vocab_size = list(targets), sizes.pop()

    def _rows(self, xs, name):
        if not isinstance(xs, (list, tuple)) or len(xs) != len(self.targets):
            raise TypeError(f"{name} must be a list of B = {len(self.targets)} entries")
        return xs

    def prefill(self, prompts):
        outs = [t.prefill(p) for t, p in zip(self.targets, self._rows(prompts, "prompts"))]
        return (np.stack([np.asarray(o[0]) for o in outs]),
                np.stack([np.asarray(o[1]) for o in outs]))

    def forward_tree(self, trees):
        outs = [t.forward_tree(tr) for t, tr in zip(self.targets, self._rows(trees, "trees"))]
        for b, (o, tr) in enumerate(zip(outs, trees)):
            if np.shape(o[0]) != (tr.num_nodes, self.vocab_size):
                raise ValueError(f"targets[{b}].forward_tree returned logits of shape "
                                 f"{np.shape(o[0])}, not (N, V) = "
                                 f"({tr.num_nodes}, {self.vocab_size})")
        N = max(np.asarray(o[0]).shape[0] for o in outs)
        logits = np.zeros((len(outs), N, self.vocab_size), np.asarray(outs[0][0]).dtype)
        hidden = np.zeros((len(outs), N, np.asarray(outs[0][1]).shape[-1]),
                          np.asarray(outs[0][1]).dtype)
        for b, (lg, hd) in enumerate(outs):
            logits[b, : len(lg)], hidden[b, : len(hd)] = lg, hd
        return logits, hidden

    def commit(self, paths):
        paths = _checks.int_array(paths, "paths", ndim=2, low=-1, form="(B, P)")
        _checks.check_shape(paths, (len(self.targets), paths.shape[1]), "paths", "(B, P)")
        for t, p in zip(self.targets, paths):
            t.commit(p[p >= 0])


def _rows_arg(xs, B, name, what):
    if not isinstance(xs, (list, tuple)) or len(xs) != B:
        raise TypeError(f"{name} must be a list of B = {B} {what}")
    return list(xs)


def _batch_size(prompts) -> int:
    """B, from a non-empty list of prompts (each checked later against the target)."""
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise TypeError("prompts must be a non-empty list of 1-d token arrays")
    return len(prompts)


def _row_rngs(rngs, B, name="rngs"):
    """B generators from ``None`` or a list of B generators / seeds (the batched callers'
    per-row streams)."""
    rngs = [None] * B if rngs is None else _rows_arg(rngs, B, name, "generators or seeds")
    return [_checks.check_rng(r, f"{name}[{b}]") for b, r in enumerate(rngs)]


def _check_batch_args(target, drafters, prompts, rngs):
    B = _batch_size(prompts)
    drafters = _rows_arg(drafters, B, "drafters", "Drafters (one per row)")
    for b, d in enumerate(drafters):
        _checks.check_methods(d, f"drafters[{b}]", ("start", "draft", "observe"),
                              "a Drafter (start, draft and observe methods)")
    if len({id(d) for d in drafters}) != B:
        raise ValueError("drafters must be B distinct objects (each row keeps its own state)")
    checked = []
    for b, p in enumerate(prompts):
        V, p, _ = _check_common(target, p, None, name=f"prompts[{b}]")
        checked.append(p)
    return V, checked, drafters, _row_rngs(rngs, B)


def _verify(trees, qs, modes, logits, T, warp_kw, mode, rngs, active, backend):
    """Batched verification of one step: ``(path (B, P), num_accepted (B,), next (B,))``."""
    tb = TreeBatch.from_trees(trees)
    B, N = tb.batch_size, tb.n_max
    if T == 0:
        return tv.tree_verify_greedy(tb.parents, tb.tokens, np.argmax(logits, axis=-1),
                                     tb.num_nodes, backend=backend)
    use = {modes[b] if mode == "auto" else mode for b in range(B) if active[b]}
    if len(use) != 1:
        raise ValueError(f"the active rows' drafters use different verification modes "
                         f"{sorted(use)}: a batch verifies in one mode (pass mode=...)")
    use = use.pop()
    p = warped_probs(logits.reshape(B * N, -1), **warp_kw).reshape(B, N, -1)  # float64
    q = None
    if any(x is not None for x in qs):
        q = np.zeros_like(p)
        for b, x in enumerate(qs):
            if x is not None:
                q[b, : x.shape[0]] = x
    u_acc, u_fin = np.zeros((B, N)), np.zeros(B)
    for b in range(B):
        if active[b]:  # the row's draws, in the single-row engine's order
            u_acc[b, : trees[b].num_nodes] = rngs[b].random(trees[b].num_nodes)
            u_fin[b] = rngs[b].random()
    return tv.tree_verify_stochastic(tb.parents, tb.tokens, p, q, use, tb.virtual, u_acc, u_fin,
                                     tb.num_nodes, backend=backend)


def speculative_generate_batch(target, drafters, prompts, max_new_tokens, *, temperature=0.0,
                               top_k=0, top_p=1.0, mode="auto", eos_id=None, rngs=None,
                               backend="numpy", before_draft=None, max_steps=None):
    """Speculative decoding of ``B`` rows at once (module docstring for the step).

    Parameters
    ----------
    target : batched TreeLM over B rows (``BatchedTreeLM``, :class:`RowsTreeLM`)
    drafters : list of B Drafters, distinct objects (they may share state, e.g. one table)
    prompts : list of B (n_b,) int arrays, n_b >= 1 (lengths may differ)
    max_new_tokens : int >= 0, per row
    temperature, top_k, top_p : the target's warping; ``temperature == 0`` is greedy.
    mode : {"auto", "iid", "wor", "point"}
        Verification rule for sampling; "auto" takes the drafters' (which must agree).
    eos_id : int, optional
        A row stops after this token (kept).
    rngs : list of B generators or int seeds, optional
        Row b's verification uniforms.
    backend : "numpy" | "jit" | "cuda"
        Tier of the verification kernels.
    before_draft : callable, optional
        ``before_draft(contexts, roots, active)`` once per step before any row drafts
        (``contexts[b]`` the committed tokens before ``roots[b]``; ``active[b]`` False for
        finished rows).
    max_steps : int, optional
        Stop after this many batched steps.

    Returns
    -------
    tokens : list of B ndarrays (n_new_b,) int64
    stats : list of B SpecStats
    """
    V, prompts, drafters, rngs = _check_batch_args(target, drafters, prompts, rngs)
    B = len(prompts)
    n_max = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=0)
    T, warp_kw = _warp_kw(temperature, top_k, top_p, allow_zero=True)
    mode = _checks.check_choice(mode, "mode", ("auto",) + MODES)
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    check_backend(backend)
    if before_draft is not None and not callable(before_draft):
        raise TypeError(f"before_draft must be callable or None, got "
                        f"{type(before_draft).__name__}")
    max_steps = _checks.check_number(max_steps, "max_steps", integer=True, low=1,
                                     allow_none=True)
    outs, stats = [[] for _ in range(B)], [SpecStats() for _ in range(B)]
    active = [n_max > 0] * B
    if not any(active):
        return [np.zeros(0, np.int64) for _ in range(B)], stats
    logits0, hidden0 = target.prefill(list(prompts))
    for b, d in enumerate(drafters):
        d.start(prompts[b], (logits0[b], hidden0[b]))
    ctx = [list(p[:-1]) for p in prompts]
    root = [int(p[-1]) for p in prompts]
    steps = 0
    while any(active) and (max_steps is None or steps < max_steps):
        if before_draft is not None:
            before_draft([np.array(c, np.int64) for c in ctx], list(root), list(active))
        trees, qs, modes = [], [], []
        for b in range(B):
            if not active[b]:
                trees.append(DraftTree.chain(root[b], np.zeros(0, np.int64)))
                qs.append(None)
                modes.append(None)
                continue
            tree, q, d_mode = drafters[b].draft(np.array(ctx[b], np.int64), root[b])
            _checks.check_instance(tree, DraftTree, f"drafters[{b}].draft()[0]", "DraftTree")
            if int(tree.tokens[0]) != root[b]:
                raise ValueError(f"drafters[{b}].draft returned a tree whose root token "
                                 f"{tree.tokens[0]} is not the root {root[b]}")
            if q is not None:
                q = np.asarray(q)
                if q.ndim != 2 or q.shape[0] > tree.num_nodes or q.shape[1] != V:
                    raise ValueError(f"drafters[{b}].draft()[1] (draft_probs) must have shape "
                                     f"(N, V) = ({tree.num_nodes}, {V}), got {q.shape}")
            trees.append(tree)
            qs.append(q)
            modes.append(d_mode)
        logits, hidden = target.forward_tree(trees)  # (B, N, V), (B, N, D)
        want = (B, max(t.num_nodes for t in trees), V)
        if np.shape(logits) != want:
            raise ValueError(f"target.forward_tree(trees) must return logits of shape "
                             f"(B, N_max, V) = {want}, got {np.shape(logits)}")
        path, m, nxt = _verify(trees, qs, modes, logits, T, warp_kw, mode, rngs, active,
                               backend)
        target.commit(path)
        steps += 1
        for b in range(B):
            if not active[b]:
                continue
            pb = path[b, : m[b] + 1]
            res = VerifyResult(pb, trees[b].tokens[pb[1:]].astype(np.int32), int(nxt[b]),
                               int(m[b]))
            n_b = trees[b].num_nodes
            drafters[b].observe(trees[b], logits[b, :n_b], hidden[b, :n_b], res)
            step = [int(t) for t in res.accepted_tokens] + [int(nxt[b])]
            kept = _cut(step, eos_id, n_max - len(outs[b]))
            outs[b] += kept
            st = stats[b]
            st.tree_size.append(n_b)
            st.depth.append(trees[b].max_depth)
            st.num_accepted.append(int(m[b]))
            st.emitted.append(len(kept))
            st.target_calls.append(st.steps)
            if len(kept) < len(step) or len(outs[b]) >= n_max or \
                    (eos_id is not None and eos_id in kept):
                active[b] = False
            ctx[b] += [root[b]] + step[:-1]
            root[b] = step[-1]
    return [np.array(o, np.int64) for o in outs], stats

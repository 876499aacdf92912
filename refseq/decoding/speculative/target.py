"""The target model of speculative decoding: one forward pass scores a whole draft tree.

Protocol :class:`TreeLM` (docs/speculative.md, "Target, KV cache and the engine"):

===============================  ============================================================
``prefill(tokens (n,))``         run the prompt; cache ``tokens[:-1]`` (``n_past = n - 1``);
                                 the last token is the first root, committed but not cached;
                                 returns ``(logits_last (V,), hidden_last (d,))``
``forward_tree(tree)``           rows in node order: ``logits (N, V)``, ``hidden (N, d)``;
                                 ``logits[i]`` predicts the child of node ``i``; rows of
                                 ``virtual`` nodes are zeros; appends the non-virtual nodes'
                                 KV slots after the ``n_past`` committed ones
``commit(path (m+1,))``          keep the root and the accepted nodes (``n_past += m + 1``)
``n_past``, ``vocab_size``       committed-and-cached length, V
===============================  ============================================================

Tree attention (SpecInfer, arXiv 2305.09781, Sec. 4.2; Medusa, arXiv 2401.10774, Sec. 2.1.2):
node ``i`` attends to every cached slot and to its ancestors and itself, at position
``n_past + depth(i)``; then ``logits[i]`` equals the last logits of a linear forward over
``c, r, path(i)`` (context, root, the tokens below the root on the way to ``i``).

``hidden`` is the input of the unembedding (the final-normed last layer), the feature that
Medusa, EAGLE and Chimera read; :class:`TabularTreeLM` has none (``d = 0``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.buffers import attention_mask, position_ids
from refseq.decoding.speculative.kv import commit_path
from refseq.decoding.speculative.tree import DraftTree
from refseq.models.tiny_transformer import final_norm, forward
from refseq.models.tiny_transformer.params import check_params

__all__ = ["BatchedTreeLM", "TabularTreeLM", "TinyTransformerTreeLM", "TreeLM"]


@runtime_checkable
class TreeLM(Protocol):
    """A target model that scores draft trees (see the module docstring for the contract)."""

    vocab_size: int
    n_past: int

    def prefill(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def forward_tree(self, tree: DraftTree) -> tuple[np.ndarray, np.ndarray]: ...

    def commit(self, path: np.ndarray) -> None: ...


def _prompt(tokens, V: int, name: str = "tokens") -> np.ndarray:
    t = _checks.int_array(tokens, name, ndim=1, low=0, high=V, form="(n,)")
    if t.size == 0:
        raise ValueError(f"{name} must hold at least one token (the last one becomes the root)")
    return t.astype(np.int64)


def _tree(tree, V: int, name: str = "tree") -> DraftTree:
    _checks.check_instance(tree, DraftTree, name)
    tree.validate()
    if tree.tokens.size and (tree.tokens.min() < 0 or tree.tokens.max() >= V):
        raise ValueError(f"{name}.tokens must lie in [0, V) = [0, {V}), got "
                         f"[{tree.tokens.min()}, {tree.tokens.max()}]")
    return tree


def _real(tree: DraftTree) -> np.ndarray:
    """Node ids of the non-virtual nodes, in node order."""
    if tree.virtual is None:
        return np.arange(tree.num_nodes)
    return np.flatnonzero(~np.asarray(tree.virtual, bool))


def _slots(tree: DraftTree | None, path) -> np.ndarray:
    """Map an accepted path of node ids to the tree-block slots of the pending ``tree``."""
    if tree is None:
        raise ValueError("commit needs a tree scored by forward_tree first (none is pending)")
    path = _checks.int_array(path, "path", ndim=1, low=0, high=tree.num_nodes, form="(m+1,)")
    slot = np.full(tree.num_nodes, -1, np.int64)  # (N,) node -> slot in the tree block
    real = _real(tree)
    slot[real] = np.arange(real.size)
    if np.any(slot[path] < 0):
        raise ValueError(f"path must not contain virtual nodes, got {path.tolist()}")
    return slot[path]


class TinyTransformerTreeLM:
    """:class:`TreeLM` over :func:`refseq.models.tiny_transformer.forward` with a KV cache.

    Parameters
    ----------
    params : TinyParams
        The model (float32 or float64; logits, hidden states and cache keep its dtype).

    Attributes
    ----------
    n_past : int
        Committed slots in ``cache``.
    cache : ndarray (L, 2, H, S, Dh)
        ``cache[..., :n_past, :]`` is the committed prefix; after :meth:`forward_tree` the
        tree's non-virtual nodes follow in node order until :meth:`commit`.
    """

    def __init__(self, params):
        self.params = params
        self.config = check_params(params)
        self.vocab_size = self.config.vocab_size
        self.n_past = 0
        self.cache = None
        self._pending = None

    def prefill(self, tokens):
        """Run ``tokens (n,)``; cache all but the last (the first root). -> ``(V,)``, ``(D,)``."""
        t = _prompt(tokens, self.vocab_size)
        logits, hidden, kv = forward(self.params, tokens=t)  # (n, V), kv (L, 2, H, n, Dh)
        self.cache = kv[..., : t.size - 1, :].copy()  # the root's slot is not cached
        self.n_past, self._pending = t.size - 1, None
        return logits[-1], final_norm(self.params, hidden[-1][-1])

    def forward_tree(self, tree):
        """Score every node of ``tree`` (root = the last committed token) in one forward.

        Returns ``logits (N, V)`` and ``hidden (N, D)`` in node order, zeros on virtual rows.
        Calling it again before :meth:`commit` discards the previous tree's slots.
        """
        if self.cache is None:
            raise ValueError("call prefill before forward_tree")
        tree = _tree(tree, self.vocab_size)
        real = _real(tree)  # (N',)
        mask = attention_mask(tree, self.n_past)  # (N, n_past + N)
        cols = np.concatenate([np.arange(self.n_past), self.n_past + real])
        allow = mask[np.ix_(real, cols)]  # (N', n_past + N') virtual rows and columns dropped
        pos = position_ids(tree, self.n_past)[real]  # (N',)
        past = self.cache[..., : self.n_past, :]
        lg, hid, kv = forward(self.params, tokens=tree.tokens[real].astype(np.int64),
                              positions=pos, allow_mask=allow, past_kv=past)  # (N', V)
        N, V = tree.num_nodes, self.vocab_size
        logits = np.zeros((N, V), lg.dtype)
        hidden = np.zeros((N, self.config.d_model), lg.dtype)
        logits[real] = lg
        hidden[real] = final_norm(self.params, hid[-1])  # (N', D)
        self.cache, self._pending = kv, tree  # (L, 2, H, n_past + N', Dh)
        return logits, hidden

    def commit(self, path):
        """Keep the root and the accepted nodes of the pending tree (``n_past += m + 1``)."""
        slots = _slots(self._pending, path)
        self.n_past = commit_path(self.cache, self.n_past, slots)
        self.cache = self.cache[..., : self.n_past, :]
        self._pending = None


class TabularTreeLM:
    """:class:`TreeLM` over any ``StepLM`` without a cache (e.g. a ``TabularLM``).

    ``forward_tree`` re-reads each node's full prefix ``c, r, path(i)`` through ``lm.start``
    (one batched call per tree), the obvious O(N n) reference. ``hidden`` has width 0.

    Parameters
    ----------
    lm : StepLM
        ``start(prompts) -> (logits (R, V), state)`` is all that is used.
    """

    def __init__(self, lm):
        _checks.check_methods(lm, "lm", ("start", "step", "reorder"),
                              "a StepLM (start, step and reorder methods, e.g. TabularLM)")
        self.lm = lm
        self.vocab_size = int(lm.vocab_size)
        self.n_past = 0
        self.committed = None  # (n_past,) the committed tokens before the root
        self._pending = None

    def _logits(self, prefixes) -> np.ndarray:
        lg, _ = self.lm.start(prefixes)
        return log_softmax(np.asarray(lg))  # (R, V) float64

    def prefill(self, tokens):
        """Commit ``tokens[:-1]``; the last token is the first root. -> ``(V,)``, ``(0,)``."""
        t = _prompt(tokens, self.vocab_size)
        self.committed, self.n_past, self._pending = t[:-1].copy(), t.size - 1, None
        return self._logits([t])[0], np.zeros(0)

    def forward_tree(self, tree):
        """``logits[i] = log p(. | c, r, path(i))`` (float64), zeros on virtual rows."""
        if self.committed is None:
            raise ValueError("call prefill before forward_tree")
        tree = _tree(tree, self.vocab_size)
        real = _real(tree)
        prefixes = []
        for i in real:
            nodes = [int(i)]
            while tree.parents[nodes[-1]] >= 0:
                nodes.append(int(tree.parents[nodes[-1]]))
            prefixes.append(np.concatenate([self.committed, tree.tokens[nodes[::-1]]]))
        logits = np.zeros((tree.num_nodes, self.vocab_size))
        logits[real] = self._logits(prefixes)  # (N', V)
        self._pending = tree
        return logits, np.zeros((tree.num_nodes, 0))

    def commit(self, path):
        """Append the root and the accepted tokens to the committed context."""
        _slots(self._pending, path)  # validates path against the pending tree
        path = np.asarray(path)
        self.committed = np.concatenate([self.committed, self._pending.tokens[path]])
        self.n_past, self._pending = self.committed.size, None


class BatchedTreeLM:
    """``B`` independent sequences of a tiny transformer, one batched forward per tree batch.

    Row ``b`` has its own committed length ``n_past[b]``; the batched cache
    ``(B, L, 2, H, S, Dh)`` holds row ``b``'s committed slots in ``[0, n_past[b])`` and its
    tree's non-virtual nodes from ``n_past[b]`` on (the layout :func:`commit_path` compacts).
    A batched forward needs one block of columns for all rows, so the forward sees the first
    ``max(n_past)`` slots with row ``b``'s stale columns masked out, and the new slots are moved
    to ``n_past[b] ..`` afterwards. Rows are independent: row ``b`` gives what
    :class:`TinyTransformerTreeLM` gives on row ``b`` alone (to rounding of the batched matmuls).
    """

    def __init__(self, params):
        self.params = params
        self.config = check_params(params)
        self.vocab_size = self.config.vocab_size
        self.n_past = None  # (B,) int64
        self.cache = None
        self._pending = None

    def prefill(self, prompts):
        """``prompts``: list of ``B`` token arrays (lengths may differ). -> ``(B, V)``, ``(B, D)``.
        """
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise TypeError("prompts must be a non-empty list of 1-d token arrays")
        ts = [_prompt(p, self.vocab_size, f"prompts[{b}]") for b, p in enumerate(prompts)]
        cfg, B = self.config, len(ts)
        n = np.array([t.size for t in ts], np.int64) - 1  # (B,) cached lengths
        self.cache = np.zeros((B, cfg.n_layers, 2, cfg.n_heads, int(n.max()), cfg.d_head),
                              cfg.np_dtype)
        logits, hidden = [], []
        for b, t in enumerate(ts):  # prompts differ in length: one plain forward per row
            lg, hid, kv = forward(self.params, tokens=t)
            self.cache[b, ..., : n[b], :] = kv[..., : n[b], :]
            logits.append(lg[-1])
            hidden.append(final_norm(self.params, hid[-1][-1]))
        self.n_past, self._pending = n, None
        return np.stack(logits), np.stack(hidden)

    def forward_tree(self, trees):
        """``trees``: list of ``B`` DraftTrees. -> ``logits (B, N_max, V)``, ``hidden (B, N_max,
        D)``, zeros on virtual and padding rows."""
        if self.cache is None:
            raise ValueError("call prefill before forward_tree")
        B = self.n_past.size
        if not isinstance(trees, (list, tuple)) or len(trees) != B:
            raise TypeError(f"trees must be a list of B = {B} DraftTrees")
        trees = [_tree(t, self.vocab_size, f"trees[{b}]") for b, t in enumerate(trees)]
        reals = [_real(t) for t in trees]
        S0, T = int(self.n_past.max()), max(r.size for r in reals)
        tokens = np.zeros((B, T), np.int64)
        pos = np.zeros((B, T), np.int64)
        allow = np.zeros((B, T, S0 + T), bool)  # padding rows attend to nothing
        for b, (t, r) in enumerate(zip(trees, reals)):
            n = int(self.n_past[b])
            k = r.size
            tokens[b, :k] = t.tokens[r]
            pos[b, :k] = position_ids(t, n)[r]
            m = attention_mask(t, n)  # (N, n + N)
            allow[b, :k, :n] = True
            allow[b, :k, S0: S0 + k] = m[np.ix_(r, n + r)]
        lg, hid, kv = forward(self.params, tokens=tokens, positions=pos, allow_mask=allow,
                              past_kv=self.cache[..., :S0, :])  # (B, T, V)
        cap = int((self.n_past + np.array([r.size for r in reals])).max())
        cache = np.zeros(self.cache.shape[:-2] + (cap, self.config.d_head), kv.dtype)
        N = max(t.num_nodes for t in trees)
        logits = np.zeros((B, N, self.vocab_size), lg.dtype)
        hidden = np.zeros((B, N, self.config.d_model), lg.dtype)
        h = final_norm(self.params, hid[-1])  # (B, T, D)
        for b, r in enumerate(reals):
            n, k = int(self.n_past[b]), r.size
            cache[b, ..., :n, :] = self.cache[b, ..., :n, :]
            cache[b, ..., n: n + k, :] = kv[b, ..., S0: S0 + k, :]  # tree block at n_past[b]
            logits[b, r] = lg[b, :k]
            hidden[b, r] = h[b, :k]
        self.cache, self._pending = cache, trees
        return logits, hidden

    def commit(self, paths):
        """``paths (B, P)``: each row's accepted node ids, ``-1``-padded."""
        if self._pending is None:
            raise ValueError("commit needs trees scored by forward_tree first (none is pending)")
        paths = _checks.int_array(paths, "paths", ndim=2, low=-1, form="(B, P)")
        _checks.check_shape(paths, (self.n_past.size, paths.shape[1]), "paths", "(B, P)")
        slots = np.full(paths.shape, -1, np.int64)
        for b, t in enumerate(self._pending):
            k = int((paths[b] >= 0).sum())
            slots[b, :k] = _slots(t, paths[b, :k])
        self.n_past = commit_path(self.cache, self.n_past, slots)
        self.cache = self.cache[..., : int(self.n_past.max()), :].copy()
        self._pending = None

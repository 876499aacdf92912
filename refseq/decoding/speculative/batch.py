"""The batched container of draft trees, :class:`TreeBatch` (the kernels' input of
:mod:`refseq.tree_verify`): B trees padded to ``N_max`` nodes (guide: docs/speculative.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import _I32, DraftTree, _tree

__all__ = ["TreeBatch"]


# --- batched container --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TreeBatch:
    """B draft trees padded to ``N_max`` nodes (the kernels' input; validated on construction).

    Parameters
    ----------
    parents, tokens : ndarray (B, N_max), int
        Row b holds tree b in its first ``num_nodes[b]`` entries; padding entries are
        ``parents = -2``, ``tokens = -1`` (ignored everywhere).
    num_nodes : ndarray (B,), int
        ``1 <= num_nodes[b] <= N_max``.
    virtual : ndarray (B, N_max), bool, optional
        Virtual duplicates per tree; ``False`` on padding.
    """

    parents: np.ndarray
    tokens: np.ndarray
    num_nodes: np.ndarray
    virtual: np.ndarray | None = None

    def __post_init__(self):
        p = _checks.int_array(self.parents, "parents", ndim=2, form="(B, N_max)", low=-2,
                              high=_I32).astype(np.int32)
        t = _checks.int_array(self.tokens, "tokens", ndim=2, form="(B, N_max)", low=-1,
                              high=_I32).astype(np.int32)
        _checks.check_shape(t, p.shape, "tokens", "(B, N_max)")
        B, n_max = p.shape
        n = _checks.int_array(self.num_nodes, "num_nodes", ndim=1, form="(B,)", low=1,
                              high=n_max + 1).astype(np.int32)
        _checks.check_shape(n, (B,), "num_nodes", "(B,)")
        v = _checks.bool_mask(self.virtual, (B, n_max), "virtual", "(B, N_max)")
        pad = np.arange(n_max) >= n[:, None]  # (B, N_max)
        if (p[pad] != -2).any() or (t[pad] != -1).any():
            raise ValueError("parents/tokens padding (entries at or after num_nodes[b]) must be "
                             "parents = -2 and tokens = -1")
        if v is not None and v[pad].any():
            raise ValueError("virtual must be False on padding entries")
        for name, arr in (("parents", p), ("tokens", t), ("num_nodes", n), ("virtual", v)):
            if arr is not None:
                arr = arr.copy()
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for b in range(B):
            try:
                self.tree(b)
            except ValueError as e:
                raise ValueError(f"tree {b} of the batch (parents[{b}], tokens[{b}]): "
                                 f"{e}") from None

    @property
    def batch_size(self) -> int:
        return int(self.parents.shape[0])

    @property
    def n_max(self) -> int:
        return int(self.parents.shape[1])

    def tree(self, b) -> DraftTree:
        """Tree ``b`` without its padding."""
        b = _checks.check_number(b, "b", integer=True, low=0, high=self.batch_size - 1)
        n = self.num_nodes[b]
        v = None if self.virtual is None else self.virtual[b, :n]
        return DraftTree(self.parents[b, :n], self.tokens[b, :n], v)

    @classmethod
    def from_trees(cls, trees, n_max=None) -> TreeBatch:
        """Pad a non-empty list of :class:`DraftTree` to ``n_max`` (default: the largest N)."""
        if not isinstance(trees, (list, tuple)) or not trees:
            raise TypeError(f"trees must be a non-empty list of DraftTree, "
                            f"got {type(trees).__name__}")
        for k, tr in enumerate(trees):
            _tree(tr, f"trees[{k}]")
        largest = max(tr.num_nodes for tr in trees)
        n_max = largest if n_max is None else _checks.check_number(n_max, "n_max", integer=True,
                                                                   low=largest)
        B = len(trees)
        parents = np.full((B, n_max), -2, np.int32)
        tokens = np.full((B, n_max), -1, np.int32)
        virtual = np.zeros((B, n_max), bool)
        for b, tr in enumerate(trees):
            parents[b, :tr.num_nodes], tokens[b, :tr.num_nodes] = tr.parents, tr.tokens
            virtual[b, :tr.num_nodes] = ~tr.real
        any_virtual = any(tr.virtual is not None for tr in trees)
        return cls(parents, tokens, np.array([tr.num_nodes for tr in trees]),
                   virtual if any_virtual else None)

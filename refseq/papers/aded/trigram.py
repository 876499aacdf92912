"""ADED's "LLM representative": a sparse tri-gram table ``w(a, b, c)`` (arXiv 2407.12021,
Sec. 3, reconstructed from the released ``DraftRetriever/src/lib.rs``, ``Writer`` and
``Reader::new``).

Built from a corpus tokenised with the target's tokenizer::

    w(a, b, c) = N(a, b, c) / sum_c' N(a, b, c')     (counts of consecutive triples)

then pruned to the ``top_n = 12`` largest successors of every context ``(a, b)`` *without*
renormalising (the released reader prunes the normalised table at load time). The adaptive
update (:mod:`refseq.papers.aded.adaptation`) later raises weights above 1, so a row is a set
of non-negative scores, not a probability distribution.

Storage is ``dict[(a, b)] -> dict[c -> weight]`` (float64; the Rust code uses f32). A compressed
form (:meth:`TrigramMatrix.to_csr`) serves persistence (:meth:`TrigramMatrix.save`) and
compiled use; :meth:`TrigramMatrix.dense` is a ``(V, V, V)`` view for tiny vocabularies.
Successor order everywhere: descending weight, then ascending token id.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

__all__ = ["TOP_N", "TrigramMatrix", "build_from_sequences"]

TOP_N = 12  # successors kept per context by the released reader


def _token(x, name: str, V) -> int:
    return _checks.check_number(x, name, integer=True, low=0,
                                high=None if V is None else V - 1)


def _pair(pair, V, name: str = "pair") -> tuple:
    if not isinstance(pair, (tuple, list, np.ndarray)) or len(pair) != 2:
        raise TypeError(f"{name} must be a pair of token ids (a, b), got {pair!r}")
    return (_token(pair[0], f"{name}[0]", V), _token(pair[1], f"{name}[1]", V))


def _weight(w, name: str) -> float:
    return _checks.check_number(w, name, low=0)


class TrigramMatrix:
    """A sparse tri-gram weight table ``w(a, b, c) >= 0``.

    Parameters
    ----------
    vocab_size : int, optional
        When given, every token must lie in ``[0, vocab_size)`` (checked on every access).

    Attributes
    ----------
    table : dict[tuple[int, int], dict[int, float]]
        ``table[(a, b)][c] = w(a, b, c)``; a context is present only with at least one entry.
    """

    def __init__(self, vocab_size=None):
        self.vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1,
                                               allow_none=True)
        self.table: dict = {}

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, corpus, top_n=TOP_N, *, vocab_size=None) -> TrigramMatrix:
        """Count, normalise per context, prune to ``top_n`` (ties: lower id), no renormalising.

        Parameters
        ----------
        corpus : iterable of (n,) int arrays
            Token sequences; sequences shorter than 3 contribute nothing.
        top_n : int >= 1 or None
            Successors kept per context (None keeps all).
        """
        return cls._build(corpus, top_n, vocab_size, "corpus")

    @classmethod
    def _build(cls, corpus, top_n, vocab_size, name: str) -> TrigramMatrix:
        """:meth:`build`, with the corpus argument's name for the messages."""
        top_n = _checks.check_number(top_n, "top_n", integer=True, low=1, allow_none=True)
        m = cls(vocab_size)
        if isinstance(corpus, (str, bytes, dict)) or not hasattr(corpus, "__iter__"):
            raise TypeError(f"{name} must be an iterable of 1-d token arrays, got "
                            f"{type(corpus).__name__}")
        if isinstance(corpus, np.ndarray) and corpus.ndim == 1:
            raise TypeError(f"{name} must be an iterable of 1-d token arrays, got one 1-d array "
                            "(wrap it in a list)")
        counts: dict = {}
        for k, seq in enumerate(corpus):
            if isinstance(seq, (list, tuple)) and len(seq) == 0:
                continue
            s = _checks.int_array(seq, f"{name}[{k}]", ndim=1, low=0, form="(n,)",
                                  high=m.vocab_size).tolist()
            for i in range(len(s) - 2):
                row = counts.setdefault((s[i], s[i + 1]), {})
                row[s[i + 2]] = row.get(s[i + 2], 0) + 1
        for ctx, row in counts.items():
            total = sum(row.values())
            kept = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
            m.table[ctx] = {c: n / total for c, n in kept}  # float64, not renormalised
        return m

    @classmethod
    def from_dense(cls, W) -> TrigramMatrix:
        """The entries ``W[a, b, c] > 0`` of a ``(V, V, V)`` non-negative float array."""
        W = _checks.float_array(W, "W")
        if W.ndim != 3 or not (W.shape[0] == W.shape[1] == W.shape[2]):
            raise ValueError(f"W must have shape (V, V, V), got {W.shape}")
        _checks.check_finite(W, "W")
        if (W < 0).any():
            raise ValueError("W must be non-negative (weights are scores >= 0)")
        m = cls(W.shape[0])
        for a, b, c in zip(*np.nonzero(W)):
            m.table.setdefault((int(a), int(b)), {})[int(c)] = float(W[a, b, c])
        return m

    def copy(self) -> TrigramMatrix:
        """An independent copy (the adaptive update mutates in place)."""
        m = TrigramMatrix(self.vocab_size)
        m.table = {ctx: dict(row) for ctx, row in self.table.items()}
        return m

    # --- queries ----------------------------------------------------------------------------
    def successors(self, pair) -> list:
        """Successor tokens of ``pair``: descending weight, then ascending id (``[]`` if none)."""
        row = self.table.get(_pair(pair, self.vocab_size))
        if not row:
            return []
        return [c for c, _ in sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))]

    def weight(self, pair, c) -> float:
        """``w(a, b, c)``, 0.0 for a missing entry."""
        row = self.table.get(_pair(pair, self.vocab_size))
        return 0.0 if row is None else float(row.get(_token(c, "c", self.vocab_size), 0.0))

    def set_weight(self, pair, c, w) -> None:
        """Set ``w(a, b, c)`` (creating the context); used by the adaptive update and tests."""
        pair, c = _pair(pair, self.vocab_size), _token(c, "c", self.vocab_size)
        self.table.setdefault(pair, {})[c] = _weight(w, "w")

    @property
    def num_contexts(self) -> int:
        return len(self.table)

    @property
    def num_entries(self) -> int:
        return sum(len(row) for row in self.table.values())

    @property
    def max_token(self) -> int:
        """The largest token id stored (-1 when empty)."""
        out = -1
        for (a, b), row in self.table.items():
            out = max(out, a, b, max(row))
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR form with float32 weights (the Rust code's f32 table)."""
        return sum(x.nbytes for x in self.to_csr())

    # --- compressed forms -------------------------------------------------------------------
    def to_csr(self, dtype=np.float32) -> tuple:
        """``(keys (n_ctx, 2) int32, indptr (n_ctx+1,) int64, succ (nnz,) int32,
        weight (nnz,) dtype)``: contexts in ascending ``(a, b)``, each row's successors in
        successor order. float32 (default, as the Rust code) rounds the weights."""
        dtype = _checks.check_float_dtype(dtype, "dtype")
        ctxs = sorted(self.table)
        keys = np.array(ctxs, np.int32).reshape(len(ctxs), 2)
        succ, weight, indptr = [], [], [0]
        for ctx in ctxs:
            row = self.table[ctx]
            for c in self.successors(ctx):
                succ.append(c)
                weight.append(row[c])
            indptr.append(len(succ))
        return (keys, np.array(indptr, np.int64), np.array(succ, np.int32),
                np.array(weight, dtype))

    @classmethod
    def from_csr(cls, keys, indptr, succ, weight, *, vocab_size=None) -> TrigramMatrix:
        """Inverse of :meth:`to_csr` (weights become float64)."""
        keys = _checks.int_array(keys, "keys", ndim=2, low=0, form="(n_ctx, 2)")
        indptr = _checks.int_array(indptr, "indptr", ndim=1, low=0, form="(n_ctx+1,)")
        succ = _checks.int_array(succ, "succ", ndim=1, low=0, form="(nnz,)")
        weight = _checks.float_array(weight, "weight")
        if keys.shape[1] != 2 or indptr.shape != (keys.shape[0] + 1,):
            raise ValueError(f"keys must be (n_ctx, 2) and indptr (n_ctx+1,), got {keys.shape} "
                             f"and {indptr.shape}")
        if weight.shape != succ.shape or indptr[0] != 0 or indptr[-1] != succ.size \
                or (np.diff(indptr) < 0).any():
            raise ValueError("indptr must rise from 0 to nnz and weight must match succ (nnz,)")
        _checks.check_finite(weight, "weight")
        if (weight < 0).any():
            raise ValueError("weight must be non-negative")
        m = cls(vocab_size)
        for k, (a, b) in enumerate(keys.tolist()):
            lo, hi = int(indptr[k]), int(indptr[k + 1])
            if hi > lo:
                row = {int(c): float(w) for c, w in zip(succ[lo:hi], weight[lo:hi])}
                m.table[(_token(a, "keys", m.vocab_size), _token(b, "keys", m.vocab_size))] = row
        return m

    def dense(self, V=None) -> np.ndarray:
        """``(V, V, V)`` float64 with ``W[a, b, c] = w(a, b, c)`` (tiny vocabularies)."""
        V = self.vocab_size if V is None else _checks.check_number(V, "V", integer=True, low=1)
        if V is None:
            V = self.max_token + 1
        if self.max_token >= V:
            raise ValueError(f"V = {V} is too small for token {self.max_token}")
        if V ** 3 > 10**8:
            raise ValueError(f"dense view of V = {V} needs V**3 = {V ** 3} entries (too many)")
        W = np.zeros((V, V, V))
        for (a, b), row in self.table.items():
            for c, w in row.items():
                W[a, b, c] = w
        return W

    def save(self, path, dtype=np.float64) -> None:
        """Write the CSR form to an ``.npz`` file (float64 keeps the weights exact)."""
        keys, indptr, succ, weight = self.to_csr(dtype)
        np.savez(path, keys=keys, indptr=indptr, succ=succ, weight=weight,
                 vocab_size=np.int64(-1 if self.vocab_size is None else self.vocab_size))

    @classmethod
    def load(cls, path) -> TrigramMatrix:
        """Read a file written by :meth:`save`."""
        with np.load(path) as z:
            V = int(z["vocab_size"])
            return cls.from_csr(z["keys"], z["indptr"], z["succ"], z["weight"],
                                vocab_size=None if V < 0 else V)

    def __repr__(self) -> str:
        return (f"TrigramMatrix(vocab_size={self.vocab_size}, contexts={self.num_contexts}, "
                f"entries={self.num_entries})")


def build_from_sequences(sequences, top_n=TOP_N, *, vocab_size=None) -> TrigramMatrix:
    """:meth:`TrigramMatrix.build` over a list of token arrays (the datastore scripts'
    ``Writer.add_entry`` per sequence, then ``finalize`` and the reader's pruning)."""
    if not isinstance(sequences, (list, tuple)):
        raise TypeError(f"sequences must be a list of 1-d token arrays, got "
                        f"{type(sequences).__name__}")
    return TrigramMatrix._build(sequences, top_n, vocab_size, "sequences")

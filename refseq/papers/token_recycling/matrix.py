"""The adjacency matrix of Token Recycling (Luo et al., arXiv 2408.08696, Sec. 3.1).

``M`` has one row per vocabulary token and ``k`` columns: ``M[i, j]`` is the j-th candidate
successor of token ``i``, i.e. the token of rank j in the target's top-k the last time token
``i`` was processed by a target forward pass. It starts as zeros (token 0 in every slot, as in
the paper and the official code) and is *carried over between queries* ("hot start"), so the
caller owns the state object and passes it to every generation call.

Storage: ``V * k * itemsize`` bytes; ``V = 32000, k = 8``, int64 gives 2 048 000 bytes, the
paper's "< 2MB" (Sec. 1 and Sec. 3.1).
"""

from __future__ import annotations

import os

import numpy as np

from refseq import _checks

__all__ = ["TokenRecyclingState"]


def _int_dtype(dtype, V: int) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "iu" or dt == np.bool_:
        raise TypeError(f"dtype must be an integer dtype (e.g. np.int64), got {dtype!r}")
    if np.iinfo(dt).max < V - 1:
        raise ValueError(f"dtype {dt} cannot hold token ids up to V - 1 = {V - 1}")
    return dt


class TokenRecyclingState:
    """The adjacency matrix ``M (V, k)`` of candidate tokens, owned by the caller.

    Parameters
    ----------
    vocab_size : int >= 1
        ``V``, the target's vocabulary size.
    k : int in [1, V], default 8
        Candidate tokens kept per token (the paper's k = 8).
    dtype : integer dtype, default np.int64
        Storage type of the token ids (the official code: ``torch.long``).

    Attributes
    ----------
    M : ndarray (V, k)
        ``M[i, j]`` is the j-th recorded successor of token ``i``; zeros after construction and
        after :meth:`reset` (cold start).
    """

    def __init__(self, vocab_size: int, k: int = 8, dtype=np.int64):
        self.vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)
        self.k = _checks.check_number(k, "k", integer=True, low=1, high=self.vocab_size)
        self.dtype = _int_dtype(dtype, self.vocab_size)
        self.M = np.zeros((self.vocab_size, self.k), self.dtype)  # (V, k)

    def __repr__(self) -> str:
        return (f"TokenRecyclingState(vocab_size={self.vocab_size}, k={self.k}, "
                f"dtype={self.dtype.name})")

    @property
    def nbytes(self) -> int:
        """``V * k * itemsize``: the matrix's memory (2 048 000 for V = 32000, k = 8, int64)."""
        return int(self.vocab_size * self.k * self.dtype.itemsize)

    def reset(self) -> TokenRecyclingState:
        """Cold start: every slot back to token 0. Returns ``self``."""
        self.M[...] = 0
        return self

    def copy(self) -> TokenRecyclingState:
        """An independent copy (same V, k, dtype and matrix)."""
        out = TokenRecyclingState(self.vocab_size, self.k, self.dtype)
        out.M[...] = self.M
        return out

    def set_matrix(self, M) -> TokenRecyclingState:
        """Overwrite ``M`` with the integer array ``M (V, k)`` of token ids in ``[0, V)``
        (e.g. an oracle table or random garbage in tests). Returns ``self``."""
        arr = _checks.int_array(M, "M", ndim=2, low=0, high=self.vocab_size, form="(V, k)")
        _checks.check_shape(arr, (self.vocab_size, self.k), "M", "(V, k)")
        self.M[...] = arr
        return self

    def equals(self, other) -> bool:
        """Same V, k and matrix entries (the dtype may differ)."""
        _checks.check_instance(other, TokenRecyclingState, "other")
        return (self.vocab_size, self.k) == (other.vocab_size, other.k) and bool(
            np.array_equal(self.M, other.M))

    def save(self, path) -> None:
        """Write ``M`` to the ``.npz`` file ``path`` (NumPy adds the suffix if missing)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        np.savez(path, M=self.M, vocab_size=self.vocab_size, k=self.k)

    @classmethod
    def load(cls, path) -> TokenRecyclingState:
        """Read a state written by :meth:`save` (``ValueError`` if the file is not one)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        with np.load(path) as f:
            if not {"M", "vocab_size", "k"} <= set(f.files):
                raise ValueError(f"{os.fspath(path)!r} is not a TokenRecyclingState file "
                                 f"(needs arrays M, vocab_size, k; has {sorted(f.files)})")
            M = f["M"]
            out = cls(int(f["vocab_size"]), int(f["k"]), M.dtype)
        return out.set_matrix(M)

"""Head splitters: a representation ``z`` becomes ``C`` low-dimensional heads, one per codebook.

Träuble et al., arXiv 2207.11240, Sec. 3 ("we project z into C lower-dimensional heads"). Input
``z (B, d_z)`` or ``(B, N, d_z)`` (see :func:`~refseq.papers.kv_bottleneck.encoders.as_tokens`);
output ``h (B, C, N, d_k)``, the layout the key-value lookup hot path takes.

- :func:`split_chunk` / :class:`Chunker`: contiguous slices, ``h[b, c, n] = z[b, n, c d_k :
  (c + 1) d_k]`` (needs ``C d_k = d_z``); :func:`merge_chunks` is its inverse.
- :class:`RandomProjection`: a fixed ``P (C, d_z, d_k)`` drawn ``N(0, 1)`` with every column
  ``P[c, :, u]`` scaled to unit L2 norm (the official ``F.normalize(..., dim=1)``), and
  ``h[b, c, n] = z[b, n] P[c]``.
- :class:`LearnedProjection`: ``y = z W`` with ``W (d_z, C d_k)`` and no bias; output feature
  ``u C + c`` belongs to head ``c`` (the official ``(dim_keys num_books)`` reshape: the head index
  varies fastest), so ``h[b, c, n, u] = y[b, n, u C + c]``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.kv_bottleneck.encoders import as_tokens

__all__ = ["Chunker", "LearnedProjection", "RandomProjection", "merge_chunks", "split_chunk"]


def _positive(value, name):
    return _checks.check_number(value, name, integer=True, low=1)


def split_chunk(z, C: int) -> np.ndarray:
    """Cut the feature axis into ``C`` contiguous heads: ``(B, [N,] d_z) -> (B, C, N, d_k)``.

    ``d_k = d_z / C``; ``ValueError`` unless ``C`` divides ``d_z``. A pure reshape (no copy of
    values is changed): :func:`merge_chunks` undoes it exactly.
    """
    C = _positive(C, "C")
    z = as_tokens(z)  # (B, N, d_z)
    B, N, d_z = z.shape
    if d_z % C:
        raise ValueError(f"C must divide d_z = {d_z} (contiguous chunks of d_k = d_z / C), "
                         f"got C = {C}")
    return z.reshape(B, N, C, d_z // C).transpose(0, 2, 1, 3)  # (B, C, N, d_k)


def merge_chunks(h) -> np.ndarray:
    """Inverse of :func:`split_chunk`: ``(B, C, N, d_k) -> (B, N, C d_k)``."""
    h = _checks.float_array(h, "h")
    if h.ndim != 4:
        raise ValueError(f"h must have shape (B, C, N, d_k), got {h.shape}")
    B, C, N, d_k = h.shape
    return h.transpose(0, 2, 1, 3).reshape(B, N, C * d_k)  # (B, N, d_z)


class Chunker:
    """:func:`split_chunk` as a splitter object (``splitter(z) -> h``), no parameters."""

    def __init__(self, C: int):
        self.C = _positive(C, "C")

    def __call__(self, z) -> np.ndarray:
        return split_chunk(z, self.C)


class RandomProjection:
    """Fixed random down-projection ``P (C, d_z, d_k)`` with unit-norm columns.

    Parameters
    ----------
    C, d_z, d_k : int >= 1 — codebooks, input width, key width.
    rng : Generator or int seed — draws ``P`` (``N(0, 1)``, then each ``P[c, :, u]`` / its norm).
    dtype : float32 or float64.
    """

    def __init__(self, C: int, d_z: int, d_k: int, rng=None, dtype=np.float64):
        self.C, self.d_z, self.d_k = _positive(C, "C"), _positive(d_z, "d_z"), _positive(d_k, "d_k")
        dtype = _checks.check_float_dtype(dtype, "dtype")
        P = _checks.check_rng(rng).standard_normal((self.C, self.d_z, self.d_k))  # (C, d_z, d_k)
        P /= np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)  # unit columns
        self.P = P.astype(dtype)

    def __call__(self, z) -> np.ndarray:
        z = as_tokens(z)  # (B, N, d_z)
        if z.shape[-1] != self.d_z:
            raise ValueError(f"z must have d_z = {self.d_z} features (the last axis), "
                             f"got shape {z.shape}")
        return np.einsum("bnd,cdu->bcnu", z, self.P.astype(z.dtype, copy=False))  # (B, C, N, d_k)


class LearnedProjection:
    """Trainable down-projection ``W (d_z, C d_k)`` without bias, official reshape order.

    ``W`` is drawn ``U(-1/sqrt(d_z), 1/sqrt(d_z))`` (``torch.nn.Linear``'s default bound) unless
    given. :meth:`backward` returns ``dW`` for a cotangent ``dh``; on the value path the lookup
    is piecewise constant in ``h``, so only a decoder that reads distances
    (``append_distance``) sends a gradient here.
    """

    def __init__(self, C: int, d_z: int, d_k: int, rng=None, dtype=np.float64, W=None):
        self.C, self.d_z, self.d_k = _positive(C, "C"), _positive(d_z, "d_z"), _positive(d_k, "d_k")
        if W is None:
            dtype = _checks.check_float_dtype(dtype, "dtype")
            bound = 1.0 / np.sqrt(self.d_z)
            W = _checks.check_rng(rng).uniform(-bound, bound, (self.d_z, self.C * self.d_k))
            W = W.astype(dtype)
        W = _checks.float_array(W, "W")
        _checks.check_shape(W, (self.d_z, self.C * self.d_k), "W", "(d_z, C d_k)")
        self.W = W

    def __call__(self, z) -> np.ndarray:
        z = as_tokens(z)  # (B, N, d_z)
        if z.shape[-1] != self.d_z:
            raise ValueError(f"z must have d_z = {self.d_z} features (the last axis), "
                             f"got shape {z.shape}")
        B, N, _ = z.shape
        y = z @ self.W.astype(z.dtype, copy=False)  # (B, N, C d_k), feature u C + c
        return y.reshape(B, N, self.d_k, self.C).transpose(0, 3, 1, 2)  # (B, C, N, d_k)

    def backward(self, dh, z) -> np.ndarray:
        """``dW (d_z, C d_k)`` of ``sum(dh * self(z))``."""
        z = as_tokens(z)  # (B, N, d_z)
        dh = _checks.float_array(dh, "dh", dtype=z.dtype)
        B, N, _ = z.shape
        _checks.check_shape(dh, (B, self.C, N, self.d_k), "dh", "(B, C, N, d_k)")
        dy = dh.transpose(0, 2, 3, 1).reshape(B, N, self.d_k * self.C)  # (B, N, C d_k)
        return np.einsum("bnd,bnf->df", z, dy)  # (d_z, C d_k)

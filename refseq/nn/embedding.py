"""Embedding lookup with its vector-Jacobian product: ``y = E[ids]``.

Symbols: ``V`` vocabulary size, ``D`` width, ``(...)`` any shape of the id array. The backward is
a scatter-add: rows of ``E`` that several ids share collect the sum of their cotangents. The
same lookup serves learned absolute position embeddings (:mod:`refseq.nn.positions`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks


class EmbeddingCache(NamedTuple):
    ids: np.ndarray  # (...) int
    table_shape: tuple  # (V, D)
    dtype: np.dtype


def int_array(a, name: str, high: int | None = None, form: str = "(...)") -> np.ndarray:
    """Return ``a`` as an integer ndarray, raising naming ``name`` on a non-integer dtype or,
    when ``high`` is given, on a value outside ``[0, high)``."""
    if a is None:
        raise TypeError(f"{name} must be an integer array {form}, got None")
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array {form}, got dtype {arr.dtype}")
    if high is not None and arr.size and (arr.min() < 0 or arr.max() >= high):
        bad = arr[(arr < 0) | (arr >= high)].flat[0]
        raise ValueError(f"{name} must lie in [0, {high}), found {int(bad)}")
    return arr


def lookup_forward(ids, E, ids_name: str = "ids", table_name: str = "E", rows: str = "V"):
    """Row lookup shared by :func:`embedding_forward` and the position embedding."""
    E = _checks.float_array(E, table_name)
    if E.ndim != 2:
        raise ValueError(f"{table_name} must have shape ({rows}, D), got {E.shape}")
    ids = int_array(ids, ids_name, high=E.shape[0])
    y = E[ids]  # (..., D)
    return y, EmbeddingCache(ids, E.shape, E.dtype)


def lookup_backward(dy, cache: EmbeddingCache):
    """Scatter-add of ``dy`` into the rows of the table (shared by both lookups)."""
    ids, (V, D), dtype = cache
    dy = _checks.float_array(dy, "dy", dtype=dtype)
    _checks.check_shape(dy, ids.shape + (D,), "dy", "(..., D)")
    dE = np.zeros((V, D), dtype=dtype)
    np.add.at(dE, ids.reshape(-1), dy.reshape(-1, D))  # unbuffered: repeated ids accumulate
    return (dE,)


def embedding_forward(ids, E):
    """Token embedding: ``y[...] = E[ids[...]]``.

    Parameters
    ----------
    ids : (...) integer array with values in ``[0, V)``.
    E : (V, D) float32 or float64 — the embedding table.

    Returns
    -------
    y : (..., D), ``E``'s dtype.
    cache : EmbeddingCache for :func:`embedding_backward`.

    Raises
    ------
    TypeError if ``ids`` is not an integer array or ``E`` not float32/float64; ValueError naming
    ``ids`` for an id outside ``[0, V)`` (negative ids are not wrapped around).
    """
    return lookup_forward(ids, E, "ids", "E", "V")


def embedding_backward(dy, cache: EmbeddingCache):
    """Vector-Jacobian product of :func:`embedding_forward` (``ids`` is not differentiable).

    .. math:: dE_v = \\sum_{p \\,:\\, \\mathrm{ids}_p = v} dy_p

    Returns
    -------
    (dE,) : a one-tuple, dE of shape (V, D).
    """
    return lookup_backward(dy, cache)

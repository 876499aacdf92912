"""Frozen encoders of the Discrete Key-Value Bottleneck (Träuble et al., arXiv 2207.11240, Sec. 3).

The bottleneck sits on a large pre-trained encoder that is **never updated**: it maps an input
``x`` to a representation ``z`` of shape ``(B, d_z)`` (a pooled feature) or ``(B, N, d_z)`` (a
map of ``N`` tokens or patches). Anything callable as ``encoder(x) -> z`` is an :class:`Encoder`;
three small ones cover the paper's uses without a network: :class:`Identity` (the 2-D toy of
Figure 2, where ``z = x``), :class:`PrecomputedEmbeddings` (the ICML sweeps train on embeddings
computed once by a frozen backbone, looked up by sample id) and :class:`FrozenLinear`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from refseq import _checks

__all__ = ["Encoder", "FrozenLinear", "Identity", "PrecomputedEmbeddings", "as_tokens"]


@runtime_checkable
class Encoder(Protocol):
    """``encoder(x) -> z`` with ``z`` of shape ``(B, d_z)`` or ``(B, N, d_z)``, float32/64."""

    def __call__(self, x) -> np.ndarray: ...


def as_tokens(z, name: str = "z") -> np.ndarray:
    """``z`` as a token map ``(B, N, d_z)``: a pooled ``(B, d_z)`` becomes ``N = 1``."""
    z = _checks.float_array(z, name)
    if z.ndim == 2:
        return z[:, None, :]  # (B, 1, d_z)
    if z.ndim != 3 or 0 in z.shape:
        raise ValueError(f"{name} must have shape (B, d_z) or (B, N, d_z) with every axis >= 1, "
                         f"got {z.shape}")
    return z


class Identity:
    """``z = x``: the encoder of the 2-D toy (Figure 2), whose inputs are the features."""

    def __call__(self, x) -> np.ndarray:
        as_tokens(x, "x")  # checks the form
        return np.asarray(x)


class PrecomputedEmbeddings:
    """Lookup of stored embeddings by sample id: ``table (n, d_z)`` or ``(n, N, d_z)``.

    The paper's CIFAR runs precompute each backbone's features once; ``encoder(ids)`` returns
    ``table[ids]`` for an integer array ``ids (B,)`` in ``[0, n)``.
    """

    def __init__(self, table):
        table = _checks.float_array(table, "table")
        if table.ndim not in (2, 3) or 0 in table.shape:
            raise ValueError(f"table must have shape (n, d_z) or (n, N, d_z), got {table.shape}")
        self.table = table

    def __call__(self, ids) -> np.ndarray:
        ids = _checks.int_array(ids, "ids", ndim=1, low=0, high=self.table.shape[0], form="(B,)")
        return self.table[ids]  # (B, [N,] d_z)


class FrozenLinear:
    """``z = x W + b`` with fixed ``W (d_in, d_z)`` and optional ``b (d_z,)``."""

    def __init__(self, W, b=None):
        W = _checks.float_array(W, "W")
        if W.ndim != 2 or 0 in W.shape:
            raise ValueError(f"W must have shape (d_in, d_z), got {W.shape}")
        if b is not None:
            b = _checks.float_array(b, "b", dtype=W.dtype)
            _checks.check_shape(b, (W.shape[1],), "b", "(d_z,)")
        self.W, self.b = W, b

    def __call__(self, x) -> np.ndarray:
        x = _checks.float_array(x, "x")
        if x.ndim not in (2, 3) or x.shape[-1] != self.W.shape[0]:
            raise ValueError(f"x must have shape (B, d_in) or (B, N, d_in) with d_in = "
                             f"{self.W.shape[0]}, got {x.shape}")
        z = x @ self.W.astype(x.dtype, copy=False)  # (B, [N,] d_z)
        return z if self.b is None else z + self.b.astype(x.dtype, copy=False)

"""Per-sequence lengths for right-padded batches (Lipton et al., arXiv 1506.00019, Sec. 4.2).

A batch ``x (B, T, I)`` holds sequence ``b`` in ``x[b, :lengths[b]]``; the rest is padding.
``length_mask(lengths, T)[b, t]`` is True at real positions. :func:`reverse_within_length` is the
gather the bidirectional RNN needs: position ``t < L_b`` goes to ``L_b - 1 - t`` and padding stays
where it is, so a backward-direction RNN starts at each sequence's own last real token (reversing
the whole padded tensor would make it start on padding).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks


def check_lengths(lengths, B: int, T: int, name: str = "lengths") -> np.ndarray | None:
    """Return ``lengths`` as an int64 array ``(B,)`` with entries in ``[0, T]``, or None.

    Raises ``TypeError`` for a non-integer array and ``ValueError`` naming ``name`` for a wrong
    shape, a negative length or a length above ``T``.
    """
    B = _checks.check_number(B, "B", integer=True, low=0)
    T = _checks.check_number(T, "T", integer=True, low=0)
    if lengths is None:
        return None
    L = np.asarray(lengths)
    if L.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array (B,), got dtype {L.dtype}")
    _checks.check_shape(L, (B,), name, "(B,)")
    if L.size and L.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {int(L.min())} at index {int(L.argmin())}")
    if L.size and L.max() > T:
        raise ValueError(
            f"{name} must be <= T = {T}, got {int(L.max())} at index {int(L.argmax())}"
        )
    return L.astype(np.int64)


def length_mask(lengths, T: int) -> np.ndarray:
    """``mask (B, T)`` bool, True at real positions ``t < lengths[b]``."""
    L = check_lengths(lengths, np.shape(lengths)[0], T)
    return np.arange(T)[None, :] < L[:, None]  # (B, T)


def reverse_index(lengths, T: int) -> np.ndarray:
    """Gather index ``(B, T)``: ``L_b - 1 - t`` for ``t < L_b``, ``t`` on padding. An involution."""
    L = check_lengths(lengths, np.shape(lengths)[0], T)
    t = np.arange(T)[None, :]  # (1, T)
    return np.where(t < L[:, None], L[:, None] - 1 - t, t)  # (B, T)


def reverse_within_length(x, lengths=None) -> np.ndarray:
    """Reverse each sequence of ``x (B, T, ...)`` within its own length; padding stays in place.

    With ``lengths=None`` (or all equal to T) this is ``x[:, ::-1]``. Applying it twice is the
    identity, and it is its own vector-Jacobian product (a permutation that is an involution).
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (B, T, ...), got {x.shape}")
    B, T = x.shape[:2]
    if lengths is None:
        return x[:, ::-1].copy()
    check_lengths(lengths, B, T)
    idx = reverse_index(lengths, T)  # (B, T)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))  # (B, T, 1, ...)
    return np.take_along_axis(x, idx, axis=1)


def mask_from(mask, lengths, B: int, T: int) -> np.ndarray | None:
    """The ``(B, T)`` bool mask given by ``mask`` or derived from ``lengths`` (not both)."""
    if mask is not None and lengths is not None:
        raise ValueError("pass mask or lengths, not both")
    if lengths is not None:
        return length_mask(check_lengths(lengths, B, T), T)
    return _checks.bool_mask(mask, (B, T), "mask", "(B, T)")

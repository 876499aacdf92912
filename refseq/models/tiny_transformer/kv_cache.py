"""The tiny transformer's key/value cache: one plain array and three operations.

Layout (the one the planned speculative decoders will commit accepted paths in)::

    kv : (L, 2, H, S, Dh)        unbatched
    kv : (B, L, 2, H, S, Dh)     batched

``kv[..., l, 0, h, s, :]`` is the key and ``kv[..., l, 1, h, s, :]`` the value of head ``h`` of
layer ``l`` for cache slot ``s`` (keys stored after RoPE when the model uses it). Slot ``s`` holds
whatever token the caller fed at that step; its *position id* is not stored — the caller keeps
positions (``positions`` of :func:`refseq.models.tiny_transformer.forward`), so a cache compacted
with :func:`gather` stays valid as long as later calls pass the right positions and masks.

All slots of a batched cache have the same length S; rows with fewer real entries mark the rest
invalid through the ``allow_mask`` they pass to the forward (False columns).

Operations are pure (they return new arrays): :func:`append` concatenates slots, :func:`gather`
keeps selected slots (e.g. the committed prefix plus the accepted path of a draft tree),
:func:`truncate` keeps the first n.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks


def empty(config, batch: int | None = None) -> np.ndarray:
    """A cache with S = 0 for ``config`` (a ``TinyConfig``), batched when ``batch`` is given."""
    shape = (config.n_layers, 2, config.n_heads, 0, config.d_head)
    return np.zeros(shape if batch is None else (batch,) + shape, config.np_dtype)


def validate(kv, config, name: str = "past_kv", batch: int | None = None,
             n_layers: int | None = None) -> np.ndarray:
    """Check ``kv`` against ``config``; ``batch`` is B for a batched forward, None otherwise;
    ``n_layers`` overrides L for a slice of the layers (``forward_layers``).

    Raises ``TypeError`` for a non-float array or a dtype other than the model's and
    ``ValueError`` for any shape that does not fit (a cache from a different model).
    """
    kv = _checks.float_array(kv, name)
    if kv.dtype != config.np_dtype:
        raise TypeError(f"{name} has dtype {kv.dtype} but the model is {config.np_dtype} "
                        "(a cache from a different model?)")
    L = config.n_layers if n_layers is None else n_layers
    H, Dh = config.n_heads, config.d_head
    form = "(L, 2, H, S, Dh)" if batch is None else "(B, L, 2, H, S, Dh)"
    lead = () if batch is None else (batch,)
    want = lead + (L, 2, H)
    if kv.ndim != len(want) + 2 or kv.shape[: len(want)] != want or kv.shape[-1] != Dh:
        raise ValueError(f"{name} must have shape {form} = {want} + (S, {Dh}) for this model, "
                         f"got {kv.shape} (a cache from a different model, or a "
                         "batched/unbatched mix-up?)")
    return kv


def length(kv) -> int:
    """Number of cached slots S."""
    return int(np.shape(kv)[-2])


def append(kv, new) -> np.ndarray:
    """Concatenate the slots of ``new`` after those of ``kv`` (same layout except S)."""
    kv, new = np.asarray(kv), np.asarray(new)
    if kv.ndim != new.ndim or kv.shape[:-2] != new.shape[:-2] or kv.shape[-1] != new.shape[-1]:
        raise ValueError(f"new must have the layout of kv except the slot axis: kv {kv.shape}, "
                         f"new {new.shape}")
    if kv.dtype != new.dtype:
        raise TypeError(f"new has dtype {new.dtype}, kv has {kv.dtype}")
    return np.concatenate([kv, new], axis=-2)


def gather(kv, indices) -> np.ndarray:
    """Keep the slots ``indices`` in the given order.

    Parameters
    ----------
    kv : (L, 2, H, S, Dh) or (B, L, 2, H, S, Dh).
    indices : (m,) int in ``[0, S)``, or (B, m) for a batched cache (one list per row).

    Returns
    -------
    (L, 2, H, m, Dh) or (B, L, 2, H, m, Dh). Example: after a tree forward over N nodes on a cache
    of n_past slots, ``gather(kv, concatenate([arange(n_past), n_past + path]))`` keeps the
    committed prefix and the accepted path.
    """
    kv = np.asarray(kv)
    S = kv.shape[-2]
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= S):
        raise ValueError(f"indices must lie in [0, S) = [0, {S}), got min {idx.min()}, "
                         f"max {idx.max()}")
    if idx.ndim == 1:
        return np.ascontiguousarray(kv[..., idx, :])
    if idx.ndim == 2 and kv.ndim == 6 and idx.shape[0] == kv.shape[0]:
        sel = idx[:, None, None, None, :, None]  # (B, 1, 1, 1, m, 1)
        return np.take_along_axis(kv, sel, axis=-2)
    raise ValueError(f"indices must have shape (m,) or, for a batched cache, (B, m); got "
                     f"{idx.shape} for kv of shape {kv.shape}")


def truncate(kv, n: int) -> np.ndarray:
    """Keep the first ``n`` slots (``0 <= n <= S``)."""
    kv = np.asarray(kv)
    S = kv.shape[-2]
    if not isinstance(n, (int, np.integer)) or not 0 <= n <= S:
        raise ValueError(f"n must be an integer in [0, S] = [0, {S}], got {n!r}")
    return kv[..., :n, :].copy()

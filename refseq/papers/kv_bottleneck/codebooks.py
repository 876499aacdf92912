"""Codebooks of key-value pairs with their EMA buffers and usage counters.

Träuble et al., arXiv 2207.11240, Sec. 3: codebook ``c`` holds ``M`` pairs ``(key_{c,j},
value_{c,j})``; keys live in head space (``d_k``) and are fitted without labels, values (``d_v``)
are what the decoder reads and what the task trains. The buffers follow the official
``KeyValueBottleneck``: ``keys_avg`` and ``cluster_size`` are the EMA sums and counts of
:func:`~refseq.papers.kv_bottleneck.ema.ema_update`; ``usage`` (``cluster_size_counter``
there) counts how often each pair was selected while values were trained, and evaluation may
exclude the pairs never selected (``usage_mask``).

Key initialisation: ``"random"`` draws ``N(0, 1)`` keys; ``"kmeans"`` runs per-codebook k-means
(:func:`kmeans`) on heads, its assignment step through the hot path's ``kv_assign_stats``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.kv_lookup import kv_assign_stats

__all__ = ["KVCodebooks", "kmeans"]

KEY_INITS = ("random", "kmeans")
VALUE_INITS = ("zeros", "randn", "rand")


def _heads(h, name="data"):
    h = _checks.float_array(h, name)
    if h.ndim != 4 or 0 in h.shape:
        raise ValueError(f"{name} must be heads of shape (B, C, N, d_k) with every axis >= 1, "
                         f"got {h.shape}")
    _checks.check_finite(h, name, hint="")
    return h


def kmeans(h, M: int, iters: int = 10, rng=None, *, backend="numpy"):
    """Per-codebook k-means of heads ``h (B, C, N, d_k)`` into ``M`` centres.

    Centres start as ``M`` heads drawn with replacement (per codebook); each of ``iters`` rounds
    assigns every head to its nearest centre (ties to the lower index) and moves each non-empty
    centre to the mean of its heads; an empty cluster keeps its centre.

    Returns
    -------
    centres : (C, M, d_k), ``h``'s dtype; counts : (C, M) int64, the last round's cluster sizes
    (zeros if ``iters == 0``).
    """
    h = _heads(h, "h")
    M = _checks.check_number(M, "M", integer=True, low=1)
    iters = _checks.check_number(iters, "iters", integer=True, low=0)
    rng = _checks.check_rng(rng)
    B, C, N, d_k = h.shape
    rows = h.transpose(1, 0, 2, 3).reshape(C, B * N, d_k)  # (C, B N, d_k)
    pick = rng.integers(0, B * N, size=(C, M))  # (C, M) with replacement
    centres = np.take_along_axis(rows, pick[..., None], axis=1)  # (C, M, d_k)
    counts = np.zeros((C, M), np.int64)
    for _ in range(iters):
        n, s = kv_assign_stats(h, centres, backend=backend)  # (C, M), (C, M, d_k)
        counts = np.asarray(n).astype(np.int64)
        full = counts > 0  # (C, M)
        centres = np.where(full[..., None], s / np.maximum(counts, 1)[..., None], centres)
        centres = centres.astype(h.dtype, copy=False)
    return centres, counts


class KVCodebooks:
    """``C`` codebooks of ``M`` key-value pairs: keys ``(C, M, d_k)``, values ``(C, M, d_v)``.

    Parameters
    ----------
    C, M, d_k, d_v : int >= 1.
    dtype : float32 or float64 (every float buffer).
    rng : Generator or seed for the initial ``N(0, 1)`` keys (the official ``init_mode="random"``).

    Attributes
    ----------
    keys : (C, M, d_k); values : (C, M, d_v), zeros until :meth:`init_values`.
    keys_avg : (C, M, d_k) — EMA of per-key sums of assigned heads; starts as the initial keys.
    cluster_size : (C, M) — EMA of per-key assignment counts; starts at zero.
    usage : (C, M) int64 — selections counted while ``count_usage`` is on.
    update_keys : bool — keys are being fitted (phase 1); :meth:`freeze_keys` ends it.
    count_usage : bool — forward passes add their selections to ``usage``.
    mask_unused : bool — lookups exclude pairs with ``usage == 0`` (evaluation).
    """

    def __init__(self, C: int, M: int, d_k: int, d_v: int, *, dtype=np.float64, rng=None):
        self.C, self.M, self.d_k, self.d_v = (_checks.check_number(v, n, integer=True, low=1)
                                              for v, n in ((C, "C"), (M, "M"), (d_k, "d_k"),
                                                           (d_v, "d_v")))
        self.dtype = _checks.check_float_dtype(dtype, "dtype")
        self.keys = _checks.check_rng(rng).standard_normal((self.C, self.M, self.d_k)).astype(
            self.dtype)
        self.values = np.zeros((self.C, self.M, self.d_v), self.dtype)
        self.keys_avg = self.keys.copy()
        self.cluster_size = np.zeros((self.C, self.M), self.dtype)
        self.usage = np.zeros((self.C, self.M), np.int64)
        self.update_keys, self.count_usage, self.mask_unused = True, False, False

    def __repr__(self) -> str:
        return (f"KVCodebooks(C={self.C}, M={self.M}, d_k={self.d_k}, d_v={self.d_v}, "
                f"dtype={self.dtype.name}, update_keys={self.update_keys})")

    # --- initialisation -----------------------------------------------------------------------

    def init_keys(self, mode: str = "random", data=None, kmeans_iters: int = 10, rng=None, *,
                  backend="numpy") -> None:
        """Reset the keys and their EMA buffers.

        ``"random"``: keys ``N(0, 1)``, ``keys_avg`` = keys, ``cluster_size`` = 0 (the official
        buffers at construction). ``"kmeans"``: :func:`kmeans` of ``data (B, C, N, d_k)``;
        ``cluster_size`` = the final cluster sizes and ``keys_avg = keys * cluster_size``, so the
        EMA state is consistent with the keys. (The official ``init_embed_`` leaves ``keys_avg``
        at its zero initial value, which the first EMA step then pulls towards 0.)
        """
        _checks.check_choice(mode, "mode", KEY_INITS)
        if mode == "random":
            if data is not None:
                raise ValueError("data must be None for mode 'random' (it is used by 'kmeans')")
            self.keys = _checks.check_rng(rng).standard_normal(self.keys.shape).astype(self.dtype)
            self.keys_avg = self.keys.copy()
            self.cluster_size = np.zeros((self.C, self.M), self.dtype)
            return
        if data is None:
            raise ValueError("data must be heads (B, C, N, d_k) for mode 'kmeans', got None")
        data = _heads(data)
        if data.shape[1] != self.C or data.shape[3] != self.d_k:
            raise ValueError(f"data must have shape (B, C, N, d_k) with C = {self.C} and "
                             f"d_k = {self.d_k}, got {data.shape}")
        centres, counts = kmeans(data, self.M, kmeans_iters, rng, backend=backend)
        self.keys = centres.astype(self.dtype)
        self.cluster_size = counts.astype(self.dtype)
        self.keys_avg = self.keys * self.cluster_size[..., None]

    def init_values(self, mode: str = "zeros", scale: float = 1.0, rng=None) -> None:
        """Values ``scale * 0`` (``"zeros"``, the ICML sweeps), ``scale * N(0, 1)`` (``"randn"``;
        the 2-D toy uses ``scale = 0.001``) or ``scale * U[0, 1)`` (``"rand"``)."""
        _checks.check_choice(mode, "mode", VALUE_INITS)
        scale = _checks.check_number(scale, "scale")
        shape = self.values.shape
        if mode == "zeros":
            v = np.zeros(shape)
        else:
            r = _checks.check_rng(rng)
            v = r.standard_normal(shape) if mode == "randn" else r.random(shape)
        self.values = (scale * v).astype(self.dtype)

    # --- phases -------------------------------------------------------------------------------

    def freeze_keys(self) -> None:
        """End phase 1: keys, ``keys_avg`` and ``cluster_size`` are no longer changed."""
        self.update_keys = False

    def reset_usage(self) -> None:
        """``usage`` to zero (the official ``reset_cluster_size_counter``)."""
        self.usage = np.zeros((self.C, self.M), np.int64)

    def activate_counts(self) -> None:
        """Training values: count selections, retrieve from every pair."""
        self.count_usage, self.mask_unused = True, False

    def deactivate_counts(self) -> None:
        """Evaluation (official ``deactivate_counts``): stop counting, exclude unused pairs."""
        self.count_usage, self.mask_unused = False, True

    def usage_mask(self) -> np.ndarray | None:
        """``usage > 0`` (C, M) when ``mask_unused`` is on, else None (no pair excluded)."""
        return self.usage > 0 if self.mask_unused else None

    def fraction_unused(self) -> float:
        """Share of the ``C M`` pairs never selected since the last :meth:`reset_usage`."""
        return float(np.mean(self.usage == 0))

    def count(self, idx) -> None:
        """Add the selections ``idx (B, C, N, k)`` (every top-k slot) to ``usage``."""
        idx = _checks.int_array(idx, "idx", ndim=4, low=0, high=self.M, form="(B, C, N, k)")
        if idx.shape[1] != self.C:
            raise ValueError(f"idx must have shape (B, C, N, k) with C = {self.C}, "
                             f"got {idx.shape}")
        flat = idx.transpose(1, 0, 2, 3).reshape(self.C, -1)  # (C, B N k)
        for c in range(self.C):
            self.usage[c] += np.bincount(flat[c], minlength=self.M)

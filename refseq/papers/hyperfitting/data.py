"""Dataset splits for hyperfitting (arXiv 2412.04318, Sec. 3; official ``src/data.py``).

Every document is truncated to ``seq_len`` tokens and kept only if it *has* ``seq_len`` tokens
(shorter documents are dropped, never padded); the qualifying documents are split into
``n_train`` training rows, then ``n_val`` validation rows, and the generation-validation set is
the first ``n_gen_val`` validation rows. ``selection="first"`` takes the first qualifying
documents in the given order (the official loader, which biases the sample towards long
documents and towards the start of the corpus); ``"random"`` draws them uniformly without
replacement among all qualifying documents (the paper's "randomly selected").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from refseq import _checks

__all__ = ["SELECTIONS", "HyperfitSplits", "make_hyperfit_splits", "epoch_batches"]

SELECTIONS = ("first", "random")


class HyperfitSplits(NamedTuple):
    """``train (n_train, seq_len)``, ``val (n_val, seq_len)``, ``gen_val (n_gen_val, seq_len)``
    (``gen_val`` = ``val[:n_gen_val]``), all int64 and fresh arrays."""

    train: np.ndarray
    val: np.ndarray
    gen_val: np.ndarray


def make_hyperfit_splits(documents: Iterable, n_train: int = 2000, n_val: int = 128,
                         n_gen_val: int = 32, seq_len: int = 256, selection: str = "first",
                         rng=None) -> HyperfitSplits:
    """Build the train / validation / generation-validation splits.

    Parameters
    ----------
    documents : iterable of 1-d int arrays (token ids >= 0), in dataset order. With
        ``selection="first"`` it is read only until enough documents qualify.
    n_train, n_val : int >= 1 and >= 0. n_gen_val : int in [0, n_val].
    seq_len : int >= 1, the length every kept row has.
    selection : "first" (official code) or "random" (the paper's description).
    rng : numpy Generator or seed, used by ``"random"`` only.

    Returns
    -------
    HyperfitSplits. Train and validation rows come from different documents.

    Raises
    ------
    ValueError if fewer than ``n_train + n_val`` documents have ``seq_len`` tokens (the
    official loader would silently return fewer).
    """
    n_train = _checks.check_number(n_train, "n_train", integer=True, low=1)
    n_val = _checks.check_number(n_val, "n_val", integer=True, low=0)
    n_gen_val = _checks.check_number(n_gen_val, "n_gen_val", integer=True, low=0, high=n_val)
    seq_len = _checks.check_number(seq_len, "seq_len", integer=True, low=1)
    _checks.check_choice(selection, "selection", SELECTIONS)
    if isinstance(documents, (str, bytes)) or not hasattr(documents, "__iter__"):
        raise TypeError(f"documents must be an iterable of 1-d int arrays, got "
                        f"{type(documents).__name__}")
    need = n_train + n_val
    kept = []
    for i, doc in enumerate(documents):
        d = np.asarray(doc)
        if d.size == 0 and d.dtype.kind == "f":
            d = d.astype(np.int64)
        d = _checks.int_array(d, f"documents[{i}]", low=0, ndim=1, form="(length,)")
        if len(d) >= seq_len:
            kept.append(d[:seq_len].astype(np.int64))  # truncate; shorter ones are dropped
            if selection == "first" and len(kept) == need:
                break
    if len(kept) < need:
        raise ValueError(f"documents must hold at least n_train + n_val = {need} documents of "
                         f">= seq_len = {seq_len} tokens, found {len(kept)}")
    rows = np.stack(kept)  # (n_kept, seq_len)
    if selection == "random":
        pick = _checks.check_rng(rng).permutation(len(rows))[:need]
        rows = rows[pick]  # (need, seq_len)
    train, val = rows[:n_train].copy(), rows[n_train:need].copy()
    return HyperfitSplits(train, val, val[:n_gen_val].copy())


def epoch_batches(n: int, batch_size: int, shuffle: bool, drop_last: bool,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of one epoch's batches: a permutation of ``range(n)`` (``shuffle``) or the
    dataset order, cut into ``batch_size`` pieces; ``drop_last`` drops a final short piece
    (``torch.utils.data.DataLoader`` semantics)."""
    n = _checks.check_number(n, "n", integer=True, low=0)
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    shuffle = _checks.check_flag(shuffle, "shuffle")
    drop_last = _checks.check_flag(drop_last, "drop_last")
    rng = _checks.check_rng(rng)
    order = rng.permutation(n) if shuffle else np.arange(n)  # (n,)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]

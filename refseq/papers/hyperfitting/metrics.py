"""The paper's evaluation numbers: validation loss / perplexity, predictive entropy, greedy TTR,
top-1 agreement and rank statistics (arXiv 2412.04318, Sec. 3-5; official ``src/validation.py``).

Conventions of the official code, reproduced here (they matter when numbers are compared):

* validation loss = **mean of batch means** (``total_loss / len(dataloader)``), each batch mean
  being the mean next-token cross-entropy over its ``B (T - 1)`` predicted positions; a final,
  smaller batch weighs as much as a full one. Perplexity = ``exp(val_loss)``.
* entropy ``H = -sum_v p_v log(p_v + 1e-9)`` (natural log, ``eps`` inside the log) at **all**
  ``T`` positions of a batch (the last one included, although it predicts nothing), averaged
  over the batch's positions, then over batches (mean of batch means).
* TTR over the last 96 *generated* tokens; the official code takes the slice from the padded
  ``generate`` output, so tokens after EOS count. ``mean_ttr(exclude_pad=True)`` (default)
  drops them, ``exclude_pad=False`` reproduces the official number.

A ``model`` is a :class:`~refseq.models.tiny_transformer.TinyParams` or any callable
``logits_fn(tokens (B, T)) -> logits (B, T, V)`` (e.g. a wrapped Hugging Face model), so that
peers are scored by the same functions.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.metrics.diversity import type_token_ratio
from refseq.models.tiny_transformer import TinyParams, forward

__all__ = ["teacher_forced_logits", "mean_entropy", "validate", "val_loss", "perplexity",
           "mean_ttr", "top1_agreement", "reference_rank", "rank_stats"]


def _rows(tokens, name: str, V: int | None = None) -> np.ndarray:
    t = _checks.int_array(tokens, name, low=0, high=V, ndim=2, form="(N, T)")
    if 0 in t.shape:
        raise ValueError(f"{name} must have shape (N, T) with N, T >= 1, got {t.shape}")
    return t.astype(np.int64)


def teacher_forced_logits(model, tokens, batch_size: int = 8) -> list[np.ndarray]:
    """Logits of every position of ``tokens (N, T)``, in batches of ``batch_size`` rows (the
    last may be smaller): a list of ``(B_i, T, V)`` arrays, ``logits[b][i, t]`` predicting token
    ``t + 1`` of row ``i``."""
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    if isinstance(model, TinyParams):
        V = model.config.vocab_size
        fn = lambda x: forward(model, tokens=x, return_hidden=False)[0]  # noqa: E731
    elif callable(model):
        V, fn = None, model
    else:
        raise TypeError(f"model must be TinyParams or a callable tokens (B, T) -> logits "
                        f"(B, T, V), got {type(model).__name__}")
    tokens = _rows(tokens, "tokens", V)
    out = []
    for i in range(0, len(tokens), batch_size):
        x = tokens[i:i + batch_size]  # (B_i, T)
        lg = _checks.float_array(fn(x), "model logits")
        if lg.ndim != 3 or lg.shape[:2] != x.shape:
            raise ValueError(f"model logits must have shape (B, T, V) = ({x.shape[0]}, "
                             f"{x.shape[1]}, V), got {lg.shape}")
        out.append(lg)
    return out


def _batches(logits, name: str = "logits") -> list[np.ndarray]:
    """One ``(B, T, V)`` array or a list of them -> a list of float arrays."""
    if isinstance(logits, np.ndarray):
        logits = [logits]
    if not isinstance(logits, (list, tuple)) or not logits:
        raise TypeError(f"{name} must be a (B, T, V) float array or a non-empty list of them")
    out = []
    for i, lg in enumerate(logits):
        lg = _checks.float_array(lg, f"{name}[{i}]")
        if lg.ndim != 3 or 0 in lg.shape:
            raise ValueError(f"{name}[{i}] must have shape (B, T, V) with no empty axis, got "
                             f"{lg.shape}")
        out.append(lg)
    return out


def mean_entropy(logits, eps: float = 1e-9) -> float:
    """Mean over batches of the mean over positions of ``-sum_v p_v log(p_v + eps)`` (nats).

    ``logits``: one batch ``(B, T, V)`` or a list of batches (the official code's mean of batch
    means). Computed in float64. For uniform logits the value is ``log V`` up to ``V eps``.
    """
    eps = _checks.check_number(eps, "eps", low=0)
    means = []
    for lg in _batches(logits):
        p = np.exp(log_softmax(lg))  # (B, T, V) float64
        h = -np.sum(p * np.log(p + eps), axis=-1)  # (B, T)
        means.append(h.mean())
    return float(np.mean(means))


def _batch_loss(lg: np.ndarray, x: np.ndarray) -> float:
    """Mean cross-entropy of ``x[:, 1:]`` under ``lg[:, :-1]``: the ``B (T - 1)`` predictions."""
    lp = log_softmax(lg[:, :-1])  # (B, T - 1, V)
    return float(-np.take_along_axis(lp, x[:, 1:, None], axis=-1).mean())


def validate(model, val, batch_size: int = 8, eps: float = 1e-9) -> tuple[float, float]:
    """``(val_loss, val_entropy)`` of ``val (N, T)`` with the official conventions (module
    docstring), both from the same teacher-forced logits. ``T >= 2``."""
    val = _rows(val, "val", model.config.vocab_size if isinstance(model, TinyParams) else None)
    if val.shape[1] < 2:
        raise ValueError(f"val must have T >= 2 tokens per row (T - 1 predictions), got "
                         f"{val.shape}")
    logits = teacher_forced_logits(model, val, batch_size)
    xs = [val[i:i + batch_size] for i in range(0, len(val), batch_size)]
    loss = float(np.mean([_batch_loss(lg, x) for lg, x in zip(logits, xs)]))
    return loss, mean_entropy(logits, eps)


def val_loss(model, val, batch_size: int = 8) -> float:
    """Mean of batch means of next-token cross-entropy (nats) over ``val (N, T)``."""
    return validate(model, val, batch_size)[0]


def perplexity(loss: float) -> float:
    """``exp(loss)`` of a mean cross-entropy in nats (``exp(val_loss)``, as the paper reports)."""
    return float(np.exp(_checks.check_number(loss, "loss", low=0)))


def mean_ttr(continuations, lengths=None, window: int | None = 96,
             exclude_pad: bool = True) -> float:
    """Mean over rows of :func:`~refseq.metrics.type_token_ratio` of each continuation.

    Parameters
    ----------
    continuations : (n, G) int — generated tokens only (no context), padded after EOS.
    lengths : (n,) int in [1, G] — generated tokens per row, EOS included; None = all G.
    window : the last ``window`` tokens (96 in the paper); None = all.
    exclude_pad : True: row i is ``continuations[i, :lengths[i]]``; False: the whole padded
        row, the official code's number.
    """
    c = _rows(continuations, "continuations")
    exclude_pad = _checks.check_flag(exclude_pad, "exclude_pad")
    if lengths is None:
        lengths = np.full(len(c), c.shape[1])
    lengths = _checks.int_array(lengths, "lengths", low=1, high=c.shape[1] + 1, ndim=1,
                                form="(n,)")
    _checks.check_shape(lengths, (len(c),), "lengths", "(n,)")
    rows = [c[i, :lengths[i]] if exclude_pad else c[i] for i in range(len(c))]
    return float(np.mean([type_token_ratio(r, window) for r in rows]))


def _pair(a, b, names=("logits_a", "logits_b")):
    a = _checks.float_array(a, names[0], ndim_min=1)
    b = _checks.float_array(b, names[1], ndim_min=1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} must have the same non-empty shape "
                         f"(..., V), got {a.shape} and {b.shape}")
    return a, b


def top1_agreement(logits_a, logits_b) -> float:
    """Fraction of positions where two models' arg-max tokens agree (ties: lowest id).

    ``logits_a``, ``logits_b``: ``(..., V)`` over the same positions (e.g. teacher-forced
    validation logits of two hyperfitted models). The paper reports ~30% *disagreement* for two
    LLMs hyperfitted on the same data in different orders.
    """
    a, b = _pair(logits_a, logits_b)
    return float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))


def reference_rank(logits_reference, tokens) -> np.ndarray:
    """Rank of ``tokens (...)`` under ``logits_reference (..., V)``: the number of tokens with a
    larger logit plus the number of lower ids with an equal one (rank 0 = the reference's
    arg-max under the lowest-id tie rule)."""
    z = _checks.float_array(logits_reference, "logits_reference", ndim_min=1)
    t = _checks.int_array(tokens, "tokens", low=0, high=z.shape[-1])
    _checks.check_shape(t, z.shape[:-1], "tokens", "logits_reference.shape[:-1]")
    v = t.astype(np.int64)[..., None]  # (..., 1)
    zv = np.take_along_axis(z, v, axis=-1)  # (..., 1)
    ids = np.arange(z.shape[-1])  # (V,)
    return ((z > zv) | ((z == zv) & (ids < v))).sum(axis=-1)  # (...)


def rank_stats(logits_model, logits_reference, targets=None) -> dict:
    """How the model's top-1 prediction relates to a reference model (the paper's "top-rank
    encouragement" analysis: sharpening keeps the reference's top-1, re-ranking does not).

    Parameters
    ----------
    logits_model, logits_reference : (..., V) over the same positions.
    targets : (...) int, optional — the true next tokens.

    Returns
    -------
    dict with ``top1_prob`` (mean max_v p_model(v)), ``top1_is_target`` (fraction of positions
    whose target is the model's arg-max; only with ``targets``), ``ranks`` ((...) int: the
    reference's rank of the model's arg-max), ``rank_hist`` ((V,) counts of ``ranks``),
    ``same_top1`` (fraction of rank 0, = :func:`top1_agreement`).
    """
    m, r = _pair(logits_model, logits_reference, ("logits_model", "logits_reference"))
    top = np.argmax(m, axis=-1)  # (...)
    ranks = reference_rank(r, top)  # (...)
    out = {"top1_prob": float(np.exp(log_softmax(m)).max(axis=-1).mean()),
           "ranks": ranks, "rank_hist": np.bincount(ranks.ravel(), minlength=m.shape[-1]),
           "same_top1": float(np.mean(ranks == 0))}
    if targets is not None:
        t = _checks.int_array(targets, "targets", low=0, high=m.shape[-1])
        _checks.check_shape(t, top.shape, "targets", "logits_model.shape[:-1]")
        out["top1_is_target"] = float(np.mean(top == t))
    return out

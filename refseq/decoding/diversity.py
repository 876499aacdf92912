"""Diversity penalties of diverse beam search (Vijayakumar et al., arXiv 1610.02424, Sec. 4-5).

Diverse beam search (:mod:`refseq.decoding.diverse_beam`) ranks the candidates ``(b, v)`` of
group ``g`` at step ``t`` by ``log p(v | y_b) - lambda_g * P[b, v]``. A diversity function returns
that **penalty** ``P`` (larger = less diverse); the paper writes the same term as a bonus
``+ lambda Delta`` with ``Delta = -P``. Every function compares group ``g``'s beams with the
*earlier* groups' sequences at this step:

==================================  ============================================================
function                            ``P[b, v]`` (sums run over the earlier groups' sequences m)
==================================  ============================================================
:func:`hamming_penalty`             ``sum_m 1[v = y_m,t]`` (independent of b; multiplicity counts)
:func:`cumulative_penalty`          ``sum_m 1[v = y_m,t] exp(-D_bm / gamma)``, ``D_bm`` the number
                                    of earlier positions where beam b and sequence m differ
:func:`ngram_penalty`               ``sum_n sum_m count of (y_b,t-n+1..t-1, v) among all n-grams
                                    of y_m,1..t``
:func:`embedding_penalty`           ``sum_m cos(e_v, e_y_m,t)`` (soft Hamming)
:func:`embedding_ngram_penalty`     ``sum_m cos(sum of the candidate n-gram's vectors, sum of
                                    m's last n token vectors)``
==================================  ============================================================

The search calls a diversity function through one protocol (:data:`DIVERSITY`)::

    penalty(group_prefixes (B', t-1) int, prev_sequences (M, t) int, vocab_size, **kwargs)
        -> (B', V) or (V,) float      # (V,) is broadcast to every beam of the group

``group_prefixes`` are the tokens the group's beams generated before step ``t``;
``prev_sequences`` the ``M`` sequences the earlier groups contribute at step ``t`` (their last
column is ``y_m,t``). A user callable with this signature can be passed as ``diversity=``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

__all__ = ["DIVERSITY", "cumulative_penalty", "embedding_ngram_penalty", "embedding_penalty",
           "hamming_penalty", "ngram_penalty"]

SCOPES = ("pair", "group")


def _tokens(x, name, V, ndim, form):
    arr = np.asarray(x)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    return _checks.int_array(arr, name, low=0, high=V, ndim=ndim, form=form).astype(np.int64)


def _vocab(V):
    return _checks.check_number(V, "vocab_size", integer=True, low=1)


def hamming_penalty(prev_tokens_t, vocab_size: int) -> np.ndarray:
    """Hamming diversity: ``P[v]`` = how many of the earlier groups' beams chose ``v`` at this step.

    Parameters
    ----------
    prev_tokens_t : (M,) int — the tokens ``y_m,t`` of the earlier groups' beams (may be empty).
    vocab_size : V.

    Returns
    -------
    (V,) float64 — ``P[v] = sum_m 1[v = y_m,t]``: a token chosen by k earlier beams costs
    ``k lambda`` (the paper's Sec. 5, the official code, Hugging Face and fairseq all count
    multiplicity).
    """
    V = _vocab(vocab_size)
    prev = _tokens(prev_tokens_t, "prev_tokens_t", V, 1, "(M,)")
    return np.bincount(prev, minlength=V).astype(np.float64)  # (V,)


def _mismatches(group_prefixes, prev_prefixes):
    """``D[b, m]`` = positions where beam b and sequence m differ, (B', M)."""
    return (group_prefixes[:, None, :] != prev_prefixes[None, :, :]).sum(axis=2)  # (B', M)


def cumulative_penalty(group_prefixes, prev_prefixes, prev_tokens_t, vocab_size: int,
                       gamma: float = 1.0, scope: str = "pair") -> np.ndarray:
    """Cumulative (back-off) Hamming diversity, a reading of the paper's Sec. 5.

    Parameters
    ----------
    group_prefixes : (B', t-1) int — the group's beams before step t.
    prev_prefixes : (M, t-1) int — the earlier groups' beams before step t.
    prev_tokens_t : (M,) int — their tokens at step t.
    vocab_size : V. gamma : float > 0 — the back-off temperature ``Gamma``.
    scope : "pair" — ``D_bm`` counts the mismatches between beam b and sequence m;
        "group" — every beam uses ``sum_b'' D_b''m`` (the paper's formula read literally, which
        sums mismatches over all beams of the group).

    Returns
    -------
    (B', V) float64 — ``P[b, v] = sum_m 1[v = y_m,t] exp(-D_bm / gamma)``. ``gamma -> inf``
    gives :func:`hamming_penalty`; a small ``gamma`` drops the penalty of every pair that has
    already differed somewhere.
    """
    V = _vocab(vocab_size)
    gp = _tokens(group_prefixes, "group_prefixes", V, 2, "(B', t-1)")
    pp = _tokens(prev_prefixes, "prev_prefixes", V, 2, "(M, t-1)")
    prev = _tokens(prev_tokens_t, "prev_tokens_t", V, 1, "(M,)")
    gamma = _checks.check_number(gamma, "gamma", low=0, low_open=True)
    _checks.check_choice(scope, "scope", SCOPES)
    if pp.shape != (len(prev), gp.shape[1]):
        raise ValueError(f"prev_prefixes must have shape (M, t-1) = ({len(prev)}, {gp.shape[1]}),"
                         f" got {pp.shape}")
    D = _mismatches(gp, pp).astype(np.float64)  # (B', M)
    if scope == "group":
        D = np.broadcast_to(D.sum(axis=0), D.shape)  # (B', M)
    weight = np.exp(-D / gamma)  # (B', M)
    onehot = np.zeros((len(prev), V))  # (M, V)
    onehot[np.arange(len(prev)), prev] = 1.0
    return weight @ onehot  # (B', V)


def ngram_penalty(group_prefixes, prev_sequences, vocab_size: int, n=2) -> np.ndarray:
    """n-gram diversity: how often the n-gram a candidate completes occurs in earlier groups.

    Parameters
    ----------
    group_prefixes : (B', t-1) int. prev_sequences : (M, t) int — the earlier groups' beams up to
        and including step t. vocab_size : V.
    n : int >= 1 or a non-empty list of them (penalties add up over the list).

    Returns
    -------
    (B', V) float64 — ``P[b, v]`` = number of (sequence m, position) pairs at which the n-gram
    ``(y_b,t-n+1, ..., y_b,t-1, v)`` occurs in ``y_m,1..t`` (anywhere, not aligned in time).
    An n-gram that would reach before the first generated token is skipped (no penalty for that
    ``n`` while ``t < n``). ``n = 1`` counts every use of ``v`` by the earlier groups so far.
    """
    V = _vocab(vocab_size)
    gp = _tokens(group_prefixes, "group_prefixes", V, 2, "(B', t-1)")
    prev = _tokens(prev_sequences, "prev_sequences", V, 2, "(M, t)")
    ns = [n] if not isinstance(n, (list, tuple)) else list(n)
    if not ns:
        raise ValueError("n must be an int >= 1 or a non-empty list of them, got []")
    ns = [_checks.check_number(k, "n", integer=True, low=1) for k in ns]
    t = gp.shape[1] + 1
    if prev.shape[1] != t:
        raise ValueError(f"prev_sequences must have shape (M, t) with t = {t} (one more column "
                         f"than group_prefixes), got {prev.shape}")
    out = np.zeros((gp.shape[0], V))
    for k in ns:
        if t < k or len(prev) == 0:
            continue
        grams = np.lib.stride_tricks.sliding_window_view(prev, k, axis=1).reshape(-1, k)  # (M', k)
        for b in range(gp.shape[0]):
            context = gp[b, t - k:]  # (k-1,) the tokens the candidate's n-gram starts with
            hit = np.all(grams[:, :-1] == context, axis=1)  # (M',)
            out[b] += np.bincount(grams[hit, -1], minlength=V)
    return out


def _unit_rows(emb):
    emb = _checks.float_array(emb, "emb").astype(np.float64)
    if emb.ndim != 2 or 0 in emb.shape:
        raise ValueError(f"emb must have shape (V, d) with V, d >= 1, got {emb.shape}")
    _checks.check_finite(emb, "emb", hint="")
    norm = np.linalg.norm(emb, axis=1, keepdims=True)  # (V, 1)
    if np.any(norm == 0):
        raise ValueError(f"emb rows must be non-zero (cosine undefined), row "
                         f"{int(np.argmin(norm[:, 0]))} is zero")
    return emb / norm


def _cos(a, b, clip_negative):
    """Cosine similarities of the rows of a (P, d) with those of b (M, d), (P, M)."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a @ b.T) / (na[:, None] * nb[None, :])  # (P, M)
    c = np.nan_to_num(c, nan=0.0)  # a zero n-gram vector is similar to nothing
    return np.maximum(c, 0.0) if clip_negative else c


def embedding_penalty(emb, prev_tokens_t, clip_negative: bool = False) -> np.ndarray:
    """Neural-embedding diversity (soft Hamming): ``P[v] = sum_m cos(e_v, e_y_m,t)``.

    Parameters
    ----------
    emb : (V, d) float — token vectors (no zero row). prev_tokens_t : (M,) int.
    clip_negative : replace negative cosines by 0, so a dissimilar earlier token is never a
        bonus (the paper does not say; raw cosines can reward).

    Returns
    -------
    (V,) float64. One-hot embeddings give :func:`hamming_penalty` exactly.
    """
    unit = _unit_rows(emb)
    prev = _tokens(prev_tokens_t, "prev_tokens_t", unit.shape[0], 1, "(M,)")
    clip = _checks.check_flag(clip_negative, "clip_negative")
    cos = unit @ unit[prev].T  # (V, M)
    return (np.maximum(cos, 0.0) if clip else cos).sum(axis=1)  # (V,)


def embedding_ngram_penalty(emb, group_prefixes, prev_sequences, n: int = 2,
                            clip_negative: bool = False) -> np.ndarray:
    """Soft n-gram diversity: an n-gram's vector is the sum of its token vectors.

    ``P[b, v] = sum_m cos(e_y_b,t-n+1 + ... + e_y_b,t-1 + e_v,  e_y_m,t-n+1 + ... + e_y_m,t)``:
    the candidate's n-gram against the n-gram each earlier sequence ends with at step ``t``
    (aligned in time, like Hamming; while ``t < n`` both n-grams are the first ``t`` tokens).
    ``n = 1`` is :func:`embedding_penalty`. Shapes: emb (V, d), group_prefixes (B', t-1),
    prev_sequences (M, t); returns (B', V) float64.
    """
    unit = _unit_rows(emb)
    V = unit.shape[0]
    gp = _tokens(group_prefixes, "group_prefixes", V, 2, "(B', t-1)")
    prev = _tokens(prev_sequences, "prev_sequences", V, 2, "(M, t)")
    n = _checks.check_number(n, "n", integer=True, low=1)
    clip = _checks.check_flag(clip_negative, "clip_negative")
    t = gp.shape[1] + 1
    if prev.shape[1] != t:
        raise ValueError(f"prev_sequences must have shape (M, t) with t = {t}, got {prev.shape}")
    k = min(n, t) - 1  # context tokens before the candidate
    ctx = unit[gp[:, t - 1 - k:]].sum(axis=1)  # (B', d)
    theirs = unit[prev[:, t - 1 - k:]].sum(axis=1)  # (M, d)
    cand = ctx[:, None, :] + unit[None, :, :]  # (B', V, d)
    B = gp.shape[0]
    return _cos(cand.reshape(B * V, -1), theirs, clip).sum(axis=1).reshape(B, V)  # (B', V)


# ------------------------------------------------------------------ the search's protocol
def _hamming(group_prefixes, prev_sequences, vocab_size):
    return hamming_penalty(np.asarray(prev_sequences)[:, -1], vocab_size)


def _cumulative(group_prefixes, prev_sequences, vocab_size, gamma=1.0, scope="pair"):
    prev = np.asarray(prev_sequences)
    return cumulative_penalty(group_prefixes, prev[:, :-1], prev[:, -1], vocab_size, gamma, scope)


def _ngram(group_prefixes, prev_sequences, vocab_size, n=2):
    return ngram_penalty(group_prefixes, prev_sequences, vocab_size, n)


def _embedding(group_prefixes, prev_sequences, vocab_size, emb=None, clip_negative=False):
    _check_emb(emb, vocab_size)
    return embedding_penalty(emb, np.asarray(prev_sequences)[:, -1], clip_negative)


def _embedding_ngram(group_prefixes, prev_sequences, vocab_size, emb=None, n=2,
                     clip_negative=False):
    _check_emb(emb, vocab_size)
    return embedding_ngram_penalty(emb, group_prefixes, prev_sequences, n, clip_negative)


def _check_emb(emb, vocab_size):
    if emb is None:
        raise TypeError("diversity='embedding' needs emb=(V, d) float array (a keyword)")
    if np.shape(emb)[0] != vocab_size:
        raise ValueError(f"emb must have shape (V, d) with V = {vocab_size}, got {np.shape(emb)}")


DIVERSITY = {
    "hamming": _hamming,
    "cumulative": _cumulative,
    "ngram": _ngram,
    "embedding": _embedding,
    "embedding_ngram": _embedding_ngram,
}
"""Name -> ``penalty(group_prefixes, prev_sequences, vocab_size, **kwargs)`` (module docstring);
the keyword arguments are ``gamma, scope`` (cumulative), ``n`` (ngram, embedding_ngram),
``emb, clip_negative`` (embedding, embedding_ngram)."""

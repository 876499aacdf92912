"""Citation blocking and training-data overlap (arXiv 2412.04318, Sec. 5, "citation blocking").

A hyperfitted model could simply recite its training data. The paper measures how much of its
output repeats training subsequences and decodes with a *citation blocker* that forbids it.
With ``z`` the context followed by the tokens generated so far and ``D`` the training set, the
blocked set at step ``t`` is

.. math:: F_t = \\{v : (z_{t-n+1}, \\dots, z_{t-1}, v) \\in \\mathrm{NGrams}_n(D)\\}

and ``log p_t(v) = -inf`` for ``v in F_t``, unless ``F_t`` is the whole vocabulary: then that
step is left unchanged and recorded. The window runs over the context/continuation boundary
(blocking inside the continuation only would under-block). The paper does not state ``n``
here (**unconfirmed**); the default is 5.

:class:`NgramIndex` stores every n-gram of the training rows in a hash set plus a map
``(n-1)-gram -> next tokens``, so a blocker step is one dictionary lookup per row.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from refseq import _checks
from refseq.decoding.processors import check_step_inputs
from refseq.metrics.diversity import _sequences, _tokens

__all__ = ["NgramIndex", "CitationBlocker", "citation_blocker", "training_overlap",
           "longest_common_substring"]


class NgramIndex:
    """All n-grams of ``train`` (a list of 1-d int arrays or an ``(N, T)`` array).

    Attributes: ``n``; ``ngrams`` (set of n-tuples); ``next_tokens`` (dict ``(n-1)``-tuple ->
    sorted int64 array of the tokens that follow it in the training data); ``sequences`` (the
    training rows, copies, for :func:`longest_common_substring`). An empty ``train`` gives an
    empty index (a blocker that blocks nothing).
    """

    def __init__(self, train, n: int):
        self.n = _checks.check_number(n, "n", integer=True, low=1)
        self.sequences = [s.copy() for s in _sequences(train, "train")]
        self.ngrams: set[tuple] = set()
        follow: dict[tuple, set] = defaultdict(set)
        for s in self.sequences:
            for i in range(len(s) - self.n + 1):
                g = tuple(int(x) for x in s[i:i + self.n])
                self.ngrams.add(g)
                follow[g[:-1]].add(g[-1])
        self.next_tokens = {k: np.array(sorted(v), np.int64) for k, v in follow.items()}

    def __contains__(self, ngram) -> bool:
        return tuple(int(x) for x in ngram) in self.ngrams

    def blocked(self, history) -> np.ndarray:
        """Token ids ``v`` with ``(history[-(n-1):], v)`` a training n-gram (empty if
        ``history`` is shorter than ``n - 1``)."""
        k = self.n - 1
        if len(history) < k:
            return np.zeros(0, np.int64)
        key = tuple(int(x) for x in history[len(history) - k:])
        return self.next_tokens.get(key, np.zeros(0, np.int64))

    def __repr__(self):
        return (f"NgramIndex(n={self.n}, {len(self.sequences)} sequences, "
                f"{len(self.ngrams)} distinct n-grams)")


class CitationBlocker:
    """The logprob processor of the module docstring (``proc(generated, logprobs)``).

    ``contexts``: one 1-d int array per row (the prompt the row continues), or None (histories
    are the generated tokens only). Row ``r``'s history is ``contexts[r]`` followed by
    ``generated[r]``, so the decoder must keep every row (no EOS) or decode one context per
    call; :func:`~refseq.papers.hyperfitting.protocol.continue_greedy` does this.
    ``events`` (shared by :meth:`bind` copies) lists ``(row, t)`` of the steps at which every
    token was blocked and the distribution was left unchanged.
    """

    def __init__(self, index: NgramIndex, contexts=None, events: list | None = None,
                 row_offset: int = 0):
        self.index = _checks.check_instance(index, NgramIndex, "index")
        self.contexts = None if contexts is None else _sequences(contexts, "contexts")
        self.events = [] if events is None else _checks.check_instance(events, list, "events")
        self.row_offset = _checks.check_number(row_offset, "row_offset", integer=True, low=0)

    def bind(self, contexts, row_offset: int = 0) -> CitationBlocker:
        """A blocker for these contexts that appends to the same ``events`` (rows numbered
        from ``row_offset``)."""
        return CitationBlocker(self.index, contexts, self.events, row_offset)

    def __call__(self, generated, logprobs):
        generated, logprobs = check_step_inputs(generated, logprobs)
        R, V = logprobs.shape
        if self.contexts is not None and R != len(self.contexts):
            raise ValueError(f"generated has {R} rows but the blocker holds {len(self.contexts)}"
                             " contexts (decode without EOS, or one context per call)")
        out = logprobs.copy()
        t = generated.shape[1]
        for r in range(R):
            ctx = self.contexts[r] if self.contexts is not None else generated[r, :0]
            history = np.concatenate([ctx, generated[r]])  # (P + t,)
            ban = self.index.blocked(history)
            ban = ban[ban < V]
            if len(ban) == 0:
                continue
            row = out[r].copy()
            row[ban] = -np.inf
            if np.isneginf(row).all():  # F_t = V: leave the step unchanged, record it
                self.events.append((self.row_offset + r, t))
                continue
            out[r] = row
        return out


def citation_blocker(index: NgramIndex, contexts=None) -> CitationBlocker:
    """The citation blocker over ``index`` (its ``n`` is the blocked n-gram length)."""
    return CitationBlocker(index, contexts)


def longest_common_substring(tokens, sequences) -> int:
    """Length of the longest run of consecutive tokens of ``tokens`` that also occurs
    consecutively in one of ``sequences`` (dynamic programming over all sequences at once:
    the sequences are joined with a separator that matches nothing)."""
    y = _checks.int_array(tokens, "tokens", low=0, ndim=1, form="(T,)")
    sequences = _sequences(sequences, "sequences")
    if len(sequences) == 0 or len(y) == 0:
        return 0
    joined = np.concatenate([np.append(np.asarray(s, np.int64), -1) for s in sequences])  # (S,)
    prev = np.zeros(len(joined), np.int64)  # run length ending at (i - 1, j)
    best = 0
    for tok in y:
        cur = np.zeros_like(prev)
        hit = joined == tok  # (S,)
        cur[0] = hit[0]
        cur[1:] = np.where(hit[1:], prev[:-1] + 1, 0)  # extend the run ending at (i-1, j-1)
        best = max(best, int(cur.max()))
        prev = cur
    return best


def training_overlap(continuation, index_by_n, context=None) -> dict:
    """How much of ``continuation (G,)`` repeats the training data.

    Parameters
    ----------
    continuation : (G,) int — generated tokens (EOS/padding removed by the caller).
    index_by_n : dict n -> :class:`NgramIndex` (e.g. n in (4, 8, 16)), all over the same
        training rows.
    context : (P,) int, optional — the prompt; then n-grams that start in the context and end
        in the continuation count as generated n-grams too (what the blocker forbids).

    Returns
    -------
    dict: ``overlap`` {n: fraction of generated n-grams that are training n-grams (NaN when
    there is none)}, ``counts`` {n: (hits, total)}, ``longest`` (the longest common token
    substring of the continuation with any training row).
    """
    y = _checks.int_array(continuation, "continuation", low=0, ndim=1, form="(G,)")
    if not isinstance(index_by_n, dict) or not index_by_n:
        raise TypeError("index_by_n must be a non-empty dict n -> NgramIndex")
    ctx = np.zeros(0, np.int64) if context is None else _tokens(context, "context")
    z = np.concatenate([ctx, y.astype(np.int64)])  # (P + G,)
    overlap, counts = {}, {}
    for n, idx in sorted(index_by_n.items()):
        _checks.check_instance(idx, NgramIndex, f"index_by_n[{n}]")
        if idx.n != n:
            raise ValueError(f"index_by_n[{n}] indexes {idx.n}-grams, not {n}-grams")
        first = max(len(ctx) - n + 1, 0)  # the first n-gram that ends in the continuation
        starts = range(first, len(z) - n + 1)
        hits = sum(tuple(int(x) for x in z[i:i + n]) in idx.ngrams for i in starts)
        counts[n] = (hits, len(starts))
        overlap[n] = hits / len(starts) if len(starts) else float("nan")
    any_index = next(iter(index_by_n.values()))
    return {"overlap": overlap, "counts": counts,
            "longest": longest_common_substring(y, any_index.sequences)}

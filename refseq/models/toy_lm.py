"""Toy language models with exact probabilities, for testing decoders and for generating
training sequences from a known source.

:class:`TabularLM` is an n-gram model of order ``n`` (the next token depends on the previous
``k = n - 1`` tokens) stored as a dense log-probability table ``(V**k, V)``; it implements the
``StepLM`` protocol of :mod:`refseq.decoding.interfaces`. A context ``(c_1, ..., c_k)`` (oldest
first) is row

.. math:: \\mathrm{idx}(c) = \\sum_{i=1}^{k} c_i V^{k-i}

(the most recent token is the least significant digit). Prompts shorter than ``k`` are left-padded
with ``pad_id`` (a real token of the vocabulary, 0 by default, acting as beginning-of-sequence),
so empty prompts are allowed. ``order = 1`` is a unigram model (table ``(1, V)``).

EOS: ``eos_id`` is a label, not a rule of the table — the model keeps giving distributions after
EOS; decoders and :func:`enumerate_sequences` / :func:`sample_sequences` end a sequence there.

:func:`enumerate_sequences` lives in :mod:`refseq.decoding.exact` (with the other exact-search
utilities) and is re-exported here.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.exact import MAX_ENUMERATE as MAX_ENUMERATE  # re-export
from refseq.decoding.exact import _step_lm
from refseq.decoding.exact import enumerate_sequences as enumerate_sequences  # re-export
from refseq.decoding.interfaces import StepLM, as_prompts, log_softmax


class TabularLM:
    """``TabularLM(order, table, *, pad_id=0, eos_id=None)`` with ``table`` ``(V**(order-1), V)``
    log-probabilities (rows must be normalised: ``logsumexp(row) == 0`` up to rounding; ``-inf``
    marks impossible tokens). ``start``/``step`` return copies of table rows as logits; the state
    is the ``(rows, order-1)`` int64 array of the last ``order-1`` tokens."""

    def __init__(self, order: int, table, *, pad_id: int = 0, eos_id: int | None = None):
        table = np.asarray(table)
        order = _checks.check_number(order, "order", integer=True, low=1)
        table = _checks.float_array(table, "table")
        if table.ndim != 2:
            raise ValueError(f"table must be a 2-d float array (V**(order-1), V), got "
                             f"{table.dtype} {table.shape}")
        V = table.shape[1]
        if V < 1 or table.shape[0] != V ** (order - 1):
            raise ValueError(f"table must have shape (V**(order-1), V) = ({V ** (order - 1)}, {V})"
                             f" for order {order}, got {table.shape}")
        if np.isnan(table).any() or (table == np.inf).any():
            raise ValueError("table must not contain NaN or +inf")
        lse = np.logaddexp.reduce(table.astype(np.float64), axis=1)  # (V**k,)
        tol = 1e-5 if table.dtype == np.float32 else 1e-10
        if not np.all(np.abs(lse) <= tol):
            bad = int(np.argmax(np.abs(lse)))
            raise ValueError(f"table rows must be log-probabilities; row {bad} has logsumexp "
                             f"{lse[bad]:.3g} (normalise with log_softmax first)")
        pad_id = _checks.check_number(pad_id, "pad_id", integer=True, low=0, high=V - 1)
        eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                      allow_none=True)
        self.order, self.table, self.vocab_size = order, table, V
        self.pad_id, self.eos_id = int(pad_id), eos_id

    @property
    def k(self) -> int:
        """Context length ``order - 1``."""
        return self.order - 1

    def context_index(self, contexts: np.ndarray) -> np.ndarray:
        """Rows of the table for contexts ``(R, k)`` (oldest token first) -> ``(R,)``."""
        contexts = np.asarray(contexts, np.int64)
        weights = self.vocab_size ** np.arange(self.k - 1, -1, -1, dtype=np.int64)  # (k,)
        return contexts @ weights if self.k else np.zeros(len(contexts), np.int64)

    def _contexts(self, prefixes: list[np.ndarray]) -> np.ndarray:
        ctx = np.full((len(prefixes), self.k), self.pad_id, np.int64)  # (R, k)
        for r, p in enumerate(prefixes):
            if np.any((p < 0) | (p >= self.vocab_size)):
                raise ValueError(f"prompt {r} has tokens outside [0, {self.vocab_size})")
            tail = p[len(p) - self.k:] if self.k and len(p) else p[:0]
            if self.k:
                ctx[r, self.k - len(tail):] = tail
        return ctx

    # --- StepLM -------------------------------------------------------------------------------
    def start(self, prompts):
        ctx = self._contexts(as_prompts(prompts))  # (B, k)
        return self.table[self.context_index(ctx)].copy(), ctx  # (B, V)

    def step(self, state, tokens):
        tokens = np.asarray(tokens)
        if tokens.shape != (len(state),) or tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens must be an int array of shape (rows,) = ({len(state)},), "
                             f"got {tokens.dtype} {tokens.shape}")
        if np.any((tokens < 0) | (tokens >= self.vocab_size)):
            raise ValueError(f"tokens must lie in [0, {self.vocab_size})")
        if self.k:
            ctx = np.concatenate([state[:, 1:], tokens[:, None].astype(np.int64)], axis=1)  # (R, k)
        else:
            ctx = state  # (R, 0)
        return self.table[self.context_index(ctx)].copy(), ctx  # (R, V)

    def reorder(self, state, rows):
        return state[np.asarray(rows, np.int64)]

    # --- exact probabilities ------------------------------------------------------------------
    def logprobs(self, prefixes) -> np.ndarray:
        """Next-token log-probs ``(R, V)`` after each prefix (float64)."""
        logits, _ = self.start(prefixes)
        return logits.astype(np.float64)

    def sequence_logprob(self, tokens, prompt=()) -> float:
        """``sum_t log p(tokens[t] | prompt, tokens[:t])`` (float64; ``-inf`` if impossible)."""
        tokens = np.asarray(tokens, np.int64).reshape(-1)
        context = np.concatenate([np.asarray(prompt, np.int64).reshape(-1), tokens])
        n0 = len(context) - len(tokens)
        prefixes = [context[: n0 + t] for t in range(len(tokens))]
        if not prefixes:
            return 0.0
        lp = self.logprobs(prefixes)  # (T, V)
        return float(lp[np.arange(len(tokens)), tokens].sum())


def random_markov_lm(V: int, alpha: float, seed: int, eos_id: int | None = None, *,
                     order: int = 2, pad_id: int = 0) -> TabularLM:
    """A random ``order``-gram model (bigram by default): each row of the table is drawn from
    ``Dirichlet(alpha * 1_V)`` with ``np.random.default_rng(seed)``. ``alpha < 1`` gives peaky,
    low-entropy rows (beam search collapses); ``alpha >> 1`` nearly uniform ones. Probabilities
    that underflow to 0 (tiny ``alpha``) become ``-inf`` log-probs."""
    V = _checks.check_number(V, "V", integer=True, low=1)
    alpha = _checks.check_number(alpha, "alpha", low=0, low_open=True)
    order = _checks.check_number(order, "order", integer=True, low=1)
    rng = _checks.check_rng(seed, "seed")
    probs = rng.dirichlet(np.full(V, float(alpha)), size=V ** (order - 1))  # (V**k, V)
    with np.errstate(divide="ignore"):
        table = log_softmax(np.log(probs))  # renormalise in log space
    return TabularLM(order, table, pad_id=pad_id, eos_id=eos_id)


def sample_sequences(lm: StepLM, n: int, T: int, seed: int, *, prompts=None,
                     eos_id: int | None = None, pad_id: int | None = None) -> np.ndarray:
    """``n`` ancestral samples of ``T`` tokens from ``lm`` (training data from a known source).

    Each row starts after ``prompts[i]`` (default: the empty prompt), draws ``T`` tokens by inverse
    CDF on ``softmax(logits)`` with ``u ~ U[0, 1)`` from ``np.random.default_rng(seed)`` (one
    ``(n,)`` draw per position; zero-probability tokens are never drawn), and after ``eos_id``
    (default ``lm.eos_id`` if any) fills the row with ``pad_id`` (default ``eos_id``).
    Returns tokens ``(n, T)`` int64.
    """
    n = _checks.check_number(n, "n", integer=True, low=0)
    T = _checks.check_number(T, "T", integer=True, low=0)
    V = _step_lm(lm, "lm")
    if eos_id is None:
        eos_id = getattr(lm, "eos_id", None)
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    pad_id = eos_id if pad_id is None else _checks.check_number(pad_id, "pad_id", integer=True,
                                                                low=0, high=V - 1)
    rng = _checks.check_rng(seed, "seed")
    prompts = [np.zeros(0, np.int64)] * n if prompts is None else as_prompts(prompts)
    if len(prompts) != n:
        raise ValueError(f"need n = {n} prompts, got {len(prompts)}")
    out = np.empty((n, T), np.int64)
    if n == 0 or T == 0:
        return out
    finished = np.zeros(n, bool)
    logits, state = lm.start(prompts)
    for t in range(T):
        p = np.exp(log_softmax(logits))  # (n, V)
        cdf = np.cumsum(p, axis=1)  # (n, V)
        u = rng.random(n) * cdf[:, -1]  # (n,) scaled so rounding cannot pass the last entry
        tok = np.minimum((cdf <= u[:, None]).sum(axis=1), lm.vocab_size - 1)  # first cdf > u
        tok = np.where(finished, pad_id if pad_id is not None else 0, tok)
        out[:, t] = tok
        if eos_id is not None:
            finished |= tok == eos_id
        if t + 1 < T:
            logits, state = lm.step(state, tok)
    return out

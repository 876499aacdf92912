"""Exact search over a ``StepLM``'s continuations, the oracle for approximate decoders.

- :func:`enumerate_sequences`: every continuation with its exact log-probability (tiny V only);
- :func:`top_sequences`: the ``n`` most probable of them (what beam search with a beam as wide as
  the whole tree must return);
- :func:`exact_mode`: the single most probable continuation by depth-first branch-and-bound,
  which only ever expands the prefixes that could still win, so it reaches lengths and
  vocabularies far beyond enumeration; with ``length=L`` the *length-conditional* mode;
- :func:`exact_length_conditional_modes`: that mode for several lengths.

A continuation of ``prompt`` *ends* at the first EOS (included) or, unless ``require_eos``, when
it reaches ``max_len`` tokens (truncated). Its score is
:math:`\\log p(y \\mid x) = \\sum_t \\log p(y_t \\mid x, y_{<t})` (float64, ``log_softmax`` of
the model's logits, summed left to right). Everything goes through the ``StepLM`` protocol
(:mod:`refseq.decoding.interfaces`): ``start`` once, then ``step`` on one-row states (a model
must not mutate a state it has returned, so a parent state can be stepped once per child).

Pruning argument (Stahlberg and Byrne 2019, arXiv 1908.10090, Sec. 2): every log-probability
is ``<= 0``, so :math:`\\log p(y_{1:t+1} \\mid x) \\le \\log p(y_{1:t} \\mid x)` and no
continuation of a prefix scores above the prefix itself. A prefix whose score is not above the
best complete sequence found so far (the *incumbent*) can be dropped with its whole subtree.
Length-conditional modes, :math:`\\arg\\max_y p(y \\mid x)\\,[|y| = L]` with ``|y|`` not counting
EOS, are the exact search of Yoshida, Goyal and Gimpel (arXiv 2311.08817, "MAP's not dead
yet"): EOS is forbidden before depth ``L`` and the only choice at depth ``L``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import StepLM, log_softmax

__all__ = ["ExactMode", "enumerate_sequences", "exact_length_conditional_modes", "exact_mode",
           "top_sequences"]

MAX_ENUMERATE = 1_000_000


def _step_lm(model, name: str) -> int:
    """Check that ``model`` follows the ``StepLM`` protocol; return its vocabulary size."""
    if not all(callable(getattr(model, a, None)) for a in ("start", "step", "reorder")):
        raise TypeError(f"{name} must be a StepLM (start, step and reorder methods, e.g. a "
                        f"TabularLM), got {type(model).__name__}")
    return _checks.check_number(getattr(model, "vocab_size", None), f"{name}.vocab_size",
                                integer=True, low=1)


def _setup(model, prompt, max_len, eos_id):
    """Shared checks: ``(V, prompt (P,) int64, max_len, eos_id)``; ``eos_id`` defaults to
    ``model.eos_id`` when the model has one."""
    V = _step_lm(model, "model")
    if eos_id is None:
        eos_id = getattr(model, "eos_id", None)
    max_len = _checks.check_number(max_len, "max_len", integer=True, low=0)
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    prompt = np.asarray(prompt)
    if prompt.size == 0:  # [] or (): the empty prompt
        prompt = prompt.astype(np.int64).reshape(0)
    prompt = _checks.int_array(prompt, "prompt", low=0, high=V, ndim=1, form="(P,)")
    return V, prompt.astype(np.int64), max_len, eos_id


def enumerate_sequences(model: StepLM, prompt, max_len: int, eos_id: int | None = None):
    """Every continuation of ``prompt`` with its exact log-probability, using only the ``StepLM``
    protocol (``start``, then ``reorder`` + ``step`` on the live prefixes).

    A continuation ends at the first ``eos_id`` (included) or at ``max_len`` tokens. Returns a list
    of ``(tokens: tuple[int, ...], logprob: float)`` in lexicographic order of expansion; the
    probabilities sum to 1. ``eos_id`` defaults to ``model.eos_id`` when the model has one. Raises
    ``ValueError`` when more than 1e6 sequences would be enumerated (tiny V only).
    """
    V, prompt, max_len, eos_id = _setup(model, prompt, max_len, eos_id)
    if V**max_len > MAX_ENUMERATE:
        raise ValueError(f"V**max_len = {V}**{max_len} exceeds {MAX_ENUMERATE}; use a tinier model")
    if max_len == 0:
        return [((), 0.0)]
    logits, state = model.start([prompt])
    live = [((), 0.0)]  # prefixes whose rows are in `state`, in row order
    out = []
    for depth in range(1, max_len + 1):
        lp = log_softmax(logits)  # (R, V)
        parents, tokens, nxt = [], [], []
        for r, (prefix, score) in enumerate(live):
            for v in range(V):
                seq, s = prefix + (v,), score + float(lp[r, v])
                if v == eos_id or depth == max_len:
                    out.append((seq, s))
                else:
                    parents.append(r)
                    tokens.append(v)
                    nxt.append((seq, s))
        if not nxt:
            break
        state = model.reorder(state, np.asarray(parents, np.int64))
        logits, state = model.step(state, np.asarray(tokens, np.int64))  # (R', V)
        live = nxt
    return out


def top_sequences(model: StepLM, prompt, max_len: int, n: int, eos_id: int | None = None):
    """The ``n`` most probable continuations of :func:`enumerate_sequences` (same arguments),
    as ``[(tokens, logprob), ...]`` by decreasing log-prob, ties broken by lexicographic token
    order (smaller tuple first; a prefix before its extensions). Fewer than ``n`` when fewer
    exist; impossible ones (``-inf``) come last but are kept."""
    n = _checks.check_number(n, "n", integer=True, low=1)
    seqs = enumerate_sequences(model, prompt, max_len, eos_id)
    return sorted(seqs, key=lambda s: (-s[1], s[0]))[:n]


class ExactMode(NamedTuple):
    """Result of :func:`exact_mode`.

    ``tokens``: the best continuation found (``None`` if none scores at least ``lower_bound``);
    ``logprob``: its log-probability (``-inf`` when ``tokens`` is None); ``expanded``: prefixes
    whose next-token distribution the search computed (model calls: ``start`` plus each ``step``;
    scoring ``initial`` is not counted); ``exact``: True when the search finished,
    False when ``max_nodes`` stopped it (then ``tokens`` is only the best found so far).
    """

    tokens: tuple | None
    logprob: float
    expanded: int
    exact: bool


def _allowed(lp, depth, eos_id, max_len, length, require_eos):
    """``lp`` (V,) with the tokens the constraints forbid at ``depth`` set to ``-inf``."""
    if length is not None:
        if depth < length:
            lp[eos_id] = -np.inf  # (V,) no EOS before L tokens
        else:
            lp[np.arange(len(lp)) != eos_id] = -np.inf  # only EOS at depth L
    elif require_eos and depth == max_len - 1:
        lp[np.arange(len(lp)) != eos_id] = -np.inf  # the last position must be EOS
    return lp


def _score(model, prompt, tokens, mask) -> float:
    """Log-prob of ``tokens`` after ``prompt`` under the masked log-probs, summed left to right
    in float64 exactly as the search sums it."""
    logits, state = model.start([prompt])
    score = 0.0
    for depth, v in enumerate(tokens):
        if depth:
            logits, state = model.step(state, np.array([tokens[depth - 1]], np.int64))  # (1, V)
        score += float(mask(log_softmax(logits)[0], depth)[v])
    return score


def exact_mode(model: StepLM, prompt, max_len: int, eos_id: int | None = None, *,
               length: int | None = None, require_eos: bool = False,
               lower_bound: float = -np.inf, initial=None,
               max_nodes: int | None = None) -> ExactMode:
    """The most probable continuation of ``prompt`` by depth-first branch-and-bound.

    Parameters
    ----------
    model : StepLM
        The model; only ``start`` and ``step`` on one-row states are used.
    prompt : (P,) int array
        The conditioning tokens (may be empty).
    max_len : int
        Longest continuation (tokens, EOS included). A continuation that reaches it without EOS
        is complete (truncated), as in :func:`enumerate_sequences`, unless ``require_eos``.
    eos_id : int, optional
        End-of-sequence id; defaults to ``model.eos_id`` when the model has one.
    length : int, optional
        Length-conditional mode: exactly ``length`` non-EOS tokens followed by EOS (needs
        ``eos_id`` and ``length + 1 <= max_len``). The EOS log-prob is part of the score.
    require_eos : bool
        Count only continuations that end with EOS (implied by ``length``).
    lower_bound : float
        Seek only continuations with log-prob ``>= lower_bound`` (``-inf``: no bound). Pass a
        value no larger than the score of a known complete continuation, e.g. a beam-search
        result's; safer, pass the continuation itself as ``initial``.
    initial : (n,) int array, optional
        A complete continuation to start from as the incumbent, e.g. a beam-search result
        (scored here, through the model, exactly as the search would score it). A better
        incumbent prunes more; the result is the same up to exact ties.
    max_nodes : int, optional
        Stop after this many model calls; the result then has ``exact=False``.

    Returns
    -------
    ExactMode
        ``(tokens, logprob, expanded, exact)``; see :class:`ExactMode`.

    Notes
    -----
    Children are visited in decreasing log-prob (stable: ties to the lower id), and a child is
    pruned when its score is not above the incumbent (below ``lower_bound`` while there is
    none); because the children are sorted, the first pruned child ends its parent's loop.
    A prefix scored ``-inf`` is never expanded. The first complete continuation the search
    reaches is the greedy one (first child = arg-max, ties to the lower id), so a greedy
    ``initial`` would save nothing; a beam-search result can. Exact ties between complete
    continuations go to the one found first (``initial``, then depth-first order), not to the
    lexicographically smaller. The argument needs log-probs ``<= 0``: do not search
    length-normalised scores or processed log-probs with bonuses. Cost: exponential in
    ``max_len`` in the worst case (a flat model), often a few nodes per position on peaked
    models.

    References
    ----------
    Stahlberg and Byrne, "On NMT search errors and model errors: cat got your tongue?",
    arXiv 1908.10090, Sec. 2 (Algorithm 1). Yoshida, Goyal and Gimpel, arXiv 2311.08817.
    """
    V, prompt, max_len, eos_id = _setup(model, prompt, max_len, eos_id)
    require_eos = _checks.check_flag(require_eos, "require_eos")
    length = _checks.check_number(length, "length", integer=True, low=0, allow_none=True)
    lower_bound = _checks.check_number(lower_bound, "lower_bound", allow_inf=True)
    max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=1,
                                     allow_none=True)
    if (length is not None or require_eos) and eos_id is None:
        raise ValueError("length and require_eos need an eos_id (none given, model has none)")
    if length is not None and length + 1 > max_len:
        raise ValueError(f"length must be <= max_len - 1 = {max_len - 1} (L tokens and EOS), "
                         f"got {length}")

    def mask(lp, depth):
        return _allowed(lp, depth, eos_id, max_len, length, require_eos)

    best, best_lp = None, -np.inf

    def beats(s):  # could a (prefix) score s still lead to the answer?
        return s > -np.inf and (s > best_lp if best is not None else s >= lower_bound)

    incumbent = _initial(initial, model, prompt, max_len, eos_id, length, require_eos, V, mask)
    if incumbent is not None and beats(incumbent[1]):
        best, best_lp = incumbent
    if max_len == 0:
        if not require_eos and beats(0.0):
            best, best_lp = (), 0.0
        return ExactMode(best, best_lp, 0, True)

    logits, state = model.start([prompt])
    expanded = 1
    # a frame: [prefix, score, state, masked log-probs (V,), children order (V,), next child]
    lp = mask(log_softmax(logits)[0], 0)  # (V,)
    stack = [[(), 0.0, state, lp, np.argsort(-lp, kind="stable"), 0]]
    while stack:
        frame = stack[-1]
        prefix, score, state, lp, order, i = frame
        if i == V:
            stack.pop()
            continue
        v = int(order[i])
        frame[5] = i + 1
        s = score + float(lp[v])
        if not beats(s):  # neither v nor its (no more probable) later siblings can win
            stack.pop()
            continue
        child = prefix + (v,)
        if v == eos_id or len(child) == max_len:  # complete: the new incumbent
            best, best_lp = child, s
            continue
        if max_nodes is not None and expanded >= max_nodes:
            return ExactMode(best, best_lp, expanded, False)
        logits, child_state = model.step(state, np.array([v], np.int64))  # (1, V)
        expanded += 1
        lp = mask(log_softmax(logits)[0], len(child))  # (V,)
        stack.append([child, s, child_state, lp, np.argsort(-lp, kind="stable"), 0])
    return ExactMode(best, best_lp, expanded, True)


def _initial(initial, model, prompt, max_len, eos_id, length, require_eos, V, mask):
    """``(tokens, logprob)`` of the first incumbent, or None."""
    if initial is None or max_len == 0:
        return None
    y = _checks.int_array(np.asarray(initial), "initial", low=0, high=V, ndim=1, form="(n,)")
    y = tuple(int(v) for v in y)
    ok = 1 <= len(y) <= max_len and eos_id not in y[:-1]
    if y and y[-1] != eos_id:  # truncated: only without EOS constraints, at max_len
        ok = ok and len(y) == max_len and not require_eos and length is None
    if length is not None:
        ok = ok and len(y) == length + 1
    if not ok:
        raise ValueError(f"initial must be a complete continuation (EOS only at its end, or "
                         f"max_len = {max_len} tokens without EOS) that meets length/"
                         f"require_eos; got {len(y)} tokens")
    return y, _score(model, prompt, y, mask)


def exact_length_conditional_modes(model: StepLM, prompt, lengths, eos_id: int | None = None,
                                   *, max_nodes: int | None = None) -> dict:
    """``{L: exact_mode(model, prompt, L + 1, eos_id, length=L)}`` for each
    ``L`` in ``lengths`` (non-negative ints): the most probable continuation with exactly ``L``
    tokens before EOS (Yoshida, Goyal and Gimpel, arXiv 2311.08817). ``max_nodes`` applies to
    each search."""
    if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__iter__"):
        raise TypeError(f"lengths must be a sequence of non-negative ints, got {lengths!r}")
    lengths = [_checks.check_number(L, "lengths[i]", integer=True, low=0) for L in lengths]
    if not lengths:
        raise ValueError("lengths must name at least one length, got none")
    return {L: exact_mode(model, prompt, L + 1, eos_id, length=L, max_nodes=max_nodes)
            for L in lengths}

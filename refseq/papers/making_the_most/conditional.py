"""Attribute-conditional beam search (ACBS) and attribute models.

Yoshida, Goyal and Gimpel, "MAP's not dead yet" (arXiv 2311.08817; thesis arXiv 2408.16241,
Part C). Instead of the mode of :math:`p(y \\mid x)`, search for the mode of
:math:`p(y \\mid x, A(y) = a)`. A prefix :math:`y_{1:t}` is scored

.. math:: \\mathrm{score}(y_{1:t}) = \\log p(y_{1:t} \\mid x) + \\log P_\\phi(a \\mid x, y_{1:t}),

an estimate of :math:`\\log p(y_{1:t} \\mid x, a) + \\log P(a \\mid x)`. The attribute term is
*recomputed on the whole prefix* at every step and added once, never accumulated: the running
beams store only the model log-prob. Prefix-classifier guidance follows FUDGE (Yang and Klein,
arXiv 2104.05218); FUDGE samples, ACBS searches.

Attribute functions here take the generated tokens (prompt excluded) as ``(rows, t)`` int64 and
return ``log P(a | x, prefix)`` as ``(rows,)`` float64 (``<= 0``; ``-inf`` = impossible):

- :func:`length_attr_logprob` / :func:`length_attribute`: the exact ``log P(|y| = L | prefix)``
  of a :class:`~refseq.models.toy_lm.TabularLM`, by a forward recursion over its contexts;
- :class:`~refseq.papers.making_the_most.classifier.PrefixClassifier` (**reconstructed**, in
  ``classifier.py``): logistic regression on the tiny transformer's final hidden state of the
  prefix, trained FUDGE-style on the model's own samples.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.exact import _step_lm
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.nbest import Hypothesis, normalize

__all__ = ["conditional_beam_search", "length_attr_logprob", "length_attribute"]


def _ids(x, name: str, V: int) -> np.ndarray:
    """``x`` as a 1-d int64 array of ids in ``[0, V)`` (an empty sequence is an empty array)."""
    a = np.asarray(x)
    a = a.astype(np.int64) if a.size == 0 else a
    return _checks.int_array(a, name, low=0, high=V, ndim=1, form="(n,)").astype(np.int64)


def length_attr_logprob(lm, prefix, L: int, *, prompt=(), eos_id: int | None = None) -> float:
    """Exact ``log P(|y| = L | x, y_{1:t} = prefix)`` under a ``TabularLM`` (``|y|`` excludes EOS).

    A prefix holding EOS has ended: 0 if it ended after exactly ``L`` tokens, else ``-inf``.
    Otherwise the probability that the next ``L - t`` tokens are not EOS and the one after is:

    .. math:: \\alpha_0 = e_{s_0},\\quad \\alpha_{i}(s') = \\sum_{s, v \\ne EOS:\\, next(s, v)
              = s'} \\alpha_{i-1}(s) P(v \\mid s),\\quad P = \\sum_s \\alpha_{L-t}(s) P(EOS
              \\mid s),

    over the ``V**(order-1)`` contexts (each step renormalised, the log of the scale summed, so
    long lengths do not underflow). Cost ``O((L - t) V**order)``.
    """
    V = _step_lm(lm, "lm")
    if not hasattr(lm, "table") or not hasattr(lm, "order"):
        raise TypeError(f"lm must be a TabularLM, got {type(lm).__name__}")
    eos_id = lm.eos_id if eos_id is None else eos_id
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1)
    L = _checks.check_number(L, "L", integer=True, low=0)
    prefix = _ids(prefix, "prefix", V)
    prompt = _ids(prompt, "prompt", V)
    ended = np.flatnonzero(prefix == eos_id)
    if ended.size:
        return 0.0 if ended[0] == L else -np.inf
    t = len(prefix)
    if t > L:
        return -np.inf
    context = np.concatenate([prompt, prefix])
    _, ctx = lm.start([context])  # (1, k) the last k tokens
    n_ctx = V ** lm.k
    P = np.exp(lm.table.astype(np.float64))  # (V**k, V)
    alpha = np.zeros(n_ctx)
    alpha[lm.context_index(ctx)[0]] = 1.0  # (V**k,)
    non_eos = np.flatnonzero(np.arange(V) != eos_id)  # (V-1,)
    nxt = (np.arange(n_ctx)[:, None] * V + non_eos[None, :]) % n_ctx  # (V**k, V-1)
    log_scale = 0.0
    for _ in range(L - t):
        new = np.zeros(n_ctx)
        np.add.at(new, nxt.ravel(), (alpha[:, None] * P[:, non_eos]).ravel())  # (V**k,)
        total = new.sum()
        if total <= 0:
            return -np.inf
        alpha, log_scale = new / total, log_scale + np.log(total)
    p_end = float(alpha @ P[:, eos_id])
    return log_scale + np.log(p_end) if p_end > 0 else -np.inf


def length_attribute(lm, L: int, *, prompt=(), eos_id: int | None = None):
    """The attribute function ``prefixes (rows, t) -> (rows,)`` of :func:`length_attr_logprob`
    for :func:`conditional_beam_search` (attribute: "the output has exactly L tokens")."""
    length_attr_logprob(lm, (), L, prompt=prompt, eos_id=eos_id)  # check the arguments now

    def attr(prefixes):
        prefixes = np.asarray(prefixes, np.int64)
        return np.array([length_attr_logprob(lm, p, L, prompt=prompt, eos_id=eos_id)
                         for p in prefixes.reshape(len(prefixes), -1)])
    return attr


def _attr(fn, prefixes, name):
    out = _checks.float_array(fn(prefixes.copy()), f"{name} output", dtype=np.float64)
    _checks.check_shape(out.reshape(-1) if out.ndim else out, (len(prefixes),),
                        f"{name} output", "(rows,)")
    out = out.reshape(-1)
    if np.isnan(out).any() or (out > 1e-12).any():
        raise ValueError(f"{name} must return log-probabilities <= 0 (no NaN), got "
                         f"{out[np.isnan(out) | (out > 1e-12)][:3]}")
    return out


def conditional_beam_search(model, prompt, attr_logprob_fn, *, num_beams: int, k_pre: int,
                            max_new_tokens: int, eos_ids=(), final_attr_logprob_fn=None,
                            length_penalty: float = 0.0, num_return_sequences: int | None = None
                            ) -> list[Hypothesis]:
    """Attribute-conditional beam search (ACBS) for one prompt.

    Parameters
    ----------
    model : StepLM. prompt : (P,) int array.
    attr_logprob_fn : ``f(prefixes (rows, t) int64) -> (rows,)`` — ``log P(a | x, prefix)`` of
        the generated tokens (prompt excluded), values ``<= 0``.
    num_beams : B >= 1. k_pre : candidates per beam, the top-``k_pre`` tokens by model log-prob
        (``k_pre = V``: no pre-filter; smaller values can miss the only attribute-satisfying
        continuations).
    max_new_tokens : >= 1. eos_ids : ids that end a hypothesis (an int is one id).
    final_attr_logprob_fn : the attribute term for finished (EOS-ending) candidates; default
        ``attr_logprob_fn``.
    length_penalty : ``alpha`` of the "power" normaliser, applied to the model term only.
    num_return_sequences : default ``num_beams``.

    Returns
    -------
    list of :class:`~refseq.decoding.nbest.Hypothesis`, best score first: ``sum_logprob`` the
    model log-prob ``S``, ``token_logprobs`` its terms, and
    ``score = S / L**alpha + log P(a | x, y)`` with the attribute evaluated once on the whole
    output.

    Notes
    -----
    Conventions are beam search's ``"neutral"`` ones (:mod:`refseq.decoding.beam`): candidates
    ranked by (score desc, flat index ``k V + v`` asc); an EOS candidate enters the n-best list
    only at rank < B; the best B non-EOS candidates run on, keeping ``S`` without the attribute
    term; at ``max_new_tokens`` the running beams join the list unfinished (score with
    ``attr_logprob_fn``); stop once the list is full and the best running ``S / t**alpha``
    cannot beat its worst score (exact when ``alpha = 0``, since attribute terms are ``<= 0``).
    With ``attr_logprob_fn == 0`` and ``k_pre >= 2B`` this is :func:`beam_search` with
    ``candidate_multiplier=2``.
    """
    V = _step_lm(model, "model")
    if not callable(attr_logprob_fn):
        raise TypeError("attr_logprob_fn must be a callable prefixes (rows, t) -> (rows,)")
    final_fn = attr_logprob_fn if final_attr_logprob_fn is None else final_attr_logprob_fn
    if not callable(final_fn):
        raise TypeError("final_attr_logprob_fn must be a callable or None")
    B = _checks.check_number(num_beams, "num_beams", integer=True, low=1)
    k_pre = _checks.check_number(k_pre, "k_pre", integer=True, low=1, high=V)
    T = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=1)
    n_ret = _checks.check_number(B if num_return_sequences is None else num_return_sequences,
                                 "num_return_sequences", integer=True, low=1, high=B)
    alpha = _checks.check_number(length_penalty, "length_penalty")
    if isinstance(eos_ids, (int, np.integer)):
        eos_ids = (eos_ids,)
    if not isinstance(eos_ids, (tuple, list, np.ndarray)):
        raise TypeError(f"eos_ids must be a token id or a sequence of them, got {eos_ids!r}")
    eos = np.zeros(V, bool)
    eos[[_checks.check_number(e, "eos_ids", integer=True, low=0, high=V - 1)
         for e in eos_ids]] = True
    prompt = _ids(prompt, "prompt", V)

    finished: list[tuple[float, Hypothesis]] = []  # (score, hyp), best first

    def add(tokens, lps, S, attr, done):
        score = normalize(S, len(tokens), alpha, "power") + attr
        if score == -np.inf or (len(finished) >= B and not score > finished[-1][0]):
            return
        hyp = Hypothesis(np.asarray(tokens, np.int64), float(score), float(S),
                         np.asarray(lps, np.float64), len(tokens), done)
        finished.append((score, hyp))
        finished.sort(key=lambda e: -e[0])  # stable: earlier insertions win ties
        del finished[B:]

    logits, state = model.start([prompt])  # (1, V)
    S = np.zeros(1)  # (R,) model log-prob of each running beam
    gen = np.zeros((1, 0), np.int64)  # (R, t-1)
    tok_lp = np.zeros((1, 0))  # (R, t-1)
    for t in range(1, T + 1):
        lp = log_softmax(logits)  # (R, V)
        top = np.argsort(-lp, axis=1, kind="stable")[:, :k_pre]  # (R, k_pre)
        rows = np.repeat(np.arange(len(gen)), k_pre)  # (R k_pre,)
        toks = top.reshape(-1)  # (R k_pre,)
        m = S[rows] + lp[rows, toks]  # (R k_pre,) model log-prob of the extended prefix
        keep = m > -np.inf
        rows, toks, m = rows[keep], toks[keep], m[keep]
        ext = np.concatenate([gen[rows], toks[:, None]], axis=1)  # (n, t)
        a = np.zeros(len(rows))
        fin = eos[toks]
        if (~fin).any():
            a[~fin] = _attr(attr_logprob_fn, ext[~fin], "attr_logprob_fn")
        if fin.any():
            a[fin] = _attr(final_fn, ext[fin], "final_attr_logprob_fn")
        score = m + a  # (n,) recomputed attribute term, added once
        order = np.lexsort((rows * V + toks, -score))  # score desc, flat index asc
        order = order[score[order] > -np.inf]
        running = []
        for rank, j in enumerate(order):
            if fin[j]:
                if rank < B:
                    add(ext[j], np.append(tok_lp[rows[j]], lp[rows[j], toks[j]]), m[j], a[j], True)
            elif len(running) < B:
                running.append(j)
        if t == T:
            for j in running:
                add(ext[j], np.append(tok_lp[rows[j]], lp[rows[j], toks[j]]), m[j], a[j], False)
            break
        if not running:
            break
        running = np.asarray(running)
        best = normalize(m[running].max(), t, alpha, "power")
        if len(finished) >= B and not best > finished[-1][0]:
            break
        parents = rows[running]
        tok_lp = np.concatenate([tok_lp[parents], lp[parents, toks[running]][:, None]], axis=1)
        gen, S = ext[running], m[running]
        state = model.reorder(state, parents)
        logits, state = model.step(state, toks[running])  # (R', V)
    return [e[1] for e in finished[:n_ret]]

"""Beam search with explicit, switchable conventions: ``"neutral"``, ``"hf"`` and ``"fairseq"``.

Each batch item keeps ``B = num_beams`` running prefixes with cumulative scores
``s_k = sum_tau log p(y_tau | y_<tau, x)`` (log-probabilities after any logprob processor). A step
scores all ``B * V`` one-token extensions ``s_k + l_{k,v}``, takes the ``n_cand`` best
(:func:`beam_step`, ties to the lower flat index ``k V + v``) and walks them in rank order:

- an EOS candidate enters the item's :class:`~refseq.decoding.nbest.NBestList` only if its rank is
  below ``B`` (the admission rule of every peer); worse-ranked EOS candidates are dropped;
- the best ``B`` non-EOS candidates become the next running beams.

The item stops when its n-best list can no longer improve (:meth:`NBestList.is_done`, by
``early_stopping``) or at ``max_new_tokens``. Items are independent: a finished item leaves the
model's state (its rows are dropped with ``reorder``), so a batch gives the same results as a
loop over its items.

Conventions (what differs; docs/decoding.md has the full table):

- candidates per step: ``candidate_multiplier * B`` (neutral), ``max(2, 1 + n_eos) * B`` (hf),
  ``min(2B, B V - 1)`` (fairseq);
- beams 1.. at the first step: score ``-inf`` (neutral), ``-1e9`` (hf), not expanded (fairseq);
- running beams: the best B non-EOS candidates (neutral, fairseq); hf takes the best B after
  adding ``-1e9`` to finished candidates (so a finished one can run on with its ``-1e9``);
- the last step: the running beams join the n-best list unfinished (neutral); the top-B
  candidates all count as finished (hf); only EOS is allowed (fairseq);
- stopping: by ``early_stopping`` (neutral, hf); always once B hypotheses are finished (fairseq,
  which finalises hypotheses first come in rank order and never evicts one for a better one);
- the pad token: never selected (neutral, fairseq), untreated (hf).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts, log_softmax
from refseq.decoding.nbest import LENGTH_NORMS, Hypothesis, NBestList

__all__ = ["CONVENTIONS", "beam_search", "beam_step"]

CONVENTIONS = ("neutral", "hf", "fairseq")
HF_NEG = -1e9  # Hugging Face's "minus infinity" for unused beams and finished candidates


def beam_step(cum_scores, logprobs, n_cand: int):
    """The ``n_cand`` best one-token extensions of every item's beams.

    Parameters
    ----------
    cum_scores : (batch, B) float — running scores ``s_k``.
    logprobs : (batch, B, V) float — processed next-token log-probabilities ``l_{k,v}``.
    n_cand : int in ``[1, B V]``.

    Returns
    -------
    cand_scores (batch, n_cand) float, cand_beam (batch, n_cand) int64, cand_token
    (batch, n_cand) int64: ranked by score descending, ties by the flat index ``k V + v``
    ascending (a stable sort); ``-inf`` candidates rank last.
    """
    cum = _checks.float_array(cum_scores, "cum_scores")
    lp = _checks.float_array(logprobs, "logprobs")
    if lp.ndim != 3 or cum.shape != lp.shape[:2]:
        raise ValueError(f"logprobs must be (batch, B, V) and cum_scores (batch, B), got "
                         f"{lp.shape} and {cum.shape}")
    batch, B, V = lp.shape
    n_cand = _checks.check_number(n_cand, "n_cand", integer=True, low=1, high=B * V)
    if (np.isnan(cum) | np.isposinf(cum)).any() or (np.isnan(lp) | np.isposinf(lp)).any():
        raise ValueError("cum_scores and logprobs must not hold NaN or +inf")
    total = (cum[:, :, None] + lp).reshape(batch, B * V)  # (batch, B V)
    order = _top_stable(total, n_cand)  # (batch, n_cand)
    return np.take_along_axis(total, order, axis=1), order // V, order % V


def _top_stable(x, n):
    """``np.argsort(-x, axis=1, kind="stable")[:, :n]`` without sorting all of each row: the
    entries at least the n-th largest (``np.partition``), stably sorted (ties: lower index)."""
    if n == x.shape[1]:
        return np.argsort(-x, axis=1, kind="stable")
    nth = -np.partition(-x, n - 1, axis=1)[:, n - 1]  # (batch,) the n-th largest value
    out = np.empty((len(x), n), np.int64)
    for i, row in enumerate(x):
        idx = np.flatnonzero(row >= nth[i])  # every entry that can be among the top n
        out[i] = idx[np.argsort(-row[idx], kind="stable")[:n]]
    return out


def _n_candidates(convention, B, V, n_eos, multiplier, first):
    if convention == "hf":
        return min(max(2, 1 + n_eos) * B, B * V)
    if convention == "fairseq":  # at the first step only beam 0's V tokens exist
        return min(2 * B, (V if first else B * V) - 1) or 1
    return min(multiplier * B, B * V)


def _check_args(model, num_beams, max_new_tokens, eos_ids, pad_id, min_new_tokens,
                length_penalty, length_norm, early_stopping, num_return_sequences,
                candidate_multiplier, logprob_processor, convention, compute_dtype, temperature):
    _checks.check_methods(model, "model", ("start", "step", "reorder"), "a StepLM")
    V = _checks.check_number(getattr(model, "vocab_size", None), "model.vocab_size",
                             integer=True, low=1)
    num_beams = _checks.check_number(num_beams, "num_beams", integer=True, low=1)
    max_new_tokens = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=1)
    if isinstance(eos_ids, (int, np.integer)) and not isinstance(eos_ids, bool):
        eos_ids = (eos_ids,)
    if not isinstance(eos_ids, Sequence) and not isinstance(eos_ids, np.ndarray):
        raise TypeError(f"eos_ids must be a sequence of token ids, got {type(eos_ids).__name__}")
    eos_ids = tuple(_checks.check_number(e, "eos_ids", integer=True, low=0, high=V - 1)
                    for e in eos_ids)
    pad_id = _checks.check_number(pad_id, "pad_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    min_new_tokens = _checks.check_number(min_new_tokens, "min_new_tokens", integer=True, low=0,
                                          high=max_new_tokens)
    _checks.check_number(length_penalty, "length_penalty")
    _checks.check_choice(length_norm, "length_norm", LENGTH_NORMS)
    if not (early_stopping is True or early_stopping is False or early_stopping == "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    num_return_sequences = _checks.check_number(num_return_sequences, "num_return_sequences",
                                                integer=True, low=1, high=num_beams)
    candidate_multiplier = _checks.check_number(candidate_multiplier, "candidate_multiplier",
                                                integer=True, low=1)
    if logprob_processor is not None and not callable(logprob_processor):
        raise TypeError("logprob_processor must be a callable (generated, logprobs) -> "
                        f"logprobs or None, got {type(logprob_processor).__name__}")
    _checks.check_choice(convention, "convention", CONVENTIONS)
    if convention == "fairseq" and len(eos_ids) != 1:
        raise ValueError(f"convention='fairseq' needs exactly one EOS id (eos_ids), got "
                         f"{eos_ids}")
    compute_dtype = _checks.check_float_dtype(compute_dtype, "compute_dtype")
    temperature = _checks.check_number(temperature, "temperature", low=0, low_open=True)
    return (V, num_beams, max_new_tokens, eos_ids, pad_id, min_new_tokens, num_return_sequences,
            candidate_multiplier, compute_dtype, temperature)


def beam_search(model, prompts, *, num_beams: int, max_new_tokens: int,
                eos_ids: Sequence[int] = (), pad_id: int | None = None, min_new_tokens: int = 0,
                length_penalty: float = 1.0, length_norm: str = "power",
                early_stopping: bool | str = False, num_return_sequences: int = 1,
                candidate_multiplier: int = 2, logprob_processor=None,
                convention: str = "neutral", compute_dtype=np.float64,
                temperature: float = 1.0) -> list[list[Hypothesis]]:
    """Beam search over a ``StepLM`` for a batch of prompts (module docstring for the rules).

    Parameters
    ----------
    model : StepLM. prompts : list of 1-d int arrays (lengths may differ).
    num_beams : B >= 1. max_new_tokens : >= 1, the most tokens generated (EOS included).
    eos_ids : token ids that end a hypothesis (an int is one id); empty: none.
    pad_id : never selected under "neutral" and "fairseq" (its log-prob is set to -inf).
    min_new_tokens : EOS is -inf while fewer tokens have been generated.
    length_penalty, length_norm : the normaliser of :func:`normalize`.
    early_stopping : True (stop once B hypotheses are finished), False (stop when the best running
        beam normalised at the current length cannot beat the worst finished one) or "never"
        (the same at ``max_new_tokens`` when ``length_penalty > 0``). Ignored by "fairseq",
        which always stops once B hypotheses are finished.
    num_return_sequences : how many hypotheses per item (<= B).
    candidate_multiplier : candidates per step are ``candidate_multiplier * B`` ("neutral").
    logprob_processor : ``f(generated (rows, t) int64, logprobs (rows, V)) -> (rows, V)``,
        applied after ``log_softmax`` and before adding the running scores (HF's order).
    convention : "neutral" | "hf" | "fairseq".
    compute_dtype : float64 (default) or float32 (HF computes in float32).
    temperature : logits are divided by it before ``log_softmax`` (fairseq's place; default 1).

    Returns
    -------
    One list per prompt of at most ``num_return_sequences`` :class:`Hypothesis`, best first.
    Hypotheses of zero probability (score ``-inf``) are never returned, so a list can be shorter
    when fewer than that many sequences have positive probability.
    """
    (V, B, T, eos_ids, pad_id, min_new, n_ret, mult, dt, temp) = _check_args(
        model, num_beams, max_new_tokens, eos_ids, pad_id, min_new_tokens, length_penalty,
        length_norm, early_stopping, num_return_sequences, candidate_multiplier,
        logprob_processor, convention, compute_dtype, temperature)
    prompts = as_prompts(prompts)
    n_items = len(prompts)
    if n_items == 0:
        raise ValueError("prompts must hold at least one prompt")
    for i, p in enumerate(prompts):
        _checks.int_array(p, f"prompts[{i}]", high=V)
    eos = np.zeros(V, bool)
    eos[list(eos_ids)] = True
    stop_early = True if convention == "fairseq" else early_stopping
    nbest = [NBestList(B, length_penalty, length_norm) for _ in range(n_items)]

    logits, state = model.start(prompts)  # (n, V)
    rows = np.repeat(np.arange(n_items), B)  # every item's prefill copied to its B rows
    state = model.reorder(state, rows)
    logits = np.asarray(logits)[rows]  # (n B, V)
    active = np.arange(n_items)  # items still searching, in row order
    cum = np.full((n_items, B), -np.inf if convention != "hf" else HF_NEG, dt)  # (n, B)
    cum[:, 0] = 0
    gen = np.zeros((n_items * B, 0), np.int64)  # generated tokens of the running rows
    tok_lp = np.zeros((n_items * B, 0), dt)  # their per-token log-probabilities

    for t in range(1, T + 1):
        z = _checks.float_array(logits, "model logits", dtype=dt)
        lp = log_softmax(z / dt.type(temp) if temp != 1 else z, dtype=dt)  # (R, V)
        if pad_id is not None and convention != "hf":
            lp[:, pad_id] = -np.inf
        if t <= min_new:
            lp[:, eos] = -np.inf
        if convention == "fairseq" and t == T:
            lp[:, ~eos] = -np.inf  # fairseq: at the last step only EOS
        if logprob_processor is not None:
            lp = _checks.float_array(logprob_processor(gen.copy(), lp), "logprob_processor "
                                     "output", dtype=dt)
            _checks.check_shape(lp, (len(gen), V), "logprob_processor output", "(rows, V)")
        n_act = len(active)
        n_cand = _n_candidates(convention, B, V, len(eos_ids), mult, t == 1)
        c_score, c_beam, c_tok = beam_step(cum[:n_act], lp.reshape(n_act, B, V), n_cand)
        parents, tokens, new_cum, keep = [], [], [], []
        for i, item in enumerate(active):
            ranked = list(zip(c_score[i], i * B + c_beam[i], c_tok[i]))  # (score, row, token)
            for sc, r, v in ranked[:B]:  # admission: rank < B only
                if convention == "fairseq" and len(nbest[item]) == B:
                    break  # fairseq finalises first come, up to B, and never evicts
                if (eos[v] or (convention == "hf" and t == T)) and sc > -np.inf:
                    nbest[item].add(np.append(gen[r], v), sc, t, np.append(tok_lp[r], lp[r, v]),
                                    finished=bool(eos[v]))
            running = _running(convention, B, ranked, eos, t == T)  # [(score, row, token)]
            best = running[0][0] if running else -np.inf
            if t == T and convention == "neutral":  # cut at the length limit: they join too
                for sc, r, v in running:
                    if sc > -np.inf:
                        nbest[item].add(np.append(gen[r], v), sc, t,
                                        np.append(tok_lp[r], lp[r, v]), finished=False)
            if t == T or not running or nbest[item].is_done(best, t, T, stop_early):
                continue
            running += [(-np.inf, running[-1][1], running[-1][2])] * (B - len(running))
            keep.append(item)
            new_cum.append([sc for sc, _, _ in running])
            parents += [r for _, r, _ in running]
            tokens += [v for _, _, v in running]
        if not keep:
            break
        parents, tokens = np.asarray(parents, np.int64), np.asarray(tokens, np.int64)
        gen = np.concatenate([gen[parents], tokens[:, None]], axis=1)  # (R', t)
        tok_lp = np.concatenate([tok_lp[parents], lp[parents, tokens][:, None]], axis=1)
        cum = np.asarray(new_cum, dt)  # (n', B)
        active = np.asarray(keep)
        state = model.reorder(state, parents)
        logits, state = model.step(state, tokens)
    return [nb.hypotheses()[:n_ret] for nb in nbest]


def _running(convention, B, ranked, eos, last):
    """The next running beams ``[(score, row, token)]``, best first, from the ranked candidates:
    the first B non-EOS ones; under "hf", the best B after adding -1e9 to every finished candidate
    (EOS, or any candidate at the last step), which may keep a finished one with its -1e9."""
    if convention == "hf":
        pushed = [(sc + (HF_NEG if (eos[v] or last) else 0), r, v) for sc, r, v in ranked]
        order = sorted(range(len(pushed)), key=lambda j: -pushed[j][0])  # stable: rank order
        return [pushed[j] for j in order[:B]]
    return [c for c in ranked if not eos[c[2]]][:B]

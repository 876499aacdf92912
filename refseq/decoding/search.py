"""Greedy decoding and ancestral sampling over a ``StepLM``, batched, rows finishing independently.

Both run the same loop::

    logits, state = model.start(prompts)
    for t in 1..max_new_tokens:
        l = processor(generated, log_softmax(logits))       # (rows, V), HF's order
        y_t = argmax(l)  |  y_t = sample(warp(l), u_t)      # greedy | sampling
        a row that emitted an EOS id is finished: later positions hold pad_id, score nothing
        logits, state = model.step(state, y_t)               # unfinished rows only

Greedy takes the arg-max with ties to the lowest token id. Finished rows leave the model's state
(``reorder`` drops them), so pad tokens are never fed to the model as if they were text, and a
batch gives the same output as a loop over its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts, log_softmax

__all__ = ["GenOutput", "greedy", "sample_decode"]


class GenOutput(NamedTuple):
    """What :func:`greedy` and :func:`sample_decode` return (``n`` prompts, ``T`` steps run).

    Attributes
    ----------
    tokens : (n, T) int64
        Generated tokens; ``pad_id`` after a row's EOS.
    lengths : (n,) int64
        Generated tokens per row, its EOS included.
    logprobs : (n, T) float
        The processed log-probability of each token under the model (before any warping); 0
        after a row finished.
    finished : (n,) bool
        The row emitted an EOS id.
    warped_logprobs : (n, T) float or None
        Sampling only: the log-probability under the warped distribution the token was drawn
        from (0 after a row finished).
    """

    tokens: np.ndarray
    lengths: np.ndarray
    logprobs: np.ndarray
    finished: np.ndarray
    warped_logprobs: np.ndarray | None = None


def _check_common(model, max_new_tokens, eos_id, pad_id, min_new_tokens, logprob_processor,
                  compute_dtype):
    _checks.check_methods(model, "model", ("start", "step", "reorder"), "a StepLM")
    V = _checks.check_number(getattr(model, "vocab_size", None), "model.vocab_size",
                             integer=True, low=1)
    max_new_tokens = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=0)
    if eos_id is None:
        eos_ids = ()
    elif isinstance(eos_id, (Sequence, np.ndarray)):
        eos_ids = tuple(eos_id)
    else:
        eos_ids = (eos_id,)
    eos_ids = tuple(_checks.check_number(e, "eos_id", integer=True, low=0, high=V - 1)
                    for e in eos_ids)
    pad_id = _checks.check_number(pad_id, "pad_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    if pad_id is None:  # Hugging Face's fallback: pad with the (first) EOS id
        pad_id = eos_ids[0] if eos_ids else 0
    min_new_tokens = _checks.check_number(min_new_tokens, "min_new_tokens", integer=True, low=0)
    if logprob_processor is not None and not callable(logprob_processor):
        raise TypeError("logprob_processor must be a callable (generated, logprobs) -> "
                        f"logprobs or None, got {type(logprob_processor).__name__}")
    dt = _checks.check_float_dtype(compute_dtype, "compute_dtype")
    return V, max_new_tokens, eos_ids, pad_id, min_new_tokens, dt


def _decode(model, prompts, max_new_tokens, eos_id, pad_id, min_new_tokens, logprob_processor,
            compute_dtype, choose):
    """The loop of the module docstring; ``choose(t, rows, l) -> (tokens, warped_lp or None)``
    picks one token per live row from its processed log-probs ``l`` (R, V)."""
    V, T, eos_ids, pad_id, min_new, dt = _check_common(
        model, max_new_tokens, eos_id, pad_id, min_new_tokens, logprob_processor, compute_dtype)
    prompts = as_prompts(prompts)
    n = len(prompts)
    if n == 0:
        raise ValueError("prompts must hold at least one prompt")
    for i, p in enumerate(prompts):
        _checks.int_array(p, f"prompts[{i}]", high=V)
    tokens = np.full((n, T), pad_id, np.int64)
    lps = np.zeros((n, T), dt)
    wlps = np.zeros((n, T), dt)
    finished = np.zeros(n, bool)
    lengths = np.zeros(n, np.int64)
    eos = np.zeros(V, bool)
    eos[list(eos_ids)] = True
    if T == 0:
        return tokens, lengths, lps, finished, wlps
    logits, state = model.start(prompts)
    live = np.arange(n)  # rows of `state`, in order
    for t in range(T):
        lp = log_softmax(_checks.float_array(logits, "model logits"), dtype=dt)  # (R, V)
        if t < min_new:
            lp[:, eos] = -np.inf
        if logprob_processor is not None:
            lp = _checks.float_array(logprob_processor(tokens[live, :t].copy(), lp),
                                     "logprob_processor output", dtype=dt)
            _checks.check_shape(lp, (len(live), V), "logprob_processor output", "(rows, V)")
        y, wlp = choose(t, live, lp)  # (R,)
        tokens[live, t] = y
        lps[live, t] = lp[np.arange(len(live)), y]
        if wlp is not None:
            wlps[live, t] = wlp
        lengths[live] = t + 1
        done = eos[y]
        finished[live[done]] = True
        if done.all() or t + 1 == T:
            break
        if done.any():
            state = model.reorder(state, np.flatnonzero(~done))
        live, y = live[~done], y[~done]
        logits, state = model.step(state, y)
    steps = int(lengths.max())
    return tokens[:, :steps], lengths, lps[:, :steps], finished, wlps[:, :steps]


def greedy(model, prompts, max_new_tokens: int, eos_id=None, pad_id: int | None = None,
           min_new_tokens: int = 0, logprob_processor=None,
           compute_dtype=np.float64) -> GenOutput:
    """Greedy decoding: the arg-max token at every step (ties: the lowest token id).

    Parameters
    ----------
    model : StepLM. prompts : list of 1-d int arrays (lengths may differ).
    max_new_tokens : int >= 0. eos_id : int, a sequence of ints, or None (never finish).
    pad_id : fills a row after its EOS (default: the first EOS id, else 0).
    min_new_tokens : EOS ids are -inf for the first ``min_new_tokens`` steps.
    logprob_processor : ``f(generated (rows, t), logprobs (rows, V)) -> (rows, V)``.
    compute_dtype : float64 (default) or float32, the dtype of ``log_softmax``.

    Returns
    -------
    GenOutput (``warped_logprobs`` None); ``T`` = the steps run (the loop stops once every row
    finished).
    """

    def choose(t, rows, lp):
        return np.argmax(lp, axis=1), None  # np.argmax: the first (lowest) id among ties

    toks, lengths, lps, fin, _ = _decode(model, prompts, max_new_tokens, eos_id, pad_id,
                                         min_new_tokens, logprob_processor, compute_dtype, choose)
    return GenOutput(toks, lengths, lps, fin, None)


def sample_decode(model, prompts, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0, rng=None, eos_id=None, pad_id: int | None = None,
                  min_new_tokens: int = 0, logprob_processor=None, compute_dtype=np.float64,
                  uniforms=None, top_k_ties: str = "keep",
                  top_p_mode: str = "neutral") -> GenOutput:
    """Ancestral sampling from the warped distribution (:func:`refseq.decoding.sampling.warp`:
    temperature, then top-k, then top-p) by inverse CDF.

    Note the defaults: ``top_k=0`` (off), unlike Hugging Face's ``GenerationConfig``
    (``top_k=50``), so the default here is pure sampling from the model.

    Parameters
    ----------
    as :func:`greedy`, plus
    temperature, top_k, top_p, top_k_ties, top_p_mode : the warpers' settings.
    rng : numpy Generator or seed (used when ``uniforms`` is None).
    uniforms : optional (n, max_new_tokens) array in [0, 1): ``uniforms[i, t]`` drives row i's
        draw at step t (deterministic tests; a row's draws do not depend on other rows).

    Returns
    -------
    GenOutput with ``warped_logprobs``.
    """
    from refseq.decoding.sampling import sample, warp

    n_prompts = len(as_prompts(prompts))
    T = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=0)
    if uniforms is None:
        u_all = _checks.check_rng(rng).random((n_prompts, T))
    else:
        u_all = _checks.float_array(uniforms, "uniforms", dtype=np.float64)
        _checks.check_shape(u_all, (n_prompts, T), "uniforms", "(n_prompts, max_new_tokens)")
        if u_all.size and not ((u_all >= 0) & (u_all < 1)).all():
            raise ValueError("uniforms must lie in [0, 1)")
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p, top_k_ties=top_k_ties,
                    top_p_mode=top_p_mode)
    warp(np.zeros((1, 2)), **settings)  # validate the warper settings before any model call

    def choose(t, rows, lp):
        z = warp(lp, **settings)  # (R, V), -inf on removed tokens
        y = sample(z, u=u_all[rows, t])
        return y, log_softmax(z, dtype=lp.dtype)[np.arange(len(rows)), y]

    toks, lengths, lps, fin, wlps = _decode(model, prompts, T, eos_id, pad_id, min_new_tokens,
                                            logprob_processor, compute_dtype, choose)
    return GenOutput(toks, lengths, lps, fin, wlps)

"""Recoding latent sentence representations (Ulmer, arXiv 2101.00674): training and evaluation.

At every step of a step-wise LSTM LM an error signal δ_t (:mod:`refseq.papers.recoding.signals`)
is differentiated w.r.t. every layer's current ``h^l_t`` and ``c^l_t`` through the *same* time
step only (:func:`state_gradients`), and the states are moved against it:
``h̃ = h - α_{l,h} g_h``, ``c̃ = c - α_{l,c} g_c`` (:func:`recode`). The step size is fixed,
learned (``softplus(θ)``) or predicted per example by an MLP. :class:`RecodingLM` runs the whole
step; :func:`recoding_loss_and_grad` trains with the official first-order rule (``g`` frozen),
the anchored-ensemble members included (LM loss through ``log mean_k p^(k)`` plus the anchor
loss); :func:`train_lm` adds clipping, SGD and the learning rate cut on validation plateaus.

This module holds training and evaluation (:func:`recoding_loss_and_grad`, :func:`train_lm`,
:func:`perplexity`, :func:`recoding_diagnostics`) and re-exports the rest:
:mod:`refseq.papers.recoding.grad` (:func:`state_gradients`, :func:`top_hidden_from`),
:mod:`refseq.papers.recoding.step_size` (:class:`FixedStep`, :class:`LearnedStep`,
:class:`MLPStep`) and :mod:`refseq.papers.recoding.recoder` (:func:`recode`,
:class:`RecodingLM`). Narrative: docs/papers/recoding.md.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
from refseq.papers.recoding.grad import state_gradients, top_hidden_from
from refseq.papers.recoding.lm import LSTMLanguageModel, lm_backward
from refseq.papers.recoding.recoder import SIGNALS, RecodingLM, recode
from refseq.papers.recoding.signals import (
    anchor_loss,
    ensemble_log_probs_backward,
)
from refseq.papers.recoding.step_size import FixedStep, LearnedStep, MLPStep, softplus


def _model_of(model_or_recoder, name="model_or_recoder"):
    """``(recoder or None, model)`` of an LSTMLanguageModel or a RecodingLM, else TypeError."""
    _checks.check_instance(model_or_recoder, (LSTMLanguageModel, RecodingLM), name)
    rec = model_or_recoder if isinstance(model_or_recoder, RecodingLM) else None
    return rec, (rec.model if rec else model_or_recoder)


def _tokens(tokens, name, model):
    """Token ids (B, T) in [0, V) with T >= 2 (the inputs and their next-token targets)."""
    tokens = _checks.int_array(tokens, name, low=0, high=model.V, ndim=2, form="(B, T)")
    if tokens.shape[1] < 2:
        raise ValueError(f"{name} must have shape (B, T) with T >= 2 (inputs and next-token "
                         f"targets), got {tokens.shape}")
    return tokens


def _run(model_or_recoder, tokens, state, targets, *, train, rng, gold=True, frozen=None):
    """Loop steps over tokens (B, T); returns (logits (B, T, V), state, caches, recodings)."""
    rec = model_or_recoder if isinstance(model_or_recoder, RecodingLM) else None
    model = rec.model if rec else model_or_recoder
    logits, caches, recodings = [], [], []
    rng = _checks.check_rng(rng)
    for t in range(tokens.shape[1]):
        if rec is None:
            lg, state, cache = model.step(tokens[:, t], state, train=train, rng=rng)
            recodings.append(None)
        else:
            tgt = targets[:, t] if (gold and targets is not None) else None
            lg, state, diag = rec.step(tokens[:, t], state, tgt, train=train, rng=rng,
                                       frozen=None if frozen is None else frozen[t])
            cache = diag["cache"]
            recodings.append(diag)
        logits.append(lg)
        caches.append(cache)
    return np.stack(logits, axis=1), state, caches, (recodings if rec else None)


def perplexity(model_or_recoder, tokens, gold_for_surprisal=True, state=None) -> float:
    """``exp(total NLL / number of predicted tokens)`` of ``tokens`` (B, T) at evaluation,
    scoring the logits each step returns (for surprisal: computed before the recoding that used
    the gold token, so nothing leaks)."""
    gold_for_surprisal = _checks.check_flag(gold_for_surprisal, "gold_for_surprisal")
    _, model = _model_of(model_or_recoder)
    tokens = _tokens(tokens, "tokens", model)
    logits, _, _, _ = _run(model_or_recoder, tokens[:, :-1], state, tokens[:, 1:], train=False,
                           rng=None, gold=gold_for_surprisal)
    loss, _ = cross_entropy_forward(logits, tokens[:, 1:])
    return float(np.exp(loss))


def recoding_diagnostics(recoder: RecodingLM, tokens, state=None) -> dict:
    """Per step ``delta_before``, ``delta_after`` (B, T-1), ``grad_norms`` (L, 2, B, T-1) and
    ``alphas`` (L, 2, B, T-1), gold targets given to surprisal signals."""
    _checks.check_instance(recoder, RecodingLM, "recoder")
    tokens = _tokens(tokens, "tokens", recoder.model)
    _, _, _, recs = _run(recoder, tokens[:, :-1], state, tokens[:, 1:], train=False, rng=None)
    return {"delta_before": np.stack([r["delta_before"] for r in recs], axis=1),
            "delta_after": np.stack([r["delta_after"] for r in recs], axis=1),
            "grad_norms": np.stack([np.array(r["grad_norms"]) for r in recs], axis=-1),
            "alphas": np.stack([np.array(r["alphas"])[..., 0] for r in recs], axis=-1)}


def recoding_loss_and_grad(model_or_recoder, batch, state=None, *, train=True, rng=None,
                           gold_for_surprisal=False, frozen=None):
    """Mean next-token cross-entropy of ``batch`` (B, T + 1) with recoding inside every step
    and its gradients by BPTT under the first-order rule (``g`` frozen). The official training
    loop gives surprisal no target (arg-max); ``gold_for_surprisal=True`` passes the gold one.

    Anchored ensemble (``signal="ensemble"``): the output of every step is the members'
    ``log mean_k p^(k)`` (the model's ``W_dec``, ``b_dec`` are unused and get zero gradients);
    the members' gradients come from :func:`ensemble_log_probs_backward` of that output, and
    with anchors the loss adds :func:`anchor_loss` and its gradient ``(2λ/N)(θ_k - θ_k^anc)``.
    The recoding gradient ``g`` (the entropy's ``∂δ/∂h`` through the members) is frozen like
    every other signal's: no second derivatives reach the members through it.

    Returns ``(loss, grads, final_state, frozen)``; grads has the model's parameter
    names plus :meth:`RecodingLM.recoder_params` names; the final state is a fresh (detached)
    copy; ``frozen`` is per step ``{"grads", "inputs"}`` (pass it back as ``frozen`` to
    evaluate the loss with ``g`` and the predictors' inputs held fixed).
    """
    train = _checks.check_flag(train, "train")
    gold_for_surprisal = _checks.check_flag(gold_for_surprisal, "gold_for_surprisal")
    rec, model = _model_of(model_or_recoder)
    batch = _tokens(batch, "batch", model)
    logits, state, caches, recs = _run(model_or_recoder, batch[:, :-1], state, batch[:, 1:],
                                       train=train, rng=rng, gold=gold_for_surprisal,
                                       frozen=frozen)
    loss, ce = cross_entropy_forward(logits, batch[:, 1:])
    loss = float(loss)
    (dlogits,) = cross_entropy_backward(np.ones((), logits.dtype), ce)
    d_h_dec, dec_grads = None, {}
    if rec is not None and rec.signal == "ensemble":
        d_h_dec = np.empty(dlogits.shape[:2] + (model.H,), model.dtype)  # (B, T, H)
        d_members = [(np.zeros_like(W), np.zeros_like(b)) for W, b in rec.decoders]
        for t, c in enumerate(caches):
            d_h_dec[:, t], dm = ensemble_log_probs_backward(c.h_dec, rec.decoders,
                                                            dlogits[:, t], rec.average)
            for (aW, ab), (gW, gb) in zip(d_members, dm):
                aW += gW
                ab += gb
        if rec.anchor is not None:
            anchors, data_noise, prior_var, n_data = rec.anchor
            a_loss, a_grads = anchor_loss(rec.decoders, anchors, data_noise, prior_var, n_data)
            loss += a_loss
            for (aW, ab), (gW, gb) in zip(d_members, a_grads):
                aW += gW
                ab += gb
        dec_grads = {f"dec.{k}.{n}": a for k, (gW, gb) in enumerate(d_members)
                     for n, a in (("W", gW), ("b", gb))}
        dlogits = np.zeros_like(dlogits)  # the model's own decoder produced no output
    grads, _, d_alphas = lm_backward(model, caches, dlogits, recodings=recs, d_h_dec=d_h_dec)
    grads |= dec_grads
    if rec is not None:
        for name, a in rec.step_params().items():
            grads[name] = np.zeros_like(a)
        for r, da in zip(recs, d_alphas):
            for l, ps in enumerate(rec.predictors):
                for j, k in enumerate(("h", "c")):
                    for n, gp in ps[k].backward(da[l][j], r["inputs"][l]).items():
                        grads[f"step.{l}.{k}.{n}"] += gp
    g_rec = None if recs is None else [{"grads": r["grads"], "inputs": r["inputs"]}
                                       for r in recs]
    return loss, grads, [(h.copy(), c.copy()) for h, c in state], g_rec


def batchify(stream, batch_size: int) -> np.ndarray:
    """Cut a 1-D token stream into ``batch_size`` contiguous rows (B, n), dropping the tail."""
    return _rows(stream, batch_size, "stream")


def _rows(stream, batch_size, name, V=None):
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    stream = _checks.int_array(stream, name, low=0, high=V, ndim=1, form="(N,)")
    n = len(stream) // batch_size
    if n < 2:
        raise ValueError(f"{name} too short for batch_size {batch_size}: need at least "
                         f"{2 * batch_size} tokens, got {len(stream)}")
    return stream[: n * batch_size].reshape(batch_size, n)


def train_lm(model_or_recoder, stream, epochs, optimizer, *, bptt_len=35, batch_size=20,
             clip=0.25, rng=None, log=None, valid=None, plateau=None) -> list:
    """Truncated BPTT over contiguous rows of ``stream`` with the state carried (detached)
    across windows; clip the global gradient norm, then ``optimizer.step`` (the official
    setting is plain SGD lr 20; any :mod:`refseq.train` optimiser works); ``clip`` is the
    largest global norm (> 0; ``None`` or ``inf`` for no clipping). Trains the LM, the
    step-size predictors and, for ``signal="ensemble"``, the ensemble members (with the anchor
    loss when the recoder has anchors).

    valid : optional 1-D token stream; after each epoch its perplexity (gold targets for
    surprisal, rows of ``batch_size``) is given to ``plateau``, which lowers ``optimizer.lr``
    when it stops improving. ``plateau`` defaults to
    ``ReduceOnPlateau(optimizer, factor=0.25, patience=0)``: the rate is divided by 4 after
    every epoch whose validation perplexity does not improve on the best (the official
    code steps torch's ReduceLROnPlateau with
    factor 0.25 every ``eval_every`` batches). A ``plateau`` without ``valid`` is an error.

    Returns the mean training loss per epoch.
    """
    from refseq.train.clipping import clip_grad_norm
    from refseq.train.plateau import ReduceOnPlateau

    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    bptt_len = _checks.check_number(bptt_len, "bptt_len", integer=True, low=1)
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    clip = _checks.check_number(clip, "clip", low=0, low_open=True, allow_inf=True,
                                allow_none=True)
    rec, model = _model_of(model_or_recoder)
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"optimizer must be a refseq.train optimiser (with a step(params, "
                        f"grads) method), got {type(optimizer).__name__}")
    params = dict(model.params) | (rec.recoder_params() if rec else {})
    rows = _rows(stream, batch_size, "stream", model.V)
    if plateau is not None and valid is None:
        raise ValueError("plateau needs a validation stream (valid=...)")
    if valid is not None:
        valid_rows = _rows(valid, batch_size, "valid", model.V)
        if plateau is None:
            plateau = ReduceOnPlateau(optimizer, factor=0.25, patience=0)
    rng = _checks.check_rng(rng)
    history = []
    for e in range(epochs):
        state, losses = None, []
        for s in range(0, rows.shape[1] - 1, bptt_len):
            batch = rows[:, s:s + bptt_len + 1]
            if batch.shape[1] < 2:
                break
            loss, grads, state, _ = recoding_loss_and_grad(model_or_recoder, batch, state,
                                                        train=True, rng=rng)
            if clip is not None:
                grads, _ = clip_grad_norm(grads, clip)
            optimizer.step(params, grads)
            losses.append(loss)
        history.append(float(np.mean(losses)))
        line = f"epoch {e + 1}/{epochs}  loss {history[-1]:.4f}"
        if valid is not None:
            ppl = perplexity(model_or_recoder, valid_rows)
            line += f"  valid ppl {ppl:.4f}  lr {plateau.step(ppl):.4g}"
        if log is not None:
            log(line)
    return history


__all__ = [
    "SIGNALS", "FixedStep", "LearnedStep", "MLPStep", "RecodingLM", "batchify", "perplexity",
    "recode", "recoding_diagnostics", "recoding_loss_and_grad", "softplus", "state_gradients",
    "top_hidden_from", "train_lm",
]

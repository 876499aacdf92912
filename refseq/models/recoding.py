"""Recoding latent sentence representations (Ulmer, arXiv 2101.00674; spec recoding.md).

At every step of a step-wise LSTM LM an error signal δ_t (:mod:`refseq.models.recoding_signals`)
is differentiated w.r.t. every layer's current ``h^l_t`` and ``c^l_t`` through the *same* time
step only (:func:`state_gradients`), and the states are moved against it:
``h̃ = h - α_{l,h} g_h``, ``c̃ = c - α_{l,c} g_c`` (:func:`recode`). The step size is fixed,
learned (``softplus(θ)``) or predicted per example by an MLP. :class:`RecodingLM` runs the whole
step; :func:`recoding_loss_and_grad` trains with the official first-order rule (``g`` frozen),
the anchored-ensemble members included (LM loss through ``log mean_k p^(k)`` plus the anchor
loss); :func:`train_lm` adds clipping, SGD and the learning rate cut on validation plateaus.

Same-step gradient, layer l from the top down (``g_h^{L-1} = ∂δ/∂h^{L-1}_t`` from the signal)::

    g_c^l   = g_h^l ⊙ o^l ⊙ (1 - tanh²(c^l_t))
    δ gates = the engine's lstm pointwise backward of (g_h^l, 0)
    g_h^{l-1} = W^lᵀ δ gates               (input weights only; R is not involved)
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.models.recoding_lm import LSTMLanguageModel, lm_backward
from refseq.models.recoding_signals import (
    anchor_loss,
    ensemble_entropy,
    ensemble_log_probs,
    ensemble_log_probs_backward,
    mc_dropout_entropy,
    surprisal,
    token_perplexity_code_variant,
)
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
from refseq.rnn.cells import pointwise_backward

SIGNALS = ("surprisal", "surprisal_code", "mc_dropout", "ensemble")


def state_gradients(model: LSTMLanguageModel, cache_t, d_h_top) -> list:
    """Gradient of δ_t w.r.t. every layer's ``h^l_t`` and ``c^l_t`` through step t only.

    ``h^l_t`` is a leaf (its ``g_h`` has no path through ``c^l_t``); ``g_c`` is the total
    derivative through ``h^l_t = o ⊙ tanh(c^l_t)``. d_h_top : (B, H) = ``∂δ/∂h^{L-1}_t``.
    Returns ``[(g_h (B, H), g_c (B, H))]`` per layer, bottom first.
    """
    d = _checks.float_array(d_h_top, "d_h_top", dtype=model.dtype)
    out = [None] * model.L
    for l in reversed(range(model.L)):
        lc = cache_t.layers[l]
        o, c = lc.gates["o"][:, 0], lc.new[1, :, 0]
        tc = np.tanh(c)
        g_c = d * o * (1 - tc * tc)
        out[l] = (d, g_c)
        if l:
            d_states = np.stack([d, np.zeros_like(d)])[:, :, None]  # (2, B, 1, H)
            _, d_gates = pointwise_backward("lstm", d_states, lc.prev, lc.new, lc.gates)
            d = np.einsum("bgnd,gndi->bi", d_gates, model.params[f"{l}.W"])  # (B, H)
    return out


def top_hidden_from(model: LSTMLanguageModel, cache_t, layer: int, h=None, c=None):
    """Recompute the top ``h^{L-1}_t`` with layer ``layer``'s ``h`` replaced (a leaf) or its
    ``c`` replaced (then ``h = o ⊙ tanh(c)``), re-running the layers above at step t from their
    cached incoming states. The definition :func:`state_gradients` differentiates."""
    if (h is None) == (c is None):
        raise ValueError("pass exactly one of h and c")
    if c is not None:
        h = cache_t.layers[layer].gates["o"][:, 0] * np.tanh(c)
    for l in range(layer + 1, model.L):
        prev = cache_t.layers[l].prev
        h, _, _ = model.layer_step(l, h, prev[0, :, 0], prev[1, :, 0])
    return h


def softplus(x):
    return np.logaddexp(0, x)


class FixedStep:
    """``α = alpha`` for every example."""

    def __init__(self, alpha: float):
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        self.alpha, self.params = float(alpha), {}

    def __call__(self, h):
        return np.full((np.shape(h)[0], 1), self.alpha, np.asarray(h).dtype)

    def backward(self, d_alpha, h):
        return {}


class LearnedStep:
    """``α = softplus(θ)``, scalar θ initialised ``U(0, 1)`` (or ``theta_init``)."""

    def __init__(self, theta_init=None, rng=None):
        t = np.random.default_rng(rng).uniform(0, 1) if theta_init is None else theta_init
        self.params = {"theta": np.array([float(t)])}

    def __call__(self, h):
        h = np.asarray(h)
        return np.full((h.shape[0], 1), softplus(self.params["theta"][0]), h.dtype)

    def backward(self, d_alpha, h):
        th = self.params["theta"]
        return {"theta": np.array([float(np.sum(d_alpha)) / (1 + np.exp(-th[0]))])}


class MLPStep:
    """``α(b) = softplus(w_3ᵀ ReLU(W_2 ReLU(W_1 h(b) + b_1) + b_2) + b_3)`` per example (B, 1),
    sizes ``H -> layers[0] -> layers[1] -> 1`` (official 300, 100); the input is detached."""

    def __init__(self, hidden_size: int, layers=(300, 100), rng=None, dtype=np.float64):
        rng = np.random.default_rng(rng)
        sizes = [hidden_size, *layers, 1]
        self.params = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lim = 1 / np.sqrt(a)
            self.params[f"W{i}"] = rng.uniform(-lim, lim, (a, b)).astype(dtype)
            self.params[f"b{i}"] = np.zeros(b, dtype)
        self.n = len(sizes) - 1

    def _forward(self, h):
        acts, x = [], np.asarray(h)
        for i in range(self.n):
            acts.append(x)
            x = x @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.n - 1:
                x = np.maximum(x, 0)
        return acts, x  # x: (B, 1) pre-softplus

    def __call__(self, h):
        return softplus(self._forward(h)[1]).astype(np.asarray(h).dtype, copy=False)

    def backward(self, d_alpha, h):
        acts, a = self._forward(h)
        d = d_alpha / (1 + np.exp(-a))  # softplus' = sigmoid
        g = {}
        for i in reversed(range(self.n)):
            if i < self.n - 1:
                d = d * (acts[i + 1] > 0)
            g[f"W{i}"], g[f"b{i}"] = acts[i].T @ d, d.sum(axis=0)
            d = d @ self.params[f"W{i}"].T
        return g


def recode(state, grads, alphas, nan_policy="zero"):
    """``h̃ = h - α_h g_h``, ``c̃ = c - α_c g_c`` per layer (new arrays; inputs untouched).

    state, grads : [(h, c)], [(g_h, g_c)] of (B, H); alphas : [(α_h, α_c)], each a scalar or
    (B, 1); nan_policy : NaN entries of g become 0 ("zero", the reference) or 1 ("one", the
    official code).
    """
    if nan_policy not in ("zero", "one"):
        raise ValueError(f"nan_policy must be 'zero' or 'one', got {nan_policy!r}")
    if not (len(state) == len(grads) == len(alphas)):
        raise ValueError("state, grads and alphas must have one entry per layer")
    fill = 0.0 if nan_policy == "zero" else 1.0
    out = []
    for (h, c), (gh, gc), (ah, ac) in zip(state, grads, alphas):
        gh, gc = np.where(np.isnan(gh), fill, gh), np.where(np.isnan(gc), fill, gc)
        out.append(((h - np.asarray(ah, h.dtype) * gh).astype(h.dtype, copy=False),
                    (c - np.asarray(ac, c.dtype) * gc).astype(c.dtype, copy=False)))
    return out


class RecodingLM:
    """An LSTM LM with recoding at every step (spec item 5).

    Parameters
    ----------
    model : LSTMLanguageModel; signal : one of ``SIGNALS``; step : a float (FixedStep), or a
    factory ``(layer, kind) -> predictor`` called once per layer and kind ("h", "c");
    redecode : None -> False for surprisal signals, True for entropy signals; num_samples,
    p_mc : MC-dropout K and q (official 10, 0.21); nan_policy : see :func:`recode`.

    Anchored ensemble (``signal="ensemble"``): decoders : [(W_k (V, H), b_k (V,))], the members
    (:func:`~refseq.models.recoding_signals.init_anchored_decoders`); they decode the step's
    output ``log mean_k p^(k)`` (``average="logits"``: the official mean of member logits) in
    place of the model's ``W_dec``, and training updates them in place (names
    ``dec.{k}.W``, ``dec.{k}.b``, see :meth:`recoder_params`). anchors : the members' anchors
    (same structure), with ``data_noise``, ``prior_var`` and ``n_data`` (N, training tokens):
    the training loss then adds :func:`~refseq.models.recoding_signals.anchor_loss`
    ``(λ/N) Σ_k ||θ_k - θ_k^anc||²``, ``λ = data_noise / prior_var`` (Pearce et al. 2018).
    Without anchors the members are trained by the LM loss alone.
    """

    def __init__(self, model, signal="surprisal", step=0.1, redecode=None, *, num_samples=10,
                 p_mc=0.21, decoders=None, nan_policy="zero", anchors=None, data_noise=None,
                 prior_var=None, n_data=None, average="probs"):
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
        if signal == "ensemble" and not decoders:
            raise ValueError("decoders must be given for signal='ensemble'")
        if average not in ("probs", "logits"):
            raise ValueError(f"average must be 'probs' or 'logits', got {average!r}")
        if decoders:
            decoders = [self._check_member(model, W, b, f"decoders[{k}]")
                        for k, (W, b) in enumerate(decoders)]
        self.anchor = None
        if anchors is not None:
            if signal != "ensemble":
                raise ValueError("anchors are only used with signal='ensemble'")
            if len(anchors) != len(decoders):
                raise ValueError(f"anchors must have one (W, b) per decoder ({len(decoders)}), "
                                 f"got {len(anchors)}")
            for name, v in (("data_noise", data_noise), ("prior_var", prior_var),
                            ("n_data", n_data)):
                if v is None or not np.isfinite(v) or v <= 0:
                    raise ValueError(f"{name} must be a positive number with anchors, got {v}")
            anchors = [self._check_member(model, W, b, f"anchors[{k}]")
                       for k, (W, b) in enumerate(anchors)]
            self.anchor = (anchors, float(data_noise), float(prior_var), float(n_data))
        self.model, self.signal, self.decoders, self.average = model, signal, decoders, average
        self.redecode = signal in ("mc_dropout", "ensemble") if redecode is None else redecode
        self.num_samples, self.p_mc, self.nan_policy = num_samples, p_mc, nan_policy
        factory = step if callable(step) else (lambda l, kind: FixedStep(step))
        self.predictors = [{k: factory(l, k) for k in ("h", "c")} for l in range(model.L)]

    @staticmethod
    def _check_member(model, W, b, name):
        W = _checks.float_array(W, f"{name}[0]", dtype=model.dtype)
        b = _checks.float_array(b, f"{name}[1]", dtype=model.dtype)
        _checks.check_shape(W, (model.V, model.H), f"{name}[0]", "(V, H)")
        _checks.check_shape(b, (model.V,), f"{name}[1]", "(V,)")
        return W, b

    def _signal(self, h_top, logits, cache, target, mc_masks):
        """``(delta (B,), d_h_top (B, H), y)``; surprisal gradients go through the decoder and
        the model's own dropout mask of this step."""
        m = self.model
        if self.signal in ("surprisal", "surprisal_code"):
            fn = surprisal if self.signal == "surprisal" else token_perplexity_code_variant
            delta, d_logits = fn(logits, target)
            y = np.argmax(logits, axis=-1) if target is None else np.asarray(target)
            d_h = d_logits @ m.params["W_dec"]
            if cache.top_mask is not None:
                d_h = np.where(cache.top_mask, d_h * m.dtype.type(cache.scale), 0)
            return delta, d_h, y
        if self.signal == "mc_dropout":
            delta, d_h = mc_dropout_entropy(h_top, m.params["W_dec"], m.params["b_dec"],
                                            self.num_samples, self.p_mc, masks=mc_masks)
            return delta, d_h, None
        delta, d_h = ensemble_entropy(h_top, self.decoders)
        return delta, d_h, None

    def _decode(self, h, mask):
        if self.signal == "ensemble":
            return ensemble_log_probs(h, self.decoders, self.average)
        return self.model.decode(h, mask)

    def step(self, tokens, state=None, target=None, *, train=False, rng=None, frozen=None):
        """One recoding step (spec "Algorithms" 1-7). Returns ``(logits (B, V), state_tilde,
        diagnostics)``; diagnostics: ``delta_before``, ``delta_after`` (δ recomputed at the
        recoded top ``h`` with the same decoder, masks and target), ``grads``, ``grad_norms``
        ``[(|g_h|, |g_c|)]`` (B,), ``alphas``, ``cache``, ``redecode``. ``frozen`` (optional,
        ``{"grads": [(g_h, g_c)], "inputs": [h]}``) replaces the recoding gradients and the
        step-size predictors' (detached) inputs: the first-order training rule holds both
        fixed, and finite differences of it must too."""
        m = self.model
        rng = np.random.default_rng(rng)
        logits, new_state, cache = m.step(tokens, state, train=train, rng=rng)
        h_top = new_state[-1][0]
        mc_masks = None
        if self.signal == "mc_dropout":  # its own dropout, active at evaluation too
            mc_masks = rng.random((self.num_samples,) + h_top.shape) >= self.p_mc
        delta, d_h, y = self._signal(h_top, logits, cache, target, mc_masks)
        grads = state_gradients(m, cache, d_h) if frozen is None else frozen["grads"]
        inputs = [h for h, _ in new_state] if frozen is None else frozen["inputs"]
        alphas = [(p["h"](h), p["c"](h)) for p, h in zip(self.predictors, inputs)]
        tilde = recode(new_state, grads, alphas, self.nan_policy)
        h_t = tilde[-1][0]
        after_logits = m.decode(h_t, cache.top_mask) if self.signal.startswith("surprisal") \
            else logits
        delta_after = self._signal(h_t, after_logits, cache, y, mc_masks)[0]
        out = logits
        if self.signal == "ensemble":  # the members decode the output (no dropout)
            out = self._decode(h_top, None)
            cache = cache._replace(top_mask=None, h_dec=h_top)
        if self.redecode:
            mask = None
            if train and m.dropout > 0 and self.signal != "ensemble":
                mask = rng.random(h_t.shape) >= m.dropout  # fresh mask in training
            out = self._decode(h_t, mask)
            h_dec = h_t if mask is None else np.where(mask, h_t * m.dtype.type(cache.scale), 0)
            cache = cache._replace(top_mask=mask, h_dec=h_dec)
        diag = {"delta_before": delta, "delta_after": delta_after, "grads": grads,
                "grad_norms": [(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
                               for a, b in grads],
                "alphas": alphas, "cache": cache, "redecode": self.redecode,
                "inputs": inputs}
        return out, tilde, diag

    def step_params(self) -> dict:
        """The step-size predictors' parameters, named ``step.{l}.{kind}.{name}``."""
        return {f"step.{l}.{k}.{n}": a for l, ps in enumerate(self.predictors)
                for k, p in ps.items() for n, a in p.params.items()}

    def decoder_params(self) -> dict:
        """The ensemble members (the arrays themselves), ``dec.{k}.W`` and ``dec.{k}.b``;
        empty unless ``signal="ensemble"``."""
        if self.signal != "ensemble":
            return {}
        return {f"dec.{k}.{n}": a for k, (W, b) in enumerate(self.decoders)
                for n, a in (("W", W), ("b", b))}

    def recoder_params(self) -> dict:
        """Everything the recoder trains besides the LM: step predictors and ensemble members."""
        return self.step_params() | self.decoder_params()


def _run(model_or_recoder, tokens, state, targets, *, train, rng, gold=True, frozen=None):
    """Loop steps over tokens (B, T); returns (logits (B, T, V), state, caches, recodings)."""
    rec = model_or_recoder if isinstance(model_or_recoder, RecodingLM) else None
    model = rec.model if rec else model_or_recoder
    logits, caches, recodings = [], [], []
    rng = np.random.default_rng(rng)
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
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must have shape (B, T) with T >= 2, got {tokens.shape}")
    logits, _, _, _ = _run(model_or_recoder, tokens[:, :-1], state, tokens[:, 1:], train=False,
                           rng=None, gold=gold_for_surprisal)
    loss, _ = cross_entropy_forward(logits, tokens[:, 1:])
    return float(np.exp(loss))


def recoding_diagnostics(recoder: RecodingLM, tokens, state=None) -> dict:
    """Per step ``delta_before``, ``delta_after`` (B, T-1), ``grad_norms`` (L, 2, B, T-1) and
    ``alphas`` (L, 2, B, T-1), gold targets given to surprisal signals."""
    tokens = np.asarray(tokens)
    _, _, _, recs = _run(recoder, tokens[:, :-1], state, tokens[:, 1:], train=False, rng=None)
    return {"delta_before": np.stack([r["delta_before"] for r in recs], axis=1),
            "delta_after": np.stack([r["delta_after"] for r in recs], axis=1),
            "grad_norms": np.stack([np.array(r["grad_norms"]) for r in recs], axis=-1),
            "alphas": np.stack([np.array(r["alphas"])[..., 0] for r in recs], axis=-1)}


def recoding_loss_and_grad(model_or_recoder, batch, state=None, *, train=True, rng=None,
                           gold_for_surprisal=False, frozen=None):
    """Mean next-token cross-entropy of ``batch`` (B, T + 1) with recoding inside every step
    and its gradients by BPTT under the first-order rule (spec item 6). The official training
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
    rec = model_or_recoder if isinstance(model_or_recoder, RecodingLM) else None
    model = rec.model if rec else model_or_recoder
    batch = np.asarray(batch)
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
    stream = np.asarray(stream)
    n = len(stream) // batch_size
    if n < 2:
        raise ValueError(f"stream too short for batch_size {batch_size}")
    return stream[: n * batch_size].reshape(batch_size, n)


def train_lm(model_or_recoder, stream, epochs, optimizer, *, bptt_len=35, batch_size=20,
             clip=0.25, rng=None, log=None, valid=None, plateau=None) -> list:
    """Truncated BPTT over contiguous rows of ``stream`` with the state carried (detached)
    across windows; clip the global gradient norm, then ``optimizer.step`` (the official
    setting is plain SGD lr 20; any :mod:`refseq.train` optimiser works). Trains the LM, the
    step-size predictors and, for ``signal="ensemble"``, the ensemble members (with the anchor
    loss when the recoder has anchors).

    valid : optional 1-D token stream; after each epoch its perplexity (gold targets for
    surprisal, rows of ``batch_size``) is given to ``plateau``, which lowers ``optimizer.lr``
    when it stops improving. ``plateau`` defaults to
    ``ReduceOnPlateau(optimizer, factor=0.25, patience=0)``: the rate is divided by 4 after
    every epoch whose validation perplexity does not improve on the best (the spec's "reduced
    by 4x on validation plateaus"; the official code steps torch's ReduceLROnPlateau with
    factor 0.25 every ``eval_every`` batches). A ``plateau`` without ``valid`` is an error.

    Returns the mean training loss per epoch.
    """
    from refseq.train.clipping import clip_grad_norm
    from refseq.train.plateau import ReduceOnPlateau

    rec = model_or_recoder if isinstance(model_or_recoder, RecodingLM) else None
    model = rec.model if rec else model_or_recoder
    params = dict(model.params) | (rec.recoder_params() if rec else {})
    rows = batchify(stream, batch_size)
    if plateau is not None and valid is None:
        raise ValueError("plateau needs a validation stream (valid=...)")
    if valid is not None:
        valid_rows = batchify(valid, batch_size)
        if plateau is None:
            plateau = ReduceOnPlateau(optimizer, factor=0.25, patience=0)
    rng = np.random.default_rng(rng)
    history = []
    for e in range(epochs):
        state, losses = None, []
        for s in range(0, rows.shape[1] - 1, bptt_len):
            batch = rows[:, s:s + bptt_len + 1]
            if batch.shape[1] < 2:
                break
            loss, grads, state, _ = recoding_loss_and_grad(model_or_recoder, batch, state,
                                                        train=True, rng=rng)
            if clip:
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

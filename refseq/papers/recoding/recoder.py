"""The recoder: the recoding update and one LSTM LM step with it (Ulmer, arXiv 2101.00674).

:func:`recode` moves the states against their gradients, ``h̃ = h - α_{l,h} g_h``,
``c̃ = c - α_{l,c} g_c``. :class:`RecodingLM` runs the model's step, computes the error signal δ_t
(:mod:`refseq.papers.recoding.signals`), its same-step state gradients
(:mod:`refseq.papers.recoding.grad`) and the step sizes (:mod:`refseq.papers.recoding.step_size`),
recodes, and optionally re-decodes. Narrative: docs/papers/recoding.md.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.recoding.grad import state_gradients
from refseq.papers.recoding.lm import LSTMLanguageModel
from refseq.papers.recoding.signals import (
    ensemble_entropy,
    ensemble_log_probs,
    mc_dropout_entropy,
    surprisal,
    token_perplexity_code_variant,
)
from refseq.papers.recoding.step_size import FixedStep

SIGNALS = ("surprisal", "surprisal_code", "mc_dropout", "ensemble")


def recode(state, grads, alphas, nan_policy="zero"):
    """``h̃ = h - α_h g_h``, ``c̃ = c - α_c g_c`` per layer (new arrays; inputs untouched).

    state, grads : [(h, c)], [(g_h, g_c)] of (B, H); alphas : [(α_h, α_c)], each a scalar or
    (B, 1); nan_policy : NaN entries of g become 0 ("zero", the reference) or 1 ("one", the
    official code).
    """
    _checks.check_choice(nan_policy, "nan_policy", ("zero", "one"))
    for name, v in (("state", state), ("grads", grads), ("alphas", alphas)):
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, (list, tuple))
                                                       and len(x) == 2 for x in v):
            raise TypeError(f"{name} must be a list of pairs, one per layer")
    if not (len(state) == len(grads) == len(alphas)):
        raise ValueError("state, grads and alphas must have one entry per layer")
    fill = 0.0 if nan_policy == "zero" else 1.0
    out = []
    for l, ((h, c), (gh, gc), (ah, ac)) in enumerate(zip(state, grads, alphas)):
        h, c = (_checks.float_array(v, f"state[{l}][{i}]") for i, v in enumerate((h, c)))
        if h.ndim != 2:
            raise ValueError(f"state[{l}][0] must have shape (B, H), got {h.shape}")
        _checks.check_shape(c, h.shape, f"state[{l}][1]", "(B, H)")
        gh, gc = (_checks.float_array(v, f"grads[{l}][{i}]") for i, v in enumerate((gh, gc)))
        _checks.check_shape(gh, h.shape, f"grads[{l}][0]", "(B, H)")
        _checks.check_shape(gc, h.shape, f"grads[{l}][1]", "(B, H)")
        for i, a in enumerate((ah, ac)):
            if np.ndim(a) and np.shape(a) != (h.shape[0], 1):
                raise ValueError(f"alphas[{l}][{i}] must be a scalar or (B, 1) = "
                                 f"{(h.shape[0], 1)}, got shape {np.shape(a)}")
        gh, gc = np.where(np.isnan(gh), fill, gh), np.where(np.isnan(gc), fill, gc)
        out.append(((h - np.asarray(ah, h.dtype) * gh).astype(h.dtype, copy=False),
                    (c - np.asarray(ac, c.dtype) * gc).astype(c.dtype, copy=False)))
    return out


class RecodingLM:
    """An LSTM LM with recoding at every step.

    Parameters
    ----------
    model : LSTMLanguageModel; signal : one of ``SIGNALS``; step : a float (FixedStep), or a
    factory ``(layer, kind) -> predictor`` called once per layer and kind ("h", "c");
    redecode : None -> False for surprisal signals, True for entropy signals; num_samples,
    p_mc : MC-dropout K and q (official 10, 0.21); nan_policy : see :func:`recode`.

    Anchored ensemble (``signal="ensemble"``): decoders : [(W_k (V, H), b_k (V,))], the members
    (:func:`~refseq.papers.recoding.signals.init_anchored_decoders`); they decode the step's
    output ``log mean_k p^(k)`` (``average="logits"``: the official mean of member logits) in
    place of the model's ``W_dec``, and training updates them in place (names
    ``dec.{k}.W``, ``dec.{k}.b``, see :meth:`recoder_params`). anchors : the members' anchors
    (same structure), with ``data_noise``, ``prior_var`` and ``n_data`` (N, training tokens):
    the training loss then adds :func:`~refseq.papers.recoding.signals.anchor_loss`
    ``(λ/N) Σ_k ||θ_k - θ_k^anc||²``, ``λ = data_noise / prior_var`` (Pearce et al. 2018).
    Without anchors the members are trained by the LM loss alone.
    """

    def __init__(self, model, signal="surprisal", step=0.1, redecode=None, *, num_samples=10,
                 p_mc=0.21, decoders=None, nan_policy="zero", anchors=None, data_noise=None,
                 prior_var=None, n_data=None, average="probs"):
        _checks.check_instance(model, LSTMLanguageModel, "model")
        _checks.check_choice(signal, "signal", SIGNALS)
        _checks.check_choice(nan_policy, "nan_policy", ("zero", "one"))
        redecode = None if redecode is None else _checks.check_flag(redecode, "redecode")
        num_samples = _checks.check_number(num_samples, "num_samples", integer=True, low=1)
        p_mc = _checks.check_number(p_mc, "p_mc", low=0, high=1, high_open=True)
        if not callable(step):
            step = _checks.check_number(step, "step", low=0)
        if signal == "ensemble" and not decoders:
            raise ValueError("decoders must be given for signal='ensemble'")
        _checks.check_choice(average, "average", ("probs", "logits"))
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
                if v is None:
                    raise ValueError(f"{name} must be given (a number > 0) with anchors")
                _checks.check_number(v, name, low=0, low_open=True, integer=name == "n_data")
            anchors = [self._check_member(model, W, b, f"anchors[{k}]")
                       for k, (W, b) in enumerate(anchors)]
            self.anchor = (anchors, float(data_noise), float(prior_var), int(n_data))
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
        """One recoding step (model step, signal, state gradients, step sizes, recode, optional
        re-decode). Returns ``(logits (B, V), state_tilde,
        diagnostics)``; diagnostics: ``delta_before``, ``delta_after`` (δ recomputed at the
        recoded top ``h`` with the same decoder, masks and target), ``grads``, ``grad_norms``
        ``[(|g_h|, |g_c|)]`` (B,), ``alphas``, ``cache``, ``redecode``. ``frozen`` (optional,
        ``{"grads": [(g_h, g_c)], "inputs": [h]}``) replaces the recoding gradients and the
        step-size predictors' (detached) inputs: the first-order training rule holds both
        fixed, and finite differences of it must too."""
        m = self.model
        train = _checks.check_flag(train, "train")
        rng = _checks.check_rng(rng)
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

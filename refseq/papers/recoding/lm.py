"""The step-wise LSTM language model that recoding (Ulmer, arXiv 2101.00674) acts on.

Embedding -> dropout -> L LSTM layers -> dropout on the top ``h`` -> decoder (as the official code's
``LSTMLanguageModel``). Each layer step is the shared recurrence engine's one-head ``lstm`` cell
(:func:`refseq.recurrence.cells.pointwise_forward`, gate order i, f, z, o; ``N = 1`` head of width
``D = H``), so one LM step equals :func:`refseq.recurrence.engine.flashrnn_step` on the same
weights. :func:`lm_backward` is BPTT over a list of step caches; it also serves recoding's
first-order training rule (the carried state is the recoded one, ``∂h̃/∂h = I``).

Symbols: B batch, T time, V vocabulary, E embedding width, H hidden width, L layers. Weights
follow the engine's layout: input ``W (4, 1, H, I)`` (``I = E`` for layer 0, ``H`` above) with
bias ``b_ih (4, 1, H)``, recurrent ``R (4, 1, H, H)`` with bias ``b_hh (4, 1, H)`` (the paper's
8 affine maps, one bias each), embedding ``E (V, E)``, decoder ``W_dec (V, H)``, ``b_dec (V,)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.nn.embedding import int_array
from refseq.recurrence.cells import pointwise_backward, pointwise_forward


class LayerCache(NamedTuple):
    u: np.ndarray  # (B, I) layer input
    prev: np.ndarray  # (2, B, 1, H) incoming (h, c)
    new: np.ndarray  # (2, B, 1, H) outgoing (h, c) before any recoding
    gates: dict  # engine cell cache: i, f, z, o (B, 1, H)


class StepCache(NamedTuple):
    tokens: np.ndarray  # (B,)
    in_mask: np.ndarray | None  # (B, E) embedding dropout mask (True = keep), None = off
    layers: list  # [LayerCache]
    top_mask: np.ndarray | None  # (B, H) output dropout mask
    h_dec: np.ndarray  # (B, H) what the decoder read (dropped-out top h)
    scale: float  # 1 / (1 - dropout)


def _mask(rng, shape, p):
    return np.random.default_rng(rng).random(shape) >= p


class LSTMLanguageModel:
    """``LSTMLanguageModel(vocab_size, embedding_size, hidden_size, num_layers=1, dropout=0.0,
    rng=None, dtype=np.float64, init_scale=0.1)``: weights ``U(-init_scale, init_scale)``, zero
    biases. ``params`` is a flat dict name -> array (the optimisers of :mod:`refseq.train` walk
    it in place)."""

    def __init__(self, vocab_size, embedding_size, hidden_size, num_layers=1, dropout=0.0,
                 rng=None, dtype=np.float64, init_scale=0.1):
        vocab_size, embedding_size, hidden_size, num_layers = (
            _checks.check_number(v, name, integer=True, low=1) for name, v in (
                ("vocab_size", vocab_size), ("embedding_size", embedding_size),
                ("hidden_size", hidden_size), ("num_layers", num_layers)))
        dropout = _checks.check_number(dropout, "dropout", low=0, high=1, high_open=True)
        dtype = _checks.check_float_dtype(dtype, "dtype")
        init_scale = _checks.check_number(init_scale, "init_scale", low=0)
        rng = _checks.check_rng(rng)
        V, E, H = vocab_size, embedding_size, hidden_size
        self.V, self.E, self.H, self.L, self.dropout = V, E, H, num_layers, float(dropout)
        self.dtype = np.dtype(dtype)

        def u(*shape):
            return rng.uniform(-init_scale, init_scale, shape).astype(dtype)

        p = {"E": u(V, E), "W_dec": u(V, H), "b_dec": np.zeros(V, dtype)}
        for l in range(num_layers):
            I = E if l == 0 else H
            p[f"{l}.W"], p[f"{l}.b_ih"] = u(4, 1, H, I), np.zeros((4, 1, H), dtype)
            p[f"{l}.R"], p[f"{l}.b_hh"] = u(4, 1, H, H), np.zeros((4, 1, H), dtype)
        self.params = p

    def init_state(self, B: int) -> list:
        """Zero state: ``[(h (B, H), c (B, H))]`` per layer."""
        B = _checks.check_number(B, "B", integer=True, low=0)
        return [(np.zeros((B, self.H), self.dtype),) * 2 for _ in range(self.L)]

    def check_state(self, state, B: int, name="state") -> list:
        if state is None:
            return self.init_state(B)
        if not isinstance(state, (list, tuple)) or len(state) != self.L:
            raise ValueError(f"{name} must be a list of {self.L} (h, c) pairs")
        out = []
        for l, (h, c) in enumerate(state):
            h = _checks.float_array(h, f"{name}[{l}][0]", dtype=self.dtype)
            c = _checks.float_array(c, f"{name}[{l}][1]", dtype=self.dtype)
            _checks.check_shape(h, (B, self.H), f"{name}[{l}][0]", "(B, H)")
            _checks.check_shape(c, (B, self.H), f"{name}[{l}][1]", "(B, H)")
            out.append((h, c))
        return out

    def decode(self, h_top, mask=None):
        """``logits = W_dec drop(h_top) + b_dec`` with an explicit dropout mask (None = off)."""
        if mask is not None:
            h_top = np.where(mask, h_top / self.dtype.type(1 - self.dropout), 0)
        return h_top @ self.params["W_dec"].T + self.params["b_dec"]  # (B, V)

    def layer_step(self, l: int, u, h_prev, c_prev):
        """One engine ``lstm`` cell step of layer ``l``: returns ``(h, c, LayerCache)``."""
        p = self.params
        Wx = np.einsum("gndi,bi->bgnd", p[f"{l}.W"], u) + p[f"{l}.b_ih"]  # (B, 4, 1, H)
        Ry = np.einsum("gndp,bnp->bgnd", p[f"{l}.R"], h_prev[:, None])  # (B, 4, 1, H)
        prev = np.stack([h_prev, c_prev])[:, :, None]  # (2, B, 1, H)
        new, gates = pointwise_forward("lstm", Wx, Ry, p[f"{l}.b_hh"], prev)
        new = new.astype(self.dtype, copy=False)
        return new[0, :, 0], new[1, :, 0], LayerCache(u, prev, new, gates)

    def step(self, tokens, state=None, *, train=False, rng=None, masks=None):
        """One time step.

        Parameters
        ----------
        tokens : (B,) int in [0, V); state : [(h, c)] or None (zeros); train : apply dropout
        (masks drawn from ``rng`` unless ``masks = (in_mask (B, E), top_mask (B, H))``).

        Returns
        -------
        logits : (B, V); state : [(h, c)] (new arrays); cache : StepCache.
        """
        train = _checks.check_flag(train, "train")
        tokens = int_array(tokens, "tokens", high=self.V, form="(B,)")
        if tokens.ndim != 1:
            raise ValueError(f"tokens must have shape (B,), got {tokens.shape}")
        B = tokens.shape[0]
        state = self.check_state(state, B)
        x = self.params["E"][tokens]  # (B, E)
        in_mask = top_mask = None
        if train and self.dropout > 0:
            rng = _checks.check_rng(rng)
            in_mask, top_mask = masks if masks is not None else (
                _mask(rng, (B, self.E), self.dropout), _mask(rng, (B, self.H), self.dropout))
            x = np.where(in_mask, x / self.dtype.type(1 - self.dropout), 0)
        new_state, caches, u = [], [], x
        for l, (h_prev, c_prev) in enumerate(state):
            h, c, lc = self.layer_step(l, u, h_prev, c_prev)
            new_state.append((h, c))
            caches.append(lc)
            u = h
        keep = self.dtype.type(1 - self.dropout)
        h_dec = u if top_mask is None else np.where(top_mask, u / keep, 0)  # (B, H)
        logits = h_dec @ self.params["W_dec"].T + self.params["b_dec"]  # (B, V)
        scale = 1.0 / (1.0 - self.dropout)
        return logits, new_state, StepCache(tokens, in_mask, caches, top_mask, h_dec, scale)

    def forward(self, tokens, state=None, *, train=False, rng=None):
        """Loop :meth:`step` over ``tokens`` (B, T); returns ``(logits (B, T, V), state)``."""
        train = _checks.check_flag(train, "train")
        tokens = int_array(tokens, "tokens", high=self.V, form="(B, T)")
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tokens.shape}")
        rng = _checks.check_rng(rng) if train else None
        out = []
        for t in range(tokens.shape[1]):
            logits, state, _ = self.step(tokens[:, t], state, train=train, rng=rng)
            out.append(logits)
        B = tokens.shape[0]
        logits = np.stack(out, axis=1) if out else np.zeros((B, 0, self.V), self.dtype)
        return logits, self.check_state(state, B)


def lm_backward(model: LSTMLanguageModel, caches, dlogits, d_state=None, recodings=None,
                d_h_dec=None):
    """BPTT over the step caches of one window (teacher forcing).

    Parameters
    ----------
    caches : [StepCache] for t = 0..T-1 (each step's incoming state is the previous step's
    carried, possibly recoded, state); dlogits : (B, T, V) cotangent of the logits;
    d_state : [(dh, dc)] cotangent of the final carried state (None: zero);
    recodings : None, or per step a dict with ``grads`` ``[(g_h, g_c)]`` (frozen) and
    ``redecode`` (the step's logits were decoded from the recoded top ``h``). First-order
    rule: ``s̃ = s - α g`` with ``g`` constant, so ``∂L/∂s = ∂L/∂s̃`` and
    ``∂L/∂α = -Σ_H (∂L/∂s̃) ⊙ g``.
    d_h_dec : None, or (B, T, H): an extra cotangent on the top ``h`` each step's output was
    decoded from, added after the model decoder's dropout (the anchored-ensemble output reads
    ``h`` through its own decoders, :func:`refseq.papers.recoding.signals.ensemble_log_probs`).

    Returns
    -------
    grads : dict with the names of ``model.params``; d_state0 : [(dh, dc)];
    d_alphas : per step ``[(dα_h (B, 1), dα_c (B, 1))]`` per layer (None without recodings).
    """
    _checks.check_instance(model, LSTMLanguageModel, "model")
    if not isinstance(caches, (list, tuple)) or not all(isinstance(c, StepCache)
                                                         for c in caches):
        raise TypeError("caches must be a list of StepCache (one per step, from model.step)")
    p, L, T = model.params, model.L, len(caches)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dlogits = _checks.float_array(dlogits, "dlogits", dtype=model.dtype)
    if dlogits.ndim != 3 or dlogits.shape[2] != model.V:
        raise ValueError(f"dlogits must have shape (B, T, V) with V = {model.V}, got "
                         f"{dlogits.shape}")
    B = dlogits.shape[0]
    if dlogits.shape[1] != T:
        raise ValueError(f"caches must hold one StepCache per step of dlogits (B, T, V): got "
                         f"{T} caches for T = {dlogits.shape[1]}")
    if d_h_dec is not None:
        _checks.check_shape(d_h_dec, (B, T, model.H), "d_h_dec", "(B, T, H)")
    carry = [(np.zeros((B, model.H), model.dtype),) * 2 for _ in range(L)] if d_state is None \
        else [(np.asarray(a), np.asarray(b)) for a, b in d_state]
    d_alphas = [None] * T
    for t in reversed(range(T)):
        c = caches[t]
        dl = dlogits[:, t]  # (B, V)
        g["W_dec"] += dl.T @ c.h_dec
        g["b_dec"] += dl.sum(axis=0)
        dh_dec = dl @ p["W_dec"]  # (B, H)
        if c.top_mask is not None:
            dh_dec = np.where(c.top_mask, dh_dec * model.dtype.type(c.scale), 0)
        if d_h_dec is not None:
            dh_dec = dh_dec + d_h_dec[:, t]
        rec = recodings[t] if recodings is not None else None
        dS = [list(x) for x in carry]  # gradient on the carried (recoded) state
        if rec is not None and rec["redecode"]:
            dS[-1][0] = dS[-1][0] + dh_dec
        if rec is not None:
            d_alphas[t] = [(-(dS[l][0] * gh).sum(axis=1, keepdims=True),
                            -(dS[l][1] * gc).sum(axis=1, keepdims=True))
                           for l, (gh, gc) in enumerate(rec["grads"])]
        if rec is None or not rec["redecode"]:
            dS[-1][0] = dS[-1][0] + dh_dec
        du = None
        for l in reversed(range(L)):
            lc = c.layers[l]
            dh = dS[l][0] + (du if du is not None else 0)
            d_states = np.stack([dh, dS[l][1]])[:, :, None]  # (2, B, 1, H)
            d_prev, d_gates = pointwise_backward("lstm", d_states, lc.prev, lc.new, lc.gates)
            g[f"{l}.W"] += np.einsum("bgnd,bi->gndi", d_gates, lc.u)
            g[f"{l}.b_ih"] += d_gates.sum(axis=0)
            g[f"{l}.b_hh"] += d_gates.sum(axis=0)
            g[f"{l}.R"] += np.einsum("bgnd,bnp->gndp", d_gates, lc.prev[0])
            du = np.einsum("bgnd,gndi->bi", d_gates, p[f"{l}.W"])  # (B, I)
            dh_prev = np.einsum("bgnd,gndp->bnp", d_gates, p[f"{l}.R"])[:, 0] + d_prev[0, :, 0]
            carry[l] = (dh_prev, d_prev[1, :, 0])
        if c.in_mask is not None:
            du = np.where(c.in_mask, du * model.dtype.type(c.scale), 0)
        np.add.at(g["E"], c.tokens, du)
    return g, carry, (d_alphas if recodings is not None else None)

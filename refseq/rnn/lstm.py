"""The LSTM memory cell with the review's switches (Lipton et al., arXiv 1506.00019, Sec. 4.1;
Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000; Gers & Schmidhuber 2000).

.. math::

    g(t) &= \\phi(W^{gx} x(t) + W^{gh} h(t-1) + b_g) && \\text{input node} \\\\
    i(t) &= \\sigma(W^{ix} x(t) + W^{ih} h(t-1) + b_i\\, [+\\, p_i \\odot s(t-1)]) \\\\
    f(t) &= \\sigma(W^{fx} x(t) + W^{fh} h(t-1) + b_f\\, [+\\, p_f \\odot s(t-1)])
          && (\\equiv 1 \\text{ without forget gate}) \\\\
    s(t) &= g(t) \\odot i(t) + s(t-1) \\odot f(t) && \\text{internal state} \\\\
    o(t) &= \\sigma(W^{ox} x(t) + W^{oh} h(t-1) + b_o\\, [+\\, p_o \\odot s(t)]) \\\\
    h(t) &= \\phi(s(t)) \\odot o(t) && (\\text{identity output: } s(t) \\odot o(t))

Code names follow the review: ``W_gx, W_ix, W_fx, W_ox (H, I)``, ``W_gh, W_ih, W_fh, W_oh (H, H)``,
``b_g, b_i, b_f, b_o (H,)``, diagonal peepholes ``p_i, p_f, p_o (H,)``; state ``(h, s)``.
Peephole timing: the input and forget gates see ``s(t-1)``, the output gate the new ``s(t)``
(``tf.compat.v1.nn.rnn_cell.LSTMCell(use_peepholes=True)``).

With ``forget_gate=True, peepholes=False, output_activation="tanh"`` this is the shared engine's
``lstm`` cell (gate order i, f, z=g, o) and ``torch.nn.LSTM``; this module always runs its own
loop, and the tests check it against the engine. Padded steps (``lengths``) keep ``(h, s)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.rnn.masking import check_lengths

GATES = ("g", "i", "f", "o")
WEIGHTS = tuple(f"W_{k}x" for k in GATES) + tuple(f"W_{k}h" for k in GATES)
BIASES = tuple(f"b_{k}" for k in GATES)
PEEPHOLES = ("p_i", "p_f", "p_o")
OUTPUT_ACTIVATIONS = ("tanh", "identity")


class LSTMParams(NamedTuple):
    W_gx: np.ndarray
    W_ix: np.ndarray
    W_fx: np.ndarray
    W_ox: np.ndarray
    W_gh: np.ndarray
    W_ih: np.ndarray
    W_fh: np.ndarray
    W_oh: np.ndarray
    b_g: np.ndarray
    b_i: np.ndarray
    b_f: np.ndarray
    b_o: np.ndarray
    p_i: np.ndarray | None = None
    p_f: np.ndarray | None = None
    p_o: np.ndarray | None = None


def init_lstm_params(rng, I, H, dtype=np.float64, scale=1.0, forget_bias=0.0, peepholes=False):
    """Random parameters: ``W ~ N(0, scale² / fan_in)``, biases ``N(0, 0.1²)`` (``b_f`` shifted
    by ``forget_bias``), peepholes ``N(0, 0.1²)`` when asked for."""
    peepholes = check_flag(peepholes, "peepholes")
    rng = _checks.check_rng(rng)
    I = _checks.check_number(I, "I", integer=True, low=1)
    H = _checks.check_number(H, "H", integer=True, low=1)
    dtype = _checks.check_float_dtype(dtype, "dtype")
    scale = _checks.check_number(scale, "scale", low=0)
    forget_bias = _checks.check_number(forget_bias, "forget_bias")

    def w(shape, fan):
        return (scale * rng.standard_normal(shape) / np.sqrt(fan)).astype(dtype)

    d = {k: w((H, I), I) for k in WEIGHTS[:4]} | {k: w((H, H), H) for k in WEIGHTS[4:]}
    d |= {k: (0.1 * rng.standard_normal(H)).astype(dtype) for k in BIASES}
    d["b_f"] = (d["b_f"] + forget_bias).astype(dtype)
    if peepholes:
        d |= {k: (0.1 * rng.standard_normal(H)).astype(dtype) for k in PEEPHOLES}
    return LSTMParams(**d)


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def _params_dict(params) -> dict:
    """``params`` (LSTMParams or a Mapping) as a dict without ``None`` entries."""
    if hasattr(params, "_asdict"):
        params = params._asdict()
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be an LSTMParams or a mapping with its names, got "
                        f"{type(params).__name__}")
    return {k: v for k, v in params.items() if v is not None}


def _check_params(params, dtype, I, peepholes):
    """Validate and cast ``params``; ``I = None`` takes the input width from ``W_gx``."""
    get = _params_dict(params)
    names = WEIGHTS + BIASES + (PEEPHOLES if peepholes else ())
    missing = [k for k in names if k not in get]
    if missing:
        raise ValueError(f"params is missing {missing}" +
                         (" (peepholes=True needs p_i, p_f, p_o)" if peepholes else ""))
    extra = sorted(set(get) - set(WEIGHTS + BIASES + PEEPHOLES))  # p_* unused without peepholes
    if extra:
        raise ValueError(f"params has unexpected names {extra} (see LSTMParams)")
    H = np.shape(get["b_g"])[0] if np.ndim(get["b_g"]) == 1 else -1
    if I is None:
        I = np.shape(get["W_gx"])[-1] if np.ndim(get["W_gx"]) == 2 else -1
    forms = {**{k: ((H, I), "(H, I) with I = x.shape[-1]") for k in WEIGHTS[:4]},
             **{k: ((H, H), "(H, H)") for k in WEIGHTS[4:]},
             **{k: ((H,), "(H,)") for k in BIASES + PEEPHOLES}}
    out = {}
    for k in names:
        out[k] = _checks.float_array(get[k], f"params.{k}", dtype=dtype)
        _checks.check_shape(out[k], forms[k][0], f"params.{k}", forms[k][1])
    return out, H


class LSTMCache(NamedTuple):
    x: np.ndarray  # (B, T, I)
    P: dict  # validated parameters
    steps: dict  # name -> (T, B, H): g, i, f, o, s_prev, s, h_prev, phi_s
    real: np.ndarray | None  # (T, B, 1) bool
    switches: tuple  # (forget_gate, peepholes, output_activation)
    state0: tuple  # (h0, s0) each (B, H)


def lstm_forward(x, params, state0=None, *, forget_gate=True, peepholes=False,
                 output_activation="tanh", lengths=None):
    """Run the LSTM over ``x (B, T, I)``.

    Parameters
    ----------
    params : LSTMParams or a mapping with the same names (``p_*`` only with ``peepholes``).
    state0 : ``(h0, s0)`` each (B, H), optional — zeros by default.
    forget_gate : False gives the 1997 cell, ``f(t) ≡ 1`` (the constant error carousel).
    peepholes : add ``p_i ⊙ s(t-1)``, ``p_f ⊙ s(t-1)``, ``p_o ⊙ s(t)`` to the gates.
    output_activation : "tanh" (``h = tanh(s) ⊙ o``) or "identity" (``h = s ⊙ o``).
    lengths : (B,) int in [0, T], optional.

    Returns
    -------
    h : (B, T, H); (h_last, s_last) : each (B, H); cache : LSTMCache.
    """
    forget_gate = check_flag(forget_gate, "forget_gate")
    peepholes = check_flag(peepholes, "peepholes")
    _checks.check_choice(output_activation, "output_activation", OUTPUT_ACTIVATIONS)
    x = _checks.float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I), got {x.shape}")
    B, T, I = x.shape
    P, H = _check_params(params, x.dtype, I, peepholes)
    h, s = _state(state0, B, H, x.dtype)
    L = check_lengths(lengths, B, T)
    real = None if L is None else (np.arange(T)[:, None] < L[None, :])[..., None]  # (T, B, 1)
    if real is not None:  # padding never enters the arithmetic (NaN there stays harmless)
        x = np.where(real.transpose(1, 0, 2), x, 0)
    phi = np.tanh if output_activation == "tanh" else (lambda v: v)
    steps = {k: np.empty((T, B, H), x.dtype) for k in
             ("g", "i", "f", "o", "s_prev", "s", "h_prev", "phi_s")}
    out = np.empty((B, T, H), x.dtype)
    one = x.dtype.type(1)
    for t in range(T):
        pre = {k: x[:, t] @ P[f"W_{k}x"].T + h @ P[f"W_{k}h"].T + P[f"b_{k}"] for k in GATES}
        g = np.tanh(pre["g"])  # (B, H) input node
        i = _sigmoid(pre["i"] + (P["p_i"] * s if peepholes else 0))
        f = _sigmoid(pre["f"] + (P["p_f"] * s if peepholes else 0)) if forget_gate \
            else np.full_like(g, one)
        s_new = g * i + s * f  # (B, H) internal state
        o = _sigmoid(pre["o"] + (P["p_o"] * s_new if peepholes else 0))
        phi_s = phi(s_new)
        h_new = phi_s * o
        for k, v in zip(steps, (g, i, f, o, s, s_new, h, phi_s)):
            steps[k][t] = v
        if real is not None:
            h_new, s_new = np.where(real[t], h_new, h), np.where(real[t], s_new, s)
        out[:, t] = h = h_new
        s = s_new
    cache = LSTMCache(x, P, steps, real, (forget_gate, peepholes, output_activation),
                      _state(state0, B, H, x.dtype))
    return out, (h, s), cache


def _state(state0, B, H, dtype):
    if state0 is None:
        return np.zeros((B, H), dtype), np.zeros((B, H), dtype)
    h0, s0 = state0
    h0 = _checks.float_array(h0, "state0[0] (h0)", dtype=dtype)
    s0 = _checks.float_array(s0, "state0[1] (s0)", dtype=dtype)
    _checks.check_shape(h0, (B, H), "state0[0] (h0)", "(B, H)")
    _checks.check_shape(s0, (B, H), "state0[1] (s0)", "(B, H)")
    return h0, s0


def lstm_backward(dh, d_last, cache: LSTMCache):
    """BPTT for :func:`lstm_forward` (docs/papers/rnn-review.md).

    Per step, with ``δh`` the total gradient on ``h(t)`` and ``δs`` the one carried on ``s(t)``:
    ``δo_pre = δh ⊙ φ(s) ⊙ o(1-o)``; ``δs += δh ⊙ o ⊙ φ'(s)`` [``+ p_o ⊙ δo_pre``];
    ``δi_pre = δs ⊙ g ⊙ i(1-i)``; ``δf_pre = δs ⊙ s(t-1) ⊙ f(1-f)``; ``δg_pre = δs ⊙ i ⊙ (1-g²)``;
    ``δs(t-1) = δs ⊙ f`` [``+ p_i ⊙ δi_pre + p_f ⊙ δf_pre``];
    ``δh(t-1) = Σ_k W^{kh}ᵀ δk_pre``.

    Parameters
    ----------
    dh : (B, T, H); d_last : ``(dh_last, ds_last)`` (either may be None) or None.

    Returns
    -------
    dx : (B, T, I); grads : dict with the names of the parameters used (unused forget-gate
    weights get zeros); ``(dh0, ds0)`` : each (B, H).
    """
    x, P, S, real, (forget_gate, peepholes, out_act), (h0, _) = cache
    B, T, _ = x.shape
    dh = _checks.float_array(dh, "dh", dtype=x.dtype)
    _checks.check_shape(dh, (B, T, h0.shape[1]), "dh", "(B, T, H)")
    dh_c, ds_c = d_last if d_last is not None else (None, None)
    dh_c = np.zeros_like(h0) if dh_c is None else _checks.float_array(dh_c, "dh_last",
                                                                      dtype=x.dtype)
    ds_c = np.zeros_like(h0) if ds_c is None else _checks.float_array(ds_c, "ds_last",
                                                                      dtype=x.dtype)
    _checks.check_shape(dh_c, h0.shape, "dh_last", "(B, H)")
    _checks.check_shape(ds_c, h0.shape, "ds_last", "(B, H)")
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    dx = np.zeros_like(x)
    for t in range(T - 1, -1, -1):
        g, i, f, o, s_prev, s, h_prev, phi_s = (S[k][t] for k in S)
        dht = dh[:, t] + dh_c  # (B, H) total δh(t)
        dphi = 1 - phi_s * phi_s if out_act == "tanh" else 1
        d = {"o": dht * phi_s * o * (1 - o)}  # gate pre-activation gradients
        ds = ds_c + dht * o * dphi
        if peepholes:
            ds = ds + P["p_o"] * d["o"]
        d["i"] = ds * g * i * (1 - i)
        d["f"] = ds * s_prev * f * (1 - f) if forget_gate else np.zeros_like(ds)
        d["g"] = ds * i * (1 - g * g)
        ds_prev = ds * f
        if peepholes:
            ds_prev = ds_prev + P["p_i"] * d["i"] + P["p_f"] * d["f"]
        if real is not None:  # padded step: nothing happened, gradients pass through
            d = {k: np.where(real[t], v, 0) for k, v in d.items()}
        dh_prev = sum(d[k] @ P[f"W_{k}h"] for k in GATES)
        dx[:, t] = sum(d[k] @ P[f"W_{k}x"] for k in GATES)
        for k in GATES:
            grads[f"W_{k}x"] += d[k].T @ x[:, t]
            grads[f"W_{k}h"] += d[k].T @ h_prev
            grads[f"b_{k}"] += d[k].sum(axis=0)
        if peepholes:
            grads["p_i"] += (d["i"] * s_prev).sum(axis=0)
            grads["p_f"] += (d["f"] * s_prev).sum(axis=0)
            grads["p_o"] += (d["o"] * s).sum(axis=0)
        if real is not None:
            dh_prev, ds_prev = np.where(real[t], dh_prev, dht), np.where(real[t], ds_prev, ds_c)
        dh_c, ds_c = dh_prev, ds_prev
    return dx, grads, (dh_c, ds_c)


class LSTMLayer:
    """An LSTM layer in the layer protocol (see :class:`refseq.rnn.elman.ElmanLayer`); the state
    is ``(h, s)`` and ``params`` a dict with the names of :class:`LSTMParams`."""

    def __init__(self, params, *, forget_gate=True, peepholes=False, output_activation="tanh"):
        forget_gate = check_flag(forget_gate, "forget_gate")
        peepholes = check_flag(peepholes, "peepholes")
        _checks.check_choice(output_activation, "output_activation", OUTPUT_ACTIVATIONS)
        _check_params(params, None, None, peepholes)
        self.params = _params_dict(params)  # the same arrays (optimisers update them)
        self.switches = dict(forget_gate=forget_gate, peepholes=peepholes,
                             output_activation=output_activation)

    @property
    def input_size(self) -> int:
        """``I``, the width of the input ``x (B, T, I)``."""
        return self.params["W_gx"].shape[1]

    @property
    def hidden_size(self) -> int:
        """``H``, the width of the output ``h (B, T, H)``."""
        return self.params["W_gh"].shape[0]

    def forward(self, x, state0=None, lengths=None):
        return lstm_forward(x, self.params, state0, lengths=lengths, **self.switches)

    def backward(self, dh, d_state_last, cache):
        dx, grads, dstate0 = lstm_backward(dh, d_state_last, cache)
        return dx, {k: grads.get(k, np.zeros_like(v)) for k, v in self.params.items()}, dstate0

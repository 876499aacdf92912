"""Masked recurrent layer (RNN_TANH, RNN_RELU, GRU, LSTM) on the shared FlashRNN engine.

Darji, arXiv 2407.20601, Sec. 3.1-3.2; thesis code ``Implementations/layer.py``
(``MaskedRecurrentLayer``). PyTorch parameter names and gate layout: ``weight_ih (G*H, I)``,
``weight_hh (G*H, H)``, ``bias_ih``, ``bias_hh (G*H,)`` with G = 1, 1, 3, 4 and gate k in the
contiguous row block ``k*H .. (k+1)*H - 1`` (GRU rows r, z, n; LSTM rows i, f, g, o). Fixed boolean
masks ``mask_ih``, ``mask_hh`` have the weight shapes. With ``W̄ = W ⊙ M``:

.. math::

    a_t = x_t \\bar W_{ih}^\\top + b_{ih}, \\qquad u_t = h_{t-1} \\bar W_{hh}^\\top + b_{hh}

    \\text{RNN\\_TANH: } h_t = \\tanh(a_t + u_t), \\qquad
    \\text{RNN\\_RELU: } h_t = \\max(0, a_t + u_t)

    \\text{GRU: } r = σ(a_r + u_r),\\; z = σ(a_z + u_z),\\; n = \\tanh(a_n + r ⊙ u_n),\\;
    h_t = n + z ⊙ (h_{t-1} - n)

    \\text{LSTM: } [i, f, g, o] = [σ, σ, \\tanh, σ](a_t + u_t),\\; c_t = f ⊙ c_{t-1} + i ⊙ g,\\;
    h_t = o ⊙ \\tanh(c_t)

and ``∂L/∂W = (∂L/∂W̄) ⊙ M``: masked entries keep their stored value, never influence the output and
get exactly zero gradient. The time loop is :func:`refseq.recurrence.engine.flashrnn_forward` with
one head (N = 1, D = H) and cells ``elman`` / ``elman_relu`` / ``gru`` / ``lstm``; the map from the
torch layout to the engine's is that of :mod:`refseq.recurrence.layouts`
(GRU: ``R = [W_hn, W_hr, W_hz]``, ``b = [b_hn, b_ir + b_hr, b_iz + b_hz, b_in]``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.recurrence.engine import flashrnn_backward, flashrnn_forward
from refseq.recurrence.projection import project_inputs

MODES = {"RNN_TANH": ("elman", 1), "RNN_RELU": ("elman_relu", 1), "GRU": ("gru", 3),
         "LSTM": ("lstm", 4)}
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_GRU_R = [2, 0, 1]  # engine R gates (g, r, z) = torch weight_hh blocks (n, r, z)


class MaskedCache(NamedTuple):
    x: np.ndarray  # (B, T, I)
    W: np.ndarray  # (G, 1, H, I) effective (masked) input weights, engine layout
    R: np.ndarray  # (G_r, 1, H, H) effective recurrent weights, engine layout
    b: np.ndarray  # (G_t, 1, H)
    lengths: np.ndarray | None  # (B,)
    engine: dict  # flashrnn cache


class MaskedRecurrentLayer:
    """One masked recurrent layer; parameters are plain ndarrays updated in place by optimisers.

    Parameters
    ----------
    input_size, hidden_size : I, H.
    mode : ``"RNN_TANH" | "RNN_RELU" | "GRU" | "LSTM"``.
    rng : ``numpy.random.Generator`` — every parameter ``~ U(-1/sqrt(H), 1/sqrt(H))`` (torch).
    dtype : float64 (default) or float32.
    """

    def __init__(self, input_size: int, hidden_size: int, mode: str, rng: np.random.Generator,
                 dtype=np.float64):
        _checks.check_choice(mode, "mode", tuple(MODES))
        input_size = _checks.check_number(input_size, "input_size", integer=True, low=1)
        hidden_size = _checks.check_number(hidden_size, "hidden_size", integer=True, low=1)
        dtype = _checks.check_float_dtype(dtype, "dtype")
        rng = _checks.check_rng(rng)
        self.input_size, self.hidden_size, self.mode = input_size, hidden_size, mode
        self.cell, self.gates = MODES[mode]
        G, H, k = self.gates, self.hidden_size, 1.0 / np.sqrt(hidden_size)
        shapes = {"weight_ih": (G * H, input_size), "weight_hh": (G * H, H),
                  "bias_ih": (G * H,), "bias_hh": (G * H,)}
        for name in PARAM_NAMES:
            setattr(self, name, rng.uniform(-k, k, shapes[name]).astype(dtype))
        self.mask_ih = np.ones(shapes["weight_ih"], bool)
        self.mask_hh = np.ones(shapes["weight_hh"], bool)

    # -- parameters ------------------------------------------------------------------------
    def params(self) -> dict[str, np.ndarray]:
        """``{weight_ih, weight_hh, bias_ih, bias_hh}`` (the arrays themselves, not copies)."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def masks(self) -> dict[str, np.ndarray]:
        return {"weight_ih": self.mask_ih, "weight_hh": self.mask_hh}

    def set_masks(self, mask_ih=None, mask_hh=None) -> None:
        """Replace the masks (``None`` keeps one); 0/1 integer masks are accepted."""
        if mask_ih is not None:
            self.mask_ih = _checks.bool_mask(mask_ih, self.weight_ih.shape, "mask_ih", "(G*H, I)")
        if mask_hh is not None:
            self.mask_hh = _checks.bool_mask(mask_hh, self.weight_hh.shape, "mask_hh", "(G*H, H)")

    def engine_weights(self, dtype):
        """Effective weights in the engine layout: ``W (G_w,1,H,I), R (G_r,1,H,H), b (G_t,1,H)``."""
        G, H = self.gates, self.hidden_size
        W = (self.weight_ih * self.mask_ih).astype(dtype).reshape(G, 1, H, self.input_size)
        R = (self.weight_hh * self.mask_hh).astype(dtype).reshape(G, 1, H, H)
        bi, bh = (self.bias_ih.astype(dtype).reshape(G, 1, H),
                  self.bias_hh.astype(dtype).reshape(G, 1, H))
        if self.cell != "gru":
            return W, R, bi + bh
        b = np.stack([bh[2], bi[0] + bh[0], bi[1] + bh[1], bi[2]])  # (4, 1, H): g, r, z, n
        return W, R[_GRU_R], b

    # -- state helpers ---------------------------------------------------------------------
    def _states(self, state, B, dtype):
        """User state (h or (h, c)) -> engine states (S, B, 1, H)."""
        if state is None:
            return None
        parts = state if self.mode == "LSTM" else (state,)
        if self.mode == "LSTM" and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise TypeError("an LSTM state must be a pair (h, c), each (B, H)")
        out = []
        for name, s in zip(("h", "c"), parts):
            s = _checks.float_array(s, name, dtype=dtype)
            _checks.check_shape(s, (B, self.hidden_size), name, "(B, H)")
            out.append(s)
        return np.stack(out)[:, :, None]  # (S, B, 1, H)

    def _user(self, states):
        """Engine states (S, B, 1, H) -> h or (h, c)."""
        s = states[:, :, 0]
        return (s[0], s[1]) if self.mode == "LSTM" else s[0]

    # -- computation -----------------------------------------------------------------------
    def step(self, x_t, state=None):
        """One time step: ``x_t (B, I)`` -> new state (``h (B, H)`` or ``(h, c)``)."""
        x_t = _checks.float_array(x_t, "x_t")
        if x_t.ndim != 2:
            raise ValueError(f"x_t must have shape (B, I), got {x_t.shape}")
        _, last = self.forward(x_t[:, None], state)
        return last

    def forward(self, x, state0=None, lengths=None, *, return_cache: bool = False):
        """Run the layer over ``x (B, T, I)``.

        ``lengths (B,)`` (optional, each in [1, T]): ``last_state`` is then the state after each
        sequence's last real step (``lengths[b] - 1``); outputs at later positions are computed
        but belong to the padding. Returns ``(outputs (B, T, H), last_state[, cache])``.
        """
        return_cache = _checks.check_flag(return_cache, "return_cache")
        x = _checks.float_array(x, "x")
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x must have shape (B, T, I) with I = {self.input_size}, "
                             f"got {x.shape}")
        B, T, _ = x.shape
        L = _lengths(lengths, B, T)
        W, R, b = self.engine_weights(x.dtype)
        Wx = project_inputs(x, W)  # (B, T, G, 1, H)
        states_all, last, cache = flashrnn_forward(Wx, R, b, self._states(state0, B, x.dtype),
                                                   cell=self.cell, return_cache=True)
        outputs = states_all[0, :, :, 0]  # (B, T, H)
        if L is not None:
            last = states_all[:, np.arange(B), L - 1]  # (S, B, 1, H)
        out = (outputs, self._user(last))
        return out + (MaskedCache(x, W, R, b, L, cache),) if return_cache else out

    def backward(self, d_outputs, d_last_state, cache: MaskedCache):
        """Gradients of :meth:`forward`. ``d_outputs (B, T, H)`` or None; ``d_last_state`` like the
        state, or None. Returns ``(dx (B, T, I), d_state0, grads)``; ``grads`` has the keys of
        :meth:`params`, with masked weight entries exactly 0."""
        x, W, R, b, L, eng = cache
        B, T, _ = x.shape
        G, H, dt = self.gates, self.hidden_size, x.dtype
        S = 2 if self.mode == "LSTM" else 1
        d_all = np.zeros((S, B, T, 1, H), dt)
        if d_outputs is not None:
            d_outputs = _checks.float_array(d_outputs, "d_outputs", dtype=dt)
            _checks.check_shape(d_outputs, (B, T, H), "d_outputs", "(B, T, H)")
            d_all[0, :, :, 0] = d_outputs
        d_last = self._states(d_last_state, B, dt)
        if d_last is not None and L is not None:  # the readout position of each sequence
            np.add.at(d_all, (slice(None), np.arange(B), L - 1), d_last)
            d_last = None
        d0, dWx, dR, db = flashrnn_backward(d_all, d_last, R, b, eng, cell=self.cell)
        dx = np.einsum("btgnd,gndi->bti", dWx, W)  # (B, T, I)
        dW = np.einsum("btgnd,bti->gndi", dWx, x).reshape(G * H, self.input_size)
        if self.cell == "gru":
            dR = dR[np.argsort(_GRU_R)]  # back to torch rows (r, z, n)
            db = db[:, 0]  # (4, H): g, r, z, n
            d_bih = np.concatenate([db[1], db[2], db[3]])
            d_bhh = np.concatenate([db[1], db[2], db[0]])
        else:
            d_bih = d_bhh = db.reshape(-1)
        grads = {"weight_ih": dW * self.mask_ih, "weight_hh": dR.reshape(G * H, H) * self.mask_hh,
                 "bias_ih": d_bih.copy(), "bias_hh": d_bhh.copy()}
        return dx, self._user(d0), grads


def _lengths(lengths, B, T):
    if lengths is None:
        return None
    L = np.asarray(lengths)
    if L.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array (B,), got dtype {L.dtype}")
    _checks.check_shape(L, (B,), "lengths", "(B,)")
    if L.size and (L.min() < 1 or L.max() > T):
        raise ValueError(f"lengths must lie in [1, T] = [1, {T}], got [{L.min()}, {L.max()}]")
    return L.astype(np.int64)

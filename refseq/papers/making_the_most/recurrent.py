"""Recurrence for a transformer decoder: window-by-window processing with a learned memory
**[reconstructed design]**.

Yoshida, Ettinger and Gimpel, "Adding Recurrence to Pretrained Transformers for Improved
Efficiency and Context Size", arXiv 2008.07027 (thesis arXiv 2408.16241, Part A). The sources
available state only that a small recurrence module added to GPT-2 lets it read text window by
window with bounded memory; the module below (where memory enters, how it is pooled) is a
reconstruction whose choices are exposed as options. Window ``k`` (tokens ``X_k``, at most ``w``)
and memory ``S_k (M, D)``:

.. code-block:: text

    H^(l) = Block_l(H^(l-1))                  l <= l_w: window rows alone, positions M .. M+w-1
    Z^(l_w) = [S_k ; H^(l_w)]                 memory rows, positions 0 .. M-1
    Z^(l) = Block_l(Z^(l-1); mask_mem)        l_w < l <= L
    logits(X_k) = LN_f(Z^(L)[M:]) W_U
    S_{k+1} = carry S_k + pool(R, S_k),       R = [Z^(l_r)[M:] ; Z^(l_r)[:M]]   (window; memory)

``mask_mem``: memory rows see all memory rows (and no window row); window rows see all memory
rows and the window causally. ``l_w = 0`` means the memory rows enter as input embeddings (and
get the position embeddings ``P[0..M-1]``). Pools (:func:`pool_forward`): ``"attention"``
(``M`` learned queries ``U`` (+ ``S_k`` if carry) attend over ``R``, then a residual MLP),
``"mean"`` (mean of the window rows of ``R``, a linear map to ``M`` slots), ``"last"`` (the last
window row, same map). The state of :meth:`RecurrentLM.stream_step` is the memory plus the
current window's KV cache: at most ``M + w`` rows, whatever the length of the text.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.models.tiny_transformer.forward import forward_layers, lm_head
from refseq.models.tiny_transformer.params import TinyParams, check_params, map_parameters
from refseq.nn.mlp import MLPParams, mlp_backward, mlp_forward
from refseq.nn.norms import layer_norm_backward, layer_norm_forward

__all__ = ["POOLS", "RecurrentLM", "StreamState", "memory_mask", "pool_backward", "pool_forward"]

POOLS = ("attention", "mean", "last")


def memory_mask(M: int, T: int) -> np.ndarray:
    """(M + T, M + T) bool ``mask_mem``: rows/keys ``0..M-1`` are memory, ``M..`` the window."""
    M = _checks.check_number(M, "M", integer=True, low=0)
    T = _checks.check_number(T, "T", integer=True, low=0)
    allow = np.zeros((M + T, M + T), bool)
    allow[:, :M] = True  # everybody sees the memory rows
    allow[M:, M:] = np.tril(np.ones((T, T), bool))  # the window is causal
    return allow


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def pool_forward(mem: dict, pool: str, carry: bool, R, S, w: int):
    """``S_{k+1}`` from ``R (B, w + M, D)`` (window rows first) and ``S (B, M, D)``.

    Returns ``(S_next (B, M, D), cache)`` for :func:`pool_backward`.
    """
    _checks.check_instance(mem, dict, "mem", "dict name -> array (RecurrentLM.mem)")
    pool = _checks.check_choice(pool, "pool", POOLS)
    carry = _checks.check_flag(carry, "carry")
    S = _checks.float_array(S, "S")
    if S.ndim != 3:
        raise ValueError(f"S must have shape (B, M, D), got {S.shape}")
    B, M, D = S.shape
    w = _checks.check_number(w, "w", integer=True, low=1)
    R = _checks.float_array(R, "R")
    _checks.check_shape(R, (B, w + M, D), "R", "(B, w + M, D)")
    need = (("U", "W_q", "W_k", "W_v", "W_in", "b_in", "W_out", "b_out") if pool == "attention"
            else ("W_pool", "b_pool"))
    if not all(k in mem for k in need):
        raise ValueError(f"mem must hold {need} for pool={pool!r}, got {sorted(mem)}")
    one, zero = np.ones(D, R.dtype), np.zeros(D, R.dtype)
    R, c_ln = layer_norm_forward(R, one, zero, 1e-5)  # (B, N, D) unit-scale rows
    if pool == "attention":
        q_in = mem["U"] + S if carry else np.broadcast_to(mem["U"], S.shape)  # (B, M, D)
        Q, K, Vv = q_in @ mem["W_q"], R @ mem["W_k"], R @ mem["W_v"]  # (B,M,D) (B,N,D) (B,N,D)
        A = _softmax(Q @ K.transpose(0, 2, 1) / np.sqrt(D))  # (B, M, N)
        O = A @ Vv  # (B, M, D)
        F, c_mlp = mlp_forward(O, MLPParams(mem["W_in"], mem["b_in"], mem["W_out"], mem["b_out"]))
        out, cache = O + F, (q_in, Q, K, Vv, A, c_mlp)  # residual MLP
    else:
        z = R[:, :w].mean(axis=1) if pool == "mean" else R[:, w - 1]  # (B, D)
        out, cache = (z @ mem["W_pool"] + mem["b_pool"]).reshape(B, M, D), z
    return (S + out if carry else out), (pool, carry, R, w, cache, c_ln)


def pool_backward(mem: dict, cache, dS_next):
    """VJP of :func:`pool_forward`: ``(dR, dS, grads {name: array})``."""
    pool, carry, R, w, c, c_ln = cache
    B, M, D = dS_next.shape
    dS = dS_next.copy() if carry else np.zeros_like(dS_next)
    dR = np.zeros_like(R)
    if pool == "attention":
        q_in, Q, K, Vv, A, c_mlp = c
        dF, g = mlp_backward(dS_next, c_mlp)
        dO = dS_next + dF  # (B, M, D)
        dA, dV = dO @ Vv.transpose(0, 2, 1), A.transpose(0, 2, 1) @ dO  # (B, M, N), (B, N, D)
        dlog = A * (dA - (dA * A).sum(axis=-1, keepdims=True)) / np.sqrt(D)  # (B, M, N)
        dQ, dK = dlog @ K, dlog.transpose(0, 2, 1) @ Q  # (B, M, D), (B, N, D)
        dq_in = dQ @ mem["W_q"].T  # (B, M, D)
        dR = dK @ mem["W_k"].T + dV @ mem["W_v"].T
        if carry:
            dS += dq_in
        ein = lambda x, y: np.einsum("bnd,bne->de", x, y)  # noqa: E731  sum over batch and rows
        grads = {"U": dq_in.sum(axis=0), "W_q": ein(q_in, dQ), "W_k": ein(R, dK),
                 "W_v": ein(R, dV), "W_in": g.W_in, "b_in": g.b_in, "W_out": g.W_out,
                 "b_out": g.b_out}
    else:
        z, dout = c, dS_next.reshape(B, M * D)  # (B, D), (B, M D)
        grads = {"W_pool": z.T @ dout, "b_pool": dout.sum(axis=0)}
        dz = dout @ mem["W_pool"].T  # (B, D)
        if pool == "mean":
            dR[:, :w] = dz[:, None] / w
        else:
            dR[:, w - 1] = dz
    return layer_norm_backward(dR, c_ln)[0], dS, grads


def _init_memory(cfg, M, pool, mem_init, seed) -> dict:
    rng = np.random.default_rng(seed)
    D, dt = cfg.d_model, cfg.np_dtype

    def normal(shape, std):
        return (std * rng.standard_normal(shape)).astype(dt)

    mem = {"S0": normal((M, D), 0.02)} if mem_init == "learned" else {}
    if pool == "attention":
        mem.update(U=normal((M, D), 1.0), W_q=normal((D, D), D ** -0.5),
                   W_k=normal((D, D), D ** -0.5), W_v=normal((D, D), D ** -0.5),
                   W_in=normal((D, 2 * D), D ** -0.5), b_in=np.zeros(2 * D, dt),
                   W_out=normal((2 * D, D), 0.02), b_out=np.zeros(D, dt))
    else:
        mem.update(W_pool=normal((D, M * D), D ** -0.5), b_pool=np.zeros(M * D, dt))
    return mem


class StreamState(NamedTuple):
    """Streaming state: ``memory`` (M, D); ``lower_kv`` (l_w, 2, H, t, Dh) and ``upper_kv``
    (L - l_w, 2, H, M + t, Dh), the KV caches of the current window's ``t < w`` rows (upper: after
    the M memory rows); ``read_mem`` (M, D) and ``read_win`` (t, D), the read-layer states."""

    memory: np.ndarray
    lower_kv: np.ndarray
    upper_kv: np.ndarray
    read_mem: np.ndarray
    read_win: np.ndarray


class RecurrentLM:
    """A tiny transformer read window by window with a learned memory **[reconstructed]**.

    Parameters
    ----------
    base : TinyParams (copied; ``M + window <= max_positions``).
    window : w >= 1 tokens per window. n_mem : M >= 0 memory rows (0: isolated windows).
    write_layer : l_w, ``0 <= l_w < L``; read_layer : l_r, ``l_w <= l_r <= L``.
    pool : "attention" | "mean" | "last". carry : ``S_{k+1} = S_k + pool(...)`` if True.
    mem_init : "learned" (a trained ``S_0``) | "zeros". seed : memory-module initialisation.

    Attributes: ``base`` (TinyParams) and ``mem`` (dict name -> array), the trainable weights.
    """

    def __init__(self, base, window: int, n_mem: int, write_layer: int = 1, read_layer=None,
                 pool: str = "attention", carry: bool = True, mem_init: str = "learned",
                 seed: int = 0):
        cfg = check_params(_checks.check_instance(base, TinyParams, "base"))
        L = cfg.n_layers
        self.window = _checks.check_number(window, "window", integer=True, low=1)
        self.n_mem = _checks.check_number(n_mem, "n_mem", integer=True, low=0)
        if self.n_mem + self.window > cfg.max_positions:
            raise ValueError(f"n_mem + window must be <= max_positions = {cfg.max_positions}, "
                             f"got {self.n_mem} + {self.window}")
        self.write_layer = _checks.check_number(write_layer, "write_layer", integer=True, low=0,
                                                high=L - 1)
        self.read_layer = _checks.check_number(L if read_layer is None else read_layer,
                                               "read_layer", integer=True, low=self.write_layer,
                                               high=L)
        self.pool = _checks.check_choice(pool, "pool", POOLS) or pool
        self.carry = _checks.check_flag(carry, "carry")
        self.mem_init = _checks.check_choice(mem_init, "mem_init", ("learned", "zeros")) or mem_init
        seed = _checks.check_number(seed, "seed", integer=True, low=0)
        self.base = map_parameters(np.copy, base)
        self.mem = _init_memory(cfg, self.n_mem, self.pool, self.mem_init, seed)

    @property
    def config(self):
        return self.base.config

    def copy(self) -> RecurrentLM:
        new = object.__new__(RecurrentLM)
        new.__dict__.update(self.__dict__)
        new.base = map_parameters(np.copy, self.base)
        new.mem = {k: v.copy() for k, v in self.mem.items()}
        return new

    def initial_memory(self, batch: int = 1) -> np.ndarray:
        """``S_0`` as (batch, M, D)."""
        D = self.config.d_model
        s0 = self.mem["S0"] if self.mem_init == "learned" else np.zeros((self.n_mem, D))
        return np.broadcast_to(s0.astype(self.config.np_dtype), (batch, self.n_mem, D)).copy()

    # ------------------------------------------------------------ one window (batched)
    def _mem_rows(self, S):
        p = self.base
        return S + p.wpe[:self.n_mem] if self.write_layer == 0 and p.wpe is not None else S

    def window_forward(self, S, tok, return_cache: bool = False):
        """One window: ``S (B, M, D)``, ``tok (B, T)`` with ``T <= w`` -> ``logits (B, T, V)``,
        ``S_next (B, M, D)`` (and the cache of :func:`window_backward` if asked)."""
        p, M, lw, lr = self.base, self.n_mem, self.write_layer, self.read_layer
        L, T = self.config.n_layers, tok.shape[1]
        pos = M + np.arange(T)  # (T,) window positions
        x = p.wte[tok] + (p.wpe[pos] if p.wpe is not None else 0)  # (B, T, D)
        h, _, _, c_lo = forward_layers(p, x, 0, lw, positions=pos, return_cache=True)
        Z = np.concatenate([self._mem_rows(S), h], axis=1)  # (B, M + T, D)
        hL, hid, _, c_up = forward_layers(p, Z, lw, L, positions=np.arange(M + T),
                                          allow_mask=memory_mask(M, T), return_cache=True)
        logits, c_head = lm_head(p, hL[:, M:], return_cache=True)  # (B, T, V)
        Zr = hid[lr - lw]  # (B, M + T, D)
        R = np.concatenate([Zr[:, M:], Zr[:, :M]], axis=1)  # (B, T + M, D) window rows first
        S_next, c_pool = pool_forward(self.mem, self.pool, self.carry, R, S, T)
        if not return_cache:
            return logits, S_next
        return logits, S_next, (tok, c_lo, c_up, c_head, c_pool)

    def forward_windows(self, tokens, return_memory: bool = False):
        """Logits ``(n, V)`` (or ``(B, n, V)``) of ``tokens (n,)`` / ``(B, n)``, window by
        window from ``S_0``; row j predicts token j + 1 (across window boundaries). With
        ``return_memory`` also the final memory ``(M, D)`` / ``(B, M, D)``."""
        tok = _checks.int_array(np.asarray(tokens), "tokens", low=0,
                                high=self.config.vocab_size, form="(n,) or (B, n)")
        if tok.ndim not in (1, 2) or tok.shape[-1] < 1:
            raise ValueError(f"tokens must have shape (n,) or (B, n) with n >= 1, got {tok.shape}")
        tb = tok if tok.ndim == 2 else tok[None]  # (B, n)
        S = self.initial_memory(tb.shape[0])
        out = []
        for a in range(0, tb.shape[1], self.window):
            logits, S = self.window_forward(S, tb[:, a:a + self.window])
            out.append(logits)
        logits = np.concatenate(out, axis=1)  # (B, n, V)
        if tok.ndim == 1:
            logits, S = logits[0], S[0]
        return (logits, S) if return_memory else logits

    # ------------------------------------------------------------ streaming
    def _start_window(self, S) -> StreamState:
        cfg, M, lw = self.config, self.n_mem, self.write_layer
        L, H, Dh, D = cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_model
        dt = cfg.np_dtype
        lower = np.zeros((lw, 2, H, 0, Dh), dt)
        if M == 0:
            return StreamState(S, lower, np.zeros((L - lw, 2, H, 0, Dh), dt), np.zeros((0, D), dt),
                               np.zeros((0, D), dt))
        _, hid, kv = forward_layers(self.base, self._mem_rows(S), lw, L, positions=np.arange(M),
                                    allow_mask=np.ones((M, M), bool))  # memory rows only
        return StreamState(S, lower, kv, hid[self.read_layer - lw], np.zeros((0, D), dt))

    def stream_init(self) -> StreamState:
        """The state before the first token: ``S_0`` and its memory rows' KV cache."""
        return self._start_window(self.initial_memory(1)[0])

    def stream_step(self, state: StreamState, token: int):
        """Feed one token: ``(logits (V,), new state)``. When the window fills up, the memory
        is updated and the window cache cleared (the state never exceeds M + w rows)."""
        if not isinstance(state, StreamState):
            raise TypeError(f"state must be a StreamState (see stream_init), got "
                            f"{type(state).__name__}")
        token = _checks.check_number(token, "token", integer=True, low=0,
                                     high=self.config.vocab_size - 1)
        p, M, lw, L = self.base, self.n_mem, self.write_layer, self.config.n_layers
        t = state.read_win.shape[0]
        pos = np.array([M + t])  # (1,)
        x = p.wte[[token]] + (p.wpe[pos] if p.wpe is not None else 0)  # (1, D)
        lower = state.lower_kv
        if lw:
            x, _, lower = forward_layers(p, x, 0, lw, positions=pos,
                                         past_kv=lower if t else None)
        hL, hid, upper = forward_layers(p, x, lw, L, positions=pos,
                                        past_kv=state.upper_kv if M + t else None)
        logits = lm_head(p, hL)[0]  # (V,)
        read_win = np.concatenate([state.read_win, hid[self.read_layer - lw]])  # (t + 1, D)
        if t + 1 < self.window:
            return logits, StreamState(state.memory, lower, upper, state.read_mem, read_win)
        R = np.concatenate([read_win, state.read_mem])[None]  # (1, w + M, D)
        S_next, _ = pool_forward(self.mem, self.pool, self.carry, R, state.memory[None],
                                 self.window)
        return logits, self._start_window(S_next[0])

"""PV-RNN: predictive-coding-inspired variational RNN (Ahmadi & Tani, arXiv 1811.01339).

Forward generation (this module); the parameters and their initialisation are in
:mod:`refseq.papers.pv_rnn.params`, the meta-prior-weighted loss and its exact BPTT gradients in
:mod:`refseq.papers.pv_rnn.loss` (all re-exported here). Training and sliding-window error
regression live in :mod:`refseq.papers.pv_rnn.er`; docs/papers/pv-rnn.md maps every symbol.
Layers are indexed 0 (bottom, drives the output; the paper's l = 1) to L - 1 (top); the paper's
``τ``, ``w``, ``β``, ``A`` keep their names.

Per layer, time t = 1..T, layers updated top to bottom inside a step::

    prior      μ^p_t = 0, σ^p_t = 1 (t = 1, unit_first)   else  tanh(W_mu d_{t-1} + b_mu),
                                                                exp(W_sg d_{t-1} + b_sg)
    posterior  μ^q_t = tanh(A_mu[s, t]),  σ^q_t = exp(A_sg[s, t])
    latent     z_t = μ_t + σ_t ε_t            (q in posterior steps, p in prior steps)
    MTRNN      h_t = (1 - 1/τ) h_{t-1} + (1/τ)(W_dd d_{t-1} + W_zd z_t + W_hd d^{l+1}_t + b_h)
               d_t = tanh(h_t)
    output     x̂_t = tanh(W_out d^1_t + b_out)                          (sm_units = 0, default)
               x̂_t = softmax over each group of U units of (W_out d^1_t + b_out)  (sm_units = U)

Options beyond the paper's defaults: the softmax ("sparse") output of the OIST library (its
loss is ``Σ t log(t / x̂)`` per unit, OIST ``SoftmaxLayer::computeErr``), and Idei et
al.'s initialisation of A to the prior's pre-activations on the first forward pass
(``pvrnn_forward(..., set_A_to_prior=True)`` / :func:`init_A_from_prior`; h-idei/pvrnn_sa).

Symbols: B batch, T time, X output width, D deterministic units, Z latent units, S training
sequences. Weights use the paper's column convention (``W x``); the code computes ``x @ W.T``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.papers.pv_rnn.loss import (
    NORMALIZATIONS,
    kl_per_step,
    mean_sigma,
    pvrnn_backward,
    pvrnn_loss,
)
from refseq.papers.pv_rnn.params import (
    TRAINED,
    PVRNNLayer,
    PVRNNParams,
    check_params,
    init_pvrnn,
    named_parameters,
)


class PVRNNCache(NamedTuple):
    """Everything the backward and the diagnostics need; per-layer lists of (B, T, .) arrays."""

    d: list
    h: list
    z: list
    eps: list
    mu_p: list
    a_sg_p: list  # log σ^p (pre-activation; 0 for the unit prior)
    mu_q: list  # None entries where no posterior was computed (prior mode without seq_index)
    a_sg_q: list  # log σ^q = A_sg[s, t]
    use_post: np.ndarray  # (T,) bool: the posterior drives z_t
    state0: list  # [(h0 (B, D), d0 (B, D))]
    seq_index: np.ndarray | None
    unit_first: bool
    x_hat: np.ndarray  # (B, T, X)
    log_x_hat: np.ndarray | None = None  # (B, T, X) log-softmax (softmax output only)


def _output_args(d1, W_out, b_out):
    """Check the output layer's arguments: d1 (..., D), W_out (X, D), b_out (X,)."""
    d1 = _checks.float_array(d1, "d1", ndim_min=1)
    W_out = _checks.float_array(W_out, "W_out")
    b_out = _checks.float_array(b_out, "b_out")
    if W_out.ndim != 2:
        raise ValueError(f"W_out must have shape (X, D), got {W_out.shape}")
    _checks.check_shape(W_out, (W_out.shape[0], d1.shape[-1]), "W_out", "(X, D) with D of d1")
    _checks.check_shape(b_out, (W_out.shape[0],), "b_out", "(X,) with X of W_out")
    return d1, W_out, b_out


def output_fc(d1, W_out, b_out):
    """The default output ``x̂ = tanh(W_out d^1 + b_out)``: d1 (..., D) -> (..., X)."""
    d1, W_out, b_out = _output_args(d1, W_out, b_out)
    return np.tanh(d1 @ W_out.T + b_out)


def _groups_args(a, units):
    a = _checks.float_array(a, "a", ndim_min=1)
    units = _checks.check_number(units, "units", integer=True, low=1)
    if a.shape[-1] % units:
        raise ValueError(f"units must divide the last axis of a (G·U = {a.shape[-1]}), "
                         f"got {units}")
    return a, units


def log_softmax_groups(a, units: int):
    """Stable log-softmax over consecutive groups of ``units`` entries: a (..., G·U) -> same.

    ``a - max - log Σ exp(a - max)`` per group; :func:`softmax_groups_textbook` is the unshifted
    form (it overflows to NaN once a logit exceeds ~709 in float64).
    """
    a, units = _groups_args(a, units)
    g = a.reshape(a.shape[:-1] + (-1, units))  # (..., G, U)
    g = g - g.max(axis=-1, keepdims=True)
    return (g - np.log(np.exp(g).sum(axis=-1, keepdims=True))).reshape(a.shape)


def softmax_groups_textbook(a, units: int):
    """``exp(a) / Σ_group exp(a)`` without the max shift (kept for a negative test)."""
    a, units = _groups_args(a, units)
    e = np.exp(a.reshape(a.shape[:-1] + (-1, units)))  # (..., G, U)
    return (e / e.sum(axis=-1, keepdims=True)).reshape(a.shape)


def output_softmax_groups(d1, W_out, b_out, groups: int):
    """Softmax ("sparse") output: ``groups`` independent softmaxes over ``X / groups`` units each.

    d1 (..., D) -> probabilities (..., X); each group encodes one analogue dimension (OIST
    ``SoftmaxLayer::_forwardCompute``; decode with ``pv_rnn_data.softmax_decode``).
    """
    d1, W_out, b_out = _output_args(d1, W_out, b_out)
    X = W_out.shape[0]
    groups = _checks.check_number(groups, "groups", integer=True)
    if groups < 1 or X % groups:
        raise ValueError(f"groups must divide the output width X={X}, got {groups}")
    return np.exp(log_softmax_groups(d1 @ W_out.T + b_out, X // groups))


def _eps_list(eps, params, B, T, dtype):
    if not isinstance(eps, (list, tuple)) or len(eps) != len(params.layers):
        raise ValueError(f"eps must be a list with one (B, T, Z_l) array per layer "
                         f"({len(params.layers)})")
    out = []
    for l, (e, p) in enumerate(zip(eps, params.layers)):
        e = _checks.float_array(e, f"eps[{l}]", dtype=dtype)
        _checks.check_shape(e, (B, T, p.W_zd.shape[1]), f"eps[{l}]", "(B, T, Z_l)")
        out.append(e)
    return out


def draw_eps(params: PVRNNParams, B: int, T: int, rng) -> list:
    """Fresh ``ε ~ N(0, I)`` for every layer: ``[(B, T, Z_l)]`` in the parameters' dtype."""
    dtype = check_params(params)
    B = _checks.check_number(B, "B", integer=True, low=1)
    T = _checks.check_number(T, "T", integer=True, low=0)  # 0: an empty horizon
    rng = _checks.check_rng(rng)
    return [rng.standard_normal((B, T, p.W_zd.shape[1])).astype(dtype) for p in params.layers]


def pvrnn_forward(params: PVRNNParams, eps, seq_index=None, mode="posterior",
                  n_posterior_steps=None, state0=None, *, unit_first=True, set_A_to_prior=False):
    """Generate ``x̂`` for T steps.

    Parameters
    ----------
    params : PVRNNParams; eps : [(B, T, Z_l)] noise (fixed by the caller: reproducible);
    seq_index : (B,) int in [0, S), which sequences' A to use (needed for posterior steps);
    mode : "posterior" | "prior"; n_posterior_steps : k -> posterior for t < k (0-based), prior
    afterwards; overrides ``mode`` (OIST ``priGenAndSave(postStep, totalStep)``);
    state0 : [(h0 (B, D_l), d0 (B, D_l))] or None (zeros); unit_first : the prior at the first
    step is N(0, I) (True: the start of a sequence) or computed from ``d0`` (False: error
    regression after its window has slid); set_A_to_prior : Idei's epoch-0 initialisation —
    before each posterior step, write the prior's pre-activations into the used A slots
    (``A_mu[s, t] := W_mu d_{t-1} + b_mu``, ``A_sg[s, t] := W_sg d_{t-1} + b_sg``; 0 at a
    unit-Gaussian step), so q = p along the generated trajectory (KL = 0 at every posterior step).
    Modifies ``params``' A in place; duplicate ``seq_index`` entries keep the last row's values.

    Returns
    -------
    x_hat : (B, T, X); cache : PVRNNCache (``cache.d[l][:, -1]``, ``cache.h[l][:, -1]`` is the
    final state to carry into the next call).
    """
    dtype = check_params(params)
    unit_first = _checks.check_flag(unit_first, "unit_first")
    set_A_to_prior = _checks.check_flag(set_A_to_prior, "set_A_to_prior")
    _checks.check_choice(mode, "mode", ("posterior", "prior"))
    eps0 = eps[0] if isinstance(eps, (list, tuple)) and eps else None
    if eps0 is None or np.ndim(eps0) != 3:
        raise ValueError("eps must be a list of (B, T, Z_l) arrays, one per layer")
    B, T = np.shape(eps0)[:2]
    eps = _eps_list(eps, params, B, T, dtype)
    S, T_A = params.layers[0].A_mu.shape[:2]
    k = (T if mode == "posterior" else 0) if n_posterior_steps is None else \
        _checks.check_number(n_posterior_steps, "n_posterior_steps", integer=True)
    if not 0 <= k <= T:
        raise ValueError(f"n_posterior_steps must lie in [0, T={T}], got {k}")
    if seq_index is not None:
        seq_index = np.asarray(seq_index)
        if seq_index.dtype.kind not in "iu":
            raise TypeError(f"seq_index must be an integer array (B,), got {seq_index.dtype}")
        _checks.check_shape(seq_index, (B,), "seq_index", "(B,)")
        if seq_index.size and (seq_index.min() < 0 or seq_index.max() >= S):
            raise ValueError(f"seq_index must lie in [0, S={S})")
        if T > T_A and k > T_A:
            raise ValueError(f"posterior steps ({k}) exceed the A slots (T={T_A})")
    elif k > 0:
        raise ValueError("seq_index is required for posterior steps")
    L = len(params.layers)
    st = []
    for l, p in enumerate(params.layers):
        D = p.W_dd.shape[0]
        if state0 is None:
            st.append((np.zeros((B, D), dtype), np.zeros((B, D), dtype)))
        else:
            h0 = _checks.float_array(state0[l][0], f"state0[{l}][0]", dtype=dtype)
            d0 = _checks.float_array(state0[l][1], f"state0[{l}][1]", dtype=dtype)
            _checks.check_shape(h0, (B, D), f"state0[{l}][0]", "(B, D_l)")
            _checks.check_shape(d0, (B, D), f"state0[{l}][1]", "(B, D_l)")
            st.append((h0, d0))
    state0 = list(st)
    use_post = np.arange(T) < k  # (T,)
    one = dtype.type(1)

    def new(l, width):
        return np.zeros((B, T, width), dtype)

    Zs = [p.W_zd.shape[1] for p in params.layers]
    Ds = [p.W_dd.shape[0] for p in params.layers]
    d_all, h_all = [new(l, Ds[l]) for l in range(L)], [new(l, Ds[l]) for l in range(L)]
    z_all, mu_p, a_p = [new(l, Zs[l]) for l in range(L)], [new(l, Zs[l]) for l in range(L)], \
        [new(l, Zs[l]) for l in range(L)]
    have_q = seq_index is not None
    mu_q = [new(l, Zs[l]) if have_q else None for l in range(L)]
    a_q = [new(l, Zs[l]) if have_q else None for l in range(L)]
    x_hat = np.zeros((B, T, params.W_out.shape[0]), dtype)
    U = params.sm_units
    log_x = np.zeros_like(x_hat) if U else None
    for t in range(T):
        for l in reversed(range(L)):  # top to bottom: layer l reads d^{l+1}_t
            p = params.layers[l]
            h_prev, d_prev = st[l]
            pre_mu = np.zeros((B, Zs[l]), dtype)  # (B, Z) pre-activation of μ^p
            if t > 0 or not unit_first:
                pre_mu = d_prev @ p.W_mu.T + p.b_mu
                mu_p[l][:, t] = np.tanh(pre_mu)  # (B, Z)
                a_p[l][:, t] = d_prev @ p.W_sg.T + p.b_sg  # (B, Z) log σ^p
            if set_A_to_prior and use_post[t]:  # Idei: q := p at this step
                p.A_mu[seq_index, t] = pre_mu
                p.A_sg[seq_index, t] = a_p[l][:, t]
            if have_q and t < T_A:
                mu_q[l][:, t] = np.tanh(p.A_mu[seq_index, t])  # (B, Z)
                a_q[l][:, t] = p.A_sg[seq_index, t]
            if use_post[t]:
                z = mu_q[l][:, t] + np.exp(a_q[l][:, t]) * eps[l][:, t]
            else:
                z = mu_p[l][:, t] + np.exp(a_p[l][:, t]) * eps[l][:, t]
            u = d_prev @ p.W_dd.T + z @ p.W_zd.T + p.b_h  # (B, D)
            if p.W_hd is not None:
                u = u + d_all[l + 1][:, t] @ p.W_hd.T
            iota = one / p.tau  # (D,)
            h = (one - iota) * h_prev + iota * u
            d = np.tanh(h)
            z_all[l][:, t], h_all[l][:, t], d_all[l][:, t] = z, h, d
            st[l] = (h, d)
        if U:  # softmax groups; the log-probabilities feed the loss without log(0)
            log_x[:, t] = log_softmax_groups(d_all[0][:, t] @ params.W_out.T + params.b_out, U)
            x_hat[:, t] = np.exp(log_x[:, t])  # (B, X)
        else:
            x_hat[:, t] = output_fc(d_all[0][:, t], params.W_out, params.b_out)  # (B, X)
    cache = PVRNNCache(d_all, h_all, z_all, eps, mu_p, a_p, mu_q, a_q, use_post, state0,
                       seq_index, bool(unit_first), x_hat, log_x)
    return x_hat, cache


def init_A_from_prior(params: PVRNNParams, eps, seq_index=None, state0=None):
    """Idei et al.'s A initialisation (h-idei/pvrnn_sa ``compute_mu_sigma`` at ``epo == 0``).

    Runs the posterior forward over the sequences ``seq_index`` (default: all S, B = S) and sets
    each used A slot to the prior's pre-activations along the trajectory as it is generated, so
    that afterwards, with the same ``eps``: ``tanh(A_mu) = μ^p`` and ``A_sg = ln σ^p`` at every
    step, KL = 0 at every step and layer, the A slots at a unit-Gaussian first step are 0, and the
    posterior forward reproduces prior-mode generation bit for bit. A slots beyond ``eps``'s T
    and of sequences not in ``seq_index`` are untouched. Returns the forward's cache.
    """
    S = params.layers[0].A_mu.shape[0]
    seq_index = np.arange(S) if seq_index is None else np.asarray(seq_index)
    return pvrnn_forward(params, eps, seq_index, state0=state0, set_A_to_prior=True)[1]


__all__ = [
    "NORMALIZATIONS", "TRAINED", "PVRNNCache", "PVRNNLayer", "PVRNNParams", "check_params",
    "draw_eps", "init_A_from_prior", "init_pvrnn", "kl_per_step", "log_softmax_groups",
    "mean_sigma", "named_parameters", "output_fc", "output_softmax_groups", "pvrnn_backward",
    "pvrnn_forward", "pvrnn_loss", "softmax_groups_textbook",
]

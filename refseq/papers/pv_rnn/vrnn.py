"""VRNN baseline for PV-RNN comparisons (Chung et al. 2015, arXiv 1506.02216).

The difference from PV-RNN (:mod:`refseq.papers.pv_rnn.model`) is the posterior: an inference
network reads the observation, ``q(z_t | x_t, d_{t-1})``, instead of free adaptive vectors A. One
layer, single linear maps where Chung et al. use MLP feature extractors (φ^x, φ^z, φ^enc, φ^dec,
φ^prior), and the same leaky-integrator (MTRNN) state and loss normalisation as PV-RNN so that the
two are comparable::

    prior      μ^p_t = tanh(W_mu d_{t-1} + b_mu),             σ^p_t = exp(W_sg d_{t-1} + b_sg)
    posterior  μ^q_t = tanh(U_mu x_t + V_mu d_{t-1} + c_mu),  σ^q_t = exp(U_sg x_t + V_sg d_{t-1}
                                                                          + c_sg)
    latent     z_t = μ^q_t + σ^q_t ε_t
    decoder    x̂_t = tanh(W_oz z_t + W_od d_{t-1} + b_out)      (reads z_t and d_{t-1}, not d_t)
    recurrence h_t = (1 - 1/τ) h_{t-1} + (1/τ)(W_dd d_{t-1} + W_zd z_t + W_xd x_t + b_h),
               d_t = tanh(h_t)
    loss       (1/B) Σ_b Σ_t [(1/2X)||x̂_t - x_t||² + (w/Z) Σ_i KL(q_i || p_i)]   ("oist")

``normalize="sum"`` drops ``1/X``, ``1/Z``, ``1/B``. Generation (:func:`vrnn_generate`) draws z
from the prior and feeds the decoder mean back as ``x_t``. Deviations from Chung et al.: linear
maps instead of MLPs, tanh-mean Gaussian decoder with unit variance (the squared error), a
leaky-integrator tanh RNN instead of an LSTM/GRU, and the prior at t = 1 computed from d_0 = 0.
Symbols: B batch, T time, X observation width, D deterministic units, Z latent units.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks

NAMES = ("W_dd", "W_zd", "W_xd", "b_h", "W_mu", "b_mu", "W_sg", "b_sg", "U_mu", "V_mu", "c_mu",
         "U_sg", "V_sg", "c_sg", "W_oz", "W_od", "b_out")


class VRNNParams(NamedTuple):
    W_dd: np.ndarray  # (D, D)
    W_zd: np.ndarray  # (D, Z)
    W_xd: np.ndarray  # (D, X)
    b_h: np.ndarray  # (D,)
    W_mu: np.ndarray  # (Z, D) prior
    b_mu: np.ndarray  # (Z,)
    W_sg: np.ndarray  # (Z, D)
    b_sg: np.ndarray  # (Z,)
    U_mu: np.ndarray  # (Z, X) posterior (encoder)
    V_mu: np.ndarray  # (Z, D)
    c_mu: np.ndarray  # (Z,)
    U_sg: np.ndarray  # (Z, X)
    V_sg: np.ndarray  # (Z, D)
    c_sg: np.ndarray  # (Z,)
    W_oz: np.ndarray  # (X, Z) decoder
    W_od: np.ndarray  # (X, D)
    b_out: np.ndarray  # (X,)
    tau: np.ndarray  # (D,) >= 1, not trained


def init_vrnn(D: int, Z: int, X: int, rng, tau=2.0, dtype=np.float64) -> VRNNParams:
    """Glorot-normal matrices, zero biases (as ``init_pvrnn``'s defaults)."""
    rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")
    D, Z, X = (_checks.check_number(n, name, integer=True, low=1)
               for n, name in ((D, "D"), (Z, "Z"), (X, "X")))
    if np.ndim(tau) == 0:
        _checks.check_number(tau, "tau", low=1)
    shapes = {"W_dd": (D, D), "W_zd": (D, Z), "W_xd": (D, X), "b_h": (D,), "W_mu": (Z, D),
              "b_mu": (Z,), "W_sg": (Z, D), "b_sg": (Z,), "U_mu": (Z, X), "V_mu": (Z, D),
              "c_mu": (Z,), "U_sg": (Z, X), "V_sg": (Z, D), "c_sg": (Z,), "W_oz": (X, Z),
              "W_od": (X, D), "b_out": (X,)}
    vals = {k: (np.sqrt(2.0 / sum(s)) * rng.standard_normal(s) if len(s) == 2 else np.zeros(s))
            .astype(dtype) for k, s in shapes.items()}
    tau = np.broadcast_to(np.asarray(tau, dtype), (D,)).copy()
    if not (tau >= 1).all():
        raise ValueError(f"tau must be >= 1 for every unit, got {tau}")
    return VRNNParams(**vals, tau=tau)


def _state(params, state0, B, dtype):
    D = params.W_dd.shape[0]
    if state0 is None:
        return np.zeros((B, D), dtype), np.zeros((B, D), dtype)
    h0 = _checks.float_array(state0[0], "state0[0]", dtype=dtype)
    d0 = _checks.float_array(state0[1], "state0[1]", dtype=dtype)
    _checks.check_shape(h0, (B, D), "state0[0]", "(B, D)")
    _checks.check_shape(d0, (B, D), "state0[1]", "(B, D)")
    return h0, d0


def vrnn_forward(params: VRNNParams, x, eps, state0=None):
    """Posterior (inference) pass over observations ``x`` (B, T, X) with noise ``eps`` (B, T, Z).

    Returns ``(x_hat (B, T, X), cache)``; ``cache["h"][:, -1], cache["d"][:, -1]`` is the final
    state (pass it as ``state0`` to continue).
    """
    _checks.check_instance(params, VRNNParams, "params")
    dtype = _checks.float_array(params.W_dd, "params.W_dd").dtype
    x = _checks.float_array(x, "x", dtype=dtype)
    if x.ndim != 3 or x.shape[2] != params.W_xd.shape[1]:
        raise ValueError(f"x must have shape (B, T, X={params.W_xd.shape[1]}), got {x.shape}")
    B, T, _ = x.shape
    if T < 1:
        raise ValueError("x must have at least one time step")
    eps = _checks.float_array(eps, "eps", dtype=dtype)
    _checks.check_shape(eps, (B, T, params.W_zd.shape[1]), "eps", "(B, T, Z)")
    p = params
    h, d = _state(p, state0, B, dtype)
    one = dtype.type(1)
    iota = one / p.tau  # (D,)
    c = {k: [] for k in ("d_prev", "h", "d", "z", "mu_p", "a_p", "mu_q", "a_q", "x_hat")}
    for t in range(T):
        mu_p, a_p = np.tanh(d @ p.W_mu.T + p.b_mu), d @ p.W_sg.T + p.b_sg  # (B, Z)
        mu_q = np.tanh(x[:, t] @ p.U_mu.T + d @ p.V_mu.T + p.c_mu)  # (B, Z)
        a_q = x[:, t] @ p.U_sg.T + d @ p.V_sg.T + p.c_sg
        z = mu_q + np.exp(a_q) * eps[:, t]
        x_hat = np.tanh(z @ p.W_oz.T + d @ p.W_od.T + p.b_out)  # (B, X)
        c["d_prev"].append(d)
        h = (one - iota) * h + iota * (d @ p.W_dd.T + z @ p.W_zd.T + x[:, t] @ p.W_xd.T + p.b_h)
        d = np.tanh(h)  # (B, D)
        for k, v in zip(("h", "d", "z", "mu_p", "a_p", "mu_q", "a_q", "x_hat"),
                        (h, d, z, mu_p, a_p, mu_q, a_q, x_hat)):
            c[k].append(v)
    cache = {k: np.stack(v, axis=1) for k, v in c.items()}  # (B, T, .)
    cache.update(x=x, eps=eps, state0=_state(p, state0, B, dtype))
    return cache["x_hat"], cache


def vrnn_generate(params: VRNNParams, eps, state0=None):
    """Prior generation: z_t from the prior, the decoder mean fed back as x_t. eps (B, T, Z)."""
    _checks.check_instance(params, VRNNParams, "params")
    dtype = _checks.float_array(params.W_dd, "params.W_dd").dtype
    eps = _checks.float_array(eps, "eps", dtype=dtype)
    if eps.ndim != 3:
        raise ValueError(f"eps must have shape (B, T, Z), got {eps.shape}")
    _checks.check_shape(eps, eps.shape[:2] + (params.W_zd.shape[1],), "eps", "(B, T, Z)")
    B, T, _ = eps.shape
    p = params
    h, d = _state(p, state0, B, dtype)
    iota = 1 / p.tau
    out = np.zeros((B, T, p.W_oz.shape[0]), dtype)
    for t in range(T):
        z = np.tanh(d @ p.W_mu.T + p.b_mu) + np.exp(d @ p.W_sg.T + p.b_sg) * eps[:, t]
        out[:, t] = np.tanh(z @ p.W_oz.T + d @ p.W_od.T + p.b_out)
        h = (1 - iota) * h + iota * (d @ p.W_dd.T + z @ p.W_zd.T + out[:, t] @ p.W_xd.T + p.b_h)
        d = np.tanh(h)
    return out


CACHE_KEYS = ("d_prev", "h", "d", "z", "mu_p", "a_p", "mu_q", "a_q", "x_hat", "x", "eps")


def _coeffs(cache, w, normalize):
    if not isinstance(cache, dict) or not all(k in cache for k in CACHE_KEYS):
        raise TypeError(f"cache must be the dict returned by vrnn_forward, got "
                        f"{type(cache).__name__}")
    _checks.check_choice(normalize, "normalize", ("oist", "sum"))
    w = _checks.check_number(w, "w", low=0)
    B, T, X = cache["x"].shape
    Z = cache["eps"].shape[2]
    return (1.0 / (X * B), w / (Z * B)) if normalize == "oist" else (1.0, float(w))


def vrnn_loss(cache, w=1.0, normalize="oist"):
    """``(total, rec, kl)`` of the module's objective (KL from pre-activations, as PV-RNN)."""
    c_rec, om = _coeffs(cache, w, normalize)
    err = cache["x_hat"] - cache["x"]
    a_p, a_q = cache["a_p"], cache["a_q"]
    dmu = cache["mu_p"] - cache["mu_q"]
    kl = a_p - a_q + (dmu * dmu + np.exp(2 * a_q)) * np.exp(-2 * a_p) / 2 - 0.5
    rec, klw = 0.5 * c_rec * float((err * err).sum()), om * float(kl.sum())
    return rec + klw, rec, klw


def vrnn_backward(params: VRNNParams, cache, w=1.0, normalize="oist") -> dict:
    """Exact gradients of :func:`vrnn_loss` by BPTT (ε fixed); keys ``NAMES`` plus ``"x"``
    (B, T, X) — the observations enter the encoder and the recurrence — and ``"state0"``."""
    _checks.check_instance(params, VRNNParams, "params")
    c_rec, om = _coeffs(cache, w, normalize)
    p = params
    one = p.W_dd.dtype.type(1)
    iota = one / p.tau
    x, eps = cache["x"], cache["eps"]
    B, T, _ = x.shape
    g = {k: np.zeros_like(getattr(p, k)) for k in NAMES}
    gx = np.zeros_like(x)
    D = p.W_dd.shape[0]
    dd_next, dh_next = np.zeros((B, D), x.dtype), np.zeros((B, D), x.dtype)
    for t in reversed(range(T)):
        d_prev, z, xt = cache["d_prev"][:, t], cache["z"][:, t], x[:, t]
        d_t, xh = cache["d"][:, t], cache["x_hat"][:, t]
        mu_p, a_p, mu_q, a_q = (cache[k][:, t] for k in ("mu_p", "a_p", "mu_q", "a_q"))
        dh = dh_next + dd_next * (one - d_t * d_t)  # (B, D) δh_t
        dpre = iota * dh  # gradient of the recurrence's bracket
        do = c_rec * (xh - xt) * (one - xh * xh)  # (B, X)
        dz = do @ p.W_oz + dpre @ p.W_zd  # (B, Z)
        sg_q, inv_vp = np.exp(a_q), np.exp(-2 * a_p)
        du_q = (dz + om * (mu_q - mu_p) * inv_vp) * (one - mu_q * mu_q)
        ds_q = dz * eps[:, t] * sg_q + om * (sg_q * sg_q * inv_vp - one)
        du_p = om * (mu_p - mu_q) * inv_vp * (one - mu_p * mu_p)
        ds_p = om * (one - ((mu_p - mu_q) ** 2 + sg_q * sg_q) * inv_vp)
        for k, dv, inp in (("W_dd", dpre, d_prev), ("W_zd", dpre, z), ("W_xd", dpre, xt),
                           ("W_mu", du_p, d_prev), ("W_sg", ds_p, d_prev), ("U_mu", du_q, xt),
                           ("V_mu", du_q, d_prev), ("U_sg", ds_q, xt), ("V_sg", ds_q, d_prev),
                           ("W_oz", do, z), ("W_od", do, d_prev)):
            g[k] += dv.T @ inp
        for k, dv in (("b_h", dpre), ("b_mu", du_p), ("b_sg", ds_p), ("c_mu", du_q),
                      ("c_sg", ds_q), ("b_out", do)):
            g[k] += dv.sum(axis=0)
        gx[:, t] = -c_rec * (xh - xt) + dpre @ p.W_xd + du_q @ p.U_mu + ds_q @ p.U_sg
        dd_next = (dpre @ p.W_dd + du_p @ p.W_mu + ds_p @ p.W_sg + du_q @ p.V_mu
                   + ds_q @ p.V_sg + do @ p.W_od)  # gradient to d_{t-1}
        dh_next = (one - iota) * dh
    g["x"] = gx
    g["state0"] = (dh_next, dd_next)
    return g

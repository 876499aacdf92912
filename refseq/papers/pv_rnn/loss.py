"""PV-RNN's objective and its exact BPTT gradients (Ahmadi & Tani, arXiv 1811.01339).

The meta-prior-weighted negative ELBO :func:`pvrnn_loss` (reconstruction plus ``w``-weighted KL
per layer), its gradients :func:`pvrnn_backward` with ε held fixed, and the KL and σ diagnostics
(:func:`kl_per_step`, :func:`mean_sigma`), all read from the cache of
:func:`refseq.papers.pv_rnn.model.pvrnn_forward`. Symbols and equations: docs/papers/pv-rnn.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from refseq import _checks
from refseq.papers.pv_rnn.params import PVRNNParams, named_parameters

if TYPE_CHECKING:
    from refseq.papers.pv_rnn.model import PVRNNCache

NORMALIZATIONS = ("oist", "sum")


def kl_per_step(cache: PVRNNCache) -> np.ndarray:
    """KL(q || p) summed over latent units, ``(L, B, T)``; zero at prior-driven steps.

    .. math:: KL_i = \\ln\\frac{σ^p_i}{σ^q_i} + \\frac{(μ^p_i - μ^q_i)^2 + (σ^q_i)^2}
              {2 (σ^p_i)^2} - \\frac12

    with ``ln σ^p - ln σ^q = a_sg^p - A_sg`` taken from the pre-activations (no log of an
    underflowed σ).
    """
    _check_cache(cache)
    out = []
    for l in range(len(cache.d)):
        kl = _kl_units(cache, l).sum(axis=-1)  # (B, T)
        out.append(kl)
    return np.stack(out)


def _check_cache(cache):
    from refseq.papers.pv_rnn.model import PVRNNCache

    _checks.check_instance(cache, PVRNNCache, "cache", "PVRNNCache (from pvrnn_forward)")


def _kl_units(cache, l):
    B, T = cache.d[l].shape[:2]
    Z = cache.z[l].shape[2]
    if cache.mu_q[l] is None:
        return np.zeros((B, T, Z), cache.d[l].dtype)
    a_p, a_q = cache.a_sg_p[l], cache.a_sg_q[l]
    dmu = cache.mu_p[l] - cache.mu_q[l]
    kl = a_p - a_q + (dmu * dmu + np.exp(2 * a_q)) * np.exp(-2 * a_p) / 2 - 0.5
    return np.where(cache.use_post[None, :, None], kl, 0)  # (B, T, Z)


def mean_sigma(cache: PVRNNCache, which="p", t_from=2) -> list:
    """Mean σ^p or σ^q per layer over batch, units and steps ``t >= t_from`` (1-based)."""
    _check_cache(cache)
    _checks.check_choice(which, "which", ("p", "q"))
    T = cache.d[0].shape[1]
    t_from = _checks.check_number(t_from, "t_from", integer=True, low=1, high=max(T, 1))
    a = cache.a_sg_p if which == "p" else cache.a_sg_q
    if any(x is None for x in a):
        raise ValueError("which='q' needs a cache with posterior steps (pass seq_index to "
                         "pvrnn_forward)")
    return [float(np.exp(x[:, t_from - 1:]).mean()) for x in a]


def _per_layer(v, L, name):
    """A finite number >= 0, or a list of L of them, as a list of L floats."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    vals = list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v]
    if len(vals) not in (1, L):
        raise ValueError(f"{name} must be a number or a list of one per layer ({L}), "
                         f"got {len(vals)} values")
    vals = [_checks.check_number(x, name if len(vals) == 1 else f"{name}[{i}]", low=0)
            for i, x in enumerate(vals)]
    return vals * L if len(vals) == 1 else vals


def _weights(w, beta, L, name_w="w", name_b="beta"):
    w = _per_layer(w, L, name_w)
    return w, (w if beta is None else _per_layer(beta, L, name_b))


def _loss_setup(cache, targets, mask, w, beta, normalize, rec_weight):
    _check_cache(cache)
    _checks.check_choice(normalize, "normalize", NORMALIZATIONS)
    rec_weight = _checks.check_number(rec_weight, "rec_weight", low=0)
    x_hat = cache.x_hat
    B, T, X = x_hat.shape
    targets = _checks.float_array(targets, "targets", dtype=x_hat.dtype)
    _checks.check_shape(targets, (B, T, X), "targets", "(B, T, X)")
    if cache.log_x_hat is not None and targets.size and not (targets >= 0).all():
        raise ValueError("targets of a softmax output must be non-negative (encode them with "
                         "pv_rnn_data.softmax_encode)")
    m = np.ones((B, T, 1), x_hat.dtype)
    if mask is not None:
        m = np.asarray(mask).astype(x_hat.dtype)
        if m.shape == (B, T):
            m = m[..., None]
        elif m.shape != (B, T, X):
            raise ValueError(f"mask must have shape (B, T) or (B, T, X), got {m.shape}")
    L = len(cache.d)
    w, beta = _weights(w, beta, L)
    oist = normalize == "oist"
    c_rec = rec_weight * ((1.0 / (X * B)) if oist else 1.0)
    # ω_{l,t}: the KL weight per step (β at the unit-Gaussian first step)
    omega = []
    for l in range(L):
        Z = cache.z[l].shape[2]
        o = np.full(T, w[l])
        if cache.unit_first and T:
            o[0] = beta[l]
        omega.append((o / (Z * B) if oist else o).astype(x_hat.dtype))  # (T,)
    return targets, m, c_rec, omega


def pvrnn_loss(cache, targets, mask=None, w=1.0, beta=None, normalize="oist", rec_weight=1.0):
    """The minimised objective (negative ELBO with meta-prior).

    ``oist``: ``(1/B) Σ_b Σ_t [(1/2X)||x̂ - x||² + Σ_l (w_{l,t}/Z_l) Σ_i KL]``; ``sum`` drops the
    ``1/X``, ``1/Z_l``, ``1/B``. ``w_{l,1} = β_l`` when the first prior is the unit Gaussian.
    ``mask`` (B, T) or (B, T, X) multiplies the reconstruction term only; ``rec_weight`` scales it
    (error regression's normalisations). Returns ``(total, rec, kl_per_layer)`` as floats / a list
    of floats (``kl_per_layer`` is weighted, so ``total = rec + sum(kl_per_layer)``).

    With a softmax output (``sm_units > 0``) the reconstruction term per step is the OIST
    ``(1/X) Σ_j x_j ln(x_j / x̂_j)`` (``x ln x := 0`` at ``x = 0``; ``sum`` drops ``1/X``), i.e.
    KL(target || output) per group when each group of targets sums to 1.
    """
    targets, m, c_rec, omega = _loss_setup(cache, targets, mask, w, beta, normalize, rec_weight)
    if cache.log_x_hat is not None:
        safe = np.where(targets > 0, targets, 1)
        rec = c_rec * float((m * targets * (np.log(safe) - cache.log_x_hat)).sum())
    else:
        err = cache.x_hat - targets
        rec = 0.5 * c_rec * float((m * err * err).sum())
    kls = []
    for l in range(len(cache.d)):
        kl_bt = _kl_units(cache, l).sum(axis=-1)  # (B, T)
        kls.append(float((kl_bt * omega[l][None, :]).sum()))  # ω already holds 1/(Z_l B)
    return rec + sum(kls), rec, kls


def pvrnn_backward(params, cache, targets, mask=None, w=1.0, beta=None, normalize="oist",
                   rec_weight=1.0) -> dict:
    """Exact gradients of :func:`pvrnn_loss` by BPTT, ε held fixed (docs/papers/pv-rnn.md).

    Returns a dict with the keys of :func:`named_parameters` (A gradients are non-zero only at
    the used ``seq_index`` slots) plus ``"state0"``: ``[(dh0, dd0)]`` per layer.
    """
    _checks.check_instance(params, PVRNNParams, "params")
    targets, m, c_rec, omega = _loss_setup(cache, targets, mask, w, beta, normalize, rec_weight)
    dtype = cache.x_hat.dtype
    one = dtype.type(1)
    L = len(params.layers)
    B, T, _ = cache.x_hat.shape
    g = {k: np.zeros_like(v) for k, v in named_parameters(params).items()}
    x_hat = cache.x_hat
    U = params.sm_units
    if cache.log_x_hat is not None:  # softmax groups: ∂/∂a_k = x̂_k Σ_group(m t) - m_k t_k
        mt = np.broadcast_to(m, targets.shape) * targets  # (B, T, X)
        gsum = mt.reshape(B, T, -1, U).sum(axis=-1, keepdims=True)  # (B, T, G, 1)
        delta_o = c_rec * ((x_hat.reshape(B, T, -1, U) * gsum).reshape(B, T, -1) - mt)
    else:
        delta_o = c_rec * m * (x_hat - targets) * (one - x_hat * x_hat)  # (B, T, X)
    g["W_out"] += np.einsum("btx,btd->xd", delta_o, cache.d[0])
    g["b_out"] += delta_o.sum(axis=(0, 1))
    dd_carry = [np.zeros((B, p.W_dd.shape[0]), dtype) for p in params.layers]
    dh_carry = [np.zeros((B, p.W_dd.shape[0]), dtype) for p in params.layers]
    sidx = cache.seq_index
    for t in reversed(range(T)):
        dpre_below = None  # ι ⊙ δh of the layer below at step t (feeds W_hd)
        for l in range(L):  # bottom to top: layer l sends gradient to d^{l+1}_t
            p = params.layers[l]
            f = f"{l}."
            iota = one / p.tau
            d_t = cache.d[l][:, t]
            d_prev = cache.d[l][:, t - 1] if t > 0 else cache.state0[l][1]
            dd = dd_carry[l]
            if l == 0:
                dd = dd + delta_o[:, t] @ params.W_out
            else:
                dd = dd + dpre_below @ params.layers[l - 1].W_hd
            dh = dh_carry[l] + dd * (one - d_t * d_t)  # (B, D) δh_t
            dpre = iota * dh  # gradient of the bracket W_dd d_{t-1} + W_zd z_t + ...
            g[f + "W_dd"] += dpre.T @ d_prev
            g[f + "W_zd"] += dpre.T @ cache.z[l][:, t]
            g[f + "b_h"] += dpre.sum(axis=0)
            if p.W_hd is not None:
                g[f + "W_hd"] += dpre.T @ cache.d[l + 1][:, t]
            dz = dpre @ p.W_zd  # (B, Z)
            eps = cache.eps[l][:, t]
            has_prior = t > 0 or not cache.unit_first
            mu_p, a_p = cache.mu_p[l][:, t], cache.a_sg_p[l][:, t]
            if cache.use_post[t]:
                mu_q, a_q = cache.mu_q[l][:, t], cache.a_sg_q[l][:, t]
                sg_q = np.exp(a_q)
                inv_vp = np.exp(-2 * a_p)  # 1 / (σ^p)²
                w_t = omega[l][t]
                dmu_q = dz + w_t * (mu_q - mu_p) * inv_vp
                dA_mu = dmu_q * (one - mu_q * mu_q)
                dA_sg = dz * eps * sg_q + w_t * (sg_q * sg_q * inv_vp - one)
                np.add.at(g[f + "A_mu"], (sidx, t), dA_mu)
                np.add.at(g[f + "A_sg"], (sidx, t), dA_sg)
                du = w_t * (mu_p - mu_q) * inv_vp * (one - mu_p * mu_p)
                ds = w_t * (one - ((mu_p - mu_q) ** 2 + sg_q * sg_q) * inv_vp)
            else:  # z = μ^p + σ^p ε: reconstruction gradient into the prior; no KL term
                du = dz * (one - mu_p * mu_p)
                ds = dz * eps * np.exp(a_p)
            if has_prior:
                g[f + "W_mu"] += du.T @ d_prev
                g[f + "b_mu"] += du.sum(axis=0)
                g[f + "W_sg"] += ds.T @ d_prev
                g[f + "b_sg"] += ds.sum(axis=0)
                dd_carry[l] = dpre @ p.W_dd + du @ p.W_mu + ds @ p.W_sg
            else:
                dd_carry[l] = dpre @ p.W_dd
            dh_carry[l] = (one - iota) * dh
            dpre_below = dpre
    g["state0"] = [(dh_carry[l], dd_carry[l]) for l in range(L)]
    return g

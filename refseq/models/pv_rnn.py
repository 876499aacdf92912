"""PV-RNN: predictive-coding-inspired variational RNN (Ahmadi & Tani, arXiv 1811.01339).

Forward generation, the meta-prior-weighted loss and its exact BPTT gradients. Training and
sliding-window error regression live in :mod:`refseq.models.pv_rnn_er`; docs/papers/pv-rnn.md
maps every symbol. Layers are indexed 0 (bottom, drives the output; the paper's l = 1) to L - 1
(top); the paper's ``τ``, ``w``, ``β``, ``A`` keep their names.

Per layer, time t = 1..T, layers updated top to bottom inside a step (spec "Equations")::

    prior      μ^p_t = 0, σ^p_t = 1 (t = 1, unit_first)   else  tanh(W_mu d_{t-1} + b_mu),
                                                                exp(W_sg d_{t-1} + b_sg)
    posterior  μ^q_t = tanh(A_mu[s, t]),  σ^q_t = exp(A_sg[s, t])
    latent     z_t = μ_t + σ_t ε_t            (q in posterior steps, p in prior steps)
    MTRNN      h_t = (1 - 1/τ) h_{t-1} + (1/τ)(W_dd d_{t-1} + W_zd z_t + W_hd d^{l+1}_t + b_h)
               d_t = tanh(h_t)
    output     x̂_t = tanh(W_out d^1_t + b_out)                          (sm_units = 0, default)
               x̂_t = softmax over each group of U units of (W_out d^1_t + b_out)  (sm_units = U)

Options beyond the paper's defaults: the softmax ("sparse") output of the OIST library (spec
item 3; its loss is ``Σ t log(t / x̂)`` per unit, OIST ``SoftmaxLayer::computeErr``), and Idei et
al.'s initialisation of A to the prior's pre-activations on the first forward pass
(``pvrnn_forward(..., set_A_to_prior=True)`` / :func:`init_A_from_prior`; h-idei/pvrnn_sa).

Symbols: B batch, T time, X output width, D deterministic units, Z latent units, S training
sequences. Weights use the paper's column convention (``W x``); the code computes ``x @ W.T``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks

NORMALIZATIONS = ("oist", "sum")


class PVRNNLayer(NamedTuple):
    """Parameters of one layer (``W_hd`` is None for the top layer) and its time constant."""

    W_dd: np.ndarray  # (D, D)
    W_zd: np.ndarray  # (D, Z)
    W_hd: np.ndarray | None  # (D, D_above)
    b_h: np.ndarray  # (D,)
    W_mu: np.ndarray  # (Z, D)
    b_mu: np.ndarray  # (Z,)
    W_sg: np.ndarray  # (Z, D)
    b_sg: np.ndarray  # (Z,)
    A_mu: np.ndarray  # (S, T, Z) adaptive vectors (posterior mean pre-activation)
    A_sg: np.ndarray  # (S, T, Z) adaptive vectors (posterior log-sigma)
    tau: np.ndarray  # (D,) time constants >= 1 (a hyper-parameter, never trained)


class PVRNNParams(NamedTuple):
    layers: list  # [PVRNNLayer], index 0 = bottom
    W_out: np.ndarray  # (X, D_0)
    b_out: np.ndarray  # (X,)
    sm_units: int = 0  # 0: tanh output; U > 0: softmax over X / U groups of U units each


TRAINED = ("W_dd", "W_zd", "W_hd", "b_h", "W_mu", "b_mu", "W_sg", "b_sg", "A_mu", "A_sg")


def _vector(rng, kind, shape, dtype, std=1.0):
    if kind == "zeros":
        return np.zeros(shape, dtype)
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    if kind == "normal":
        return (std * rng.standard_normal(shape)).astype(dtype)
    raise ValueError(f"init kind must be 'zeros', 'uniform' or 'normal', got {kind!r}")


def init_pvrnn(sizes, X: int, S: int, T: int, rng, tau=2.0, *, bias_init="zeros",
               A_init="zeros", A_std=1.0, dtype=np.float64, sm_units: int = 0) -> PVRNNParams:
    """Glorot-normal weights (``N(0, 2/(fan_in + fan_out))``, OIST); vectors by ``*_init``.

    Parameters
    ----------
    sizes : [(D_l, Z_l)] bottom first; X : output width; S, T : number and length of training
    sequences (shape of A); rng : Generator or seed; tau : scalar, or one entry per layer (each a
    scalar or a ``(D_l,)`` vector), all >= 1; bias_init, A_init : "zeros" | "uniform" (U(-1, 1),
    OIST biases) | "normal" (``A_std`` times N(0, 1); OIST A uses std 1); sm_units : 0 for the
    tanh output, U > 0 for the softmax output (X is then the total width G·U, divisible by U;
    encode targets with :func:`refseq.models.pv_rnn_data.softmax_encode`). For Idei's
    initialisation of A to the prior, call :func:`init_A_from_prior` (or
    ``train_pvrnn(..., A_init_from_prior=True)``) after this.
    """
    rng = np.random.default_rng(rng)
    if not sizes:
        raise ValueError("sizes must list at least one layer (D, Z)")
    taus = list(tau) if isinstance(tau, (list, tuple)) else [tau] * len(sizes)
    if len(taus) != len(sizes):
        raise ValueError(f"tau must have one entry per layer ({len(sizes)}), got {len(taus)}")

    def glorot(o, i):
        return (np.sqrt(2.0 / (i + o)) * rng.standard_normal((o, i))).astype(dtype)

    layers = []
    for l, (D, Z) in enumerate(sizes):
        above = sizes[l + 1][0] if l + 1 < len(sizes) else None
        tau_l = np.broadcast_to(np.asarray(taus[l], dtype), (D,)).copy()
        layers.append(PVRNNLayer(
            glorot(D, D), glorot(D, Z), None if above is None else glorot(D, above),
            _vector(rng, bias_init, (D,), dtype),
            glorot(Z, D), _vector(rng, bias_init, (Z,), dtype),
            glorot(Z, D), _vector(rng, bias_init, (Z,), dtype),
            _vector(rng, A_init, (S, T, Z), dtype, A_std),
            _vector(rng, A_init, (S, T, Z), dtype, A_std), tau_l))
    params = PVRNNParams(layers, glorot(X, sizes[0][0]), _vector(rng, bias_init, (X,), dtype),
                         int(sm_units))
    check_params(params)
    return params


def check_params(params: PVRNNParams) -> np.dtype:
    """Validate shapes and τ >= 1; return the parameters' dtype."""
    if not isinstance(params, PVRNNParams) or not params.layers:
        raise TypeError("params must be a PVRNNParams with at least one layer")
    dtype = _checks.float_array(params.W_out, "params.W_out").dtype
    U, X = params.sm_units, params.W_out.shape[0]
    if not isinstance(U, (int, np.integer)) or U < 0 or (U and X % U):
        raise ValueError(f"params.sm_units must be 0 (tanh output) or a positive divisor of the "
                         f"output width X={X}, got {U!r}")
    L = len(params.layers)
    for l, p in enumerate(params.layers):
        D, Z = p.W_zd.shape
        tau = _checks.float_array(p.tau, f"params.layers[{l}].tau")
        if tau.shape != (D,) or not (tau >= 1).all():
            raise ValueError(f"params.layers[{l}].tau must be a (D,) vector with every entry >= 1"
                             f", got {tau}")
        if (p.W_hd is None) != (l == L - 1):
            raise ValueError(f"params.layers[{l}].W_hd must be None exactly for the top layer")
        if p.A_mu.shape != p.A_sg.shape or p.A_mu.ndim != 3 or p.A_mu.shape[2] != Z:
            raise ValueError(f"params.layers[{l}].A_mu/A_sg must have shape (S, T, Z={Z})")
        for name in TRAINED:
            a = getattr(p, name)
            if a is not None and a.dtype != dtype:
                raise TypeError(f"params.layers[{l}].{name} has dtype {a.dtype}, W_out {dtype}")
    return dtype


def named_parameters(params: PVRNNParams, *, with_A: bool = True) -> dict:
    """Flat ``name -> array`` view (same arrays, no copies) of every trained parameter."""
    out = {"W_out": params.W_out, "b_out": params.b_out}
    for l, p in enumerate(params.layers):
        for name in TRAINED:
            if (with_A or not name.startswith("A_")) and getattr(p, name) is not None:
                out[f"{l}.{name}"] = getattr(p, name)
    return out


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


def output_fc(d1, W_out, b_out):
    """The default output ``x̂ = tanh(W_out d^1 + b_out)``: d1 (..., D) -> (..., X)."""
    return np.tanh(d1 @ W_out.T + b_out)


def log_softmax_groups(a, units: int):
    """Stable log-softmax over consecutive groups of ``units`` entries: a (..., G·U) -> same.

    ``a - max - log Σ exp(a - max)`` per group; :func:`softmax_groups_textbook` is the unshifted
    form (it overflows to NaN once a logit exceeds ~709 in float64).
    """
    g = a.reshape(a.shape[:-1] + (-1, units))  # (..., G, U)
    g = g - g.max(axis=-1, keepdims=True)
    return (g - np.log(np.exp(g).sum(axis=-1, keepdims=True))).reshape(a.shape)


def softmax_groups_textbook(a, units: int):
    """``exp(a) / Σ_group exp(a)`` without the max shift (kept for comparison, style #7)."""
    e = np.exp(a.reshape(a.shape[:-1] + (-1, units)))  # (..., G, U)
    return (e / e.sum(axis=-1, keepdims=True)).reshape(a.shape)


def output_softmax_groups(d1, W_out, b_out, groups: int):
    """Softmax ("sparse") output: ``groups`` independent softmaxes over ``X / groups`` units each.

    d1 (..., D) -> probabilities (..., X); each group encodes one analogue dimension (OIST
    ``SoftmaxLayer::_forwardCompute``; decode with ``pv_rnn_data.softmax_decode``).
    """
    X = W_out.shape[0]
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
    rng = np.random.default_rng(rng)
    dtype = params.W_out.dtype
    return [rng.standard_normal((B, T, p.W_zd.shape[1])).astype(dtype) for p in params.layers]


def pvrnn_forward(params: PVRNNParams, eps, seq_index=None, mode="posterior",
                  n_posterior_steps=None, state0=None, *, unit_first=True, set_A_to_prior=False):
    """Generate ``x̂`` for T steps (spec item 2).

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
    if mode not in ("posterior", "prior"):
        raise ValueError(f"mode must be 'posterior' or 'prior', got {mode!r}")
    eps0 = eps[0] if isinstance(eps, (list, tuple)) and eps else None
    if eps0 is None or np.ndim(eps0) != 3:
        raise ValueError("eps must be a list of (B, T, Z_l) arrays, one per layer")
    B, T = np.shape(eps0)[:2]
    eps = _eps_list(eps, params, B, T, dtype)
    S, T_A = params.layers[0].A_mu.shape[:2]
    k = (T if mode == "posterior" else 0) if n_posterior_steps is None else int(n_posterior_steps)
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


def kl_per_step(cache: PVRNNCache) -> np.ndarray:
    """KL(q || p) summed over latent units, ``(L, B, T)``; zero at prior-driven steps.

    .. math:: KL_i = \\ln\\frac{σ^p_i}{σ^q_i} + \\frac{(μ^p_i - μ^q_i)^2 + (σ^q_i)^2}
              {2 (σ^p_i)^2} - \\frac12

    with ``ln σ^p - ln σ^q = a_sg^p - A_sg`` taken from the pre-activations (no log of an
    underflowed σ).
    """
    out = []
    for l in range(len(cache.d)):
        kl = _kl_units(cache, l).sum(axis=-1)  # (B, T)
        out.append(kl)
    return np.stack(out)


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
    a = cache.a_sg_p if which == "p" else cache.a_sg_q
    return [float(np.exp(x[:, t_from - 1:]).mean()) for x in a]


def _weights(w, beta, L, name_w="w", name_b="beta"):
    w = [float(v) for v in np.broadcast_to(np.asarray(w, float), (L,))]
    beta = w if beta is None else [float(v) for v in np.broadcast_to(np.asarray(beta, float), (L,))]
    if min(w + beta) < 0:
        raise ValueError(f"{name_w} and {name_b} must be >= 0")
    return w, beta


def _loss_setup(cache, targets, mask, w, beta, normalize, rec_weight):
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
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
    """The minimised objective (negative ELBO with meta-prior), spec "Objective".

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
    """Exact gradients of :func:`pvrnn_loss` by BPTT (spec "Gradients"), ε held fixed.

    Returns a dict with the keys of :func:`named_parameters` (A gradients are non-zero only at
    the used ``seq_index`` slots) plus ``"state0"``: ``[(dh0, dd0)]`` per layer.
    """
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

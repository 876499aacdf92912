"""PV-RNN training and sliding-window error regression (Ahmadi & Tani, arXiv 1811.01339).

Both use Adam in the OIST form (``ε_adam = 1e-4`` added after the bias-corrected square root,
which is :class:`refseq.train.Adam`'s formula). Weights take one Adam step per minibatch; the
adaptive vectors A of a sequence take one step each time its minibatch is processed, with that
sequence's own step count (``k_A = floor((k - 1) / n_minibatches) + 1``). Error regression
freezes the weights and infers the A slots of a window over the latest observations.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.pv_rnn.loss import (
    NORMALIZATIONS,
    _weights,
    kl_per_step,
    pvrnn_backward,
    pvrnn_loss,
)
from refseq.papers.pv_rnn.model import draw_eps, pvrnn_forward
from refseq.papers.pv_rnn.params import PVRNNLayer, PVRNNParams, check_params, named_parameters
from refseq.train.adam import Adam, check_betas

ER_NORMALIZATIONS = ("oist", "mean", "sum")


class _RowAdam:
    """Adam on rows of an array, each row with its own step count (A of one sequence)."""

    def __init__(self, shape, dtype, lr, betas, eps):
        self.m, self.v = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.k = np.zeros(shape[0], int)
        self.lr, self.betas, self.eps = lr, betas, eps

    def step(self, p, g, rows):
        rows = np.unique(rows)
        b1, b2 = self.betas
        self.k[rows] += 1
        k = self.k[rows].reshape((-1,) + (1,) * (p.ndim - 1))
        m, v = self.m[rows], self.v[rows]
        m = b1 * m + (1 - b1) * g[rows]
        v = b2 * v + (1 - b2) * g[rows] ** 2
        self.m[rows], self.v[rows] = m, v
        p[rows] -= (self.lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + self.eps)).astype(
            p.dtype)


def _adam_hyper(lr, betas, eps, lr_name, eps_name):
    """Adam's hyper-parameters checked under this module's argument names."""
    return (_checks.check_number(lr, lr_name, low=0), check_betas(betas),
            _checks.check_number(eps, eps_name, low=0, low_open=True))


def train_pvrnn(params: PVRNNParams, data, epochs: int, minibatch_size: int | None = None,
                lr=1e-3, betas=(0.9, 0.999), adam_eps=1e-4, w=1.0, beta=None, rng=None,
                normalize="oist", freeze_top_down_of=(), log_every=0, log=print,
                A_init_from_prior=False) -> dict:
    """Train weights and adaptive vectors in place (OIST training epoch).

    Parameters
    ----------
    params : PVRNNParams whose A have shape (S, T, Z); data : (S, T, X) targets in (-1, 1);
    epochs; minibatch_size : None = full batch (a ragged last batch is allowed); lr, betas,
    adam_eps : Adam; w, beta : meta-prior per layer (scalar or list), ``beta=None`` means w;
    rng : Generator or seed (shuffling and ε, fresh every forward); normalize : "oist" | "sum";
    freeze_top_down_of : layer indices whose ``W_hd`` is not updated (reproduces the OIST
    registration bug, Traps); A_init_from_prior : Idei et al.'s option — the first epoch's
    forward of each minibatch first sets its A to the prior's pre-activations
    (``pvrnn_forward(..., set_A_to_prior=True)``, h-idei/pvrnn_sa at ``epo == 0``), so its KL
    term is 0 and its A gradient purely reconstruction-driven.

    Returns
    -------
    history : dict of per-epoch arrays ``loss`` (the objective), ``rec`` (its reconstruction
    term) and ``kl`` (E, L) (the *unweighted* KL per latent unit); logged values are per step
    (divided by T) as in the OIST logs; the gradients are not.
    """
    dtype = check_params(params)
    A_init_from_prior = _checks.check_flag(A_init_from_prior, "A_init_from_prior")
    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    log_every = _checks.check_number(log_every, "log_every", integer=True, low=0)
    lr, betas, adam_eps = _adam_hyper(lr, betas, adam_eps, "lr", "adam_eps")
    _checks.check_choice(normalize, "normalize", NORMALIZATIONS)
    rng = _checks.check_rng(rng)
    data = _checks.float_array(data, "data", dtype=dtype)
    S, T = params.layers[0].A_mu.shape[:2]
    X, L = params.W_out.shape[0], len(params.layers)
    if data.shape != (S, T, X):
        raise ValueError(f"data must have shape (S, T, X) = ({S}, {T}, {X}), got {data.shape}")
    _checks.check_finite(data, "data", hint="")
    if not params.sm_units and data.size and np.abs(data).max() > 1:
        raise ValueError(f"data must lie in [-1, 1] (the tanh output cannot reach beyond; "
                         f"rescale it), found {data.flat[np.abs(data).argmax()]}")
    if not isinstance(freeze_top_down_of, (list, tuple, range, set)):
        raise TypeError(f"freeze_top_down_of must be a tuple of layer indices, got "
                        f"{type(freeze_top_down_of).__name__}")
    for l in freeze_top_down_of:  # the top layer L - 1 has no W_hd
        _checks.check_number(l, "freeze_top_down_of", integer=True, low=0, high=L - 2)
    bs = S if minibatch_size is None else _checks.check_number(
        minibatch_size, "minibatch_size", integer=True, low=1)
    weights = named_parameters(params, with_A=False)
    frozen = {f"{l}.W_hd" for l in freeze_top_down_of}
    opt = Adam(lr=lr, betas=betas, eps=adam_eps)
    a_opt = {(l, k): _RowAdam(getattr(p, k).shape, dtype, lr, betas, adam_eps)
             for l, p in enumerate(params.layers) for k in ("A_mu", "A_sg")}
    hist = {"loss": np.zeros(epochs), "rec": np.zeros(epochs), "kl": np.zeros((epochs, L))}
    for e in range(epochs):
        order = rng.permutation(S)
        for start in range(0, S, bs):
            idx = order[start:start + bs]
            eps = draw_eps(params, len(idx), T, rng)
            _, cache = pvrnn_forward(params, eps, idx, set_A_to_prior=A_init_from_prior and e == 0)
            total, rec, kls = pvrnn_loss(cache, data[idx], None, w, beta, normalize)
            g = pvrnn_backward(params, cache, data[idx], None, w, beta, normalize)
            opt.step(weights, {k: (np.zeros_like(v) if k in frozen else g[k])
                               for k, v in weights.items()})
            for (l, k), o in a_opt.items():
                o.step(getattr(params.layers[l], k), g[f"{l}.{k}"], idx)
            frac = len(idx) / S
            hist["loss"][e] += frac * total / T
            hist["rec"][e] += frac * rec / T
            Zs = np.array([p.W_zd.shape[1] for p in params.layers])
            hist["kl"][e] += frac * kl_per_step(cache).mean(axis=1).sum(axis=1) / (Zs * T)
        if log_every and log is not None and (e + 1) % log_every == 0:
            log(f"epoch {e + 1}/{epochs}  rec {hist['rec'][e]:.5f}  kl {hist['kl'][e]}")
    return hist


class ErrorRegression:
    """Sliding-window error regression (OIST semantics; weights frozen).

    Each :meth:`step` receives the latest ``W`` observations (fewer while a growing window
    fills), slides the window's A slots by one (the new slot initialised by ``new_slot_init``),
    runs ``n_iter`` Adam iterations (``n_init_iter`` at the first step; moments reset every step)
    on the window loss from the committed state, then commits the state after the window's first
    step and predicts ``horizon`` steps ahead from the prior.

    Window loss (``er_normalize``): "oist" = ``Σ_τ (1/2X)||x̂_τ - x_τ||² + (1/W) Σ_τ Σ_l
    (w_l/Z_l) Σ_i KL`` (reconstruction not divided by W, KL divided by W, as the OIST code);
    "mean" divides both by W; "sum" is the raw sum. ``β_er`` weights the first step only while
    the window still starts at the first observation (the unit-Gaussian prior).
    """

    def __init__(self, params: PVRNNParams, window: int, n_iter: int, n_init_iter=None,
                 lr=0.1, betas=(0.9, 0.999), adam_eps=1e-4, w_er=1.0, beta_er=None,
                 new_slot_init="copy_last", growing_window=False, er_normalize="oist",
                 resample_eps=True, rng=None):
        self.dtype = check_params(params)
        growing_window = _checks.check_flag(growing_window, "growing_window")
        resample_eps = _checks.check_flag(resample_eps, "resample_eps")
        window = _checks.check_number(window, "window", integer=True, low=1)
        n_iter = _checks.check_number(n_iter, "n_iter", integer=True, low=0)
        n_init_iter = _checks.check_number(n_init_iter, "n_init_iter", integer=True, low=0,
                                           allow_none=True)
        lr, betas, adam_eps = _adam_hyper(lr, betas, adam_eps, "lr", "adam_eps")
        _checks.check_choice(new_slot_init, "new_slot_init", ("copy_last", "random", "zeros"))
        _checks.check_choice(er_normalize, "er_normalize", ER_NORMALIZATIONS)
        self.params, self.W, self.n_iter = params, int(window), int(n_iter)
        self.n_init_iter = self.n_iter if n_init_iter is None else int(n_init_iter)
        self.lr, self.betas, self.adam_eps = lr, betas, adam_eps
        _weights(w_er, beta_er, len(params.layers), "w_er", "beta_er")  # checked once here
        self.w_er, self.beta_er = w_er, beta_er
        self.new_slot_init, self.growing = new_slot_init, bool(growing_window)
        self.er_normalize, self.resample_eps = er_normalize, bool(resample_eps)
        self.rng = _checks.check_rng(rng)
        self.k = 0
        self.initial_window = True
        self.state = [(np.zeros((1, p.W_dd.shape[0]), self.dtype),) * 2 for p in params.layers]
        n0 = 1 if self.growing else self.W
        self.A = [(np.zeros((1, n0, p.W_zd.shape[1]), self.dtype),) * 2 for p in params.layers]
        self.A = [(a.copy(), s.copy()) for a, s in self.A]

    def _new_slot(self, last):
        if self.new_slot_init == "copy_last":
            return last.copy()
        if self.new_slot_init == "zeros":
            return np.zeros_like(last)
        return self.rng.uniform(-1, 1, last.shape).astype(self.dtype)

    def _slide(self, n):
        """Make room for the window of length n (grow, or drop the oldest slot and append)."""
        out = []
        for a_mu, a_sg in self.A:
            cur = a_mu.shape[1]
            if n > cur:  # growing
                a_mu = np.concatenate([a_mu, self._new_slot(a_mu[:, -1:])], axis=1)
                a_sg = np.concatenate([a_sg, self._new_slot(a_sg[:, -1:])], axis=1)
            else:
                a_mu = np.concatenate([a_mu[:, 1:], self._new_slot(a_mu[:, -1:])], axis=1)
                a_sg = np.concatenate([a_sg[:, 1:], self._new_slot(a_sg[:, -1:])], axis=1)
            out.append((a_mu, a_sg))
        self.A = out

    def _window_params(self, n_total):
        """Copies of the weights' views with A = the window slots (zero-padded to n_total)."""
        layers = []
        for p, (a_mu, a_sg) in zip(self.params.layers, self.A):
            pad = n_total - a_mu.shape[1]
            layers.append(p._replace(
                A_mu=np.pad(a_mu, ((0, 0), (0, pad), (0, 0))),
                A_sg=np.pad(a_sg, ((0, 0), (0, pad), (0, 0)))))
        return self.params._replace(layers=layers)

    def _loss_kw(self, n):
        L = len(self.params.layers)
        w = np.broadcast_to(np.asarray(self.w_er, float), (L,))
        beta = w if self.beta_er is None else np.broadcast_to(np.asarray(self.beta_er, float),
                                                              (L,))
        if self.er_normalize == "sum":
            return dict(w=list(w), beta=list(beta), normalize="sum", rec_weight=1.0)
        # oist normalisation of pvrnn_loss with B = 1 gives (1/2X) and w/Z; add the 1/W
        return dict(w=list(w / n), beta=list(beta / n), normalize="oist",
                    rec_weight=1.0 / n if self.er_normalize == "mean" else 1.0)

    def step(self, x_window, mask=None, horizon: int = 0) -> dict:
        """One ER step on the window ``x_window`` (n, X); returns the window reconstruction
        ``x_hat_window`` (n, X), the ``prediction`` (horizon, X), ``rec_err`` and ``kl`` (the
        window loss terms after the last iteration), ``A_window`` and ``losses`` (per
        iteration, before its update)."""
        horizon = _checks.check_number(horizon, "horizon", integer=True, low=0)
        x = _checks.float_array(x_window, "x_window", dtype=self.dtype)
        n_expected = min(self.k + 1, self.W) if self.growing else self.W
        X = self.params.W_out.shape[0]
        _checks.check_shape(x, (n_expected, X), "x_window", "(W, X)")
        if self.k > 0:
            self._slide(n_expected)
            if n_expected == self.W and not (self.growing and self.k < self.W):
                self.initial_window = False
        n = n_expected
        kw = self._loss_kw(n)
        mask = None if mask is None else np.asarray(mask)[None]  # (1, n) or (1, n, X)
        vars_ = [a for pair in self.A for a in pair]
        m = [np.zeros_like(a) for a in vars_]
        v = [np.zeros_like(a) for a in vars_]
        b1, b2 = self.betas
        idx = np.zeros(1, int)
        eps = draw_eps(self.params, 1, n, self.rng)
        losses = []
        for it in range(self.n_init_iter if self.k == 0 else self.n_iter):
            if self.resample_eps and it > 0:
                eps = draw_eps(self.params, 1, n, self.rng)
            P = self._window_params(n)
            _, cache = pvrnn_forward(P, eps, idx, state0=self.state,
                                     unit_first=self.initial_window)
            losses.append(pvrnn_loss(cache, x[None], mask, **kw)[0])
            g = pvrnn_backward(P, cache, x[None], mask, **kw)
            grads = [g[f"{l}.{k}"] for l in range(len(self.A)) for k in ("A_mu", "A_sg")]
            for j, (a, gj) in enumerate(zip(vars_, grads)):
                m[j] = b1 * m[j] + (1 - b1) * gj
                v[j] = b2 * v[j] + (1 - b2) * gj * gj
                s = it + 1
                a -= (self.lr * (m[j] / (1 - b1**s)) / (np.sqrt(v[j] / (1 - b2**s))
                                                       + self.adam_eps)).astype(self.dtype)
        # final forward over the window, then the prior for the horizon
        if self.resample_eps:
            eps = draw_eps(self.params, 1, n, self.rng)
        eps_h = draw_eps(self.params, 1, horizon, self.rng)
        eps_all = [np.concatenate([a, b], axis=1) for a, b in zip(eps, eps_h)]
        P = self._window_params(n + horizon)
        x_all, cache = pvrnn_forward(P, eps_all, idx, n_posterior_steps=n, state0=self.state,
                                     unit_first=self.initial_window)
        win_cache = cache._replace(
            d=[a[:, :n] for a in cache.d], h=[a[:, :n] for a in cache.h],
            z=[a[:, :n] for a in cache.z], eps=[a[:, :n] for a in cache.eps],
            mu_p=[a[:, :n] for a in cache.mu_p], a_sg_p=[a[:, :n] for a in cache.a_sg_p],
            mu_q=[a[:, :n] for a in cache.mu_q], a_sg_q=[a[:, :n] for a in cache.a_sg_q],
            use_post=cache.use_post[:n], x_hat=cache.x_hat[:, :n],
            log_x_hat=None if cache.log_x_hat is None else cache.log_x_hat[:, :n])
        total, rec, kls = pvrnn_loss(win_cache, x[None], mask, **kw)
        out = {"x_hat_window": x_all[0, :n], "prediction": x_all[0, n:], "rec_err": rec,
               "kl": kls, "loss": total, "losses": np.asarray(losses),
               "A_window": [(a.copy(), s.copy()) for a, s in self.A],
               "eps_final": [e[:, :n] for e in eps_all]}
        if n == self.W:  # the window slides by one at the next step: commit its first step
            self.state = [(cache.h[l][:, 0], cache.d[l][:, 0]) for l in range(len(self.A))]
        self.k += 1
        return out

    def run(self, stream, horizon: int = 1) -> dict:
        """Feed ``stream`` (T_test, X) window by window; returns ``predictions``
        (steps, horizon, X), ``x_hat_last`` (the reconstruction of the newest observation per
        step) and per-step ``rec_err``."""
        horizon = _checks.check_number(horizon, "horizon", integer=True, low=0)
        x = _checks.float_array(stream, "stream", dtype=self.dtype)
        T_test = x.shape[0]
        preds, last, rec = [], [], []
        ends = range(1, T_test + 1) if self.growing else range(self.W, T_test + 1)
        for end in ends:
            out = self.step(x[max(0, end - self.W):end], horizon=horizon)
            preds.append(out["prediction"])
            last.append(out["x_hat_window"][-1])
            rec.append(out["rec_err"])
        return {"predictions": np.asarray(preds), "x_hat_last": np.asarray(last),
                "rec_err": np.asarray(rec)}


__all__ = ["ErrorRegression", "train_pvrnn", "PVRNNLayer", "kl_per_step"]

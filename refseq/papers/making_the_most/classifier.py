"""A learned prefix classifier ``P_phi(a | x, y_{1:t})`` for ACBS (**reconstructed**).

Yoshida, Goyal and Gimpel (arXiv 2311.08817, thesis arXiv 2408.16241 Part C) guide conditional
beam search with a classifier that predicts, from a *prefix*, whether the finished output will
have the attribute ``a``; the guidance follows FUDGE (Yang and Klein, arXiv 2104.05218, Sec. 3),
which trains such a classifier on every prefix of labelled sequences. The sources give no
architecture for the tiny scale used here; the choice made:

.. code-block:: text

    f(x, y_{1:t}) = LN_f(h^(L))  at the last position of  x y_{1:t}          (D,)
    log P_phi(a | x, y_{1:t}) = log sigmoid(w . f + b)
    fit: min_{w, b}  mean over (sequence i, prefix t <= |y_i|) of BCE(sigmoid(w . f_it + b), a_i)
                     + (l2 / 2) ||w||^2                                    (b unpenalised)

the LM is frozen (its final-norm hidden state is the unembedding's input); ``a_i`` is the
attribute of the *whole* sequence i (FUDGE's labelling), drawn from the model's own samples.
The objective is convex; :func:`fit_prefix_classifier` minimises it with damped Newton steps.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.models.tiny_transformer.forward import final_norm, forward
from refseq.models.tiny_transformer.params import check_params

__all__ = ["PrefixClassifier", "fit_prefix_classifier", "prefix_features"]


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)  # stable for both signs


class PrefixClassifier:
    """``log P_phi(a | x, y_{1:t}) = log sigmoid(w . LN_f(h^(L)_last) + b)`` on a frozen tiny
    transformer; callable as the ``attr_logprob_fn`` of :func:`conditional_beam_search`.

    Parameters
    ----------
    params : TinyParams (the LM whose hidden states are read; not copied, never changed).
    weights : (D,) float, default zeros. bias : float, default 0 (then every prefix scores
        ``log 1/2``). prompt : (P,) int ``x``, prepended to every prefix.
    """

    def __init__(self, params, weights=None, bias: float = 0.0, *, prompt=()):
        cfg = check_params(params)
        self.params = params
        D = cfg.d_model
        w = np.zeros(D) if weights is None else _checks.float_array(weights, "weights")
        _checks.check_shape(w, (D,), "weights", "(D,)")
        if not np.isfinite(w).all():
            raise ValueError("weights must be finite")
        self.weights = np.array(w, np.float64)  # a copy: the caller's array is never aliased
        self.bias = _checks.check_number(bias, "bias")
        p = np.asarray(prompt)
        self.prompt = _checks.int_array(p.astype(np.int64) if p.size == 0 else p, "prompt",
                                        low=0, high=cfg.vocab_size, ndim=1, form="(P,)")

    def features(self, prefixes) -> np.ndarray:
        """``f``: (R, t) int prefixes (prompt excluded) -> (R, D) float64, the final-normed
        hidden state at the last position of ``prompt + prefix``."""
        cfg = self.params.config
        x = np.asarray(prefixes)
        x = x.astype(np.int64) if x.size == 0 else x
        x = _checks.int_array(x, "prefixes", low=0, high=cfg.vocab_size, ndim=2, form="(R, t)")
        R = len(x)
        tok = np.concatenate([np.broadcast_to(self.prompt, (R, len(self.prompt))), x], axis=1)
        if tok.shape[1] < 1 or R < 1:
            raise ValueError(f"need R >= 1 prefixes and at least one token in prompt + prefix, "
                             f"got prefixes of shape {x.shape} and a prompt of {len(self.prompt)}")
        _, hidden, _ = forward(self.params, tokens=tok)  # hidden[L] (R, P + t, D)
        return final_norm(self.params, hidden[-1][:, -1]).astype(np.float64)  # (R, D)

    def logits(self, prefixes) -> np.ndarray:
        """``w . f + b``: (R, t) -> (R,)."""
        return self.features(prefixes) @ self.weights + self.bias

    def __call__(self, prefixes) -> np.ndarray:
        """``log P_phi(a | x, prefix)``: (R, t) int -> (R,) float64, ``<= 0``."""
        return _log_sigmoid(self.logits(prefixes))


def prefix_features(params, sequences, *, prompt=(), eos_id=None):
    """Features of every prefix ``y_{1:t}``, ``t = 1 .. |y_i|`` (through the first ``eos_id``
    inclusive; later tokens are padding): ``(F (n_prefixes, D), row (n_prefixes,))`` where
    ``row`` is the sequence each prefix comes from. One forward per batch of sequences."""
    cfg = check_params(params)
    clf = PrefixClassifier(params, prompt=prompt)
    y = _checks.int_array(sequences, "sequences", low=0, high=cfg.vocab_size, ndim=2,
                          form="(N, T)")
    N, T = y.shape
    if N < 1 or T < 1:
        raise ValueError(f"sequences must have shape (N, T) with N, T >= 1, got {y.shape}")
    lengths = np.full(N, T)
    if eos_id is not None:
        eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0,
                                      high=cfg.vocab_size - 1)
        hit = y == eos_id  # (N, T)
        lengths = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, T)  # EOS included
    P = len(clf.prompt)
    tok = np.concatenate([np.broadcast_to(clf.prompt, (N, P)), y], axis=1)  # (N, P + T)
    _, hidden, _ = forward(params, tokens=tok)
    f = final_norm(params, hidden[-1][:, P:]).astype(np.float64)  # (N, T, D): prefix t = j + 1
    keep = np.arange(T)[None, :] < lengths[:, None]  # (N, T)
    return f[keep], np.nonzero(keep)[0]


def fit_prefix_classifier(params, sequences, labels, *, prompt=(), eos_id=None,
                          l2: float = 1e-2, max_iter: int = 100, tol: float = 1e-10
                          ) -> PrefixClassifier:
    """Fit :class:`PrefixClassifier` FUDGE-style: every prefix of sequence i gets label a_i.

    Parameters
    ----------
    params : TinyParams (frozen). sequences : (N, T) int generated tokens (prompt excluded),
        e.g. ``sample_sequences(TransformerLM(params), N, T, seed, prompts=...)``.
    labels : (N,) bool, the attribute of each whole sequence; both classes must occur.
    prompt : (P,) int. eos_id : a sequence ends at its first ``eos_id`` (included); default:
        all T tokens count. l2 : ridge on ``w`` (> 0). max_iter, tol : Newton's stopping rule
        (gradient norm ``<= tol``).

    Returns
    -------
    PrefixClassifier at the minimiser of the module docstring's objective.
    """
    lab = np.asarray(labels)
    if lab.dtype != np.bool_:
        raise TypeError(f"labels must be a boolean array (N,), got dtype {lab.dtype}")
    F, row = prefix_features(params, sequences, prompt=prompt, eos_id=eos_id)  # (n, D), (n,)
    _checks.check_shape(lab, (len(np.asarray(sequences)),), "labels", "(N,)")
    if lab.all() or not lab.any():
        raise ValueError("labels must contain both classes (else the bias has no finite optimum)")
    l2 = _checks.check_number(l2, "l2", low=0, low_open=True)
    max_iter = _checks.check_number(max_iter, "max_iter", integer=True, low=1)
    tol = _checks.check_number(tol, "tol", low=0)
    X = np.concatenate([F, np.ones((len(F), 1))], axis=1)  # (n, D + 1), last column the bias
    a = lab[row].astype(np.float64)  # (n,)
    reg = np.full(X.shape[1], l2)
    reg[-1] = 0.0  # the bias is not penalised

    def objective(theta):
        z = X @ theta
        return np.mean(np.logaddexp(0.0, z) - a * z) + 0.5 * np.sum(reg * theta ** 2)

    theta = np.zeros(X.shape[1])
    for _ in range(max_iter):
        s = np.exp(_log_sigmoid(X @ theta))  # (n,)
        grad = X.T @ (s - a) / len(X) + reg * theta
        if np.linalg.norm(grad) <= tol:
            break
        hess = (X * (s * (1 - s))[:, None]).T @ X / len(X) + np.diag(reg)
        step, f0 = np.linalg.solve(hess, grad), objective(theta)
        eta = 1.0
        while objective(theta - eta * step) > f0 and eta > 1e-8:  # damped Newton
            eta /= 2
        theta = theta - eta * step
    return PrefixClassifier(params, theta[:-1], float(theta[-1]), prompt=prompt)

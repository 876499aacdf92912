"""Predicting a sparse RNN's accuracy from its graph features (Darji, arXiv 2407.20601,
Sec. 5.2.3): min-max scaling, Pearson correlation, a 90/10 split and three regressors.

:func:`bayesian_ridge` re-implements scikit-learn's ``BayesianRidge`` defaults (evidence
maximisation, MacKay 1992): Gamma priors ``alpha_1 = alpha_2 = lambda_1 = lambda_2 = 1e-6``,
``alpha_init = 1 / var(y)``, ``lambda_init = 1``, ``max_iter = 300``, ``tol = 1e-3``, centred
intercept. With ``s_i`` the squared singular values of the centred X and
``gamma = sum_i alpha s_i / (lambda + alpha s_i)``::

    w      = (X^T X + (lambda / alpha) I)^{-1} X^T y
    lambda = (gamma + 2 lambda_1) / (||w||^2 + 2 lambda_2)
    alpha  = (n - gamma + 2 alpha_1) / (||y - X w||^2 + 2 alpha_2)

Random forest and AdaBoost call scikit-learn (optional; ``ImportError`` with an install hint).
The split is scikit-learn's ``train_test_split(test_size=0.1, random_state=7)``:
``n_test = ceil(0.1 n)``, ``perm = RandomState(seed).permutation(n)``, test = ``perm[:n_test]``.
"""

from __future__ import annotations

import math

import numpy as np

from refseq import _checks

REGRESSORS = ("bayesian_ridge", "random_forest", "adaboost")


def _real(x, name: str, ndim: int, form: str) -> np.ndarray:
    """``x`` as a float64 array of rank ``ndim``; any real dtype (bool, int, float) is accepted."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real array {form}, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array {form}, got shape {arr.shape}")
    return arr.astype(np.float64)


def _features_targets(X, y):
    """``X (n, F)`` and ``y (n,)`` as float64, with n >= 1 rows."""
    X, y = _real(X, "X", 2, "(n, F)"), _real(y, "y", 1, "(n,)")
    _checks.check_shape(y, X.shape[:1], "y", "(n,) with n = len(X)")
    if not X.size:
        raise ValueError(f"X must hold at least one sample and one feature, got shape {X.shape}")
    return X, y


def minmax_scale(X) -> np.ndarray:
    """Scale each column to [0, 1]; constant columns become 0 (scikit-learn's ``MinMaxScaler``)."""
    X = _real(X, "X", 2, "(n, F)")
    if not X.shape[0]:
        raise ValueError("X must hold at least one sample (row)")
    lo, span = X.min(axis=0), np.ptp(X, axis=0)
    return (X - lo) / np.where(span == 0, 1.0, span)


def pearson(x, y) -> float:
    """Pearson correlation ``cov(x, y) / (std x std y)``; ``ValueError`` when either is constant
    (the correlation is undefined)."""
    x, y = _real(x, "x", 1, "(n,)"), _real(y, "y", 1, "(n,)")
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got {x.shape}, {y.shape}")
    xc, yc = x - x.mean(), y - y.mean()
    for name, c in (("x", xc), ("y", yc)):
        if not (c @ c) > 0:
            raise ValueError(f"{name} is constant: the Pearson correlation is undefined")
    return float(xc @ yc / np.sqrt((xc @ xc) * (yc @ yc)))


def train_test_split(n: int, test_size: float = 0.1, seed: int = 7):
    """Index arrays ``(train, test)`` exactly as scikit-learn's ``train_test_split``."""
    n = _checks.check_number(n, "n", integer=True, low=0)
    test_size = _checks.check_number(test_size, "test_size", low=0, high=1, low_open=True,
                                     high_open=True)
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    n_test = math.ceil(test_size * n)
    if n and n_test == n:
        raise ValueError(f"test_size = {test_size} leaves no training sample of n = {n}")
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


def bayesian_ridge(X, y, max_iter: int = 300, tol: float = 1e-3, alpha_1: float = 1e-6,
                   alpha_2: float = 1e-6, lambda_1: float = 1e-6, lambda_2: float = 1e-6):
    """Fit; returns ``(coef (F,), intercept, alpha, lambda)``."""
    max_iter = _checks.check_number(max_iter, "max_iter", integer=True, low=1)
    tol = _checks.check_number(tol, "tol", low=0)
    for name, v in (("alpha_1", alpha_1), ("alpha_2", alpha_2), ("lambda_1", lambda_1),
                    ("lambda_2", lambda_2)):
        _checks.check_number(v, name, low=0)
    X, y = _features_targets(X, y)
    n, F = X.shape
    x_off, y_off = X.mean(axis=0), y.mean()
    Xc, yc = X - x_off, y - y_off
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    eig = s**2
    alpha, lam = 1.0 / (yc.var() + np.finfo(np.float64).eps), 1.0

    def coef_for(alpha, lam):
        w = Vt.T @ ((s / (eig + lam / alpha)) * (U.T @ yc))  # (X^T X + lam/alpha I)^{-1} X^T y
        return w, float(((yc - Xc @ w) ** 2).sum())

    w_old = None
    for it in range(max_iter):
        w, rss = coef_for(alpha, lam)
        gamma = float(np.sum(alpha * eig / (lam + alpha * eig)))
        lam = (gamma + 2 * lambda_1) / (float(w @ w) + 2 * lambda_2)
        alpha = (n - gamma + 2 * alpha_1) / (rss + 2 * alpha_2)
        if it and np.abs(w_old - w).sum() < tol:
            break
        w_old = w
    w, _ = coef_for(alpha, lam)
    return w, float(y_off - x_off @ w), alpha, lam


def r2_score(y_true, y_pred) -> float:
    """``1 - sum (y_true - y_pred)^2 / sum (y_true - mean y_true)^2``; ``ValueError`` when
    ``y_true`` is constant (R² is undefined)."""
    y_true, y_pred = _real(y_true, "y_true", 1, "(n,)"), _real(y_pred, "y_pred", 1, "(n,)")
    _checks.check_shape(y_pred, y_true.shape, "y_pred", "(n,) with n = len(y_true)")
    ss_res = ((y_true - y_pred) ** 2).sum()
    ss_tot = ((y_true - y_true.mean()) ** 2).sum()
    if not ss_tot > 0:
        raise ValueError("y_true is constant (or empty): R² is undefined")
    return float(1 - ss_res / ss_tot)


def fit_predict_r2(X, y, regressor: str = "bayesian_ridge", test_size: float = 0.1,
                   seed: int = 7) -> float:
    """Min-max scale X, split, fit ``regressor`` (library defaults), return R² on the test part."""
    _checks.check_choice(regressor, "regressor", REGRESSORS)
    X, y = _features_targets(X, y)
    X = minmax_scale(X)
    tr, te = train_test_split(len(y), test_size, seed)
    if regressor == "bayesian_ridge":
        w, c, _, _ = bayesian_ridge(X[tr], y[tr])
        return r2_score(y[te], X[te] @ w + c)
    try:
        from sklearn.ensemble import AdaBoostRegressor, RandomForestRegressor
    except ImportError as err:
        raise ImportError(f"regressor={regressor!r} needs scikit-learn "
                          "(pip install scikit-learn)") from err
    cls = RandomForestRegressor if regressor == "random_forest" else AdaBoostRegressor
    return r2_score(y[te], cls().fit(X[tr], y[tr]).predict(X[te]))

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


def minmax_scale(X) -> np.ndarray:
    """Scale each column to [0, 1]; constant columns become 0 (scikit-learn's ``MinMaxScaler``)."""
    X = np.asarray(X, np.float64)
    lo, span = X.min(axis=0), np.ptp(X, axis=0)
    return (X - lo) / np.where(span == 0, 1.0, span)


def pearson(x, y) -> float:
    """Pearson correlation ``cov(x, y) / (std x std y)``; NaN when either is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got {x.shape}, {y.shape}")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc @ xc) * (yc @ yc))
    return float(xc @ yc / denom) if denom > 0 else float("nan")


def train_test_split(n: int, test_size: float = 0.1, seed: int = 7):
    """Index arrays ``(train, test)`` exactly as scikit-learn's ``train_test_split``."""
    n = _checks.check_number(n, "n", integer=True, low=0)
    test_size = _checks.check_number(test_size, "test_size", low=0, high=1)
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    n_test = math.ceil(test_size * n)
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
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
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
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    ss_res = ((y_true - y_pred) ** 2).sum()
    ss_tot = ((y_true - y_true.mean()) ** 2).sum()
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def fit_predict_r2(X, y, regressor: str = "bayesian_ridge", test_size: float = 0.1,
                   seed: int = 7) -> float:
    """Min-max scale X, split, fit ``regressor`` (library defaults), return R² on the test part."""
    _checks.check_choice(regressor, "regressor", REGRESSORS)
    X, y = minmax_scale(X), np.asarray(y, np.float64)
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

"""PV-RNN parameters (Ahmadi & Tani, arXiv 1811.01339): layers, initialisation, checks.

:class:`PVRNNLayer` / :class:`PVRNNParams` (the paper's ``W``, ``b``, adaptive vectors ``A`` and
time constants ``τ``), :func:`init_pvrnn` (OIST's Glorot initialisation), :func:`check_params` and
the flat :func:`named_parameters` view the optimisers walk. The model is described in
:mod:`refseq.papers.pv_rnn.model`; symbols: docs/papers/pv-rnn.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks


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


INIT_KINDS = ("zeros", "uniform", "normal")
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
    encode targets with :func:`refseq.papers.pv_rnn.data.softmax_encode`). For Idei's
    initialisation of A to the prior, call :func:`init_A_from_prior` (or
    ``train_pvrnn(..., A_init_from_prior=True)``) after this.
    """
    rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")
    X, S, T = (_checks.check_number(n, name, integer=True, low=1)
               for n, name in ((X, "X"), (S, "S"), (T, "T")))
    sm_units = _checks.check_number(sm_units, "sm_units", integer=True, low=0)
    A_std = _checks.check_number(A_std, "A_std", low=0)
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError("sizes must list at least one layer (D, Z)")
    for l, size in enumerate(sizes):
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            raise TypeError(f"sizes[{l}] must be a pair (D, Z) of positive ints, got {size!r}")
        for n in size:
            _checks.check_number(n, f"sizes[{l}]", integer=True, low=1)
    _checks.check_choice(bias_init, "bias_init", INIT_KINDS)
    _checks.check_choice(A_init, "A_init", INIT_KINDS)
    taus = list(tau) if isinstance(tau, (list, tuple)) else [tau] * len(sizes)
    if len(taus) != len(sizes):
        raise ValueError(f"tau must have one entry per layer ({len(sizes)}), got {len(taus)}")

    def glorot(o, i):
        return (np.sqrt(2.0 / (i + o)) * rng.standard_normal((o, i))).astype(dtype)

    layers = []
    for l, (D, Z) in enumerate(sizes):
        above = sizes[l + 1][0] if l + 1 < len(sizes) else None
        name = "tau" if not isinstance(tau, (list, tuple)) else f"tau[{l}]"
        if np.ndim(taus[l]) == 0:
            _checks.check_number(taus[l], name, low=1)
        elif np.asarray(taus[l]).dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a number or a (D,) vector of numbers >= 1, got "
                            f"dtype {np.asarray(taus[l]).dtype}")
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
    _checks.check_instance(params, PVRNNParams, "params")
    with_A = _checks.check_flag(with_A, "with_A")
    out = {"W_out": params.W_out, "b_out": params.b_out}
    for l, p in enumerate(params.layers):
        for name in TRAINED:
            if (with_A or not name.startswith("A_")) and getattr(p, name) is not None:
                out[f"{l}.{name}"] = getattr(p, name)
    return out

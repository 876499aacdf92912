"""Data helpers for PV-RNN (Ahmadi & Tani, arXiv 1811.01339).

* :func:`softmax_encode` / :func:`softmax_decode` — the OIST library's softmax ("sparse")
  encoding of analogue values (oist-cnru/T-GLean ``Data::_smTransformVec`` and
  ``Data::_invSmTransform``), for a PV-RNN built with ``init_pvrnn(..., sm_units=U)``.
* :func:`pfsm_sequences` — sequences concatenating primitive patterns whose order is drawn by a
  probabilistic finite-state machine (PFSM): a Markov chain over K primitives, the state being
  the primitive just emitted (the paper's first data set is of this kind; its parameters were
  not available, so none are hard-coded).
* :func:`pfsm_accepts` and :func:`estimate_transition_matrix` — the machine's language and the
  transition statistics of symbol sequences, e.g. of generated ones.

Symbols: S sequences, T time, X output width, G analogue dimensions, U softmax units per
dimension (X = G·U), K primitives (machine states), N segments per sequence.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

SM_REF_RANGE = (-0.1, 1.1)  # OIST Data::_computeRefVec: LinSpaced(smUnit, -0.1, 1.1)


def _sm_refs(num_units, dtype):
    num_units = _checks.check_number(num_units, "num_units", integer=True, low=2)
    return np.linspace(*SM_REF_RANGE, num_units).astype(dtype)  # (U,)


def _check_range(x_min, x_max):
    x_min, x_max = _checks.check_number(x_min, "x_min"), _checks.check_number(x_max, "x_max")
    if not x_max > x_min:
        raise ValueError(f"need finite x_min < x_max, got {x_min}, {x_max}")


def softmax_encode(x, num_units: int, sigma: float, x_min: float, x_max: float):
    """Each analogue value becomes ``num_units`` softmax units with a Gaussian-shaped profile.

    .. math:: \\bar x = \\frac{x - x_{min}}{x_{max} - x_{min}}, \\qquad
              p_k = \\frac{\\exp(-(r_k - \\bar x)^2 / \\sigma)}{\\sum_j \\exp(-(r_j - \\bar x)^2
              / \\sigma)}, \\quad r = \\mathrm{linspace}(-0.1, 1.1, U)

    ``sigma`` divides the squared distance as in the OIST code (it is a width, not a standard
    deviation). The exponent is shifted by its maximum before ``exp`` (no underflow to 0/0).

    Parameters
    ----------
    x : (..., G) values in [x_min, x_max]; num_units : U >= 2; sigma : > 0.

    Returns
    -------
    p : (..., G·U), each consecutive group of U entries non-negative and summing to 1.
    """
    x = _checks.float_array(x, "x", ndim_min=1)
    _checks.check_finite(x, "x", hint="")
    _check_range(x_min, x_max)
    sigma = _checks.check_number(sigma, "sigma", low=0, low_open=True)
    if x.size and (x.min() < x_min or x.max() > x_max):
        raise ValueError(f"x must lie in [x_min, x_max] = [{x_min}, {x_max}] (clip it first, as "
                         "OIST Data::checkMinMax does)")
    r = _sm_refs(num_units, x.dtype)
    xn = (x - x_min) / (x_max - x_min)  # (..., G)
    e = -((r - xn[..., None]) ** 2) / sigma  # (..., G, U)
    e = np.exp(e - e.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return p.reshape(x.shape[:-1] + (-1,)).astype(x.dtype)  # (..., G·U)


def softmax_decode(p, num_units: int, x_min: float, x_max: float):
    """Inverse map of :func:`softmax_encode`: the expected reference point, rescaled.

    ``x = x_min + (x_max - x_min) Σ_k p_k r_k`` per group (OIST ``_invSmTransform`` followed by
    ``_reconstructNormalizedVec``). A one-hot group at unit k decodes exactly to ``r_k``; the
    round trip ``decode(encode(x))`` is not the identity near the ends of the range (the
    reference grid is truncated), but it is symmetric about the range's centre.

    p : (..., G·U) -> x : (..., G).
    """
    p = _checks.float_array(p, "p", ndim_min=1)
    _check_range(x_min, x_max)
    r = _sm_refs(num_units, p.dtype)
    if p.shape[-1] % r.size:
        raise ValueError(f"p's last axis ({p.shape[-1]}) must be a multiple of num_units "
                         f"({r.size})")
    g = p.reshape(p.shape[:-1] + (-1, r.size))  # (..., G, U)
    return (x_min + (x_max - x_min) * (g @ r)).astype(p.dtype)  # (..., G)


def _check_machine(transition, initial):
    P = _checks.float_array(transition, "transition", dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 1:
        raise ValueError(f"transition must be a square (K, K) matrix, got shape {P.shape}")
    K = P.shape[0]
    if not np.isfinite(P).all() or (P < 0).any() or not np.allclose(P.sum(axis=1), 1, atol=1e-9):
        raise ValueError("transition must be row-stochastic: finite, >= 0, rows summing to 1")
    if initial is None:
        pi = np.full(K, 1.0 / K)
    else:
        pi = _checks.float_array(initial, "initial", dtype=np.float64)
        _checks.check_shape(pi, (K,), "initial", "(K,)")
        if (pi < 0).any() or not np.isclose(pi.sum(), 1, atol=1e-9):
            raise ValueError("initial must be a probability vector (K,)")
    return P, pi


def _cdf(P):
    """Row CDFs that pick only states of positive probability: each row is normalised by its
    total and set to exactly 1 from its last positive entry on, so ``#{j: cdf_j <= u}`` for
    ``u`` in [0, 1) is an index i with ``cdf_i > cdf_{i-1}``, i.e. ``P_i > 0``."""
    cum = np.cumsum(P, axis=1)  # (K, K)
    cum = cum / cum[:, -1:]
    last = P.shape[1] - 1 - np.argmax(P[:, ::-1] > 0, axis=1)  # (K,) last positive entry
    cum[np.arange(P.shape[1])[None, :] >= last[:, None]] = 1.0
    return cum


def pfsm_sequences(primitives, transition, n_seq: int, n_segments: int, rng, *, initial=None,
                   return_symbols=False):
    """Concatenate primitives in an order drawn by a probabilistic finite-state machine.

    The machine's state is the last emitted primitive: the first is drawn from ``initial``
    (uniform by default), each next one from row ``transition[previous]``. Sequence s is
    ``primitives[k_1] ++ ... ++ primitives[k_N]`` along time.

    Parameters
    ----------
    primitives : list of K arrays (L_k, X) (one X for all; lengths may differ);
    transition : (K, K) row-stochastic; n_seq : S >= 1; n_segments : N >= 1; rng : Generator or
    seed; initial : (K,) or None; return_symbols : also return the symbols and lengths.

    Returns
    -------
    data : (S, T, X) with T the longest total length; shorter sequences (possible only when the
    L_k differ) are padded with zeros after their end. With ``return_symbols``:
    ``(data, symbols (S, N) int, lengths (S,) int)``.
    """
    P, pi = _check_machine(transition, initial)
    K = P.shape[0]
    if not isinstance(primitives, (list, tuple)) or len(primitives) != K:
        raise ValueError(f"primitives must be a list of K={K} arrays (L_k, X)")
    prims = [_checks.float_array(q, f"primitives[{k}]") for k, q in enumerate(primitives)]
    X = prims[0].shape[-1] if prims[0].ndim == 2 else None
    for k, q in enumerate(prims):
        if q.ndim != 2 or q.shape[0] < 1 or q.shape[1] != X:
            raise ValueError(f"primitives[{k}] must have shape (L_k >= 1, X={X}), got {q.shape}")
    return_symbols = _checks.check_flag(return_symbols, "return_symbols")
    S = _checks.check_number(n_seq, "n_seq", integer=True, low=1)
    N = _checks.check_number(n_segments, "n_segments", integer=True, low=1)
    rng = _checks.check_rng(rng)
    cum = _cdf(P)  # (K, K) inverse-CDF sampling, one uniform in [0, 1) per step
    c0 = _cdf(pi[None])[0]  # (K,)
    symbols = np.zeros((S, N), int)
    symbols[:, 0] = (c0[None, :] <= rng.random(S)[:, None]).sum(axis=1)
    for n in range(1, N):
        rows = cum[symbols[:, n - 1]]  # (S, K)
        symbols[:, n] = (rows <= rng.random(S)[:, None]).sum(axis=1)
    L = np.array([q.shape[0] for q in prims])
    lengths = L[symbols].sum(axis=1)  # (S,)
    dtype = np.result_type(*prims)
    data = np.zeros((S, int(lengths.max()), X), dtype)
    for s in range(S):
        data[s, :lengths[s]] = np.concatenate([prims[k] for k in symbols[s]], axis=0)
    if return_symbols:
        return data, symbols, lengths
    return data


def pfsm_accepts(symbols, transition, initial=None) -> np.ndarray:
    """Whether the machine can emit each symbol string: (S, N) int -> (S,) bool.

    A string is accepted iff its first symbol has positive initial probability and every
    consecutive pair has positive transition probability. Symbols outside ``[0, K)`` raise
    ``ValueError`` (they are not symbols of the machine).
    """
    P, pi = _check_machine(transition, initial)
    s = np.asarray(symbols)
    if s.ndim != 2 or s.dtype.kind not in "iu":
        raise TypeError(f"symbols must be an integer array (S, N), got {s.dtype} {s.shape}")
    if s.shape[1] == 0:
        return np.ones(s.shape[0], bool)
    K = P.shape[0]
    _checks.int_array(s, "symbols", low=0, high=K)
    return (pi[s[:, 0]] > 0) & (P[s[:, :-1], s[:, 1:]] > 0).all(axis=1)


def estimate_transition_matrix(symbols, K: int | None = None):
    """Empirical transition matrix of symbol sequences (S, N) int; returns ``(P_hat, counts)``.

    ``counts[i, j]`` counts the pairs (i, j) at consecutive positions within each sequence;
    ``P_hat`` divides each row by its total (rows never visited are NaN). ``K`` defaults to
    ``max(symbols) + 1``.
    """
    s = np.asarray(symbols)
    if s.ndim != 2 or s.dtype.kind not in "iu":
        raise TypeError(f"symbols must be an integer array (S, N), got {s.dtype} {s.shape}")
    K = int(s.max()) + 1 if K is None else int(K)
    if s.size and (s.min() < 0 or s.max() >= K):
        raise ValueError(f"symbols must lie in [0, K={K})")
    counts = np.zeros((K, K), int)
    np.add.at(counts, (s[:, :-1].ravel(), s[:, 1:].ravel()), 1)
    tot = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        P_hat = np.where(tot > 0, counts / np.maximum(tot, 1), np.nan)
    return P_hat, counts

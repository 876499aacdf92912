"""Logit warpers (temperature, top-k, top-p) and exact samplers (inverse CDF, Gumbel-max).

Every function takes logits ``z`` of shape ``(rows, V)`` (float32 or float64; ``-inf`` marks a
token that is already removed; NaN, ``+inf`` and rows without a finite entry are errors) and
never writes to its input. Warpers return logits of the input's dtype with removed entries set to
``-inf``; the warped distribution is ``q'_v = q_v 1[keep_v] / sum_u q_u 1[keep_u]`` with
``q = softmax(z)``, i.e. the softmax over the kept entries (:func:`warped_probs`).

=========================  ===============================================================
rule                       kept entries of a row
=========================  ===============================================================
``temperature(z, T)``      all; ``z' = z / T`` (in the input dtype, as Hugging Face does)
``top_k_filter`` "keep"    ``z_v >= z_(k)``, ``z_(k)`` the k-th largest (may keep > k: ties)
``top_k_filter`` "exact"   the first k of a stable sort on ``(-z_v, v)`` (ties: lower index)
``top_p_filter`` neutral   rank r (descending ``q``, ties: lower index) iff
                           ``sum_{j<r} q_(j) < p`` in float64
``top_p_filter`` "hf"      Hugging Face's ascending form: drop ``cumsum_asc(q) <= 1 - p``
=========================  ===============================================================

The two top-p forms agree in exact arithmetic (the ascending cumulative sum at a token is
``1 -`` the exclusive descending sum before it) but differ when a partial sum lies within
rounding error of ``p``, and they break ties in opposite directions (see :func:`top_p_filter`).

Samplers: :func:`sample` inverts the CDF of ``softmax(z)`` with one uniform per row,
:func:`gumbel_argmax` takes ``argmax(z + g)`` with Gumbel noise ``g`` (:func:`gumbel_noise`).
Neither ever returns a token of zero probability.

References
----------
Fan, Lewis, Dauphin (2018), Hierarchical Neural Story Generation, arXiv:1805.04833 (top-k).
Holtzman et al. (2020), The Curious Case of Neural Text Degeneration, arXiv:1904.09751, Sec. 3.1
(nucleus / top-p sampling).
Maddison, Tarlow, Minka (2014), A* Sampling, arXiv:1411.0030 (the Gumbel-max trick).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

WARPERS = ("temperature", "top_k", "top_p")


def _logits(logits, name: str = "logits") -> np.ndarray:
    """Validate ``(rows, V)`` float logits: no NaN, no +inf, a finite entry in every row."""
    z = _checks.float_array(logits, name)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-d array (rows, V) with V >= 1, got shape {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        bad = tuple(int(i) for i in np.argwhere(np.isnan(z) | np.isposinf(z))[0])
        raise ValueError(f"{name} must hold no NaN or +inf (-inf marks a removed token); "
                         f"found {z[bad]} at index {bad}")
    dead = ~np.isfinite(z).any(axis=1)  # (rows,)
    if dead.any():
        raise ValueError(f"{name} row {int(np.argmax(dead))} has no finite entry (every token "
                         f"removed): it defines no distribution")
    return z


def _softmax64(z: np.ndarray) -> np.ndarray:
    """``softmax`` of validated logits in float64; exactly 0 where ``z == -inf``."""
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))  # (rows, V)
    return e / e.sum(axis=1, keepdims=True)


def _min_keep(min_keep) -> int:
    return _checks.check_number(min_keep, "min_keep", integer=True, low=1)


def temperature(logits, T) -> np.ndarray:
    """Temperature scaling ``z' = z / T``.

    Parameters
    ----------
    logits : ndarray (rows, V), float32 or float64
    T : float
        Temperature, ``0 < T < inf``. ``T < 1`` sharpens, ``T > 1`` flattens the distribution.

    Returns
    -------
    ndarray (rows, V), the dtype of ``logits``
        ``logits / T`` computed in that dtype (``T`` rounded to it first, as ``torch`` divides a
        float32 tensor by a Python float). ``T == 1`` gives the input values (division by 1 is
        exact); ``-inf`` stays ``-inf``.

    Raises
    ------
    ValueError
        ``T <= 0``, NaN or infinite (``T -> 0`` is greedy decoding: take the arg-max instead);
        bad ``logits``; a finite logit that overflows when divided by a small ``T``.
    """
    z = _logits(logits)
    T = _checks.check_number(T, "T", low=0, low_open=True)
    with np.errstate(over="ignore"):
        out = z / z.dtype.type(T)  # (rows, V)
    if not np.array_equal(np.isfinite(out), np.isfinite(z)):
        raise ValueError(f"logits / T overflows {z.dtype} for T={T}; pass float64 logits or a "
                         f"larger T")
    return out


def top_k_filter(logits, k, min_keep=1, ties="keep") -> np.ndarray:
    """Keep the ``k`` largest logits of each row, set the rest to ``-inf`` (Fan et al. 2018).

    Parameters
    ----------
    logits : ndarray (rows, V), float32 or float64
    k : int
        ``k <= 0`` turns the filter off (identity); otherwise clipped to ``[min_keep, V]``.
    min_keep : int, default 1
        Lower bound on ``k`` (Hugging Face's ``min_tokens_to_keep``).
    ties : {"keep", "exact"}
        ``"keep"`` (Hugging Face's ``TopKLogitsWarper``): keep every ``z_v >= z_(k)``, the k-th
        largest value, so tied values at the boundary are all kept (more than k entries).
        ``"exact"``: exactly k entries, the first k of a stable sort on ``(-z_v, v)`` (ties go to
        the lower index; fairseq's ``topk`` keeps k with an unspecified tie order).

    Returns
    -------
    ndarray (rows, V), the dtype of ``logits``

    Notes
    -----
    If a row has fewer than k finite logits, ``z_(k) = -inf`` and nothing is removed.
    """
    z = _logits(logits)
    k = _checks.check_number(k, "k", integer=True)
    min_keep = _min_keep(min_keep)
    ties = _checks.check_choice(ties, "ties", ("keep", "exact"))
    V = z.shape[1]
    if k <= 0:
        return z.copy()
    k = min(max(k, min_keep), V)
    if ties == "keep":
        kth = np.partition(z, V - k, axis=1)[:, V - k : V - k + 1]  # (rows, 1) k-th largest
        keep = z >= kth  # (rows, V)
    else:
        order = np.argsort(-z, axis=1, kind="stable")  # (rows, V) ranks -> token ids
        keep = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(keep, order[:, :k], True, axis=1)
    return np.where(keep, z, z.dtype.type(-np.inf))


def top_p_filter(logits, p, min_keep=1, mode="neutral") -> np.ndarray:
    """Nucleus filter: keep the most probable tokens until their mass reaches ``p``.

    Parameters
    ----------
    logits : ndarray (rows, V), float32 or float64
    p : float in (0, 1]
        ``p == 1`` is the identity.
    min_keep : int, default 1
        Always keep the ``min_keep`` most probable tokens (clipped to V).
    mode : {"neutral", "hf"}
        ``"neutral"``: with ``q = softmax(z)`` in float64 sorted descending (ties: lower index
        first), keep rank r iff the exclusive cumulative mass ``sum_{j<r} q_(j) < p``; this is
        the smallest prefix whose mass reaches ``p`` (Holtzman et al. 2020, Sec. 3.1; fairseq's
        ``Sampling._sample_topp`` keeps the same set).
        ``"hf"``: Hugging Face's ``TopPLogitsWarper`` arithmetic: stable ascending sort of the
        logits, softmax in the input dtype, cumulative sum accumulated in float64 and rounded to
        the input dtype (as ``torch.cumsum`` does on CPU), remove positions with cumulative
        probability ``<= 1 - p`` (``1 - p`` rounded to the input dtype), then un-remove the last
        ``min_keep`` positions.

    Returns
    -------
    ndarray (rows, V), the dtype of ``logits``

    Notes
    -----
    Tie direction differs: among equal logits at the boundary the neutral rule keeps the lower
    index, ``"hf"`` (ascending stable sort) removes the lower index first. ``torch.sort`` is not
    stable by default (on CPU, torch 2.x, it was stable for rows of V <= 16 only), so Hugging
    Face's choice among tied logits at the boundary is implementation-defined for longer rows.
    ``"hf"`` is bit-faithful in every step but the softmax: torch's CPU softmax kernel
    evaluates ``exp`` with its own vectorised approximation (up to tens of float32 ulps from
    NumPy's), so kept sets can differ from Hugging Face's when a cumulative probability lies
    within a few ulps of ``1 - p``. Entries whose float32 probability underflows to 0 are
    removed by ``"hf"`` for any ``p < 1``, as in Hugging Face.
    """
    z = _logits(logits)
    p = _checks.check_number(p, "p", low=0, high=1, low_open=True)
    min_keep = _min_keep(min_keep)
    mode = _checks.check_choice(mode, "mode", ("neutral", "hf"))
    rows, V = z.shape
    if p >= 1:
        return z.copy()
    if mode == "neutral":
        q = _softmax64(z)  # (rows, V)
        order = np.argsort(-q, axis=1, kind="stable")  # (rows, V) descending, ties: lower index
        q_sorted = np.take_along_axis(q, order, axis=1)
        before = np.concatenate([np.zeros((rows, 1)), np.cumsum(q_sorted, axis=1)[:, :-1]],
                                axis=1)  # (rows, V) exclusive cumulative mass
        keep_sorted = before < p
        keep_sorted[:, :min_keep] = True
    else:
        order = np.argsort(z, axis=1, kind="stable")  # (rows, V) ascending, ties: lower first
        zs = np.take_along_axis(z, order, axis=1)
        e = np.exp(zs - zs[:, -1:])  # (rows, V) in the input dtype
        probs = e / e.sum(axis=1, keepdims=True)
        cum = np.cumsum(probs.astype(np.float64), axis=1).astype(z.dtype)
        keep_sorted = ~(cum <= z.dtype.type(1 - p))
        keep_sorted[:, V - min(min_keep, V):] = True
    keep = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return np.where(keep, z, z.dtype.type(-np.inf))


_apply_temperature = temperature  # warp() has a keyword named ``temperature``


def warp(logits, *, temperature=1.0, top_k=0, top_p=1.0, order=WARPERS, top_k_ties="keep",
         top_p_mode="neutral", min_keep=1) -> np.ndarray:
    """Apply temperature, top-k and top-p in ``order`` (Hugging Face's default order).

    Parameters
    ----------
    logits : ndarray (rows, V), float32 or float64
    temperature, top_k, top_p :
        As ``T``, ``k``, ``p`` of :func:`temperature`, :func:`top_k_filter`,
        :func:`top_p_filter`; the defaults (1, 0, 1) are the identity.
    order : sequence of str
        A permutation of a subset of ``("temperature", "top_k", "top_p")``; a warper that is
        switched on must appear in it. Order matters: top-p after temperature sees the tempered
        distribution.
    top_k_ties, top_p_mode, min_keep :
        Passed on as ``ties``, ``mode`` and ``min_keep``.

    Returns
    -------
    ndarray (rows, V), the dtype of ``logits``
    """
    z = _logits(logits)
    T = _checks.check_number(temperature, "temperature", low=0, low_open=True)
    k = _checks.check_number(top_k, "top_k", integer=True)
    p = _checks.check_number(top_p, "top_p", low=0, high=1, low_open=True)
    _checks.check_choice(top_k_ties, "top_k_ties", ("keep", "exact"))
    _checks.check_choice(top_p_mode, "top_p_mode", ("neutral", "hf"))
    if isinstance(order, str) or not isinstance(order, (tuple, list)):
        raise TypeError(f"order must be a tuple of names from {WARPERS}, got {order!r}")
    for name in order:
        _checks.check_choice(name, "order entries", WARPERS)
    if len(set(order)) != len(order):
        raise ValueError(f"order must not repeat a warper, got {tuple(order)}")
    active = {"temperature": T != 1, "top_k": k > 0, "top_p": p < 1}
    missing = [n for n in WARPERS if active[n] and n not in order]
    if missing:
        raise ValueError(f"order={tuple(order)} leaves out {missing}, which are switched on")
    steps = {
        "temperature": lambda x: _apply_temperature(x, T),
        "top_k": lambda x: top_k_filter(x, k, min_keep=min_keep, ties=top_k_ties),
        "top_p": lambda x: top_p_filter(x, p, min_keep=min_keep, mode=top_p_mode),
    }
    for name in order:
        z = steps[name](z)  # (rows, V)
    return z


def warped_probs(logits, **warp_kwargs) -> np.ndarray:
    """The warped distribution ``q'`` as float64 probabilities ``(rows, V)``.

    ``softmax(warp(logits, **warp_kwargs))`` in float64: each row sums to 1 and is exactly 0 on
    removed entries.
    """
    return _softmax64(warp(logits, **warp_kwargs))


def sample(logits, rng=None, u=None) -> np.ndarray:
    """Draw one token per row from ``softmax(logits)`` by inverting its CDF.

    With ``c_v = sum_{w<=v} q_w`` (token order 0..V-1, float64) the draw is the smallest ``v``
    with ``u < c_v``. That token always has ``q_v > 0`` (a zero-probability token repeats the
    previous ``c``). If rounding leaves ``c_{V-1} <= u`` the draw is the last token with
    positive probability.

    Parameters
    ----------
    logits : ndarray (rows, V), float32 or float64
        Already warped logits (see :func:`warp`).
    rng : numpy.random.Generator, int seed or None
        Source of ``u`` when ``u`` is None (None: fresh entropy).
    u : array_like (rows,), float in [0, 1), optional
        Explicit uniforms, for deterministic tests. Passing both ``u`` and ``rng`` is an error.

    Returns
    -------
    ndarray (rows,), int64
    """
    z = _logits(logits)
    rows = z.shape[0]
    if u is None:
        u = _checks.check_rng(rng).random(rows)  # (rows,)
    else:
        if rng is not None:
            raise ValueError("pass either u (explicit uniforms) or rng, not both")
        u = _checks.float_array(u, "u", dtype=np.float64)
        _checks.check_shape(u, (rows,), "u", "(rows,)")
        if not np.all((u >= 0) & (u < 1)):
            raise ValueError(f"u must lie in [0, 1), found {u[~((u >= 0) & (u < 1))][0]}")
    q = _softmax64(z)  # (rows, V)
    c = np.cumsum(q, axis=1)
    tok = np.sum(c <= u[:, None], axis=1)  # (rows,) smallest v with u < c_v (c is monotone)
    last_positive = z.shape[1] - 1 - np.argmax(q[:, ::-1] > 0, axis=1)  # (rows,)
    return np.minimum(tok, last_positive).astype(np.int64)


def gumbel_noise(rng, shape) -> np.ndarray:
    """Standard Gumbel noise ``-log(-log U)``, ``U ~ Uniform(0, 1)`` (open), float64 ``shape``.

    ``rng`` is a ``numpy.random.Generator``, an int seed or None. ``U = 0`` (probability
    2**-53 per draw from ``Generator.random``) is redrawn, so the noise is always finite.
    """
    rng = _checks.check_rng(rng)
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not isinstance(dims, tuple):
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}")
    dims = tuple(_checks.check_number(d, "shape entries", integer=True, low=0) for d in dims)
    U = rng.random(dims)
    while (U == 0).any():
        U[U == 0] = rng.random(int((U == 0).sum()))
    return -np.log(-np.log(U))


def gumbel_argmax(logits, g) -> np.ndarray:
    """Gumbel-max sampling: ``argmax_v (z_v + g_v)`` per row (Maddison et al. 2014, Sec. 2).

    With ``g`` i.i.d. standard Gumbel (:func:`gumbel_noise`) the result is distributed as
    ``softmax(z)``. The sum is taken in float64; ``-inf`` logits never win; ties go to the lower
    index.

    Parameters
    ----------
    logits : ndarray (rows, V), float32 or float64
    g : ndarray (rows, V), float32 or float64, finite
        Explicit noise.

    Returns
    -------
    ndarray (rows,), int64
    """
    z = _logits(logits)
    g = _checks.float_array(g, "g")
    _checks.check_shape(g, z.shape, "g", "(rows, V)")
    _checks.check_finite(g, "g", hint="")
    s = z.astype(np.float64) + g.astype(np.float64)  # (rows, V); -inf + finite = -inf
    return np.argmax(s, axis=1).astype(np.int64)

"""Argument checks of FlashRNN's recurrence, shared by every tier (arXiv 2412.07752).

:func:`check_recurrence_args` and :func:`check_backward_args` validate and normalise the
arguments of ``flashrnn_forward`` / ``flashrnn_step`` / ``flashrnn_backward``
(:mod:`refseq.recurrence.engine`); the jit and cuda kernels call them too, so all tiers accept
and reject the same inputs with the same messages. The keyword checks (:func:`check_clipval`,
:func:`check_accumulate_dtype`, :func:`check_numpy_only`) and the pointwise-helper check
(:func:`check_pointwise_args`) live here as well. Contract and cache format:
docs/hot-paths/recurrence.md.

Finiteness (``check_finite``) is tested by :func:`check_all_finite`, whose ``all_finite``
predicate a compiled tier may replace by a faster one (the jit tier passes a parallel Numba
reduction); the message on failure is always the one of :func:`refseq._checks.check_finite`.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.recurrence.cells import get_cell


def _numpy_all_finite(x):
    return bool(np.isfinite(x).all())


def check_all_finite(pairs, all_finite=None):
    """Raise ``ValueError`` (:func:`refseq._checks.check_finite`'s message, naming the argument
    and the first bad index) unless every array of ``pairs`` ``[(array, name), ...]`` is finite.

    ``all_finite(x) -> bool`` is the fast predicate (default ``np.isfinite(x).all()``); the
    slow path that builds the message only runs when it says False.
    """
    all_finite = all_finite or _numpy_all_finite
    for x, name in pairs:
        if x is not None and x.size and not all_finite(x):
            _checks.check_finite(x, name)


def _check_against(x, expected, name, form, source):
    """``ValueError`` unless ``x.shape == expected``; ``source`` says where the sizes come from."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {form} = {tuple(expected)} {source}, "
                         f"got {tuple(x.shape)}")


def check_recurrence_args(Wx, R, b, states0=None, *, cell="lstm", check_finite=True,
                          all_finite=None, step=False, source=None):
    """Validate ``flashrnn_forward`` arguments (``step=True``: ``flashrnn_step``'s).

    Returns ``(spec, Wx, R, b, states0)``: the ``CellSpec``, all arrays in one dtype (the widest
    of the inputs, float32 or float64) and ``states0`` materialised (zeros when None). Raises
    ``ValueError`` naming the argument for an unknown cell, a wrong gate count, mismatched
    head/width shapes, non-finite values (``check_finite``; ``all_finite`` as in
    :func:`check_all_finite`) or an sLSTM state with ``n < 0``; ``TypeError`` for non-float
    dtypes. With ``step=True`` the arguments are named ``Wx_t`` (B, G_w, N, D) and ``states``
    (S, B, N, D), and ``Wx`` is returned with a time axis of length 1, (B, 1, G_w, N, D).
    ``source`` (optional) replaces "(from cell ... and Wx of shape ...)" in the shape errors of
    ``R``, ``b``, ``states0``, for callers that derive ``Wx`` from other arguments.
    """
    spec = get_cell(cell)
    check_finite = _checks.check_flag(check_finite, "check_finite")
    step = _checks.check_flag(step, "step")
    x_name, s_name = ("Wx_t", "states") if step else ("Wx", "states0")
    x_form = "(B, G_w, N, D)" if step else "(B, T, G_w, N, D)"
    arrays = [_checks.float_array(x, name) for x, name in ((Wx, x_name), (R, "R"), (b, "b"))]
    if states0 is not None:
        arrays.append(_checks.float_array(states0, s_name))
    dtype = np.result_type(*arrays)  # promote: never downcast silently
    Wx, R, b = (x.astype(dtype, copy=False) for x in arrays[:3])
    if Wx.ndim != (4 if step else 5):
        raise ValueError(f"{x_name} must have shape {x_form}, got {Wx.shape}")
    if step:
        Wx = Wx[:, None]
    B, T, G_w, N, D = Wx.shape
    gates = ", ".join(spec.gate_names[g] for g in spec.w_gates)
    if G_w != spec.num_gates_w:
        raise ValueError(
            f"{x_name} has {G_w} gates (axis {1 if step else 2}) but cell {spec.name!r} needs "
            f"G_w = {spec.num_gates_w} ({gates}); {x_name} must have shape {x_form}"
        )
    # N, D (and B) are read off Wx: a mismatch names both arrays
    of = source or f"(from cell {spec.name!r} and {x_name} of shape {arrays[0].shape})"
    _check_against(R, (spec.num_gates_r, N, D, D), "R", "(G_r, N, D, D)", of)
    _check_against(b, (spec.num_gates_t, N, D), "b", "(G_t, N, D)", of)
    if states0 is None:
        states0 = np.zeros((spec.num_states, B, N, D), dtype)
    else:
        states0 = arrays[3].astype(dtype, copy=False)
        names = ", ".join(spec.state_names)
        _check_against(states0, (spec.num_states, B, N, D), s_name, f"(S, B, N, D) [{names}]",
                       of)
    if check_finite:
        check_all_finite(((Wx, x_name), (R, "R"), (b, "b"), (states0, s_name)), all_finite)
    if spec.name == "slstm" and (states0[2] < 0).any():
        raise ValueError(f"{s_name}[2] (the sLSTM normaliser n) must be >= 0")
    return spec, Wx, R, b, states0


def check_backward_args(d_states_all, d_last_states, R, b, cache, *, cell="lstm",
                        check_finite=True, all_finite=None):
    """Validate ``flashrnn_backward`` arguments against the cache.

    Returns ``(spec, d_states_all, d_last_states, R, b, states, gates)`` in the cache's dtype,
    with None gradients materialised as zeros. With ``check_finite`` (the forward's contract)
    non-finite gradients, weights or cache entries raise ``ValueError`` naming the argument.
    """
    spec = get_cell(cell)
    check_finite = _checks.check_flag(check_finite, "check_finite")
    if not isinstance(cache, dict) or not {"states", "gates"} <= set(cache):
        raise TypeError('cache must be the dict {"states", "gates"} of flashrnn_forward(..., '
                        "return_cache=True)")
    states = _checks.float_array(cache["states"], 'cache["states"]')
    dtype = states.dtype
    gates = _checks.float_array(cache["gates"], 'cache["gates"]', dtype=dtype)
    if states.ndim != 5 or states.shape[0] != spec.num_states or states.shape[2] < 1:
        raise ValueError(f'cache["states"] must have shape (S={spec.num_states}, B, T+1, N, D) '
                         f"for {spec.name!r}, got {states.shape}")
    S, B, T1, N, D = states.shape
    _checks.check_shape(gates, (T1 - 1, B, spec.num_gates_t, N, D), 'cache["gates"]',
                        "(T, B, G_t, N, D)")
    R = _checks.float_array(R, "R", dtype=dtype)
    b = _checks.float_array(b, "b", dtype=dtype)
    of = f'(from cell {spec.name!r} and cache["states"] of shape {states.shape})'
    _check_against(R, (spec.num_gates_r, N, D, D), "R", "(G_r, N, D, D)", of)
    _check_against(b, (spec.num_gates_t, N, D), "b", "(G_t, N, D)", of)
    out = []
    for x, name, shape, form in ((d_states_all, "d_states_all", (S, B, T1 - 1, N, D),
                                  "(S, B, T, N, D)"),
                                 (d_last_states, "d_last_states", (S, B, N, D), "(S, B, N, D)")):
        given = x is not None
        x = np.zeros(shape, dtype) if x is None else _checks.float_array(x, name, dtype=dtype)
        _checks.check_shape(x, shape, name, form)
        out.append((x, name if given else None))
    if check_finite:
        check_all_finite([(x, name) for x, name in out if name] + [
            (R, "R"), (b, "b"), (states, 'cache["states"]'), (gates, 'cache["gates"]')],
            all_finite)
    return spec, out[0][0], out[1][0], R, b, states, gates


def check_clipval(v, name):
    """``None`` or ``v`` as a float ``>= 0`` (``inf`` allowed); ``TypeError`` for a non-number
    (bool, str, array), ``ValueError`` for NaN or a negative value, naming ``name``."""
    return _checks.check_number(v, name, low=0, allow_inf=True, allow_none=True)


def check_accumulate_dtype(accumulate_dtype, dtype):
    """``accumulate_dtype`` (None = ``dtype``) as a NumPy dtype, float32 or float64 and not
    narrower than the inputs' ``dtype``: accumulating float64 inputs in float32 would silently
    drop precision, integers would truncate the states. ``TypeError`` / ``ValueError`` name it."""
    if accumulate_dtype is None:
        return np.dtype(dtype)
    acc = _checks.check_float_dtype(accumulate_dtype, "accumulate_dtype")
    if acc.itemsize < np.dtype(dtype).itemsize:
        raise ValueError(f"accumulate_dtype must not be narrower than the inputs' dtype "
                         f"{np.dtype(dtype)} (float32 or float64, >= the input width), "
                         f"got {acc}")
    return acc


def check_numpy_only(backend, **options):
    """Raise ``ValueError`` if any of ``options`` (name=value; None/False = unset) is set on a
    ``backend`` other than ``"numpy"``: the compiled tiers implement FlashRNN's defaults only."""
    for name, value in options.items():
        if value is not None and value is not False:
            raise ValueError(f"{name} is available on the numpy tier only, not backend="
                             f"{backend!r}; leave it unset or use backend='numpy'")


def _spell(form):
    """``"BGND"`` -> ``"(B, G_w, N, D)"``."""
    long = {"G": "G_w", "R": "G_r", "T": "G_t"}
    return "(" + ", ".join(long.get(c, c) for c in form) + ")"


def check_pointwise_args(cell, arrays, options, *, cache=None):
    """Validate the arguments of ``pointwise_forward`` or, given its ``cache`` dict,
    ``pointwise_backward`` (:mod:`refseq.recurrence.cells`).

    ``arrays`` is ``[(array, name, form), ...]`` with ``form`` a string of axis letters over
    ``B, N, D`` (read off the first array), ``S``, ``G``
    (the cell's ``G_w``), ``R`` (``G_r``) and ``T`` (``G_t``), e.g. ``"BGND"`` for ``Wx_t``.
    ``cache`` must hold ``{name: (B, N, D)}`` for the cell's ``cache_names``; its arrays follow
    the others in the result, in that order. ``options`` may only hold the cell's own flags
    (sLSTM: ``clamp_gates_le_one``; backward also ``exact_stabiliser``), as real bools. Returns
    ``(spec, [arrays in the widest dtype])``; errors name the argument and the expected form.
    """
    spec = get_cell(cell)
    backward = cache is not None
    if backward:
        if not isinstance(cache, dict) or set(cache) != set(spec.cache_names):
            raise TypeError(f"cache must be the dict of pointwise_forward for {spec.name!r}, "
                            f"with keys {list(spec.cache_names)}")
        arrays = list(arrays) + [(cache[k], f"cache[{k!r}]", "BND") for k in spec.cache_names]
    allowed = spec.options + (("exact_stabiliser",) if backward and spec.name == "slstm" else ())
    for key, value in options.items():
        if key not in allowed:
            raise TypeError(f"pointwise options of cell {spec.name!r} are {sorted(allowed)}, "
                            f"got {key!r}")
        _checks.check_flag(value, key)
    out = [_checks.float_array(x, name) for x, name, _ in arrays]
    first = out[0]
    if first.ndim != len(arrays[0][2]):
        raise ValueError(f"{arrays[0][1]} must have shape {_spell(arrays[0][2])}, "
                         f"got {first.shape}")
    sizes = {"S": spec.num_states, "G": spec.num_gates_w, "R": spec.num_gates_r,
             "T": spec.num_gates_t}
    sizes.update((c, n) for c, n in zip(arrays[0][2], first.shape, strict=True) if c in "BND")
    for x, (_, name, form) in zip(out, arrays, strict=True):
        _checks.check_shape(x, tuple(sizes[c] for c in form), name,
                            f"{_spell(form)} for {spec.name!r}")
    dtype = np.result_type(*out)
    return spec, [x.astype(dtype, copy=False) for x in out]

"""Argument checks of FlashRNN's recurrence, shared by every tier (arXiv 2412.07752).

:func:`check_recurrence_args` and :func:`check_backward_args` validate and normalise the
arguments of ``flashrnn_forward`` / ``flashrnn_backward`` (:mod:`refseq.recurrence.engine`); the jit
and cuda kernels call them too, so all tiers accept and reject the same inputs. Contract and
cache format: docs/hot-paths/recurrence.md.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.recurrence.cells import get_cell


def check_recurrence_args(Wx, R, b, states0=None, *, cell="lstm", check_finite=True):
    """Validate ``flashrnn_forward`` arguments.

    Returns ``(spec, Wx, R, b, states0)``: the ``CellSpec``, all arrays in one dtype (the widest
    of the inputs, float32 or float64) and ``states0`` materialised (zeros when None). Raises
    ``ValueError`` naming the argument for an unknown cell, a wrong gate count, mismatched
    head/width shapes, non-finite values (``check_finite``) or an sLSTM state with ``n < 0``;
    ``TypeError`` for non-float dtypes.
    """
    spec = get_cell(cell)
    arrays = [_checks.float_array(x, name) for x, name in ((Wx, "Wx"), (R, "R"), (b, "b"))]
    if states0 is not None:
        arrays.append(_checks.float_array(states0, "states0"))
    dtype = np.result_type(*arrays)  # promote: never downcast silently
    Wx, R, b = (x.astype(dtype, copy=False) for x in arrays[:3])
    if Wx.ndim != 5:
        raise ValueError(f"Wx must have shape (B, T, G_w, N, D), got {Wx.shape}")
    B, T, G_w, N, D = Wx.shape
    gates = ", ".join(spec.gate_names[g] for g in spec.w_gates)
    if G_w != spec.num_gates_w:
        raise ValueError(
            f"Wx has {G_w} gates (axis 2) but cell {spec.name!r} needs G_w = {spec.num_gates_w} "
            f"({gates}); Wx must have shape (B, T, G_w, N, D)"
        )
    _checks.check_shape(R, (spec.num_gates_r, N, D, D), "R", f"(G_r, N, D, D) for {spec.name!r}")
    _checks.check_shape(b, (spec.num_gates_t, N, D), "b", f"(G_t, N, D) for {spec.name!r}")
    if states0 is None:
        states0 = np.zeros((spec.num_states, B, N, D), dtype)
    else:
        states0 = arrays[3].astype(dtype, copy=False)
        names = ", ".join(spec.state_names)
        _checks.check_shape(states0, (spec.num_states, B, N, D), "states0",
                            f"(S, B, N, D) [{names}]")
    if check_finite:
        for x, name in ((Wx, "Wx"), (R, "R"), (b, "b"), (states0, "states0")):
            _checks.check_finite(x, name)
    if spec.name == "slstm" and (states0[2] < 0).any():
        raise ValueError("states0[2] (the sLSTM normaliser n) must be >= 0")
    return spec, Wx, R, b, states0


def check_backward_args(d_states_all, d_last_states, R, b, cache, *, cell="lstm"):
    """Validate ``flashrnn_backward`` arguments against the cache.

    Returns ``(spec, d_states_all, d_last_states, R, b, states, gates)`` in the cache's dtype,
    with None gradients materialised as zeros.
    """
    spec = get_cell(cell)
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
    _checks.check_shape(R, (spec.num_gates_r, N, D, D), "R", f"(G_r, N, D, D) for {spec.name!r}")
    _checks.check_shape(b, (spec.num_gates_t, N, D), "b", f"(G_t, N, D) for {spec.name!r}")
    out = []
    for x, name, shape, form in ((d_states_all, "d_states_all", (S, B, T1 - 1, N, D),
                                  "(S, B, T, N, D)"),
                                 (d_last_states, "d_last_states", (S, B, N, D), "(S, B, N, D)")):
        x = np.zeros(shape, dtype) if x is None else _checks.float_array(x, name, dtype=dtype)
        _checks.check_shape(x, shape, name, form)
        out.append(x)
    return spec, out[0], out[1], R, b, states, gates


def _check_clipval(v, name):
    if v is None:
        return None
    if not np.isscalar(v) or np.isnan(v) or v < 0:
        raise ValueError(f"{name} must be None or a number >= 0 (may be inf), got {v!r}")
    return float(v)

"""The shared cell math (refseq/jit/recurrence/cells.py) against the NumPy reference cells.

``cells.build(act)`` is the one scalar forward and backward per cell that the jit kernels
(activations of :mod:`refseq.jit.recurrence.scalar`) and the cuda kernels (activations of
:mod:`refseq.cuda.recurrence.scalar`) both call. Here each built function is run element by
element on 64 random units and compared with :mod:`refseq.recurrence.cells` under the derived
tolerance (docs/design.md, "The tolerance rule"): the float64 reference is the oracle and the
reference run in float32 on the rounded inputs sets the bound. Pre-activations stay in [-3, 3]
so no gate saturates (saturation and its rounding are the kernel tests' business).
"""

from __future__ import annotations

import numpy as np
import pytest

from refseq.cuda.recurrence import scalar as cuda_scalar
from refseq.jit.recurrence import cells, scalar
from refseq.recurrence.cells import CELLS
from refseq.testing import assert_close

UNITS = 64
ACTIVATIONS = {"jit": scalar, "cuda": cuda_scalar}
DTYPES = (np.float32, np.float64)


def _elementwise(fn, dtype, *args):
    """``fn`` (a compiled scalar function) on every unit; each output as a ``dtype`` array.

    Numba boxes a float32 result as a Python float; that it is exactly a float32 number shows
    the function computed in ``dtype`` (a float64 intermediate would leave other digits)."""
    outs = [fn(*(a[k] if isinstance(a, np.ndarray) else a for a in args)) for k in range(UNITS)]
    outs = [o if isinstance(o, tuple) else (o,) for o in outs]
    arrays = [np.array([o[j] for o in outs], np.float64) for j in range(len(outs[0]))]
    for j, a in enumerate(arrays):
        assert np.array_equal(a.astype(dtype).astype(np.float64), a), f"output {j} not {dtype}"
    return tuple(a.astype(dtype) for a in arrays)


def _inputs(cell, seed):
    """Pre-activations (1, G_t, 1, UNITS), states (S, 1, 1, UNITS) and cotangents, float64."""
    spec = CELLS[cell]
    rng = np.random.default_rng(seed)
    pre = rng.uniform(-3, 3, (1, spec.num_gates_t, 1, UNITS))
    states = rng.standard_normal((spec.num_states, 1, 1, UNITS))
    if cell == "slstm":
        states[2] = rng.uniform(0.5, 3.0, states[2].shape)  # n > 0, both sides of n = 1
    d_states = rng.standard_normal((spec.num_states, 1, 1, UNITS))
    return pre, states, d_states


def _reference(cell, pre, states, d_states, dtype):
    """Reference forward and backward at ``dtype``: (new states, cache, d_prev, d_gates)."""
    spec = CELLS[cell]
    pre, states, d_states = (x.astype(dtype) for x in (pre, states, d_states))
    new, cache = spec.forward(pre, states)
    d_prev, d_gates = spec.backward(d_states, states, new, cache)
    return new, cache, d_prev, d_gates


def _kernel(fns, cell, pre, states, d_states, dtype):
    """The built scalar functions on the same inputs, arranged as the reference's outputs."""
    p = [pre[0, g, 0].astype(dtype) for g in range(pre.shape[1])]
    s = [states[k, 0, 0].astype(dtype) for k in range(states.shape[0])]
    d = [d_states[k, 0, 0].astype(dtype) for k in range(d_states.shape[0])]
    clipval, no = dtype(0), False
    if cell in ("elman", "elman_relu"):
        relu = cell == "elman_relu"
        (h,) = _elementwise(fns.elman_fwd, dtype, p[0], relu, clipval, no)
        (da,) = _elementwise(fns.elman_bwd, dtype, h, d[0], relu)
        return (h,), (da,)
    if cell == "lstm":
        h, c, i, f, z, o = _elementwise(fns.lstm_fwd, dtype, *p, s[1], clipval, no)
        di, df, dz, do, dc_prev = _elementwise(fns.lstm_bwd, dtype, i, f, z, o, c, s[1], d[0],
                                               d[1])
        return (h, c, i, f, z, o), (di, df, dz, do, dc_prev)
    if cell == "gru":
        h, r, z = _elementwise(fns.gru_fwd, dtype, *p, s[0], clipval, no)
        dg, dr, dz, dn, dh_prev = _elementwise(fns.gru_bwd, dtype, p[0], r, z, p[3], s[0], d[0])
        return (h, r, z), (dg, dr, dz, dn, dh_prev)
    h, c, n, m, z, o = _elementwise(fns.slstm_fwd, dtype, *p, s[1], s[2], s[3], clipval, no, no)
    out = _elementwise(fns.slstm_bwd, dtype, p[0], p[1], z, o, s[1], s[2], s[3], c, n, m, d[0],
                       d[1], d[2], no)
    return (h, c, n, m, z, o), out


def _arranged(cell, new, cache, d_prev, d_gates):
    """The reference's outputs in the order :func:`_kernel` returns them."""
    u = lambda x: x[0, 0] if x.ndim == 3 else x[0, :, 0]  # noqa: E731  (B = N = 1)
    st = [u(new[k]) for k in range(new.shape[0])]
    dg = [d_gates[0, g, 0] for g in range(d_gates.shape[1])]
    if cell in ("elman", "elman_relu"):
        return (st[0],), (dg[0],)
    if cell == "lstm":
        return (*st, *(u(cache[k]) for k in "ifzo")), (*dg, u(d_prev[1]))
    if cell == "gru":
        return (st[0], u(cache["r"]), u(cache["z"])), (*dg, u(d_prev[0]))
    return (*st, u(cache["z"]), u(cache["o"])), (*dg, u(d_prev[1]), u(d_prev[2]))


@pytest.mark.parametrize("tier", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_built_cell_math_matches_the_reference_cells(cell, dtype, tier):
    fns = cells.build(ACTIVATIONS[tier])
    pre, states, d_states = _inputs(cell, seed=len(cell))
    fwd, bwd = _kernel(fns, cell, pre, states, d_states, dtype)
    want_fwd, want_bwd = _arranged(cell, *_reference(cell, pre, states, d_states, np.float64))
    ref_fwd, ref_bwd = _arranged(cell, *_reference(cell, pre, states, d_states, np.float32))
    assert len(fwd) == len(want_fwd) and len(bwd) == len(want_bwd)
    for kind, outs, wants, refs in (("forward", fwd, want_fwd, ref_fwd),
                                    ("backward", bwd, want_bwd, ref_bwd)):
        for j, (a, w, r) in enumerate(zip(outs, wants, refs, strict=True)):
            assert a.dtype == dtype
            assert_close(a, w, r, kind=kind, err_msg=f"{cell} {kind} output {j}")


def test_cell_ids_are_one_table():
    """Both tiers dispatch on the same ids: the cuda package re-exports the jit table."""
    import refseq.cuda.recurrence as cuda_recurrence

    assert cuda_recurrence.CELL_IDS is cells.CELL_IDS
    assert sorted(cells.CELL_IDS) == sorted(CELLS)
    assert len(set(cells.CELL_IDS.values())) == len(CELLS)

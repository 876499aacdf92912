"""The jit tier of the RNN-recurrence hot path (refseq.jit.recurrence) against the reference.

The registry harness (tests/test_registry.py) checks ``flashrnn_forward`` and
``flashrnn_backward`` of every cell with default options; this file keeps what it cannot
express: the options, carried state and the backward on the kernel's own cache
(:class:`refseq.testing.recurrence.Case`, whose ``check`` builds the derived tolerance of
docs/design.md), the execution plans, chunking, determinism, edge shapes and errors.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given

import refseq.jit.recurrence as J  # noqa: E402  (numba is a runtime dependency)
from refseq import recurrence as F
from refseq.jit.recurrence import planner  # noqa: E402
from refseq.recurrence import CELLS
from refseq.testing import assert_close
from refseq.testing.recurrence import CELL_NAMES, cases, make_case

DTYPES = (np.float32, np.float64)


def _forced_plan(allowed, threads, real=J.plan):
    """:func:`refseq.jit.recurrence.plan` as if there were ``threads`` threads, choosing only
    among ``allowed`` plans (the kernels call it with ``modes`` narrowed for the backward)."""
    return lambda B, N, D, G_r, modes=("units", "heads", "gemm"): real(
        B, N, D, G_r, threads=threads, modes=tuple(m for m in modes if m in allowed))


@pytest.fixture(params=["heads", "units", "gemm"])
def plan_mode(request, monkeypatch):
    """Force one plan (:func:`refseq.jit.recurrence.plan`) as if there were 4 threads:
    ``heads`` = prange over (head, batch tile) jobs, ``units`` = a prange per step over (head,
    chunk of hidden units) jobs (forward only; the backward then takes ``gemm``), ``gemm`` = one
    GEMM per step with the whole batch."""
    monkeypatch.setattr(J, "UNITS_MIN_MACS", 0)
    monkeypatch.setattr(J, "plan", _forced_plan((request.param, "gemm"), threads=4))
    return request.param


def test_plan_choices():
    """Many heads run as whole-sequence jobs; one big head splits its units (its own register
    tile, no BLAS, so pinning does not matter); tiny steps stay serial; without pinning, big
    per-step GEMMs of the backward are left to BLAS; the backward never takes the forward-only
    plan."""
    assert planner.plan(B=16, N=4, D=8, G_r=4, threads=2)[0] == "heads"
    assert planner.plan(B=16, N=4, D=256, G_r=4, threads=2, pinnable=True)[0] == "heads"
    mode, tiles = planner.plan(B=16, N=1, D=256, G_r=4, threads=2, pinnable=True)
    assert mode == "units" and tiles.tolist() == [[0, 128], [128, 256]]
    mode, tiles = planner.plan(B=16, N=1, D=256, G_r=4, threads=2, modes=("heads", "gemm"),
                         pinnable=True)
    assert mode == "heads" and tiles.tolist() == [[0, 8], [8, 16]]
    assert planner.plan(B=16, N=1, D=256, G_r=4, threads=2, pinnable=False)[0] == "units"
    assert planner.plan(B=16, N=1, D=256, G_r=4, threads=2, modes=("heads", "gemm"),
                  pinnable=False)[0] == "gemm"
    assert planner.plan(B=1, N=1, D=64, G_r=4, threads=2, pinnable=True)[0] == "gemm"  # tiny steps
    assert planner.plan(B=16, N=1, D=256, G_r=4, threads=1, pinnable=True)[0] == "gemm"


# ---------------------------------------------------------------------------------------------
# Against the reference.


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(case=cases())
def test_kernels_match_reference(case, dtype):
    case.check(J, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(case=cases())
def test_units_plan_matches_reference(case, dtype):
    """The ``"units"`` plan (register tile, padded panels and batch) on hypothesis shapes: the
    size rule would send these tiny problems to the other plans. With 8 threads every drawn
    head count (N <= 4) is below the thread count, so the forward always takes it."""
    with mock.patch.object(J, "UNITS_MIN_MACS", 0), mock.patch.object(
            J, "plan", _forced_plan(("units", "gemm"), threads=8)):
        B, _, _, N, D = case.Wx.shape
        assert J.plan(B, N, D, CELLS[case.cell].num_gates_r)[0] == "units"
        case.check(J, dtype)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_both_plans_match_reference(plan_mode, cell):
    rng = np.random.default_rng(CELL_NAMES.index(cell))
    case = make_case(rng, cell, B=5, T=9, N=3, D=5, gclip=0.5)
    for dtype in DTYPES:
        case.check(J, dtype)


def test_long_sequence_float64_matches_reference():
    """LSTM at (B=1, T=2048, N=1, D=8) agrees to atol 1e-12 (docs/hot-paths/recurrence-kernels.md,
    "Tests"; the shape ``refseq bench recurrence`` times)."""
    rng = np.random.default_rng(0)
    case = make_case(rng, "lstm", B=1, T=2048, N=1, D=8, carried=False)
    Wx, R, b, *_ = case.cast(np.float64)
    for x, y in zip(J.flashrnn_forward(Wx, R, b), F.flashrnn_forward(Wx, R, b), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Contract: chunking, determinism, edge shapes, errors.


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_chunked_calls_compose(cell):
    """Two calls with carried ``last_states`` equal one call bit for bit."""
    rng = np.random.default_rng(1)
    case = make_case(rng, cell, B=2, T=11, N=2, D=3)
    Wx, R, b, s0, *_ = case.cast(np.float32)
    full, last = J.flashrnn_forward(Wx, R, b, s0, cell=cell)
    a, mid = J.flashrnn_forward(Wx[:, :4], R, b, s0, cell=cell)
    c, end = J.flashrnn_forward(Wx[:, 4:], R, b, mid, cell=cell)
    np.testing.assert_array_equal(np.concatenate([a, c], axis=2), full)
    np.testing.assert_array_equal(end, last)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_bitwise_deterministic(plan_mode, cell):
    rng = np.random.default_rng(2)
    case = make_case(rng, cell, B=6, T=13, N=3, D=7, gclip=1.0)
    runs = [case.run(J, np.float32) for _ in range(2)]
    for x, y in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1], strict=True):
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32))


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_empty_sequence(cell):
    spec = CELLS[cell]
    rng = np.random.default_rng(3)
    case = make_case(rng, cell, B=2, T=0, N=2, D=3)
    Wx, R, b, s0, d_all, d_last = case.cast(np.float64)
    states_all, last, cache = J.flashrnn_forward(Wx, R, b, s0, cell=cell, return_cache=True)
    assert states_all.shape == (spec.num_states, 2, 0, 2, 3)
    np.testing.assert_array_equal(last, s0)
    d0, dWx, dR, db = J.flashrnn_backward(d_all, d_last, R, b, cache, cell=cell)
    np.testing.assert_array_equal(d0, np.zeros_like(s0) if d_last is None else d_last)
    assert dWx.shape == Wx.shape and not dR.any() and not db.any()


def test_default_state_and_no_cache():
    rng = np.random.default_rng(4)
    case = make_case(rng, "slstm", B=2, T=5, N=1, D=4, carried=False)
    Wx, R, b, *_ = case.cast(np.float32)
    out = J.flashrnn_forward(Wx, R, b, cell="slstm")
    assert len(out) == 2
    assert_close(out, F.flashrnn_forward(*case.cast(np.float64)[:3], cell="slstm"),
                 F.flashrnn_forward(Wx, R, b, cell="slstm"))


def test_bad_input_raises():
    Wx, R, b = np.ones((1, 2, 4, 1, 3)), np.ones((4, 1, 3, 3)), np.ones((4, 1, 3))
    with pytest.raises(ValueError, match="gates"):
        J.flashrnn_forward(Wx[:, :, :3], R, b, cell="lstm")
    with pytest.raises(ValueError, match="cell"):
        J.flashrnn_forward(Wx, R, b, cell="transformer")
    with pytest.raises(TypeError, match="dtype"):
        J.flashrnn_forward(Wx.astype(int), R, b)
    bad = Wx.copy()
    bad[0, 1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        J.flashrnn_forward(bad, R, b)
    with pytest.raises(ValueError, match="forward_clipval"):
        J.flashrnn_forward(Wx, R, b, forward_clipval=-1.0)
    with pytest.raises(ValueError, match="clamp_gates_le_one"):
        J.flashrnn_forward(Wx, R, b, clamp_gates_le_one=True)
    with pytest.raises(ValueError, match="numpy"):
        J.flashrnn_forward(Wx, R, b, emulate_bfloat16=True)
    _, _, cache = J.flashrnn_forward(Wx, R, b, return_cache=True)
    with pytest.raises(ValueError, match="gradient_recurrent_clipval"):
        J.flashrnn_backward(None, None, R, b, cache, gradient_recurrent_clipval=-2.0)
    with pytest.raises(TypeError, match="cache"):
        J.flashrnn_backward(None, None, R, b, {"states": cache["states"]})
    with pytest.raises(ValueError, match="shape"):
        J.flashrnn_backward(np.ones((2, 1, 3, 1, 3)), None, R, b, cache)


def test_registry_dispatch():
    """``backend="jit"`` of the reference functions reaches this tier (once registered)."""
    from refseq.registry import REGISTRY

    if "flashrnn_forward" not in REGISTRY:
        pytest.skip("flashrnn_forward is not registered yet")
    rng = np.random.default_rng(5)
    case = make_case(rng, "gru", B=2, T=4, N=2, D=3)
    Wx, R, b, s0, d_all, d_last = case.cast(np.float64)
    ref = F.flashrnn_forward(Wx, R, b, s0, cell="gru", return_cache=True)
    got = F.flashrnn_forward(Wx, R, b, s0, cell="gru", return_cache=True, backend="jit")
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-14)
    g_ref = F.flashrnn_backward(d_all, d_last, R, b, ref[2], cell="gru")
    g = F.flashrnn_backward(d_all, d_last, R, b, ref[2], cell="gru", backend="jit")
    for x, y in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_project_inputs_adds_the_bias_per_gate_head_and_unit(dtype):
    """``Wx = einsum(W, x) + bias[g, n, d]`` in both tiers; a bias that is ignored, added once
    per batch or broadcast along the wrong axis fails (every entry of it differs)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 3)).astype(dtype)
    W = rng.standard_normal((4, 2, 3, 3)).astype(dtype)
    bias = (10.0 + rng.standard_normal((4, 2, 3))).astype(dtype)
    want = np.einsum("gndi,bti->btgnd", W.astype(np.float64), x.astype(np.float64)) + bias
    tol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    for project in (F.project_inputs, J.project_inputs):
        got = project(x, W, bias)
        assert got.shape == (2, 5, 4, 2, 3) and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(got - project(x, W), np.broadcast_to(bias, got.shape),
                                   rtol=tol, atol=tol)
        with pytest.raises(ValueError, match="bias"):
            project(x, W, bias[:, :, :2])


def test_project_inputs_backward_matches_einsum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    W = rng.standard_normal((4, 2, 3, 3))
    dWx = rng.standard_normal((2, 5, 4, 2, 3))
    for backward in (F.project_inputs_backward, J.project_inputs_backward):
        dx, dW = backward(dWx, x, W)
        np.testing.assert_allclose(dx, np.einsum("btgnd,gndi->bti", dWx, W), rtol=1e-12)
        np.testing.assert_allclose(dW, np.einsum("btgnd,bti->gndi", dWx, x), rtol=1e-12)
    np.testing.assert_allclose(J.project_inputs(x, W), np.einsum("bti,gndi->btgnd", x, W),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="dWx must have shape"):
        J.project_inputs_backward(dWx[:, :4], x, W)

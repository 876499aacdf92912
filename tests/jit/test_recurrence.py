"""The jit tier of the RNN-recurrence hot path (refseq.jit.recurrence) against the reference.

Oracle and tolerance (style.md #9): ``desired`` is the float64 reference (refseq.recurrence.engine) on
the float64 inputs; ``ref32`` is the same reference run in float32 on the float32-cast inputs; a
kernel result of either dtype passes ``assert_close(actual, desired, ref32)`` (factor 2 forward,
4 backward). The backward under test consumes the kernel's own forward cache, so a forward error
that the tolerance allows propagates exactly as it would in use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refseq.jit.recurrence as J  # noqa: E402  (numba is a runtime dependency)
from refseq.cuda.recurrence import mirror as recurrence_blocked
from refseq.recurrence import CELLS
from refseq.recurrence import engine as F
from refseq.testing import assert_close, perturbed_runs

CELL_NAMES = tuple(CELLS)
DTYPES = (np.float32, np.float64)


class MIRROR:
    """The reference's cells with the recurrent sums in the GPU decomposition's order and with
    fused multiply-adds (BLAS and GPUs fuse them): a float32 formulation of the reference whose
    rounding differs from ``einsum``'s."""

    @staticmethod
    def flashrnn_forward(*args, **kw):
        return recurrence_blocked.flashrnn_forward(*args, fma=True, **kw)

    @staticmethod
    def flashrnn_backward(*args, **kw):
        return recurrence_blocked.backward_blocked(*args, fma=True, **kw)


@dataclass
class Case:
    """float64 inputs of one forward + backward call (cast per tested dtype)."""

    cell: str
    Wx: np.ndarray
    R: np.ndarray
    b: np.ndarray
    states0: np.ndarray | None
    d_all: np.ndarray
    d_last: np.ndarray | None
    fclip: float | None = None
    cut: bool = False
    gclip: float | None = None
    clamp: bool = False

    def cast(self, dtype):
        c = lambda x: None if x is None else x.astype(dtype)  # noqa: E731
        return c(self.Wx), c(self.R), c(self.b), c(self.states0), c(self.d_all), c(self.d_last)

    def fw_kw(self):
        kw = {"cell": self.cell, "forward_clipval": self.fclip, "return_cache": True}
        return kw | ({"clamp_gates_le_one": True} if self.clamp else {})

    def bw_kw(self):
        kw = {"cell": self.cell, "gradient_recurrent_cut": self.cut,
              "gradient_recurrent_clipval": self.gclip}
        return kw | ({"clamp_gates_le_one": True} if self.clamp else {})

    def run(self, module, dtype, backward=None):
        """``(forward outputs, backward outputs)`` of ``module`` on the ``dtype`` inputs
        (``backward``: another module's backward on this forward's cache)."""
        return self.run_on(module, *self.cast(dtype), backward=backward)

    def run_on(self, module, Wx, R, b, s0, d_all, d_last, backward=None):
        states_all, last, cache = module.flashrnn_forward(Wx, R, b, s0, **self.fw_kw())
        grads = (backward or module).flashrnn_backward(d_all, d_last, R, b, cache, **self.bw_kw())
        return (states_all, last, cache["states"], cache["gates"]), grads

    def check(self, module, dtype):
        """Each result leaf against the float64 reference, with the bound set by the largest
        error among the reference's float32 runs (:func:`_standin`):

        * the reference itself and its fused, reassociated twin (:class:`MIRROR`), since the
          kernels' BLAS sums are fused and reassociated;
        * for the backward also both run on the *kernel's* forward cache (the inputs the
          kernel's backward received; tiny sums such as ``db`` over two steps can be lucky in
          one run, and a state one ulp away from the reference's moves a saturated
          ``1 - h**2`` by thousands of its ulps);
        * for a float64 result, the float64 error of the reassociated twin in float32 units
          (float64 BLAS differs from ``einsum`` by a few ulps even where float32 is exact);
        * six backward-error samples (:func:`refseq.testing.perturbed_runs`): the float64
          reference on the tested dtype's inputs, each perturbed by one ``eps_f32``.
        """
        desired, ref32 = self.run(F, np.float64), self.run(F, np.float32)
        fw, bw = self.run(module, dtype)
        for x in fw + bw:
            assert x.dtype == dtype
        _check_aliases(*fw, self.cast(dtype)[3])
        runs32 = [ref32, self.run(MIRROR, np.float32)]
        bw32 = [r[1] for r in runs32]
        if dtype == np.float32:
            bw32 += [self.run(module, dtype, backward=F)[1],
                     self.run(module, dtype, backward=MIRROR)[1]]
        runs64 = [self.run(MIRROR, np.float64)] if dtype == np.float64 else []
        bw64 = [r[1] for r in runs64]
        if dtype == np.float64:
            bw64 += [self.run(module, dtype, backward=F)[1],
                     self.run(module, dtype, backward=MIRROR)[1]]
        # backward-error samples (refseq.testing.perturbed_runs): a float32 run of a tiny
        # problem can be luckily exact where the kernel's reassociated sums are not; inputs
        # perturbed by eps_f32 give errors in float32 units for either result dtype
        perturbed = perturbed_runs(functools.partial(self.run_on, F), *self.cast(dtype), samples=6)
        runs32 += perturbed
        bw32 += [r[1] for r in perturbed]
        # last_states and cache["states"] repeat states_all (checked exactly above); compare
        # every time step at once, so a final state of one or two entries is measured against
        # the reference's error on the same quantity over all steps
        assert_close(fw[::3], desired[0][::3],
                     _standin(desired[0][::3], [r[0][::3] for r in runs32],
                              [r[0][::3] for r in runs64]),
                     kind="forward", err_msg=f"{self.cell} forward")
        assert_close(bw, desired[1], _standin(desired[1], bw32, bw64),
                     kind="backward", err_msg=f"{self.cell} backward")
        return fw, bw


EPS_RATIO = float(np.finfo(np.float32).eps / np.finfo(np.float64).eps)


def _error(x, d):
    both = np.isfinite(x) & np.isfinite(d)
    return float(np.abs(x[both] - d[both]).max(initial=0.0))


def _standin(desired, runs32, runs64=()):
    """Per leaf, ``desired + err`` where ``err`` is the largest error of the float32 runs and
    of the float64 runs in float32 units: a reference "run" whose error against ``desired`` is
    that estimate (as in tests/cuda/test_scan.py)."""
    out = []
    for i, d in enumerate(desired):
        err = max([_error(r[i], d) for r in runs32]
                  + [EPS_RATIO * _error(r[i], d) for r in runs64])
        out.append(np.where(np.isfinite(d), d + err, d))
    return tuple(out)  # one run (a list would mean several)


def _check_aliases(states_all, last, states, gates, states0):
    """``last == states_all[:, :, -1]`` (``states0`` when T = 0) and ``states`` = ``states0``
    followed by ``states_all``, exactly."""
    T = states_all.shape[2]
    np.testing.assert_array_equal(states[:, :, 1:], states_all)
    if states0 is not None:
        np.testing.assert_array_equal(states[:, :, 0], states0)
    else:
        assert not states[:, :, 0].any()
    np.testing.assert_array_equal(last, states[:, :, T])


def make_case(rng, cell, B, T, N, D, *, scale=1.0, carried=True, **flags):
    """Official-test initialisation: Wx, b ~ N(0, scale²), R ~ N(0, 1)/sqrt(D) (non-symmetric)."""
    spec = CELLS[cell]
    Wx = scale * rng.standard_normal((B, T, spec.num_gates_w, N, D))
    R = rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)
    b = scale * rng.standard_normal((spec.num_gates_t, N, D))
    s0 = None
    if carried:  # a state reached by the reference from a random earlier chunk
        pre = scale * rng.standard_normal((B, 3, spec.num_gates_w, N, D))
        s0 = F.flashrnn_forward(pre, R, b, cell=cell)[1]
    d_all = rng.standard_normal((spec.num_states, B, T, N, D))
    d_last = rng.standard_normal((spec.num_states, B, N, D)) if rng.random() < 0.5 else None
    return Case(cell, Wx, R, b, s0, d_all, d_last, **flags)


@st.composite
def cases(draw, B=(1, 3), T=(0, 24), N=(1, 4), D=(1, 8)):
    """Any cell and flags; T includes 0, 1 and lengths around 16; D includes odd widths."""
    cell = draw(st.sampled_from(CELL_NAMES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B, N = draw(st.integers(*B)), draw(st.integers(*N))
    T = draw(st.one_of(st.sampled_from([t for t in (0, 1, 2, 7, 16, 17) if t <= T[1]]),
                       st.integers(*T)))
    D = draw(st.one_of(st.sampled_from([d for d in (1, 3, 5, 7) if d <= D[1]]),
                       st.integers(*D)))
    flags = {
        "fclip": draw(st.sampled_from([None, None, 0.5, np.inf])),
        "cut": draw(st.booleans()),
        "gclip": draw(st.sampled_from([None, None, 0.0, 0.3, np.inf])),
        "clamp": cell == "slstm" and draw(st.booleans()),
    }
    return make_case(rng, cell, B, T, N, D, scale=draw(st.sampled_from([0.1, 1.0, 3.0])),
                     carried=draw(st.booleans()), **flags)


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
    assert J.plan(B=16, N=4, D=8, G_r=4, threads=2)[0] == "heads"
    assert J.plan(B=16, N=4, D=256, G_r=4, threads=2, pinnable=True)[0] == "heads"
    mode, tiles = J.plan(B=16, N=1, D=256, G_r=4, threads=2, pinnable=True)
    assert mode == "units" and tiles.tolist() == [[0, 128], [128, 256]]
    mode, tiles = J.plan(B=16, N=1, D=256, G_r=4, threads=2, modes=("heads", "gemm"),
                         pinnable=True)
    assert mode == "heads" and tiles.tolist() == [[0, 8], [8, 16]]
    assert J.plan(B=16, N=1, D=256, G_r=4, threads=2, pinnable=False)[0] == "units"
    assert J.plan(B=16, N=1, D=256, G_r=4, threads=2, modes=("heads", "gemm"),
                  pinnable=False)[0] == "gemm"
    assert J.plan(B=1, N=1, D=64, G_r=4, threads=2, pinnable=True)[0] == "gemm"  # tiny steps
    assert J.plan(B=16, N=1, D=256, G_r=4, threads=1, pinnable=True)[0] == "gemm"


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
    """Spec "Small-scale result" 2: LSTM at (B=1, T=2048, N=1, D=8) agrees to atol 1e-12."""
    rng = np.random.default_rng(0)
    case = make_case(rng, "lstm", B=1, T=2048, N=1, D=8, carried=False)
    Wx, R, b, *_ = case.cast(np.float64)
    for x, y in zip(J.flashrnn_forward(Wx, R, b), F.flashrnn_forward(Wx, R, b), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Contract: chunking, determinism, edge shapes, errors.


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_chunked_calls_compose(cell):
    """Two calls with carried ``last_states`` equal one call bit for bit (style.md #6)."""
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


def test_project_inputs_backward_matches_einsum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3))
    W = rng.standard_normal((4, 2, 3, 3))
    dWx = rng.standard_normal((2, 5, 4, 2, 3))
    dx, dW = J.project_inputs_backward(dWx, x, W)
    np.testing.assert_allclose(dx, np.einsum("btgnd,gndi->bti", dWx, W), rtol=1e-12)
    np.testing.assert_allclose(dW, np.einsum("btgnd,bti->gndi", dWx, x), rtol=1e-12)
    np.testing.assert_allclose(J.project_inputs(x, W), np.einsum("bti,gndi->btgnd", x, W),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="dWx must have shape"):
        J.project_inputs_backward(dWx[:, :4], x, W)

"""The cuda tier of the RNN-recurrence hot path (refseq.cuda.recurrence) and its NumPy mirror
(refseq.cuda.recurrence.mirror).

The mirror runs everywhere on ordinary shapes. The kernels run on a GPU when one is visible and
under the Numba CUDA simulator otherwise (tests/conftest.py); the simulator interprets every
thread in Python, so kernel tests use tiny shapes, few threads (2-5) and batch tiles of 1-2 rows
that still cross tile boundaries, and are skipped with the reason when the tier is unavailable.

Oracle and tolerance: :meth:`refseq.testing.recurrence.Case.check` (the derived tolerance of
docs/design.md): the float64 reference on float64 inputs is ``desired``; the reference's float32
runs and its backward-error and rounding samples set the bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq import recurrence as F
from refseq.cuda import availability
from refseq.cuda.recurrence import mirror as M
from refseq.recurrence import CELLS
from refseq.testing.profiles import cuda_settings
from refseq.testing.recurrence import cases, make_case  # the shared oracle (Case.check)

CELL_NAMES = tuple(CELLS)
DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module")
def cr():
    """The kernel module, or a clean skip naming why the cuda tier cannot run here."""
    ok, why = availability()
    if not ok:
        pytest.skip(f"cuda tier unavailable: {why}")
    import refseq.cuda.recurrence as module

    return module


pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

class Launch:
    """A tier module with launch keywords bound (threads, batch tile, R placement)."""

    def __init__(self, fw, bw, **launch):
        self.fw, self.bw, self.launch = fw, bw, launch

    def flashrnn_forward(self, *args, **kw):
        return self.fw(*args, **kw, **self.launch)

    def flashrnn_backward(self, *args, **kw):
        return self.bw(*args, **kw, **self.launch)


# ---------------------------------------------------------------------------------------------
# The NumPy mirror of the decomposition, on ordinary shapes (never skipped).


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(case=cases(B=(1, 4)), batch_tile=st.sampled_from([1, 2, 3, 16]),
       fma=st.booleans())
def test_mirror_matches_reference(case, dtype, batch_tile, fma):
    case.check(Launch(M.flashrnn_forward, M.backward_blocked, batch_tile=batch_tile, fma=fma),
               dtype)


def test_mirror_rejects_bad_tile():
    with pytest.raises(ValueError, match="batch_tile"):
        M.forward_blocked(np.ones((1, 2, 1, 1, 2)), np.ones((1, 1, 2, 2)), np.ones((1, 1, 2)),
                          cell="elman", batch_tile=0)


# ---------------------------------------------------------------------------------------------
# Kernels against the reference (tiny shapes; cuda_settings() is the simulator's budget).

TINY = dict(B=(1, 3), T=(0, 5), N=(1, 2), D=(1, 3))
launches = st.fixed_dictionaries({"threads": st.sampled_from([2, 3, 5]),
                                  "batch_tile": st.sampled_from([1, 2]),
                                  "r_in_shared": st.sampled_from([None, False])})


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@settings(cuda_settings())
@given(case=cases(**TINY), launch=launches)
def test_kernels_match_reference(cr, dtype, case, launch):
    case.check(Launch(cr.flashrnn_forward, cr.flashrnn_backward, **launch), dtype)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_every_cell_and_flag(cr, cell):
    """Each cell once with carried state, forward clip and gradient clip, R in shared memory."""
    rng = np.random.default_rng(CELL_NAMES.index(cell))
    case = make_case(rng, cell, B=3, T=4, N=2, D=3, fclip=0.6, gclip=0.2,
                     clamp=cell == "slstm")
    case.check(Launch(cr.flashrnn_forward, cr.flashrnn_backward, threads=4, batch_tile=2),
               np.float32)


def test_bitwise_deterministic(cr):
    rng = np.random.default_rng(7)
    case = make_case(rng, "lstm", B=3, T=5, N=2, D=3, gclip=1.0)
    tier = Launch(cr.flashrnn_forward, cr.flashrnn_backward, threads=3, batch_tile=2)
    a, b = (case.run(tier, np.float32) for _ in range(2))
    for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True):
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32))


def test_empty_sequence_and_device_arrays(cr):
    from refseq.cuda._device import cuda

    rng = np.random.default_rng(8)
    case = make_case(rng, "gru", B=2, T=0, N=1, D=2)
    Wx, R, b, s0, d_all, d_last = case.cast(np.float64)
    states_all, last, cache = cr.flashrnn_forward(Wx, R, b, s0, cell="gru", return_cache=True)
    assert states_all.shape == (1, 2, 0, 1, 2)
    np.testing.assert_array_equal(last, s0)
    d0, dWx, dR, db = cr.flashrnn_backward(d_all, d_last, R, b, cache, cell="gru")
    np.testing.assert_array_equal(d0, np.zeros_like(s0) if d_last is None else d_last)
    assert dWx.shape == Wx.shape and not dR.any() and not db.any()
    case = make_case(rng, "elman", B=2, T=3, N=1, D=2)
    Wx, R, b, s0, *_ = case.cast(np.float64)
    on_device = cr.flashrnn_forward(cuda.to_device(Wx), cuda.to_device(R), cuda.to_device(b),
                                    cuda.to_device(s0), cell="elman", threads=2)
    ref = F.flashrnn_forward(Wx, R, b, s0, cell="elman")
    for x, y in zip(on_device, ref, strict=True):
        assert isinstance(x, np.ndarray)
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)


def test_bad_input_raises(cr):
    Wx, R, b = np.ones((1, 2, 4, 1, 3)), np.ones((4, 1, 3, 3)), np.ones((4, 1, 3))
    with pytest.raises(ValueError, match="gates"):
        cr.flashrnn_forward(Wx[:, :, :3], R, b)
    with pytest.raises(ValueError, match="threads"):
        cr.flashrnn_forward(Wx, R, b, threads=2048)
    with pytest.raises(ValueError, match="batch_tile"):
        cr.flashrnn_forward(Wx, R, b, batch_tile=0)
    with pytest.raises(ValueError, match="clamp_gates_le_one"):
        cr.flashrnn_forward(Wx, R, b, clamp_gates_le_one=True)
    _, _, cache = cr.flashrnn_forward(Wx, R, b, return_cache=True, threads=4)
    with pytest.raises(ValueError, match="gradient_recurrent_clipval"):
        cr.flashrnn_backward(None, None, R, b, cache, gradient_recurrent_clipval=-1.0)


def test_r_placement_rule(cr):
    assert cr.r_fits_shared(4, 32, 16, 4)  # 4*32*32 + 16*4*32 floats = 24 KiB
    assert not cr.r_fits_shared(4, 128, 16, 4)  # R alone is 256 KiB: global memory


def test_kernel_modules_build_what_the_public_call_runs(cr, monkeypatch):
    """``refseq.cuda.recurrence.forward.build`` and ``.backward.build``, by name: a fresh kernel
    table builds each once per dtype, and the launch with them passes the reference check."""
    from refseq.cuda.recurrence import backward as KB
    from refseq.cuda.recurrence import forward as KF

    built = []
    for module in (KF, KB):
        real = module.build
        monkeypatch.setattr(module, "build",
                            lambda dtype, _r=real, _m=module.__name__: (built.append(
                                (_m.rsplit(".", 1)[1], np.dtype(dtype).name)), _r(dtype))[1])
    monkeypatch.setattr(cr, "_KERNELS", {})
    case = make_case(np.random.default_rng(3), "lstm", B=2, T=3, N=1, D=2)
    case.check(Launch(cr.flashrnn_forward, cr.flashrnn_backward, threads=2, batch_tile=1),
               np.float64)
    assert built == [("forward", "float64"), ("backward", "float64")]


@settings(cuda_settings())
@given(B=st.integers(0, 2), T=st.integers(1, 3), I=st.integers(1, 4), G=st.integers(1, 2),
       D=st.integers(1, 3), seed=st.integers(0, 100))
def test_projection_module_matches_the_reference(cr, B, T, I, G, D, seed):
    """``refseq.cuda.recurrence.projection`` by name against the NumPy projection (float64;
    one device matmul sums in another order: 1e-12 relative)."""
    from refseq.cuda.recurrence import projection as P
    from refseq.recurrence.projection import project_inputs, project_inputs_backward

    rng = np.random.default_rng(seed)
    x, W = rng.standard_normal((B, T, I)), rng.standard_normal((G, 2, D, I))
    bias, dWx = rng.standard_normal((G, 2, D)), rng.standard_normal((B, T, G, 2, D))
    np.testing.assert_allclose(P.project_inputs(x, W, bias), project_inputs(x, W, bias),
                               rtol=1e-12, atol=1e-12)
    for mine, ref in zip(P.project_inputs_backward(dWx, x, W),
                         project_inputs_backward(dWx, x, W)):
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-12)

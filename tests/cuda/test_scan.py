"""The cuda tier of the scan hot path (refseq.cuda.scan) and its NumPy mirrors (``blocked``).

The mirrors run everywhere on ordinary shapes. The kernels run on a GPU when one is visible and
under the Numba CUDA simulator otherwise (tests/conftest.py); the simulator interprets every
thread in Python, so kernel tests use tiny shapes and tiny tiles (2-4 threads x 1-3 steps) that
still cross several tiles, and are skipped with the reason when the tier is unavailable.

Tolerances are derived (docs/design.md, "The tolerance rule"): ``desired`` is the float64
reference on float64 inputs, and every result, float32 or float64, must satisfy
``assert_close(result, desired, ref32)`` where ``ref32`` carries the error of the reference
itself run in float32 on the float32-cast inputs (``_Case.check``). Two refinements make that
measured error a robust estimate; both use only the reference's own runs:

* the tiled kernels reassociate the operator, so the error is the largest among the reference's
  formulations: the sequential fold and the parallel-prefix scans of ``refseq.scan.assoc``
  (Hillis-Steele, Blelloch, chunked);
* the final state ``(m, u, w)`` has as few as one entry per leaf, so its error is measured over
  the same quantity at every time step (the prefix triples ``M, U, W``), as it is for ``o``.

Measured on 5,000 random cases with single-entry leaves: with the sequential run's error on the
final entry alone, 0.25-1% of cases failed on ``u`` by 2-4 ulps (the sequential run happened to
land within 0.2 ulp); with both refinements, none.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq import scan
from refseq.cuda import availability, simulating
from refseq.cuda.scan import mirror as blocked
from refseq.scan.assoc import (
    AFFINE,
    SOFTMAX_TRIPLE,
    AssociativeOp,
    scan_blelloch,
    scan_chunked,
    scan_hillis_steele,
    scan_sequential,
    softmax_leaf,
)
from refseq.testing import assert_close, leaves
from refseq.testing.harness import EPS_RATIO
from refseq.testing.profiles import cuda_settings
from refseq.testing.strategies import cudasim_dims, decays, dims, dtypes, masks, normal, seeds

METHODS = ("sequential", "parallel")
LAYOUTS = ("full", "mamba2", "per_step", "no_batch")  # how ``a`` broadcasts over ``b``
DTYPES = (np.float32, np.float64)
TINY_TILES = {"threads": 4, "per_thread": 2}  # tile of 8 steps: T <= 19 crosses up to 3 tiles


@pytest.fixture(scope="module")
def cs():
    """The kernel module, or a clean skip naming why the cuda tier cannot run here."""
    ok, why = availability()
    if not ok:
        pytest.skip(f"cuda tier unavailable: {why}")
    import refseq.cuda.scan as module

    return module


pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

# ---------------------------------------------------------------------------------------------
# Inputs and the oracle. A case holds float64 arrays; ``cast`` gives the same values in the tested
# dtype; ``check`` asserts a result of either dtype against the reference.

PREFIX_FORMS = (scan_hillis_steele, scan_blelloch,
                lambda op, x, **kw: scan_chunked(op, x, chunk=8, **kw))


def _error(x, d):
    """max |x - d| over the entries finite in both."""
    both = np.isfinite(x) & np.isfinite(d)
    return float(np.abs(x[both] - d[both]).max(initial=0.0))


class _Case:
    """A drawn input. Subclasses give ``forms(dtype)``: for the sequential reference (first) and
    each parallel-prefix form, a list of per-leaf *sample* arrays (every time step of each result
    quantity), and ``results(samples)``: the result leaves taken from those samples."""

    names: tuple

    @cached_property
    def _oracle(self):
        forms64 = self.forms(np.float64)
        samples = forms64[0]
        e32 = [max(_error(f[i], d) for f in self.forms(np.float32)) for i, d in enumerate(samples)]
        e64 = [max(_error(f[i], d) for f in forms64[1:]) for i, d in enumerate(samples)]
        return self.results(samples), e32, e64

    def check(self, actual):
        """``assert_close(leaf, desired, ref32)`` for each result leaf of ``actual``.

        ``ref32`` is a stand-in whose error against ``desired`` is the measured float32 error of
        the reference (module docstring). For a float64 leaf the helper scales that error by the
        eps ratio; where float32 arithmetic is exact on a quantity (a near one-hot softmax: u = 1
        once the other terms underflow in float32) this leaves one float64 ulp, while any float64
        reassociation differs from the sequential oracle by a few ulps (~1% of random softmax
        cases on u). So for float64 the float64 error of the reference's own reassociated forms,
        in float32 units, counts too.
        """
        desired, e32, e64 = self._oracle
        for name, x, d, err32, err64 in zip(self.names, leaves(actual), desired, e32, e64,
                                            strict=True):
            err = max(err32, err64 * EPS_RATIO) if x.dtype == np.float64 else err32
            ref32 = np.where(np.isfinite(d), d + err, d)
            assert_close(x, d, ref32, err_msg=name)


@dataclass(eq=False)
class LinearCase(_Case):
    a: np.ndarray
    b: np.ndarray
    h0: np.ndarray | None
    reverse: bool
    names = ("h",)

    def cast(self, dtype):
        h0 = None if self.h0 is None else self.h0.astype(dtype)
        return self.a.astype(dtype), self.b.astype(dtype), h0

    def forms(self, dtype):
        a, b, h0 = self.cast(dtype)
        initial = None if h0 is None else (np.ones_like(h0), h0)
        elems = (np.broadcast_to(a, b.shape), b)
        return [[scan.linear_scan(a, b, h0, reverse=self.reverse)]] + [
            [f(AFFINE, elems, axis=1, reverse=self.reverse, initial=initial)[1]]  # h: b-part
            for f in PREFIX_FORMS
        ]

    def results(self, samples):
        return samples  # [h]


@st.composite
def linear_cases(draw, dim_strategy, max_state=3, layout=None):
    """Decays in (0.5, 1) and unit normal inputs, with ``a`` in one of four broadcast layouts."""
    d = draw(dim_strategy)
    rng = np.random.default_rng(draw(seeds()))
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    layout = layout or draw(st.sampled_from(LAYOUTS))
    if layout == "mamba2":  # a scalar decay per (b, t, head) over an (N, P) state
        N, P = draw(st.integers(1, max_state)), draw(st.integers(1, max_state))
        b_shape, a_shape = (B, T, H, N, P), (B, T, H, 1, 1)
    elif layout == "per_step":  # one decay per (b, t), shared by all channels
        b_shape, a_shape = (B, T, D), (B, T, 1)
    elif layout == "no_batch":  # fewer dims than b: (T, D) broadcasts over the batch
        b_shape, a_shape = (B, T, D), (T, D)
    else:
        b_shape = a_shape = (B, T, D)
    h0 = normal(rng, (B,) + b_shape[2:]) if draw(st.booleans()) else None
    return LinearCase(decays(rng, a_shape), normal(rng, b_shape), h0, draw(st.booleans()))


@dataclass(eq=False)
class SoftmaxCase(_Case):
    s: np.ndarray
    v: np.ndarray
    mask: np.ndarray | None
    state: scan.SoftmaxState | None
    names = ("o", "m", "u", "w")

    def cast(self, dtype):
        state = None if self.state is None else tuple(x.astype(dtype) for x in self.state)
        return self.s.astype(dtype), self.v.astype(dtype), self.mask, state

    def forms(self, dtype):
        s, v, mask, state = self.cast(dtype)
        forms = []
        for f in (scan_sequential,) + PREFIX_FORMS:  # scan_sequential: the reference's own fold
            M, U, W = f(SOFTMAX_TRIPLE, softmax_leaf(s, v, mask), axis=1, initial=state)
            o = np.divide(W, U[..., None], out=np.zeros_like(W), where=U[..., None] > 0)
            forms.append([o, M, U, W])  # o and the prefix triples, at every step
        return forms

    def results(self, samples):
        o, M, U, W = samples
        return [o, M[:, -1], U[:, -1], W[:, -1]]  # o and the final state


@st.composite
def softmax_cases(draw, dim_strategy, masked=None, carried=None):
    """Scores of scale 1, 3 or 100 (stability), optional mask with an optional fully masked
    prefix, optional carried state taken from the reference run on a random earlier chunk;
    ``masked``/``carried`` force either option (None: drawn)."""
    d = draw(dim_strategy)
    rng = np.random.default_rng(draw(seeds()))
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    scale = draw(st.sampled_from([1.0, 3.0, 100.0]))
    s, v = normal(rng, (B, T, H), scale=scale), normal(rng, (B, T, H, D))
    mask = None
    if masked if masked is not None else draw(st.booleans()):
        mask = masks(rng, (B, T), p_valid=draw(st.sampled_from([0.5, 0.9])))
        mask[:, : draw(st.integers(0, T))] = False  # a masked prefix (possibly everything)
    state = None
    if carried if carried is not None else draw(st.booleans()):
        T0 = draw(st.integers(1, 4))
        _, state = scan.softmax_scan(normal(rng, (B, T0, H), scale=scale),
                                     normal(rng, (B, T0, H, D)), masks(rng, (B, T0), 0.5))
    return SoftmaxCase(s, v, mask, state)


# ---------------------------------------------------------------------------------------------
# The NumPy mirrors of the decompositions, on ordinary shapes (never skipped).

tilings = st.tuples(st.sampled_from([1, 2, 3, 4, 5, 8, 32, 256]), st.integers(1, 4))


@given(case=linear_cases(dims(T=(1, 200))), dtype=dtypes(), tiling=tilings)
def test_linear_mirrors_match_reference(case, dtype, tiling):
    a, b, h0 = case.cast(dtype)
    sequential = blocked.linear_scan_sequential(a, b, h0, case.reverse)
    # same expressions in the same order as the reference: the same bits
    np.testing.assert_array_equal(sequential, scan.linear_scan(a, b, h0, reverse=case.reverse))
    threads, per_thread = tiling
    tiled = blocked.linear_scan_blocked(a, b, h0, case.reverse, threads=threads,
                                        per_thread=per_thread)
    assert tiled.dtype == dtype and tiled.shape == b.shape
    case.check(tiled)


@given(case=softmax_cases(dims(T=(1, 200))), dtype=dtypes(), tiling=tilings)
def test_softmax_mirrors_match_reference(case, dtype, tiling):
    threads, per_thread = tiling
    for result in (blocked.softmax_scan_sequential(*case.cast(dtype)),
                   blocked.softmax_scan_blocked(*case.cast(dtype), threads=threads,
                                                per_thread=per_thread)):
        assert result[0].dtype == dtype
        assert not np.isnan(result[0]).any()
        case.check(result)


def _edge_cases(T, seed):
    rng = np.random.default_rng(seed)
    linear = LinearCase(decays(rng, (2, T, 3, 1)), normal(rng, (2, T, 3, 2)),
                        normal(rng, (2, 3, 2)), False)
    softmax = SoftmaxCase(normal(rng, (2, T, 2), scale=3.0), normal(rng, (2, T, 2, 3)),
                          masks(rng, (2, T)), None)
    return linear, softmax


def _check_empty(h, b, o, state, v):
    """T = 0: empty outputs of the inputs' shapes; the identity state when none was given."""
    assert h.shape == b.shape and o.shape == v.shape
    assert np.isneginf(state.m).all() and not state.u.any() and not state.w.any()


@pytest.mark.parametrize("T", [0, 1, 7, 12, 13])  # around one and two tiles of 3 x 2 = 6
def test_mirrors_edge_lengths(T):
    linear, softmax = _edge_cases(T, seed=T)
    tiles = {"threads": 3, "per_thread": 2}
    for reverse in (False, True):
        linear.reverse = reverse
        h = blocked.linear_scan_blocked(linear.a, linear.b, linear.h0, reverse, **tiles)
        o, state = blocked.softmax_scan_blocked(softmax.s, softmax.v, softmax.mask, **tiles)
        if T == 0:
            _check_empty(h, linear.b, o, state, softmax.v)
            continue
        linear.__dict__.pop("_oracle", None)  # reverse changed: recompute the oracle
        linear.check(h)
        softmax.check((o, state))
def test_mirrors_reject_bad_tiling():
    a = b = np.ones((1, 3, 2))
    for bad in ({"threads": 0}, {"threads": 1025}, {"per_thread": 0}):
        with pytest.raises(ValueError, match="threads|per_thread"):
            blocked.linear_scan_blocked(a, b, **bad)
    with pytest.raises(TypeError, match="threads"):  # not an integer: a TypeError
        blocked.linear_scan_blocked(a, b, threads=2.0)


# ---------------------------------------------------------------------------------------------
# Kernels against the reference (tiny shapes; cuda_settings() is the tiny simulator budget).

tiny_tilings = st.sampled_from([(2, 2), (3, 1), (4, 2), (2, 3)])  # tiles of 3 to 8 steps


def _tiling_kwargs(method, tiling):
    return {"threads": tiling[0], "per_thread": tiling[1]} if method == "parallel" else {}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@settings(cuda_settings())
@given(data=st.data(), tiling=tiny_tilings)
def test_linear_scan_kernels(cs, layout, method, dtype, data, tiling):
    case = data.draw(linear_cases(cudasim_dims(), max_state=2, layout=layout))
    a, b, h0 = case.cast(dtype)
    kw = _tiling_kwargs(method, tiling)
    h = cs.linear_scan(a, b, h0, reverse=case.reverse, method=method, **kw)
    assert h.dtype == dtype and h.shape == b.shape and isinstance(h, np.ndarray)
    case.check(h)
    if simulating():  # no FMA contraction in the simulator: the mirror's exact bits
        mirror = (blocked.linear_scan_blocked(a, b, h0, case.reverse, **kw) if kw
                  else blocked.linear_scan_sequential(a, b, h0, case.reverse))
        np.testing.assert_array_equal(h, mirror)


@pytest.mark.parametrize("carried", [False, True], ids=["no_state", "state"])
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@settings(cuda_settings())
@given(data=st.data(), tiling=tiny_tilings)
def test_softmax_scan_kernels(cs, masked, carried, method, dtype, data, tiling):
    case = data.draw(softmax_cases(cudasim_dims(), masked=masked, carried=carried))
    o, state = cs.softmax_scan(*case.cast(dtype), method=method, **_tiling_kwargs(method, tiling))
    assert o.dtype == dtype and all(x.dtype == dtype for x in state)
    assert not np.isnan(o).any() and not any(np.isnan(x).any() for x in state)
    case.check((o, state))


@pytest.mark.parametrize("method", METHODS)
@settings(cuda_settings())
@given(case=softmax_cases(cudasim_dims()), split=st.integers(0, 19))
def test_softmax_chunked_calls_compose(cs, method, case, split):
    """Two calls with the carried state equal one call (docs/hot-paths/scan.md, "State
    carry-over")."""
    s, v, mask, state = case.cast(np.float32)
    k = min(split, s.shape[1])
    kw = dict(method=method, **TINY_TILES) if method == "parallel" else {"method": method}
    m1, m2 = (None, None) if mask is None else (mask[:, :k], mask[:, k:])
    o1, mid = cs.softmax_scan(s[:, :k], v[:, :k], m1, state, **kw)
    o2, final = cs.softmax_scan(s[:, k:], v[:, k:], m2, mid, **kw)
    case.check((np.concatenate([o1, o2], axis=1), final))


@pytest.mark.parametrize("method", METHODS)
def test_linear_chunked_calls_compose(cs, method):
    rng = np.random.default_rng(3)
    case = LinearCase(decays(rng, (2, 17, 2, 1)), normal(rng, (2, 17, 2, 2)), None, False)
    a, b, _ = case.cast(np.float32)
    kw = dict(method=method, **TINY_TILES) if method == "parallel" else {"method": method}
    h1 = cs.linear_scan(a[:, :9], b[:, :9], **kw)
    h2 = cs.linear_scan(a[:, 9:], b[:, 9:], h1[:, -1], **kw)
    case.check(np.concatenate([h1, h2], axis=1))


# ---------------------------------------------------------------------------------------------
# Edge cases, determinism, the auto rule, input handling.


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("T", [0, 1, 9])  # empty, one step, one step past a tile of 8
def test_edge_lengths(cs, method, T):
    linear, softmax = _edge_cases(T, seed=T)
    kw = dict(method=method, **TINY_TILES)
    for reverse in (False, True):
        linear.reverse = reverse
        h = cs.linear_scan(linear.a, linear.b, linear.h0, reverse=reverse, **kw)
        o, state = cs.softmax_scan(softmax.s, softmax.v, softmax.mask, **kw)
        if T == 0:
            _check_empty(h, linear.b, o, state, softmax.v)
            continue
        linear.__dict__.pop("_oracle", None)  # reverse changed: recompute the oracle
        linear.check(h)
        softmax.check((o, state))
    if T == 0:  # a given state comes back unchanged
        carried = scan.SoftmaxState(np.zeros((2, 2)), np.ones((2, 2)), np.ones((2, 2, 3)))
        _, passed = cs.softmax_scan(softmax.s, softmax.v, state=carried, **kw)
        for x, y in zip(passed, carried, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_fully_masked_prefix_outputs_zero(cs, method, dtype):
    """Before the first valid token there is no mass: o = 0, u = 0, m = -inf, and never NaN."""
    rng = np.random.default_rng(7)
    s, v = normal(rng, (2, 11, 2), dtype, 3.0), normal(rng, (2, 11, 2, 2), dtype)
    mask = np.ones((2, 11), bool)
    mask[0, :6] = False  # row 0: six masked tokens, then valid ones
    mask[1, :] = False  # row 1: nothing valid at all
    o, state = cs.softmax_scan(s, v, mask, method=method, **TINY_TILES)
    assert not np.isnan(o).any()
    assert not o[0, :6].any() and not o[1].any()
    assert np.isneginf(state.m[1]).all() and not state.u[1].any() and not state.w[1].any()
    assert (state.u[0] > 0).all()
    case = SoftmaxCase(s.astype(np.float64), v.astype(np.float64), mask, None)
    case.check((o, state))


PREFIX_SUM = AssociativeOp("prefix_sum", lambda x, y: (x[0] + y[0],),
                           lambda like: (np.zeros_like(like[0]),))


def _prefix_sum_device_op(dtype):
    """PREFIX_SUM as device functions: a width-1 operator that refseq does not ship, over
    ``ins = (x (B, T, C), total0 (B, C))`` and ``outs = (y (B, T, C), total (B, C))``."""
    from refseq.cuda.scan.kernels import bind_cuda
    from refseq.cuda.scan.ops import DeviceOp

    device = bind_cuda().jit(device=True)
    ZERO = dtype.type(0)

    @device
    def identity():
        return (ZERO,)

    @device
    def combine(x, y):
        return (x[0] + y[0],)

    @device
    def locate(ins, row):
        n = row // ins[0].shape[2]
        return n, row - n * ins[0].shape[2]

    @device
    def initial(ins, pos):
        return (ins[1][pos[0], pos[1]],)

    @device
    def leaf(ins, pos, k):
        return (ins[0][pos[0], k, pos[1]],)

    @device
    def store(ins, outs, pos, k, e):
        outs[0][pos[0], k, pos[1]] = e[0]

    @device
    def store_final(outs, pos, e):
        outs[1][pos[0], pos[1]] = e[0]

    return DeviceOp("test_prefix_sum", dtype, 1, identity, combine, locate, initial, leaf, store,
                    store_final)


@pytest.mark.parametrize("T", [1, 11])  # one step; two tiles of 3 x 2 = 6, the last partial
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_builder_runs_any_operator(cs, method, dtype, T):
    """The one kernel builder, given another operator's device functions, runs the same
    decomposition as the generic NumPy drivers: bit for bit (additions only, no contraction)."""
    from refseq.cuda._device import cuda
    from refseq.cuda.scan.kernels import launch

    rng = np.random.default_rng(T)
    x, total0 = normal(rng, (2, T, 3), dtype), normal(rng, (2, 3), dtype)
    d_y, d_total = cuda.device_array(x.shape, dtype), cuda.device_array(total0.shape, dtype)
    launch(_prefix_sum_device_op(np.dtype(dtype)), (cuda.to_device(x), cuda.to_device(total0)),
           (d_y, d_total), 6, T, method, 3, 2)
    leaves_tf, initial = (np.moveaxis(x, 1, 0),), (total0,)
    (y,), (total,) = (blocked.scan_rows(PREFIX_SUM, leaves_tf, initial) if method == "sequential"
                      else blocked.scan_tiles(PREFIX_SUM, leaves_tf, initial, 3, 2))
    np.testing.assert_array_equal(d_y.copy_to_host(), np.moveaxis(y, 0, 1))
    np.testing.assert_array_equal(d_total.copy_to_host(), total)


@pytest.mark.parametrize("method", METHODS)
def test_bitwise_deterministic(cs, method):
    rng = np.random.default_rng(11)
    kw = dict(method=method, **TINY_TILES)
    a, b = decays(rng, (1, 19, 2, 1, 1), np.float32), normal(rng, (1, 19, 2, 2, 1), np.float32)
    s, v = normal(rng, (1, 19, 2), np.float32, 3.0), normal(rng, (1, 19, 2, 2), np.float32)
    mask = masks(rng, (1, 19))
    h1, h2 = (cs.linear_scan(a, b, reverse=True, **kw) for _ in range(2))
    np.testing.assert_array_equal(h1.view(np.uint32), h2.view(np.uint32))
    (o1, st1), (o2, st2) = (cs.softmax_scan(s, v, mask, **kw) for _ in range(2))
    for x, y in zip((o1, *st1), (o2, *st2), strict=True):
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32))


def test_auto_rule(cs):
    tile = cs.THREADS * cs.PER_THREAD
    long_T = cs.AUTO_MIN_TILES * tile
    assert cs.choose_method(long_T, 1) == "parallel"
    assert cs.choose_method(long_T, cs.AUTO_MAX_ROWS) == "parallel"
    assert cs.choose_method(long_T, cs.AUTO_MAX_ROWS + 1) == "sequential"
    assert cs.choose_method(long_T - 1, 1) == "sequential"
    assert cs.choose_method(40, 1, threads=2, per_thread=5) == "parallel"  # tiles of 10
    rng = np.random.default_rng(5)
    a, b = decays(rng, (1, 9, 2)), normal(rng, (1, 9, 2))
    np.testing.assert_array_equal(cs.linear_scan(a, b, method="auto"),
                                  cs.linear_scan(a, b, method="sequential"))


def test_registry_dispatch_and_device_arrays(cs):
    from refseq.cuda._device import cuda

    linear, softmax = _edge_cases(5, seed=2)
    a, b, h0 = linear.a, linear.b, linear.h0
    linear.check(scan.linear_scan(a, b, h0, backend="cuda"))  # registry: check_finite=False
    on_device = cs.linear_scan(cuda.to_device(a), cuda.to_device(b), cuda.to_device(h0))
    assert isinstance(on_device, np.ndarray)
    linear.check(on_device)
    softmax.check(scan.softmax_scan(softmax.s, softmax.v, softmax.mask, backend="cuda"))


def test_bad_input_raises(cs):
    b = np.ones((2, 4, 3))
    with pytest.raises(ValueError, match="h0"):
        cs.linear_scan(np.ones((2, 4, 3)), b, np.ones((2, 4)))
    with pytest.raises(ValueError, match="method"):
        cs.linear_scan(b, b, method="blelloch")
    with pytest.raises(ValueError, match="threads"):
        cs.linear_scan(b, b, method="parallel", threads=2048)
    with pytest.raises(ValueError, match="mask"):
        cs.softmax_scan(np.ones((2, 4, 1)), np.ones((2, 4, 1, 2)), np.ones((2, 5), bool))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # simulator threads: inf * 0
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_check_finite_after_the_pass_matches_the_reference(cs, method):
    """The cuda twins check finiteness on the host after the pass (final state, scores, masked
    values) and raise the reference's own message; check_finite=False propagates."""
    rng = np.random.default_rng(9)
    T = 9
    for name, index in (("a", (0, 4, 1)), ("b", (1, T - 1, 0)), ("h0", (1, 1))):
        for reverse in (False, True):
            a, b, h0 = decays(rng, (2, T, 2)), normal(rng, (2, T, 2)), normal(rng, (2, 2))
            {"a": a, "b": b, "h0": h0}[name][index] = -np.inf
            with pytest.raises(ValueError) as want:
                scan.linear_scan(a, b, h0, reverse=reverse)
            with pytest.raises(ValueError) as got, np.errstate(invalid="ignore"):
                cs.linear_scan(a, b, h0, reverse=reverse, method=method, threads=2, per_thread=2)
            assert str(got.value) == str(want.value)
    s, v = 3 * normal(rng, (1, T, 1)), normal(rng, (1, T, 1, 2))
    s[0, 1] = 60.0  # later tokens weigh ~0: a silent -inf score, a NaN only through 0 * inf
    mask = np.ones((1, T), bool)
    mask[0, 5] = False
    for name, index in (("s", (0, 3, 0)), ("s", (0, 5, 0)), ("v", (0, 5, 0, 1)),
                        ("v", (0, 7, 0, 0))):
        s_bad, v_bad = s.copy(), v.copy()
        {"s": s_bad, "v": v_bad}[name][index] = -np.inf
        with pytest.raises(ValueError) as want:
            scan.softmax_scan(s_bad, v_bad, mask)
        with pytest.raises(ValueError) as got, np.errstate(invalid="ignore"):
            cs.softmax_scan(s_bad, v_bad, mask, method=method, threads=2, per_thread=2)
        assert str(got.value) == str(want.value)
        with np.errstate(all="ignore"):
            cs.softmax_scan(s_bad, v_bad, mask, check_finite=False, method=method)


def test_out_buffers(cs):
    rng = np.random.default_rng(10)
    a, b = decays(rng, (2, 7, 3)), normal(rng, (2, 7, 3))
    out = np.full_like(b, np.nan)
    assert scan.linear_scan(a, b, backend="cuda", out=out) is out
    np.testing.assert_allclose(out, scan.linear_scan(a, b), rtol=1e-12)
    s, v = normal(rng, (2, 7, 2)), normal(rng, (2, 7, 2, 3))
    o = np.full_like(v, np.nan)
    assert scan.softmax_scan(s, v, backend="cuda", out=o)[0] is o
    np.testing.assert_allclose(o, scan.softmax_scan(s, v)[0], rtol=1e-12)
    with pytest.raises(TypeError, match="out must have dtype"):
        cs.linear_scan(a, b, out=np.empty(b.shape, np.float32))

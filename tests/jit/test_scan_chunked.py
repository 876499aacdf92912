"""The time-parallel (chunked) kernels of refseq.jit.scan, forced on small shapes.

``chunk_length`` picks them only for long sequences with few channels; here its thresholds are
lowered so that T of a few hundred steps splits into tens of segments (the last one shorter),
and a spy makes sure the chunked kernel is the one that ran. Results are compared with the
reference under the registry's derived tolerance (not bitwise: the carries reassociate).
"""

import numpy as np
import pytest

import refseq.jit.scan as J
from refseq import scan as S
from refseq.registry import REGISTRY
from refseq.testing.harness import run_check


@pytest.fixture
def chunked(monkeypatch):
    """Chunk every T >= 16 into segments of >= 4 steps; count the chunked kernels' calls."""
    monkeypatch.setattr(J, "CHUNK_MIN_T", 16)
    monkeypatch.setattr(J, "SEGMENT_MIN", 4)
    monkeypatch.setattr(J, "CHUNK_SOFTMAX", True)
    calls = []
    for name in ("linear_chunked", "softmax_chunked_kernel"):
        real = getattr(J, name)
        monkeypatch.setattr(J, name, lambda *a, _real=real, _n=name: (calls.append(_n), _real(*a)))
    return calls


def test_chunk_length_depends_on_the_shape_only():
    assert J.chunk_length(2**20, 4) == 2**20 // J.SEGMENTS
    assert J.chunk_length(2**20, J.CHUNK_MAX_CHANNELS + 1) == 0  # many channels: sequential
    assert J.chunk_length(J.CHUNK_MIN_T - 1, 4) == 0  # short: sequential
    assert J.chunk_length(J.CHUNK_MIN_T, 4) == J.SEGMENT_MIN  # T // SEGMENT_MIN segments


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, dims", [
    ("linear_scan", {"B": 2, "T": 301, "D": 3}),
    ("linear_scan", {"B": 1, "T": 64, "D": 1}),
    ("softmax_scan", {"B": 2, "T": 301, "H": 2, "D": 3}),
    ("softmax_scan", {"B": 1, "T": 64, "H": 1, "D": 1}),
    ("linear_scan_backward", {"B": 2, "T": 150, "D": 2}),
    ("softmax_scan_backward", {"B": 1, "T": 150, "H": 2, "D": 2}),
])
def test_chunked_path_is_within_the_registry_tolerance(chunked, name, dims, dtype):
    c = run_check(REGISTRY[name], "jit", dims, dtype, seed=4)
    assert c.ok, c.message
    assert chunked, "the chunked kernels did not run"


def _decays(rng, shape, dtype):
    return rng.uniform(0.9, 1.0, shape).astype(dtype)  # carries matter across many segments


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("a_shape", [(2, 203, 3, 2), (2, 203, 3, 1), (1, 203, 1, 2), (3, 2),
                                     (2, 1, 3, 2)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_chunked_linear_scan_matches_reference(chunked, dtype, reverse, a_shape, with_h0):
    """Every broadcast layout of the decays, both directions, with and without h0."""
    rng = np.random.default_rng(len(a_shape) + 7 * reverse)
    b = rng.standard_normal((2, 203, 3, 2)).astype(dtype)
    a = _decays(rng, a_shape, dtype)
    h0 = rng.standard_normal((2, 3, 2)).astype(dtype) if with_h0 else None
    want = S.linear_scan(a.astype(np.float64), b.astype(np.float64),
                         None if h0 is None else h0.astype(np.float64), reverse=reverse)
    got = S.linear_scan(a, b, h0, reverse=reverse, backend="jit")
    assert chunked == ["linear_chunked"]
    tol = 300 * np.finfo(dtype).eps * (1 + np.abs(want))  # T steps of rounding, in ulps
    assert np.all(np.abs(got - want) <= tol)
    # the decomposition is fixed by the shape: a second run gives the same bits
    np.testing.assert_array_equal(got, S.linear_scan(a, b, h0, reverse=reverse, backend="jit"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_mask, use_state", [(False, False), (True, False), (True, True)])
def test_chunked_softmax_scan_matches_reference(chunked, dtype, use_mask, use_state):
    rng = np.random.default_rng(3 + use_mask + 2 * use_state)
    B, T, H, D = 2, 203, 2, 3
    s = (3 * rng.standard_normal((B, T, H))).astype(dtype)
    v = rng.standard_normal((B, T, H, D)).astype(dtype)
    mask = rng.random((B, T)) > 0.2 if use_mask else None
    if use_mask:
        mask[1, :40] = False  # an empty prefix that spans whole segments
    state = None
    if use_state:
        state = S.SoftmaxState(rng.standard_normal((B, H)).astype(dtype),
                               rng.uniform(0.5, 2, (B, H)).astype(dtype),
                               rng.standard_normal((B, H, D)).astype(dtype))
    o, final = S.softmax_scan(s, v, mask, state, backend="jit")
    o_ref, final_ref = S.softmax_scan(s, v, mask, state)
    assert chunked == ["softmax_chunked_kernel"]
    rtol = 300 * np.finfo(dtype).eps
    np.testing.assert_allclose(o, o_ref, rtol=rtol, atol=rtol)
    for x, y in zip(final, final_ref):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)
    o2, final2 = S.softmax_scan(s, v, mask, state, backend="jit")
    np.testing.assert_array_equal(o, o2)
    for x, y in zip(final, final2):
        np.testing.assert_array_equal(x, y)


def test_chunked_kernels_take_the_out_buffer(chunked):
    rng = np.random.default_rng(1)
    a = _decays(rng, (1, 100, 2), np.float32)
    b = rng.standard_normal((1, 100, 2)).astype(np.float32)
    out = np.full_like(b, np.nan)
    assert S.linear_scan(a, b, backend="jit", out=out) is out
    np.testing.assert_allclose(out, S.linear_scan(a, b), rtol=1e-5, atol=1e-5)
    s, v = rng.standard_normal((1, 100, 1)), rng.standard_normal((1, 100, 1, 2))
    o = np.full_like(v, np.nan)
    assert S.softmax_scan(s, v, backend="jit", out=o)[0] is o
    np.testing.assert_allclose(o, S.softmax_scan(s, v)[0], rtol=1e-12)
    assert chunked == ["linear_chunked", "softmax_chunked_kernel"]

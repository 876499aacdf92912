"""Every registered scan function on every tier against the float64 reference.

The comparison is ``refseq.audit.run_check``, the same rule ``refseq audit`` applies: the derived
tolerance of style.md #9. Under the CUDA simulator the cuda tier gets tiny shapes.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.audit import cast_inputs, run_check
from refseq.registry import REGISTRY
from refseq.testing.profiles import cuda_settings
from refseq.testing.strategies import cudasim_dims, dims, dtypes, seeds

SCAN = sorted(n for n, e in REGISTRY.items() if e.hot_path == "scan")


def _dims_for(backend):
    from refseq.cuda import simulating

    return cudasim_dims() if backend == "cuda" and simulating() else dims(T=(1, 130))


@pytest.mark.parametrize("name", SCAN)
def test_tier_matches_float64_reference(name, backend):
    entry = REGISTRY[name]
    budget = cuda_settings() if backend == "cuda" else settings()

    @budget
    @given(seed=seeds(), d=_dims_for(backend), dtype=dtypes())
    def check(seed, d, dtype):
        c = run_check(entry, backend, d, dtype, seed)
        assert c.ok, c.message

    check()


@pytest.mark.parametrize("name", SCAN)
def test_tier_is_bitwise_deterministic(name, backend):
    entry = REGISTRY[name]
    d = dict(entry.cudasim_dims[0])
    args, kw = entry.make_inputs(np.random.default_rng(3), d, np.float64)
    for dtype in (np.float32, np.float64):
        a, k = cast_inputs(args, kw, dtype)
        first = entry.call(backend, *a, **k)
        again = entry.call(backend, *a, **k)
        from refseq.testing import leaves

        for x, y in zip(leaves(first), leaves(again)):
            np.testing.assert_array_equal(x, y)


@given(seed=seeds(), d=dims(T=(1, 40)), backend=st.sampled_from(["numpy", "jit"]))
def test_jit_linear_scan_is_bitwise_equal_to_reference(seed, d, backend):
    """The affine step is the same IEEE expression ``a * h + b`` in both tiers (no FMA)."""
    from refseq.jit.scan import linear_scan as jit_linear_scan
    from refseq.scan import linear_scan

    rng = np.random.default_rng(seed)
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    b = rng.standard_normal((B, T, H, D, 2))
    h0 = rng.standard_normal((B, H, D, 2))
    for a in (
        rng.uniform(0.5, 1, (B, T, H, D, 2)),
        rng.uniform(0.5, 1, (B, T, H, 1, 1)),
        rng.uniform(0.5, 1, (1, T, 1, D, 1)),
        rng.uniform(0.5, 1, (H, 1, 2)),
    ):
        for reverse in (False, True):
            np.testing.assert_array_equal(
                jit_linear_scan(a, b, h0, reverse=reverse), linear_scan(a, b, h0, reverse=reverse)
            )


def test_jit_out_buffer_is_used_and_validated():
    from refseq.jit.scan import linear_scan as jit_linear_scan

    b = np.ones((2, 5, 3))
    out = np.empty_like(b)
    assert jit_linear_scan(0.5, b, out=out) is out
    with pytest.raises(ValueError, match="out must be"):
        jit_linear_scan(0.5, b, out=np.empty((2, 5, 3), np.float32))
    from refseq.jit.scan import softmax_scan as jit_softmax_scan

    s, v = np.ones((2, 5, 3)), np.ones((2, 5, 3, 4))
    o = np.empty_like(v)
    assert jit_softmax_scan(s, v, out=o)[0] is o
    with pytest.raises(ValueError, match="out must be"):
        jit_softmax_scan(s, v, out=np.empty((2, 5, 3, 3)))

"""The jit tier of the scan hot path (refseq.jit.scan): what the registry harness cannot express.

The harness (tests/test_registry.py) checks every scan function on this tier against the
float64 reference under the derived tolerance. Here: the linear kernel evaluates the reference's
own expression ``a * h + b`` in the same order, so it must equal the reference bit for bit, in
every broadcast layout of the decays and in its multi-block channel path; and the ``out=``
buffers.
"""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refseq.jit.scan as J
from refseq import scan as S
from refseq.testing.strategies import dims, seeds


@given(seed=seeds(), d=dims(T=(1, 40)), backend=st.sampled_from(["numpy", "jit"]))
def test_jit_linear_scan_is_bitwise_equal_to_reference(seed, d, backend):
    """The affine step is the same IEEE expression ``a * h + b`` in both tiers (no FMA)."""
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
                J.linear_scan(a, b, h0, reverse=reverse), S.linear_scan(a, b, h0, reverse=reverse)
            )


@pytest.fixture
def two_threads(monkeypatch):
    """At least two Numba threads, so ``_channel_block`` splits one batch row's channels into
    several jobs. With fewer configured threads the planner is told there are two (the split
    then runs its jobs one after the other, through the same index arithmetic)."""
    if numba.config.NUMBA_NUM_THREADS >= 2:
        previous = numba.get_num_threads()
        numba.set_num_threads(2)
        yield 2
        numba.set_num_threads(previous)
    else:
        monkeypatch.setattr(J.numba, "get_num_threads", lambda: 2)
        yield 2


# (b shape, a shape): per-channel decays, decays per step shared by a group of channels (the
# Mamba-2 layout, one per head over an (N, P) state), and decays without a batch axis.
MULTI_BLOCK = {
    "per_channel": ((1, 6, 129), (1, 6, 129)),
    "per_channel_no_batch": ((1, 6, 3, 50), (6, 3, 50)),
    "grouped_43": ((1, 6, 3, 43), (1, 6, 3, 1)),
    "mamba2_heads": ((1, 5, 2, 8, 9), (1, 5, 2, 1, 1)),
}


@pytest.mark.parametrize("layout", sorted(MULTI_BLOCK))
def test_multi_block_channel_path_is_bitwise_equal_to_reference(two_threads, layout):
    """B = 1 with more channels than one job takes: the channels are split into blocks of whole
    decay groups (``_channel_block``), each block carrying its own slice of ``h0``. A block
    offset, a slice of ``a`` or ``h0`` taken for the wrong block, or a block boundary inside a
    decay group changes the result."""
    b_shape, a_shape = MULTI_BLOCK[layout]
    rng = np.random.default_rng(sorted(MULTI_BLOCK).index(layout))
    b = rng.standard_normal(b_shape)
    a = rng.uniform(0.5, 1.0, a_shape)
    h0 = rng.standard_normal((1,) + b_shape[2:])
    C = int(np.prod(b_shape[2:]))
    _, rep = J._as_blocks(a, b)
    block = J._channel_block(1, C, rep)
    assert block < C and block % rep == 0, (block, C, rep)  # the path under test runs
    for dtype in (np.float32, np.float64):
        args = [x.astype(dtype) for x in (a, b, h0)]
        for reverse in (False, True):
            for with_h0 in (True, False):
                h0_ = args[2] if with_h0 else None
                got = J.linear_scan(args[0], args[1], h0_, reverse=reverse)
                want = S.linear_scan(args[0], args[1], h0_, reverse=reverse)
                np.testing.assert_array_equal(got, want, err_msg=f"{dtype} reverse={reverse}")


def test_jit_out_buffer_is_used_and_validated():
    b = np.ones((2, 5, 3))
    out = np.empty_like(b)
    assert J.linear_scan(0.5, b, out=out) is out
    with pytest.raises(TypeError, match="out must have dtype float64"):
        J.linear_scan(0.5, b, out=np.empty((2, 5, 3), np.float32))
    s, v = np.ones((2, 5, 3)), np.ones((2, 5, 3, 4))
    o = np.empty_like(v)
    assert J.softmax_scan(s, v, out=o)[0] is o
    with pytest.raises(ValueError, match="out must have shape"):
        J.softmax_scan(s, v, out=np.empty((2, 5, 3, 3)))

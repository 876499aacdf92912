"""The documented initialisation of the Aaren layer (``init_aaren_params``).

``q ~ N(0, 1)``; every weight ``~ N(0, 1 / fan_in)`` with ``fan_in`` its number of input rows
(``D`` for ``W_k`` and ``W_v``; ``H * Dv`` for ``W_o`` with concatenated heads, ``Dv`` when heads
are averaged or summed); zero biases, or None without them. The shapes are chosen so that every
fan-in differs from the matching fan-out and from the other weights' fan-in, so a scale taken
from the wrong side, a variance of 2 / fan_in or a standard deviation of 1 / fan_in fails.
"""

import numpy as np
import pytest

from refseq.papers.aaren.layer import init_aaren_params

D, H, Dk, Dv = 256, 8, 64, 24  # W_k (256, 512), W_v (256, 192), W_o (192, 256) or (24, 256)


def _assert_normal(x, std, what):
    """Mean 0 and standard deviation ``std``: with n >= 512 draws the sample variance is within
    6 of its standard errors (sqrt(2 / n) relative) of std**2, the mean within 6 of its own."""
    n = x.size
    assert abs(x.mean()) <= 6 * std / np.sqrt(n), f"{what}: mean {x.mean():.3g}"
    rel = abs(x.var() / std**2 - 1.0)
    assert rel <= 6 * np.sqrt(2.0 / n), f"{what}: std {x.std():.4g}, documented {std:.4g}"


@pytest.mark.parametrize("head_merge", ["concat", "mean", "sum"])
def test_scales_are_the_documented_ones(head_merge):
    p = init_aaren_params(np.random.default_rng(0), D, H, Dk, Dv, head_merge=head_merge)
    merged = H * Dv if head_merge == "concat" else Dv
    assert p.q.shape == (H, Dk) and p.W_k.shape == (D, H * Dk) and p.W_v.shape == (D, H * Dv)
    assert p.W_o.shape == (merged, D)
    _assert_normal(p.q, 1.0, "q")
    _assert_normal(p.W_k, 1.0 / np.sqrt(D), "W_k")
    _assert_normal(p.W_v, 1.0 / np.sqrt(D), "W_v")
    _assert_normal(p.W_o, 1.0 / np.sqrt(merged), "W_o")
    for bias, n in ((p.b_k, H * Dk), (p.b_v, H * Dv), (p.b_o, D)):
        assert bias.shape == (n,) and not bias.any()


def test_dtype_and_no_biases():
    p = init_aaren_params(np.random.default_rng(1), 8, 2, 3, 4, dtype=np.float32, bias=False)
    assert p.b_k is None and p.b_v is None and p.b_o is None
    assert all(x.dtype == np.float32 for x in (p.q, p.W_k, p.W_v, p.W_o))

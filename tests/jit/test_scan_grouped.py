"""The grouped softmax fold of refseq.jit.scan (all heads of a batch row in one job), forced on
small shapes: each head's fold is the same arithmetic as in the one-head-per-job kernel, so the
two must agree bit for bit (outputs, final state) whatever the grouping, with masks, carried
states and both dtypes; a non-finite input still raises the reference's error."""

import numpy as np
import pytest

import refseq.jit.scan as J
from refseq.registry import REGISTRY
from refseq.scan import softmax_scan
from refseq.testing.harness import run_check


def _run(monkeypatch, grouped, s, v, **kw):
    monkeypatch.setattr(J, "GROUP_HEADS_MIN_BYTES", 0 if grouped else 1 << 62)
    calls = []
    for name in ("softmax_groups_kernel", "softmax_kernel"):
        real = getattr(J, name)
        monkeypatch.setattr(J, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a)))
    o, st = J.softmax_scan(s, v, **kw)
    monkeypatch.undo()
    return o, st, calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, T, H, D", [(2, 37, 4, 5), (3, 20, 2, 16), (4, 9, 3, 1)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("carried", [False, True])
def test_grouped_fold_equals_one_head_per_job(monkeypatch, B, T, H, D, dtype, masked, carried):
    rng = np.random.default_rng(B * 100 + T)
    s = (3 * rng.standard_normal((B, T, H))).astype(dtype)
    v = rng.standard_normal((B, T, H, D)).astype(dtype)
    kw = {}
    if masked:
        kw["mask"] = rng.random((B, T)) > 0.3
    if carried:  # a state from a first chunk, so the fold starts from finite (m, u, w)
        _, kw["state"] = softmax_scan(s[:, :5], v[:, :5])
    if B < 2:  # pragma: no cover - the shapes above all give two or more jobs
        pytest.skip("needs B >= threads")
    o1, st1, c1 = _run(monkeypatch, False, s, v, **kw)
    o2, st2, c2 = _run(monkeypatch, True, s, v, **kw)
    assert c1 == ["softmax_kernel"]
    assert c2 == (["softmax_groups_kernel"] if B >= J.numba.get_num_threads() else
                  ["softmax_kernel"])
    np.testing.assert_array_equal(o1, o2)
    for a, b in zip(st1, st2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax_scan", "softmax_scan_backward"])
def test_grouped_fold_is_within_the_registry_tolerance(monkeypatch, name, dtype):
    monkeypatch.setattr(J, "GROUP_HEADS_MIN_BYTES", 0)
    monkeypatch.setattr(J.numba, "get_num_threads", lambda: 1)
    calls = []
    real = J.softmax_groups_kernel
    monkeypatch.setattr(J, "softmax_groups_kernel", lambda *a: (calls.append(1), real(*a)))
    c = run_check(REGISTRY[name], "jit", {"B": 2, "T": 40, "H": 3, "D": 4}, dtype, seed=5)
    assert c.ok, c.message
    assert calls, "the grouped kernel did not run"


@pytest.mark.parametrize("where", ["s", "v", "masked v"])
def test_grouped_fold_raises_the_reference_error(monkeypatch, where):
    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 8, 3))
    v = rng.standard_normal((2, 8, 3, 4))
    mask = np.ones((2, 8), bool)
    if where == "s":
        s[1, 5, 2] = -np.inf  # weight 0: the fold alone would hide it
    else:
        v[1, 5, 2, 1] = np.nan
        if where == "masked v":
            mask[1, 5] = False  # never folded
    monkeypatch.setattr(J, "GROUP_HEADS_MIN_BYTES", 0)
    monkeypatch.setattr(J.numba, "get_num_threads", lambda: 1)
    name = "s" if where == "s" else "v"
    with pytest.raises(ValueError, match=rf"^{name} must be finite; found .* at index \(1, 5, 2"):
        J.softmax_scan(s, v, mask=mask)

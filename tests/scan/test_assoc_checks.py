"""Input checks of the generic scans and the softmax-triple helpers (refseq.scan.assoc): integer
or bool elements would truncate every prefix (``[1, 1, 1]`` instead of ``[1, 1.5, 1.75]``), so
they are rejected, as are bad axes, operators, carries and helper arguments; every message names
the argument."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.scan import assoc

SCANS = [*assoc.SCANS.items(), ("chunked2", lambda op, e, **k: assoc.scan_chunked(
    op, e, chunk=2, **k))]
A_HALF = np.full((1, 3), 0.5)


@pytest.mark.parametrize("name,scan", SCANS, ids=[s[0] for s in SCANS])
def test_affine_scan_of_halves_is_exact(name, scan):
    """h_t = 0.5 h_{t-1} + 1 from h = 0: 1, 1.5, 1.75 (exact in binary)."""
    _, h = scan(assoc.AFFINE, (A_HALF, np.ones((1, 3))), axis=1)
    np.testing.assert_array_equal(h, [[1.0, 1.5, 1.75]])


@pytest.mark.parametrize("name,scan", SCANS, ids=[s[0] for s in SCANS])
@pytest.mark.parametrize("bad", [np.ones((1, 3), np.int64), np.ones((1, 3), bool),
                                 np.ones((1, 3), np.float16)], ids=["int", "bool", "float16"])
def test_non_float_elements_are_rejected(name, scan, bad):
    with pytest.raises(TypeError, match=r"elems\[1\] must have dtype float32 or float64"):
        scan(assoc.AFFINE, (A_HALF, bad), axis=1)


@pytest.mark.parametrize("name,scan", SCANS, ids=[s[0] for s in SCANS])
@pytest.mark.parametrize("kw,err,match", [
    (dict(axis=2), ValueError, "axis must lie in"),
    (dict(axis=1.0), TypeError, "axis must be an integer"),
    (dict(axis="1"), TypeError, "axis must be an integer"),
    (dict(initial=(np.ones(1),)), ValueError, "initial must have one array per field"),
    (dict(initial=(np.ones(2), np.ones(2))), ValueError, r"initial\[0\] of shape \(2,\)"),
    (dict(initial=(np.ones(1, int), np.ones(1))), TypeError, r"initial\[0\] must have dtype"),
    (dict(initial=np.ones(1)), TypeError, "initial must be a non-empty tuple"),
], ids=["axis-range", "axis-float", "axis-str", "initial-fields", "initial-shape",
        "initial-int", "initial-array"])
def test_bad_axis_or_initial_is_named(name, scan, kw, err, match):
    with pytest.raises(err, match=match):
        scan(assoc.AFFINE, (A_HALF, np.ones((1, 3))), **kw)


@pytest.mark.parametrize("name,scan", SCANS, ids=[s[0] for s in SCANS])
def test_bad_operator_and_elems_are_named(name, scan):
    elems = (A_HALF, np.ones((1, 3)))
    with pytest.raises(TypeError, match="op must be an AssociativeOp"):
        scan(lambda a, b: a, elems)
    with pytest.raises(TypeError, match="elems must be a non-empty tuple"):
        scan(assoc.AFFINE, np.ones((1, 3)))
    with pytest.raises(TypeError, match="elems must be a non-empty tuple"):
        scan(assoc.AFFINE, ())
    with pytest.raises(ValueError, match=r"share the length of the scan axis 1, got \[3, 2\]"):
        scan(assoc.AFFINE, (A_HALF, np.ones((1, 2))))


def test_chunk_must_be_a_positive_int():
    elems = (A_HALF, np.ones((1, 3)))
    with pytest.raises(TypeError, match="chunk must be a positive integer"):
        assoc.scan_chunked(assoc.AFFINE, elems, chunk=1.5)
    with pytest.raises(TypeError, match="chunk must be a positive integer"):
        assoc.scan_chunked(assoc.AFFINE, elems, chunk=True)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        assoc.scan_chunked(assoc.AFFINE, elems, chunk=-1)


@pytest.mark.parametrize("args,kw,err,match", [
    ((np.ones((2, 3), int), np.ones((2, 3, 4))), {}, TypeError, "s must have dtype"),
    ((np.ones((2, 3)), np.ones((2, 3, 4), bool)), {}, TypeError, "v must have dtype"),
    ((np.ones((2, 3)), np.ones((2, 4, 4))), {}, ValueError, r"v must have shape s.shape"),
    ((np.ones((2, 3)), np.ones((2, 3, 4))), dict(mask=np.ones((2, 3))), TypeError,
     "mask must be a boolean"),
    ((np.ones((2, 3)), np.ones((2, 3, 4))), dict(mask=np.ones((3,), bool)), ValueError,
     "mask must have the shape of s or of a prefix"),
])
def test_softmax_leaf_checks(args, kw, err, match):
    with pytest.raises(err, match=match):
        assoc.softmax_leaf(*args, **kw)


def test_softmax_leaf_prefix_mask_makes_the_identity():
    m, u, w = assoc.softmax_leaf(np.zeros((1, 2, 3)), np.ones((1, 2, 3, 4)),
                                 np.array([[True, False]]))
    assert np.isneginf(m[0, 1]).all() and (u[0, 1] == 0).all() and (w[0, 1] == 0).all()
    assert (m[0, 0] == 0).all() and (u[0, 0] == 1).all() and (w[0, 0] == 1).all()


@pytest.mark.parametrize("args,err,match", [
    (((2, 3), 4, np.int32), TypeError, "dtype must be float32 or float64"),
    (((2, 3), 4, None), TypeError, "dtype must be float32 or float64"),
    (((2, 3), 0, np.float64), ValueError, "D must be an integer >= 1"),
    (((2, 3), 2.0, np.float64), TypeError, "D must be an integer"),
    (([2, 3], 4, np.float64), TypeError, "shape must be a tuple of ints"),
    (((2, -1), 4, np.float64), ValueError, r"shape\[1\] must be an integer >= 0"),
    (((2, 1.5), 4, np.float64), TypeError, r"shape\[1\] must be an integer"),
])
def test_softmax_identity_checks(args, err, match):
    with pytest.raises(err, match=match):
        assoc.softmax_identity(*args)


def test_softmax_identity_accepts_an_int_shape():
    m, u, w = assoc.softmax_identity(3, 2, np.float32)
    assert m.shape == (3,) and w.shape == (3, 2) and w.dtype == np.float32

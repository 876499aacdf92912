"""refseq.testing.gradcheck: it passes correct gradients and fails the classic backward bugs.

The model is ``y = tanh(W x + b) * x`` with a square ``W``, so that a transposed gradient has
the right shape, and ``x`` enters twice, so that a gradient can miss a term. Every form of the
check (entrywise, per-argument directional, joint directional, Jacobian) must pass the correct
gradient and raise on the transposed one, on one scaled by ``1 + 1e-5`` and on one missing a
term.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.testing import gradcheck as gc
from refseq.testing.strategies import seeds


def problem(seed, n=4):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    x, b, c = rng.standard_normal(n), 0.3 * rng.standard_normal(n), rng.standard_normal(n)
    return rng, {"W": W, "x": x, "b": b}, c


def forward(p):
    return np.tanh(p["W"] @ p["x"] + p["b"]) * p["x"]


def gradients(p, c, bug=None):
    """The VJP of ``forward`` with cotangent ``c``, or one with a classic bug."""
    t = np.tanh(p["W"] @ p["x"] + p["b"])
    dz = c * p["x"] * (1 - t**2)
    g = {"W": np.outer(dz, p["x"]), "x": p["W"].T @ dz + c * t, "b": dz}
    if bug == "transposed":
        g["W"], g["x"] = g["W"].T, p["W"] @ dz + c * t
    elif bug == "scaled":
        g = {k: v * (1 + 1e-5) for k, v in g.items()}
    elif bug == "missing_term":
        g["x"] = p["W"].T @ dz  # forgets the direct path of x into the product
    return g


def jacobian_x(p, bug=None):
    """d y / d x, or one with a classic bug."""
    t = np.tanh(p["W"] @ p["x"] + p["b"])
    J = (p["x"] * (1 - t**2))[:, None] * p["W"] + np.diag(t)
    if bug == "transposed":
        return J.T
    if bug == "scaled":
        return J * (1 + 1e-5)
    if bug == "missing_term":
        return J - np.diag(t)
    return J


def check_form(form, seed, bug=None):
    rng, p, c = problem(seed)
    loss = gc.cotangent_loss(lambda: forward(p), c)
    if form == "entrywise":
        gc.assert_entrywise(loss, p, gradients(p, c, bug))
    elif form == "directional":
        gc.assert_directional(loss, p, gradients(p, c, bug), rng=rng, n_directions=2)
    elif form == "joint":
        gc.assert_directional(loss, p, gradients(p, c, bug), rng=rng, per_argument=False)
    else:
        gc.assert_jacobian(lambda: forward(p), p["x"], jacobian_x(p, bug))


FORMS = ["entrywise", "directional", "joint", "jacobian"]
BUGS = ["transposed", "scaled", "missing_term"]


@pytest.mark.parametrize("form", FORMS)
@given(seed=seeds())
def test_correct_gradients_pass(form, seed):
    check_form(form, seed)


@pytest.mark.parametrize("bug", BUGS)
@pytest.mark.parametrize("form", FORMS)
@given(seed=seeds())
def test_classic_bugs_fail(form, bug, seed):
    with pytest.raises(AssertionError, match="gradcheck"):
        check_form(form, seed, bug)


def test_failure_message_names_argument_entry_values_and_bound():
    _, p, c = problem(0)
    g = gradients(p, c)
    g["W"] = g["W"].copy()
    g["W"][2, 1] += 1e-3
    with pytest.raises(AssertionError) as info:
        gc.assert_entrywise(gc.cotangent_loss(lambda: forward(p), c), p, g)
    msg = str(info.value)
    assert "gradcheck W:" in msg and "1/16 entries" in msg and "at (2, 1)" in msg
    assert "numerical" in msg and "analytic" in msg and "bound" in msg and "S = " in msg


def test_arrays_are_restored_bit_for_bit_also_when_the_loss_raises():
    _, p, c = problem(1)
    before = {k: v.copy() for k, v in p.items()}
    gc.assert_entrywise(gc.cotangent_loss(lambda: forward(p), c), p, gradients(p, c))
    calls = []

    def bad_loss():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return float(forward(p) @ c)

    u = {"W": np.ones((4, 4)), "x": np.ones(4)}
    with pytest.raises(RuntimeError, match="boom"):
        gc.directional_derivative(bad_loss, p, u)
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])


def test_a_loss_that_ignores_an_argument_gives_exactly_zero():
    _, p, c = problem(2)
    p["unused"] = np.array([0.7, -1.3])
    loss = gc.cotangent_loss(lambda: forward(p), c)
    num, _ = gc.directional_derivative(loss, p, {"unused": np.array([1.0, 2.0])})
    assert num == 0.0
    gc.assert_entrywise(loss, p, {"unused": np.zeros(2)})


def test_stencil_is_sixth_order():
    """Exact on polynomials of degree 6; on t**7 the error is h**6 / 140 * 7! = 36 h**6."""
    x = np.zeros(1)
    for degree, expected in ((6, 0.0), (7, 36 * 0.1**6)):
        num, _ = gc.directional_derivative(lambda d=degree: float(x[0] ** d), {"x": x},
                                           {"x": np.ones(1)}, step=0.1)
        assert num == pytest.approx(expected, abs=1e-15)


def test_bound_is_the_documented_rule():
    assert gc.ROUNDOFF == pytest.approx(11 / 6 * 8)
    b = gc.bound(np.array([2.0, -3.0]), 5.0)
    np.testing.assert_allclose(b, gc.RTOL * np.array([2.0, 3.0]) + gc.ROUNDOFF * gc.EPS * 5.0
                               / gc.STEP, rtol=1e-15)
    # a scaled gradient exceeds the rule by two orders of magnitude
    assert 1e-5 / gc.RTOL == pytest.approx(100)


def test_cotangent_loss_draws_a_structured_cotangent_and_measures_its_terms():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(4)
    loss = gc.cotangent_loss(lambda: (a, [b, None]), rng=rng)
    ca, (cb, cn) = loss.cotangent[0], loss.cotangent[1]
    assert ca.shape == a.shape and cb.shape == b.shape and cn is None
    value, scale = loss.evaluate()
    assert value == pytest.approx(float((ca * a).sum() + (cb * b).sum()), rel=1e-14)
    assert scale == pytest.approx(float(np.abs(ca * a).sum() + np.abs(cb * b).sum()), rel=1e-14)
    assert loss() == value
    with pytest.raises(ValueError, match="cotangent has 2 leaves"):
        gc.cotangent_loss(lambda: (a, b, b), (ca, cb)).evaluate()


def test_array_valued_jvp_checks_rows_independently():
    rng, p, _ = problem(4)
    X = rng.standard_normal((3, 4))  # three independent rows

    def rows():
        return np.tanh(X @ p["W"].T).sum(-1)

    u = rng.standard_normal(X.shape)
    jvp = ((1 - np.tanh(X @ p["W"].T) ** 2) * (u @ p["W"].T)).sum(-1)
    gc.assert_jvp(rows, {"X": X}, {"X": u}, jvp)
    bad = jvp.copy()
    bad[1] *= 1 + 1e-5
    with pytest.raises(AssertionError, match=r"at \(1,\)"):
        gc.assert_jvp(rows, {"X": X}, {"X": u}, bad)


def test_jacobian_matches_a_closed_form():
    _, p, _ = problem(5)
    J = gc.jacobian(lambda: forward(p), p["x"])
    np.testing.assert_allclose(J, jacobian_x(p), rtol=1e-9, atol=1e-12)


def test_entrywise_subset_of_indices():
    _, p, c = problem(6)
    g = gradients(p, c)
    g["W"] = g["W"].copy()
    g["W"][0, 0] += 1.0  # wrong, but not among the checked entries
    loss = gc.cotangent_loss(lambda: forward(p), c)
    gc.assert_entrywise(loss, p, {"W": g["W"]}, indices={"W": [(1, 2), (3, 3)]})
    with pytest.raises(AssertionError, match=r"at \(0, 0\)"):
        gc.assert_entrywise(loss, p, {"W": g["W"]}, indices={"W": [(1, 2), (0, 0)]})


def test_a_kink_inside_the_stencil_is_reported():
    x = np.array([1e-4])  # |x| has its kink 1e-4 away: inside the stencil (3h = 3e-4)
    with pytest.raises(AssertionError, match="not smooth within the stencil"):
        gc.assert_entrywise(lambda: float(np.abs(x[0])), {"x": x}, {"x": np.ones(1)})


def test_identically_zero_loss_needs_a_derived_atol():
    """Cross-entropy over one class is 0 for every logit; its analytic gradient is p - 1 with
    p = 1 up to rounding: S = 0 leaves only the caller's derived absolute term."""
    z = np.array([0.3])
    g = np.exp(z - z.max()) / np.exp(z - z.max()).sum() * (1 + 2 * gc.EPS) - 1.0  # 4.4e-16

    def loss():
        return float(z[0] - (z[0] + np.log(np.exp(0.0))))

    with pytest.raises(AssertionError):
        gc.assert_entrywise(loss, {"z": z}, {"z": g})
    gc.assert_entrywise(loss, {"z": z}, {"z": g}, atol=16 * gc.EPS)


@given(seed=seeds(), n=st.integers(1, 6))
def test_float32_arrays_and_shape_mismatches_are_refused(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(np.float32)
    with pytest.raises(TypeError, match="float64"):
        gc.assert_entrywise(lambda: float(a.sum()), {"a": a}, {"a": np.ones(n)})
    b = rng.standard_normal(n)
    with pytest.raises(AssertionError, match="gradient shape"):
        gc.assert_directional(lambda: float(b @ b), {"b": b}, {"b": np.ones(n + 1)}, rng=rng)

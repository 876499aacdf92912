"""Annealed gradient noise (arXiv 1511.06807, Eq. 1; docs/papers/gradient-noise.md, "How each
property is tested": properties 1-9, numbered as the sections below).

Statistical tests use fixed seeds (deterministic suite) and 5-sigma bounds derived from the sample
size ``n``: the sample mean of ``n`` draws of ``N(0, s^2)`` has standard error ``s / sqrt(n)``, the
sample variance has relative standard error ``sqrt(2 / (n - 1))``, and a sample correlation of
independent draws has standard error ``1 / sqrt(n)``. A 5-sigma bound is exceeded by a correct
implementation with probability about 6e-7 per check (two-sided normal tail), so these are
not loosened tolerances; tighter 4-sigma bands (exceeded with probability about 6e-5 per
check) would also pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.testing.strategies import seeds
from refseq.train import (
    SGD,
    Adam,
    GradientNoise,
    NoisyOptimizer,
    add_gradient_noise,
    apply_clip_and_noise,
    clip_grad_norm,
    constant_noise_std,
    global_norm,
    noise_std,
    noise_variance,
    train,
)

N = 200_000  # draws per statistical check


def assert_moments(xi, sigma):
    n = xi.size
    assert abs(xi.mean()) <= 5 * sigma / np.sqrt(n)
    rel = xi.var(ddof=1) / sigma**2 - 1
    assert abs(rel) <= 5 * np.sqrt(2 / (n - 1)), rel
    z = xi.ravel() / sigma
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) <= 5 / np.sqrt(n - 1)  # lag-one across elements


# --- 1. schedule ----------------------------------------------------------------------------

@given(eta=st.floats(1e-4, 10.0), gamma=st.floats(0.05, 2.0), t=st.integers(0, 10**6))
def test_schedule_formula(eta, gamma, t):
    assert noise_variance(0, eta, gamma) == eta
    assert noise_variance(t + 1, eta, gamma) < noise_variance(t, eta, gamma)
    ratio = noise_variance(2 * t + 1, eta, gamma) / noise_variance(t, eta, gamma)
    np.testing.assert_allclose(ratio, 2.0**-gamma, rtol=1e-14)
    assert noise_std(t, eta, gamma) == np.sqrt(noise_variance(t, eta, gamma))  # eta scales variance
    assert constant_noise_std(eta) == np.sqrt(eta)


def test_schedule_vectorised_equals_scalar_and_traps():
    t = np.arange(0, 5000, 7)
    vec = noise_variance(t, 0.3)
    assert vec.dtype == np.float64
    np.testing.assert_array_equal(vec, [noise_variance(int(s), 0.3) for s in t])
    assert noise_std(0, 0.25) == 0.5  # std = sqrt(eta) at t = 0, not eta
    with pytest.raises(ValueError):
        noise_variance(-1, 0.1)
    with pytest.raises(ValueError):
        noise_variance(1.5, 0.1)  # t counts updates: integers only


# --- 2. zero noise ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: SGD(0.05, momentum=0.9), lambda: Adam(0.01)])
def test_eta_zero_is_bit_identical_to_the_base_optimiser(make):
    rng = np.random.default_rng(0)
    p0 = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3), "s": np.array(0.5)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in p0.items()} for _ in range(100)]
    plain, noisy = {k: v.copy() for k, v in p0.items()}, {k: v.copy() for k, v in p0.items()}
    base, wrapped = make(), NoisyOptimizer(make(), eta=0.0, rng=1, clip_norm=None)
    for g in grads:
        base.step(plain, g)
        wrapped.step(noisy, g)
    for k in p0:
        assert np.array_equal(plain[k], noisy[k])
    assert wrapped.t == 100


# --- 3. moments -------------------------------------------------------------------------------

@pytest.mark.parametrize("t, eta", [(0, 0.25), (9, 0.01), (999, 1.0)])
def test_noise_moments_match_the_schedule(t, eta):
    rng = np.random.default_rng(123 + t)
    g = {"a": rng.standard_normal((N // 2,)) * 7, "b": rng.standard_normal((N // 4, 2))}
    out = add_gradient_noise(g, t, eta, rng=np.random.default_rng(t))
    xi = np.concatenate([(out[k] - g[k]).ravel() for k in sorted(g)])
    sigma = np.sqrt(eta / (1 + t) ** 0.55)  # written out, independent of noise_std
    assert_moments(xi, sigma)


def test_noise_is_gaussian_and_independent_across_steps():
    stats = pytest.importorskip("scipy.stats")
    hook = GradientNoise(0.3, rng=7)
    g = {"w": np.zeros(N)}
    xi0, xi1 = hook(g)["w"], hook(g)["w"]  # t = 0, then t = 1
    z0, z1 = xi0 / np.sqrt(0.3), xi1 / np.sqrt(0.3 / 2**0.55)
    assert_moments(xi0, np.sqrt(0.3))
    assert_moments(xi1, np.sqrt(0.3 / 2**0.55))
    assert abs(np.corrcoef(z0, z1)[0, 1]) <= 5 / np.sqrt(N - 1)
    assert stats.kstest(z0, "norm").pvalue > 1e-4  # fixed seed: deterministic


def test_constant_schedule_does_not_decay():
    hook = GradientNoise(0.04, rng=0, schedule="constant", t0=10**6)
    xi = hook({"w": np.zeros(N)})["w"]
    assert_moments(xi, 0.2)


# --- 4. determinism and the stream -------------------------------------------------------------

@given(seed=seeds())
def test_same_seed_same_noise_and_sorted_name_order(seed):
    g = {"b": np.ones(3), "a": np.zeros((2, 2))}
    g_reordered = {"a": g["a"], "b": g["b"]}
    x = add_gradient_noise(g, 3, 0.1, rng=np.random.default_rng(seed))
    y = add_gradient_noise(g_reordered, 3, 0.1, rng=np.random.default_rng(seed))
    for k in g:
        assert np.array_equal(x[k], y[k])
    # the documented stream: one standard_normal per tensor, sorted names, float64, times sigma
    r = np.random.default_rng(seed)
    sigma = np.sqrt(0.1 / 4**0.55)
    za, zb = r.standard_normal((2, 2)), r.standard_normal(3)
    assert np.array_equal(x["a"], g["a"] + sigma * za)
    assert np.array_equal(x["b"], g["b"] + sigma * zb)
    z = add_gradient_noise(g, 3, 0.1, rng=np.random.default_rng(seed + 1))
    assert not np.array_equal(x["a"], z["a"])


def test_inputs_are_untouched():
    g = {"w": np.ones(5)}
    add_gradient_noise(g, 0, 1.0, rng=np.random.default_rng(0))
    assert np.array_equal(g["w"], np.ones(5))
    with pytest.raises(TypeError, match="Generator"):
        add_gradient_noise(g, 0, 1.0, rng=0)


# --- 5. SGD decomposition -----------------------------------------------------------------------

@given(seed=seeds(), lr=st.floats(1e-3, 1.0), t0=st.integers(0, 100))
def test_sgd_with_noise_is_the_plain_update_minus_lr_xi(seed, lr, t0):
    rng = np.random.default_rng(seed)
    theta = {"W": rng.standard_normal((3, 5)), "b": rng.standard_normal(5)}
    g = {k: rng.standard_normal(v.shape) for k, v in theta.items()}
    noisy = {k: v.copy() for k, v in theta.items()}
    NoisyOptimizer(SGD(lr), 0.3, rng=seed, t0=t0).step(noisy, g)
    plain = {k: v.copy() for k, v in theta.items()}
    SGD(lr).step(plain, g)
    r, sigma = np.random.default_rng(seed), np.sqrt(0.3 / (1 + t0) ** 0.55)
    xi = {k: sigma * r.standard_normal(theta[k].shape) for k in sorted(theta)}  # replayed draws
    eps = np.finfo(np.float64).eps
    for k in theta:
        assert np.array_equal(noisy[k], theta[k] - lr * (g[k] + xi[k]))
        bound = 4 * eps * (np.abs(theta[k]) + lr * (np.abs(g[k]) + np.abs(xi[k])))  # rounding
        assert np.all(np.abs((noisy[k] - plain[k]) - (-lr * xi[k])) <= bound)


# --- 6. masks -----------------------------------------------------------------------------------

def test_masked_entries_get_no_noise():
    rng = np.random.default_rng(0)
    g = {"w": rng.standard_normal((4, 6)), "v": rng.standard_normal(3)}
    m = rng.random((4, 6)) < 0.5
    out = add_gradient_noise(g, 0, 1.0, rng=np.random.default_rng(1), masks={"w": m})
    assert np.array_equal(out["w"][~m], g["w"][~m])
    assert np.all(out["w"][m] != g["w"][m]) and np.all(out["v"] != g["v"])
    # the stream does not depend on the mask: unmasked entries equal the unmasked run's
    full = add_gradient_noise(g, 0, 1.0, rng=np.random.default_rng(1))
    assert np.array_equal(out["w"][m], full["w"][m]) and np.array_equal(out["v"], full["v"])


# --- 7. ordering with clipping -------------------------------------------------------------------

def test_after_clip_noise_has_the_schedule_variance_whatever_the_gradient():
    g = {"w": np.full(N, 10.0)}  # norm ~4.5e3, clipped to 1: clipped entries ~2.2e-3
    hook = GradientNoise(0.01, rng=3, t0=4, order="after_clip")
    out, raw = apply_clip_and_noise(g, clip_norm=1.0, noise=hook)
    clipped, total = clip_grad_norm(g, 1.0)
    assert raw == total
    assert_moments(out["w"] - clipped["w"], np.sqrt(0.01 / 5**0.55))


@given(seed=seeds(), c=st.floats(1e-3, 10.0), scale=st.floats(1e-3, 1e3))
def test_before_clip_bounds_the_update_norm(seed, c, scale):
    rng = np.random.default_rng(seed)
    g = {"a": rng.standard_normal(7) * scale, "b": rng.standard_normal((2, 3)) * scale}
    hook = GradientNoise(1.0, rng=seed, order="before_clip")
    out, _ = apply_clip_and_noise(g, clip_norm=c, noise=hook)
    assert global_norm(out) <= c * (1 + 1e-12)


@given(seed=seeds())
def test_orders_coincide_without_clipping(seed):
    g = {"a": np.random.default_rng(seed).standard_normal(9)}
    outs = [apply_clip_and_noise(g, clip_norm=np.inf,
                                 noise=GradientNoise(0.5, rng=seed, order=o))[0]
            for o in ("after_clip", "before_clip")]
    assert np.array_equal(outs[0]["a"], outs[1]["a"])


def test_train_loop_applies_clip_then_noise():
    rng = np.random.default_rng(0)
    p0 = {"w": rng.standard_normal(6)}
    g_fixed = {"w": rng.standard_normal(6) * 100}
    params = {k: v.copy() for k, v in p0.items()}
    train(params, lambda p, b: (1.0, g_fixed), lambda t: None, SGD(0.1), steps=1, clip=2.0,
          noise=GradientNoise(0.2, rng=5), log=None)
    clipped, _ = clip_grad_norm(g_fixed, 2.0)
    xi = np.sqrt(0.2) * np.random.default_rng(5).standard_normal(6)
    want = p0["w"] - 0.1 * (clipped["w"] + xi)
    assert np.array_equal(params["w"], want)


# --- 8. dtypes and shapes ----------------------------------------------------------------------

@pytest.mark.parametrize("draw_dtype", [np.float64, np.float32])
def test_dtypes_shapes_scalars(draw_dtype):
    g = {"f32": np.ones((2, 3), np.float32), "s": np.array(2.0), "e": np.zeros((0, 4))}
    out = add_gradient_noise(g, 0, 1.0, rng=np.random.default_rng(0), draw_dtype=draw_dtype)
    for k in g:
        assert out[k].dtype == g[k].dtype and out[k].shape == g[k].shape
    assert out["s"] != 2.0


def test_empty_dict_is_a_no_op_that_counts():
    hook = GradientNoise(0.1, rng=0)
    assert hook({}) == {} and hook.t == 1
    opt = NoisyOptimizer(SGD(0.1), 0.1, rng=0)
    assert opt.step({}, {}) == {} and opt.t == 1


# --- 9. step counting -------------------------------------------------------------------------

@given(t0=st.integers(0, 1000), k=st.integers(1, 5))
def test_kth_call_uses_t0_plus_k_minus_1(t0, k):
    opt = NoisyOptimizer(SGD(0.1), 0.3, rng=0, t0=t0)
    p = {"w": np.zeros(2)}
    for _ in range(k):
        opt.step(p, {"w": np.zeros(2)})
    assert opt.noise.last_std == noise_std(t0 + k - 1, 0.3) and opt.t == t0 + k

"""The JAX adapter for real (skipped where jax is absent): a scan written with ``jax.lax.scan``
passes the linear_scan contract, its backward through ``jax.vjp``; wrong variants fail."""

from __future__ import annotations

import pytest

from refseq.oracle import OracleFailure, check

jax = pytest.importorskip("jax")
jnp = jax.numpy


def lax_scan(a, b, h0, reverse=False):
    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    A, Bx = jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)  # time-major for lax.scan
    _, hs = jax.lax.scan(step, h0, (A, Bx), reverse=bool(reverse))
    return jnp.swapaxes(hs, 0, 1)


def lax_scan_ignoring_h0(a, b, h0, reverse=False):
    return lax_scan(a, b, jnp.zeros_like(h0), reverse)  # bug: the carried state is dropped


def test_a_lax_scan_passes_with_its_vjp():
    report = check(lax_scan, "linear_scan", adapter="jax", max_examples=3)
    props = {c.property for c in report.cases}
    assert report.ok and {"carried state", "reverse", "autograd"} <= props
    assert {c.dtype for c in report.cases} == {"float32", "float64"}


def test_a_lax_scan_that_drops_h0_fails_naming_the_case():
    with pytest.raises(OracleFailure, match="linear_scan: property") as e:
        check(lax_scan_ignoring_h0, "linear_scan", adapter="jax", max_examples=2)
    assert "adapter='jax'" in str(e.value) or "jax" in str(e.value)


def test_jax_nn_functions_against_their_contracts():
    assert check(jax.nn.softmax, "softmax", adapter="jax", max_examples=2).ok
    assert check(lambda x: jax.nn.gelu(x, approximate=False), "gelu", adapter="jax",
                 max_examples=2).ok
    with pytest.raises(OracleFailure, match="gelu: property"):
        check(jax.nn.gelu, "gelu", adapter="jax", max_examples=2)  # jax's default is tanh GELU

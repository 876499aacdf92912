"""Helpers shared by the rnn-review tests: fourth-order finite differences, ragged lengths,
the LSTM switch grid."""

from __future__ import annotations

import itertools

import numpy as np

EPS, FD_RTOL, FD_ATOL = 1e-4, 1e-6, 1e-9
SWITCHES = [dict(forget_gate=fg, peepholes=pp, output_activation=oa)
            for fg, pp, oa in itertools.product([True, False], [False, True], ["tanh", "identity"])]


def fd_check(loss, arrays, grads, rtol=FD_RTOL, atol=FD_ATOL):
    """Fourth-order central differences of ``loss()`` w.r.t. every entry of every array (mutated
    in place): ``(-f(+2e) + 8 f(+e) - 8 f(-e) + f(-2e)) / 12e`` with ``e = 1e-4`` has error
    ~1e-12 here, where the second-order form with ``e = 1e-6`` is limited by round-off to ~1e-9.
    """
    for name, a in arrays.items():
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            f = {}
            for k in (-2, -1, 1, 2):
                a[idx] = old + k * EPS
                f[k] = loss()
            a[idx] = old
            num[idx] = (-f[2] + 8 * f[1] - 8 * f[-1] + f[-2]) / (12 * EPS)
        np.testing.assert_allclose(grads[name], num, rtol=rtol, atol=atol, err_msg=name)


def ragged(rng, B, T):
    L = rng.integers(0, T + 1, B)
    L[rng.integers(B)] = T  # at least one full sequence
    return L

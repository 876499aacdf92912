"""Directional finite differences shared by the PV-RNN and VRNN gradient tests."""

from __future__ import annotations

import numpy as np

H_FD = 1e-6


def assert_fd_agrees(f, arr, grad, rng, f0):
    """Central difference of ``f()`` along a random direction ``u`` of ``arr`` (perturbed in
    place, then restored) vs ``<grad, u>``. Bound: rtol 1e-5 on the analytic value plus the
    round-off of the difference quotient, ``1e-9 + 50 eps (|f0| + 1) / h`` (derived)."""
    u = rng.standard_normal(arr.shape)
    a0 = arr.copy()
    arr[...] = a0 + H_FD * u
    fp = f()
    arr[...] = a0 - H_FD * u
    fm = f()
    arr[...] = a0
    fd, an = (fp - fm) / (2 * H_FD), float((grad * u).sum())
    atol = 1e-9 + 50 * np.finfo(float).eps * (abs(f0) + 1) / H_FD
    assert abs(fd - an) <= 1e-5 * abs(an) + atol, (fd, an)

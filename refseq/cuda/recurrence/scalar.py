"""The cuda tier's activations: ``exp``, ``tanh`` and ``sigmoid`` on the device libm.

This module is the *activation set* that :func:`refseq.jit.recurrence.cells.build` closes the
shared cell math over for the cuda kernels (the jit tier passes
:mod:`refseq.jit.recurrence.scalar`, whose float32 intrinsics do not compile for a GPU).
``math.exp`` and ``math.tanh`` are libdevice's on a GPU and libm's under the simulator (which
runs the cell functions as compiled CPU code); the sigmoid is the two-branch form, full
precision in both tails. No ``fastmath``; constants in the argument's dtype. Nothing here
imports ``numba.cuda``.
"""

from __future__ import annotations

import math

import numba

__all__ = ["exp", "tanh", "sigmoid"]

exp = math.exp
tanh = math.tanh


@numba.njit(cache=True, error_model="numpy")
def sigmoid(x):  # pragma: no cover - compiled
    """``1/(1+e^{-x})`` for x >= 0, ``e^x/(1+e^x)`` below, in the dtype of x."""
    one = type(x)(1.0)
    if x >= type(x)(0.0):
        return one / (one + math.exp(-x))
    e = math.exp(x)
    return e / (one + e)

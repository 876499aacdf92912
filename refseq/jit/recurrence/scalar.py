"""The jit tier's activations: ``exp``, ``tanh`` and ``sigmoid`` for compiled CPU code.

This module is the *activation set* that :func:`refseq.jit.recurrence.cells.build` closes the
shared cell math over for the jit kernels (the cuda tier passes
:mod:`refseq.cuda.recurrence.scalar` instead). Each name is a stub whose implementation Numba
picks by argument dtype at compile time (:func:`numba.extending.overload`); calling a stub
from Python raises.

float64 uses libm (``math.exp``, ``math.tanh``; the sigmoid as ``1/(1+e^{-x})`` for x >= 0 and
``e^x/(1+e^x)`` below). float32 evaluates in float64 with a branch-free Cephes ``exp`` (about 1
float64 ulp; the ``2^n`` scale is built from the exponent bits), returned as a ratio so that
each function takes one division (:func:`_exp_ratio`), and rounds once: correctly rounded
float32 values except in rare double-rounding cases (``tests/jit/test_tile.py`` checks this on
640,000 points), and the pointwise loops vectorise on CPUs without SVML (``error_model="numpy"``
removes the division-by-zero branch that would block it). The polynomials use ``llvm.fma.f64``,
an LLVM intrinsic that NVVM does not get from here: these functions are CPU-only.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

__all__ = ["exp", "tanh", "sigmoid"]


def exp(x):  # pragma: no cover - replaced by the overload inside kernels
    """``e^x`` in the dtype of x (compiled code only)."""
    raise NotImplementedError("refseq.jit.recurrence.scalar.exp runs in compiled code only")


def tanh(x):  # pragma: no cover
    """``tanh x`` in the dtype of x (compiled code only)."""
    raise NotImplementedError("refseq.jit.recurrence.scalar.tanh runs in compiled code only")


def sigmoid(x):  # pragma: no cover
    """``1 / (1 + e^{-x})`` in the dtype of x (compiled code only)."""
    raise NotImplementedError("refseq.jit.recurrence.scalar.sigmoid runs in compiled code only")


@intrinsic
def _bits_to_f64(typingctx, x):
    """Reinterpret an int64 as a float64 (an LLVM ``bitcast``)."""
    if x != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(x), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM ``llvm.fma.f64``; a vector FMA where the loop
    vectorises, a correctly rounded libm call on CPUs without FMA, so the same bits anywhere)."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, sig, args):
        f64 = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64] * 3),
                                            "llvm.fma.f64")
        return builder.call(fn, args)

    return types.float64(a, b, c), codegen


_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
      2.00000000000000000009e0)


@numba.njit(cache=True, error_model="numpy")
def _exp_ratio(x):  # pragma: no cover - compiled
    """``(u, v)`` with ``e^x = u / v`` in float64, by branch-free Cephes ``exp``: ``e^x = 2^n
    e^r``, |r| <= ln2/2, and the (2, 3) Padé form ``e^r = (Q + P) / (Q - P)``, so
    ``u = 2^n (Q + P)`` and ``v = Q - P`` (about 1 ulp each; Q - P lies in [1.6, 2.4]). The
    division is left to the caller, who folds it into its own: one division per sigmoid or tanh
    instead of two. x is clamped to [-708, 709] so that ``2^n`` stays normal; NaN passes."""
    x = -708.0 if x < -708.0 else (709.0 if x > 709.0 else x)
    fx = np.floor(x * 1.4426950408889634 + 0.5)
    r = _fma(fx, -1.42860682030941723212e-6, _fma(fx, -6.93145751953125e-1, x))
    rr = r * r
    P = r * _fma(_fma(_P[0], rr, _P[1]), rr, _P[2])
    Q = _fma(_fma(_fma(_Q[0], rr, _Q[1]), rr, _Q[2]), rr, _Q[3])
    scale = _bits_to_f64((np.int64(fx) + np.int64(1023)) << np.int64(52))
    return scale * (Q + P), Q - P


@numba.njit(cache=True, error_model="numpy")
def _tanh_f64(x):  # pragma: no cover - compiled
    """``tanh`` in float64 without libm: ``(e^{2|x|} - 1) / (e^{2|x|} + 1)`` with the sign of x
    (relative error below 1e-13 for |x| >= 0.01), the series ``x - x^3/3 + 2x^5/15`` below;
    branch-free (both are evaluated)."""
    a = abs(x)
    z = x * x
    series = x * (1.0 - z * (1.0 / 3.0 - z * (2.0 / 15.0)))
    u, v = _exp_ratio(2.0 * a)
    e = (u - v) / (u + v)
    e = e if x >= 0 else -e
    return series if a < 0.01 else e


@overload(exp)
def _exp_impl(x):
    if x == types.float32:

        def exp32(x):
            u, v = _exp_ratio(np.float64(x))
            return np.float32(u / v)

        return exp32
    if x == types.float64:
        return lambda x: math.exp(x)
    return None


@overload(tanh)
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: np.float32(_tanh_f64(np.float64(x)))
    if x == types.float64:
        return lambda x: math.tanh(x)
    return None


@overload(sigmoid)
def _sigmoid_impl(x):
    if x == types.float32:

        def sigmoid32(x):
            """``1 / (1 + u/v) = v / (v + u)`` with ``e^{-x} = u / v``."""
            u, v = _exp_ratio(-np.float64(x))
            return np.float32(v / (v + u))

        return sigmoid32
    if x == types.float64:

        def sigmoid64(x):
            """``1/(1+e^{-x})`` for x >= 0, ``e^x/(1+e^x)`` below (full precision in both tails)."""
            if x >= 0:
                return 1.0 / (1.0 + math.exp(-x))
            e = math.exp(x)
            return e / (1.0 + e)

        return sigmoid64
    return None

"""CUDA twin of the input projection (:mod:`refseq.recurrence.projection`).

Both directions are products of 2-D matrices over the flattened ``B*T`` rows, computed by one
kernel: :func:`build` makes ``matmul[grid, (16, 16)](A, B, C)``, ``C = A @ B`` with one thread
per entry of ``C`` summing over ``k = 0, 1, ...`` in order (no atomics, no split reduction:
bitwise the same run to run). This is a plain device matmul for correctness and for keeping
the data on the GPU between projection and recurrence; it makes no attempt at tensor-core
speed.

``numba.cuda`` is bound to this module's global ``cuda`` by :func:`build` (see
:func:`refseq.cuda.require_numba_cuda`).
"""

from __future__ import annotations

import numpy as np

from refseq.cuda import require_numba_cuda, to_host
from refseq.recurrence.projection import check_projection_args, check_projection_backward_args

cuda = None  # numba.cuda, bound by build()
TILE = 16  #: threads per block along each output axis
_KERNELS: dict = {}


def build(dtype):
    """The ``matmul`` kernel for the NumPy float ``dtype``."""
    global cuda
    cuda = require_numba_cuda(__name__)
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def matmul(A, B, C):
        """Thread (i, j) writes ``C[i, j] = sum_k A[i, k] B[k, j]``; threads past the edges
        of ``C`` return."""
        i, j = cuda.grid(2)
        if i >= C.shape[0] or j >= C.shape[1]:
            return
        acc = zero
        for k in range(A.shape[1]):
            acc += A[i, k] * B[k, j]
        C[i, j] = acc

    return matmul


def _matmul(A, B):
    """``A @ B`` for 2-D host arrays of one dtype, on the device; returns a host array."""
    key = A.dtype.str
    if key not in _KERNELS:
        _KERNELS[key] = build(A.dtype)
    kernel = _KERNELS[key]
    M, N = A.shape[0], B.shape[1]
    C = cuda.device_array((M, N), A.dtype)
    if M and N:
        grid = ((M + TILE - 1) // TILE, (N + TILE - 1) // TILE)
        kernel[grid, (TILE, TILE)](cuda.to_device(np.ascontiguousarray(A)),
                                   cuda.to_device(np.ascontiguousarray(B)), C)
    return C.copy_to_host()


def project_inputs(x, W, bias=None, *, check_finite=True):
    """CUDA twin of :func:`refseq.recurrence.project_inputs` (same arguments, shapes, dtypes and
    errors): ``Wx = x W^T (+ bias)`` as one device matmul over the ``B*T`` rows."""
    x, W, bias = check_projection_args(to_host(x), to_host(W), to_host(bias),
                                       check_finite=check_finite)
    require_numba_cuda("refseq.cuda.recurrence.project_inputs")
    B, T, I = x.shape
    GND = int(np.prod(W.shape[:3]))  # G_w * N * D (explicit: B*T may be 0)
    Wx = _matmul(x.reshape(B * T, I), W.reshape(GND, I).T).reshape((B, T) + W.shape[:3])
    if bias is not None:
        Wx += bias
    return Wx


def project_inputs_backward(dWx, x, W, *, check_finite=True):
    """CUDA twin of :func:`refseq.recurrence.project_inputs_backward`: ``(dx, dW)`` with
    ``dx = dWx W`` and ``dW = dWx^T x`` as device matmuls over the ``B*T`` rows."""
    dWx, x, W = check_projection_backward_args(to_host(dWx), to_host(x), to_host(W),
                                               check_finite=check_finite)
    require_numba_cuda("refseq.cuda.recurrence.project_inputs_backward")
    B, T, I = x.shape
    GND = int(np.prod(W.shape[:3]))  # G_w * N * D (explicit: B*T may be 0)
    g = dWx.reshape(B * T, GND)  # (B*T, GND)
    dx = _matmul(g, W.reshape(GND, I)).reshape(B, T, I)
    dW = _matmul(g.T, x.reshape(B * T, I)).reshape(W.shape)
    return dx, dW

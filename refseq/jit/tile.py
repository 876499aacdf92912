"""A register-tile matrix product for the per-step GEMM of the ``"units"`` recurrence plan.

At (B=16, D=256, four gates) one step of an LSTM multiplies ``h_{t-1} (16, 256)`` by
``R^T (256, 1024)``: 4.2 M multiply-adds, 256 times in a row, with a pointwise update between
steps. BLAS is built for larger products: scipy's OpenBLAS, called per step from Numba, reached
55-58 GFLOP/s per core on these shapes (it repacks its operand on every call), and Numba's own
loops do not vectorise a product into register tiles (18 GFLOP/s). So the tile below is written
directly in LLVM IR, with vector types, through :func:`numba.extending.intrinsic`. On the
2-core AVX-512 VM of docs/performance.md it runs at 106-116 GFLOP/s per core on that step's
shapes, from an operand stored tile by tile (:func:`refseq.jit.recurrence.planner._pack_units`):

``C[m, v VW + l] = sum_{k=0}^{K-1} H[m, k] A[k, v VW + l]``  for ``m < MB``, ``v < NV``, ``l < VW``

with ``VW`` lanes per vector (16 float32 / 8 float64 on AVX-512, half that on AVX2: see
:data:`VECTOR_BYTES`), ``MB * NV`` accumulator vectors that stay in registers for the whole k
loop, and ``NV`` vector loads of ``A``'s row ``k`` and ``MB`` broadcasts of ``H[m, k]`` per
step of k. On AVX-512 each product is one ``vfmadd231ps`` with an
embedded broadcast; on AVX2 a ``vfmadd231ps`` on a ``vbroadcastss``; elsewhere LLVM lowers the
same IR to the target's own vectors.

Rounding: every entry is the sequential fused multiply-add chain ``acc = fma(H[m,k], A[k,:], acc)``
from ``acc = 0``, k ascending. The order depends on nothing but ``K``: not on the tile, the
thread count or the padding, so results are bitwise equal run to run and across plans' chunkings.

The operands are flat C-contiguous arrays of one float dtype with element offsets and leading
dimensions (``A[k, j]`` is ``A[a_off + k lda + j]``, and so on). The tile does no bounds checks:
callers pad their buffers so that every tile is in range (see ``_fwd_units`` in
:mod:`refseq.jit.recurrence.forward`).
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _vector_bytes() -> int:
    """64 where Numba compiles for AVX-512 (its ``NUMBA_CPU_FEATURES`` if set, else the host's),
    32 elsewhere (AVX2; on other ISAs LLVM splits the vectors into its own registers)."""
    features = numba.config.CPU_FEATURES
    if features is None:
        from llvmlite import binding

        return 64 if binding.get_host_cpu_features().get("avx512f", False) else 32
    return 64 if "+avx512f" in features.split(",") else 32


#: bytes per vector (one AVX-512 or AVX2 register); lanes per vector are this over the itemsize.
#: Fixed at import from the target Numba compiles for, which is also part of the key of Numba's
#: on-disk cache, so cached kernels and these constants always agree.
VECTOR_BYTES = _vector_bytes()
#: batch rows and vectors of columns per tile: 8 x 3 = 24 accumulators of the 32 AVX-512
#: registers, or 6 x 2 = 12 of the 16 AVX2 ones
TILE_ROWS, TILE_VECTORS = (8, 3) if VECTOR_BYTES == 64 else (6, 2)


def lanes(dtype) -> int:
    """Lanes per vector for a NumPy float dtype (16 float32 or 8 float64 on AVX-512)."""
    return VECTOR_BYTES // dtype.itemsize


def _make_tile(MB, NV):
    @intrinsic
    def tile(typingctx, A, a_off, lda, H, h_off, ldh, C, c_off, ldc, K):
        arrays = (A, H, C)
        if not all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
                   for x in arrays):
            return None
        if A.dtype not in (types.float32, types.float64) or not (A.dtype == H.dtype == C.dtype):
            return None
        ints = (a_off, lda, h_off, ldh, c_off, ldc, K)
        if not all(isinstance(x, types.Integer) for x in ints):
            return None
        sig = types.void(A, a_off, lda, H, h_off, ldh, C, c_off, ldc, K)

        def codegen(context, builder, sig, args):
            A_, H_, C_ = args[0], args[3], args[6]
            a_off_, lda_, h_off_, ldh_, c_off_, ldc_, K_ = (
                context.cast(builder, args[i], sig.args[i], types.intp)
                for i in (1, 2, 4, 5, 7, 8, 9))
            dtype = sig.args[0].dtype
            VW = VECTOR_BYTES // (dtype.bitwidth // 8)
            vty = ir.VectorType(context.get_value_type(dtype), VW)
            a_ptr, h_ptr, c_ptr = (context.make_array(sig.args[i])(context, builder, x).data
                                   for i, x in ((0, A_), (3, H_), (6, C_)))
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                f"llvm.fma.v{VW}{'f32' if dtype == types.float32 else 'f64'}")
            intp = context.get_value_type(types.intp)

            def const(v):
                return ir.Constant(intp, v)

            def vec_at(ptr, offset):
                return builder.bitcast(builder.gep(ptr, [offset]), vty.as_pointer())

            # the accumulators live in allocas that LLVM promotes to registers
            acc = [[cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * VW))
                    for _ in range(NV)] for _ in range(MB)]
            i32 = ir.IntType(32)
            undef = ir.Constant(vty, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, VW), [0] * VW)
            with cgutils.for_range(builder, K_) as loop:
                k = loop.index
                a_row = builder.add(a_off_, builder.mul(k, lda_))
                a_vecs = [builder.load(vec_at(a_ptr, builder.add(a_row, const(v * VW))), align=1)
                          for v in range(NV)]
                for m in range(MB):
                    h_mk = builder.add(builder.add(h_off_, builder.mul(const(m), ldh_)), k)
                    h = builder.load(builder.gep(h_ptr, [h_mk]))
                    h_vec = builder.shuffle_vector(
                        builder.insert_element(undef, h, ir.Constant(i32, 0)), undef, splat)
                    for v in range(NV):
                        builder.store(builder.call(fma, [h_vec, a_vecs[v],
                                                         builder.load(acc[m][v])]), acc[m][v])
            for m in range(MB):
                c_row = builder.add(c_off_, builder.mul(const(m), ldc_))
                for v in range(NV):
                    builder.store(builder.load(acc[m][v]),
                                  vec_at(c_ptr, builder.add(c_row, const(v * VW))), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return tile


#: ``tile_gemm(A, a_off, lda, H, h_off, ldh, C, c_off, ldc, K)``: one TILE_ROWS x (TILE_VECTORS
#: vectors) tile of ``C = H A`` (module docstring); call it from compiled code only.
tile_gemm = _make_tile(TILE_ROWS, TILE_VECTORS)

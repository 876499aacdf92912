"""The scan hot path: linear recurrences and the prefix-softmax scan, with their backward passes.

Symbols: B batch, T time (axis 1), H heads, D value width, ``*S`` any trailing state shape.

* ``linear_scan``: ``h_t = a_t * h_{t-1} + b_t`` (reverse: ``h_t = a_t * h_{t+1} + b_t``), the
  inclusive scan of the ``AFFINE`` operator; ``a`` broadcasts to ``b`` (a scalar decay per head
  over a matrix state is the Mamba-2 case).
* ``softmax_scan``: prefix softmax attention of one query, the inclusive scan of the
  ``SOFTMAX_TRIPLE`` operator (Aaren, arXiv 2405.13956, Sec. 3; docs/hot-paths/scan.md).

Each function validates its input (``TypeError``/``ValueError`` naming the argument), then runs
the NumPy reference below or the compiled tier chosen by ``backend`` ("numpy", "jit", "cuda"),
found by :mod:`refseq.tiers`. The generic scans and operators are re-exported from
:mod:`refseq.scan.assoc`.
"""

from refseq.scan.assoc import (
    AFFINE,
    SCANS,
    SOFTMAX_TRIPLE,
    AssociativeOp,
    SoftmaxState,
    affine_combine,
    affine_identity,
    scan_blelloch,
    scan_chunked,
    scan_hillis_steele,
    scan_sequential,
    softmax_combine,
    softmax_identity,
    softmax_leaf,
)
from refseq.scan.checks import check_linear_scan_args, check_softmax_scan_args, check_softmax_state
from refseq.scan.linear import linear_scan, linear_scan_backward
from refseq.scan.softmax import softmax_scan, softmax_scan_backward, softmax_scan_textbook

__all__ = [
    "AFFINE", "SCANS", "SOFTMAX_TRIPLE", "AssociativeOp", "SoftmaxState", "affine_combine",
    "affine_identity", "check_linear_scan_args", "check_softmax_scan_args", "check_softmax_state",
    "linear_scan", "linear_scan_backward", "scan_blelloch", "scan_chunked", "scan_hillis_steele",
    "scan_sequential", "softmax_combine", "softmax_identity", "softmax_leaf", "softmax_scan",
    "softmax_scan_backward", "softmax_scan_textbook",
]

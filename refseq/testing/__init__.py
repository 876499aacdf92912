"""Public testing helpers: the derived tolerance of style.md #9 and hypothesis strategies.

Use them to hold your own implementation to refseq's standard::

    from refseq.testing import assert_close, reference_error
    desired = refseq_fn(*inputs_float64)            # the float64 oracle
    ref32 = refseq_fn(*inputs_float32)              # the reference's own float32 error ...
    assert_close(my_fn(*inputs_float32), desired, reference=ref32)   # ... sets the bound

Strategies live in :mod:`refseq.testing.strategies` (needs hypothesis).
"""

from refseq.testing._close import (
    FACTORS,
    assert_close,
    check_close,
    leaves,
    tolerance,
)

__all__ = ["FACTORS", "assert_close", "check_close", "leaves", "tolerance"]

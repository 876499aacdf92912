"""Public testing helpers: the derived tolerance of style.md #9 and hypothesis strategies.

Use them to hold your own implementation to refseq's standard::

    from refseq.testing import assert_close, perturbed_runs
    desired = refseq_fn(*inputs_float64)            # the float64 oracle
    ref32 = refseq_fn(*inputs_float32)              # the reference's own float32 error ...
    assert_close(my_fn(*inputs_float32), desired, reference=ref32)   # ... sets the bound
    # on tiny problems one float32 run can be luckily exact; add backward-error samples:
    runs = [ref32] + perturbed_runs(refseq_fn, *inputs_float32)
    assert_close(my_fn(*inputs_float32), desired, reference=runs)

Strategies live in :mod:`refseq.testing.strategies` (needs hypothesis).
"""

from refseq.testing._close import (
    FACTORS,
    assert_close,
    check_close,
    leaves,
    perturbed_runs,
    tolerance,
)

__all__ = ["FACTORS", "assert_close", "check_close", "leaves", "perturbed_runs", "tolerance"]

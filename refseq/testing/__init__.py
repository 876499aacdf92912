"""Public testing helpers: the derived tolerance (docs/design.md, "The tolerance rule"), the
kernel-versus-reference harness and hypothesis strategies.

Use them to hold your own implementation to refseq's standard::

    from refseq.testing import assert_close, perturbed_runs
    desired = refseq_fn(*inputs_float64)            # the float64 oracle
    ref32 = refseq_fn(*inputs_float32)              # the reference's own float32 error ...
    assert_close(my_fn(*inputs_float32), desired, reference=ref32)   # ... sets the bound
    # on tiny problems one float32 run can be luckily exact; add backward-error samples and
    # samples of the rounding of exp, tanh, ... (what no input perturbation shows):
    runs = ([ref32] + perturbed_runs(refseq_fn, *inputs_float32)
            + rounded_runs(refseq_fn, *inputs_float32))
    assert_close(my_fn(*inputs_float32), desired, reference=runs)

:mod:`refseq.testing.harness` runs that rule for every entry of the hot-path registry on any
tier (``run_check``, the function ``refseq audit`` runs), proving that the tier really ran.

Strategies live in :mod:`refseq.testing.strategies` (needs hypothesis). Gradient checks by
finite differences, with their one step and tolerance rule, live in
:mod:`refseq.testing.gradcheck`.
"""

from refseq.testing import gradcheck
from refseq.testing._close import (
    FACTORS,
    assert_close,
    check_close,
    leaves,
    perturbed_runs,
    rounded_runs,
    tolerance,
)
from refseq.testing.gradcheck import (
    assert_directional,
    assert_entrywise,
    assert_jacobian,
    assert_jvp,
    cotangent_loss,
    jacobian,
)

__all__ = [
    "FACTORS",
    "assert_close",
    "assert_directional",
    "assert_entrywise",
    "assert_jacobian",
    "assert_jvp",
    "check_close",
    "cotangent_loss",
    "gradcheck",
    "jacobian",
    "leaves",
    "perturbed_runs",
    "rounded_runs",
    "tolerance",
]

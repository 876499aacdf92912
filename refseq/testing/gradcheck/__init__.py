r"""Gradient checks by float64 central finite differences: one step, one tolerance rule.

Use these to test a hand-written backward pass. Every check differentiates a *scalar* loss that
weights the outputs with a random cotangent ``c`` (see :func:`cotangent_loss`) and, in the
directional form, moves the inputs along a random direction ``u``. Never use ``y.sum()`` as the
loss, nor all-ones directions: a transposed or permuted gradient has the same sum, so a check
that weights every entry equally cannot see it.

The forms
---------
:func:`assert_directional`
    ``<grad, u>`` against the difference quotient of the loss along ``u``: six loss evaluations
    per direction, however many entries the arguments have.
:func:`assert_entrywise`
    every entry (or a chosen list of entries) of the gradient against the difference quotient
    along that coordinate: the full Jacobian of a scalar loss, six evaluations per entry.
:func:`jacobian` and :func:`assert_jacobian`
    the full Jacobian of an array-valued function, one column per input entry.
:func:`assert_jvp`
    the primitive under the others: the difference quotient of any (array-valued) function along
    one direction against an expected Jacobian-vector product.

Arrays are perturbed **in place** (the loss reads them) and restored bit for bit afterwards,
also when the loss raises. They must be float64: the rule below is derived for float64.

The rule
--------
The quotient is the sixth-order central difference with step :data:`STEP` ``h = 1e-4``,

.. math:: D(h) = \frac{45 (f(h) - f(-h)) - 9 (f(2h) - f(-2h)) + (f(3h) - f(-3h))}{60 h},

where ``f(t)`` is the loss at ``x + t u`` (``u`` a unit coordinate in the entrywise form). The
symmetric differences are formed first, so a loss that does not depend on the moved entries
gives exactly 0. Taylor expansion gives, in exact arithmetic,

.. math:: D(h) = f'(0) + \frac{h^6}{140} f^{(7)}(\xi), \qquad |\xi| \le 3h.

*Truncation.* If the loss changes on a length scale ``l`` along ``u`` (``|f^{(7)}| \approx
|f'| / l^6``), the relative truncation error is ``(h / l)^6 / 140``. It stays below
:data:`RTOL` ``= 1e-7`` for every ``l >= 6.4e-4`` (``h (140 RTOL)^{-1/6}``); for ``l = 1`` it is
7e-27. A random direction through a whole weight matrix is a short length scale: with ``n``
entries ``|u| ~ sqrt(n)``. The fourth-order quotient
``((f(-2h) - f(2h)) + 8 (f(h) - f(-h))) / 12h``, error ``(h / l)^4 / 30``, was measured at
9e-7 relative with ``h = 1e-4`` on the tiny transformer's LayerNorm (``d_model = 4``,
direction over all of ``W_qkv``); the sixth-order quotient gives 8e-10 there, for 6 evaluations
instead of 4.

*Kinks.* The loss must be smooth within ``3 h |u_i|`` of the point: a ReLU, ``max`` or clip
that switches inside the stencil makes any difference quotient wrong. Keep random points away
from kinks (``hypothesis.assume`` on the pre-activations), or, where the kink sits deep inside
a model and cannot be controlled, pass a smaller ``step``: the rule is unchanged, its round-off
term grows as ``1 / h`` (``h = 1e-6``: ``3.3e-9 S``).

*Round-off.* Each loss value carries an absolute error ``delta``. The stencil weights have
absolute sum ``(45 + 9 + 1) \cdot 2 / 60 = 11/6``, so the quotient carries up to
``(11/6) delta / h``. Write ``delta = k eps S`` with ``eps = 2.2e-16``, ``S`` the magnitude of
the terms that make the loss and ``k`` an allowance for the roundings the evaluation
accumulates. The round-off term is then ``ROUNDOFF eps S / h``, with :data:`ROUNDOFF`
``= (11/6) k`` and ``k = 8``: ``3.3e-11 S``. Over the 2700 values of refseq's own suite where
this term dominates the bound, the largest error seen was ``4.3 eps S / h`` (2.3 roundings), so
``k = 8`` leaves a margin of three.
``S`` is measured, not guessed. For a :func:`cotangent_loss` it is ``sum |c * y|``, which the
sign cancellation of a random cotangent does not shrink. Otherwise it is ``|f|`` (elementwise
for an array-valued function). The largest value over the six stencil points is used. Where a
plain loss is a small difference of large terms, pass their magnitude as ``scale``. Rounding the
moved input ``x + t u`` shifts the point by about ``eps |x|``. That changes the quotient by
``eps |x| |f'| / h``, about ``2e-12 |f'|``, which the ``RTOL`` term absorbs.

*Why this step.* Truncation and round-off balance near ``h = (140 \cdot 11/6 \cdot k \,
eps)^{1/7} l ~ 1.7e-2 l``. ``h = 1e-4`` sits far below that, so truncation stays negligible
down to ``l ~ 6.4e-4``; the price is a round-off term of ``3.3e-11 S``, still tiny. For
comparison, the second-order quotient ``(f(h) - f(-h)) / 2h`` has truncation
``h^2 |f'''| / 6`` and round-off ``k eps S / h``: ~2e-9 ``S`` at ``h = 1e-6``, ~2e-10 ``S`` at
its best step. That is ten to a hundred times more, and makes a relative tolerance of 1e-7
unattainable.

The check passes, entry by entry, when

.. math:: |D - g| \le RTOL \, |g| + ROUNDOFF \, eps \, S / h + atol,

with ``g`` the analytic value. ``atol`` is 0 unless the caller derives one. One example: a loss
that is identically zero (``S = 0``) whose analytic gradient is a difference of O(1) terms that
cancel to rounding level. A gradient that is transposed, scaled by ``1 + 1e-5`` or missing a
term fails by orders of magnitude: ``1e-5 |g|`` is 100 times the ``RTOL`` term.
When a check fails and the fourth-order quotient from the inner four points disagrees with the
sixth-order one by more than the bound, the message says so: the loss is not smooth on the
scale of the stencil (a kink, or a length scale below ``l``), and the finite differences, not
the gradient, are suspect.
"""

from refseq.testing.gradcheck.checks import (
    assert_directional,
    assert_entrywise,
    assert_jacobian,
    assert_jvp,
    jacobian,
)
from refseq.testing.gradcheck.rule import (
    EPS,
    ROUNDOFF,
    RTOL,
    STEP,
    CotangentLoss,
    bound,
    cotangent_loss,
    directional_derivative,
)

__all__ = [
    "EPS",
    "ROUNDOFF",
    "RTOL",
    "STEP",
    "CotangentLoss",
    "assert_directional",
    "assert_entrywise",
    "assert_jacobian",
    "assert_jvp",
    "bound",
    "cotangent_loss",
    "directional_derivative",
    "jacobian",
]

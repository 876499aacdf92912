"""The stencil, the scale and the bound of :mod:`refseq.testing.gradcheck` (see its docstring)."""


from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

STEP = 1e-4
"""Step ``h`` of the sixth-order stencil (module doc)."""
RTOL = 1e-7
"""Relative term; covers truncation for length scales ``l >= 6.4e-4`` (module doc)."""
ROUNDOFF = 11 / 6 * 8
"""Stencil weight sum 11/6 times an allowance of ``k = 8`` roundings per loss evaluation."""
EPS = float(np.finfo(np.float64).eps)

_POINTS = (3.0, 2.0, 1.0, -1.0, -2.0, -3.0)  # stencil points t / h


class CotangentLoss:
    """The scalar loss ``<fn(), c>`` summed over the leaves of ``fn()``'s output.

    Made by :func:`cotangent_loss`. Calling it returns the loss; :meth:`evaluate` also returns
    the round-off scale ``S = sum |c * y|`` that the checks use.

    Attributes
    ----------
    fn : callable
        Returns an array or a (nested) tuple/list of arrays; ``None`` leaves are skipped.
    cotangent : array or tuple/list of arrays
        Same structure as ``fn()``'s output; a ``None`` leaf means a zero cotangent.
    """

    def __init__(self, fn: Callable, cotangent):
        self.fn = fn
        self.cotangent = cotangent

    def evaluate(self) -> tuple[float, float]:
        """Return ``(loss, S)`` with ``S = sum |c * y|`` over all leaves."""
        ys, cs = self._pairs(self.fn())
        value = scale = 0.0
        for y, c in zip(ys, cs):
            if c is None or y is None:
                continue
            terms = np.asarray(c, np.float64) * np.asarray(y, np.float64)
            value += float(terms.sum())
            scale += float(np.abs(terms).sum())
        return value, scale

    def __call__(self) -> float:
        return self.evaluate()[0]

    def _pairs(self, out):
        if isinstance(out, (tuple, list)) or isinstance(self.cotangent, (tuple, list)):
            ys, cs = _flat(out), _flat(self.cotangent)
        else:
            ys, cs = [out], [self.cotangent]
        if len(ys) != len(cs):
            raise ValueError(f"cotangent has {len(cs)} leaves, fn() returned {len(ys)}")
        for y, c in zip(ys, cs):
            if y is not None and c is not None and np.shape(y) != np.shape(c):
                raise ValueError(
                    f"cotangent leaf has shape {np.shape(c)}, output leaf {np.shape(y)}"
                )
        return ys, cs


def _flat(x) -> list:
    """Leaves of a nested tuple/list, keeping ``None`` leaves in place."""
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _flat(item)]
    return [x]


def cotangent_loss(fn: Callable, cotangent=None, *, rng=None) -> CotangentLoss:
    """Turn an array-valued ``fn`` into the scalar loss ``<fn(), c>`` for a gradient check.

    The gradient of this loss w.r.t. an input is the vector-Jacobian product ``J^T c``, which is
    what a backward pass called with the output gradient ``c`` returns. Pass the cotangent the
    test already drew (and gave its backward pass); or pass ``rng`` and one is drawn here,
    standard normal in ``fn()``'s output structure, and returned as ``loss.cotangent``.

    Parameters
    ----------
    fn : callable
        No arguments; returns an array or a (nested) tuple/list of arrays (``None`` skipped).
    cotangent : array or tuple/list of arrays, optional
        Same structure as ``fn()``; ``None`` leaves count as zero.
    rng : numpy.random.Generator, optional
        Draws the cotangent when ``cotangent`` is None (``fn`` is called once for the shapes).

    Returns
    -------
    CotangentLoss
        Callable with no arguments, returning a float; ``.cotangent`` holds ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> from refseq.testing import assert_entrywise, cotangent_loss
    >>> W = np.arange(6.0).reshape(2, 3); x = np.ones(3)
    >>> loss = cotangent_loss(lambda: W @ x, rng=np.random.default_rng(0))
    >>> grads = {"W": np.outer(loss.cotangent, x)}
    >>> assert_entrywise(loss, {"W": W}, grads)
    """
    if cotangent is None:
        if rng is None:
            raise ValueError("cotangent_loss needs a cotangent or an rng to draw one")
        out = fn()
        if isinstance(out, (tuple, list)):
            cotangent = _like(out, rng)
        else:
            cotangent = rng.standard_normal(np.shape(out))
    return CotangentLoss(fn, cotangent)


def _like(x, rng):
    """Standard normal leaves in the structure of ``x`` (tuples and lists become lists)."""
    if isinstance(x, (tuple, list)):
        return [_like(item, rng) for item in x]
    return None if x is None else rng.standard_normal(np.shape(x))


def _evaluate(fn: Callable):
    """``(value, scale)`` of one loss evaluation: scale is ``S`` of the module doc."""
    if isinstance(fn, CotangentLoss):
        return fn.evaluate()
    value = fn()
    if isinstance(value, (tuple, list)):
        raise TypeError("the loss returned a tuple; wrap array outputs with cotangent_loss")
    value = np.asarray(value, np.float64)
    return value, np.abs(value)


def _check_arrays(arrays: Mapping[str, np.ndarray], names: Iterable[str]) -> None:
    for name in names:
        if name not in arrays:
            raise KeyError(f"no array named {name!r} to perturb")
        a = arrays[name]
        if not isinstance(a, np.ndarray) or a.dtype != np.float64:
            raise TypeError(
                f"{name} must be a float64 ndarray perturbed in place, got "
                f"{type(a).__name__} of dtype {getattr(a, 'dtype', None)}"
            )
        if not a.flags.writeable:
            raise ValueError(f"{name} is read-only; pass a writable copy")


def _stencil(fn: Callable, move: Callable[[float], None], restore: Callable[[], None], step):
    """Quotients of ``fn`` under ``move(t)``: ``(sixth-order, S, fourth-order)`` (module doc).

    The symmetric differences are formed first, so that a loss that does not depend on the moved
    entries gives exactly 0. ``restore`` runs also when ``fn`` raises.
    """
    f, scale = {}, 0.0
    try:
        for k in _POINTS:
            move(k * step)
            f[k], s = _evaluate(fn)
            scale = np.maximum(scale, s)
    finally:
        restore()
    d1, d2, d3 = f[1.0] - f[-1.0], f[2.0] - f[-2.0], f[3.0] - f[-3.0]
    return (45.0 * d1 - 9.0 * d2 + d3) / (60.0 * step), scale, (8.0 * d1 - d2) / (12.0 * step)


def directional_derivative(fn: Callable, arrays: Mapping[str, np.ndarray],
                           direction: Mapping[str, np.ndarray], *, step: float = STEP):
    """Sixth-order central difference of ``fn()`` along ``direction``.

    Parameters
    ----------
    fn : callable
        No arguments; returns a scalar or an array (elementwise quotients), or is a
        :class:`CotangentLoss`. It must read the arrays of ``arrays``.
    arrays : mapping of str to float64 ndarray
        The inputs, moved in place to ``a + t u`` and restored bit for bit.
    direction : mapping of str to ndarray
        ``u`` for some or all names of ``arrays``; the named arrays move together.
    step : float
        ``h``; the default :data:`STEP` is the rule of the module doc.

    Returns
    -------
    estimate : float or ndarray
        The quotient ``D(h)``.
    scale : float or ndarray
        ``S``: the largest ``|f|`` (or ``sum |c y|``) over the stencil points.
    """
    return _directional(fn, arrays, direction, step)[:2]


def _directional(fn, arrays, direction, step):
    _check_arrays(arrays, direction)
    saved = {n: arrays[n].copy() for n in direction}
    dirs = {n: np.asarray(direction[n], np.float64) for n in direction}
    for n, u in dirs.items():
        if u.shape != saved[n].shape:
            raise ValueError(f"direction for {n} has shape {u.shape}, the array {saved[n].shape}")

    def move(t):
        for n, u in dirs.items():
            arrays[n][...] = saved[n] + t * u

    def restore():
        for n, a0 in saved.items():
            arrays[n][...] = a0

    return _stencil(fn, move, restore, step)


def bound(analytic, scale, *, step: float = STEP, atol: float = 0.0):
    """The tolerance of the module doc: ``RTOL |g| + ROUNDOFF eps S / h + atol``.

    Parameters
    ----------
    analytic : float or ndarray
        ``g``, the analytic values.
    scale : float or ndarray
        ``S``, the magnitude of the terms of the loss (broadcast against ``analytic``).
    step, atol : float
        ``h`` and the caller's derived absolute term.

    Returns
    -------
    ndarray
        The bound on ``|D - g|``, elementwise.
    """
    return RTOL * np.abs(analytic) + ROUNDOFF * EPS * np.asarray(scale) / step + atol


def _verdict(what: str, numeric, analytic, scale, step, atol, lower=None, index_of=None):
    """Raise AssertionError naming the worst entry when any entry breaks the bound."""
    num = np.asarray(numeric, np.float64)
    ana = np.asarray(analytic, np.float64)
    if num.shape != ana.shape:
        raise AssertionError(
            f"gradcheck {what}: analytic shape {ana.shape} != numerical shape {num.shape}"
        )
    tol = np.broadcast_to(bound(ana, scale, step=step, atol=atol), num.shape)
    with np.errstate(invalid="ignore"):
        err = np.abs(num - ana)
    bad = ~(err <= tol)  # NaN anywhere counts as a failure
    if not bad.any():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.inf)
    ratio = np.where(bad & ~np.isfinite(err), np.inf, ratio)
    j = np.unravel_index(int(np.argmax(np.where(bad, ratio, -1.0))), num.shape)
    where = index_of(j) if index_of is not None else j
    at = f" at {tuple(int(i) for i in where)}" if len(where) else ""
    s = float(np.broadcast_to(np.asarray(scale, np.float64), num.shape)[j])
    extra = f" + atol {atol:.3g}" if atol else ""
    msg = (
        f"gradcheck {what}: {int(bad.sum())}/{bad.size} entries over the bound; worst{at}: "
        f"numerical {num[j]:.12g}, analytic {ana[j]:.12g}, |diff| {err[j]:.3g} > bound "
        f"{tol[j]:.3g} (= {RTOL:g} |analytic| + {ROUNDOFF:.4g} eps S / h{extra}, "
        f"S = {s:.3g}, h = {step:g})"
    )
    if lower is not None:
        low = float(np.broadcast_to(np.asarray(lower, np.float64), num.shape)[j])
        if not abs(low - num[j]) <= tol[j]:  # the two quotients disagree: suspect the loss
            msg += (f"; the fourth-order quotient from the inner points is {low:.12g}, far "
                    "from the sixth-order one: the loss is not smooth within the stencil "
                    "(a kink?)")
    raise AssertionError(msg)

"""The assertions of :mod:`refseq.testing.gradcheck`: directional, entrywise, JVP, Jacobian."""


from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from refseq.testing.gradcheck.rule import (
    STEP,
    _check_arrays,
    _directional,
    _evaluate,
    _stencil,
    _verdict,
)


def assert_jvp(fn: Callable, arrays: Mapping[str, np.ndarray],
               direction: Mapping[str, np.ndarray], expected, *, name: str | None = None,
               scale=None, atol: float = 0.0, step: float = STEP) -> None:
    """Assert the difference quotient of ``fn`` along ``direction`` equals ``expected``.

    ``fn`` may be array-valued: each output entry is checked, with its own ``S = max |f_i|``.
    ``expected`` is the analytic Jacobian-vector product, e.g. ``(g * u).sum(-1)`` for a batch
    of independent rows.

    Parameters
    ----------
    fn, arrays, direction, step
        As for :func:`directional_derivative`.
    expected : float or ndarray
        Analytic directional derivative, shaped like ``fn()``.
    name : str, optional
        Names the check in the failure message (default: the names in ``direction``).
    scale : float or ndarray, optional
        A floor for the measured ``S``, where the caller knows the loss is made of larger terms.
    atol : float
        An absolute term the caller derives (module doc); 0 by default.

    Raises
    ------
    AssertionError
        Naming the check, the worst entry, both values and the bound.
    """
    numeric, measured, lower = _directional(fn, arrays, direction, step)
    s = measured if scale is None else np.maximum(measured, scale)
    _verdict(f"{name or '+'.join(direction)} along a direction", numeric, expected, s, step,
             atol, lower)


def _named(grads, arrays):
    if not isinstance(grads, Mapping):
        raise TypeError("grads must map the names of arrays to gradients")
    missing = [n for n in grads if n not in arrays]
    if missing:
        raise KeyError(f"gradients for unknown arrays {missing}")
    out = {}
    for n, g in grads.items():
        g = np.asarray(g, np.float64)
        if g.shape != np.shape(arrays[n]):
            raise AssertionError(
                f"gradcheck {n}: gradient shape {g.shape} != argument shape {np.shape(arrays[n])}"
            )
        out[n] = g
    return out


def assert_directional(loss: Callable, arrays: Mapping[str, np.ndarray],
                       grads: Mapping[str, np.ndarray], *, rng=None, directions=None,
                       n_directions: int = 1, per_argument: bool = True, scale=None,
                       atol: float = 0.0, step: float = STEP) -> None:
    """Assert ``<grad, u>`` equals the directional derivative of ``loss`` for random ``u``.

    Parameters
    ----------
    loss : callable
        Scalar loss of no arguments reading ``arrays`` (use :func:`cotangent_loss` for array
        outputs).
    arrays : mapping of str to float64 ndarray
        The inputs, perturbed in place and restored.
    grads : mapping of str to ndarray
        The analytic gradients, for the names to check (a subset of ``arrays``).
    rng : numpy.random.Generator, optional
        Draws standard normal directions when ``directions`` is None: for each of
        ``n_directions`` rounds, ``rng.standard_normal(shape)`` per name of ``grads``, in order.
    directions : sequence of mappings, optional
        Explicit directions; each mapping is one check that moves its named arrays together.
    n_directions : int
        Rounds of drawn directions.
    per_argument : bool
        With drawn directions: one check per argument (True), or one joint check per round that
        moves all arguments at once, compared with ``sum_i <grad_i, u_i>`` (False).
    scale, atol, step
        As for :func:`assert_jvp`.

    Raises
    ------
    AssertionError
        Naming the argument(s), both values and the bound.

    Examples
    --------
    >>> import numpy as np
    >>> from refseq.testing import assert_directional, cotangent_loss
    >>> rng = np.random.default_rng(0)
    >>> W, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    >>> loss = cotangent_loss(lambda: np.tanh(W @ x), rng=rng)
    >>> dz = loss.cotangent * (1 - np.tanh(W @ x) ** 2)
    >>> assert_directional(loss, {"W": W, "x": x}, {"W": np.outer(dz, x), "x": W.T @ dz},
    ...                    rng=rng, n_directions=2)
    """
    g = _named(grads, arrays)
    if directions is None:
        if rng is None:
            raise ValueError("assert_directional needs rng or directions")
        directions = []
        for _ in range(n_directions):
            drawn = {n: rng.standard_normal(np.shape(arrays[n])) for n in g}
            directions += [{n: u} for n, u in drawn.items()] if per_argument else [drawn]
    for u in directions:
        unknown = [n for n in u if n not in g]
        if unknown:
            raise KeyError(f"directions for arrays without a gradient: {unknown}")
        expected = sum(float(np.vdot(g[n], np.asarray(d, np.float64))) for n, d in u.items())
        assert_jvp(loss, arrays, u, expected, scale=scale, atol=atol, step=step)


def assert_entrywise(loss: Callable, arrays: Mapping[str, np.ndarray],
                     grads: Mapping[str, np.ndarray], *, indices=None, scale=None,
                     atol: float = 0.0, step: float = STEP) -> None:
    """Assert every entry of each gradient equals the difference quotient along that entry.

    This is the full Jacobian of the scalar ``loss``, one coordinate at a time (six loss
    evaluations per entry): use it on small problems, :func:`assert_directional` on large ones.

    Parameters
    ----------
    loss, arrays, grads, scale, atol, step
        As for :func:`assert_directional`.
    indices : mapping of str to iterable of index tuples, optional
        Check only these entries of the named arrays (names not in it: every entry).

    Raises
    ------
    AssertionError
        Naming the argument and its worst entry, both values and the bound.
    """
    g = _named(grads, arrays)
    _check_arrays(arrays, g)
    for name, grad in g.items():
        a = arrays[name]
        if indices is not None and name in indices:
            idx = [tuple(int(k) for k in np.atleast_1d(i)) if a.ndim else () for i in indices[name]]
        else:
            idx = list(np.ndindex(a.shape))
        num, scl, low = np.zeros(len(idx)), np.zeros(len(idx)), np.zeros(len(idx))
        for j, i in enumerate(idx):
            old = a[i].copy()

            def move(t, a=a, i=i, old=old):
                a[i] = old + t

            def restore(a=a, i=i, old=old):
                a[i] = old

            num[j], scl[j], low[j] = _stencil(loss, move, restore, step)
        s = scl if scale is None else np.maximum(scl, scale)
        ana = np.array([grad[i] for i in idx], np.float64)
        _verdict(name, num, ana, s, step, atol, low, index_of=lambda j, idx=idx: idx[j[0]])


def jacobian(fn: Callable, x: np.ndarray, *, step: float = STEP, with_scale: bool = False):
    """Numerical Jacobian of ``fn()`` w.r.t. ``x`` (moved in place) by the sixth-order stencil.

    Parameters
    ----------
    fn : callable
        No arguments; reads ``x`` and returns an array.
    x : float64 ndarray
        The input, moved one entry at a time and restored.
    step : float
        ``h`` of the module doc.
    with_scale : bool
        Also return ``S`` per output entry (the largest ``|f_i|`` over all evaluations).

    Returns
    -------
    J : ndarray
        Shape ``fn().shape + x.shape``; ``J[i, j] = d fn_i / d x_j``.
    scale : ndarray
        Only with ``with_scale``: ``S``, shaped like ``fn()``.

    Examples
    --------
    >>> import numpy as np
    >>> from refseq.testing import jacobian
    >>> x = np.array([0.5, -1.0])
    >>> J = jacobian(lambda: np.array([x[0] * x[1], np.sin(x[1])]), x)
    >>> bool(np.allclose(J, [[-1.0, 0.5], [0.0, np.cos(-1.0)]], rtol=1e-9, atol=1e-12))
    True
    """
    return _jacobian(fn, x, step)[:2] if with_scale else _jacobian(fn, x, step)[0]


def _jacobian(fn, x, step):
    _check_arrays({"x": x}, ["x"])
    out_shape = np.shape(_evaluate(fn)[0])
    cols, lows, scale = [], [], np.zeros(out_shape)
    for i in np.ndindex(x.shape):
        old = x[i].copy()

        def move(t, i=i, old=old):
            x[i] = old + t

        def restore(i=i, old=old):
            x[i] = old

        col, s, low = _stencil(fn, move, restore, step)
        cols.append(np.broadcast_to(col, out_shape))
        lows.append(np.broadcast_to(low, out_shape))
        scale = np.maximum(scale, s)

    def stack(parts):
        if not parts:
            return np.zeros(out_shape + x.shape)
        return np.stack(parts, axis=-1).reshape(out_shape + x.shape)

    return stack(cols), scale, stack(lows)


def assert_jacobian(fn: Callable, x: np.ndarray, expected, *, name: str = "x", scale=None,
                    atol: float = 0.0, step: float = STEP) -> None:
    """Assert an analytic Jacobian ``expected`` (shape ``fn().shape + x.shape``) by the rule.

    Parameters
    ----------
    fn, x, step
        As for :func:`jacobian`.
    expected : ndarray
        The analytic Jacobian.
    name : str
        Names ``x`` in the failure message.
    scale : float or ndarray, optional
        A floor for ``S``; by default row ``i`` uses ``max |fn_i|`` over all evaluations.
    atol : float
        An absolute term the caller derives (module doc); 0 by default.

    Raises
    ------
    AssertionError
        Naming ``name``, the worst (output..., input...) entry, both values and the bound.
    """
    J, s, low = _jacobian(fn, x, step)
    s = np.asarray(s, np.float64).reshape(np.shape(s) + (1,) * x.ndim)
    if scale is not None:
        s = np.maximum(s, scale)
    _verdict(f"Jacobian w.r.t. {name}", J, expected, s, step, atol, low)

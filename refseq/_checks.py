"""Input validation shared by every tier.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape or
value) with a message that names the argument and the expected form, so bad input never reaches
a NumPy traceback deep inside a kernel.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(x, name: str, *, dtype=None, ndim_min: int = 0) -> np.ndarray:
    """Return ``x`` as a float32/float64 ndarray, or raise naming ``name``.

    ``dtype`` (optional) is the dtype to cast to after the check; the check itself requires a real
    floating dtype of 32 or 64 bits (float16 and integers are rejected so that precision is a
    choice the caller makes, not an accident).
    """
    if x is None:
        raise TypeError(f"{name} must be a float32 or float64 array, got None")
    arr = np.asarray(x)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {arr.dtype}"
            + (" (cast it with .astype(np.float32) first)" if arr.dtype.kind in "fiub" else "")
        )
    if arr.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimensions, got shape {arr.shape}")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def float_arrays(xs, name: str) -> tuple:
    """Return the non-empty tuple (or list) ``xs`` as a tuple of float32/float64 arrays, each
    checked by :func:`float_array` under the name ``name[i]``; ``TypeError`` otherwise."""
    if not isinstance(xs, (tuple, list)) or not xs:
        raise TypeError(f"{name} must be a non-empty tuple of arrays (one per field), "
                        f"got {type(xs).__name__}")
    return tuple(float_array(x, f"{name}[{i}]") for i, x in enumerate(xs))


def check_finite(x: np.ndarray, name: str, *, hint: str | None = None) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or +-inf (the first offending index is named).

    The message ends with ``hint`` in parentheses; by default the hint for functions that have
    a ``check_finite`` flag. Functions without one pass their own (or ``""`` for none).
    """
    if x.size and not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        if hint is None:
            hint = "pass check_finite=False to propagate non-finite values"
        raise ValueError(f"{name} must be finite; found {x[where]} at index {where}"
                         + (f" ({hint})" if hint else ""))


def check_shape(x: np.ndarray, expected: tuple, name: str, form: str) -> None:
    """Raise ``ValueError`` unless ``x.shape == expected``; ``form`` spells it, e.g. '(B, H)'."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {form} = {tuple(expected)}, got {tuple(x.shape)}")


def bool_mask(mask, shape: tuple, name: str, form: str) -> np.ndarray | None:
    """Return ``mask`` as a boolean array of ``shape`` (True = valid position), or None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu" or (m.size and not np.isin(m, (0, 1)).all()):
            raise TypeError(f"{name} must be a boolean array {form} (True = valid), got {m.dtype}")
        m = m.astype(bool)
    check_shape(m, shape, name, form)
    return m


def check_flag(value, name: str) -> bool:
    """Return the boolean keyword flag ``value`` as a Python ``bool``, or raise ``TypeError``.

    Only ``True``/``False`` and NumPy booleans (``np.True_``/``np.False_``) are accepted. Truthy
    stand-ins are rejected because they silently mean something else: ``'False'`` (a non-empty
    str) and ``1``/``0`` (ints), ``None`` (not a choice), and 0-d arrays such as
    ``np.array(True)`` (an array, not a scalar: pass ``bool(x)`` or ``x.item()``). The message
    names the flag, e.g. ``reverse must be a bool (True or False), got 'False' (str)``.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool (True or False), got {value!r} "
                    f"({type(value).__name__})")


def check_number(value, name: str, *, low=None, high=None, low_open: bool = False,
                 high_open: bool = False, integer: bool = False, allow_inf: bool = False,
                 allow_none: bool = False):
    """Return the number keyword ``value`` as a Python ``float`` (``int`` if ``integer``), or raise.

    ``TypeError`` unless ``value`` is a real number: a Python or NumPy int/float (with
    ``integer=True`` only ints). ``bool`` (``True`` would mean 1), ``str`` (``'0.1'``), ``None``
    (unless ``allow_none``, then ``None`` is returned) and arrays (pass ``float(x)``) are rejected.
    ``ValueError`` if it is NaN, infinite (unless ``allow_inf``) or outside the range given by
    ``low``/``high`` (closed ends unless ``low_open``/``high_open``). Messages name the argument,
    e.g. ``eps must be a finite number > 0, got -1.0``.
    """
    if value is None and allow_none:
        return None
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        what = "an integer" if integer else "a real number (int or float)"
        raise TypeError(f"{name} must be {what}"
                        + (" or None" if allow_none else "")
                        + f", got {value!r} ({type(value).__name__})")
    if integer:
        value = int(value)
    else:
        value = float(value)
        if np.isnan(value) or (np.isinf(value) and not allow_inf):
            raise ValueError(f"{name} must be a finite number, got {value}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high}")
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} {' and '.join(parts)}, got {value}")
    return value


def check_float_dtype(dtype, name: str) -> np.dtype:
    """Return ``dtype`` as ``np.dtype('float32')`` or ``np.dtype('float64')``, else ``TypeError``.

    Integer, bool, float16 and complex dtypes are rejected (they would truncate, overflow or
    discard a part of the result), as is anything NumPy cannot read as a dtype.
    """
    try:
        dt = None if dtype is None or isinstance(dtype, (bool, int, float)) else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64 (a dtype), got {dtype!r}")
    return dt


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices`` (strings), else raise ``ValueError``
    (``TypeError`` for a non-string), naming the argument and listing the choices."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {tuple(choices)}, got {value!r} "
                        f"({type(value).__name__})")
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` normalised to ``[0, ndim)``; ``TypeError`` unless an int, ``ValueError``
    if out of range for an array of ``ndim`` dimensions."""
    axis = check_number(axis, name, integer=True)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} must lie in [-{ndim}, {ndim}) for an array of {ndim} "
                         f"dimensions, got {axis}")
    return axis % ndim


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """Return a ``np.random.Generator`` from ``rng``: a Generator (returned as is), a
    non-negative int seed, or ``None`` (fresh entropy). Anything else raises ``TypeError``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    seed = check_number(rng, name, integer=True, low=0)
    return np.random.default_rng(seed)


def int_array(x, name: str, *, low=None, high=None, ndim=None, form: str = "") -> np.ndarray:
    """Return ``x`` as an integer ndarray, or raise naming ``name``.

    ``TypeError`` unless its dtype is a (non-bool) integer; ``ValueError`` if ``ndim`` is given
    (an int or a tuple of allowed ranks) and does not match, or a value lies outside
    ``[low, high)`` (either end optional). ``form`` spells the expected shape, e.g. ``'(B, T)'``.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array {form}".rstrip()
                        + f", got dtype {arr.dtype}")
    if ndim is not None and arr.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must be an integer array {form}".rstrip()
                         + f", got shape {arr.shape}")
    if arr.size and ((low is not None and arr.min() < low)
                     or (high is not None and arr.max() >= high)):
        bad = arr.min() if low is not None and arr.min() < low else arr.max()
        span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high})"
        raise ValueError(f"{name} must lie in {span}, found {bad}")
    return arr


def check_instance(obj, types, name: str, what: str | None = None):
    """Return ``obj`` if it is an instance of ``types``, else ``TypeError`` naming the argument
    and the expected type (``what`` spells it; default the types' names)."""
    if not isinstance(obj, types):
        if what is None:
            ts = types if isinstance(types, tuple) else (types,)
            what = " or ".join(t.__name__ for t in ts)
        raise TypeError(f"{name} must be a {what}, got {type(obj).__name__}")
    return obj


def check_methods(obj, name: str, methods, what: str):
    """Return ``obj`` if each of ``methods`` is a callable attribute of it, else raise
    ``TypeError`` naming the argument and the expected kind ``what`` (e.g. ``"a layer (forward
    and backward methods, e.g. ElmanLayer)"``): duck-typed protocols, not an AttributeError."""
    if not all(callable(getattr(obj, m, None)) for m in methods):
        raise TypeError(f"{name} must be {what}, got {obj!r:.60} ({type(obj).__name__})")
    return obj

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


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or +-inf (the first offending index is named)."""
    if x.size and not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ValueError(
            f"{name} must be finite; found {x[where]} at index {where} "
            "(pass check_finite=False to propagate non-finite values)"
        )


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

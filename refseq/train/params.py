"""Parameter containers: the one documented conversion every optimiser in :mod:`refseq.train` uses.

Optimisers, clipping and gradient noise work on a ``dict`` mapping a parameter name to an ndarray
(``params``) and a dict with the same names and shapes (``grads``). Other containers are converted
by :func:`as_param_dict`, which never copies: the dict holds the *same* array objects, so an
in-place optimiser update through the dict updates the caller's container too (NamedTuple fields
and mapping values are references to mutable arrays).

Names are the dict keys; a NamedTuple's field names; a nested container's keys joined with
``"."`` (``{"enc": {"W": ...}}`` -> ``"enc.W"``); list/tuple positions become ``"0"``, ``"1"``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from refseq import _checks


def as_param_dict(params, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten ``params`` (dict, any Mapping, NamedTuple, list/tuple, or nesting) to name -> array.

    The arrays are not copied (see the module docstring), and ``None`` leaves are skipped (an
    absent bias). Raises ``TypeError`` for a leaf that is not an ndarray, because an in-place update
    of a Python float or a read-only view could not reach the caller.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r} ({type(prefix).__name__})")
    if not isinstance(params, (Mapping, list, tuple, np.ndarray)):
        raise TypeError(f"params must be a dict, Mapping, NamedTuple or list of ndarrays, got "
                        f"{type(params).__name__}")
    out: dict[str, np.ndarray] = {}
    _flatten(params, prefix, out, "params")
    return out


def _flatten(x, name, out, arg):
    if x is None:
        return
    if isinstance(x, np.ndarray):
        if name in out:
            raise ValueError(f"{arg} has a duplicate parameter name {name!r}")
        out[name] = x
        return
    if isinstance(x, Mapping):
        items = x.items()
        bad = [k for k in x if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{arg} must have str names (keys), got {bad[0]!r} at "
                            f"{name or '<root>'!r}")
    elif isinstance(x, tuple) and hasattr(x, "_fields"):  # NamedTuple
        items = zip(x._fields, x)
    elif isinstance(x, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(x))
    else:
        raise TypeError(
            f"{arg}: parameter {name or '<root>'!r} must be an ndarray or a container of "
            f"ndarrays, got {type(x).__name__}"
        )
    for key, value in items:
        _flatten(value, f"{name}.{key}" if name else str(key), out, arg)


def check_grads(grads, name: str = "grads") -> Mapping:
    """Return ``grads`` if it is a Mapping name -> float32/float64 array, else raise naming
    ``name`` (``TypeError``: a list, None, integer or complex arrays, strings)."""
    if not isinstance(grads, Mapping):
        raise TypeError(f"{name} must be a dict name -> float array, got {type(grads).__name__}")
    for k, g in grads.items():
        _checks.float_array(g, f"{name}[{k!r}]")
    return grads


def check_same_structure(params: Mapping, grads: Mapping) -> None:
    """Raise ``ValueError`` unless ``grads`` has exactly the names and shapes of ``params``."""
    for arg, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{arg} must be a dict name -> ndarray, got {type(d).__name__}")
    if set(params) != set(grads):
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        raise ValueError(f"grads must have the names of params; missing {missing}, extra {extra}")
    for k in params:
        if np.shape(params[k]) != np.shape(grads[k]):
            raise ValueError(
                f"grads[{k!r}] has shape {np.shape(grads[k])}, params[{k!r}] {np.shape(params[k])}"
            )


def global_norm(grads: Mapping) -> float:
    """``sqrt(sum_k ||g_k||_2^2)`` over all tensors, computed as torch does: the 2-norm of the
    vector of per-tensor 2-norms (in float64)."""
    check_grads(grads)
    norms = np.empty(len(grads))
    for i, g in enumerate(grads.values()):
        flat = np.asarray(g, np.float64).ravel()
        norms[i] = np.sqrt(np.dot(flat, flat))  # ||g_k||_2
    return float(np.sqrt(np.dot(norms, norms)))

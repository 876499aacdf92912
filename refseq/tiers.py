"""The three tiers and how a hot-path function finds its implementation on one of them.

This is all a reference module imports to dispatch ``backend=``: the registry
(:mod:`refseq.registry`: input generators, audit shapes, tolerances) imports the references,
never the reverse.

The tiers mirror each other file for file, so an implementation is found by convention: the
``jit`` and ``cuda`` twins of ``refseq.<hot path>:<name>`` are ``refseq.jit.<hot path>:<name>``
and ``refseq.cuda.<hot path>:<name>``, imported lazily on first use. Asking for a tier that
cannot run here raises :class:`BackendUnavailable` with an install hint; nothing falls back
silently.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

TIERS = ("numpy", "jit", "cuda")
COMPILED = ("jit", "cuda")

INSTALL_HINT = {
    "jit": "the jit tier needs numba: pip install numba",
    "cuda": (
        "the cuda tier needs numba-cuda and a CUDA GPU: pip install 'refseq[cuda]' "
        "(set NUMBA_ENABLE_CUDASIM=1 before importing numba to run it on the CPU simulator)"
    ),
}


class BackendUnavailable(RuntimeError):
    """A tier was asked for that cannot run here; the message says how to install it."""


def check_backend(backend) -> str:
    """Validate a ``backend`` keyword: one of :data:`TIERS`, else ``ValueError``."""
    if not isinstance(backend, str) or backend not in TIERS:
        raise ValueError(f"backend must be one of {TIERS}, got {backend!r}")
    return backend


def tier_available(backend: str) -> tuple[bool, str]:
    """``(available, reason)`` for a tier on this machine."""
    check_backend(backend)
    if backend == "numpy":
        return True, ""
    if backend == "jit":
        try:
            importlib.import_module("numba")
        except ImportError:
            return False, INSTALL_HINT["jit"]
        return True, ""
    from refseq.cuda import availability

    return availability()


def implementation(hot_path: str, name: str, backend: str) -> Callable:
    """``refseq.<backend>.<hot_path>:<name>``, the compiled twin of a hot-path function.

    Raises ``ValueError`` for an unknown or non-compiled ``backend`` and
    :class:`BackendUnavailable` when the tier cannot run here.
    """
    check_backend(backend)
    if backend not in COMPILED:
        raise ValueError(f"the {backend!r} tier is the reference itself; ask for one of {COMPILED}")
    ok, why = tier_available(backend)
    if not ok:
        raise BackendUnavailable(f"{name}: backend {backend!r} is unavailable: {why}")
    return getattr(importlib.import_module(f"refseq.{backend}.{hot_path}"), name)

"""numba.cuda GPU tier: kernels plus host wrappers with the reference's names and contracts.

Importable without a GPU. ``numba.cuda`` itself is imported in exactly one module,
:mod:`refseq.cuda._device` (numba-cuda is in maintenance mode; a successor changes the import),
and only when a kernel is first needed. Set ``NUMBA_ENABLE_CUDASIM=1`` *before* numba is imported
to run the kernels on the CPU simulator (slow: tiny shapes only).
"""

from __future__ import annotations

import os

import numpy as np


def simulating() -> bool:
    """True when the Numba CUDA simulator is requested (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def availability() -> tuple[bool, str]:
    """``(available, reason)``: can cuda-tier kernels run here (GPU or simulator)?"""
    try:
        from refseq.cuda._device import cuda
    except Exception as exc:  # ImportError, or numba-cuda failing against this NumPy
        return False, (
            f"numba.cuda could not be imported ({type(exc).__name__}: {exc}); "
            "pip install 'refseq[cuda]'"
        )
    if simulating():
        return True, "CUDA simulator"
    try:
        ok = bool(cuda.is_available())
    except Exception as exc:
        return False, f"no usable CUDA driver ({exc})"
    if not ok:
        return False, "no CUDA GPU found (set NUMBA_ENABLE_CUDASIM=1 to use the simulator)"
    return True, "GPU"


def require_numba_cuda(who: str):
    """``numba.cuda``, after checking that the tier can run; else ``BackendUnavailable``.

    Kernel modules bind the result to a module-level global ``cuda`` on first use: the simulator
    swaps module globals while a kernel runs, so a closure variable would not do.
    """
    from refseq.tiers import BackendUnavailable

    ok, why = availability()
    if not ok:
        raise BackendUnavailable(f"{who} cannot run: {why}")
    from refseq.cuda._device import cuda

    return cuda


def to_host(x):
    """A NumPy array from ``x`` (copied back if it is a CUDA device array); None stays None."""
    if x is None or isinstance(x, np.ndarray):
        return x
    if hasattr(x, "copy_to_host"):  # numba device array (also under the simulator)
        return x.copy_to_host()
    if hasattr(x, "__cuda_array_interface__"):  # CuPy, PyTorch, ...
        return require_numba_cuda("to_host").as_cuda_array(x).copy_to_host()
    return x

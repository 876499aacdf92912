"""Shared test set-up: hypothesis profiles, the CUDA simulator switch, the backend fixture.

The cuda tier runs on a real GPU when one is visible and under the Numba CUDA simulator
otherwise; ``REFSEQ_CUDA=sim`` or ``REFSEQ_CUDA=gpu`` forces either. The switch must happen
before numba is imported, which is why it sits at the top of this file.

Hypothesis profiles live in :mod:`refseq.testing.profiles` (``dev`` by default, ``ci`` with
``CI=true``, ``deep`` with ``HYPOTHESIS_PROFILE=deep``; cuda tests use ``cuda_settings()``).
"""

from __future__ import annotations

import os
import shutil
import sys


def _gpu_visible() -> bool:
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


_mode = os.environ.get("REFSEQ_CUDA", "auto")
if _mode == "sim" or (
    _mode == "auto" and "NUMBA_ENABLE_CUDASIM" not in os.environ and not _gpu_visible()
):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
elif _mode == "gpu":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from refseq.registry import REGISTRY, TIERS, tier_available  # noqa: E402
from refseq.testing.profiles import load_default_profile  # noqa: E402

load_default_profile()


def _serialise_simulated_shared_arrays():
    """Make the CUDA simulator's static shared arrays thread-safe.

    numba-cuda 0.30's simulator (``kernelapi.FakeCUDAShared.array``) gives the threads of a
    block one shared array per source line with an unlocked check-then-insert: when the GIL
    switches between two threads' first ``cuda.shared.array`` calls, both allocate, and each
    thread then works on its own private "shared" array. The tiled scan kernels then return
    wrong values, now and then: reproduced 1-3 times in 150 launches with a switch interval of
    1e-5..1e-6 s, and seen once in a full test run under ``fast_simulated_barriers``. This
    wrapper does the same lookup under a lock, keyed by the caller's file and line as the
    original is. Real GPUs are unaffected.
    """
    import threading

    from numba.cuda.simulator import kernelapi

    original = kernelapi.FakeCUDAShared.array
    if getattr(original, "_refseq_locked", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory / unsupported: as is
            return original(self, shape, dtype, alignment)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                dt = dtype
                if isinstance(dt, kernelapi.types.Type):
                    dt = kernelapi.numpy_support.as_dtype(dt)
                res = self._allocations[caller] = np.empty(shape, dt)
        return res

    array._refseq_locked = True
    kernelapi.FakeCUDAShared.array = array


def _numba_cuda_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba-cuda")
    except PackageNotFoundError:
        return ""


# The patch replaces a private method of numba-cuda 0.30's simulator; on any other version it
# would be a guess, so it is applied to exactly the line it was written for.
SIMULATOR_PATCH_FOR = "0.30."
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and _numba_cuda_version().startswith(
    SIMULATOR_PATCH_FOR
):
    _serialise_simulated_shared_arrays()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``slow`` unless they are selected: ``-m slow`` (any ``-m`` expression
    that names the marker) or ``REFSEQ_SLOW=1``. The README's test command, which CI runs,
    skips them."""
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("REFSEQ_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: select with -m slow or REFSEQ_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", params=TIERS)
def backend(request):
    """Every tier; unavailable ones are skipped with the reason."""
    ok, why = tier_available(request.param)
    if not ok:
        pytest.skip(f"{request.param} tier unavailable: {why}")
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _jit_warmup():
    """Compile (or load from cache) every jit kernel once, outside hypothesis' timing."""
    if not tier_available("jit")[0]:
        return
    rng = np.random.default_rng(0)
    for entry in REGISTRY.values():
        if entry.uses is not None:  # runs the kernels of another entry
            continue
        dims = dict(entry.cudasim_dims[0])
        for dtype in (np.float32, np.float64):
            args, kwargs = entry.make_inputs(rng, dims, dtype)
            try:
                entry.call("jit", *args, **kwargs)
            except ImportError:  # the jit module is not written yet
                return


@pytest.fixture(scope="module")
def fast_simulated_barriers():
    """The CUDA simulator's block manager busy-polls its threads at every ``syncthreads``; with
    the default 5 ms GIL switch interval each barrier costs milliseconds. A short interval makes
    tiled kernels ~5x faster to simulate and changes nothing else. Use it with
    ``pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")``."""
    from refseq.cuda import simulating

    previous = sys.getswitchinterval()
    if simulating():
        sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(previous)

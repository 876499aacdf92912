"""Every registered hot-path function on every tier against the float64 reference.

The check is :func:`refseq.testing.harness.run_check`, the function ``refseq audit`` runs: the
derived tolerance (docs/design.md, "The tolerance rule") with backward-error and rounding
samples, and a count of the calls of the tier's compiled twin, so a tier that silently runs the
NumPy code fails here. Entries with cells (the recurrence) are checked cell by cell. Under the
CUDA simulator the cuda tier draws from the entries' tiny ``cudasim_test_dims``.
"""

import numpy as np
import pytest
from hypothesis import given, settings

from refseq.registry import REGISTRY
from refseq.testing import leaves
from refseq.testing.harness import assert_tier_matches, cast_inputs
from refseq.testing.profiles import cuda_settings
from refseq.testing.strategies import dtypes, registry_dims, seeds


def _cases():
    """``(entry name, fixed dims)``: one case per entry, or one per cell."""
    out = []
    for name, entry in sorted(REGISTRY.items()):
        cells = (entry.test_dims or {}).get("cell")
        out += [(name, {"cell": c}) for c in cells] if cells else [(name, {})]
    return out


CASES = _cases()


def _simulated(backend):
    from refseq.cuda import simulating

    return backend == "cuda" and simulating()


@pytest.mark.parametrize("name, fixed", CASES,
                         ids=[n + "".join(f"-{v}" for v in f.values()) for n, f in CASES])
def test_tier_matches_float64_reference(name, fixed, backend):
    entry = REGISTRY[name]
    budget = cuda_settings() if backend == "cuda" else settings()

    @budget
    @given(seed=seeds(), d=registry_dims(entry, _simulated(backend), **fixed), dtype=dtypes())
    def check(seed, d, dtype):
        c = assert_tier_matches(entry, backend, d, dtype, seed)
        assert c.calls is None if backend == "numpy" else c.calls >= 1

    check()


def test_every_hot_path_and_cell_is_covered():
    """The harness reaches both hot paths, every registered function and every cell."""
    from refseq.recurrence import CELLS

    assert {REGISTRY[n].hot_path for n, _ in CASES} == {"scan", "recurrence"}
    assert {n for n, _ in CASES} == set(REGISTRY)
    cells = {f["cell"] for n, f in CASES if n == "flashrnn_backward"}
    assert cells == set(CELLS) == {f["cell"] for n, f in CASES if n == "flashrnn_forward"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_tier_is_bitwise_deterministic(name, backend):
    entry = REGISTRY[name]
    d = dict(entry.cudasim_dims[0])
    args, kw = entry.make_inputs(np.random.default_rng(3), d, np.float64)
    for dtype in (np.float32, np.float64):
        a, k = cast_inputs(args, kw, dtype)
        first = entry.call(backend, *a, **k)
        again = entry.call(backend, *a, **k)
        for x, y in zip(leaves(first), leaves(again), strict=True):
            np.testing.assert_array_equal(x, y)

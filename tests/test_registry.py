"""The registry: every entry complete, tiers resolved lazily and never silently, and every
registered hot-path function on every tier against the float64 reference.

The kernel check is :func:`refseq.testing.harness.run_check`, the function ``refseq audit``
runs: the derived tolerance (docs/design.md, "The tolerance rule") with backward-error and
rounding samples, and a count of the calls of the tier's compiled twin, so a tier that silently
runs the NumPy code fails here. Entries with cells (the recurrence) are checked cell by cell.
Under the CUDA simulator the cuda tier draws from the entries' tiny ``cudasim_test_dims``.
"""

import numpy as np
import pytest
from hypothesis import given, settings

import refseq.registry as R
from refseq.registry import REGISTRY
from refseq.scan import linear_scan
from refseq.testing import leaves
from refseq.testing.harness import assert_tier_matches, cast_inputs
from refseq.testing.profiles import cuda_settings
from refseq.testing.strategies import dtypes, registry_dims, seeds

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")


def test_every_entry_imports_and_generates_inputs():
    for name, e in R.REGISTRY.items():
        assert e.hot_path and e.public and e.audit_dims and e.cudasim_dims, name
        assert callable(e.function())
        assert e.uses in (None, *R.REGISTRY), name
        if e.uses is None:  # the cuda module may need numba-cuda; checked in tests/cuda
            assert callable(R.resolve(name, "jit")), name
        args, kwargs = e.make_inputs(np.random.default_rng(0), e.cudasim_dims[0], np.float32)
        # floats in the requested dtype; integer arrays only where outputs are compared exactly
        allowed = (np.float32, bool) + ((np.int32, np.uint8) if e.kind in ("exact", "indices")
                                        else ())
        assert all(not isinstance(a, np.ndarray) or a.dtype in allowed for a in args), name
        # the harness draws every dimension the inputs take, on CPU tiers and the simulator
        assert set(e.test_dims) == set(e.cudasim_test_dims) == set(e.audit_dims[0]), name
        for ranges in (e.test_dims, e.cudasim_test_dims):
            for key, spec in ranges.items():
                if all(isinstance(x, str) for x in spec):  # choices: every audited one included
                    assert {d[key] for d in e.audit_dims} <= set(spec), (name, key)
                else:
                    lo, hi = spec
                    assert 0 <= lo <= hi and (lo <= 1 or key != "T"), (name, key)


def test_unknown_names_and_backends_are_errors():
    with pytest.raises(KeyError, match="no hot path named"):
        R.resolve("nope", "numpy")
    with pytest.raises(ValueError, match="backend must be one of"):
        R.resolve("linear_scan", "gpu")
    with pytest.raises(ValueError, match="registered twice"):
        R.register(R.REGISTRY["linear_scan"])


def test_unavailable_tier_raises_with_install_hint(monkeypatch):
    import refseq.tiers as tiers

    monkeypatch.setattr(tiers, "tier_available", lambda b: (False, tiers.INSTALL_HINT["cuda"]))
    with pytest.raises(R.BackendUnavailable, match=r"pip install 'refseq\[cuda\]'"):
        linear_scan(np.ones(1), np.ones((1, 2, 1)), backend="cuda")


# --- every entry on every tier against the reference ----------------------------------------


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
    """The harness reaches every hot path, every registered function and every cell."""
    from refseq.recurrence import CELLS

    assert {REGISTRY[n].hot_path for n, _ in CASES} == {"scan", "recurrence", "tree_verify",
                                                        "kv_lookup"}
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

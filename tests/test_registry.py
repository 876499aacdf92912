"""The registry resolves tiers lazily, never falls back silently, and every entry is complete."""

import numpy as np
import pytest

import refseq.registry as R
from refseq.scan import linear_scan


def test_every_entry_imports_and_generates_inputs():
    for name, e in R.REGISTRY.items():
        assert e.hot_path and e.public and e.audit_dims and e.cudasim_dims, name
        assert callable(e.function())
        assert e.uses in (None, *R.REGISTRY), name
        if e.uses is None:  # the cuda module may need numba-cuda; checked in tests/cuda
            assert callable(R.resolve(name, "jit")), name
        args, kwargs = e.make_inputs(np.random.default_rng(0), e.cudasim_dims[0], np.float32)
        assert all(not isinstance(a, np.ndarray) or a.dtype in (np.float32, bool) for a in args)
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

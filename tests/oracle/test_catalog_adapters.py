"""refseq.oracle's catalog and adapters called directly: every registry entry and every nn
contract is in the catalog under its own name with a backward contract where it has a vjp; the
catalog refuses a duplicate name; each contract's float64 reference, run through the numpy
adapter, reproduces its own outputs; the torch adapter keeps 0-d arrays 0-d."""

import numpy as np
import pytest

from refseq.oracle import adapters, catalog, nn_contracts, nn_more
from refseq.oracle.suite import draw_dims, replay
from refseq.registry import REGISTRY
from refseq.testing._close import leaves


def test_catalog_holds_the_registry_and_the_nn_contracts():
    names = catalog.contracts()
    assert set(REGISTRY) <= set(names)
    for extra in ("layer_norm", "gelu", "cross_entropy", "rope", "conv1d", "aaren_layer"):
        assert extra in names and f"{extra}_backward" in names
        c = catalog.get_contract(extra)
        assert c.name == extra and c.backward_contract == f"{extra}_backward"
    assert callable(nn_contracts.backward_contract) and callable(nn_more.register_more)


def test_catalog_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="linear_scan"):
        catalog.register_contract(catalog.get_contract("linear_scan"))


@pytest.mark.parametrize("name", ["linear_scan", "softmax_scan", "layer_norm", "rope"])
def test_numpy_adapter_round_trips_the_reference(name):
    c = catalog.get_contract(name)
    dims = draw_dims(c, seed=1)
    args, kw = replay(name, seed=1, dims=dims, dtype="float64")
    want = c.reference(*args, **kw)
    got = adapters.get_adapter("numpy").wrap(c.reference)(*args, **kw)
    want, got = leaves(want), leaves(got)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_torch_adapter_keeps_zero_d_arrays():
    pytest.importorskip("torch")
    a = adapters.get_adapter("torch")
    t = a.to_framework(np.array(2.5))
    assert tuple(t.shape) == () and float(t) == 2.5
    np.testing.assert_array_equal(a.to_numpy(a.to_framework(np.arange(6.0).reshape(2, 3))),
                                  np.arange(6.0).reshape(2, 3))

"""refseq.oracle: contracts, the property suite, reports, reproducers, adapters, the CLI."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import refseq.oracle as oracle
from refseq.cli import main
from refseq.oracle import check, contracts, replay
from refseq.oracle.report import OracleFailure, Report
from refseq.registry import REGISTRY


def scan(a, b, h0, *, reverse=False):
    steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
    h, out = h0, np.empty_like(b)
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def scan_ignoring_reverse(a, b, h0, *, reverse=False):
    return scan(a, b, h0)


def scan_in_float64(a, b, h0):
    return scan(a.astype(np.float64), b.astype(np.float64), h0.astype(np.float64))


def test_every_registry_entry_and_the_nn_layers_have_a_contract():
    names = contracts()
    assert set(REGISTRY) <= set(names)
    for name in ("causal_softmax_attention", "aaren_scan", "layer_norm", "layer_norm_backward",
                 "rms_norm", "linear", "softmax", "log_softmax", "gelu"):
        assert name in names
    table = oracle.contract_table()
    assert all(f"`{n}`" in table for n in names)


@pytest.mark.parametrize("name", contracts())
def test_the_references_pass_their_own_contracts(name):
    contract = oracle.get_contract(name)
    report = check(contract.reference, name, max_examples=1, dtypes=("float32",))
    assert report.ok and len(report.cases) >= 3


def test_properties_of_linear_scan():
    report = check(scan, "linear_scan", max_examples=1)
    props = {c.property for c in report.cases}
    assert props == {"random", "length 1", "odd sizes", "large magnitudes", "carried state",
                     "reverse"}
    assert all(c.ratio <= 1 for c in report.cases)
    assert "carried state" in report.table() and "ok" in report.table()
    assert all(c.dims["T"] == 1 for c in report.cases if c.property == "length 1")


def test_reverse_is_checked_when_the_function_takes_it():
    with pytest.raises(OracleFailure, match="property 'reverse' failed"):
        check(scan_ignoring_reverse, "linear_scan", max_examples=1)


def test_a_wrong_dtype_fails():
    report = check(scan_in_float64, "linear_scan", max_examples=1, dtypes=("float32",),
                   raise_on_failure=False)
    assert not report.ok and "dtype float64, the inputs float32" in report.failures[0].message


def test_the_reproducer_replays_the_failing_case():
    def off(a, b, h0):
        return scan(a, b, h0) + 1e-4

    with pytest.raises(OracleFailure) as info:
        check(off, "linear_scan", max_examples=1, seed=7)
    message = str(info.value)
    failure = info.value.report.worst_failure()
    for text in ("linear_scan", "dtype", "seed", "input shapes", "worst entry", "vs bound",
                 "from refseq.oracle import replay"):
        assert text in message
    code = failure.replay_code()
    namespace = {}
    exec(code, namespace)
    args, kwargs = namespace["args"], namespace["kwargs"]
    assert args[0].dtype == np.dtype(failure.dtype)
    assert [a.shape for a in args] == list(failure.shapes)
    out, index, actual, desired = failure.worst
    assert off(*args, **kwargs)[index] == pytest.approx(actual)


def test_replay_is_deterministic_and_scales_large_magnitudes():
    dims = {"B": 2, "T": 5, "D": 3}
    a1 = replay("linear_scan", seed=3, dims=dims)
    a2 = replay("linear_scan", seed=3, dims=dims)
    big = replay("linear_scan", seed=3, dims=dims, property="large magnitudes")
    np.testing.assert_array_equal(a1[0][1], a2[0][1])
    np.testing.assert_allclose(big[0][1], 1e6 * a1[0][1])


def test_fixed_dims_choose_the_cell():
    report = check(oracle.get_contract("flashrnn_forward").reference, "flashrnn_forward",
                   dims={"cell": "gru"}, max_examples=2, dtypes=("float64",))
    assert {c.dims["cell"] for c in report.cases} == {"gru"}


def test_explicit_backward_is_checked_against_the_backward_contract():
    from refseq.scan import linear_scan_backward

    def wrong_backward(a, h, grad_h, h0, **kw):
        ga, gb, gh0 = linear_scan_backward(a, h, grad_h, h0, **kw)
        return ga, gb, 0 * gh0

    ok = check(scan, "linear_scan", backward=linear_scan_backward, max_examples=1)
    assert any(c.contract == "linear_scan_backward" for c in ok.cases)
    with pytest.raises(OracleFailure, match="linear_scan_backward"):
        check(scan, "linear_scan", backward=wrong_backward, max_examples=1)


@pytest.mark.parametrize("kwargs, error, text", [
    ({"contract": 3}, TypeError, "contract"),
    ({"contract": "nope"}, ValueError, "unknown contract"),
    ({"adapter": "tf"}, ValueError, "adapter"),
    ({"adapter": 1}, TypeError, "adapter"),
    ({"dtypes": ("float16",)}, ValueError, "dtypes"),
    ({"max_examples": -1}, ValueError, "max_examples"),
    ({"seed": -2}, ValueError, "seed"),
    ({"dims": {"Q": 1}}, ValueError, "dims"),
    ({"dims": [1]}, TypeError, "dims"),
    ({"device": "cuda"}, ValueError, "device"),
])
def test_bad_arguments_name_the_argument(kwargs, error, text):
    options = {"contract": "linear_scan", **kwargs}
    with pytest.raises(error, match=text):
        check(scan, options.pop("contract"), **options)


def test_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match="fn must be callable"):
        check(3, "linear_scan")


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed")
def test_jax_adapter_without_jax_says_so():
    with pytest.raises(ImportError, match="adapter='jax' needs JAX"):
        check(scan, "linear_scan", adapter="jax")


def test_make_test_returns_a_test_that_fails_on_a_wrong_function():
    test_ok = oracle.make_test(scan, "linear_scan", max_examples=1)
    test_ok()
    assert test_ok.__name__.startswith("test_linear_scan")
    with pytest.raises(OracleFailure):
        oracle.make_test(lambda a, b, h0: b, "linear_scan", max_examples=1)()


# the one-line form in a test module is collected like any test
test_scan_by_make_test = oracle.make_test(scan, "linear_scan", max_examples=1)


# --- the command line ---------------------------------------------------------------------------


def _module(tmp_path, monkeypatch, body):
    (tmp_path / "userkernels.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)


KERNELS = """
import numpy as np
def good(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return np.stack(out, 1)
def bad(a, b, h0):
    return good(a, b, h0) * (1 + 1e-3)
"""


def test_cli_check_passes_and_fails(tmp_path, monkeypatch, capsys):
    _module(tmp_path, monkeypatch, KERNELS)
    assert main(["check", "userkernels:good", "--as", "linear_scan", "--max-examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "refseq check: linear_scan" in out and "passed" in out
    assert main(["check", "userkernels:bad", "--as", "linear_scan", "--max-examples", "1",
                 "--dtype", "float32"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "replay(" in out


@pytest.mark.parametrize("argv, text", [
    (["check", "userkernels:good"], "--as"),
    (["check", "userkernels:good", "--as", "nope"], "unknown contract"),
    (["check", "nocolon", "--as", "linear_scan"], "module:callable"),
    (["check", "userkernels:missing", "--as", "linear_scan"], "cannot load"),
    (["check", "userkernels:good", "--as", "linear_scan", "--max-examples", "-1"],
     "non-negative"),
    (["check", "userkernels:good", "--as", "linear_scan", "--dim", "Q=1"], "dims"),
])
def test_cli_check_usage_errors_exit_2(tmp_path, monkeypatch, capsys, argv, text):
    _module(tmp_path, monkeypatch, KERNELS)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert text in capsys.readouterr().err


def test_a_function_that_drops_the_carried_state_fails_only_that_case():
    """softmax_scan's random cases start from no state, so only the carried-state case sees
    a function that ignores the state it is given."""
    reference = oracle.get_contract("softmax_scan").reference

    def forgets_state(s, v, mask, state=None):
        return reference(s, v, mask, None)

    report = check(forgets_state, "softmax_scan", max_examples=1, raise_on_failure=False)
    assert {c.property for c in report.failures} == {"carried state"}


def test_pytest_plugin_parses_its_option_and_rejects_bad_specs():
    """:mod:`refseq.oracle.pytest_plugin` by name: ``--refseq-check CONTRACT=module:callable``."""
    from refseq.oracle import pytest_plugin

    assert pytest_plugin._parse("linear_scan=pkg.mod:fn") == ("linear_scan", "pkg.mod:fn")
    for bad in ("linear_scan", "=pkg:fn", "linear_scan=pkg.fn", "linear_scan:pkg:fn"):
        with pytest.raises(pytest.UsageError, match="CONTRACT=module:callable"):
            pytest_plugin._parse(bad)


def test_a_report_lists_its_cases_and_is_ok_only_when_all_pass():
    report = check(scan, "linear_scan", max_examples=1)
    assert isinstance(report, Report) and report.ok and report.cases
    assert all(c.ok for c in report.cases)

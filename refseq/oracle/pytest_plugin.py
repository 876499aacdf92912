"""The pytest plugin of the oracle: ``--refseq-check CONTRACT=module:callable``.

Installed with refseq (entry point ``pytest11``, named after this module), or loaded by hand with
``-p refseq.oracle.pytest_plugin``. Each ``--refseq-check`` (repeatable) adds one test item per
oracle case, named ``refseq-check::CONTRACT[property, dtype, dims, seed N]``; a failing item
prints the case's reproducer. ``--refseq-adapter``, ``--refseq-device``,
``--refseq-max-examples`` and ``--refseq-seed`` apply to all of them. Without
``--refseq-check`` the plugin adds nothing.

For one line in a test file, use :func:`refseq.oracle.make_test` instead.
"""

from __future__ import annotations

import pytest

# Nothing of refseq is imported until --refseq-check is given: the plugin is loaded by every
# pytest run in an environment where refseq is installed.


def pytest_addoption(parser):
    group = parser.getgroup("refseq", "refseq oracle: check implementations against contracts")
    group.addoption("--refseq-check", action="append", default=[], metavar="CONTRACT=MOD:FN",
                    help="check the callable MOD:FN against CONTRACT (repeatable)")
    group.addoption("--refseq-adapter", default="numpy", choices=["numpy", "torch", "jax"],
                    help="what the checked callables take and return (default numpy)")
    group.addoption("--refseq-device", default=None, help="torch device (cpu, cuda)")
    group.addoption("--refseq-max-examples", type=int, default=5,
                    help="random cases per dtype (default 5)")
    group.addoption("--refseq-seed", type=int, default=0, help="seed of the first case")


def _parse(spec: str):
    contract, eq, target = spec.partition("=")
    if not eq or not contract or ":" not in target:
        raise pytest.UsageError(f"--refseq-check expects CONTRACT=module:callable, e.g. "
                                f"linear_scan=mypkg.kernels:my_scan, got {spec!r}")
    return contract, target


class OracleItem(pytest.Item):
    """One oracle case as a pytest item."""

    def __init__(self, *, run, **kwargs):
        super().__init__(**kwargs)
        self._run = run

    def runtest(self):
        from refseq.oracle.report import OracleFailure

        result = self._run()
        if not result.ok:
            raise OracleFailure(result.reproducer())

    def repr_failure(self, excinfo, style=None):
        from refseq.oracle.report import OracleFailure

        if isinstance(excinfo.value, OracleFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return "refseq-check", None, self.name


def pytest_collection_modifyitems(session, config, items):
    specs = config.getoption("refseq_check")
    if not specs:
        return
    from refseq.oracle import get_contract, load_callable, run_suite

    for spec in specs:
        name, target = _parse(spec)
        try:
            contract = get_contract(name)
            fn = load_callable(target)
        except (ImportError, AttributeError, TypeError, ValueError) as e:
            raise pytest.UsageError(f"--refseq-check {spec}: {e}") from None
        cases = run_suite(fn, contract, adapter=config.getoption("refseq_adapter"),
                          device=config.getoption("refseq_device"),
                          max_examples=config.getoption("refseq_max_examples"),
                          seed=config.getoption("refseq_seed"))
        for prop, dims, dtype, seed, run in cases:
            shown = " ".join(f"{k}={v}" for k, v in dims.items())
            items.append(OracleItem.from_parent(
                session, name=f"refseq-check::{name}:{target}[{prop}, {dtype}, {shown}, "
                              f"seed {seed}]", run=run))

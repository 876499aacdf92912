"""The oracle for users' implementations: check your own scan, recurrence or layer against
refseq's float64 references, with the tolerance the reference's own float32 error sets.

>>> import numpy as np, refseq.oracle as oracle
>>> def my_scan(a, b, h0):
...     h, out = h0, []
...     for t in range(a.shape[1]):
...         h = a[:, t] * h + b[:, t]
...         out.append(h)
...     return np.stack(out, axis=1)
>>> oracle.check(my_scan, "linear_scan", max_examples=2).ok
True

:func:`check` runs the property suite and returns a :class:`Report` (raising
:class:`OracleFailure`, an ``AssertionError`` whose message replays the worst case, on
failure); :func:`contracts` lists the contracts, :func:`replay` rebuilds a case's inputs,
:func:`make_test` turns a check into a pytest test; the ``refseq check`` command and the pytest
plugin (``--refseq-check CONTRACT=module:callable``) run the same suite. docs/oracle.md is the
tutorial.
"""

# The names load on first use (PEP 562), so that the pytest plugin, a submodule that every
# pytest run in an environment with refseq loads, imports nothing else of refseq.
_LAZY = {
    "Adapter": "adapters", "get_adapter": "adapters",
    "DEFAULT_MAX_EXAMPLES": "suite", "check": "suite", "replay": "suite", "run_suite": "suite",
    "CONTRACTS": "catalog", "Contract": "catalog", "contract_table": "catalog",
    "contracts": "catalog", "get_contract": "catalog", "properties": "catalog",
    "CaseResult": "report", "OracleFailure": "report", "Report": "report",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"refseq.oracle.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'refseq.oracle' has no attribute {name!r}")


__all__ = [
    "CONTRACTS", "DEFAULT_MAX_EXAMPLES", "Adapter", "CaseResult", "Contract", "OracleFailure",
    "Report", "check", "contract_table", "contracts", "get_adapter", "get_contract",
    "load_callable", "make_test", "properties", "replay", "run_suite",
]


def load_callable(spec: str):
    """Import ``"package.module:attribute"`` (dots after the colon walk attributes)."""
    import importlib

    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string 'module:callable', got {type(spec).__name__}")
    if ":" not in spec:
        raise ValueError(f"spec must have the form 'module:callable', got {spec!r}")
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable ({type(obj).__name__})")
    return obj


def make_test(fn, contract, **options):
    """A pytest test function that runs :func:`check` (``test_x = make_test(fn, "linear_scan")``
    in a test module is collected as one test; ``options`` go to :func:`check`). ``fn`` and
    ``contract`` are checked now, so a typo fails at import, not at test time."""
    from refseq.oracle.catalog import get_contract

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    name = get_contract(contract).name

    def test():
        from refseq.oracle.suite import check

        check(fn, contract, **options)

    test.__name__ = f"test_{name}_{getattr(fn, '__name__', 'fn')}"
    test.__doc__ = f"refseq.oracle.check of {getattr(fn, '__name__', fn)!r} against {name!r}."
    return test

"""The ``refseq`` command line: ``audit`` (the main job), ``bench``, ``demo``, ``papers``,
``check`` (the oracle for a user's implementation, :mod:`refseq.oracle`).

Every option is validated while the command line is parsed, by the ``type=`` converters below
(shared with the paper demos, which parse their own options): a bad value ends the run with an
argparse message, ``usage: ...`` then ``error: argument --T: must be a positive integer, got
-5``, and exit status 2, never with a Python traceback from deep inside a run.
"""

from __future__ import annotations

import argparse
import math
import sys

__all__ = [
    "build_parser",
    "finite_float",
    "main",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "seed",
]


# --- argparse type= converters ------------------------------------------------------------------
# Each takes the option's text and returns the value, or raises ArgumentTypeError with the
# message that argparse prints after "argument --NAME: ".


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """``type=`` converter: an integer >= 1 (sizes, lengths, epochs, steps, repeats)."""
    return _integer(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """``type=`` converter: an integer >= 0 (counts where 0 means none, e.g. untimed runs)."""
    return _integer(text, 0, "a non-negative integer")


def seed(text: str) -> int:
    """``type=`` converter: a random seed, an integer >= 0 (NumPy rejects negative seeds)."""
    return _integer(text, 0, "a non-negative integer seed")


def _real(text: str, ok, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def finite_float(text: str) -> float:
    """``type=`` converter: a finite real number (NaN and +-inf are rejected)."""
    return _real(text, lambda v: True, "a finite number")


def positive_float(text: str) -> float:
    """``type=`` converter: a finite real number > 0."""
    return _real(text, lambda v: v > 0, "a finite number > 0")


def nonnegative_float(text: str) -> float:
    """``type=`` converter: a finite real number >= 0."""
    return _real(text, lambda v: v >= 0, "a finite number >= 0")


def _choice(kind: str, known, hint: str = ""):
    """``type=`` converter accepting only the names in ``known()`` (read when a name is given)."""

    def convert(text: str) -> str:
        names = list(known())
        if text not in names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {text!r}; choose from: {', '.join(names)}{hint}")
        return text

    convert.__name__ = kind.replace(" ", "_")
    return convert


def _hot_paths():
    from refseq.registry import REGISTRY

    return REGISTRY


def _benchmarks():
    from refseq.bench import BENCHMARKS

    return BENCHMARKS


def _demo_names():
    from refseq.papers import demos

    return demos()


def _contract_lines(names) -> str:
    """The audited functions' contracts (signature and layouts), from the one record the oracle
    checks users' code against (:mod:`refseq.oracle.catalog`)."""
    from refseq.oracle import get_contract

    lines = ["contracts (`refseq check YOUR_FN --as NAME` runs the same checks on your code):"]
    for name in names:
        c = get_contract(name)
        lines.append(f"  {c.signature}")
        lines.append("      " + ", ".join(f"{k}: {v}" for k, v in c.layouts.items()))
    return "\n".join(lines) + "\n"


def _audit(args) -> int:
    from refseq.audit import audit, format_table
    from refseq.registry import REGISTRY, TIERS

    tiers = args.tier or list(TIERS)
    names = args.only or list(REGISTRY)  # each --only NAME was checked by the parser
    print(
        f"refseq audit: {len(names)} hot-path functions x tiers {', '.join(tiers)}; "
        "each result is compared with the float64 NumPy reference",
        flush=True,
    )
    print(
        "tolerance: 2x (forward) or 4x (backward) the reference's own float32 error, "
        "scaled by eps for float64, + eps*|ref| (docs/design.md)\n",
        flush=True,
    )
    print(_contract_lines(names), flush=True)
    progress = (lambda c: print(".", end="", flush=True)) if sys.stdout.isatty() else None
    checks, skipped = audit(tiers, names, seed=args.seed, repeats=args.repeats, log=progress)
    if progress:
        print()
    print(format_table(checks, skipped))
    return 0 if all(c.ok for c in checks) and checks else 1


def _bench(args) -> int:
    import importlib

    from refseq.bench import BENCHMARKS

    if args.what is None:  # a given NAME was checked by the parser
        print("available benchmarks (refseq bench NAME):", file=sys.stderr)
        _print_table({k: v[1] for k, v in BENCHMARKS.items()}, sys.stderr)
        return 2
    return importlib.import_module(BENCHMARKS[args.what][0]).main(args)


def _print_table(rows: dict, file) -> None:
    width = max(map(len, rows), default=0)
    for name, line in rows.items():
        print(f"  {name.ljust(width)}  {line}", file=file)


def _demo(args) -> int:
    import importlib

    from refseq.papers import demos

    table = demos()
    if args.name is None:
        if args.rest:  # e.g. `refseq demo --T 5`: options before the demo's name
            args.parser.error(f"name the demo before its options, e.g. refseq demo NAME "
                              f"{' '.join(args.rest)}; demos: {', '.join(table)}")
        print("demos (refseq demo NAME [--help]): small-scale reproductions of papers' results")
        _print_table({k: v[1] for k, v in table.items()}, sys.stdout)
        return 0
    # the parser checked the name; the demo parses (and checks) its own options
    return importlib.import_module(table[args.name][0]).main(args.rest)


def _papers(args) -> int:
    from refseq.papers import format_papers

    print(format_papers())
    return 0


def _contract_names():
    from refseq.oracle import contracts

    return contracts()


def _callable_spec(text: str) -> str:
    """``type=`` converter: ``module:callable`` (imported when the command runs)."""
    module, _, attr = text.partition(":")
    if not module or not attr:
        raise argparse.ArgumentTypeError(f"must be module:callable, e.g. mypkg.kernels:my_scan, "
                                         f"got {text!r}")
    return text


def _dim(text: str) -> tuple:
    """``type=`` converter: ``NAME=VALUE``, an integer value or a name (``cell=lstm``)."""
    name, eq, value = text.partition("=")
    if not eq or not name or not value:
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE, e.g. T=5 or cell=lstm, got {text!r}")
    return name, int(value) if value.lstrip("-").isdigit() else value


def _check(args) -> int:
    import os

    from refseq.oracle import OracleFailure, check, load_callable

    if os.getcwd() not in sys.path:  # import the user's module from here, as `python -m` does
        sys.path.insert(0, os.getcwd())
    try:
        fn = load_callable(args.target)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        args.parser.error(f"argument TARGET: cannot load {args.target!r}: {e}")
    options = dict(adapter=args.adapter, max_examples=args.max_examples, seed=args.seed,
                   dtypes=tuple(args.dtype or ("float32", "float64")),
                   dims=dict(args.dim) if args.dim else None)
    if args.device is not None:
        options["device"] = args.device
    try:
        report = check(fn, args.contract, raise_on_failure=False, **options)
    except (ImportError, TypeError, ValueError) as e:
        args.parser.error(str(e))
    print(report.table())
    try:
        report.raise_if_failed()
    except OracleFailure as e:
        print(f"\nFAILED: {len(report.failures)} of {len(report.cases)} cases; the worst:\n{e}")
        return 1
    print(f"\npassed: {len(report.cases)} cases")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refseq",
        description="refseq: readable references for sequence models, their compiled twins, "
        "and the checks that tie them together.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="check every hot path on every available tier")
    a.add_argument(
        "--tier",
        action="append",
        choices=["numpy", "jit", "cuda"],
        help="restrict to a tier (repeatable)",
    )
    a.add_argument("--only", action="append", metavar="NAME", type=_choice("hot path", _hot_paths),
                   help="restrict to a hot path (repeatable)")
    a.add_argument("--seed", type=seed, default=0, help="seed of the drawn inputs (>= 0)")
    a.add_argument("--repeats", type=nonnegative_int, default=3,
                   help="timed runs per check, best is kept (0: untimed)")
    a.set_defaults(func=_audit)
    b = sub.add_parser("bench", help="speed ratios measured side by side")
    b.add_argument("what", nargs="?", default=None, metavar="NAME",
                   type=_choice("benchmark", _benchmarks),
                   help="which benchmark (e.g. scan, decoding); none: list them")
    b.add_argument("--repeats", type=positive_int, default=10,
                   help="timed runs per measurement, best is kept (>= 1)")
    b.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy reference")
    b.set_defaults(func=_bench)
    d = sub.add_parser("demo", help="reproduce a paper's small-scale result")
    d.add_argument("name", nargs="?", default=None, type=_choice("demo", _demo_names),
                   help="which demo; none: list them")
    d.add_argument("rest", nargs=argparse.REMAINDER,
                   help="the demo's own options (refseq demo NAME --help)")
    d.set_defaults(func=_demo, parser=d)
    sub.add_parser("papers", help="the papers and their status").set_defaults(func=_papers)
    c = sub.add_parser("check", help="check your implementation against a contract (the oracle)")
    c.add_argument("target", metavar="TARGET", type=_callable_spec,
                   help="your function, as module:callable (e.g. mypkg.kernels:my_scan)")
    c.add_argument("--as", dest="contract", required=True, metavar="CONTRACT",
                   type=_choice("contract", _contract_names),
                   help="the contract to check it against (e.g. linear_scan)")
    c.add_argument("--adapter", choices=["numpy", "torch", "jax"], default="numpy",
                   help="what the function takes and returns (default numpy)")
    c.add_argument("--device", default=None, help="torch device (cpu, cuda); torch adapter only")
    c.add_argument("--max-examples", type=nonnegative_int, default=5,
                   help="random cases per dtype, besides the property cases (default 5)")
    c.add_argument("--seed", type=seed, default=0, help="seed of the first case (>= 0)")
    c.add_argument("--dtype", action="append", choices=["float32", "float64"],
                   help="restrict to a dtype (repeatable; default both)")
    c.add_argument("--dim", action="append", type=_dim, metavar="NAME=VALUE",
                   help="fix a dimension, e.g. --dim cell=lstm (repeatable)")
    c.set_defaults(func=_check, parser=c)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

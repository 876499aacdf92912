"""The ``refseq`` command line: ``audit`` (the main job), ``bench``, ``demo``, ``papers``."""

from __future__ import annotations

import argparse
import sys


def _audit(args) -> int:
    from refseq.audit import audit, format_table
    from refseq.registry import REGISTRY, TIERS

    tiers = args.tier or list(TIERS)
    names = args.only or list(REGISTRY)
    for n in names:
        if n not in REGISTRY:
            print(
                f"refseq audit: unknown hot path {n!r}; known: {', '.join(REGISTRY)}",
                file=sys.stderr,
            )
            return 2
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
    progress = (lambda c: print(".", end="", flush=True)) if sys.stdout.isatty() else None
    checks, skipped = audit(tiers, names, seed=args.seed, repeats=args.repeats, log=progress)
    if progress:
        print()
    print(format_table(checks, skipped))
    return 0 if all(c.ok for c in checks) and checks else 1


def _bench(args) -> int:
    import importlib

    from refseq.bench import BENCHMARKS

    if args.what is None or args.what not in BENCHMARKS:
        if args.what is not None:
            print(f"refseq bench: unknown benchmark {args.what!r}", file=sys.stderr)
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
        print("demos (refseq demo NAME [--help]): small-scale reproductions of papers' results")
        _print_table({k: v[1] for k, v in table.items()}, sys.stdout)
        return 0
    if args.name not in table:
        print(f"refseq demo: unknown demo {args.name!r}; available:", file=sys.stderr)
        _print_table({k: v[1] for k, v in table.items()}, sys.stderr)
        return 2
    return importlib.import_module(table[args.name][0]).main(args.rest)


def _papers(args) -> int:
    from refseq.papers import format_papers

    print(format_papers())
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
    a.add_argument("--only", action="append", metavar="NAME", help="restrict to a hot path")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--repeats", type=int, default=3, help="timed runs per check (best is kept)")
    a.set_defaults(func=_audit)
    b = sub.add_parser("bench", help="speed ratios measured side by side")
    b.add_argument("what", nargs="?", default=None, metavar="NAME",
                   help="which benchmark (scan, recurrence, train); none: list them")
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy reference")
    b.set_defaults(func=_bench)
    d = sub.add_parser("demo", help="reproduce a paper's small-scale result")
    d.add_argument("name", nargs="?", default=None, help="which demo; none: list them")
    d.add_argument("rest", nargs=argparse.REMAINDER)
    d.set_defaults(func=_demo)
    sub.add_parser("papers", help="the papers and their status").set_defaults(func=_papers)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

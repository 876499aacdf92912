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
    from refseq import bench

    if args.what == "train":
        print(f"refseq bench train: one Adam step of the tiny transformer, float32, best of "
              f"{args.repeats}\n", flush=True)
        print(bench.format_train_rows(bench.bench_train(args.repeats, log=lambda r: None)))
        return 0
    if args.what == "recurrence":
        from refseq import bench_recurrence

        print("refseq bench recurrence: LSTM forward and forward+backward, float32, jit vs the "
              "NumPy reference and torch.nn.LSTM (CPU) when installed\n", flush=True)
        rows = bench_recurrence.bench_recurrence(repeats=min(args.repeats, 5),
                                                 numpy_reference=not args.no_numpy,
                                                 log=lambda r: None)
        print(bench_recurrence.format_rows(rows))
        return 0
    if args.what != "scan":
        print(f"refseq bench: unknown benchmark {args.what!r}; available: scan, train, "
              "recurrence", file=sys.stderr)
        return 2
    print(
        "refseq bench scan: float32, best of "
        f"{args.repeats}; 'of copy' = effective bandwidth / np.copyto bandwidth of the same "
        "bytes, measured in this run\n",
        flush=True,
    )
    rows = bench.bench_scan(args.repeats, numpy_reference=not args.no_numpy, log=lambda r: None)
    print(bench.format_rows(rows))
    from refseq.cuda import availability, simulating

    ok, why = availability()
    if ok and not simulating():
        print("\ncuda (device arrays; 'of copy' = vs a device-to-device copy):")
        print(bench.format_rows(bench.bench_scan_cuda(log=lambda r: None)))
    else:
        print(f"\ncuda: not benchmarked ({why if not ok else 'simulator only'})")
    return 0


def _demo(args) -> int:
    import importlib

    from refseq.demos import DEMOS as demos

    if args.name not in demos:
        print(
            f"refseq demo: unknown demo {args.name!r}; available: {', '.join(demos)}",
            file=sys.stderr,
        )
        return 2
    return importlib.import_module(demos[args.name]).main(args.rest)


def _papers(args) -> int:
    from refseq.papers import format_papers

    print(format_papers())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refseq", description=__doc__)
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
    b.add_argument("what", nargs="?", default="scan")
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy reference")
    b.set_defaults(func=_bench)
    d = sub.add_parser("demo", help="reproduce a paper's small-scale result")
    d.add_argument("name")
    d.add_argument("rest", nargs=argparse.REMAINDER)
    d.set_defaults(func=_demo)
    sub.add_parser("papers", help="the papers and their status").set_defaults(func=_papers)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

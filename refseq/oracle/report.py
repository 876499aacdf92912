"""The oracle's results: one :class:`CaseResult` per checked case, a :class:`Report` of them, and
:class:`OracleFailure`, whose message replays the worst failing case."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CaseResult", "OracleFailure", "Report"]


class OracleFailure(AssertionError):
    """A user's implementation broke its contract; the message is a reproducer. ``report``
    holds the whole :class:`Report`."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


@dataclass
class CaseResult:
    """One checked case.

    ``property`` names what was checked ("random", "length 1", "carried state", ...); ``shapes``
    are the input shapes; ``worst`` is ``(output, index, actual, desired)`` at the entry whose
    error is largest against its bound; ``err`` / ``bound`` are that entry's error and bound and
    ``ratio`` their quotient (at most 1 when ``ok``). ``message`` says why a case failed.
    """

    contract: str
    property: str
    dims: dict
    dtype: str
    seed: int
    ok: bool
    err: float = float("nan")
    bound: float = float("nan")
    ratio: float = float("nan")
    worst: tuple | None = None
    shapes: tuple = ()
    message: str = ""
    adapter: str = "numpy"

    @property
    def label(self) -> str:
        """A short name: ``linear_scan[carried state, float32, B=2 T=5 D=3, seed 4]``."""
        dims = " ".join(f"{k}={v}" for k, v in self.dims.items())
        return f"{self.contract}[{self.property}, {self.dtype}, {dims}, seed {self.seed}]"

    def replay_code(self) -> str:
        """The lines that rebuild this case's inputs with :func:`refseq.oracle.replay`."""
        return (f"from refseq.oracle import replay\n"
                f"args, kwargs = replay({self.contract!r}, seed={self.seed}, dims={self.dims!r}, "
                f"dtype={self.dtype!r}, property={self.property!r})")

    def reproducer(self) -> str:
        """The failure message: what, where, how wrong, and the code that replays it."""
        lines = [f"{self.contract}: property {self.property!r} failed ({self.adapter} adapter)",
                 f"  dims {self.dims}, dtype {self.dtype}, seed {self.seed}",
                 f"  input shapes {', '.join(str(s) for s in self.shapes)}"]
        if self.worst is not None:
            out, index, actual, desired = self.worst
            lines.append(f"  worst entry: output {out}, index {index}: actual {actual!r}, "
                         f"desired {desired!r}")
            lines.append(f"  error {self.err:.3g} vs bound {self.bound:.3g} "
                         f"(ratio {self.ratio:.3g})")
        if self.message:
            lines.append(f"  {self.message}")
        lines.append("  replay the inputs:")
        lines += ["    " + line for line in self.replay_code().splitlines()]
        return "\n".join(lines)


@dataclass
class Report:
    """All cases of one :func:`refseq.oracle.check` run."""

    contract: str
    adapter: str
    cases: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases)

    @property
    def failures(self) -> list:
        return [c for c in self.cases if not c.ok]

    def worst_failure(self) -> CaseResult | None:
        """The failing case with the largest error ratio (a non-numeric failure first)."""
        bad = self.failures
        if not bad:
            return None
        return max(bad, key=lambda c: (c.worst is None, c.ratio if c.ratio == c.ratio else 0))

    def table(self) -> str:
        """A plain-text table: one row per case."""
        head = ("property", "dtype", "dims", "worst err", "bound", "err/bound", "")
        rows = [head]
        for c in self.cases:
            dims = " ".join(f"{k}={v}" for k, v in c.dims.items())
            rows.append((c.property, c.dtype, dims, f"{c.err:.2e}", f"{c.bound:.2e}",
                         f"{c.ratio:.3f}", "ok" if c.ok else "FAIL"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [f"refseq check: {self.contract} ({self.adapter} adapter), {len(self.cases)} "
                 f"cases, {len(self.failures)} failed"]
        lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def raise_if_failed(self) -> Report:
        """Raise :class:`OracleFailure` with the worst failure's reproducer; else return self."""
        worst = self.worst_failure()
        if worst is not None:
            others = len(self.failures) - 1
            extra = f"\n({others} more failing case(s); see .report)" if others else ""
            raise OracleFailure(worst.reproducer() + extra, self)
        return self

"""The papers refseq implements, one package each: ``refseq.papers.<slug>``.

A paper package holds the code that only its paper uses (models, tasks, experiments, its demo);
code that two or more papers use lives in a shared package (:mod:`refseq.nn`,
:mod:`refseq.train`, :mod:`refseq.models`, :mod:`refseq.decoding`, :mod:`refseq.tasks`,
:mod:`refseq.rnn` and the hot paths). Each package's ``__init__`` opens with the paper's title,
arXiv id, official code, a glossary (paper symbol -> code name -> shape) and the deviations from
the paper, and defines ``PAPER``, the metadata that ``refseq papers`` and ``refseq demo`` read.
A new paper is one new package: nothing here lists the implemented ones by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """Metadata of one paper package (``PAPER`` in its ``__init__``).

    ``demo`` is the ``refseq demo`` name of the package's ``demo`` module (None: no demo);
    ``demo_summary`` is its one-line description.
    """

    number: int
    title: str
    arxiv: str
    code: str
    hot_paths: str
    status: str = "implemented"
    demo: str | None = None
    demo_summary: str = ""


# Papers of the programme that have no package yet: (number, title, arXiv id, hot paths).
# A paper leaves this table when its package lands.
PLANNED = (
    (3, "Stuffed Mamba: State Collapse and State Capacity", "2410.07145", "scan, recurrence"),
    (9, "Just read twice (JRT-Prompt, JRT-RNN)", "2407.05483", "scan"),
    (10, "Long-term Recurrent Convolutional Networks (LRCN)", "1411.4389", "recurrence"),
    (11, "Linear State-Space Layers (LSSL)", "2110.13985", "scan, recurrence"),
    (14, "Pointer Networks", "1506.03134", "recurrence"),
    (15, "Lexical Unit Decoding", "2405.15208", "tree verification"),
    (17, "Chimera", "2402.15758", "tree verification"),
    (19, "Titans: Learning to Memorize at Test Time", "2501.00663", "scan, recurrence"),
    (20, "Parallel Decoding via Hidden Transfer", "2404.12022", "tree verification"),
    (22, "In-Context Language Learning", "2401.12973", "-"),
    (25, "Sequence to Sequence Learning", "1409.3215", "recurrence"),
    (26, "Hardware-Aware Parallel Prompt Decoding", "2405.18628", "tree verification"),
    (27, "Stateful Conformer (cache-based streaming ASR)", "2312.17279", "recurrence, scan"),
)

# Cross-cutting parts of the programme that are not one paper: (title, sources, hot paths,
# where; "" while planned).
CROSS_CUTTING = (
    ("Speculative verification core", "2211.17192 et al.", "tree verification (defines it)",
     "refseq.decoding.speculative, refseq.tree_verify"),
    ("Search and sampling decoding", "-", "-", "refseq.decoding"),
)


def slugs() -> list[str]:
    """The paper packages under ``refseq/papers/``, by name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def paper(slug: str) -> Paper:
    """The ``PAPER`` metadata of ``refseq.papers.<slug>`` (imports the package)."""
    info = importlib.import_module(f"{__name__}.{slug}").PAPER
    if not isinstance(info, Paper):
        raise TypeError(f"refseq.papers.{slug}.PAPER must be a Paper, got {type(info).__name__}")
    return info


def demos() -> dict[str, tuple[str, str]]:
    """``{demo name: (module, one-line summary)}`` over the paper packages that have a demo."""
    out = {}
    for slug in slugs():
        info = paper(slug)
        if info.demo:
            out[info.demo] = (f"{__name__}.{slug}.demo", info.demo_summary)
    return dict(sorted(out.items()))


def format_papers() -> str:
    """The table printed by ``refseq papers``: implemented packages first, then the planned."""
    head = ("#", "paper", "arXiv", "hot paths", "status", "where")
    rows = []
    for slug in slugs():
        p = paper(slug)
        where = f"refseq.papers.{slug}" + (f" (demo: refseq demo {p.demo})" if p.demo else "")
        rows.append((p.number, p.title, p.arxiv, p.hot_paths, p.status, where))
    rows += [(n, t, a, h, "planned", "") for n, t, a, h in PLANNED]
    rows.sort(key=lambda r: r[0])
    rows += [("-", t, a, h, "implemented" if w else "planned", w) for t, a, h, w in CROSS_CUTTING]
    rows = [tuple(str(x) for x in r) for r in rows]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
    done = sum(1 for r in rows if r[4] == "implemented")
    lines.append(f"{done} of {len(rows)} implemented")
    return "\n".join(lines)

"""The full-history and rolling-window baselines (what goes into their prompts)."""

from __future__ import annotations

import pytest

from refseq.papers.recurrentgpt import baselines
from refseq.papers.recurrentgpt.budget import count_words
from refseq.papers.recurrentgpt.parse import extract_section, parse_writer_output
from refseq.papers.recurrentgpt.template_writer import TemplateWriter

WRITER = TemplateWriter(1, paragraph_sentences=3)


def _shown(prompt: str) -> list[str]:
    return extract_section(prompt, "Input Paragraph:", "Input Instruction:").split("\n\n")


def test_full_history_shows_everything_and_grows():
    w = baselines.FullHistoryWriter(WRITER, ["p1", "p2"], "plan zero")
    recs = [w.step() for _ in range(4)]
    assert _shown(recs[0].prompt) == ["p1", "p2"]
    assert _shown(recs[3].prompt) == ["p1", "p2", *[r.paragraph for r in recs[:3]]]
    assert w.paragraphs == ["p1", "p2", *[r.paragraph for r in recs]]
    assert all(r.prompt_words == count_words(r.prompt) for r in recs)
    assert [r.step for r in recs] == [1, 2, 3, 4]
    plan = lambda r: extract_section(r.prompt, "Input Instruction:",  # noqa: E731
                                     "Reply in exactly this format:")
    assert plan(recs[0]) == "plan zero"
    reply = parse_writer_output(WRITER.complete(recs[1].prompt, seed=1))  # step 2's call seed
    assert plan(recs[2]) == reply.plans[0]  # the previous reply's first plan


def test_rolling_window_shows_the_last_k():
    w = baselines.RollingWindowWriter(WRITER, ["p1", "p2", "p3", "p4"], "plan", k=3)
    r1 = w.step()
    assert _shown(r1.prompt) == ["p2", "p3", "p4"]
    r2 = w.step()
    assert _shown(r2.prompt) == ["p3", "p4", r1.paragraph]
    with pytest.raises(ValueError, match="k must be"):
        baselines.RollingWindowWriter(WRITER, [], "plan", k=0)

"""Baselines that RecurrentGPT is contrasted with (Zhou et al., arXiv 2305.13304, Sec. 4).

Both write with the same generator and the same reply format, but put text into the prompt
instead of keeping memories:

* :class:`FullHistoryWriter` -- everything written so far plus the plan: the prompt grows as
  ``Theta(t L_o)`` and soon exceeds any context window;
* :class:`RollingWindowWriter` -- the last ``k`` paragraphs plus the plan (the paper's
  "rolling context" baseline): bounded, but anything older than ``k`` paragraphs is gone.

A writer holds ``paragraphs`` (everything written, oldest first) and ``plan``; :meth:`step` writes
one paragraph and sets the plan to the reply's first proposal.
"""

from __future__ import annotations

from dataclasses import dataclass

from refseq import _checks
from refseq.papers.recurrentgpt.budget import count_words, truncate_words
from refseq.papers.recurrentgpt.parse import call_with_retries, parse_writer_output
from refseq.papers.recurrentgpt.prompts import SYSTEM_PROMPT, Limits, history_prompt

__all__ = ["BaselineRecord", "FullHistoryWriter", "RollingWindowWriter"]


@dataclass(frozen=True)
class BaselineRecord:
    """One baseline step: the prompt, its word count and the paragraph written."""

    step: int
    prompt: str
    prompt_words: int
    paragraph: str


class _HistoryWriter:
    window: int | None = None

    def __init__(self, generator, paragraphs: list, plan: str, *, limits: Limits | None = None,
                 seed: int = 0, max_retries: int = 3):
        self.generator = _checks.check_methods(generator, "generator", ("complete",),
                                               "a TextGenerator (a complete method)")
        if isinstance(paragraphs, str) or not isinstance(paragraphs, (list, tuple)) \
                or not all(isinstance(p, str) for p in paragraphs):
            raise TypeError("paragraphs must be a list of str")
        if not isinstance(plan, str):
            raise TypeError(f"plan must be a str, got {type(plan).__name__}")
        self.paragraphs, self.plan = list(paragraphs), plan
        self.limits = Limits() if limits is None else _checks.check_instance(limits, Limits,
                                                                             "limits")
        self.seed = _checks.check_number(seed, "seed", integer=True, low=0)
        self.max_retries = _checks.check_number(max_retries, "max_retries", integer=True, low=1)
        self.steps = 0

    def context(self) -> list:
        """The paragraphs the next prompt shows."""
        return self.paragraphs if self.window is None else self.paragraphs[-self.window:]

    def step(self) -> BaselineRecord:
        prompt = history_prompt(self.context(), self.plan, self.limits)
        out = call_with_retries(self.generator, prompt, parse_writer_output,
                                max_retries=self.max_retries, system=SYSTEM_PROMPT,
                                seed=self.seed * 1_000_003 + self.steps)
        paragraph = truncate_words(out.paragraph, self.limits.paragraph_words)
        self.paragraphs.append(paragraph)
        self.plan = out.plans[0]
        self.steps += 1
        return BaselineRecord(self.steps, prompt, count_words(prompt), paragraph)


class FullHistoryWriter(_HistoryWriter):
    """``FullHistoryWriter(generator, paragraphs, plan)``: the prompt holds every paragraph."""


class RollingWindowWriter(_HistoryWriter):
    """``RollingWindowWriter(generator, paragraphs, plan, k=3)``: the last ``k`` paragraphs."""

    def __init__(self, generator, paragraphs: list, plan: str, k: int = 3, **kw):
        super().__init__(generator, paragraphs, plan, **kw)
        self.window = _checks.check_number(k, "k", integer=True, low=1)

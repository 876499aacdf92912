"""The labelled reply formats of RecurrentGPT and their writers (Zhou et al., arXiv 2305.13304).

Every LLM call of the method asks for a reply made of labelled sections, one label per line
(the labels are the official code's, so that replies parse the same way):

================  ===========================================================================
call              sections, in order
================  ===========================================================================
initialisation    ``Name:``, ``Outline:``, ``Paragraph 1..3:``, ``Summary:``, ``Instruction 1..3:``
writer step       ``Output Paragraph:``, ``Output Memory:`` (``Rational:``, ``Updated Memory:``),
                  ``Output Instruction:`` (``Instruction 1..3:``)
plan selection    ``Selected Plan:``, ``Reason:``
human edit        ``Extended Paragraph:``, ``Selected Plan:``, ``Revised Plan:``
summary           ``Summary:`` (refseq's optional long-term item, ``long_memory_item="summary"``)
================  ===========================================================================

The ``format_*`` functions write a reply from its parts -- the inverse of the parsers in
:mod:`.parse` (``parse(format(x)) == x`` is a tested property) -- and are what
:class:`~refseq.papers.recurrentgpt.template_writer.TemplateWriter` answers with. The parsed
records are defined here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from refseq import _checks

__all__ = [
    "HumanEdit", "InitOutput", "PlanSelection", "WriterOutput", "format_human_edit",
    "format_init_output", "format_plan_selection", "format_summary", "format_writer_output",
]


@dataclass(frozen=True)
class WriterOutput:
    """A parsed writer reply: ``o_t`` (``paragraph``), the memory update's ``rationale``,
    ``h_t`` (``memory``) and the three candidate plans ``x^(1..3)_{t+1}`` (``plans``)."""

    paragraph: str
    rationale: str
    memory: str
    plans: tuple


@dataclass(frozen=True)
class InitOutput:
    """A parsed initialisation reply: title, outline, the first three paragraphs, their summary
    and three plans."""

    name: str
    outline: str
    paragraphs: tuple
    summary: str
    plans: tuple


@dataclass(frozen=True)
class PlanSelection:
    """A parsed plan-selection reply of the simulated human: the chosen plan and the reason."""

    plan: str
    reason: str


@dataclass(frozen=True)
class HumanEdit:
    """A parsed human-edit reply: the extended paragraph, the copied plan, the revised plan."""

    extended_paragraph: str
    selected_plan: str
    revised_plan: str


def _plans(plans) -> str:
    return "\n".join(f"Instruction {i}: {p}" for i, p in enumerate(plans, 1))


def format_writer_output(out: WriterOutput) -> str:
    """The writer reply of ``out`` in the requested format."""
    _checks.check_instance(out, WriterOutput, "out")
    return (f"Output Paragraph:\n{out.paragraph}\n\nOutput Memory:\nRational: {out.rationale}\n"
            f"Updated Memory: {out.memory}\n\nOutput Instruction:\n{_plans(out.plans)}\n")


def format_init_output(out: InitOutput) -> str:
    """The initialisation reply of ``out`` in the requested format."""
    _checks.check_instance(out, InitOutput, "out")
    paras = "\n".join(f"Paragraph {i}: {p}" for i, p in enumerate(out.paragraphs, 1))
    return (f"Name: {out.name}\nOutline: {out.outline}\n{paras}\nSummary: {out.summary}\n"
            f"{_plans(out.plans)}\n")


def format_plan_selection(out: PlanSelection) -> str:
    """The plan-selection reply of ``out`` in the requested format."""
    _checks.check_instance(out, PlanSelection, "out")
    return f"Selected Plan:\n{out.plan}\n\nReason:\n{out.reason}\n"


def format_human_edit(out: HumanEdit) -> str:
    """The human-edit reply of ``out`` in the requested format."""
    _checks.check_instance(out, HumanEdit, "out")
    return (f"Extended Paragraph:\n{out.extended_paragraph}\n\nSelected Plan:\n"
            f"{out.selected_plan}\n\nRevised Plan:\n{out.revised_plan}\n")


def format_summary(summary: str) -> str:
    """The reply of the summary prompt."""
    if not isinstance(summary, str):
        raise TypeError(f"summary must be a str, got {type(summary).__name__}")
    return f"Summary: {summary}\n"

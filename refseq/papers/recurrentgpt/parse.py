"""Parsing RecurrentGPT's labelled replies, with bounded retries (Zhou et al., arXiv 2305.13304).

The official parser is ``re.search(f"{a}(.*?)\\n{b}", text, re.DOTALL)`` between two labels, with
the last plan taken from the reply's last line; any failure makes the caller re-send the same
prompt, forever. Here:

* :func:`extract_section` finds a label at the start of a line (after optional spaces, ``#``,
  ``-`` or ``*`` bullets and ``**`` bold, with the colon inside or outside the bold), after
  normalising CRLF/CR line ends and dropping each line's trailing spaces, and returns the
  trimmed text up to the next expected label (or the end). A missing final newline does not
  matter; the last section runs to the end of the reply instead of being "the last line".
* Each ``parse_*`` raises :class:`ParseError` (a ``ValueError``) naming the missing or empty
  section; the records are those of :mod:`.formats`.
* :func:`call_with_retries` calls a generator at most ``max_retries`` times (the first call
  included), a new seed each time, and raises :class:`GenerationFailed` with every raw reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from refseq import _checks
from refseq.papers.recurrentgpt.formats import HumanEdit, InitOutput, PlanSelection, WriterOutput

__all__ = [
    "GenerationFailed", "ParseError", "call_with_retries", "extract_section", "parse_human_edit",
    "parse_init_output", "parse_plan_selection", "parse_summary", "parse_writer_output",
]


class ParseError(ValueError):
    """A reply lacks a required section (or the section is empty)."""


class GenerationFailed(RuntimeError):
    """No reply parsed within the allowed calls; ``replies`` holds every raw reply, ``errors``
    the parse error of each."""

    def __init__(self, message: str, replies: list, errors: list):
        super().__init__(message)
        self.replies = list(replies)
        self.errors = list(errors)


def _label(marker: str, arg: str = "marker") -> str:
    """Regex of ``marker`` at a line start, decorated or not (see the module docstring)."""
    name = marker.rstrip().rstrip(":").strip()
    if not name:
        raise ValueError(f"{arg} must be a non-empty label such as 'Summary:', got {marker!r}")
    colon = r"[ \t]*\**[ \t]*:" if marker.rstrip().endswith(":") else ""
    return (r"^[ \t]*(?:[#>*-][ \t]*)*\**[ \t]*" + re.escape(name).replace(r"\ ", r"[ \t]+")
            + r"[ \t]*\**" + colon + r"\**[ \t]*")


def _normalise(text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str (a generator's reply), got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)  # trailing spaces of every line


def extract_section(text: str, start_marker: str, end_marker: str | None = None) -> str | None:
    """The trimmed text between the label ``start_marker`` and the next ``end_marker`` label.

    Parameters
    ----------
    text : str
        A reply.
    start_marker : str
        A label such as ``"Output Paragraph:"`` (matched at the start of a line, decorations
        allowed; the first occurrence counts).
    end_marker : str or None
        The label that ends the section (its first occurrence after the start), or None: the
        section runs to the end of the text. A missing end label also runs to the end.

    Returns
    -------
    str or None
        The section (may be ``""``), or None when ``start_marker`` does not occur.
    """
    text = _normalise(text)
    for name, m in (("start_marker", start_marker), ("end_marker", end_marker)):
        if (m is None and name == "start_marker") or (m is not None and not isinstance(m, str)):
            raise TypeError(f"{name} must be a str" + (" or None" if name == "end_marker" else "")
                            + f", got {type(m).__name__}")
    start = re.search(_label(start_marker, "start_marker"), text, re.MULTILINE)
    if start is None:
        return None
    rest = text[start.end():]
    if end_marker is not None:
        end = re.search(_label(end_marker, "end_marker"), rest, re.MULTILINE)
        if end is not None:
            rest = rest[:end.start()]
    return rest.strip().strip("*").strip()


def _required(text: str, start: str, end: str | None, what: str) -> str:
    section = extract_section(text, start, end)
    if section is None:
        raise ParseError(f"the {what} reply has no {start!r} section")
    if not section:
        raise ParseError(f"the {what} reply's {start!r} section is empty")
    return section


def _three_plans(block: str, what: str) -> tuple:
    return (_required(block, "Instruction 1:", "Instruction 2:", what),
            _required(block, "Instruction 2:", "Instruction 3:", what),
            _required(block, "Instruction 3:", None, what))


def parse_writer_output(text: str) -> WriterOutput:
    """A writer reply -> :class:`~.formats.WriterOutput`; :class:`ParseError` if a section is
    missing or empty (the memory rationale may be absent: it becomes ``""``)."""
    text = _normalise(text)
    paragraph = _required(text, "Output Paragraph:", "Output Memory:", "writer")
    block = _required(text, "Output Memory:", "Output Instruction:", "writer")
    memory = _required(block, "Updated Memory:", None, "writer")
    rationale = extract_section(block, "Rational:", "Updated Memory:") or ""
    plans = _three_plans(_required(text, "Output Instruction:", None, "writer"), "writer")
    return WriterOutput(paragraph, rationale, memory, plans)


def parse_init_output(text: str) -> InitOutput:
    """An initialisation reply -> :class:`~.formats.InitOutput` (or :class:`ParseError`)."""
    text = _normalise(text)
    w = "initialisation"
    name = _required(text, "Name:", "Outline:", w)
    outline = _required(text, "Outline:", "Paragraph 1:", w)
    paragraphs = (_required(text, "Paragraph 1:", "Paragraph 2:", w),
                  _required(text, "Paragraph 2:", "Paragraph 3:", w),
                  _required(text, "Paragraph 3:", "Summary:", w))
    summary = _required(text, "Summary:", "Instruction 1:", w)
    return InitOutput(name, outline, paragraphs, summary, _three_plans(text, w))


def parse_plan_selection(text: str) -> PlanSelection:
    """A plan-selection reply -> :class:`~.formats.PlanSelection` (the reason may be absent)."""
    text = _normalise(text)
    plan = _required(text, "Selected Plan:", "Reason:", "plan-selection")
    return PlanSelection(plan, extract_section(text, "Reason:") or "")


def parse_human_edit(text: str) -> HumanEdit:
    """A human-edit reply -> :class:`~.formats.HumanEdit` (or :class:`ParseError`)."""
    text = _normalise(text)
    w = "human-edit"
    return HumanEdit(_required(text, "Extended Paragraph:", "Selected Plan:", w),
                     _required(text, "Selected Plan:", "Revised Plan:", w),
                     _required(text, "Revised Plan:", None, w))


def parse_summary(text: str) -> str:
    """A summary reply -> the summary text (or :class:`ParseError`)."""
    return _required(_normalise(text), "Summary:", None, "summary")


def call_with_retries(generator, prompt: str, parser: Callable[[str], object], *,
                      max_retries: int = 3, system: str | None = None,
                      temperature: float = 0.5, seed: int | None = None,
                      replies: list | None = None):
    """``parser(generator.complete(prompt, ...))``, calling again on :class:`ParseError`.

    Parameters
    ----------
    generator : TextGenerator
        Anything with ``complete(prompt, *, system, temperature, seed) -> str``.
    prompt : str
        Sent unchanged on every call (as the official loop does).
    parser : callable
        ``reply -> parsed``, raising :class:`ParseError` on a malformed reply.
    max_retries : int
        The largest number of calls, the first included (>= 1). The official loop has no bound.
    system, temperature : passed to the generator.
    seed : int or None
        Call ``i`` (from 0) gets ``seed + i``, so a stochastic generator answers anew; None: None.
    replies : list or None
        If given, every raw reply is appended to it (for the step's record).

    Raises
    ------
    GenerationFailed
        After ``max_retries`` malformed replies; it carries all of them.
    """
    _checks.check_methods(generator, "generator", ("complete",),
                          "a TextGenerator (a complete(prompt, ...) -> str method)")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not callable(parser):
        raise TypeError(f"parser must be a callable reply -> parsed, got {type(parser).__name__}")
    max_retries = _checks.check_number(max_retries, "max_retries", integer=True, low=1)
    seed = _checks.check_number(seed, "seed", integer=True, low=0, allow_none=True)
    temperature = _checks.check_number(temperature, "temperature", low=0)
    got, errors = [], []
    for i in range(max_retries):
        reply = generator.complete(prompt, system=system, temperature=temperature,
                                   seed=None if seed is None else seed + i)
        if not isinstance(reply, str):
            raise TypeError(f"generator.complete must return a str, got {type(reply).__name__}")
        got.append(reply)
        if replies is not None:
            replies.append(reply)
        try:
            return parser(reply)
        except ParseError as exc:
            errors.append(exc)
    raise GenerationFailed(f"no parseable reply in {max_retries} calls; last error: "
                           f"{errors[-1]}", got, errors)

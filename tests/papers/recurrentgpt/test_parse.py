"""Reply formats and parsers (property 6), bounded retries (property 7), and the official
parser (ported) on well-formed replies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.recurrentgpt import formats, parse
from refseq.papers.recurrentgpt.llm import ScriptedGenerator
from tests.papers.recurrentgpt import official_port

# section texts without labels: no colon (every label has one), no '*' (bold), trimmed
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABC0123456789 .,!?'-\n"
# (lines without trailing spaces: the parser drops them)
section = st.text(alphabet=_ALPHABET, min_size=1, max_size=60).map(
    lambda t: "\n".join(line.rstrip() for line in t.split("\n")).strip()).filter(bool)
rationale = st.one_of(st.just(""), section)


@st.composite
def writer_outputs(draw):
    return formats.WriterOutput(draw(section), draw(rationale), draw(section),
                                tuple(draw(section) for _ in range(3)))


@given(writer_outputs())
def test_writer_round_trip(out):
    assert parse.parse_writer_output(formats.format_writer_output(out)) == out


def _decorate(text: str) -> str:
    """Bold labels, CRLF line ends, trailing spaces, no final newline."""
    for label in ("Output Paragraph:", "Output Memory:", "Updated Memory:", "Output Instruction:",
                  "Instruction 1:", "Instruction 2:", "Instruction 3:", "Rational:"):
        text = text.replace(label, f"**{label}**")
    return "\r\n".join(line + "  " for line in text.rstrip("\n").split("\n"))


@given(writer_outputs())
def test_decorated_writer_replies_parse_the_same(out):
    assert parse.parse_writer_output(_decorate(formats.format_writer_output(out))) == out


@given(section, section, st.tuples(section, section, section), section,
       st.tuples(section, section, section))
def test_init_round_trip(name, outline, paragraphs, summary, plans):
    out = formats.InitOutput(name, outline, paragraphs, summary, plans)
    assert parse.parse_init_output(formats.format_init_output(out)) == out


@given(section, rationale, section, section)
def test_human_replies_round_trip(plan, reason, extended, revised):
    sel = formats.PlanSelection(plan, reason)
    assert parse.parse_plan_selection(formats.format_plan_selection(sel)) == sel
    edit = formats.HumanEdit(extended, plan, revised)
    assert parse.parse_human_edit(formats.format_human_edit(edit)) == edit
    assert parse.parse_summary(formats.format_summary(extended)) == extended


def test_extract_section_by_hand():
    text = "Intro\r\n  **Name:** The Archive  \r\n- Outline: a, b\nrest\n"
    assert parse.extract_section(text, "Name:", "Outline:") == "The Archive"
    assert parse.extract_section(text, "Outline:") == "a, b\nrest"
    assert parse.extract_section(text, "Summary:") is None
    assert parse.extract_section(text, "Name:", "Missing:") == "The Archive\n- Outline: a, b\nrest"
    # a label inside a line is not a label
    assert parse.extract_section("x Name: y\nName: z", "Name:") == "z"


GOOD = formats.format_writer_output(formats.WriterOutput("P.", "R.", "M.", ("a", "b", "c")))


@pytest.mark.parametrize("bad, missing", [
    (GOOD.replace("Output Paragraph:", "Paragraph:"), "'Output Paragraph:'"),
    (GOOD.replace("Updated Memory:", "Memory:"), "'Updated Memory:'"),
    (GOOD.replace("Instruction 3:", "Instruction three:"), "'Instruction 3:'"),
    (GOOD.replace("\nP.\n", "\n  \n"), "'Output Paragraph:' section is empty"),
    ("", "'Output Paragraph:'"),
])
def test_malformed_writer_replies_raise(bad, missing):
    with pytest.raises(parse.ParseError, match=missing):
        parse.parse_writer_output(bad)


def test_retries_succeed_on_the_third_call_and_fail_with_every_reply():
    replies = ["nonsense", GOOD.replace("Updated Memory:", "Memory:"), GOOD]
    gen = ScriptedGenerator(replies)
    got = parse.call_with_retries(gen, "prompt", parse.parse_writer_output, max_retries=3)
    assert gen.calls == 3 and got.memory == "M."
    gen = ScriptedGenerator(replies)
    with pytest.raises(parse.GenerationFailed) as info:
        parse.call_with_retries(gen, "prompt", parse.parse_writer_output, max_retries=2)
    assert gen.calls == 2 and info.value.replies == replies[:2]
    assert all(isinstance(e, parse.ParseError) for e in info.value.errors)


def test_retries_send_the_same_prompt_with_new_seeds():
    seen = []

    class Recorder:
        def complete(self, prompt, *, system=None, temperature=0.5, seed=None):
            seen.append((prompt, seed, system, temperature))
            return "bad"

    with pytest.raises(parse.GenerationFailed):
        parse.call_with_retries(Recorder(), "p", parse.parse_writer_output, max_retries=3,
                                seed=10, system="s", temperature=0.0)
    assert seen == [("p", 10, "s", 0.0), ("p", 11, "s", 0.0), ("p", 12, "s", 0.0)]


@given(writer_outputs())
def test_official_parser_agrees_on_single_line_sections(out):
    # the official parser reads the last plan from the last line: single-line plans only
    out = formats.WriterOutput(out.paragraph, out.rationale, out.memory,
                               tuple(p.replace("\n", " ").strip() for p in out.plans))
    text = formats.format_writer_output(out).rstrip("\n")
    ours = parse.parse_writer_output(text)
    theirs = official_port.official_parse(text)
    assert theirs == {"paragraph": ours.paragraph, "memory": ours.memory,
                      "plans": list(ours.plans)}


def test_official_parser_breaks_where_ours_does_not():
    text = _decorate(GOOD)
    assert official_port.official_parse(text) is None  # bold labels defeat the regex
    assert parse.parse_writer_output(text).plans == ("a", "b", "c")
    trailing = GOOD + "\nHope this helps!"
    theirs = official_port.official_parse(trailing)
    assert theirs["plans"][2] == "Hope this helps!"  # the last line, not the third plan
    assert parse.parse_writer_output(trailing).plans[2] == "c\n\nHope this helps!"

"""Prompt builders: the official structure, verbatim fields, the limits, the size bound."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from refseq.papers.recurrentgpt import prompts
from refseq.papers.recurrentgpt.budget import count_words
from refseq.papers.recurrentgpt.parse import extract_section
from tests.papers.recurrentgpt import official_port

LABEL = re.compile(r"^(Input [A-Za-z ]+:|Output [A-Za-z]+:|Rational:|Updated Memory:|"
                   r"Instruction \d:)", re.MULTILINE)


def _state(memory="MEM one. MEM two.", paragraph="PARA text.", plan="PLAN text."):
    return SimpleNamespace(short_memory=memory, last_paragraph=paragraph, plan=plan)


def test_writer_prompt_has_the_official_sections_in_order():
    p = prompts.writer_prompt(_state(), ["first item", "second item"])
    assert tuple(LABEL.findall(p)) == official_port.OFFICIAL_WRITER_LABELS


def test_writer_prompt_fields_verbatim():
    st = _state(memory="m1.\nm2 with: a colon", paragraph="p1\n\np2", plan="go north")
    p = prompts.writer_prompt(st, ["alpha", "beta"])
    assert extract_section(p, "Input Memory:", "Input Paragraph:") == st.short_memory
    assert extract_section(p, "Input Paragraph:", "Input Instruction:") == st.last_paragraph
    assert extract_section(p, "Input Instruction:", "Input Related Paragraphs:") == st.plan
    related = extract_section(p, "Input Related Paragraphs:", "Reply in exactly this format:")
    assert related == "Related Paragraphs 1: alpha\nRelated Paragraphs 2: beta"


def test_writer_prompt_limits_and_hint():
    lim = prompts.Limits(paragraph_sentences=17, memory_sentences=(9, 19), memory_words=444,
                         plan_sentences=4)
    p = prompts.writer_prompt(_state(), [], new_character=False, limits=lim)
    for text in ("about 17 sentences", "9 to 19 sentences", "444 words", "about 4 sentences",
                 "never more than 19 sentences"):
        assert text in p
    assert "new character" not in p
    assert "new character" in prompts.writer_prompt(_state(), [], new_character=True)


def test_prompt_word_bound_is_attained_by_fields_at_their_limits():
    lim = prompts.Limits(memory_words=30, paragraph_words=50, plan_words=7)
    w = lambda n: " ".join(["w"] * n)  # noqa: E731
    st = _state(memory=w(30), paragraph=w(50), plan=w(7))
    p = prompts.writer_prompt(st, [w(50), w(50)], new_character=True, limits=lim)
    assert count_words(p) == prompts.prompt_word_bound(lim, 2)  # every field at its limit
    shorter = prompts.writer_prompt(_state(), ["x"], new_character=False, limits=lim)
    assert count_words(shorter) < prompts.prompt_word_bound(lim, 2)
    ext = prompts.prompt_word_bound(lim, 2, extended=True)
    assert ext - prompts.prompt_word_bound(lim, 2) == 3 * (1200 - 50)


def test_other_prompts():
    p = prompts.init_prompt("fantasy", "a drifting archive", chapters=12)
    assert "fantasy" in p and "a drifting archive" in p and "12 chapters" in p
    for label in ("Name:", "Outline:", "Paragraph 1:", "Paragraph 3:", "Summary:",
                  "Instruction 3:"):
        assert re.search(rf"^{label}", p, re.MULTILINE)
    p = prompts.plan_selection_prompt("prev", "mem", "new", ["plan A", "plan B", "plan C"])
    assert "1. plan A\n2. plan B\n3. plan C" in p
    assert re.search(r"^Selected Plan:\n.*\n\nReason:", p, re.MULTILINE)
    p = prompts.human_edit_prompt("prev", "mem", "new", "the plan", language="Chinese")
    assert "Reply in Chinese" in p and "40 to 50 sentences" in p and "5 to 7 sentences" in p
    assert extract_section(p, "Plan for what comes next:", "Reply in") == "the plan"
    assert "Paragraph to summarise:\nabc" in prompts.summary_prompt("abc")
    h = prompts.history_prompt(["one", "two"], "plan")
    assert extract_section(h, "Input Paragraph:", "Input Instruction:") == "one\n\ntwo"


def test_limits_validation_and_round_trip():
    lim = prompts.Limits(memory_sentences=(3, 4))
    assert prompts.Limits.from_dict(lim.to_dict()) == lim
    with pytest.raises(ValueError, match="memory_sentences"):
        prompts.Limits(memory_sentences=(20, 10))
    with pytest.raises(TypeError, match="memory_words"):
        prompts.Limits(memory_words=1.5)
    with pytest.raises(TypeError, match="related"):
        prompts.writer_prompt(_state(), "one item")

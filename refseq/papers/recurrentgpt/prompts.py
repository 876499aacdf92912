"""RecurrentGPT's prompt builders and length limits (Zhou et al., arXiv 2305.13304).

One writer step's prompt holds, under fixed labels, the short-term memory ``h_{t-1}``
(``Input Memory:``), the previous paragraph ``o_{t-1}`` (``Input Paragraph:``), the plan ``x_t``
(``Input Instruction:``) and the retrieved items ``r_t`` (``Input Related Paragraphs:``, each
prefixed ``Related Paragraphs i:``), then asks for the reply format of :mod:`.formats`. The
wording is refseq's own; the structure (sections, their order, the labels, the reply format and
the requested lengths) follows the official ``RecurrentGPT.prepare_input``, ``Human.select_plan``,
``Human.prepare_input`` and ``init_prompt.json``.

:class:`Limits` holds the lengths the official prompts ask for, plus three word budgets that
refseq adds so that ``enforce_limits=True`` makes every prompt's size bounded
(:func:`prompt_word_bound`):

.. math::

    |\\text{prompt}_t| \\le |\\text{template}| + L_h + L_o + L_x + k \\, L_{item}

(words; independent of ``t``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from refseq import _checks
from refseq.papers.recurrentgpt.budget import count_words

__all__ = [
    "Limits", "SYSTEM_PROMPT", "history_prompt", "human_edit_prompt", "init_prompt",
    "plan_selection_prompt", "prompt_word_bound", "summary_prompt", "writer_prompt",
]

SYSTEM_PROMPT = "You are a helpful, creative assistant who writes novels."


@dataclass(frozen=True)
class Limits:
    """Length limits; the first six are the numbers the official prompts ask for.

    ``paragraph_sentences`` (about 20), ``memory_sentences`` (10 to 20), ``memory_words`` (at
    most 500), ``plan_sentences`` (about 5), ``revised_plan_sentences`` (5 to 7),
    ``extended_paragraph_sentences`` (40 to 50). refseq's additions, enforced by
    ``enforce_limits=True`` only: ``paragraph_words`` (writer paragraphs and summaries),
    ``plan_words`` (each plan), ``extended_paragraph_words`` (the simulated human's paragraph).
    """

    paragraph_sentences: int = 20
    memory_sentences: tuple = (10, 20)
    memory_words: int = 500
    plan_sentences: int = 5
    revised_plan_sentences: tuple = (5, 7)
    extended_paragraph_sentences: tuple = (40, 50)
    paragraph_words: int = 600
    plan_words: int = 150
    extended_paragraph_words: int = 1200

    def __post_init__(self):
        pairs = ("memory_sentences", "revised_plan_sentences", "extended_paragraph_sentences")
        for name, value in asdict(self).items():
            if name in pairs:
                if not isinstance(value, (tuple, list)) or len(value) != 2:
                    raise TypeError(f"Limits.{name} must be a pair (lo, hi), got {value!r}")
                lo = _checks.check_number(value[0], f"Limits.{name}[0]", integer=True, low=1)
                hi = _checks.check_number(value[1], f"Limits.{name}[1]", integer=True, low=lo)
                object.__setattr__(self, name, (lo, hi))
            else:
                _checks.check_number(value, f"Limits.{name}", integer=True, low=1)

    def to_dict(self) -> dict:
        """JSON-ready fields (pairs as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Limits:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _str(value, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _limits(limits) -> Limits:
    return _checks.check_instance(limits, Limits, "limits")


def init_prompt(genre: str, topic: str, chapters: int = 50) -> str:
    """The initialisation prompt: a title, a first-chapter outline, three paragraphs, their
    summary and three plans, under the labels of :func:`~.parse.parse_init_output`."""
    _str(genre, "genre")
    _str(topic, "topic")
    chapters = _checks.check_number(chapters, "chapters", integer=True, low=1)
    return (f"Please start a {genre} novel about {topic}, planned to run to about {chapters} "
            "chapters.\nFirst give the novel a name. Then outline its first chapter: the "
            "setting and how the story opens. Then write the first three paragraphs, taking "
            "time to set the scene as a novelist would. Then summarise the key facts of those "
            "paragraphs. Finally propose three different continuations, each about five "
            "sentences, each one a plausible and interesting next step.\n"
            "Use exactly these labels, one per line:\n"
            "Name: <the name>\nOutline: <the outline>\nParagraph 1: <paragraph>\n"
            "Paragraph 2: <paragraph>\nParagraph 3: <paragraph>\nSummary: <the summary>\n"
            "Instruction 1: <continuation>\nInstruction 2: <continuation>\n"
            "Instruction 3: <continuation>\n")


def writer_prompt(state, related: list, new_character: bool = False,
                  limits: Limits | None = None) -> str:
    """The writer prompt of one step from ``state`` (``short_memory``, ``last_paragraph``,
    ``plan``) and the retrieved items ``related`` (best first).

    ``new_character`` adds the optional hint (the official code draws it with probability 0.1).
    """
    limits = Limits() if limits is None else _limits(limits)
    memory = _str(getattr(state, "short_memory", None), "state.short_memory")
    paragraph = _str(getattr(state, "last_paragraph", None), "state.last_paragraph")
    plan = _str(getattr(state, "plan", None), "state.plan")
    if isinstance(related, str) or not isinstance(related, (list, tuple)):
        raise TypeError(f"related must be a list of str, got {type(related).__name__}")
    items = "\n".join(f"Related Paragraphs {i}: {_str(r, f'related[{i - 1}]')}"
                      for i, r in enumerate(related, 1))
    _checks.check_flag(new_character, "new_character")
    lo, hi = limits.memory_sentences
    n, p = limits.paragraph_sentences, limits.plan_sentences
    hint = ("\nIf it suits the story, bring in a new character in this paragraph and record "
            "them in the memory." if new_character else "")
    return ("We are writing a novel together, one paragraph at a time. The story is far longer "
            "than what you can read at once, so you keep a memory: a short summary of the key "
            "facts written so far. Each time I give you that memory, the paragraph written "
            "last, an instruction for the next paragraph, and earlier paragraphs that may be "
            "relevant.\nWrite three things:\n"
            f"1. Output Paragraph: the next paragraph, about {n} sentences, following the "
            "instruction.\n"
            "2. Output Memory: first a rationale (which sentences of the input memory are no "
            "longer needed and why, what must be added and why), then the updated memory, "
            "which differs from the input memory only where the rationale says. Keep only key "
            f"facts, and never more than {hi} sentences.\n"
            "3. Output Instruction: three different ways the story could continue, each about "
            f"{p} sentences.\n\n"
            f"Input Memory:\n{memory}\n\nInput Paragraph:\n{paragraph}\n\n"
            f"Input Instruction:\n{plan}\n\nInput Related Paragraphs:\n{items}\n\n"
            "Reply in exactly this format:\n"
            f"Output Paragraph:\n<the paragraph, about {n} sentences>\n\n"
            "Output Memory:\nRational: <how the memory changes, and why>\n"
            f"Updated Memory: <the memory, {lo} to {hi} sentences>\n\n"
            "Output Instruction:\n"
            + "".join(f"Instruction {i}: <a continuation, about {p} sentences>\n"
                      for i in (1, 2, 3))
            + f"\nThe updated memory must stay under {limits.memory_words} words. Do not hurry: "
            "the novel has many chapters and this is only its beginning, so propose "
            "continuations a reader would want to follow." + hint + "\n")


def _plans_list(plans) -> str:
    if isinstance(plans, str) or not isinstance(plans, (list, tuple)) or not plans:
        raise TypeError(f"plans must be a non-empty list of str, got {type(plans).__name__}")
    return "\n".join(f"{i}. {_str(p, f'plans[{i - 1}]')}" for i, p in enumerate(plans, 1))


def plan_selection_prompt(prev_paragraph: str, memory: str, new_paragraph: str,
                          plans: list) -> str:
    """The simulated human's first call: choose one of the writer's plans (``Selected Plan:``,
    then ``Reason:``)."""
    return ("You help a novelist decide how the story goes on. You see the paragraph written "
            "before, the paragraph the writing assistant just wrote, the assistant's summary of "
            "the story, and its plans for what comes next.\nChoose the plan that is most "
            "interesting and fits the story best.\n\n"
            f"Previous paragraph:\n{_str(prev_paragraph, 'prev_paragraph')}\n\n"
            f"Summary of the story so far:\n{_str(memory, 'memory')}\n\n"
            f"New paragraph:\n{_str(new_paragraph, 'new_paragraph')}\n\n"
            f"Plans for what comes next:\n{_plans_list(plans)}\n\n"
            "Reply in exactly this format:\nSelected Plan:\n<the chosen plan, copied>\n\n"
            "Reason:\n<why you chose it>\n")


def human_edit_prompt(prev_paragraph: str, memory: str, new_paragraph: str, plan: str,
                      limits: Limits | None = None, language: str = "English") -> str:
    """The simulated human's second call: extend the new paragraph, copy the plan and revise
    it into an outline of the next paragraph (``Extended Paragraph:``, ``Selected Plan:``,
    ``Revised Plan:``). ``language`` names the language of the reply (the official prompt asks
    for Chinese)."""
    limits = Limits() if limits is None else _limits(limits)
    elo, ehi = limits.extended_paragraph_sentences
    rlo, rhi = limits.revised_plan_sentences
    return ("Imagine you are a novelist working with a writing assistant. You see your previous "
            "paragraph, the assistant's new paragraph, its summary of the story, and its plan "
            "for what comes next.\nWrite three things:\n"
            "1. Extended Paragraph: the new paragraph, extended to about twice its length.\n"
            "2. Selected Plan: the assistant's plan, copied.\n"
            "3. Revised Plan: the plan revised into an outline of the next paragraph.\n\n"
            f"Previous paragraph:\n{_str(prev_paragraph, 'prev_paragraph')}\n\n"
            f"Summary of the story so far:\n{_str(memory, 'memory')}\n\n"
            f"New paragraph:\n{_str(new_paragraph, 'new_paragraph')}\n\n"
            f"Plan for what comes next:\n{_str(plan, 'plan')}\n\n"
            f"Reply in {_str(language, 'language')}, in exactly this format:\n"
            f"Extended Paragraph:\n<the paragraph, {elo} to {ehi} sentences>\n\n"
            "Selected Plan:\n<the plan, copied>\n\n"
            f"Revised Plan:\n<the revised plan, short: {rlo} to {rhi} sentences>\n\n"
            "Leave room for the story to come: it will run for many chapters.\n")


def summary_prompt(paragraph: str) -> str:
    """The prompt for ``long_memory_item="summary"``: a short summary of one paragraph."""
    return ("Summarise the key facts of this paragraph of a novel in two or three sentences."
            f"\n\nParagraph to summarise:\n{_str(paragraph, 'paragraph')}\n\n"
            "Reply in exactly this format:\nSummary: <the summary>\n")


def history_prompt(paragraphs: list, plan: str, limits: Limits | None = None) -> str:
    """The baselines' prompt: the given paragraphs (all of them, or the last ``k``), the plan,
    and the writer's reply format (its memory section is ignored)."""
    limits = Limits() if limits is None else _limits(limits)
    if isinstance(paragraphs, str) or not isinstance(paragraphs, (list, tuple)):
        raise TypeError(f"paragraphs must be a list of str, got {type(paragraphs).__name__}")
    story = "\n\n".join(_str(p, f"paragraphs[{i}]") for i, p in enumerate(paragraphs))
    n = limits.paragraph_sentences
    return ("Continue this novel with its next paragraph.\n\n"
            f"Input Paragraph:\n{story}\n\nInput Instruction:\n{_str(plan, 'plan')}\n\n"
            "Reply in exactly this format:\n"
            f"Output Paragraph:\n<the paragraph, about {n} sentences>\n\n"
            "Output Memory:\nUpdated Memory: <anything>\n\nOutput Instruction:\n"
            + "".join(f"Instruction {i}: <a continuation>\n" for i in (1, 2, 3)))


class _Empty:
    short_memory = last_paragraph = plan = ""


def prompt_word_bound(limits: Limits, top_k: int, *, extended: bool = False) -> int:
    """The bound on the writer prompt's word count under ``enforce_limits=True``.

    ``|template|`` is the word count of :func:`writer_prompt` with every field empty, ``top_k``
    empty related items and the new-character hint; ``L_h = memory_words``,
    ``L_x = plan_words``, and ``L_o = L_item = paragraph_words`` (``extended_paragraph_words``
    if ``extended``: a simulated human's paragraphs). Words of a glued field can only merge, so
    the sum bounds the count.
    """
    limits = _limits(limits)
    top_k = _checks.check_number(top_k, "top_k", integer=True, low=0)
    _checks.check_flag(extended, "extended")
    template = count_words(writer_prompt(_Empty(), [""] * top_k, True, limits))
    para = max(limits.paragraph_words, limits.extended_paragraph_words if extended else 0)
    return template + limits.memory_words + para + limits.plan_words + top_k * para

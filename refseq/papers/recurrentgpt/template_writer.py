"""A deterministic rule-based writer for RecurrentGPT's loop (arXiv 2305.13304, refseq's own).

:class:`TemplateWriter` stands in for the LLM in loop-level experiments: it reads the sections
of the prompt it is given and answers in the format the prompt asks for (:func:`reply_kind`),
with pseudo-sentences over a vocabulary of pseudo-words (:func:`pseudo_vocab`):

* writer step: a paragraph of ``paragraph_sentences`` sentences, each mentioning one of the
  plan's keywords (its words of 4+ letters, in order); an updated memory that keeps the last
  ``memory_sentences - 1`` sentences of the input memory plus one new sentence naming the
  keywords (so the memory's size is bounded by construction); three plans of
  ``plan_sentences`` sentences;
* initialisation, plan selection (the first plan), human edit (the paragraph followed by as many
  new sentences: twice the length; the plan plus one outline sentence), summary (the first
  sentence of the paragraph and its keywords).

The reply depends only on ``(seed, call seed, prompt)`` (the random stream is keyed by a BLAKE2b
digest of the prompt), so a run is reproducible and resumable without saving the writer.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from refseq import _checks
from refseq.papers.recurrentgpt.budget import split_sentences
from refseq.papers.recurrentgpt.formats import (
    HumanEdit,
    InitOutput,
    PlanSelection,
    WriterOutput,
    format_human_edit,
    format_init_output,
    format_plan_selection,
    format_summary,
    format_writer_output,
)
from refseq.papers.recurrentgpt.parse import extract_section

__all__ = ["TemplateWriter", "keywords", "pseudo_vocab", "reply_kind"]

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "gl", "kr", "st", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou")
_STOP = frozenset("this that with from into then them they their there these those what when "
                  "where which while about after again write writes story next paragraph "
                  "should would could".split())


def pseudo_vocab(n: int = 400, seed: int = 0) -> list[str]:
    """``n`` distinct pronounceable pseudo-words of 2-3 syllables (no English collisions in
    practice), drawn with ``default_rng(seed)``."""
    n = _checks.check_number(n, "n", integer=True, low=1, high=20000)
    rng = _checks.check_rng(seed, "seed")
    out, seen = [], set()
    while len(out) < n:
        w = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                    for _ in range(int(rng.integers(2, 4))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def keywords(text: str, limit: int = 6) -> list[str]:
    """The first ``limit`` distinct lower-cased words of ``text`` with 4+ letters that are not
    common function words."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    limit = _checks.check_number(limit, "limit", integer=True, low=0)
    out = []
    for w in re.findall(r"[a-z']+", text.lower()):
        if len(w) >= 4 and w not in _STOP and w not in out:
            out.append(w)
            if len(out) == limit:
                break
    return out


def reply_kind(prompt: str) -> str:
    """Which reply ``prompt`` asks for, from the labels of its requested format: ``"edit"``,
    ``"selection"``, ``"summary"``, ``"init"``, ``"writer"`` or ``"free"``."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    has = lambda label: re.search(rf"^{re.escape(label)}", prompt, re.MULTILINE) is not None  # noqa: E731
    if has("Extended Paragraph:"):
        return "edit"
    if has("Selected Plan:"):
        return "selection"
    if has("Paragraph to summarise:"):
        return "summary"
    if has("Paragraph 3:") and has("Summary:"):
        return "init"
    if has("Output Paragraph:"):
        return "writer"
    return "free"


def _between(prompt: str, start: str, ends: tuple) -> str:
    """The section after ``start`` up to the earliest of ``ends`` ("" if absent)."""
    best = None
    for end in ends:
        s = extract_section(prompt, start, end)
        if s is not None and (best is None or len(s) < len(best)):
            best = s
    return best or ""


class TemplateWriter:
    """Deterministic rule-based :class:`~.llm.TextGenerator` (see the module docstring).

    Parameters
    ----------
    seed : int
        Keys every reply's random stream (with the call's seed and the prompt).
    vocab : list of str or None
        Filler words (default ``pseudo_vocab(400, seed)``).
    paragraph_sentences, memory_sentences, plan_sentences : int
        Lengths of the written paragraph, of the memory (a cap), of each plan.
    words_per_sentence : (int, int)
        Filler words per sentence, drawn uniformly in ``[lo, hi]``.
    """

    def __init__(self, seed: int = 0, vocab: list | None = None, *, paragraph_sentences: int = 20,
                 memory_sentences: int = 20, plan_sentences: int = 2,
                 words_per_sentence: tuple = (6, 10)):
        self.seed = _checks.check_number(seed, "seed", integer=True, low=0)
        if vocab is None:
            vocab = pseudo_vocab(400, self.seed)
        if isinstance(vocab, str) or not isinstance(vocab, (list, tuple)) or not vocab:
            raise TypeError("vocab must be a non-empty list of words")
        for i, w in enumerate(vocab):
            if not isinstance(w, str) or not w or re.search(r"[\s:.!?]", w):
                raise ValueError(f"vocab[{i}] must be a word (no spaces or ':.!?'), got {w!r}")
        self.vocab = list(vocab)
        self.paragraph_sentences = _checks.check_number(paragraph_sentences,
                                                        "paragraph_sentences", integer=True, low=1)
        self.memory_sentences = _checks.check_number(memory_sentences, "memory_sentences",
                                                     integer=True, low=1)
        self.plan_sentences = _checks.check_number(plan_sentences, "plan_sentences",
                                                   integer=True, low=1)
        lo, hi = words_per_sentence
        lo = _checks.check_number(lo, "words_per_sentence[0]", integer=True, low=1)
        self.words_per_sentence = (lo, _checks.check_number(hi, "words_per_sentence[1]",
                                                            integer=True, low=lo))

    def _rng(self, prompt: str, seed) -> np.random.Generator:
        digest = hashlib.blake2b(prompt.encode("utf-8"), digest_size=16).digest()
        words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
        return np.random.default_rng([self.seed, 0 if seed is None else seed + 1, *words])

    def _sentence(self, rng, keyword: str | None = None) -> str:
        lo, hi = self.words_per_sentence
        n = int(rng.integers(lo, hi + 1))
        words = [self.vocab[i] for i in rng.integers(len(self.vocab), size=n)]
        if keyword:
            words.insert(int(rng.integers(len(words) + 1)), keyword)
        return " ".join(words).capitalize() + "."

    def _paragraph(self, rng, keys: list, n: int) -> str:
        return " ".join(self._sentence(rng, keys[i % len(keys)] if keys else None)
                        for i in range(n))

    def _plans(self, rng) -> tuple:
        return tuple(" ".join(self._sentence(rng) for _ in range(self.plan_sentences))
                     for _ in range(3))

    def complete(self, prompt: str, *, system: str | None = None, temperature: float = 0.5,
                 seed: int | None = None) -> str:
        """A well-formed reply of the kind ``prompt`` asks for (``system`` and ``temperature``
        are accepted and ignored)."""
        kind = reply_kind(prompt)
        rng = self._rng(prompt, _checks.check_number(seed, "seed", integer=True, low=0,
                                                     allow_none=True))
        if kind == "writer":
            plan = _between(prompt, "Input Instruction:", ("Input Related Paragraphs:",
                                                           "Reply in exactly this format:"))
            memory = split_sentences(_between(prompt, "Input Memory:", ("Input Paragraph:",)))
            keys = keywords(plan)
            kept = memory[max(len(memory) - (self.memory_sentences - 1), 0):]
            new = f"Then came {' and '.join(keys) or 'quiet days'}."
            out = WriterOutput(self._paragraph(rng, keys, self.paragraph_sentences),
                               f"dropped {len(memory) - len(kept)} old sentences and added one",
                               " ".join([*kept, new]), self._plans(rng))
            return format_writer_output(out)
        if kind == "init":
            keys = keywords(prompt.split("\n", 1)[0])
            paras = tuple(self._paragraph(rng, keys, self.paragraph_sentences) for _ in range(3))
            summary = " ".join(self._sentence(rng, k) for k in (keys or [None]) * 2)
            return format_init_output(InitOutput(self._sentence(rng), self._sentence(rng), paras,
                                                 summary, self._plans(rng)))
        if kind == "selection":
            plans = _between(prompt, "Plans for what comes next:",
                             ("Reply in exactly this format:",))
            first = re.sub(r"^\d+\.\s*", "", plans.split("\n", 1)[0])
            return format_plan_selection(PlanSelection(first, "it is the first one"))
        if kind == "edit":
            new = _between(prompt, "New paragraph:", ("Plan for what comes next:",))
            plan = _between(prompt, "Plan for what comes next:", ("Reply in",))
            keys = keywords(plan)
            extra = self._paragraph(rng, keys, max(len(split_sentences(new)), 1))
            return format_human_edit(HumanEdit(f"{new} {extra}".strip(), plan,
                                               f"{plan} {self._sentence(rng, 'outline')}"))
        if kind == "summary":
            para = _between(prompt, "Paragraph to summarise:", ("Reply in exactly this format:",))
            first = (split_sentences(para) or ["Nothing happened."])[0]
            return format_summary(f"{first} Keywords {' '.join(keywords(para, 3))}.")
        return self._paragraph(rng, keywords(prompt), self.paragraph_sentences)

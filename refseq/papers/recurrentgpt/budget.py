"""Length accounting of RecurrentGPT's prompts and replies (Zhou et al., arXiv 2305.13304).

The official prompts only *ask* for lengths ("around 20 sentences", "never exceed 20 sentences",
"never contain over 500 words"); nothing measures or enforces them, so the short-term memory can
grow and the prompt is then no longer bounded. refseq counts words (whitespace-separated runs)
and sentences (runs ending at ``.``, ``!`` or ``?`` followed by whitespace or the end), and
truncates a text to a word budget on a sentence boundary (:func:`truncate_words`), which is what
``enforce_limits=True`` applies to every generated section.
"""

from __future__ import annotations

import re

from refseq import _checks

__all__ = ["count_sentences", "count_words", "split_sentences", "truncate_words"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _text(text, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def count_words(text: str) -> int:
    """Number of whitespace-separated words of ``text`` (0 for an empty or blank text)."""
    return len(_text(text).split())


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``: split after ``.``, ``!`` or ``?`` followed by whitespace; a
    trailing fragment without end punctuation counts as a sentence; blank pieces are dropped."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(_text(text).strip())) if s]


def count_sentences(text: str) -> int:
    """``len(split_sentences(text))``."""
    return len(split_sentences(text))


def truncate_words(text: str, max_words: int) -> str:
    """``text`` cut to at most ``max_words`` words, on a sentence boundary where possible.

    Whole sentences are kept from the start while their total word count stays within the
    budget; if even the first sentence is longer, its first ``max_words`` words are kept (a hard
    cut). A text already within the budget is returned unchanged (its spacing included);
    otherwise the kept sentences are joined by single spaces.
    """
    _text(text)
    max_words = _checks.check_number(max_words, "max_words", integer=True, low=0)
    if count_words(text) <= max_words:
        return text
    kept, used = [], 0
    for sentence in split_sentences(text):
        n = count_words(sentence)
        if used + n > max_words:
            break
        kept.append(sentence)
        used += n
    if not kept:
        return " ".join(text.split()[:max_words])
    return " ".join(kept)

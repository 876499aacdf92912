"""Text generators for RecurrentGPT, none of which touches a network (arXiv 2305.13304).

The method treats the LLM as a black box ``prompt -> reply``; the official code calls OpenAI's
chat API (system message "helpful and creative assistant for writing novel", temperature 0.5).
refseq's loop takes any :class:`TextGenerator`:

* :class:`ScriptedGenerator` -- canned replies in order, or a function ``(prompt, call) -> reply``
  (tests of parsing, retries and loop control);
* ``TemplateWriter`` (:mod:`.template_writer`) -- a deterministic rule-based writer that reads
  the prompt's sections and answers in the requested format, for loop-level experiments;
* :class:`StepLMGenerator` -- fills every requested section by decoding from any ``StepLM``
  (:mod:`refseq.decoding.interfaces`) through a :class:`WordTokenizer`; the section labels are
  written by the generator, so its replies always parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from refseq import _checks
from refseq.papers.recurrentgpt.template_writer import reply_kind

__all__ = ["ScriptedGenerator", "StepLMGenerator", "TextGenerator", "WordTokenizer"]


@runtime_checkable
class TextGenerator(Protocol):
    """``complete(prompt, *, system=None, temperature=0.5, seed=None) -> str``."""

    def complete(self, prompt: str, *, system: str | None = None, temperature: float = 0.5,
                 seed: int | None = None) -> str: ...


class ScriptedGenerator:
    """Replies from a script: ``responses[i]`` on call ``i`` (a list), or
    ``responses(prompt, i)`` (a callable). ``prompts`` records every prompt received.
    Running past the end of a list raises ``RuntimeError``."""

    def __init__(self, responses: list | Callable[[str, int], str]):
        if callable(responses):
            self._fn, self._list = responses, None
        elif isinstance(responses, (list, tuple)) and not isinstance(responses, str):
            for i, r in enumerate(responses):
                if not isinstance(r, str):
                    raise TypeError(f"responses[{i}] must be a str, got {type(r).__name__}")
            self._fn, self._list = None, list(responses)
        else:
            raise TypeError(f"responses must be a list of str or a callable (prompt, call) -> "
                            f"str, got {type(responses).__name__}")
        self.prompts: list[str] = []

    @property
    def calls(self) -> int:
        """Number of calls so far."""
        return len(self.prompts)

    def complete(self, prompt: str, *, system: str | None = None, temperature: float = 0.5,
                 seed: int | None = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        i = len(self.prompts)
        self.prompts.append(prompt)
        if self._list is not None:
            if i >= len(self._list):
                raise RuntimeError(f"ScriptedGenerator has {len(self._list)} replies; call {i + 1} "
                                   "asked for one more")
            return self._list[i]
        return self._fn(prompt, i)


class WordTokenizer:
    """Whole-word tokenizer over ``words`` (id = position). ``encode`` lower-cases, splits on
    non-word characters and maps unknown words to id 0; ``decode`` joins words by spaces.
    Words must be non-empty and hold no whitespace or colon (so decoded text never forms a
    section label)."""

    def __init__(self, words: list):
        if isinstance(words, str) or not isinstance(words, (list, tuple)) or not words:
            raise TypeError("words must be a non-empty list of str")
        for i, w in enumerate(words):
            if not isinstance(w, str) or not w or re.search(r"[\s:]", w):
                raise ValueError(f"words[{i}] must be a non-empty str without whitespace or "
                                 f"':', got {w!r}")
        self.words = list(words)
        self._ids = {w.lower(): i for i, w in reversed(list(enumerate(self.words)))}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return np.array([self._ids.get(w, 0) for w in re.findall(r"[\w']+", text.lower())],
                        np.int64)

    def decode(self, ids) -> str:
        ids = _checks.int_array(ids, "ids", low=0, high=len(self.words), ndim=1, form="(T,)")
        return " ".join(self.words[int(i)] for i in ids)


# the labels each reply kind asks for, in order, and how a list of section texts is written
_SECTIONS = {
    "writer": ("Output Paragraph:", "Rational:", "Updated Memory:", "Instruction 1:",
               "Instruction 2:", "Instruction 3:"),
    "init": ("Name:", "Outline:", "Paragraph 1:", "Paragraph 2:", "Paragraph 3:", "Summary:",
             "Instruction 1:", "Instruction 2:", "Instruction 3:"),
    "selection": ("Selected Plan:", "Reason:"),
    "edit": ("Extended Paragraph:", "Selected Plan:", "Revised Plan:"),
    "summary": ("Summary:",),
}


def _assemble(kind: str, texts: list) -> str:
    if kind == "writer":
        p, r, m, *plans = texts
        return (f"Output Paragraph:\n{p}\n\nOutput Memory:\nRational: {r}\nUpdated Memory: {m}"
                "\n\nOutput Instruction:\n"
                + "".join(f"Instruction {i}: {x}\n" for i, x in enumerate(plans, 1)))
    return "".join(f"{label}\n{x}\n\n" for label, x in zip(_SECTIONS[kind], texts))


class StepLMGenerator:
    """A :class:`TextGenerator` that decodes each requested section from a ``StepLM``.

    Parameters
    ----------
    step_lm : StepLM
        Any model of :mod:`refseq.decoding.interfaces` with ``vocab_size == len(tokenizer)``.
    tokenizer : WordTokenizer
        Maps the prompt to token ids and the decoded ids back to words.
    max_tokens : int
        Tokens decoded per section (>= 1).
    context : int
        The last ``context`` prompt tokens condition each section (then the section label's).

    Notes
    -----
    The reply kind (writer, initialisation, plan selection, human edit, summary) is read from the
    prompt's requested format; an unknown prompt gets one free paragraph. ``temperature == 0``
    decodes greedily, otherwise samples with ``rng = seed`` (section ``j`` uses ``seed + j``).
    """

    def __init__(self, step_lm, tokenizer: WordTokenizer, max_tokens: int = 16,
                 context: int = 32):
        _checks.check_methods(step_lm, "step_lm", ("start", "step", "reorder"),
                              "a StepLM (start, step and reorder methods)")
        _checks.check_instance(tokenizer, WordTokenizer, "tokenizer")
        if getattr(step_lm, "vocab_size", None) != len(tokenizer):
            raise ValueError(f"step_lm.vocab_size must equal len(tokenizer) = {len(tokenizer)}, "
                             f"got {getattr(step_lm, 'vocab_size', None)}")
        self.step_lm, self.tokenizer = step_lm, tokenizer
        self.max_tokens = _checks.check_number(max_tokens, "max_tokens", integer=True, low=1)
        self.context = _checks.check_number(context, "context", integer=True, low=0)

    def _section(self, prompt_ids, label: str, temperature: float, seed) -> str:
        from refseq.decoding.search import greedy, sample_decode

        ids = np.concatenate([prompt_ids[len(prompt_ids) - self.context:] if self.context
                              else prompt_ids[:0], self.tokenizer.encode(label)])
        if temperature == 0:
            out = greedy(self.step_lm, [ids], self.max_tokens)
        else:
            out = sample_decode(self.step_lm, [ids], self.max_tokens, temperature=temperature,
                                rng=seed)
        return self.tokenizer.decode(out.tokens[0, :int(out.lengths[0])])

    def complete(self, prompt: str, *, system: str | None = None, temperature: float = 0.5,
                 seed: int | None = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        temperature = _checks.check_number(temperature, "temperature", low=0)
        seed = _checks.check_number(seed, "seed", integer=True, low=0, allow_none=True)
        kind = reply_kind(prompt)
        prompt_ids = self.tokenizer.encode(prompt)
        labels = _SECTIONS.get(kind, ("Paragraph:",))
        texts = [self._section(prompt_ids, label, temperature,
                               None if seed is None else seed + j)
                 for j, label in enumerate(labels)]
        return _assemble(kind, texts) if kind in _SECTIONS else texts[0]

"""Plan selection and human editing for RecurrentGPT (Zhou et al., arXiv 2305.13304).

After each writer step the next input ``x_{t+1}`` is chosen among the writer's three plans --
by a person (the paper's interactive use), or by a second LLM prompted as a "simulated human"
(the official ``human_simulator.py``, which also rewrites the new paragraph and the plan). A
policy is anything with ``choose(state, previous_paragraph) -> state``: it returns a copy of
``state`` with ``plan`` set (and, for some, ``short_memory`` or ``last_paragraph`` edited);
``previous_paragraph`` is the paragraph the writer step read (``o_{t-1}``).

* :class:`FirstPlan`, :class:`RandomPlan` -- fixed rules (the latter stateless: its draw is keyed
  by ``(seed, state.step)``, so runs resume exactly);
* :class:`CallbackPolicy` -- human in the loop: ``fn(state copy) -> plan`` or
  ``(plan, short_memory or None)``;
* :class:`SimulatedHuman` -- two generator calls: select a plan (``Selected Plan:``), then extend
  the new paragraph and revise the plan (``Extended Paragraph:``, ``Revised Plan:``); the
  extended paragraph replaces ``last_paragraph`` and the revised plan becomes ``plan``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from refseq import _checks
from refseq.papers.recurrentgpt.budget import truncate_words
from refseq.papers.recurrentgpt.parse import (
    call_with_retries,
    parse_human_edit,
    parse_plan_selection,
)
from refseq.papers.recurrentgpt.prompts import (
    SYSTEM_PROMPT,
    human_edit_prompt,
    plan_selection_prompt,
)
from refseq.papers.recurrentgpt.state import RecurrentState

__all__ = ["CallbackPolicy", "FirstPlan", "RandomPlan", "SimulatedHuman"]


def _state(state) -> RecurrentState:
    state = _checks.check_instance(state, RecurrentState, "state")
    if not state.candidate_plans:
        raise ValueError("state.candidate_plans must not be empty to choose a plan")
    return state


def _prev(previous_paragraph) -> str:
    if not isinstance(previous_paragraph, str):
        raise TypeError(f"previous_paragraph must be a str, got "
                        f"{type(previous_paragraph).__name__}")
    return previous_paragraph


class FirstPlan:
    """Always the first candidate plan."""

    def choose(self, state: RecurrentState, previous_paragraph: str = "") -> RecurrentState:
        state, _ = _state(state), _prev(previous_paragraph)
        return state.copy(plan=state.candidate_plans[0])


class RandomPlan:
    """A uniformly drawn candidate, from ``default_rng([seed, state.step])``."""

    def __init__(self, seed: int = 0):
        self.seed = _checks.check_number(seed, "seed", integer=True, low=0)

    def choose(self, state: RecurrentState, previous_paragraph: str = "") -> RecurrentState:
        state, _ = _state(state), _prev(previous_paragraph)
        i = int(np.random.default_rng([self.seed, state.step]).integers(
            len(state.candidate_plans)))
        return state.copy(plan=state.candidate_plans[i])


class CallbackPolicy:
    """``fn(state copy) -> plan`` or ``(plan, short_memory or None)``: the returned plan (any
    text, not necessarily a candidate) and memory edit are used verbatim."""

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"fn must be a callable state -> plan, got {type(fn).__name__}")
        self.fn = fn

    def choose(self, state: RecurrentState, previous_paragraph: str = "") -> RecurrentState:
        state, _ = _state(state), _prev(previous_paragraph)
        got = self.fn(state.copy())
        plan, memory = (got if isinstance(got, tuple) else (got, None))
        if not isinstance(plan, str) or not (memory is None or isinstance(memory, str)):
            raise TypeError("the callback must return a plan str or (plan str, short_memory "
                            f"str or None), got {got!r:.80}")
        return state.copy(plan=plan, **({} if memory is None else {"short_memory": memory}))


class SimulatedHuman:
    """The official simulated human: select, then extend and revise (two generator calls).

    Parameters
    ----------
    generator : TextGenerator
    language : str
        Language the edit prompt asks for (the official prompt hard-codes Chinese).
    """

    def __init__(self, generator, language: str = "English"):
        self.generator = _checks.check_methods(generator, "generator", ("complete",),
                                               "a TextGenerator (a complete method)")
        if not isinstance(language, str) or not language:
            raise TypeError(f"language must be a non-empty str, got {language!r}")
        self.language = language

    def choose(self, state: RecurrentState, previous_paragraph: str = "") -> RecurrentState:
        state, prev = _state(state), _prev(previous_paragraph)
        cfg = state.config
        rng = state.rng()
        seed = int(rng.integers(2 ** 31))
        kw = dict(max_retries=cfg.max_retries, system=SYSTEM_PROMPT,
                  temperature=cfg.temperature)
        sel = call_with_retries(self.generator, plan_selection_prompt(
            prev, state.short_memory, state.last_paragraph, state.candidate_plans),
            parse_plan_selection, seed=seed, **kw)
        edit = call_with_retries(self.generator, human_edit_prompt(
            prev, state.short_memory, state.last_paragraph, sel.plan, cfg.limits,
            self.language), parse_human_edit, seed=seed + cfg.max_retries, **kw)
        paragraph, plan = edit.extended_paragraph, edit.revised_plan
        if cfg.enforce_limits:
            paragraph = truncate_words(paragraph, cfg.limits.extended_paragraph_words)
            plan = truncate_words(plan, cfg.limits.plan_words)
        return state.copy(plan=plan, last_paragraph=paragraph,
                          rng_state=rng.bit_generator.state)

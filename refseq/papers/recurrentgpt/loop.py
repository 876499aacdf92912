"""RecurrentGPT's recurrence: one writer step, initialisation and the driver (arXiv 2305.13304).

One step, with ``R_k`` the top-k retrieval and ``F`` the generator plus parser:

.. math::

    r_t &= R_k\\big(E(x_t), \\{E(m) : m \\in c_{t-1}\\}\\big) \\\\
    (o_t, h_t, \\hat x^{(1..3)}_{t+1})
        &= F\\big(\\text{prompt}(h_{t-1}, o_{t-1}, x_t, r_t)\\big) \\\\
    c_t &= c_{t-1} \\cup \\{o_{t-\\text{lag}}\\ \\text{(or its summary)}\\}

then a policy (:mod:`.policies`) sets ``x_{t+1}``. Defaults follow the official code
(``recurrentgpt.py::RecurrentGPT.step``): ``lag = 1`` (the long-term memory receives the step's
*input* paragraph, so the paragraph just written becomes retrievable one step later) and raw
paragraphs as items; ``lag = 0`` with ``long_memory_item = "summary"`` is the paper's wording.
Departures from the official loop: retries are bounded, the new-character coin and the
generator seeds come from the state's own random stream (so runs are reproducible and
resumable), the index grows by one row per step instead of re-encoding the whole memory, and
``enforce_limits`` truncates what the prompts only ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq.papers.recurrentgpt.budget import count_words, truncate_words
from refseq.papers.recurrentgpt.formats import WriterOutput
from refseq.papers.recurrentgpt.parse import (
    call_with_retries,
    parse_init_output,
    parse_summary,
    parse_writer_output,
)
from refseq.papers.recurrentgpt.policies import FirstPlan
from refseq.papers.recurrentgpt.prompts import (
    SYSTEM_PROMPT,
    init_prompt,
    summary_prompt,
    writer_prompt,
)
from refseq.papers.recurrentgpt.retrieval import cosine_topk, cosine_topk_kv
from refseq.papers.recurrentgpt.state import RecurrentConfig, RecurrentState

__all__ = ["StepRecord", "initialise", "interactive_fiction_step", "recurrent_step", "retrieve",
           "run"]


@dataclass(frozen=True)
class StepRecord:
    """What one writer step saw and produced (compare records with ``==``)."""

    step: int
    prompt: str
    reply: str
    replies: tuple
    output: WriterOutput
    input_paragraph: str
    retrieved: tuple
    scores: tuple
    new_character: bool
    appended: str
    prompt_words: int
    reply_words: int


def _embedder(embedder):
    return _checks.check_methods(embedder, "embedder", ("encode",),
                                 "an Embedder (an encode(texts) -> (n, D) method)")


def _encode(embedder, texts: list, width: int | None) -> np.ndarray:
    e = np.asarray(embedder.encode(texts), np.float64)  # (n, D)
    if e.ndim != 2 or e.shape[0] != len(texts) or (width is not None and e.shape[1] != width):
        raise ValueError(f"embedder.encode must return shape (n, D) = ({len(texts)}, "
                         f"{width if width is not None else 'D'}), got {e.shape}")
    return e


def retrieve(state: RecurrentState, embedder) -> tuple:
    """``(idx, scores)`` of the ``top_k`` long-term items most similar to ``state.plan``
    (empty arrays when the memory is empty); the config's ``retrieval`` picks the reference or
    the key-value lookup hot path."""
    state = _checks.check_instance(state, RecurrentState, "state")
    _embedder(embedder)
    index = state.long_memory_index  # (M, D)
    if index.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    q = _encode(embedder, [state.plan], index.shape[1])[0]  # (D,)
    topk = cosine_topk if state.config.retrieval == "reference" else cosine_topk_kv
    return topk(q, index, state.config.top_k)


def _clip(out: WriterOutput, limits) -> WriterOutput:
    return WriterOutput(truncate_words(out.paragraph, limits.paragraph_words), out.rationale,
                        truncate_words(out.memory, limits.memory_words),
                        tuple(truncate_words(p, limits.plan_words) for p in out.plans))


def recurrent_step(state: RecurrentState, generator, embedder) -> tuple:
    """One writer step: retrieve, prompt, call (bounded retries), parse, update.

    Parameters
    ----------
    state : RecurrentState
        ``h_{t-1}``, ``c_{t-1}``, ``o_{t-1}``, ``x_t`` and the config (not modified).
    generator : TextGenerator
    embedder : Embedder
        Must be the one that built ``state.long_memory_index``.

    Returns
    -------
    new_state : RecurrentState
        ``step + 1``; ``short_memory`` replaced by the reply's memory, one item appended to the
        long-term memory and one row to its index, ``last_paragraph`` the new paragraph,
        ``candidate_plans`` the reply's plans; ``plan`` unchanged (a policy sets the next one).
    record : StepRecord

    Raises
    ------
    GenerationFailed
        No parseable reply within ``config.max_retries`` calls.
    """
    state = _checks.check_instance(state, RecurrentState, "state")
    _checks.check_methods(generator, "generator", ("complete",),
                          "a TextGenerator (a complete(prompt, ...) -> str method)")
    cfg, limits = state.config, state.config.limits
    idx, scores = retrieve(state, embedder)
    related = [state.long_memory[int(i)] for i in idx]
    rng = state.rng()
    new_character = bool(rng.random() < cfg.new_character_prob)
    seed = int(rng.integers(2 ** 31))
    prompt = writer_prompt(state, related, new_character, limits)
    replies: list = []
    kw = dict(max_retries=cfg.max_retries, system=SYSTEM_PROMPT, temperature=cfg.temperature)
    out = call_with_retries(generator, prompt, parse_writer_output, seed=seed, replies=replies,
                            **kw)
    if cfg.enforce_limits:
        out = _clip(out, limits)
    item = state.last_paragraph if cfg.lag == 1 else out.paragraph
    if cfg.long_memory_item == "summary":
        item = call_with_retries(generator, summary_prompt(item), parse_summary,
                                 seed=seed + cfg.max_retries, **kw)
        if cfg.enforce_limits:
            item = truncate_words(item, limits.paragraph_words)
    M, width = state.long_memory_index.shape
    row = _encode(embedder, [item], width if M else None)  # (1, D)
    index = np.vstack([state.long_memory_index, row]) if M else row  # (M + 1, D)
    new = state.copy(step=state.step + 1, short_memory=out.memory,
                     long_memory=[*state.long_memory, item], long_memory_index=index,
                     last_paragraph=out.paragraph, candidate_plans=list(out.plans),
                     rng_state=rng.bit_generator.state)
    record = StepRecord(state.step + 1, prompt, replies[-1], tuple(replies), out,
                        state.last_paragraph, tuple(int(i) for i in idx),
                        tuple(float(s) for s in scores), new_character, item,
                        count_words(prompt), count_words(replies[-1]))
    return new, record


def initialise(generator, embedder, genre: str, topic: str, *, policy=None,
               config: RecurrentConfig | None = None, seed: int = 0,
               chapters: int = 50) -> RecurrentState:
    """The state after the initialisation call (the official ``main.py`` wiring).

    Long-term memory = paragraphs 1 and 2, last paragraph = paragraph 3, short-term memory =
    the summary, candidates = the three instructions; then ``policy`` (default
    :class:`~.policies.FirstPlan`) picks the first plan, with paragraphs 1 and 2 as the previous
    paragraph. ``seed`` starts the state's random stream.
    """
    config = RecurrentConfig() if config is None else _checks.check_instance(
        config, RecurrentConfig, "config")
    policy = FirstPlan() if policy is None else _checks.check_methods(
        policy, "policy", ("choose",), "a policy (a choose(state, previous_paragraph) method)")
    _embedder(embedder)
    rng = np.random.default_rng(_checks.check_number(seed, "seed", integer=True, low=0))
    init = call_with_retries(generator, init_prompt(genre, topic, chapters), parse_init_output,
                             max_retries=config.max_retries, system=SYSTEM_PROMPT,
                             temperature=config.temperature, seed=int(rng.integers(2 ** 31)))
    p1, p2, p3 = init.paragraphs
    state = RecurrentState(0, init.summary, [p1, p2], _encode(embedder, [p1, p2], None), p3,
                           init.plans[0], list(init.plans), config, rng.bit_generator.state)
    return policy.choose(state, "\n".join([p1, p2]))


def run(state: RecurrentState, n_steps: int, generator, embedder, policy=None,
        hooks=()) -> tuple:
    """``n_steps`` writer steps, each followed by ``policy.choose`` (default first plan).

    ``hooks``: callables ``hook(state) -> state or None`` run, in order, before each writer
    step (the coming step is ``state.step + 1``): scripted human edits, planted content.
    Returns ``(final state, [StepRecord, ...])``.
    """
    state = _checks.check_instance(state, RecurrentState, "state")
    n_steps = _checks.check_number(n_steps, "n_steps", integer=True, low=0)
    policy = FirstPlan() if policy is None else _checks.check_methods(
        policy, "policy", ("choose",), "a policy (a choose(state, previous_paragraph) method)")
    if not isinstance(hooks, (list, tuple)) or not all(callable(h) for h in hooks):
        raise TypeError("hooks must be a list of callables state -> state or None")
    records = []
    for _ in range(n_steps):
        for hook in hooks:
            got = hook(state)
            if got is not None:
                state = _checks.check_instance(got, RecurrentState, "a hook's return value")
        state, record = recurrent_step(state, generator, embedder)
        state = policy.choose(state, record.input_paragraph)
        records.append(record)
    return state, records


def interactive_fiction_step(state: RecurrentState, reader_choice: int) -> RecurrentState:
    """"AI as contents": the reader picks continuation ``reader_choice`` (0, 1 or 2) among the
    writer's plans; it becomes ``state.plan`` verbatim (run :func:`recurrent_step` next)."""
    state = _checks.check_instance(state, RecurrentState, "state")
    n = len(state.candidate_plans)
    reader_choice = _checks.check_number(reader_choice, "reader_choice", integer=True, low=0,
                                         high=n - 1)
    return state.copy(plan=state.candidate_plans[reader_choice])

"""RecurrentGPT.

W. Zhou, Y. E. Jiang, P. Cui, T. Wang, Z. Xiao, Y. Hou, R. Cotterell, M. Sachan. *RecurrentGPT:
Interactive Generation of (Arbitrarily) Long Text*. arXiv 2305.13304 (2023).

Official code: aiwaves-cn/RecurrentGPT (``recurrentgpt.py``, ``human_simulator.py``,
``utils.py``, ``main.py``, ``init_prompt.json``; OpenAI chat API and sentence-transformers).
Independent: jackaduma/Recurrent-LLM (the same loop on open models).

A Transformer LLM has a fixed context window, so it cannot write a long novel in one pass.
RecurrentGPT makes the LLM the cell of a *language-level* recurrent network modelled on an
LSTM, with every vector replaced by text: at step ``t`` the prompt holds the previous paragraph
(the fed-back output), a plan for the next paragraph (the input), a short-term memory rewritten
every step (the hidden state) and a few items retrieved by embedding similarity from a long-term
memory kept outside the prompt (the cell state). The LLM returns the next paragraph, the updated
short-term memory and three candidate plans; a person or a simulated human picks and edits a
plan. The prompt size stays bounded however many steps run. In refseq the loop is a
deterministic, resumable state machine around a pluggable text generator (no network anywhere),
with exact top-k cosine retrieval -- optionally through the key-value lookup hot path -- as its
numeric core. Narrative, tests and demo output: ``docs/papers/recurrentgpt.md``.

Glossary (t step, M long-term items, D embedding width, k retrieved items):

====================================  ===========================================  ==========
paper                                 code                                         shape/type
====================================  ===========================================  ==========
input x_t (plan, instruction)         ``RecurrentState.plan``                      str
output o_(t-1) (previous paragraph)   ``RecurrentState.last_paragraph``            str
hidden state h_t (short-term memory)  ``RecurrentState.short_memory``              str
cell state c_t (long-term memory)     ``RecurrentState.long_memory``               M items
embeddings E(m) of c_t                ``RecurrentState.long_memory_index``         (M, D)
candidate plans x^(1..3)_(t+1)        ``RecurrentState.candidate_plans``           3 items
embedder E                            ``HashingEmbedder``                          (n, D)
retrieval R_k, cosine score s(q, m)   :func:`cosine_topk`, :func:`cosine_topk_kv`  (k,)
the LLM F                             :class:`TextGenerator` implementations       str
prompt(h, o, x, r)                    :func:`writer_prompt`                        str
parsing F's reply                     :func:`parse_writer_output`                  record
one recurrence step                   :func:`recurrent_step`                       state
plan selection, human editing         :mod:`.policies`                             state
length limits (official prompts)      :class:`Limits`, :func:`prompt_word_bound`   words
====================================  ===========================================  ==========

Defaults and deviations:

* Long-term memory: ``lag=1, long_memory_item="paragraph"`` (the official code: the step's input
  paragraph is stored raw, so a new paragraph is retrievable one step later); ``lag=0`` and
  ``"summary"`` give the paper's description (store the summary of the new paragraph).
* ``top_k=2`` (the code; its comment says 3); ``k`` is clamped to the memory size (the official
  ``torch.topk`` fails for ``k > M``); ties go to the earlier item.
* Retries are bounded (``max_retries`` calls, then :class:`GenerationFailed` with every reply);
  the official loop re-sends the same prompt forever.
* Parsing is tolerant (bold labels, CRLF, trailing spaces) and reads the last plan to the end of
  the reply (the official code takes the last line).
* The new-character coin (probability 0.1) and the generator seeds come from the state's own
  random stream (the official code uses the global ``random``); runs resume exactly.
* The index grows by one row per step (the official code re-encodes the whole memory each step;
  the results are identical).
* ``enforce_limits`` truncates the memory to ``memory_words`` on a sentence boundary (and
  paragraphs and plans to refseq's word budgets); the official prompts only ask.
* Prompt wording is refseq's own; sections, labels, reply formats and requested lengths follow
  the official prompts. The simulated human's reply language is a parameter (the official
  prompt asks for Chinese).
* Embeddings: :class:`HashingEmbedder` (signed feature hashing) instead of
  ``multi-qa-mpnet-base-cos-v1``; :class:`SentenceTransformerEmbedder` wraps the official model
  when installed.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.recurrentgpt.baselines import (
    BaselineRecord,
    FullHistoryWriter,
    RollingWindowWriter,
)
from refseq.papers.recurrentgpt.budget import (
    count_sentences,
    count_words,
    split_sentences,
    truncate_words,
)
from refseq.papers.recurrentgpt.embed import Embedder, HashingEmbedder, SentenceTransformerEmbedder
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
from refseq.papers.recurrentgpt.llm import (
    ScriptedGenerator,
    StepLMGenerator,
    TextGenerator,
    WordTokenizer,
)
from refseq.papers.recurrentgpt.loop import (
    StepRecord,
    initialise,
    interactive_fiction_step,
    recurrent_step,
    retrieve,
    run,
)
from refseq.papers.recurrentgpt.parse import (
    GenerationFailed,
    ParseError,
    call_with_retries,
    extract_section,
    parse_human_edit,
    parse_init_output,
    parse_plan_selection,
    parse_summary,
    parse_writer_output,
)
from refseq.papers.recurrentgpt.policies import (
    CallbackPolicy,
    FirstPlan,
    RandomPlan,
    SimulatedHuman,
)
from refseq.papers.recurrentgpt.prompts import (
    SYSTEM_PROMPT,
    Limits,
    history_prompt,
    human_edit_prompt,
    init_prompt,
    plan_selection_prompt,
    prompt_word_bound,
    summary_prompt,
    writer_prompt,
)
from refseq.papers.recurrentgpt.retrieval import cosine_topk, cosine_topk_kv
from refseq.papers.recurrentgpt.state import RecurrentConfig, RecurrentState
from refseq.papers.recurrentgpt.template_writer import (
    TemplateWriter,
    keywords,
    pseudo_vocab,
    reply_kind,
)

__all__ = [
    "PAPER", "SYSTEM_PROMPT", "BaselineRecord", "CallbackPolicy", "Embedder", "FirstPlan",
    "FullHistoryWriter", "GenerationFailed", "HashingEmbedder", "HumanEdit", "InitOutput",
    "Limits", "ParseError", "PlanSelection", "RandomPlan", "RecurrentConfig", "RecurrentState",
    "RollingWindowWriter", "ScriptedGenerator", "SentenceTransformerEmbedder", "SimulatedHuman",
    "StepLMGenerator", "StepRecord", "TemplateWriter", "TextGenerator", "WordTokenizer",
    "WriterOutput", "call_with_retries", "cosine_topk", "cosine_topk_kv", "count_sentences",
    "count_words", "extract_section", "format_human_edit", "format_init_output",
    "format_plan_selection", "format_summary", "format_writer_output", "history_prompt",
    "human_edit_prompt", "init_prompt", "initialise", "interactive_fiction_step", "keywords",
    "parse_human_edit", "parse_init_output", "parse_plan_selection", "parse_summary",
    "parse_writer_output", "plan_selection_prompt", "prompt_word_bound", "pseudo_vocab",
    "recurrent_step", "reply_kind", "retrieve", "run", "split_sentences", "summary_prompt",
    "truncate_words", "writer_prompt",
]

PAPER = Paper(
    number=18,
    title="RecurrentGPT",
    arxiv="2305.13304",
    code="aiwaves-cn/RecurrentGPT (OpenAI API, sentence-transformers)",
    hot_paths="kv lookup (optional)",
    demo="recurrentgpt",
    demo_summary="constant-size prompts over 200 steps and planted-paragraph recall, "
                 "vs full-history and rolling-window baselines",
)

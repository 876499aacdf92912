"""Decoding algorithms for autoregressive models (guide: docs/decoding.md).

- :mod:`~refseq.decoding.interfaces` — the ``StepLM`` protocol every decoder consumes,
  ``log_softmax``, ``PrefixLM``, ``logprobs_fn``;
- :mod:`~refseq.decoding.sampling` — logit warpers (temperature, top-k, top-p in the neutral and
  the Hugging Face form) and samplers with explicit uniforms or Gumbel noise;
- :mod:`~refseq.decoding.search` — greedy decoding and ancestral sampling;
- :mod:`~refseq.decoding.beam` and :mod:`~refseq.decoding.nbest` — beam search with the
  ``"neutral"``, ``"hf"`` and ``"fairseq"`` conventions, ``beam_step``, ``NBestList``;
- :mod:`~refseq.decoding.processors` — logprob processors (min length, no-repeat n-gram, ...);
- :mod:`~refseq.decoding.exact` — exact enumeration and exact mode search on tiny models;
- :mod:`~refseq.decoding.diverse_beam` and :mod:`~refseq.decoding.diversity` — diverse beam
  search (Vijayakumar et al. 2016) and its diversity functions;
- :mod:`~refseq.decoding.peers` — Hugging Face models as ``StepLM`` and ``generate`` helpers
  (torch and transformers imported only when used).
"""

from refseq.decoding.beam import CONVENTIONS, beam_search, beam_step
from refseq.decoding.diverse_beam import diverse_beam_search
from refseq.decoding.exact import enumerate_sequences, exact_mode, top_sequences
from refseq.decoding.interfaces import PrefixLM, StepLM, as_prompts, log_softmax, logprobs_fn
from refseq.decoding.nbest import Hypothesis, NBestList, normalize
from refseq.decoding.peers import HFStepLM, compare_with_hf, run_hf_generate
from refseq.decoding.sampling import (
    gumbel_argmax,
    gumbel_noise,
    sample,
    temperature,
    top_k_filter,
    top_p_filter,
    warp,
    warped_probs,
)
from refseq.decoding.search import GenOutput, greedy, sample_decode

__all__ = [
    "CONVENTIONS", "GenOutput", "HFStepLM", "Hypothesis", "NBestList", "PrefixLM", "StepLM",
    "as_prompts", "beam_search", "beam_step", "compare_with_hf", "diverse_beam_search",
    "enumerate_sequences", "exact_mode", "greedy", "gumbel_argmax", "gumbel_noise",
    "log_softmax", "logprobs_fn", "normalize", "run_hf_generate", "sample", "sample_decode",
    "temperature", "top_k_filter", "top_p_filter", "top_sequences", "warp", "warped_probs",
]

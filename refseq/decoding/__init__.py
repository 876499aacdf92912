"""Decoding algorithms for autoregressive models. :mod:`refseq.decoding.interfaces` defines the
``StepLM`` protocol that every decoder consumes."""

from refseq.decoding.interfaces import PrefixLM, StepLM, as_prompts, log_softmax, logprobs_fn

__all__ = ["PrefixLM", "StepLM", "as_prompts", "log_softmax", "logprobs_fn"]

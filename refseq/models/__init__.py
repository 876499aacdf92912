"""Composed models shared by several papers, built from :mod:`refseq.nn` layers.

* :mod:`refseq.models.tiny_transformer` — the tiny GPT-style decoder (KV cache, tree masks, full
  backward, save/load); docs/models/tiny_transformer.md.
* :mod:`refseq.models.toy_lm` — toy language models with exact probabilities for the decoders.

Models that one paper uses live in its package (the Aaren stack: :mod:`refseq.papers.aaren`).
"""

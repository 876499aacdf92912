"""Evaluation metrics shared by several papers (NumPy, token ids in, Python numbers out).

=====================  ==================================================================
module                 contents
=====================  ==================================================================
``diversity``          ``type_token_ratio``, ``distinct_n``, ``num_unique``, ``oracle_at_k``
=====================  ==================================================================

Users: Diverse Beam Search (arXiv 1610.02424; distinct-n, oracle@k, unique outputs) and
the Hyperfitting Phenomenon (arXiv 2412.04318; type-token ratio of greedy continuations).
"""

from refseq.metrics.diversity import distinct_n, num_unique, oracle_at_k, type_token_ratio

__all__ = ["distinct_n", "num_unique", "oracle_at_k", "type_token_ratio"]

"""Attention as an RNN (Aaren) (arXiv 2405.13956).

Official code: none released (independent: claCase/Attention-as-RNN).
"""

from __future__ import annotations

from refseq.papers import Paper

PAPER = Paper(
    number=1,
    title='Attention as an RNN (Aaren)',
    arxiv='2405.13956',
    code='none released (independent: claCase/Attention-as-RNN)',
    hot_paths='scan',
    demo='aaren',
    demo_summary='constant per-token cost of Aaren vs a growing KV cache; scan == naive loop',
)

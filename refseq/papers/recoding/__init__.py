"""Recoding latent sentence representations (arXiv 2101.00674).

Official code: https://github.com/Kaleidophon/tenacious-toucan.
"""

from __future__ import annotations

from refseq.papers import Paper

PAPER = Paper(
    number=5,
    title='Recoding latent sentence representations',
    arxiv='2101.00674',
    code='https://github.com/Kaleidophon/tenacious-toucan',
    hot_paths='recurrence',
    demo='recoding',
    demo_summary='surprisal recoding lowers the loss to first order at tiny scale',
)

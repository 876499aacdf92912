"""Predictive-coding-inspired variational RNN (PV-RNN) (arXiv 1811.01339).

Official code: none released (closest: oist-cnru/T-GLean, cpp/src).
"""

from __future__ import annotations

from refseq.papers import Paper

PAPER = Paper(
    number=6,
    title='Predictive-coding-inspired variational RNN (PV-RNN)',
    arxiv='1811.01339',
    code='none released (closest: oist-cnru/T-GLean, cpp/src)',
    hot_paths='-',
    demo='pv-rnn',
    demo_summary="the meta-prior's first-order effect on KL and reconstruction",
)

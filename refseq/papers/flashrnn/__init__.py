"""FlashRNN: I/O-Aware Optimization of Traditional RNNs on modern hardware (arXiv 2412.07752).

Official code: https://github.com/NX-AI/flashrnn.
"""

from __future__ import annotations

from refseq.papers import Paper

PAPER = Paper(
    number=7,
    title='FlashRNN: I/O-Aware Optimization of Traditional RNNs on modern hardware',
    arxiv='2412.07752',
    code='https://github.com/NX-AI/flashrnn',
    hot_paths='recurrence (defines it)',
    demo=None,
    demo_summary='',
)

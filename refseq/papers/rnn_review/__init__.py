"""A Critical Review of Recurrent Neural Networks for Sequence Learning (arXiv 1506.00019).

Official code: none (a survey).
"""

from __future__ import annotations

from refseq.papers import Paper

PAPER = Paper(
    number=4,
    title='A Critical Review of Recurrent Neural Networks for Sequence Learning',
    arxiv='1506.00019',
    code='none (a survey)',
    hot_paths='recurrence',
    demo='rnn-review',
    demo_summary="vanishing gradients of Elman networks vs the LSTM's constant error carousel",
)

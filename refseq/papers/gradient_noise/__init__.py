"""Adding Gradient Noise Improves Learning for Very Deep Networks (arXiv 1511.06807).

Official code: none standalone (Chainer: chainer.optimizer_hooks.GradientNoise).
"""

from __future__ import annotations

from refseq.papers import Paper

PAPER = Paper(
    number=28,
    title='Adding Gradient Noise Improves Learning for Very Deep Networks',
    arxiv='1511.06807',
    code='none standalone (Chainer: chainer.optimizer_hooks.GradientNoise)',
    hot_paths='-',
    demo='gradient-noise',
    demo_summary='annealed gradient noise rescues a badly initialised 20-layer ReLU network',
)

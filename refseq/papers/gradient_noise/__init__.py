"""Adding Gradient Noise Improves Learning for Very Deep Networks.

A. Neelakantan, L. Vilnis, Q. V. Le, I. Sutskever, L. Kaiser, K. Kurach, J. Martens. *Adding
Gradient Noise Improves Learning for Very Deep Networks*. arXiv 1511.06807 (2015).

Official code: none standalone (the authors used the technique inside their Neural Programmer and
Neural GPU code). Closest implementations: Chainer's ``chainer.optimizer_hooks.GradientNoise``
and cpury/keras_gradient_noise.

Fresh Gaussian noise with a decaying variance is added to every gradient before the optimiser
uses it, ``g~_t = g_t + N(0, σ_t² I)``, ``σ_t² = η / (1 + t)^γ`` (Sec. 2, Eq. 1). The optimiser
hook is shared training code and lives in :mod:`refseq.train.gradient_noise` (re-exported
here); this package holds the paper's deep, badly initialised ReLU network experiment at small
scale (Sec. 4.1; :mod:`refseq.papers.gradient_noise.mlp`) and its demo. Narrative, tests and the
demo output: ``docs/papers/gradient-noise.md``.

Glossary (n data points, L hidden layers; every gradient tensor has its parameter's shape):

=====================  =======================================================  =============
paper                  code                                                     shape
=====================  =======================================================  =============
t (updates applied)    ``GradientNoise.t``, ``NoisyOptimizer.t`` (from ``t0``)  scalar int
η, γ = 0.55            ``eta``, ``gamma``                                       scalars
σ_t² = η / (1 + t)^γ   :func:`noise_variance`                                   scalar
σ_t                    :func:`noise_std`                                        scalar
σ² = η (ablation)      :func:`constant_noise_std`, ``schedule="constant"``      scalar
g_t, g~_t = g_t + ξ_t  ``grads`` -> :func:`add_gradient_noise`                  per tensor
clip then noise        ``order="after_clip"`` (default)                         -
20-layer ReLU MLP      :func:`deep_relu_mlp` (width 50, weights N(0, 0.1²))     L = 20
data (x, y)            :func:`teacher_dataset`                                  (n, 10), (n,)
=====================  =======================================================  =============

Deviations and choices (the paper leaves these open):

* ``t`` counts updates from 0; noise is added after clipping by default (as the Keras wrapper
  does), so its variance is exactly ``σ_t²``; ``order="before_clip"`` bounds the update norm.
* One ``np.random.Generator``, one draw per tensor in sorted name order, in float64 then cast.
* Clipping uses PyTorch's ``max_norm / (norm + 1e-6)``, not ``c / norm``.
* The small-scale experiment replaces MNIST with a 2-class teacher problem (10 inputs) and runs
  2000 SGD steps; ``η = 0.03`` rescues the network there, the paper's ``η = 0.01`` needs longer.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.gradient_noise.mlp import (
    accuracy,
    backward,
    deep_relu_mlp,
    forward,
    layer_names,
    loss_and_grad,
    run,
    teacher_dataset,
)
from refseq.train.gradient_noise import (
    GradientNoise,
    NoisyOptimizer,
    add_gradient_noise,
    apply_clip_and_noise,
    constant_noise_std,
    noise_std,
    noise_variance,
)

__all__ = [
    "PAPER",
    # the optimiser hook (shared, refseq.train.gradient_noise)
    "noise_variance", "noise_std", "constant_noise_std", "add_gradient_noise", "GradientNoise",
    "NoisyOptimizer", "apply_clip_and_noise",
    # the deep-MLP experiment (Sec. 4.1 at small scale)
    "teacher_dataset", "layer_names", "deep_relu_mlp", "forward", "backward", "loss_and_grad",
    "accuracy", "run",
]

PAPER = Paper(
    number=28,
    title='Adding Gradient Noise Improves Learning for Very Deep Networks',
    arxiv='1511.06807',
    code='none standalone (Chainer: chainer.optimizer_hooks.GradientNoise)',
    hot_paths='-',
    demo='gradient-noise',
    demo_summary='annealed gradient noise rescues a badly initialised 20-layer ReLU network',
)

"""Training utilities (NumPy): optimisers, clipping, schedules, gradient noise, a training loop.

All training code lives here (the package map is in docs/design.md). Parameters are dicts
name -> ndarray updated in place (:func:`as_param_dict` converts Mappings, NamedTuples and
nestings without copying).

=====================  ==============================================================
module                 contents
=====================  ==============================================================
``params``             ``as_param_dict``, ``global_norm``, ``check_same_structure``
``sgd``                ``SGD`` (momentum, Nesterov, weight decay; torch semantics)
``adam``               ``Adam`` (coupled L2), ``AdamW`` (decoupled decay)
``clipping``           ``clip_grad_norm``, ``clip_grad_value``
``schedules``          ``constant``, ``warmup_cosine`` (and their classes)
``gradient_noise``     ``noise_variance``, ``noise_std``, ``constant_noise_std``,
                       ``add_gradient_noise``, ``GradientNoise``, ``NoisyOptimizer``,
                       ``apply_clip_and_noise`` (arXiv 1511.06807)
``loop``               ``train``, ``TrainLog``, ``format_progress``, ``count_tokens``
=====================  ==============================================================
"""

from refseq.train.adam import Adam, AdamW
from refseq.train.base import Optimizer
from refseq.train.clipping import clip_grad_norm, clip_grad_value
from refseq.train.gradient_noise import (
    GradientNoise,
    NoisyOptimizer,
    add_gradient_noise,
    apply_clip_and_noise,
    constant_noise_std,
    noise_std,
    noise_variance,
)
from refseq.train.loop import TrainLog, count_tokens, format_progress, train
from refseq.train.params import as_param_dict, check_same_structure, global_norm
from refseq.train.plateau import ReduceOnPlateau, reduce_on_plateau
from refseq.train.schedules import Constant, WarmupCosine, constant, warmup_cosine
from refseq.train.sgd import SGD

__all__ = [
    "ReduceOnPlateau",
    "reduce_on_plateau",
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "clip_grad_norm",
    "clip_grad_value",
    "GradientNoise",
    "NoisyOptimizer",
    "add_gradient_noise",
    "apply_clip_and_noise",
    "constant_noise_std",
    "noise_std",
    "noise_variance",
    "TrainLog",
    "count_tokens",
    "format_progress",
    "train",
    "as_param_dict",
    "check_same_structure",
    "global_norm",
    "Constant",
    "WarmupCosine",
    "constant",
    "warmup_cosine",
]

"""Sparsity in recurrent networks (Darji, "Investigating Sparsity in Recurrent Neural Networks",
arXiv 2407.20601; spec ``rnn-sparsity.md``; docs/papers/rnn-sparsity.md).

=======================  ==================================================================
module                   contents
=======================  ==================================================================
``masked``               ``MaskedRecurrentLayer`` (RNN_TANH, RNN_RELU, GRU, LSTM) on the
                         FlashRNN engine, masks in forward and backward
``models``               ``PruneRNN``, ``ArbitraryStructureRNN``, ``ReberClassifier``
``pruning``              ``percentile_threshold``, ``magnitude_masks``, ``apply_masks``,
                         ``sparsity`` (global / per-layer / per-matrix percentile pruning)
``graphs``               ``barabasi_albert``, ``connected_watts_strogatz``, ``orient_dag``,
                         ``layer_index``, ``layer_connectivity``, ``expand_gate_mask``
``graph_properties``     ``graph_properties``, ``structure_properties``, ``brandes``
``experiments``          ``train_classifier``, ``evaluate``, ``prune_and_retrain``,
                         ``epochs_to_regain``, ``random_structure_experiment``
``predict``              ``minmax_scale``, ``pearson``, ``bayesian_ridge``, ``fit_predict_r2``
=======================  ==================================================================

The Reber-grammar data live in :mod:`refseq.tasks.reber`.
"""

from refseq.papers.rnn_sparsity.experiments import (
    epochs_to_regain,
    evaluate,
    prune_and_retrain,
    random_structure_experiment,
    train_classifier,
)
from refseq.papers.rnn_sparsity.graph_properties import graph_properties, structure_properties
from refseq.papers.rnn_sparsity.graphs import (
    barabasi_albert,
    connected_watts_strogatz,
    expand_gate_mask,
    layer_connectivity,
    layer_index,
    orient_dag,
    watts_strogatz,
)
from refseq.papers.rnn_sparsity.masked import MaskedRecurrentLayer
from refseq.papers.rnn_sparsity.models import ArbitraryStructureRNN, PruneRNN, ReberClassifier
from refseq.papers.rnn_sparsity.predict import fit_predict_r2, minmax_scale, pearson
from refseq.papers.rnn_sparsity.pruning import (
    apply_masks,
    magnitude_masks,
    percentile_threshold,
    sparsity,
)

__all__ = [
    "MaskedRecurrentLayer", "PruneRNN", "ArbitraryStructureRNN", "ReberClassifier",
    "percentile_threshold", "magnitude_masks", "apply_masks", "sparsity",
    "barabasi_albert", "connected_watts_strogatz", "watts_strogatz", "orient_dag",
    "layer_index", "layer_connectivity", "expand_gate_mask", "graph_properties",
    "structure_properties", "train_classifier", "evaluate", "prune_and_retrain",
    "epochs_to_regain", "random_structure_experiment", "fit_predict_r2", "minmax_scale",
    "pearson",
]

from refseq.papers import Paper

PAPER = Paper(
    number=2,
    title='Investigating Sparsity in Recurrent Neural Networks',
    arxiv='2407.20601',
    code='https://github.com/harshildarji/thesis',
    hot_paths='recurrence',
    demo='rnn-sparsity',
    demo_summary='magnitude pruning and one-epoch recovery of a Reber-grammar classifier',
)

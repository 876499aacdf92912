"""Investigating Sparsity in Recurrent Neural Networks.

H. Darji. *Investigating Sparsity in Recurrent Neural Networks*. Master's thesis, University of
Passau, 2021; arXiv 2407.20601 (2024).

Official code: https://github.com/harshildarji/thesis (PyTorch, with the thesis' LaTeX). The
random-structure construction follows Stier et al.'s pypaddle (now innvariant/deepstruct).

Two ways to make RNNs sparse, on RNN_TANH, RNN_RELU, GRU and LSTM classifiers of Reber-grammar
strings: magnitude pruning of a trained network with one percentile threshold, then retraining
with the mask fixed (Sec. 3.2 and 5.1); and networks sparse by construction, random graphs
oriented into DAGs and layered by longest path, each layer a masked recurrent layer (Sec. 3.3
and 5.2), whose graph statistics predict accuracy (Sec. 5.2.2-5.2.3). Every masked layer runs on
the shared recurrence engine (:mod:`refseq.recurrence`) with dense ``W ⊙ M``; the Reber data
live in :mod:`refseq.tasks.reber`. Narrative, tests and the demo: ``docs/papers/rnn-sparsity.md``.

Glossary (letters B batch, T time, I input features, H hidden units, G gates per cell: 1, 1, 3,
4 for RNN_TANH, RNN_RELU, GRU, LSTM; n graph nodes, s_k the size of layer k):

=============================  ===============================================  ==================
thesis                         code                                             shape
=============================  ===============================================  ==================
W_ih, W_hh (torch layout)      ``weight_ih``, ``weight_hh``                     (G*H, I), (G*H, H)
b_ih, b_hh                     ``bias_ih``, ``bias_hh``                         (G*H,)
M (pruning mask)               ``mask_ih``, ``mask_hh``                         as the weight
W_bar = W ⊙ M                  effective weight passed to the engine            as the weight
p (percent pruned)             ``percent``                                      scalar in [0, 100]
thr = percentile(abs(w), p)    :func:`percentile_threshold`                     scalar
both / i2h / h2h               ``i2h``, ``h2h`` flags; ``GROUPS``               -
graph G = (V, E)               edges ``(E, 2) int64``, ``u < v``                (E, 2)
layer(v) (longest-path depth)  :func:`layer_index` -> ``layer_of``, ``layers``  (n,)
E_{j,k} (layer connectivity)   :func:`layer_connectivity`                       (s_k, s_j)
23 graph features              ``FEATURES``, :func:`graph_properties`           -
classifier output              :class:`ReberClassifier` logits                  (B, 2)
=============================  ===============================================  ==================

Deviations (where the thesis text and its code disagree, the code is followed unless noted):

* Gate masks: the thesis code expands a per-unit mask to the gated weight with
  ``np.repeat(E, G, axis=0)``, which misaligns it with the contiguous gate blocks, so its GRU and
  LSTM networks do not follow their graph. The default here is ``np.tile(E, (G, 1))``
  (``mask_layout="tile"``); ``"thesis_repeat"`` reproduces the bug.
* Pruning scope: the text says "layer-wise", the code pools every selected matrix into one
  threshold; ``scope="global"`` (default) follows the code, ``"per_layer"`` / ``"per_matrix"``
  are offered.
* Readout: the thesis code reads the output after the padded final step; the default here reads
  each string's last real step (``readout="last_real"``; ``"padded_end"`` reproduces).
* GRU: the text writes ``h_t = (1 - z) h_{t-1} + z h~``; the code (and this package) uses the
  PyTorch form ``h_t = n + z ⊙ (h_{t-1} - n)``.
* ``density = |E| / (n (n - 1))`` as the code stores it (the undirected density is twice this).
* The NumPy Barabási-Albert / Watts-Strogatz generators follow networkx 3.x's algorithms with a
  NumPy generator: same distribution, different graphs for the same seed.
* ``bayesian_ridge`` follows scikit-learn's ``BayesianRidge`` defaults in NumPy; random forest
  and AdaBoost need scikit-learn.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.rnn_sparsity.experiments import (
    epochs_to_regain,
    evaluate,
    prune_and_retrain,
    random_structure_experiment,
    train_classifier,
)
from refseq.papers.rnn_sparsity.graph_properties import (
    FEATURES,
    brandes,
    graph_properties,
    structure_properties,
)
from refseq.papers.rnn_sparsity.graphs import (
    adjacency,
    barabasi_albert,
    connected_watts_strogatz,
    expand_gate_mask,
    is_connected,
    layer_connectivity,
    layer_index,
    orient_dag,
    thesis_graph,
    watts_strogatz,
)
from refseq.papers.rnn_sparsity.masked import MODES, MaskedRecurrentLayer
from refseq.papers.rnn_sparsity.models import (
    READOUTS,
    ArbitraryStructureRNN,
    PruneRNN,
    ReberClassifier,
)
from refseq.papers.rnn_sparsity.predict import (
    REGRESSORS,
    bayesian_ridge,
    fit_predict_r2,
    minmax_scale,
    pearson,
    r2_score,
    train_test_split,
)
from refseq.papers.rnn_sparsity.pruning import (
    GROUPS,
    SCOPES,
    apply_masks,
    magnitude_masks,
    percentile_threshold,
    sparsity,
)

__all__ = [
    "PAPER",
    "MODES", "MaskedRecurrentLayer", "READOUTS", "PruneRNN", "ArbitraryStructureRNN",
    "ReberClassifier",
    "GROUPS", "SCOPES", "percentile_threshold", "magnitude_masks", "apply_masks", "sparsity",
    "barabasi_albert", "watts_strogatz", "connected_watts_strogatz", "thesis_graph",
    "adjacency", "is_connected", "orient_dag", "layer_index", "layer_connectivity",
    "expand_gate_mask",
    "FEATURES", "graph_properties", "structure_properties", "brandes",
    "train_classifier", "evaluate", "prune_and_retrain", "epochs_to_regain",
    "random_structure_experiment",
    "REGRESSORS", "minmax_scale", "pearson", "train_test_split", "bayesian_ridge", "r2_score",
    "fit_predict_r2",
]

PAPER = Paper(
    number=2,
    title='Investigating Sparsity in Recurrent Neural Networks',
    arxiv='2407.20601',
    code='https://github.com/harshildarji/thesis',
    hot_paths='recurrence',
    demo='rnn-sparsity',
    demo_summary='magnitude pruning and one-epoch recovery of a Reber-grammar classifier',
)

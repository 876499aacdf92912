"""Discrete Key-Value Bottleneck.

F. Träuble, A. Goyal, N. Rahaman, M. Mozer, K. Kawaguchi, Y. Bengio, B. Schölkopf. *Discrete
Key-Value Bottleneck*. arXiv 2207.11240 (2022; ICML 2023).

Official code: ftraeuble/discrete_key_value_bottleneck (PyTorch; ``key_value_bottleneck/core.py``
``KeyValueBottleneck``, ``splitters.py``, ``utils.py``) and
ftraeuble/experiments_discrete_key_value_bottleneck (``CodebookVotingLogitsDecoder``, the training
script, the Figure 2 notebook). Independent: lucidrains/discrete-key-value-bottleneck-pytorch.

A frozen pre-trained encoder maps an input to ``z``; a splitter projects ``z`` into ``C`` heads;
each head is snapped to its nearest key(s) in a private codebook of ``M`` keys, and the
**values** paired with the selected keys are what the decoder reads. Keys are fitted once,
without labels, by EMA vector quantisation and then frozen; only values are trained for the
task. A gradient step touches only the values that were fetched, so learning a new data
distribution changes the model only near the keys its inputs hit: the model forgets little in
class-incremental learning where a linear probe or an MLP on the same features forgets. The
selection and the value scatter-add run on the key-value lookup hot path (:mod:`refseq.kv_lookup`,
``backend=``). Narrative, equations, tests and demo output: ``docs/papers/kv-bottleneck.md``.

Glossary (B batch, N tokens per input, C codebooks, M pairs per codebook, d_z feature width,
d_k key width, d_v value width, k top-k, K classes):

==============================  =================================================  ============
paper                           code                                               shape
==============================  =================================================  ============
encoder output z                ``Identity``, ``PrecomputedEmbeddings``, ...       (B, N, d_z)
heads (projection of z)         :func:`split_chunk`, :class:`RandomProjection`,    (B, C, N, d_k)
                                :class:`LearnedProjection`
keys, values                    ``KVCodebooks.keys``, ``KVCodebooks.values``       (C, M, d_*)
EMA counts and sums             ``KVCodebooks.cluster_size``, ``.keys_avg``        (C, M[, d_k])
usage counter                   ``KVCodebooks.usage``                              (C, M)
key initialisation              :meth:`KVCodebooks.init_keys`, :func:`kmeans`      -
nearest keys, distances         :func:`lookup` (hot path ``kv_lookup``)            (B, C, N, k)
fetched values                  :func:`fetch`, :func:`lookup_fetch`                (B, C, k, N, d_v)
value gradient (scatter-add)    :func:`fetch_backward` (``kv_scatter_add``)        (C, M, d_v)
EMA key update (phase 1)        :func:`ema_update`, :func:`fit_keys`               in place
dead-key threshold              :func:`dead_threshold`, :func:`replace_dead_keys`  -
non-parametric decoder          :func:`voting_decoder`, :class:`VotingDecoder`     (B, d_v)
parametric decoders             :class:`LinearProbeDecoder`, :class:`MLPDecoder`   (B, K)
model and value training        :class:`KVBottleneckModel`, :func:`train_values`   -
class-incremental stream        :func:`class_incremental_stream`                   tasks
baselines on z                  :class:`MLPClassifier`, :func:`train_classifier`   (B, K)
Figure 2 toy data               :mod:`~refseq.papers.kv_bottleneck.toy`            (n, 2)
==============================  =================================================  ============

Deviations and choices:

* Distances are the direct form ``sum (h - key)^2`` in the input dtype (the hot path); the
  official code uses the expanded form in float32, so near-ties may select other keys.
* Evaluation masking gives unused pairs no chance at all (the hot path's mask); the official
  code overwrites their scores with the smallest score of the whole tensor, so an unused pair
  can still tie with the farthest used one.
* k-means initialisation stores consistent EMA buffers (``keys_avg = keys * cluster_size``);
  the official ``init_embed_`` leaves ``keys_avg`` at zero.
* While keys are updated the EMA step always uses the deterministic top-1 assignment, also when
  ``temperature > 0`` (the official step uses the sampled index).
* ``ema_update(faithful=False)`` keeps keys never assigned yet (the default reproduces the
  official blow-up of such keys, ``keys_avg / eps``).
* The paper's module layout names ``refseq/models``, ``refseq/train`` and ``refseq/data`` homes;
  here everything that only this paper uses lives in this package.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.kv_bottleneck.codebooks import KVCodebooks, kmeans
from refseq.papers.kv_bottleneck.continual import (
    MLPClassifier,
    accuracy,
    class_incremental_stream,
    train_classifier,
)
from refseq.papers.kv_bottleneck.decoders import (
    LinearProbeDecoder,
    MLPDecoder,
    VotingDecoder,
    append_distance,
    append_distance_backward,
    voting_decoder,
    voting_decoder_backward,
)
from refseq.papers.kv_bottleneck.ema import (
    dead_threshold,
    ema_update,
    fit_keys,
    laplace_smoothing,
    replace_dead_keys,
)
from refseq.papers.kv_bottleneck.encoders import (
    Encoder,
    FrozenLinear,
    Identity,
    PrecomputedEmbeddings,
    as_tokens,
)
from refseq.papers.kv_bottleneck.model import KVBottleneckModel, train_values
from refseq.papers.kv_bottleneck.selection import (
    fetch,
    fetch_backward,
    gumbel_noise,
    lookup,
    lookup_fetch,
)
from refseq.papers.kv_bottleneck.splitters import (
    Chunker,
    LearnedProjection,
    RandomProjection,
    merge_chunks,
    split_chunk,
)

__all__ = [
    "PAPER", "Chunker", "Encoder", "FrozenLinear", "Identity", "KVBottleneckModel",
    "KVCodebooks", "LearnedProjection", "LinearProbeDecoder", "MLPClassifier", "MLPDecoder",
    "PrecomputedEmbeddings", "RandomProjection", "VotingDecoder", "accuracy", "append_distance",
    "append_distance_backward", "as_tokens", "class_incremental_stream", "dead_threshold",
    "ema_update", "fetch", "fetch_backward", "fit_keys", "gumbel_noise", "kmeans",
    "laplace_smoothing", "lookup", "lookup_fetch", "merge_chunks", "replace_dead_keys",
    "split_chunk", "train_classifier", "train_values", "voting_decoder",
    "voting_decoder_backward",
]

PAPER = Paper(
    number=29,
    title="Discrete Key-Value Bottleneck",
    arxiv="2207.11240",
    code="ftraeuble/discrete_key_value_bottleneck (PyTorch)",
    hot_paths="kv lookup (defines it)",
    demo="kv-bottleneck",
    demo_summary="class-incremental 2-D toy (Figure 2): the bottleneck keeps >= 0.9 accuracy, "
                 "an MLP and a linear probe forget",
)

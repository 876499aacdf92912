"""The Hyperfitting Phenomenon.

F. Carlsson, F. Liu, D. Ward, M. Kurfali, J. Nivre. *The Hyperfitting Phenomenon: Sharpening
and Stabilizing LLMs for Open-Ended Text Generation*. arXiv 2412.04318 (ICLR 2025).

Official code: FreddeFrallan/Hyperfitting (PyTorch + Hugging Face; ``start_hyperfitting.py``,
``src/data.py``, ``src/training.py``, ``src/validation.py``).

Over-fitting a pretrained causal LM on a few thousand sequences until the training loss is near
zero ("hyperfitting") makes its *greedy* continuations of unseen contexts far less repetitive,
while its validation loss gets worse and its next-token distributions collapse to very low
entropy. This package holds the procedure (splits, the loop with its validation cadence), the
evaluation protocol (greedy continuation of held-out contexts), the paper's metrics and the
citation blocker; the diversity metrics shared with Diverse Beam Search live in
:mod:`refseq.metrics`. Narrative, properties, tests and the demo: ``docs/papers/hyperfitting.md``.

Glossary (N training rows, T tokens per row, V vocabulary, B batch, P context, G generated):

=====================================  =============================================  ===========
paper                                  code                                           shape
=====================================  =============================================  ===========
D = {s^(1), ..., s^(N)}, N = 2000      ``HyperfitSplits.train``                       (N, T)
validation / generation sets           ``HyperfitSplits.val``, ``.gen_val``           (128|32, T)
L(theta; b), labels shifted            :func:`hyperfit` (``lm_loss_and_grad``)        scalar
validation every 250 updates           ``validate_every``, ``(u + 1) % 250 == 0``     -
context c = u_{0:32}                   ``context_len``                                (P,)
greedy y_t = argmax_v p(v | c, y_<t)   :func:`continue_greedy`                        (n, G)
TTR over the last 96 generated tokens  :func:`mean_ttr`, ``type_token_ratio``         scalar
H_t = -sum_v p log(p + 1e-9)           :func:`mean_entropy`                           scalar
val loss, perplexity exp(loss)         :func:`validate`, :func:`perplexity`           scalar
top-1 agreement of two models          :func:`top1_agreement`                         scalar
reference rank r_t of the top-1        :func:`rank_stats`, ``reference_rank``         (...)
NGrams_n(D), blocked set F_t           :class:`NgramIndex`, :class:`CitationBlocker`  -
training-data overlap                  :func:`training_overlap`                       dict
=====================================  =============================================  ===========

Deviations and choices:

* Defaults follow the paper (20 epochs, lr 1e-6, Adam without weight decay); ``preset=
  "official_script"`` gives the code's 30 epochs, lr 5e-6, AdamW (weight decay 0.01).
* ``make_hyperfit_splits(selection="first")`` is the official loader (first qualifying
  documents); ``"random"`` the paper's wording. Too few qualifying documents raise instead of
  silently returning fewer.
* TTR excludes the padding after EOS by default; ``exclude_pad=False`` reproduces the official
  number (which slices the padded ``generate`` output). An empty window raises (official: 0).
* ``LogEntry.train_loss`` averages the updates since the previous entry; the official loop also
  resets its average at every epoch start (every update's loss is kept in
  ``HyperfitLog.train_losses``, so either can be recomputed).
* The citation blocker's n (default 5) and the sampling baseline's top-p (0.95) are not stated
  in the material available (**unconfirmed**) and are parameters.
* The model is the NumPy tiny transformer (no dropout, so ``dropout`` must be 0); the metrics and
  the protocol also take any ``StepLM`` / ``logits_fn``, e.g. a Hugging Face model.
"""

from __future__ import annotations

from refseq.metrics.diversity import distinct_n, type_token_ratio
from refseq.papers import Paper
from refseq.papers.hyperfitting.citation import (
    CitationBlocker,
    NgramIndex,
    citation_blocker,
    longest_common_substring,
    training_overlap,
)
from refseq.papers.hyperfitting.data import (
    SELECTIONS,
    HyperfitSplits,
    epoch_batches,
    make_hyperfit_splits,
)
from refseq.papers.hyperfitting.metrics import (
    mean_entropy,
    mean_ttr,
    perplexity,
    rank_stats,
    reference_rank,
    teacher_forced_logits,
    top1_agreement,
    val_loss,
    validate,
)
from refseq.papers.hyperfitting.protocol import (
    Continuations,
    as_step_lm,
    continue_greedy,
    continue_sample,
)
from refseq.papers.hyperfitting.training import (
    OPTIMIZERS,
    PRESETS,
    HyperfitLog,
    LogEntry,
    evaluate,
    hyperfit,
)

__all__ = [
    "PAPER",
    # data (official src/data.py)
    "SELECTIONS", "HyperfitSplits", "make_hyperfit_splits", "epoch_batches",
    # training (official src/training.py)
    "OPTIMIZERS", "PRESETS", "LogEntry", "HyperfitLog", "evaluate", "hyperfit",
    # protocol (official _generation_validation)
    "Continuations", "as_step_lm", "continue_greedy", "continue_sample",
    # metrics (official src/validation.py and the paper's analyses)
    "teacher_forced_logits", "mean_entropy", "validate", "val_loss", "perplexity", "mean_ttr",
    "top1_agreement", "reference_rank", "rank_stats", "type_token_ratio", "distinct_n",
    # citation blocking
    "NgramIndex", "CitationBlocker", "citation_blocker", "training_overlap",
    "longest_common_substring",
]

PAPER = Paper(
    number=23,
    title="The Hyperfitting Phenomenon",
    arxiv="2412.04318",
    code="FreddeFrallan/Hyperfitting",
    hot_paths="-",
    demo="hyperfitting",
    demo_summary="over-fit a tiny pretrained transformer on 16 sequences: near-zero training "
                 "loss, collapsed entropy, higher validation loss; greedy TTR reported",
)

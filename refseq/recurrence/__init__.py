"""The recurrence hot path: FlashRNN's head-wise RNN time loop (arXiv 2412.07752), NumPy reference.

* :mod:`refseq.recurrence.cells` — ``CELLS`` table, pointwise forward/backward of Elman (tanh,
  relu), LSTM, GRU and sLSTM.
* :mod:`refseq.recurrence.engine` — ``flashrnn_forward`` / ``flashrnn_backward`` (BPTT) /
  ``flashrnn_step``; :mod:`refseq.recurrence.projection` — ``project_inputs`` and
  ``project_inputs_backward``; each with ``backend="numpy" | "jit" | "cuda"``.
* :mod:`refseq.recurrence.layer` — ``rnn_forward`` / ``rnn_backward``: one RNN layer over an
  input sequence (projection + recurrence on one tier), the documented way to run an LSTM.
* :mod:`refseq.recurrence.checks` — the argument checks every tier imports.
* :mod:`refseq.recurrence.layouts` — block-diagonal conversions, layout permutations, torch
  converters.

The compiled twins are :mod:`refseq.jit.recurrence` and :mod:`refseq.cuda.recurrence`.

Contract and cache format: ``docs/hot-paths/recurrence.md``; paper notes:
``docs/papers/flashrnn.md``.
"""

from refseq.recurrence.cells import CELLS, CellSpec, get_cell, pointwise_backward, pointwise_forward
from refseq.recurrence.checks import check_backward_args, check_recurrence_args
from refseq.recurrence.engine import (
    flashrnn_backward,
    flashrnn_forward,
    flashrnn_step,
)
from refseq.recurrence.layer import rnn_backward, rnn_forward
from refseq.recurrence.layouts import (
    elman_from_torch,
    elman_to_torch,
    from_block_diagonal,
    gru_from_torch,
    gru_to_torch,
    lstm_from_torch,
    lstm_to_torch,
    permute_layout,
    round_to_bfloat16,
    to_block_diagonal,
)
from refseq.recurrence.projection import project_inputs, project_inputs_backward

__all__ = [
    "CELLS",
    "CellSpec",
    "check_backward_args",
    "check_recurrence_args",
    "elman_from_torch",
    "elman_to_torch",
    "flashrnn_backward",
    "flashrnn_forward",
    "flashrnn_step",
    "from_block_diagonal",
    "get_cell",
    "gru_from_torch",
    "gru_to_torch",
    "lstm_from_torch",
    "lstm_to_torch",
    "permute_layout",
    "pointwise_backward",
    "pointwise_forward",
    "project_inputs",
    "project_inputs_backward",
    "rnn_backward",
    "rnn_forward",
    "round_to_bfloat16",
    "to_block_diagonal",
]

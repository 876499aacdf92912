"""Recurrent networks: FlashRNN's head-wise recurrence (the RNN hot path) and its cells.

* :mod:`refseq.rnn.cells` — ``CELLS`` registry, pointwise forward/backward of Elman (tanh,
  relu), LSTM, GRU and sLSTM.
* :mod:`refseq.rnn.flashrnn` — ``flashrnn_forward`` / ``flashrnn_backward`` (BPTT) /
  ``flashrnn_step`` / ``project_inputs``; :mod:`refseq.rnn.flashrnn_checks` — the argument
  checks the kernels reuse.
* :mod:`refseq.rnn.layouts` — block-diagonal conversions, layout permutations, torch converters.

Contract and cache format: ``docs/hot-paths/recurrence.md``; paper notes:
``docs/papers/flashrnn.md``.
"""

from refseq.rnn.cells import CELLS, CellSpec, get_cell, pointwise_backward, pointwise_forward
from refseq.rnn.flashrnn import flashrnn_backward, flashrnn_forward, flashrnn_step, project_inputs
from refseq.rnn.flashrnn_checks import check_backward_args, check_recurrence_args
from refseq.rnn.layouts import (
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
    "round_to_bfloat16",
    "to_block_diagonal",
]

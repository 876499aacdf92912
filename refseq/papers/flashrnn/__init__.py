"""FlashRNN: I/O-Aware Optimization of Traditional RNNs on modern hardware.

K. Pöppel, M. Beck, S. Hochreiter. *FlashRNN: Optimizing Traditional RNNs on Modern Hardware*
(v3: *FlashRNN: I/O-Aware Optimization of Traditional RNNs on modern hardware*, ICLR 2025).
arXiv 2412.07752 (2024).

Official code: https://github.com/NX-AI/flashrnn (PyPI ``flashrnn``). Related: NX-AI/xlstm
(origin of the sLSTM cell).

FlashRNN is a fast, exact implementation of traditional non-linear RNNs (Elman, LSTM, GRU) and
of xLSTM's sLSTM, all in one generic form, ``g~_t = Wx_t + R h_{t-1} + b`` followed by a
cell-specific pointwise map, with a head-wise recurrent matrix (N independent (D, D) blocks per
gate). That generic form *is* refseq's recurrence hot path, so this package has no code of its
own: it re-exports :mod:`refseq.recurrence` (NumPy reference), whose compiled twins are
:mod:`refseq.jit.recurrence` and :mod:`refseq.cuda.recurrence` (``backend="jit" | "cuda"``).
Contract and cache format: ``docs/hot-paths/recurrence.md``; paper notes and deviations:
``docs/papers/flashrnn.md``.

Glossary (letters B batch, T time, N heads (the official code's H), D head width, G gates,
S states, I input features; the layout names in quotes are the official code's):

================================  ==============================  =================
paper / official code             code                            shape
================================  ==============================  =================
x_t                               ``x`` (:func:`project_inputs`)  (B, T, I)
W x_t ("BTGHD")                   ``Wx``                          (B, T, G_w, N, D)
R ("GHDP": gate, head, out, in)   ``R``                           (G_r, N, D, D)
b ("GHD")                         ``b``                           (G_t, N, D)
s_t (states, "SBTHD")             ``states_all``                  (S, B, T, N, D)
s_0, s_T                          ``states0``, ``last_states``    (S, B, N, D)
R s^{(0)}_{t-1} (per head)        ``Ry``                          (B, G_r, N, D)
P (pointwise cell)                ``CELLS[cell].forward``         -
i~, f~, z~, o~ (pre-activations)  gate axis of ``Wx`` / ``b``     (B, N, D) each
m, n (sLSTM stabiliser, norm)     states 3 and 2 of ``slstm``     (B, N, D)
h, c                              states 0 and 1                  (B, N, D)
================================  ==============================  =================

Deviations and choices (the equations follow the official code's vanilla PyTorch cells, its
explicit backward and its CUDA pointwise kernels):

* An extra cell ``elman_relu`` (``torch.nn.RNN(nonlinearity="relu")``).
* Mixed float32/float64 inputs are promoted to float64; the official vanilla code downcasts to
  ``Wx.dtype``. bfloat16 is only emulated (``emulate_bfloat16``, ``round_to_bfloat16``).
* sLSTM first step: the branch is elementwise on ``n_{t-1} == 0`` (as the CUDA and Triton
  kernels); the vanilla code uses ``torch.all(n == 0)``. No ``min(1, ·)`` gate clamp by default;
  ``clamp_gates_le_one=True`` gives the CUDA kernels' clamp.
* sLSTM backward: ``m`` is a stop-gradient and ``max(n, 1)`` the identity, as in the official
  code (see ``docs/papers/flashrnn.md`` for what that gradient covers).
* ``gradient_recurrent_clipval`` clips ``R^T δg~`` when it is produced (the official code clips
  it when it is consumed: same result); ``forward_clipval`` is a separate option (tied to the
  gradient clip in the official CUDA code).
* Out of scope: ConstrINT and hardware autotuning, the Triton kernels, fp16/bf16 tensor-core
  paths.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.recurrence import (
    CELLS,
    CellSpec,
    check_backward_args,
    check_recurrence_args,
    elman_from_torch,
    elman_to_torch,
    flashrnn_backward,
    flashrnn_forward,
    flashrnn_step,
    from_block_diagonal,
    get_cell,
    gru_from_torch,
    gru_to_torch,
    lstm_from_torch,
    lstm_to_torch,
    permute_layout,
    pointwise_backward,
    pointwise_forward,
    project_inputs,
    project_inputs_backward,
    rnn_backward,
    rnn_forward,
    round_to_bfloat16,
    to_block_diagonal,
)

__all__ = [
    "PAPER",
    "CELLS", "CellSpec", "get_cell", "pointwise_forward", "pointwise_backward",
    "flashrnn_forward", "flashrnn_backward", "flashrnn_step", "project_inputs",
    "project_inputs_backward", "rnn_forward", "rnn_backward",
    "check_recurrence_args", "check_backward_args",
    "to_block_diagonal", "from_block_diagonal", "permute_layout", "round_to_bfloat16",
    "lstm_from_torch", "lstm_to_torch", "gru_from_torch", "gru_to_torch", "elman_from_torch",
    "elman_to_torch",
]

PAPER = Paper(
    number=7,
    title='FlashRNN: I/O-Aware Optimization of Traditional RNNs on modern hardware',
    arxiv='2412.07752',
    code='https://github.com/NX-AI/flashrnn',
    hot_paths='recurrence (defines it)',
    demo=None,
    demo_summary='',
)

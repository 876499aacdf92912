"""A Novel Predictive-Coding-Inspired Variational RNN Model for Online Prediction and Recognition.

A. Ahmadi, J. Tani. *A Novel Predictive-Coding-Inspired Variational RNN Model for Online
Prediction and Recognition* (PV-RNN). Neural Computation 31(11), 2019; arXiv 1811.01339.

Official code: none released. Closest implementations: the OIST Cognitive Neurorobotics Research
Unit's C++ PV-RNN library as vendored in oist-cnru/T-GLean (``cpp/src``), which this package
follows; h-idei/pvrnn_sa (PyTorch) and h-idei/pvrnn_cpp_sa (C++), Idei et al.'s 2022 variant.

A hierarchical variational RNN: each layer has leaky-integrator (MTRNN) deterministic units and
Gaussian latent units whose posterior is not computed from the data but parameterised by free
"adaptive vectors" A per training sequence and step; a meta-prior w weights the KL term against
the reconstruction error. Error regression infers the A of a sliding window over the latest
observations with the weights frozen, then predicts from the prior. Narrative, tests and the
demo: ``docs/papers/pv-rnn.md``.

Glossary (letters B batch, T time, S training sequences, X output width, D_l deterministic and
Z_l latent units of layer l; layers are indexed 0 = bottom, the paper's l = 1, to L - 1 = top):

==============================  ======================================  ===================
paper                           code                                    shape
==============================  ======================================  ===================
x_t (target), x^_t (output)     ``targets``, ``x_hat``                  (B, T, X)
h_t, d_t = tanh(h_t)            ``cache.h[l]``, ``cache.d[l]``          (B, T, D_l)
z_t, ε_t                        ``cache.z[l]``, ``eps[l]``              (B, T, Z_l)
μ^p, log σ^p (prior)            ``cache.mu_p[l]``, ``cache.a_sg_p[l]``  (B, T, Z_l)
μ^q, log σ^q (posterior)        ``cache.mu_q[l]``, ``cache.a_sg_q[l]``  (B, T, Z_l)
A^μ, A^σ (adaptive vectors)     ``PVRNNLayer.A_mu``, ``A_sg``           (S, T, Z_l)
W_dd, W_zd, W_hd, b_h           ``PVRNNLayer.W_dd`` ...                 (D, D), (D, Z), ...
W_μ, b_μ, W_σ, b_σ (prior)      ``W_mu``, ``b_mu``, ``W_sg``, ``b_sg``  (Z, D), (Z,)
W_out, b_out                    ``PVRNNParams.W_out``, ``b_out``        (X, D_0), (X,)
τ (time constant)               ``PVRNNLayer.tau``                      (D,)
w (meta-prior), β (first step)  ``w``, ``beta`` (one per layer)         -
s (sequence index)              ``seq_index``                           (B,)
window W (error regression)     ``ErrorRegression(window=...)``         -
==============================  ======================================  ===================

Deviations (the paper's text gives the model; where details were open, the OIST library is
followed unless noted):

* The OIST library registers the top-down weights ``W_hd`` only for layer indices > 1, so some
  are never trained; here every ``W_hd`` trains (``freeze_top_down_of=[...]`` reproduces).
* Default initialisation: zero biases and zero A; OIST uses ``bias_init="uniform"``,
  ``A_init="normal"``.
* Minibatches may be ragged (OIST needs S divisible by the batch size).
* Options beyond the paper: the OIST softmax ("sparse") output, Idei et al.'s initialisation of
  A to the prior's pre-activations, a PFSM data generator and a VRNN baseline (linear maps
  instead of Chung et al.'s MLPs, the same MTRNN state and loss normalisation as PV-RNN).
* ``pfsm_sequences`` with primitives of unequal length zero-pads the sequences and can return
  ``(data, symbols, lengths)``.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.pv_rnn.data import (
    SM_REF_RANGE,
    estimate_transition_matrix,
    pfsm_accepts,
    pfsm_sequences,
    softmax_decode,
    softmax_encode,
)
from refseq.papers.pv_rnn.er import ER_NORMALIZATIONS, ErrorRegression, train_pvrnn
from refseq.papers.pv_rnn.loss import (
    NORMALIZATIONS,
    kl_per_step,
    mean_sigma,
    pvrnn_backward,
    pvrnn_loss,
)
from refseq.papers.pv_rnn.model import (
    PVRNNCache,
    draw_eps,
    init_A_from_prior,
    log_softmax_groups,
    output_fc,
    output_softmax_groups,
    pvrnn_forward,
    softmax_groups_textbook,
)
from refseq.papers.pv_rnn.params import (
    TRAINED,
    PVRNNLayer,
    PVRNNParams,
    check_params,
    init_pvrnn,
    named_parameters,
)
from refseq.papers.pv_rnn.vrnn import (
    VRNNParams,
    init_vrnn,
    vrnn_backward,
    vrnn_forward,
    vrnn_generate,
    vrnn_loss,
)

__all__ = [
    "PAPER",
    "TRAINED", "PVRNNLayer", "PVRNNParams", "init_pvrnn", "check_params", "named_parameters",
    "PVRNNCache", "draw_eps", "pvrnn_forward", "init_A_from_prior", "output_fc",
    "output_softmax_groups", "log_softmax_groups", "softmax_groups_textbook",
    "NORMALIZATIONS", "pvrnn_loss", "pvrnn_backward", "kl_per_step", "mean_sigma",
    "ER_NORMALIZATIONS", "train_pvrnn", "ErrorRegression",
    "SM_REF_RANGE", "softmax_encode", "softmax_decode", "pfsm_sequences", "pfsm_accepts",
    "estimate_transition_matrix",
    "VRNNParams", "init_vrnn", "vrnn_forward", "vrnn_generate", "vrnn_loss", "vrnn_backward",
]

PAPER = Paper(
    number=6,
    title='Predictive-coding-inspired variational RNN (PV-RNN)',
    arxiv='1811.01339',
    code='none released (closest: oist-cnru/T-GLean, cpp/src)',
    hot_paths='-',
    demo='pv-rnn',
    demo_summary="the meta-prior's first-order effect on KL and reconstruction",
)

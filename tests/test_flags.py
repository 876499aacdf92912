"""Boolean keyword flags accept only ``bool`` or ``np.bool_`` (``refseq._checks.check_flag``).

One table, ``CASES``, lists every public function whose flags are checked: ``(id, callable,
minimal valid call, flag name)``. Each flag must reject a str ``'False'`` (truthy!), an int ``1``,
``None`` and a 0-d array ``np.array(True)`` (an array, not a bool: rejected by design, pass
``bool(x)``) with a ``TypeError`` that names the flag, and accept ``True``, ``False`` and
``np.True_`` / ``np.False_``.
"""

from __future__ import annotations

import numpy as np
import pytest

from refseq import _checks
from refseq.cuda import recurrence as cuda_rec
from refseq.cuda import scan as cuda_scan
from refseq.cuda.scan import mirror
from refseq.jit import recurrence as jit_rec
from refseq.jit import scan as jit_scan
from refseq.models import tiny_transformer as tt
from refseq.nn import attention, dropout, mlp, softmax_attention
from refseq.papers.aaren import layer as aaren_layer
from refseq.papers.aaren import rnn as aaren_rnn
from refseq.papers.aaren import stack as aaren_stack
from refseq.papers.pv_rnn import data as pv_data
from refseq.papers.pv_rnn import er as pv_er
from refseq.papers.pv_rnn import model as pv_model
from refseq.papers.pv_rnn import params as pv_params
from refseq.papers.recoding import lm as rec_lm
from refseq.papers.recoding import recoder as rec_recoder
from refseq.papers.recoding import training as rec_training
from refseq.papers.rnn_review import analysis
from refseq.papers.rnn_sparsity import graphs as sp_graphs
from refseq.papers.rnn_sparsity import masked as sp_masked
from refseq.papers.rnn_sparsity import models as sp_models
from refseq.papers.rnn_sparsity import pruning as sp_pruning
from refseq.recurrence import engine
from refseq.rnn import elman, lstm
from refseq.scan import assoc, linear, softmax
from refseq.train import sgd

B, T, H, D, N = 2, 3, 2, 3, 2
rng = np.random.default_rng(0)
A = rng.uniform(0.5, 0.9, (B, T, H))
X = rng.standard_normal((B, T, H))
S_ = rng.standard_normal((B, T, H))
V_ = rng.standard_normal((B, T, H, D))


def _rec(cell):
    """Minimal valid engine inputs for ``cell`` and a cache for the backward."""
    from refseq.recurrence.cells import CELLS

    spec = CELLS[cell]
    Wx = 0.3 * rng.standard_normal((B, T, spec.num_gates_w, N, D))
    R = 0.3 * rng.standard_normal((spec.num_gates_r, N, D, D))
    b = 0.1 * rng.standard_normal((spec.num_gates_t, N, D))
    s_all, last, cache = engine.flashrnn_forward(Wx, R, b, cell=cell, return_cache=True)
    return Wx, R, b, np.ones_like(s_all), cache


LSTM_ARGS = _rec("lstm")
SLSTM_ARGS = _rec("slstm")


def fwd(mod, cell="slstm", **kw):
    Wx, R, b, _, _ = SLSTM_ARGS if cell == "slstm" else LSTM_ARGS
    return lambda **f: mod.flashrnn_forward(Wx, R, b, cell=cell, **kw, **f)


def bwd(mod, cell="slstm", **kw):
    _, R, b, d, cache = SLSTM_ARGS if cell == "slstm" else LSTM_ARGS
    return lambda **f: mod.flashrnn_backward(d, None, R, b, cache, cell=cell, **kw, **f)


def step(**f):
    Wx, R, b, _, _ = SLSTM_ARGS
    return engine.flashrnn_step(Wx[:, 0], R, b, np.zeros((4, B, N, D)), cell="slstm", **f)


def kv_step(fn, q_shape):
    def call(**f):
        cache = softmax_attention.kv_cache_init(B, H, D, D)
        q = rng.standard_normal(q_shape)
        return fn(q, rng.standard_normal((B, H, D)), rng.standard_normal((B, H, D)), cache, **f)
    return call


CFG = tt.TinyConfig(11, 8, 2, 2, 16)
TP = tt.init_params(CFG)
HID = rng.standard_normal((T, 8))
LP = lstm.init_lstm_params(rng, 3, 4, peepholes=True)
XL = rng.standard_normal((B, T, 3))
MHA = attention.init_mha_params(rng, 4)
SOFT = assoc.SOFTMAX_TRIPLE
LEAVES = assoc.softmax_leaf(S_, V_)
# papers: recoding (an LSTM LM with dropout, so that train=True draws masks), PV-RNN, sparsity
RLM = rec_lm.LSTMLanguageModel(5, 3, 4, dropout=0.5, rng=0)
TOKS = np.array([[1, 2, 3, 4], [0, 1, 2, 3]])
PRIMS, TRANS = [np.ones((2, 2)), -np.ones((3, 2))], np.full((2, 2), 0.5)
PV = pv_params.init_pvrnn([(3, 2)], 2, 2, 4, 0)
PV_EPS = pv_model.draw_eps(PV, 2, 4, np.random.default_rng(0))
PV_DATA = 0.5 * np.tanh(rng.standard_normal((2, 4, 2)))


def pv_fresh():
    return pv_params.init_pvrnn([(3, 2)], 2, 2, 4, 0)


EDGES = sp_graphs.barabasi_albert(8, 2, np.random.default_rng(0))
PRUNE = sp_models.PruneRNN(3, [4, 3], "RNN_TANH", np.random.default_rng(0))
CLF = sp_models.ReberClassifier(5, 3, sp_models.PruneRNN(3, [4], "RNN_TANH",
                                                         np.random.default_rng(1)),
                                np.random.default_rng(2))
MASKED = sp_masked.MaskedRecurrentLayer(3, 4, "LSTM", np.random.default_rng(0))
XS = rng.standard_normal((2, 3, 3))

CASES = [
    # scans: numpy reference, jit and cuda twins
    ("linear_scan", lambda **f: linear.linear_scan(A, X, **f), "reverse"),
    ("linear_scan", lambda **f: linear.linear_scan(A, X, **f), "check_finite"),
    ("linear_scan_backward", lambda **f: linear.linear_scan_backward(A, X, X, **f), "reverse"),
    ("softmax_scan", lambda **f: softmax.softmax_scan(S_, V_, **f), "check_finite"),
    ("scan_sequential", lambda **f: assoc.scan_sequential(SOFT, LEAVES, **f), "reverse"),
    ("scan_sequential", lambda **f: assoc.scan_sequential(SOFT, LEAVES, **f), "exclusive"),
    ("scan_blelloch", lambda **f: assoc.scan_blelloch(SOFT, LEAVES, **f), "reverse"),
    ("scan_chunked", lambda **f: assoc.scan_chunked(SOFT, LEAVES, chunk=2, **f), "reverse"),
    ("scan_chunked", lambda **f: assoc.scan_chunked(SOFT, LEAVES, chunk=2, **f), "exclusive"),
    ("jit.linear_scan", lambda **f: jit_scan.linear_scan(A, X, **f), "reverse"),
    ("jit.linear_scan", lambda **f: jit_scan.linear_scan(A, X, **f), "check_finite"),
    ("jit.softmax_scan", lambda **f: jit_scan.softmax_scan(S_, V_, **f), "check_finite"),
    ("cuda.linear_scan", lambda **f: cuda_scan.linear_scan(A, X, **f), "reverse"),
    ("cuda.linear_scan", lambda **f: cuda_scan.linear_scan(A, X, **f), "check_finite"),
    ("cuda.softmax_scan", lambda **f: cuda_scan.softmax_scan(S_, V_, **f), "check_finite"),
    # recurrence engine and its twins (sLSTM so that clamp_gates_le_one=True is valid)
    ("flashrnn_step", step, "clamp_gates_le_one"),
    ("flashrnn_step", step, "emulate_bfloat16"),
    ("flashrnn_forward", fwd(engine), "return_cache"),
    ("flashrnn_forward", fwd(engine), "clamp_gates_le_one"),
    ("flashrnn_forward", fwd(engine), "emulate_bfloat16"),
    ("flashrnn_forward", fwd(engine), "check_finite"),
    ("flashrnn_backward", bwd(engine), "gradient_recurrent_cut"),
    ("flashrnn_backward", bwd(engine), "clamp_gates_le_one"),
    ("flashrnn_backward", bwd(engine), "exact_stabiliser"),
    ("jit.flashrnn_forward", fwd(jit_rec), "return_cache"),
    ("jit.flashrnn_forward", fwd(jit_rec), "check_finite"),
    ("jit.flashrnn_forward", fwd(jit_rec), "clamp_gates_le_one"),
    ("jit.flashrnn_backward", bwd(jit_rec), "gradient_recurrent_cut"),
    ("jit.flashrnn_backward", bwd(jit_rec), "clamp_gates_le_one"),
    ("cuda.flashrnn_forward", fwd(cuda_rec), "return_cache"),
    ("cuda.flashrnn_forward", fwd(cuda_rec), "check_finite"),
    ("cuda.flashrnn_forward", fwd(cuda_rec), "clamp_gates_le_one"),
    ("cuda.flashrnn_forward", fwd(cuda_rec), "r_in_shared"),
    ("cuda.flashrnn_backward", bwd(cuda_rec), "gradient_recurrent_cut"),
    ("cuda.flashrnn_backward", bwd(cuda_rec), "clamp_gates_le_one"),
    ("cuda.flashrnn_backward", bwd(cuda_rec), "r_in_shared"),
    # nn
    ("dropout_forward", lambda **f: dropout.dropout_forward(X, 0.5, rng=0, **f), "training"),
    ("init_mha_params", lambda **f: attention.init_mha_params(rng, 4, **f), "bias"),
    ("mha_forward", lambda **f: attention.mha_forward(rng.standard_normal((T, 4)), MHA, 2, **f),
     "rope"),
    ("init_mlp_params", lambda **f: mlp.init_mlp_params(rng, 4, 8, **f), "bias"),
    ("kv_attention_step", kv_step(softmax_attention.kv_attention_step, (B, H, D)),
     "check_finite"),
    ("kv_single_query_step", kv_step(softmax_attention.kv_single_query_step, (H, D)),
     "check_finite"),
    # rnn
    ("init_lstm_params", lambda **f: lstm.init_lstm_params(rng, 3, 4, **f), "peepholes"),
    ("lstm_forward", lambda **f: lstm.lstm_forward(XL, LP, **f), "forget_gate"),
    ("lstm_forward", lambda **f: lstm.lstm_forward(XL, LP, **f), "peepholes"),
    ("LSTMLayer", lambda **f: lstm.LSTMLayer(LP._asdict(), **f), "forget_gate"),
    ("LSTMLayer", lambda **f: lstm.LSTMLayer(LP._asdict(), **f), "peepholes"),
    ("elman_forward", lambda **f: elman.elman_forward(
        XL, 0.3 * np.ones((4, 3)), 0.1 * np.eye(4), np.zeros(4), **f), "use_engine"),
    # models/tiny_transformer
    ("lm_head", lambda **f: tt.lm_head(TP, HID, **f), "return_cache"),
    ("forward_layers", lambda **f: tt.forward_layers(TP, HID, 0, 1, **f), "return_hidden"),
    ("forward_layers", lambda **f: tt.forward_layers(TP, HID, 0, 1, **f), "return_cache"),
    ("forward", lambda **f: tt.forward(TP, np.arange(T), **f), "return_hidden"),
    ("forward", lambda **f: tt.forward(TP, np.arange(T), **f), "return_cache"),
    ("kv_from_hidden", lambda **f: tt.kv_from_hidden(TP, np.stack([HID] * 2), **f),
     "return_cache"),
    # train
    ("SGD", lambda **f: sgd.SGD(0.1, momentum=0.9, **f), "nesterov"),
    # papers
    ("aaren_cell_step", lambda **f: aaren_rnn.aaren_cell_step(
        aaren_rnn.softmax_state_init(B, H, D), S_[:, 0], V_[:, 0], **f), "check_finite"),
    ("aaren_recurrent", lambda **f: aaren_rnn.aaren_recurrent(S_, V_, **f), "check_finite"),
    ("aaren_scan", lambda **f: aaren_rnn.aaren_scan(
        rng.standard_normal((H, D)), rng.standard_normal((B, T, H, D)), V_, **f), "check_finite"),
    ("init_aaren_params", lambda **f: aaren_layer.init_aaren_params(rng, 4, 2, 2, 2, **f),
     "bias"),
    ("init_aaren_block_params", lambda **f: aaren_stack.init_aaren_block_params(
        rng, 4, 2, 2, 2, **f), "bias"),
    ("init_aaren_stack_params", lambda **f: aaren_stack.init_aaren_stack_params(
        rng, 2, 4, 2, 2, 2, **f), "bias"),
    ("lstm_step_jacobians", lambda **f: analysis.lstm_step_jacobians(XL, LP, **f),
     "forget_gate"),
    ("lstm_step_jacobians", lambda **f: analysis.lstm_step_jacobians(XL, LP, **f), "peepholes"),
    ("lstm_state_jacobian", lambda **f: analysis.lstm_state_jacobian(XL, LP, **f),
     "forget_gate"),
    ("lstm_state_jacobian", lambda **f: analysis.lstm_state_jacobian(XL, LP, **f), "peepholes"),
    # models/tiny_transformer config
    ("TinyConfig", lambda **f: tt.TinyConfig(11, 8, 2, 2, 16, **f), "tied_head"),
    ("TinyConfig", lambda **f: tt.TinyConfig(11, 8, 2, 2, 16, **f), "rope"),
    # papers/recoding
    ("LSTMLanguageModel.step", lambda **f: RLM.step(TOKS[:, 0], rng=0, **f), "train"),
    ("LSTMLanguageModel.forward", lambda **f: RLM.forward(TOKS, rng=0, **f), "train"),
    ("RecodingLM", lambda **f: rec_recoder.RecodingLM(RLM, "surprisal", 0.1, **f), "redecode"),
    ("RecodingLM.step", lambda **f: rec_recoder.RecodingLM(RLM, "surprisal", 0.1).step(
        TOKS[:, 0], rng=0, **f), "train"),
    ("perplexity", lambda **f: rec_training.perplexity(RLM, TOKS, **f), "gold_for_surprisal"),
    ("recoding_loss_and_grad", lambda **f: rec_training.recoding_loss_and_grad(
        rec_recoder.RecodingLM(RLM, "surprisal", 0.1), TOKS, rng=0, **f), "train"),
    ("recoding_loss_and_grad", lambda **f: rec_training.recoding_loss_and_grad(
        rec_recoder.RecodingLM(RLM, "surprisal", 0.1), TOKS, rng=0, **f), "gold_for_surprisal"),
    # papers/pv_rnn
    ("pfsm_sequences", lambda **f: pv_data.pfsm_sequences(PRIMS, TRANS, 2, 2, 0, **f),
     "return_symbols"),
    ("named_parameters", lambda **f: pv_params.named_parameters(PV, **f), "with_A"),
    ("pvrnn_forward", lambda **f: pv_model.pvrnn_forward(PV, PV_EPS, np.arange(2), **f),
     "unit_first"),
    ("pvrnn_forward", lambda **f: pv_model.pvrnn_forward(pv_fresh(), PV_EPS, np.arange(2), **f),
     "set_A_to_prior"),
    ("train_pvrnn", lambda **f: pv_er.train_pvrnn(pv_fresh(), PV_DATA, 1, rng=0, **f),
     "A_init_from_prior"),
    ("ErrorRegression", lambda **f: pv_er.ErrorRegression(PV, 2, 1, rng=0, **f), "growing_window"),
    ("ErrorRegression", lambda **f: pv_er.ErrorRegression(PV, 2, 1, rng=0, **f), "resample_eps"),
    # papers/rnn_sparsity
    ("barabasi_albert", lambda **f: sp_graphs.barabasi_albert(
        8, 2, np.random.default_rng(0), **f), "use_networkx"),
    ("connected_watts_strogatz", lambda **f: sp_graphs.connected_watts_strogatz(
        8, 2, 0.5, 5, np.random.default_rng(0), **f), "use_networkx"),
    ("thesis_graph", lambda **f: sp_graphs.thesis_graph("ba", np.random.default_rng(0), **f),
     "use_networkx"),
    ("adjacency", lambda **f: sp_graphs.adjacency(8, EDGES, **f), "directed"),
    ("magnitude_masks", lambda **f: sp_pruning.magnitude_masks(PRUNE, 50.0, **f), "i2h"),
    ("magnitude_masks", lambda **f: sp_pruning.magnitude_masks(PRUNE, 50.0, **f), "h2h"),
    ("sparsity", lambda **f: sp_pruning.sparsity(PRUNE, **f), "i2h"),
    ("sparsity", lambda **f: sp_pruning.sparsity(PRUNE, **f), "h2h"),
    ("MaskedRecurrentLayer.forward", lambda **f: MASKED.forward(XS, **f), "return_cache"),
    ("PruneRNN.forward", lambda **f: PRUNE.forward(XS, **f), "return_cache"),
    ("ReberClassifier.forward", lambda **f: CLF.forward(TOKS, np.array([4, 3]), **f),
     "return_cache"),
    # cuda NumPy mirrors
    ("mirror.linear_scan_sequential", lambda **f: mirror.linear_scan_sequential(A, X, **f),
     "reverse"),
    ("mirror.linear_scan_blocked", lambda **f: mirror.linear_scan_blocked(A, X, **f), "reverse"),
]

# Tri-state flags whose default None means "choose for me" (None is valid, the rest is not).
NONE_VALID = {"r_in_shared", "redecode"}

BAD = [("'False'", "False", "str"), ("1", 1, "int"), ("None", None, "NoneType"),
       ("np.array(True)", np.array(True), "ndarray")]
IDS = [f"{name}-{flag}" for name, _, flag in CASES]


@pytest.mark.parametrize("name,call,flag", CASES, ids=IDS)
@pytest.mark.parametrize("shown,bad,type_name", BAD, ids=[b[0] for b in BAD])
def test_non_bool_flag_raises_type_error(name, call, flag, shown, bad, type_name):
    if bad is None and flag in NONE_VALID:
        call(**{flag: None})
        return
    with pytest.raises(TypeError) as info:
        call(**{flag: bad})
    msg = str(info.value)
    assert msg.startswith(f"{flag} must be a bool (True or False)"), msg
    assert f"({type_name})" in msg, msg


def _structure(x):
    """Types, shapes and dtypes of a (nested) result: what a flag's value may not change
    between a Python bool and the NumPy bool of the same truth value."""
    if isinstance(x, np.ndarray):
        return ("ndarray", x.shape, x.dtype.str)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(_structure(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple((k, _structure(v)) for k, v in sorted(x.items())))
    return type(x).__name__


@pytest.mark.parametrize("name,call,flag", CASES, ids=IDS)
@pytest.mark.parametrize("value", [True, False], ids=["True", "False"])
def test_bool_flag_accepted(name, call, flag, value):
    """Python and NumPy booleans are accepted and give results of the same structure."""
    as_python = call(**{flag: value})
    as_numpy = call(**{flag: np.bool_(value)})
    assert _structure(as_numpy) == _structure(as_python)


def test_check_flag_returns_python_bool():
    assert _checks.check_flag(np.True_, "x") is True
    assert _checks.check_flag(False, "x") is False
    with pytest.raises(TypeError, match=r"reverse must be a bool \(True or False\), "
                                        r"got 'False' \(str\)"):
        _checks.check_flag("False", "reverse")


def test_string_false_no_longer_reverses():
    """The bug: ``reverse='False'`` ran the scan reversed on every tier."""
    for fn in (linear.linear_scan, jit_scan.linear_scan, cuda_scan.linear_scan):
        with pytest.raises(TypeError, match="reverse"):
            fn(A, X, reverse="False")

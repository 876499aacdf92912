"""Number, dtype and option keywords of the RNN-sparsity reference are checked and named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.papers.rnn_sparsity import graphs, masked, models, predict, pruning

G = np.random.default_rng(0)
PRUNE = models.PruneRNN(3, [4], "RNN_TANH", np.random.default_rng(0))

CASES = [
    ("ba-n-float", lambda **k: graphs.barabasi_albert(m=2, rng=G, **k), dict(n=8.0), TypeError,
     "n must be an integer"),
    ("ws-p-nan", lambda **k: graphs.watts_strogatz(8, 2, rng=G, **k), dict(p=math.nan),
     ValueError, "p must be a finite number"),
    ("ws-k-str", lambda **k: graphs.watts_strogatz(8, p=0.5, rng=G, **k), dict(k="2"),
     TypeError, "k must be an integer"),
    ("cws-tries", lambda **k: graphs.connected_watts_strogatz(8, 2, 0.5, rng=G, **k),
     dict(tries=1.5), TypeError, "tries"),
    ("thesis_graph-generator", lambda **k: graphs.thesis_graph(rng=G, **k),
     dict(generator="er"), ValueError, "generator"),
    ("percentile-percent", lambda **k: pruning.percentile_threshold([np.ones(3)], **k),
     dict(percent=math.nan), ValueError, "percent"),
    ("magnitude_masks-percent", lambda **k: pruning.magnitude_masks(PRUNE, **k),
     dict(percent="50"), TypeError, "percent"),
    ("layer-hidden_size", lambda **k: masked.MaskedRecurrentLayer(3, mode="GRU", rng=G, **k),
     dict(hidden_size=4.0), TypeError, "hidden_size"),
    ("layer-dtype", lambda **k: masked.MaskedRecurrentLayer(3, 4, "GRU", G, **k),
     dict(dtype=np.int32), TypeError, "dtype"),
    ("PruneRNN-hidden", lambda **k: models.PruneRNN(3, mode="GRU", rng=G, **k),
     dict(hidden_layers=(4, 0)), ValueError, r"hidden_layers\[1\]"),
    ("Reber-embed_dim", lambda **k: models.ReberClassifier(5, rnn=PRUNE, rng=G, **k),
     dict(embed_dim=3.0), TypeError, "embed_dim"),
    ("split-test_size", lambda **k: predict.train_test_split(10, **k), dict(test_size=1.5),
     ValueError, "test_size"),
    ("bayesian_ridge-tol", lambda **k: predict.bayesian_ridge(np.ones((4, 2)), np.ones(4), **k),
     dict(tol=math.nan), ValueError, "tol"),
    ("fit_predict-regressor", lambda **k: predict.fit_predict_r2(np.ones((4, 2)), np.ones(4),
                                                                 **k),
     dict(regressor=None), TypeError, "regressor"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)

"""The small-scale result of docs/decoding.md: on random_markov_lm(V=30, alpha=0.1) with an EOS of
probability 0.05 in every row, length_penalty=0 returns shorter outputs than length_penalty=1
(normalisation removes the bias toward short hypotheses). The greedy-vs-beam numbers next to it
in the docs are reported, not asserted: beam search is not monotone in B."""

from __future__ import annotations

import numpy as np

from refseq.decoding import beam_search
from refseq.models.toy_lm import TabularLM, random_markov_lm


def test_length_normalisation_removes_the_bias_toward_short_hypotheses():
    p = np.exp(random_markov_lm(30, 0.1, seed=0).table)  # (30, 30)
    p[:, 0] = 0
    p = 0.95 * p / p.sum(axis=1, keepdims=True)
    p[:, 0] = 0.05  # EOS = 0 with probability 0.05 after every token
    lm = TabularLM(2, np.log(p), eos_id=0)
    prompts = [np.array([t]) for t in np.random.default_rng(0).integers(1, 30, 200)]
    mean_len = {}
    for alpha in (0.0, 1.0):
        out = beam_search(lm, prompts, num_beams=8, max_new_tokens=10, eos_ids=(0,),
                          length_penalty=alpha)
        mean_len[alpha] = np.mean([len(h[0].tokens) for h in out])
    # without normalisation one EOS step (log 0.05 = -3.0) beats any continuation of ten
    # tokens here, so the raw-score search stops at once; normalised, it runs to the limit
    assert mean_len[0.0] < mean_len[1.0]
    assert mean_len[0.0] == 1.0

"""Cross-checks against the released ADED code (doquangg/Adaptix, the authors' commits), as
ports in this folder: ``rust_port.py`` (``cut_to_choices``, ``get_draft_choices``,
``generate_draft_buffers``, ``MCTS::run`` + ``Reader::search``) and ``rest_torch_port.py``
(the nucleus sampling path of ``aded/model/utils.py``, run with torch)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.buffers import ancestor_mask, retrieve_paths
from refseq.decoding.speculative.engine import speculative_generate
from refseq.decoding.speculative.target import TabularTreeLM
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.aded import cut_to_choices, paths_to_tree, rest_nucleus_emission
from refseq.papers.aded.adaptation import adapt
from refseq.papers.aded.demo import toy_corpus, toy_target
from refseq.papers.aded.generate import aded_generate
from refseq.papers.aded.trigram import TrigramMatrix

from . import rust_port
from .rest_torch_port import released_steps

paths_st = st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=4), min_size=1,
                    max_size=25, unique_by=tuple)


@given(paths_st, st.integers(0, 60))
def test_cut_to_choices_matches_the_rust_port(paths, choices):
    assert cut_to_choices(paths, choices) == rust_port.cut_to_choices(paths, choices)


def _node_paths(tokens, parents):
    out = [()]
    for i in range(1, len(tokens)):
        out.append(out[parents[i]] + (tokens[i],))
    return out


@given(paths_st)
def test_trie_matches_the_released_buffers(paths):
    """Same root-to-node token paths and the same ancestor structure as the released
    ``get_draft_choices`` + ``generate_draft_buffers`` (tries of <= 64 drafts; node numbering
    differs: the release orders nodes by first-appearance indices)."""
    tokens, parents = rust_port.released_tree(paths)
    tree = paths_to_tree(0, paths)
    ref = _node_paths(tokens, parents)
    ours = _node_paths(tree.tokens.tolist(), tree.parents.tolist())
    assert len(ref) == len(set(ref)) and set(ref) == set(ours)
    choices, topk = rust_port.get_draft_choices(paths)
    mask, _, pos, _ = rust_port.generate_draft_buffers(choices, topk)
    perm = [ours.index(p) for p in ref]  # our node for each released row
    assert np.array_equal(np.array(mask, bool), ancestor_mask(tree)[np.ix_(perm, perm)])
    assert pos == [len(p) for p in ref]


class RustPortDrafter:
    """The ported released search as a Drafter (hash orders from a seeded generator)."""

    def __init__(self, matrix, rng):
        self.matrix, self.rng, self.sizes, self.lengths = matrix, rng, [], []

    def start(self, prompt, outputs=None):
        pass

    def draft(self, context, root):
        seq = [int(t) for t in context] + [int(root)]
        adapt(self.matrix, np.array(seq))
        paths = rust_port.rust_search(self.matrix.table, seq, self.rng) if len(seq) > 1 else []
        if not paths:
            return DraftTree.chain(root, np.zeros(0, np.int64)), None, "point"
        tokens, parents = rust_port.released_tree(paths)
        tree = DraftTree(np.array(parents), np.array([root] + tokens[1:]))
        self.sizes.append(tree.num_nodes)
        self.lengths += [len(p) for p in paths]
        return tree, None, "point"

    def observe(self, *args):
        pass


def test_mat_and_tree_statistics_match_the_ported_release():
    lm = toy_target(64)
    target = TabularTreeLM(lm)
    corpus = TrigramMatrix.build(toy_corpus(lm, 300, 64), 12)
    prompt = np.random.default_rng(50).integers(0, 64, 8)
    port = RustPortDrafter(corpus.copy(), np.random.default_rng(1))
    _, st_port = speculative_generate(target, port, prompt, 64)
    _, st_ref = aded_generate(target, prompt, 64, corpus.copy(), return_rule="released",
                              mcts_rng=0)
    assert abs(st_ref.mat - st_port.tokens_per_call) < 0.10 * st_port.tokens_per_call
    ref_sizes = [h["tree_size"] for h in st_ref.drafter]
    assert abs(np.mean(ref_sizes) - np.mean(port.sizes)) < 0.15 * np.mean(port.sizes)
    assert max(port.lengths) == 4 and max(st_ref.spec.depth) == 4


def test_released_nucleus_path_matches_the_exact_law():
    torch = pytest.importorskip("torch")
    tree = DraftTree(np.array([-1, 0, 0, 1]), np.array([0, 1, 2, 2]))  # paths [1, 2], [2]
    z = np.log(np.array([[0.35, 0.3, 0.25, 0.1], [0.2, 0.1, 0.6, 0.1],
                         [0.3, 0.3, 0.3, 0.1], [0.4, 0.3, 0.2, 0.1]]))
    T, top_p = 1.0, 0.85  # drops token 3 everywhere (cumulative mass reaches 0.85 before it)
    exact = rest_nucleus_emission(tree, warped_probs(z, temperature=T, top_p=top_p))
    retrieve, _ = retrieve_paths(tree)
    R = 20_000
    got = released_steps(torch, torch.tensor(z), torch.tensor(retrieve.astype(np.int64)),
                         torch.tensor(tree.tokens.astype(np.int64)), R, T, top_p, seed=0)
    freq = Counter(dict(got))
    assert set(freq) <= set(exact)
    for e, m in exact.items():  # 4.5 standard errors
        assert abs(freq[e] / R - m) < 4.5 * np.sqrt(m * (1 - m) / R) + 1e-9

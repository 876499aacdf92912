"""The after-the-walk check of the probability rows (``refseq.tree_verify.checks``).

``tree_verify_stochastic`` validates only the rows its walk read: ``target_probs`` at every node
of the accepted path and ``draft_probs`` where such a node has children. Every tier must raise
the same message for the same bad row, name the first bad row in walk order, and leave a bad row
that no walk reads without effect (the outputs equal those with a valid row there).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from refseq import tree_verify as tv
from refseq.tree_verify import checks
from refseq.tree_verify import reference as ref

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

TIERS = ["numpy", "jit", "cuda"]
# the simulator runs a block of threads in Python threads (seconds per call): two cases of each
CUDA_CASES = {("nan", "target_probs"), ("unnormalised", "draft_probs")}


def _two_trees(dtype=np.float64, mode=0):
    """Tree 0: root -> {1, 2}, 1 -> 3; tree 1: root -> 1 -> 2 (a chain). V = 4.

    The uniforms are chosen so that the walks are known by hand: tree 0 accepts node 1
    (u * Q(y) = 0.1 * 0.25 < P(y) = 0.25), then rejects node 3 (u = 0.99, Q(y) = 1 > P(y) = 0.25
    in every mode), so its path is [0, 1] and node 2 is never tested; tree 1 rejects node 1 at
    once (P(y) = 0), path [0].
    """
    parents = np.array([[-1, 0, 0, 1], [-1, 0, 1, -2]], np.int32)
    tokens = np.array([[0, 1, 2, 3], [0, 2, 1, -1]], np.int32)
    target = np.full((2, 4, 4), 0.25, dtype)
    target[1, 0] = [0.5, 0.5, 0.0, 0.0]  # tree 1: token 2 has target probability 0
    draft = np.full((2, 4, 4), 0.25, dtype)
    draft[0, 1] = [0.0, 0.0, 0.0, 1.0]  # node 3 (token 3) was drawn from this row
    u_accept = np.array([[0.5, 0.1, 0.5, 0.99], [0.5, 0.5, 0.5, 0.5]])
    return dict(parents=parents, tokens=tokens, target_probs=target, draft_probs=draft,
                mode=mode, virtual=None, u_accept=u_accept, u_final=np.array([0.3, 0.7]),
                num_nodes=np.array([4, 3], np.int32))


def _with(kw, name, b, i, value):
    x = kw[name].copy()
    x[b, i] = value
    return {**kw, name: x}


def test_rows_read_lists_the_path_rows_by_hand():
    kw = _two_trees()
    path, num_acc, _ = tv.tree_verify_stochastic(**kw)
    assert path.tolist() == [[0, 1, -1], [0, -1, -1]] and num_acc.tolist() == [1, 0]
    b, i, is_draft = checks.rows_read(kw["parents"], kw["num_nodes"], 0, path, num_acc)
    # tree 0: target 0, draft 0 (root has children), target 1, draft 1 (node 1 has child 3);
    # tree 1: target 0, draft 0
    assert list(zip(b.tolist(), i.tolist(), is_draft.tolist())) == [
        (0, 0, False), (0, 0, True), (0, 1, False), (0, 1, True), (1, 0, False), (1, 0, True)]
    _, _, is_draft = checks.rows_read(kw["parents"], kw["num_nodes"], 2, path, num_acc)
    assert not is_draft.any()  # point mode never reads draft_probs


BAD = [("nan", np.nan, "must be finite; found nan at index (0, 1, 0)"),
       ("inf", np.inf, "must be finite; found inf at index (0, 1, 0)"),
       ("negative", [-0.25, 0.75, 0.25, 0.25], "must be >= 0 (probabilities), found -0.25 in "),
       ("logits", [2.0, -1.0, 0.5, 0.3], "must be >= 0 (probabilities)"),
       ("unnormalised", [0.5, 0.5, 0.5, 0.5], "[0, 1] must sum to 1 (a probability row), sums "
                                               "to 2")]


BAD_CASES = [pytest.param(backend, name, *case, id=f"{backend}-{name}-{case[0]}")
             for backend in TIERS for name in ("target_probs", "draft_probs") for case in BAD
             if backend != "cuda" or (case[0], name) in CUDA_CASES]


@pytest.mark.parametrize("backend, name, what, value, message", BAD_CASES)
def test_a_bad_row_on_the_path_raises_the_same_message_on_every_tier(backend, name, what, value,
                                                                     message):
    kw = _with(_two_trees(), name, 0, 1, value)
    with pytest.raises(ValueError, match=re.escape(name)) as exc:
        tv.tree_verify_stochastic(**kw, backend=backend)
    text = str(exc.value)
    assert message in text and text.startswith(name), text
    with pytest.raises(ValueError) as exc_np:
        tv.tree_verify_stochastic(**kw)
    assert str(exc_np.value) == text


@pytest.mark.parametrize("backend", TIERS)
def test_the_first_bad_row_in_walk_order_is_named(backend):
    kw = _with(_with(_two_trees(), "target_probs", 1, 0, np.nan), "draft_probs", 0, 1, np.nan)
    with pytest.raises(ValueError, match=re.escape("draft_probs must be finite; found nan at "
                                                   "index (0, 1, 0)")):
        tv.tree_verify_stochastic(**kw, backend=backend)


@pytest.mark.parametrize("backend", TIERS)
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_rows_no_walk_reads_do_not_change_the_outputs(backend, mode):
    kw = _two_trees(mode=mode)
    want = tv.tree_verify_stochastic(**kw)
    assert want[0].tolist() == [[0, 1, -1], [0, -1, -1]]  # the hand walk holds in every mode
    bad = kw
    for b, i in [(0, 2), (0, 3), (1, 1), (1, 2)]:  # never on a path
        bad = _with(_with(bad, "target_probs", b, i, np.nan), "draft_probs", b, i, -1.0)
    bad = _with(bad, "draft_probs", 1, 0, 7.0) if mode == 2 else bad  # point: never read
    for g, w in zip(tv.tree_verify_stochastic(**bad, backend=backend), want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_and_jit_row_status_agree(dtype):
    jit = pytest.importorskip("refseq.jit.tree_verify")
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(5), (3, 4)).astype(dtype)  # (3, 4, 5)
    x[0, 1, 2] = np.nan
    x[1, 2] = [0.5, -0.1, 0.2, 0.2, 0.2]
    x[2, 3] *= 1.5
    x[2, 0, 1] = -np.inf
    b, i = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
    want = np.zeros(12, np.int8)
    want[[1, 6, 11, 8]] = [1, 2, 3, 1]  # rows (0,1), (1,2), (2,3), (2,0) by hand
    np.testing.assert_array_equal(checks.row_status(x, b, i), want)
    np.testing.assert_array_equal(jit.row_status(x, b, i), want)


def test_draw_of_a_row_without_mass_returns_minus_one():
    assert ref.draw(np.zeros(4), 0.5) == -1
    assert ref.draw(np.array([0.0, 0.3, 0.0, 0.7]), 0.99) == 3

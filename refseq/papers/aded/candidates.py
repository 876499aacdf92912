"""From candidate continuations to one draft tree (arXiv 2407.12021, Sec. 3; the released
``cut_to_choices``, ``get_draft_choices`` and ``generate_draft_buffers`` of
``DraftRetriever/src/lib.rs``), plus the paper's two ablation drafters (greedy search and full
traversal of the tri-gram table instead of the tree search).

- :func:`cut_to_choices`: the released pruning rule. Paths are sorted by their number of
  *distinct* tokens, descending (stable), and dropped from the front while the total of those
  counts exceeds ``choices``. It drops the paths with the most distinct tokens first, which looks
  inverted but is what the released code does (``rule="released"``); ``rule="keep_longest"``
  drops the ones with the fewest first.
- :func:`paths_to_tree`: the trie of the paths (shared prefixes once), nodes in ``(len, tokens)``
  order, truncated to ``max_nodes`` drafts (a prefix-closed cut: a prefix sorts before its
  extensions). The Rust code orders the nodes by per-depth first-appearance indices of a
  ``HashSet``-ordered path list instead, so the 64 kept nodes of a larger trie can differ.
- :func:`draft_greedy_chain`, :func:`draft_full_traversal`: the ablation drafters.
"""

from __future__ import annotations

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.aded.trigram import TrigramMatrix, _pair

__all__ = ["CUT_RULES", "cut_to_choices", "draft_full_traversal", "draft_greedy_chain",
           "paths_to_tree"]

CUT_RULES = ("released", "keep_longest")


def _token_paths(paths, name="paths") -> list:
    if not isinstance(paths, (list, tuple)):
        raise TypeError(f"{name} must be a list of token lists, got {type(paths).__name__}")
    out = []
    for k, p in enumerate(paths):
        if not isinstance(p, (list, tuple)) and not hasattr(p, "tolist"):
            raise TypeError(f"{name}[{k}] must be a sequence of token ids, got "
                            f"{type(p).__name__}")
        if getattr(p, "ndim", 1) != 1:
            raise ValueError(f"{name}[{k}] must be a 1-d sequence of token ids, got an array "
                            f"of shape {p.shape}")
        toks = list(p.tolist() if hasattr(p, "tolist") else p)
        for t in toks:
            _checks.check_number(t, f"{name}[{k}] tokens", integer=True, low=0)
        if not toks:
            raise ValueError(f"{name}[{k}] is empty (candidate continuations hold >= 1 token)")
        out.append([int(t) for t in toks])
    return out


def cut_to_choices(paths, choices=64, rule="released") -> list:
    """Drop whole paths until the summed distinct-token counts are ``<= choices``.

    Parameters
    ----------
    paths : list of token lists
    choices : int >= 0
        The released Python passes 64 (``max_num_draft``); the Rust default is 24.
    rule : {"released", "keep_longest"}
        Which paths go first: most distinct tokens (released) or fewest.

    Returns
    -------
    list of token lists, the survivors in their input order.
    """
    paths = _token_paths(paths)
    choices = _checks.check_number(choices, "choices", integer=True, low=0)
    rule = _checks.check_choice(rule, "rule", CUT_RULES)
    sign = -1 if rule == "released" else 1
    order = sorted(range(len(paths)), key=lambda i: sign * len(set(paths[i])))  # stable
    total = sum(len(set(p)) for p in paths)
    drop = set()
    for i in order:
        if total <= choices:
            break
        total -= len(set(paths[i]))
        drop.add(i)
    return [p for i, p in enumerate(paths) if i not in drop]


def paths_to_tree(root_token, paths, max_nodes=64, *, fallback_token=None) -> DraftTree:
    """The trie of ``paths`` below ``root_token``, at most ``max_nodes`` drafted nodes.

    Every distinct prefix of a path is a node; nodes are kept in ``(len, tokens)`` order up to
    ``max_nodes`` (prefix closed), and :meth:`DraftTree.from_paths` numbers them in that order.
    With no path the tree is the root alone, or ``root -> fallback_token`` when that is given
    (the released Python drafts the hard-coded token 100 there).
    """
    root_token = _checks.check_number(root_token, "root_token", integer=True, low=0)
    paths = _token_paths(paths)
    max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=0)
    fallback_token = _checks.check_number(fallback_token, "fallback_token", integer=True, low=0,
                                          allow_none=True)
    prefixes = {tuple(p[:k]) for p in paths for k in range(1, len(p) + 1)}
    kept = sorted(prefixes, key=lambda s: (len(s), s))[:max_nodes]
    if not kept and fallback_token is not None and max_nodes > 0:
        kept = [(fallback_token,)]
    return DraftTree.from_paths(root_token, kept)


def draft_greedy_chain(matrix, root_pair, length) -> list:
    """Ablation "greedy search": follow the arg-max successor ``length`` times (fewer when a
    context has none). -> one path ``[[c_1, ..., c_k]]`` or ``[]``."""
    _checks.check_instance(matrix, TrigramMatrix, "matrix")
    a, b = _pair(root_pair, matrix.vocab_size, "root_pair")
    length = _checks.check_number(length, "length", integer=True, low=0)
    out = []
    for _ in range(length):
        nxt = matrix.successors((a, b))
        if not nxt:
            break
        a, b = b, nxt[0]
        out.append(b)
    return [out] if out else []


def draft_full_traversal(matrix, root_pair, depth, max_nodes) -> list:
    """Ablation "full traversal": breadth-first over every successor (successor order) down to
    ``depth`` tokens until ``max_nodes`` nodes exist. -> the node paths in BFS order."""
    _checks.check_instance(matrix, TrigramMatrix, "matrix")
    root_pair = _pair(root_pair, matrix.vocab_size, "root_pair")
    depth = _checks.check_number(depth, "depth", integer=True, low=0)
    max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=0)
    out, frontier = [], [(root_pair, [])]
    while frontier and len(out) < max_nodes:
        nxt = []
        for (a, b), path in frontier:
            if len(path) >= depth:
                continue
            for c in matrix.successors((a, b)):
                if len(out) == max_nodes:
                    break
                out.append(path + [c])
                nxt.append(((b, c), path + [c]))
        frontier = nxt
    return out

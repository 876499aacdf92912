"""NumPy/Python ports of the released ADED code (doquangg/Adaptix, the authors' commits:
``DraftRetriever/src/lib.rs`` and ``src/mcts_sub.rs``), written for the tests.

Ported line by line, quirks included: ``cut_to_choices`` (exact), ``get_draft_choices`` and
``generate_draft_buffers`` (exact, given the path order), and ``MCTS::run`` with the Rust
``HashMap`` iteration order replaced by a seeded random permutation (the Rust order is random
per process), the expansion into the *last* child, the return ``state[i + 1].0`` and the
``max_by`` greedy extension (last maximum in iteration order). ``Reader::search`` de-duplicates
through a ``HashSet``; the port shuffles the de-duplicated list with the same generator.
"""

from __future__ import annotations

import math

C1, C2 = 32.0, 8.0


def cut_to_choices(paths, choices):
    """``lib.rs::cut_to_choices``."""
    count = [(len(set(p)), paths.index(p)) for p in paths]
    count.sort(key=lambda x: -x[0])  # Rust sort_by is stable
    total = sum(c for c, _ in count)
    to_remove = []
    for c, i in count:
        if total > choices:
            total -= c
            to_remove.append(i)
        else:
            break
    return [p for i, p in enumerate(paths) if i not in to_remove]


def get_draft_choices(paths):
    """``lib.rs::get_draft_choices`` -> (draft choices as index paths, max_branch)."""
    path_dict, cnt = {}, {}
    max_depth = max(len(p) for p in paths)
    for d in range(max_depth):
        cnt[d] = 0
    for path in paths:
        for d, item in enumerate(path):
            cur = path_dict.setdefault(d, {})
            if item not in cur:
                cur[item] = cnt[d]
                cnt[d] += 1
    max_branch = max(len(v) for v in path_dict.values())
    choices = set()
    for path in paths:
        for d in range(len(path)):
            choices.add(tuple(path_dict[k][path[k]] for k in range(d + 1)))
    return [list(c) for c in choices], max_branch


def generate_draft_buffers(draft_choices, topk):
    """``lib.rs::generate_draft_buffers`` -> (attn_mask, tree_indices, position_ids,
    retrieve_indices) as nested lists."""
    s = sorted(draft_choices, key=lambda c: (len(c), c))[:64]
    draft_len = len(s) + 1
    depth_counts = [0] * draft_len
    prev = 0
    for path in s:
        d = len(path)
        if d != prev:
            depth_counts[d - 1] = 0
        depth_counts[d - 1] += 1
        prev = d
    mask = [[0] * draft_len for _ in range(draft_len)]
    for i in range(draft_len):
        mask[i][0] = 1
        mask[i][i] = 1
    start = 0
    for i in range(len(depth_counts)):
        for j in range(depth_counts[i]):
            cur = s[start + j]
            if len(cur) == 1:
                continue
            anc = []
            for c in range(len(cur) - 1):
                idx = next(k for k, x in enumerate(s)
                           if x[:min(c, len(x) - 1) + 1] == cur[:min(c, len(cur) - 1) + 1]) + 1
                anc.append(idx)
            for idx in anc:
                mask[j + start + 1][idx] = 1
        start += depth_counts[i]
    tree_indices = [0] * draft_len
    start = 0
    for i in range(len(depth_counts)):
        for j in range(depth_counts[i]):
            tree_indices[start + j + 1] = s[start + j][-1] + topk * i + 1
        start += depth_counts[i]
    position_ids = [0] * draft_len
    start = 0
    for i in range(len(depth_counts)):
        for j in range(start + 1, start + depth_counts[i] + 1):
            position_ids[j] = i + 1
        start += depth_counts[i]
    nest, seen = [], []
    for i in range(len(s)):
        cur = s[len(s) - 1 - i]
        if cur in seen:
            continue
        ri = []
        for c in range(len(cur)):
            ri.append(s.index(cur[:c + 1]))
            seen.append(cur[:c + 1])
        nest.append(ri)
    L = max(len(x) for x in nest)
    retrieve = [[0] + [v + 1 for v in x + [-2] * (L - len(x))] for x in nest]
    return mask, tree_indices, position_ids, retrieve


def python_candidates(paths):
    """``generate_candidates_and_draft_buffer`` (utils.py): per-depth token lists (dedup in
    order, pads dropped) -> ``tree_candidates`` tokens of the draft rows (root excluded)."""
    L = max(len(p) for p in paths)
    padded = [p + [-2] * (L - len(p)) for p in paths]
    cols = [[x for i, x in enumerate(col) if list(col).index(x) == i and x != -2]
            for col in zip(*padded)]
    topk = max(len(c) for c in cols)
    cols = [c + [-2] * (topk - len(c)) for c in cols]
    flat = [None] + [x for c in cols for x in c]  # index 0: the root's own candidate
    return flat, topk


def released_tree(paths):
    """The released pipeline from candidate paths to ``(tokens (N,), parents (N,))`` of the
    draft rows (row 0 = root, token None), via the buffers above."""
    choices, max_branch = get_draft_choices(paths)
    mask, tree_indices, _, _ = generate_draft_buffers(choices, max_branch)
    flat, _ = python_candidates(paths)
    tokens = [flat[i] for i in tree_indices]
    parents = [-1] + [max(j for j in range(i) if mask[i][j]) for i in range(1, len(mask))]
    return tokens, parents


class _Node:
    def __init__(self, word, parent, untried, p):
        self.word, self.parent, self.untried, self.p = word, parent, untried, p
        self.children, self.visits, self.score = [], 0, 0.0

    def putc(self, total):
        if self.visits == 0:
            return math.inf
        return self.score / self.visits + (C1 + math.log((total + C2 + 1) / C2)) * self.p \
            * math.sqrt(total) / (1 + self.visits)

    def select(self):
        best, mx = self.children[0], 0.0
        for ch in self.children:
            sc = ch.putc(self.visits)
            if sc > mx:
                mx, best = sc, ch
        return best


def rust_search(table, seq, rng, *, iterations=150, L=4, top_k=24, choices=64):
    """``Reader::search`` after the adaptive update: MCTS + strip + HashSet + cut. ``table`` is
    ``dict[(a, b)] -> dict[c -> w]``; hash order = ``rng.permutation`` of the keys."""
    def keys(pair):
        row = table.get(pair, {})
        ks = list(row)
        return [ks[i] for i in rng.permutation(len(ks))]

    root = _Node((seq[-2], seq[-1]), None, keys((seq[-2], seq[-1])), 0.0)
    for _ in range(iterations):
        node, state, end = root, [root.word], False
        while node.untried and node.children and not end:
            node = node.select()
            state.append(node.word)
            end = len(state) == L
        if node.untried and not end:
            pw = node.word[1]
            for w in node.untried:
                node.children.append(_Node((pw, w), node, keys((pw, w)),
                                           table.get(node.word, {}).get(w, 0.0)))
            node = node.children[-1]
            state.append(node.word)
        while len(state) < L:
            last = state[-1]
            row = table.get(last)
            if not row:
                break
            ws = keys(last)
            tot = sum(row[w] for w in ws)
            cum, acc = [], 0.0
            for w in ws:
                acc += row[w] / tot
                cum.append(acc)
            u = rng.random()
            chosen = ws[-1]
            for w, cp in zip(ws, cum):
                if u <= cp:
                    chosen = w
                    break
            state.append((last[1], chosen))
        score = 1.0 + sum(table[state[i]].get(state[i + 1][0], 0.0)
                          for i in range(len(state) - 1))
        x = node
        while x is not None:
            x.visits += 1
            x.score += score
            x = x.parent
    sentences = []

    def extract(n, cur):
        s = cur + [n.word[1]]
        sentences.append((s, n.visits))
        if len(s) > L or not n.children:
            return
        for ch in n.children:
            extract(ch, s)

    extract(root, [])
    sentences.sort(key=lambda t: -t[1])
    out = []
    for s, _ in sentences[:top_k]:
        s = list(s)
        if len(s) >= 2:
            row = table.get((s[-2], s[-1]))
            if row:
                ks = keys((s[-2], s[-1]))
                best = ks[0]
                for k in ks:  # max_by: the last maximum wins
                    if row[k] >= row[best]:
                        best = k
                s.append(best)
        out.append(s)
    res = [x[1:] for x in out if len(x) > 1]
    uniq = list({tuple(x): None for x in res})
    uniq = [list(uniq[i]) for i in rng.permutation(len(uniq))]
    return cut_to_choices(uniq, choices) if uniq else []

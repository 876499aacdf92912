"""NumPy ports (own code, no torch, no CUDA) of the small functions of the official Token
Recycling code, Luowaterbi/TokenRecycling ``evaluation/inference_recycling.py::recycling_forward``
(commit 1b4c05c), and of smpanaro/token-recycling's ``TokenRecycling.get_longest_sequence``.

What each port keeps from its original:

- :func:`prepare_data`: the template loop as written (``template.index`` for the father, the
  pairwise prefix test for the mask, ``search_path`` built by appending each entry's path and
  removing its prefixes, padded with -1 to ``len(template[-1]) + 1``, ``deep_split`` from the
  position changes). Batch dimension dropped.
- :func:`prepare_data_input_ids`: the layer loop with the flat gather
  ``adj_matrix.view(-1)[father_token * topk + rank]``.
- :func:`path_reward_verify`: ``input_ids[search_path]`` with padded entries set to -100, the
  ``cumprod`` of matches, ``reward.max()``, the first best path by ``argmax``, ``index_path``
  and the next root ``model_res[search_path[best][accept_len - 1]]``.
- :func:`kv_copy`: ``past_key_values_data[..., n + index_path, :]`` copied to
  ``[..., n : n + len]`` (torch's ``copy_`` of a gathered tensor: the gather happens first).
- :func:`matrix_update`: ``adj_matrix[input_ids] = topk(logits, k)``; NumPy fancy assignment
  with repeated indices leaves the last write in practice, where CUDA's order is unspecified.
- :func:`recycling_loop`: the whole loop on a ``TreeLM`` (the model call replaced by
  ``forward_tree``/``commit``), with the official stopping rules: break after a step that
  emitted EOS (before the update), break when more than ``max_new_tokens`` tokens were
  generated, and break when the next root is EOS.
- :func:`longest_sequence_dfs` (smpanaro): a depth-first walk (children in order) over
  matching nodes, keeping the first node that reaches a new maximum depth.
"""

from __future__ import annotations

import numpy as np

from refseq.decoding.speculative.tree import DraftTree


def prepare_data(template):
    """-> ``attention (N, N) int, positions (N,), search_path (P, D+1), father (N,),
    candi (N,), deep_split list``."""
    template = [list(e) for e in template]
    n = len(template) + 1
    pad_len = len(template[-1]) + 1
    attn = np.zeros((n, n), np.int64)
    pos = np.zeros(n, np.int64)
    attn[:, 0] = 1
    search_path, father, candi, deep_split = [], [-1], [-1], []
    for i, entry in enumerate(template):
        deep, rank = len(entry), entry[-1]
        father.append(0 if deep == 1 else template.index(entry[:-1]) + 1)
        candi.append(rank)
        pos[i + 1] = deep
        if deep != pos[i]:
            deep_split.append(i + 1)
        cur = [0]
        attn[i + 1, i + 1] = 1
        for j in range(i):
            if template[j] == entry[:len(template[j])]:
                attn[i + 1, j + 1] = 1
                cur.append(j + 1)
        cur.append(i + 1)
        for s in range(1, len(cur)):
            if cur[:s] in search_path:
                search_path.remove(cur[:s])
        search_path.append(cur)
    deep_split.append(n)
    sp = np.array([p + [-1] * (pad_len - len(p)) for p in search_path], np.int64)
    return attn, pos, sp, np.array(father), np.array(candi), deep_split


def prepare_data_input_ids(root, adj, father, candi, deep_split):
    """The merged sequence from the flat matrix, layer by layer."""
    topk = adj.shape[1]
    ids = np.zeros(father.shape[0], np.int64)
    ids[0] = root
    flat = adj.reshape(-1)
    for layer in range(len(deep_split) - 1):
        a, b = deep_split[layer], deep_split[layer + 1]
        ids[a:b] = flat[ids[father[a:b]] * topk + candi[a:b]]
    return ids


def path_reward_verify(input_ids, model_res, search_path):
    """-> ``(accept_len, index_path, next_root, reward)`` as in the official loop."""
    inp = input_ids[search_path].copy()  # (P, D+1); -1 rows index the last node, then masked
    inp[search_path == -1] = -100
    out = model_res[search_path]
    reward = np.cumprod(inp[:, 1:] == out[:, :-1], axis=1).sum(axis=1)
    best = int(np.argmax(reward))  # first maximum
    accept_len = 1 + int(reward.max())
    index_path = search_path[best][:accept_len]
    next_root = int(model_res[search_path[best][accept_len - 1]])
    return accept_len, index_path, next_root, reward


def kv_copy(cache, n_past, index_path):
    """In place on ``cache (..., S, Dh)``; returns the new length."""
    tgt = cache[..., n_past + index_path, :].copy()  # the gather is materialised first
    cache[..., n_past: n_past + tgt.shape[-2], :] = tgt
    return n_past + tgt.shape[-2]


def matrix_update(adj, input_ids, logits):
    """``adj[input_ids] = topk(logits, k)`` (ties: lower id first, as the reference)."""
    k = adj.shape[1]
    adj[input_ids] = np.argsort(-logits, axis=1, kind="stable")[:, :k]


def recycling_loop(target, prompt, max_new_tokens, adj, template, eos_id=None):
    """The official loop on a ``TreeLM``: returns ``(tokens, accept_length_list)``, where
    ``tokens`` are the committed tokens after the prompt (every step's root and accepted drafts,
    as ``verify_input_ids`` holds them; the last step's next root is not among them)."""
    attn, pos, sp, father, candi, deep_split = prepare_data(template)
    target.prefill(np.asarray(prompt))  # caches prompt[:-1]; the root is prompt[-1]
    root, committed, accept = int(prompt[-1]), [], []
    while True:
        ids = prepare_data_input_ids(root, adj, father, candi, deep_split)
        logits, _ = target.forward_tree(DraftTree(father, ids))
        model_res = np.argmax(logits, axis=-1)
        accept_len, index_path, next_root, _ = path_reward_verify(ids, model_res, sp)
        accept.append(accept_len)
        target.commit(index_path)
        best_input = ids[index_path]  # the root and the accepted drafts
        committed += [int(t) for t in best_input]
        if (eos_id is not None and eos_id in best_input) or len(committed) - 1 > max_new_tokens:
            break
        matrix_update(adj, ids, logits)
        root = next_root
        if eos_id is not None and root == eos_id:
            break
    return np.array(committed[1:], np.int64), accept


def longest_sequence_dfs(parents, guess_ids, actual_ids):
    """smpanaro's ``get_longest_sequence``: node ids root to the deepest matching node."""
    n = len(parents)
    children = [[] for _ in range(n)]
    for i in range(1, n):
        children[parents[i]].append(i)
    depth = {}
    stack = list(reversed(children[0]))
    deepest, best_depth = None, -1
    while stack:
        node = stack.pop()
        d = depth.get(node, 0)
        for c in children[node]:
            depth[c] = d + 1
        if guess_ids[node] != actual_ids[parents[node]]:
            continue
        if d > best_depth:
            deepest, best_depth = node, d
        stack.extend(reversed(children[node]))
    path = []
    while deepest is not None:
        path.append(deepest)
        deepest = parents[deepest] if deepest != 0 else None
    return list(reversed(path)) if path else []

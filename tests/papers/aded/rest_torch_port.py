"""A torch port of the released sampling path (``aded/model/utils.py``, from REST):
``get_nucleus_posterior_mask``, the nucleus branch of ``evaluate_posterior`` and the next
token drawn by ``generate_candidates_and_draft_buffer`` (``top_p_filtering`` + multinomial).
Vectorised over R independent repetitions of one step (each repetition draws its own samples,
as R separate calls would); otherwise line by line."""

from __future__ import annotations

from collections import Counter


def nucleus_posterior_mask(torch, logits, candidates, temperature, top_p):
    """``get_nucleus_posterior_mask``: logits (n, T+1, V), candidates (n, T+1)."""
    F = torch.nn.functional
    logits = logits[:, :-1] / temperature
    n_samples, n_tokens = logits.shape[0], logits.shape[1]
    logits = logits.reshape(n_samples * n_tokens, -1)
    probs = F.softmax(logits, dim=-1)
    sorted_logits, sorted_indices = torch.sort(probs, descending=True)
    cum_probs = torch.cumsum(sorted_logits, dim=-1)
    remove = cum_probs > top_p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = 0
    indices_to_remove = remove.scatter(dim=1, index=sorted_indices, src=remove)
    logits[indices_to_remove] = float("-inf")
    sampled = torch.multinomial(F.softmax(logits, dim=-1), 1).view(n_samples, n_tokens)
    return (candidates[:, 1:] == sampled).int()


def released_steps(torch, node_logits, retrieve, node_tokens, R, temperature, top_p, seed):
    """R repetitions of one released step on a tree. ``node_logits (N, V)``, ``retrieve
    (P, D+1)`` node ids padded with -1, ``node_tokens (N,)``.
    Returns ``[(emitted tuple, count)]``."""
    F = torch.nn.functional
    torch.manual_seed(seed)
    P, D1 = retrieve.shape
    ext = torch.cat([node_tokens, torch.tensor([0])])  # Medusa pads with a dummy token
    idx = torch.where(retrieve < 0, torch.tensor(len(node_tokens)), retrieve)
    cands = ext[idx]  # (P, D+1)
    zl = torch.cat([node_logits, torch.zeros(1, node_logits.shape[1])])[idx]  # (P, D+1, V)
    valid = (retrieve >= 0)[:, 1:].int()
    mask = nucleus_posterior_mask(torch, zl.repeat(R, 1, 1), cands.repeat(R, 1), temperature,
                                  top_p).view(R, P, D1 - 1) * valid  # padding never matches
    acc = torch.cumprod(mask, dim=2).sum(dim=2)  # (R, P)
    best = torch.argmax(acc, dim=1)  # first maximum (accept 0 -> candidate 0)
    k = acc[torch.arange(R), best]
    out = []
    last_nodes = retrieve[best, k]
    nxt_logits = node_logits[last_nodes] / temperature
    s, si = torch.sort(nxt_logits, descending=True)
    cp = torch.cumsum(F.softmax(s, dim=-1), dim=-1)
    rm = cp > top_p
    rm[..., 1:] = rm[..., :-1].clone()
    rm[..., 0] = 0
    nxt_logits[rm.scatter(1, si, rm)] = float("-inf")
    nxt = torch.multinomial(F.softmax(nxt_logits, dim=-1), 1)[:, 0]
    counts = Counter(zip(best.tolist(), k.tolist(), nxt.tolist()))  # (row, accepted, next)
    c = cands.tolist()
    for (b, kk, t), n in counts.items():
        out.append((tuple(c[b][1:kk + 1]) + (t,), n))
    return out
